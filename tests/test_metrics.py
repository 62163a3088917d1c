"""``anirec.metrics`` against hand-worked examples and naive per-user loops.

The evaluation report compares methods scored by the same metric code, so a wrong discount or
denominator would move every row alike and pass there; these tests pin each formula down.
"""

import math

import numpy as np
import pytest

from anirec.metrics import mae, ranking_metrics, relevant_sets, rmse


def naive_ranking(top_items, relevant, n_items):
    """Precision/Recall/NDCG@k and coverage with one plain loop per user.

    ``relevant`` is a list of sets, one per row of ``top_items``; ``-1`` pads a short list.
    NDCG uses binary gains and the discount ``1 / log2(position + 1)`` (positions from 1); the
    ideal list puts ``min(|relevant|, k)`` hits first. Recall divides by ``|relevant|``.
    """
    k = len(top_items[0])
    precision, recall, ndcg, recommended = [], [], [], set()
    for row, rel in zip(top_items, relevant):
        dcg, hits = 0.0, 0
        for position, item in enumerate(row, start=1):
            if item < 0:
                continue
            recommended.add(item)
            if item in rel:
                hits += 1
                dcg += 1.0 / math.log2(position + 1)
        ideal = sum(1.0 / math.log2(position + 1) for position in range(1, min(len(rel), k) + 1))
        precision.append(hits / k)
        recall.append(hits / len(rel))
        ndcg.append(dcg / ideal)
    return {"precision": np.mean(precision), "recall": np.mean(recall), "ndcg": np.mean(ndcg),
            "coverage": len(recommended) / n_items, "users": len(top_items)}


def as_csr(relevant):
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in relevant])]).astype(np.int64)
    items = np.array([i for r in relevant for i in sorted(r)], dtype=np.int64)
    return indptr, items


def test_rmse_and_mae_by_hand():
    # Errors -1, 0, -2: RMSE sqrt(5/3), MAE 1.
    assert rmse([1, 2, 3], [2, 2, 5]) == pytest.approx(math.sqrt(5 / 3), rel=1e-15)
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0, rel=1e-15)
    assert rmse([4.0], [4.0]) == 0.0 and mae([4.0], [4.0]) == 0.0
    assert math.isnan(rmse([], [])) and math.isnan(mae([], []))


def test_rmse_and_mae_match_loops():
    rng = np.random.default_rng(0)
    predicted, actual = rng.uniform(1, 10, 101), rng.integers(1, 11, 101)
    errors = [float(p) - float(a) for p, a in zip(predicted, actual)]
    assert rmse(predicted, actual) == pytest.approx(
        math.sqrt(sum(e * e for e in errors) / 101), rel=1e-13)
    assert mae(predicted, actual) == pytest.approx(sum(abs(e) for e in errors) / 101, rel=1e-13)


def test_ranking_metrics_by_hand():
    # k = 3, six anime.
    # user 0: [2, 0, 5], relevant {0, 4, 5}: hits at ranks 2 and 3.
    #   P = 2/3, R = 2/3, DCG = 1/log2(3) + 1/log2(4), IDCG = 1 + 1/log2(3) + 1/log2(4).
    # user 1: [1, -1, -1] (two items excluded away), relevant {1}: P = 1/3, R = 1, NDCG = 1.
    # user 2: [3, 2, 0], relevant {1}, fewer relevant than k and no hit: 0, 0, 0.
    top = np.array([[2, 0, 5], [1, -1, -1], [3, 2, 0]], dtype=np.int64)
    indptr, items = as_csr([{0, 4, 5}, {1}, {1}])
    got = ranking_metrics(top, indptr, items, 6)
    log3 = math.log2(3)
    ndcg0 = (1 / log3 + 0.5) / (1 + 1 / log3 + 0.5)
    assert got["precision"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3, rel=1e-14)
    assert got["recall"] == pytest.approx((2 / 3 + 1 + 0) / 3, rel=1e-14)
    assert got["ndcg"] == pytest.approx((ndcg0 + 1 + 0) / 3, rel=1e-14)
    assert got["coverage"] == pytest.approx(5 / 6, rel=1e-14)  # anime 4 is never recommended
    assert got["users"] == 3


