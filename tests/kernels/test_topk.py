"""Top-k retrieval under every backend: argsort agreement, tie rule, padding, exclusions."""

import numpy as np
import pytest

from anirec import kernels as K
from .kernel_helpers import DTYPES, HAS_CYTHON


def _expected(Q, V, k, excluded=None):
    """Reference by full sort: score desc, then index asc; excluded items dropped; padded;
    ``k`` capped at the number of items."""
    scores = Q.astype(np.float64) @ V.astype(np.float64).T
    n, m = scores.shape
    index = np.full((n, min(k, m)), -1, dtype=np.int64)
    for row in range(n):
        keep = np.arange(m) if excluded is None else np.setdiff1d(np.arange(m), excluded[row])
        order = keep[np.lexsort((keep, -scores[row, keep]))][:k]
        index[row, :order.size] = order
    return index


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 5, 40, 41, 100])
@pytest.mark.parametrize("block_size", [1, 3, 1024])
def test_matches_argsort_on_tie_free_data(each_backend, dtype, k, block_size):
    rng = np.random.default_rng(k * 7 + block_size)
    Q = rng.standard_normal((11, 6)).astype(dtype)
    V = rng.standard_normal((41, 6)).astype(dtype)
    index, score = K.topk(Q, V, k, block_size=block_size)
    assert index.shape == score.shape == (11, min(k, 41))
    assert index.dtype == np.int64 and score.dtype == dtype
    np.testing.assert_array_equal(index, _expected(Q, V, k))
    valid = index >= 0
    full = (Q @ V.T)
    np.testing.assert_allclose(score[valid], np.take_along_axis(full, np.where(valid, index, 0),
                                                                1)[valid], rtol=1e-5)
    # Sorted by score, highest first.
    for row in range(score.shape[0]):
        assert np.all(np.diff(score[row, valid[row]]) <= 0)
        assert np.all(score[row, ~valid[row]] == -np.inf)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_go_to_the_lower_index(each_backend, dtype):
    # Small integers: every dot product is exact, so equal scores are truly equal.
    Q = np.array([[1, 0], [0, 1], [1, 1]], dtype=dtype)
    V = np.array([[2, 1], [1, 2], [2, 1], [0, 0], [1, 2], [2, 1]], dtype=dtype)
    index, score = K.topk(Q, V, 4)
    np.testing.assert_array_equal(index, [[0, 2, 5, 1], [1, 4, 0, 2], [0, 1, 2, 4]])
    np.testing.assert_array_equal(score, [[2, 2, 2, 1], [2, 2, 1, 1], [3, 3, 3, 3]])
    # Same with every item tied, and across block boundaries.
    index, _ = K.topk(np.ones((5, 2), dtype), np.ones((9, 2), dtype), 4, block_size=2)
    np.testing.assert_array_equal(index, np.tile(np.arange(4), (5, 1)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_k_above_the_items_is_capped(each_backend, dtype):
    rng = np.random.default_rng(3)
    Q = rng.standard_normal((4, 3)).astype(dtype)
    V = rng.standard_normal((5, 3)).astype(dtype)
    index, score = K.topk(Q, V, 8)
    assert index.shape == score.shape == (4, 5)
    np.testing.assert_array_equal(index[:, :5], _expected(Q, V, 5))
    assert np.isfinite(score[:, :5]).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [2, 6, 30])
def test_exclusions_are_honoured(each_backend, dtype, k):
    rng = np.random.default_rng(k)
    n, m = 7, 20
    Q = rng.standard_normal((n, 4)).astype(dtype)
    V = rng.standard_normal((m, 4)).astype(dtype)
    excluded = [np.array([], dtype=np.int64),          # empty set
                np.arange(m),                           # every item
                np.array([3, 3, 19, 0]),                # duplicates, unsorted
                np.arange(0, m, 2), np.arange(m - 1),   # all but one
                np.array([5]), rng.permutation(m)[:10]]
    indptr = np.concatenate([[0], np.cumsum([len(e) for e in excluded])]).astype(np.int64)
    indices = np.concatenate(excluded).astype(np.int64)
    index, score = K.topk(Q, V, k, exclude=(indptr, indices), block_size=3)
    np.testing.assert_array_equal(index, _expected(Q, V, k, excluded))
    for row, items in enumerate(excluded):
        assert not np.isin(index[row], items).any()
    np.testing.assert_array_equal(index[1], -1)
    assert np.all(score[1] == -np.inf)
    assert index[4, 0] == m - 1 and np.all(index[4, 1:] == -1)


@pytest.mark.skipif(not HAS_CYTHON, reason="compiled kernels not built")
def test_thread_count_does_not_change_the_result():
    from threadpoolctl import threadpool_limits

    import anirec

    rng = np.random.default_rng(0)
    Q = rng.standard_normal((300, 8))
    V = rng.standard_normal((700, 8))
    indptr = np.arange(0, 301 * 3, 3, dtype=np.int64)
    exclude = (indptr, rng.integers(0, 700, 900).astype(np.int64))
    with anirec.use_backend("cython"):
        with threadpool_limits(limits=1, user_api="openmp"):
            one = K.topk(Q, V, 10, exclude=exclude, block_size=64)
        many = K.topk(Q, V, 10, exclude=exclude, block_size=64)
    np.testing.assert_array_equal(one[0], many[0])
    np.testing.assert_array_equal(one[1], many[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 10, 130])
def test_many_tiles_with_exclusions(each_backend, dtype, k):
    # Several query tiles (512 rows) and item tiles (256 items) of the compiled kernel, with
    # exclusions in every item tile, unsorted and duplicated, and one query excluding all.
    rng = np.random.default_rng(k + 17)
    n, m = 530, 1300
    Q = rng.standard_normal((n, 5)).astype(dtype)
    V = rng.standard_normal((m, 5)).astype(dtype)
    excluded = [rng.integers(0, m, rng.integers(0, 40)) for _ in range(n)]
    excluded[7] = np.arange(m)
    excluded[300] = np.arange(m - 3)
    indptr = np.concatenate([[0], np.cumsum([len(e) for e in excluded])]).astype(np.int64)
    indices = np.concatenate(excluded).astype(np.int64)
    index, score = K.topk(Q, V, k, exclude=(indptr, indices))
    np.testing.assert_array_equal(index, _expected(Q, V, k, excluded))
    assert np.all(index[7] == -1) and np.all(score[7] == -np.inf)
    assert set(index[300, :3]) <= {m - 3, m - 2, m - 1} and np.all(index[300, 3:] == -1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 3, 10, 64])
@pytest.mark.parametrize("m", [63, 64, 65, 129, 511, 513, 1107])
def test_chunked_threshold_test_with_ties(each_backend, dtype, k, m):
    # Small integer vectors: exact scores with many ties, so the compiled kernel's test of 64
    # scores at a time (one bit per score above the heap's root) must keep the strict ">" and
    # walk the bits in index order; odd widths leave partial chunks at every tile's end.
    rng = np.random.default_rng(m * 100 + k)
    n = 37
    Q = rng.integers(-2, 3, (n, 3)).astype(dtype)
    V = rng.integers(-2, 3, (m, 3)).astype(dtype)
    excluded = [rng.integers(0, m, rng.integers(0, 6)) for _ in range(n)]
    indptr = np.concatenate([[0], np.cumsum([len(e) for e in excluded])]).astype(np.int64)
    indices = np.concatenate(excluded).astype(np.int64)
    index, score = K.topk(Q, V, k, exclude=(indptr, indices))
    np.testing.assert_array_equal(index, _expected(Q, V, k, excluded))
    np.testing.assert_array_equal(K.topk(Q, V, k)[0], _expected(Q, V, k))