def test_ndcg_discounts_by_rank():
    # One relevant item, at rank 1, 2 or 4 of a 4-list: NDCG 1, 1/log2(3), 1/log2(5).
    indptr, items = as_csr([{7}])
    for rank, want in ((1, 1.0), (2, 1 / math.log2(3)), (4, 1 / math.log2(5))):
        row = [0, 1, 2, 3]
        row[rank - 1] = 7
        got = ranking_metrics(np.array([row], dtype=np.int64), indptr, items, 10)
        assert got["ndcg"] == pytest.approx(want, rel=1e-14), rank
        assert got["precision"] == 0.25 and got["recall"] == 1.0


def test_more_relevant_than_k():
    # Five relevant, k = 2, both recommended relevant: P = 1, R = 2/5, NDCG = 1 (the ideal
    # list is capped at k).
    indptr, items = as_csr([{1, 2, 3, 4, 5}])
    got = ranking_metrics(np.array([[3, 5]], dtype=np.int64), indptr, items, 8)
    assert (got["precision"], got["recall"]) == (1.0, pytest.approx(0.4))
    assert got["ndcg"] == pytest.approx(1.0, rel=1e-14)


def test_padding_never_counts_as_a_hit_or_as_coverage():
    # A relevant item 0 must not match the padding -1 (nor anything through the pair keys).
    indptr, items = as_csr([{0}, {3}])
    top = np.array([[-1, -1, -1], [-1, -1, -1]], dtype=np.int64)
    got = ranking_metrics(top, indptr, items, 4)
    assert got["precision"] == got["recall"] == got["ndcg"] == got["coverage"] == 0.0


def test_hits_belong_to_their_own_user():
    # Each user recommends the other's relevant item: no hit at all.
    indptr, items = as_csr([{1}, {2}])
    got = ranking_metrics(np.array([[2], [1]], dtype=np.int64), indptr, items, 3)
    assert got["precision"] == got["recall"] == got["ndcg"] == 0.0
    assert got["coverage"] == pytest.approx(2 / 3)


def test_no_users():
    got = ranking_metrics(np.zeros((0, 5), dtype=np.int64), np.zeros(1, dtype=np.int64),
                          np.zeros(0, dtype=np.int64), 9)
    assert math.isnan(got["precision"]) and math.isnan(got["recall"])
    assert math.isnan(got["ndcg"])
    assert got["coverage"] == 0.0 and got["users"] == 0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 4, 10])
def test_ranking_metrics_match_naive_loops(seed, k):
    rng = np.random.default_rng(seed)
    n_users, n_items = 25, 30
    top = np.full((n_users, k), -1, dtype=np.int64)
    relevant = []
    for u in range(n_users):
        length = rng.integers(0, k + 1)  # some lists are short (padded), some empty
        top[u, :length] = rng.choice(n_items, length, replace=False)
        # Relevant sets drawn partly from the list itself so there are hits.
        pool = np.concatenate([top[u, :length], rng.choice(n_items, 4)])
        relevant.append(set(rng.choice(pool, rng.integers(1, 7)).tolist()) if pool.size
                        else {0})
    got = ranking_metrics(top, *as_csr(relevant), n_items)
    want = naive_ranking(top.tolist(), relevant, n_items)
    for key in ("precision", "recall", "ndcg", "coverage"):
        assert got[key] == pytest.approx(want[key], rel=1e-12), key
    assert got["users"] == n_users
    assert 0 < got["ndcg"] < 1  # the example exercises hits and misses


def test_relevant_sets_by_hand():
    # Threshold 8: a rating equal to it counts; user 5 has nothing relevant and is left out.
    users = [3, 5, 3, 1, 3, 1, 5]
    items = [9, 2, 4, 7, 1, 0, 3]
    ratings = [8, 7, 10, 9, 2, 8, 1]
    rows, indptr, rel = relevant_sets(users, items, ratings, threshold=8)
    np.testing.assert_array_equal(rows, [1, 3])
    np.testing.assert_array_equal(indptr, [0, 2, 4])
    np.testing.assert_array_equal(rel, [0, 7, 4, 9])
    rows, indptr, rel = relevant_sets(users, items, ratings, threshold=11)
    assert rows.size == 0 and list(indptr) == [0] and rel.size == 0
