"""Thresholds, caps and formulas checked at their edges, from both sides, against values
computed here from the inputs: the minimum id count, the refit's examples and epochs, the cold
start's score and exclusions, every number ``evaluate`` reports (padded lists too, ratings
grouped by user or not), the int8 ratings of ``load_ratings``, the model file's caps and
versions, the command line's sizes at 0 and at the catalogue, and the thread chooser's probes.
"""

import dataclasses
import io
import json
import math
import zipfile

import numpy as np
import pandas as pd
import pytest

import anirec
from anirec import ModelFormatError, Recommender, TwoTower, kernels
from anirec._epoch_threads import ThreadChooser
from anirec.cli import main
from anirec.data import Ratings, generate_synthetic, load_mal
from anirec.data.synthetic import write_tables
from anirec.model.persistence import Member, read_model_file, write_model_file

from .conftest import run_cli

# ---------------------------------------------------------------------------------------------
# The minimum id count, exactly at its boundary


def test_an_id_with_exactly_min_id_count_ratings_gets_its_own_row():
    # User 0 rates 3 anime, user 1 rates 2, user 2 rates 4; anime 0 has 3 ratings, anime 1
    # has 2, anime 2 has 4.
    users = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    items = np.array([0, 1, 2, 0, 2, 0, 1, 2, 2])
    ratings = np.array([5.0, 6, 7, 8, 9, 4, 5, 6, 7])
    rng = np.random.default_rng(0)
    user_x, item_x = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    for threshold, own in ((3, [True, False, True]), (4, [False, False, True]),
                           (2, [True, True, True]), (5, [False, False, False])):
        model = TwoTower(layers=(4,), embedding_dim=2, min_id_count=threshold, epochs=1,
                         batch_size=2)
        model.epoch_plan((users, items, ratings), user_x, item_x)
        for side in ("user", "item"):
            index, table = model.tables_[side]
            assert table.shape[0] == sum(own) + 1, (threshold, side)
            # Own rows in order, the rarer ids on the last (unknown) row.
            expected = np.where(own, np.cumsum(own) - 1, sum(own))
            np.testing.assert_array_equal(index, expected, err_msg=f"{threshold} {side}")


# ---------------------------------------------------------------------------------------------
# Shared data: a small synthetic MyAnimeList set


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edges")
    return load_mal(*write_tables(generate_synthetic(200, 120, 5000, seed=5), folder))


SMALL = dict(layers=(8,), epochs=3, embedding_dim=2, seed=0)


@pytest.fixture(scope="module")
def fitted(data):
    return Recommender(**SMALL).fit(data)


def _pairs(frame):
    return list(zip(frame["user_id"].tolist(), frame["anime_id"].tolist(),
                    frame["rating"].tolist()))


# ---------------------------------------------------------------------------------------------
# The refit: which examples and how many epochs the second training sees


@pytest.mark.parametrize("lr", [1e-2, 1e-30])
def test_the_refit_trains_on_training_and_validation_ratings_for_the_best_epoch(
        data, monkeypatch, lr):
    runs = []
    fit = TwoTower.fit

    def recording(self, train, user_features, item_features, **kwargs):
        loo = kwargs.get("loo")
        runs.append({"train": tuple(np.array(a, copy=True) for a in
                                    (train.users, train.items, train.ratings)),
                     "validation": kwargs.get("validation"), "epochs": self.epochs,
                     "patience": self.patience, "fraction": self.validation_fraction,
                     "loo_count": None if loo is None else np.array(loo.count, copy=True)})
        result = fit(self, train, user_features, item_features, **kwargs)
        runs[-1]["trained"] = len(self.history_)
        return result

    monkeypatch.setattr(TwoTower, "fit", recording)
    rec = Recommender(**{**SMALL, "epochs": 6, "lr": lr}).fit(data)
    assert len(runs) == 2
    first, second = runs
    frames = rec.split_frames()
    train, valid = frames["train"], frames["validation"]

    def examples(run):
        users, items, ratings = run["train"]
        return sorted(zip(rec.user_ids[users].tolist(), rec.anime_ids[items].tolist(),
                          ratings.tolist()))

    # The first training: the training split, early stopping on the validation split.
    assert examples(first) == sorted(_pairs(train))
    assert sorted(zip(rec.user_ids[first["validation"].users].tolist(),
                      rec.anime_ids[first["validation"].items].tolist())) == \
        sorted(zip(valid["user_id"], valid["anime_id"]))
    assert (first["epochs"], first["patience"]) == (6, 3)
    best = rec.model.best_epoch_
    assert 1 <= best <= first["trained"] <= 6
    if lr == 1e-30:
        # No float32 weight moves, so no epoch improves on the first: training stops after
        # 1 + patience epochs, and the refit trains one.
        assert (best, first["trained"]) == (1, 4)
    # The second: training + validation ratings, no validation, exactly the best epoch count.
    assert examples(second) == sorted(_pairs(train) + _pairs(valid))
    assert second["validation"] is None and second["fraction"] == 0.0
    assert (second["epochs"], second["patience"], second["trained"]) == (best, None, best)
    # Its features were built from the same ratings it trains on (leave-one-out counts).
    users = second["train"][0]
    np.testing.assert_array_equal(second["loo_count"],
                                  np.bincount(users, minlength=rec.user_ids.shape[0]))
    np.testing.assert_array_equal(first["loo_count"],
                                  np.bincount(first["train"][0], minlength=rec.user_ids.shape[0]))
    # What the model reports stays the first training's.
    assert len(rec.model.history_) == first["trained"] and rec.model.epochs == best


def test_no_refit_without_validation(data, monkeypatch):
    calls = []
    fit = TwoTower.fit
    monkeypatch.setattr(TwoTower, "fit", lambda self, *a, **k: calls.append(1) or
                        fit(self, *a, **k))
    rec = Recommender(**SMALL, valid=0).fit(data)
    assert len(calls) == 1 and rec.model.best_epoch_ is None
    assert len(rec.model.history_) == 3


# ---------------------------------------------------------------------------------------------
# The cold start: its score, written out, and its exclusions


def _cold_start_scores(rec, genre_ratings, scale=(1.0, 10.0)):
    """The cold-start score of every anime, from its definition: the retrieval score of the
    new user's tower output, plus 1.5 standard deviations of those scores times the summed
    signed strength (-1 at the bottom of the scale, +1 at the top) of the anime's rated
    genres."""
    model = rec.model
    vector = model.user_embeddings(rec.new_user_features(genre_ratings, scale=scale))[0]
    cosine = rec.item_vectors.astype(np.float64) @ vector.astype(np.float64)
    retrieval = cosine / model.temperature + rec.popularity_weight * model.item_log_prior_ + \
        rec.quality_weight * model.biases_.item
    lo, hi = scale
    strength = np.zeros(len(rec.genres))
    for genre, rating in genre_ratings.items():
        strength[rec.genres.index(genre)] = (rating - (lo + hi) / 2) / ((hi - lo) / 2)
    affinity = (rec.genre_matrix > 0).astype(np.float64) @ strength
    return retrieval + 1.5 * np.std(retrieval) * affinity, cosine


@pytest.mark.parametrize("tastes,scale", [({"Action": 10, "Comedy": 1}, (1.0, 10.0)),
                                          ({"Drama": 4, "Romance": 2}, (1.0, 5.0)),
                                          ({}, (1.0, 10.0))])
def test_the_cold_start_score_and_its_exclusions(fitted, tastes, scale):
    scores, cosine = _cold_start_scores(fitted, tastes, scale)
    order = np.argsort(-scores, kind="stable")
    excluded = fitted.anime_ids[order[[0, 3]]]  # two of the top anime, left out by request
    recs = fitted.recommend_for_genres(tastes, n=8, scale=scale,
                                       exclude=[*excluded, 10**12, 999_999])
    expected = [row for row in order if fitted.anime_ids[row] not in excluded][:8]
    np.testing.assert_array_equal(recs["anime_id"], fitted.anime_ids[expected])
    np.testing.assert_allclose(recs["score"], scores[expected], rtol=1e-5, atol=1e-6)
    # Nothing else is left out: a new user has rated nothing.
    everything = fitted.recommend_for_genres(tastes, n=10**6, scale=scale)
    assert len(everything) == fitted.anime_ids.shape[0]
    # Its predicted rating is the model's for an unknown user: no user bias.
    model = fitted.model
    np.testing.assert_allclose(recs["predicted_rating"],
                               model.score_to_rating(cosine[expected], None,
                                                     np.array(expected)), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Every number evaluate reports, computed here


def _hand_biases(users, items, ratings, n_users, n_items, reg=5.0, iterations=10):
    mu = ratings.mean()
    b_u, b_i = np.zeros(n_users), np.zeros(n_items)
    for _ in range(iterations):
        b_u = np.bincount(users, ratings - mu - b_i[items], n_users) / \
            (np.bincount(users, minlength=n_users) + reg)
        b_i = np.bincount(items, ratings - mu - b_u[users], n_items) / \
            (np.bincount(items, minlength=n_items) + reg)
    return mu, b_u, b_i


def _ranking_numbers(lists, relevant, k, n_items, popularity_rank):
    """Precision, recall, NDCG, coverage and mean popularity rank of ranked lists (``-1``
    pads a short list), one user at a time from the definitions."""
    precision, recall, ndcg = [], [], []
    for ranked, wanted in zip(lists, relevant):
        hits = [item >= 0 and item in wanted for item in ranked]
        precision.append(sum(hits) / k)
        recall.append(sum(hits) / len(wanted))
        dcg = sum(hit / math.log2(j + 2) for j, hit in enumerate(hits))
        ideal = sum(1 / math.log2(j + 2) for j in range(min(len(wanted), k)))
        ndcg.append(dcg / ideal)
    listed = [item for ranked in lists for item in ranked if item >= 0]
    return {f"precision@{k}": np.mean(precision), f"recall@{k}": np.mean(recall),
            f"ndcg@{k}": np.mean(ndcg), f"coverage@{k}": len(set(listed)) / n_items,
            f"popularity_rank@{k}": np.mean([popularity_rank[i] for i in listed])}


def _hand_evaluation(rec, k):
    """The evaluation of the test split, from the split's ratings, the model's embeddings
    and the baselines' item scores."""
    frames = rec.split_frames()
    train = pd.concat([frames["train"], frames["validation"]])  # what the refit trained on
    test = frames["test"]
    n_users, n_items = rec.user_ids.shape[0], rec.anime_ids.shape[0]
    tu, ti = rec.user_rows(train["user_id"]), rec.anime_rows(train["anime_id"])
    su, si = rec.user_rows(test["user_id"]), rec.anime_rows(test["anime_id"])
    tr, sr = train["rating"].to_numpy(np.float64), test["rating"].to_numpy(np.float64)
    seen = [set(ti[tu == u].tolist()) for u in range(n_users)]
    threshold = 1 + 0.75 * 9
    ranked_users = sorted(set(su[sr >= threshold].tolist()))
    relevant = [set(si[(su == u) & (sr >= threshold)].tolist()) for u in ranked_users]
    counts = np.bincount(ti, minlength=n_items)
    popularity_rank = {int(item): position + 1 for position, item in
                       enumerate(np.argsort(-counts, kind="stable"))}

    def top(scores_of):  # each ranked user's top k of the unseen anime, ties: lower row first
        lists = []
        for u in ranked_users:
            scores = scores_of(u)
            order = [i for i in np.argsort(-scores, kind="stable") if i not in seen[u]][:k]
            lists.append(order + [-1] * (k - len(order)))
        return lists

    mu, b_u, b_i = _hand_biases(tu, ti, tr, n_users, n_items)
    model = rec.model
    # The two-tower lists: the retrieval score of each user, the seen anime excluded.
    queries = np.hstack([rec.user_vectors / np.float32(model.temperature),
                         np.full((n_users, 1), rec.popularity_weight, np.float32),
                         np.full((n_users, 1), rec.quality_weight, np.float32)])
    indptr = np.concatenate([[0], np.cumsum([len(seen[u]) for u in ranked_users])])
    indices = np.array([i for u in ranked_users for i in sorted(seen[u])], np.int64)
    tower_lists, _ = kernels.topk(np.ascontiguousarray(queries[ranked_users]),
                                  rec.retrieval_items, k, exclude=(indptr, indices))
    bayes = np.asarray(rec.baselines[1].item_scores, np.float64)
    methods = {
        "two-tower": (rec.predict(test["user_id"], test["anime_id"]), tower_lists.tolist()),
        "global mean": (np.full(sr.shape[0], tr.mean()), None),
        "Bayesian average": (bayes[si], top(lambda u: bayes)),
        "user + item bias": (mu + b_u[su] + b_i[si], top(lambda u: b_i)),
        "popularity": (None, top(lambda u: counts.astype(np.float64))),
    }
    rows = {}
    for name, (predicted, lists) in methods.items():
        row = {}
        if predicted is not None:
            row["rmse"] = math.sqrt(np.mean((predicted - sr) ** 2))
            row["mae"] = np.mean(np.abs(predicted - sr))
        if lists is not None:
            row.update(_ranking_numbers(lists, relevant, k, n_items, popularity_rank))
        rows[name] = row
    attrs = {"ratings": len(test), "ranked_users": len(ranked_users), "skipped": 0,
             "trained_on": 0, "k": k, "threshold": threshold, "rating_scale": [1.0, 10.0]}
    return rows, attrs


def _check_evaluation(rec, k):
    report = rec.evaluate(k=k)
    rows, attrs = _hand_evaluation(rec, k)
    assert list(report.index) == list(rows)
    for name, row in rows.items():
        for column in report.columns:
            if column in row:
                assert report.loc[name, column] == pytest.approx(row[column], rel=1e-6,
                                                                 abs=1e-9), (name, column)
            else:
                assert math.isnan(report.loc[name, column]), (name, column)
    for key, value in attrs.items():
        assert report.attrs[key] == value, key
    return report


def test_every_number_evaluate_reports(fitted):
    report = _check_evaluation(fitted, 10)
    assert report.attrs["ranked_users"] > 50
    assert 0 < report.loc["two-tower", "precision@10"] < 1


def test_every_number_evaluate_reports_with_padded_lists(fitted):
    # Lists longer than what is left to recommend: every user's list ends in padding, which
    # counts in precision's denominator and nowhere else (no rank, no coverage).
    k = fitted.anime_ids.shape[0]
    report = _check_evaluation(fitted, k)
    assert report.loc["popularity", f"coverage@{k}"] == 1.0
    assert report.loc["two-tower", f"recall@{k}"] == 1.0


def test_the_popularity_rank_by_hand():
    # Four anime rated 3, 1, 2 and 1 times in training: ranks 1, 3, 2, 4 (a tie: lower row
    # first). Lists [0, 2, -1] and [3, -1, -1] have mean rank (1 + 2 + 4) / 3.
    rank = {0: 1, 2: 2, 1: 3, 3: 4}
    numbers = _ranking_numbers([[0, 2, -1], [3, -1, -1]], [{2}, {3}], 3, 4, rank)
    assert numbers["popularity_rank@3"] == pytest.approx(7 / 3)
    assert numbers["precision@3"] == pytest.approx(1 / 3)
    assert numbers["ndcg@3"] == pytest.approx((1 / math.log2(3) + 1) / 2)
    assert numbers["coverage@3"] == 0.75


def _ungrouped(data, seed=0):
    """The same ratings in a shuffled order (not grouped by user: no usable row pointer)."""
    ratings = data.ratings
    order = np.random.default_rng(seed).permutation(ratings.n_ratings)
    shuffled = Ratings(ratings.user_ids, ratings.users[order], ratings.items[order],
                       ratings.ratings[order])
    return dataclasses.replace(data, ratings=shuffled)


def test_ratings_not_grouped_by_user_count_train_and_validation_as_seen(data):
    mixed = _ungrouped(data)
    assert (np.diff(mixed.ratings.users) < 0).any()
    rec = Recommender(**SMALL).fit(mixed)
    frames = rec.split_frames()
    trained = pd.concat([frames["train"], frames["validation"]])
    indptr, indices = rec.seen
    owners = np.repeat(np.arange(indptr.shape[0] - 1), np.diff(indptr))
    assert sorted(zip(rec.user_ids[owners].tolist(), rec.anime_ids[indices].tolist())) == \
        sorted(zip(trained["user_id"], trained["anime_id"]))
    assert len(frames["test"]) > 0
    _check_evaluation(rec, 10)
    _check_evaluation(rec, rec.anime_ids.shape[0])


# ---------------------------------------------------------------------------------------------
# load_ratings: int8 ratings at the ends of the int8 range, default scales below 1


@pytest.mark.parametrize("values,dtype", [
    ([0, 127], np.int8), ([-128, 5], np.int8),  # the int8 range, both ends inside
    ([0, 128], np.float32), ([-129, 5], np.float32),  # one step beyond: no wrap-around
    ([0, 1], np.int8), ([0.5, 1.5], np.float32)])
def test_ratings_are_int8_only_within_its_range(values, dtype):
    table = pd.DataFrame({"user_id": [1, 2], "anime_id": [7, 8], "rating": values})
    data = anirec.load_ratings(table)
    assert data.ratings.ratings.dtype == dtype
    np.testing.assert_array_equal(data.ratings.ratings.astype(np.float64), values)
    assert tuple(data.rating_scale) == tuple(map(float, values))


@pytest.mark.parametrize("values", [[0.25, 0.75, 0.5], [-3, -1, -2], [0, 0.001, 0.0005]])
def test_a_default_scale_below_one_is_the_datas(values):
    table = pd.DataFrame({"user_id": [1, 1, 2], "anime_id": [7, 8, 7], "rating": values})
    data = anirec.load_ratings(table)
    assert tuple(data.rating_scale) == (min(values), max(values))
    assert data.summary.ratings_invalid == 0 and len(data.ratings) == 3
    np.testing.assert_allclose(np.sort(data.ratings.ratings), np.sort(values), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# The model file: the total-size cap across members, versions, a member's stored size


ARRAYS = {f"part{k}": np.arange(100 * (k + 1), dtype=np.float64) for k in range(4)}
MEMBERS = {name: Member("f", (None,)) for name in ARRAYS}


def test_the_size_cap_counts_every_member_together(tmp_path):
    path = write_model_file(tmp_path / "m.anirec", {"kind": "Parts"}, ARRAYS)
    total = sum(array.nbytes for array in ARRAYS.values())  # 8,000 bytes in 4 members
    _, arrays = read_model_file(path, members=MEMBERS, max_bytes=total)
    assert sorted(arrays) == sorted(ARRAYS)
    # One byte less: each member is far below the cap, together they are above it, and the
    # member that crosses it is named.
    with pytest.raises(ModelFormatError, match=r"member 'part3' declares shape \(400,\)"):
        read_model_file(path, members=MEMBERS, max_bytes=total - 1)
    with pytest.raises(ModelFormatError, match="'part2'"):
        read_model_file(path, members=MEMBERS, max_bytes=total - ARRAYS["part3"].nbytes - 1)
    # Members not read do not count.
    subset = {name: MEMBERS[name] for name in ("part0", "part1")}
    read_model_file(path, members=subset, max_bytes=ARRAYS["part0"].nbytes * 3)


def _rewrite(path, target, edit):
    """A copy of the archive at ``path`` with ``edit(name, data) -> data`` applied to every
    member."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w") as out:
        for info in source.infolist():
            out.writestr(info.filename, edit(info.filename, source.read(info)))
    return target


def _with_version(path, target, version):
    def edit(name, raw):
        if name != "__header__.npy":
            return raw
        header = json.loads(np.load(io.BytesIO(raw)).tobytes())
        header["format_version"] = version
        buffer = io.BytesIO()
        np.save(buffer, np.frombuffer(json.dumps(header).encode(), np.uint8))
        return buffer.getvalue()
    return _rewrite(path, target, edit)


@pytest.mark.parametrize("version,message", [
    (0, "'format_version' is 0, expected a positive integer"),
    (-1, "expected a positive integer"), (1, "format version 1, written by an older"),
    (3, "format version 3; this anirec reads versions up to 2"), (True, "expected a positive"),
    (2, None)])
def test_format_versions_from_both_sides(tmp_path, version, message):
    path = write_model_file(tmp_path / "m.anirec", {"kind": "Parts"}, ARRAYS)
    target = _with_version(path, tmp_path / "v.anirec", version)
    if message is None:
        header, _ = read_model_file(target, members=MEMBERS)
        assert header["format_version"] == 2
        return
    with pytest.raises(ModelFormatError, match=message):
        read_model_file(target, members=MEMBERS)


@pytest.mark.parametrize("change", [b"\0" * 8, b"\0", -8, -1])
def test_a_member_with_bytes_beyond_or_short_of_its_shape_is_refused(tmp_path, change):
    path = write_model_file(tmp_path / "m.anirec", {"kind": "Parts"}, ARRAYS)

    def edit(name, raw):
        if name != "part1.npy":
            return raw
        return raw + change if isinstance(change, bytes) else raw[:change]

    target = _rewrite(path, tmp_path / "t.anirec", edit)
    with pytest.raises(ModelFormatError, match="member 'part1' declares shape .* which its "
                                               "stored size does not match"):
        read_model_file(target, members=MEMBERS)
    read_model_file(_rewrite(path, tmp_path / "same.anirec", lambda n, raw: raw),
                    members=MEMBERS)


# ---------------------------------------------------------------------------------------------
# The command line: sizes at 0 and at the catalogue


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edges_cli")
    assert main(["generate", "--out", str(folder), "--users", "100", "--anime", "60",
                 "--ratings", "1500", "--seed", "3"]) == 0
    model = folder / "model.anirec"
    assert main(["train", "--anime", str(folder / "anime-dataset-2023.csv"), "--scores",
                 str(folder / "users-score-2023.csv"), "--out", str(model), "--layers", "8",
                 "--epochs", "1", "--quiet", "--save-split", str(folder / "split")]) == 0
    return folder, model


def test_list_lengths_at_zero_and_at_the_catalogue(model_file, capsys, tmp_path):
    _, model = model_file
    rec = Recommender.load(model)
    n_items, user = rec.anime_ids.shape[0], int(rec.user_ids[0])
    rated = int(np.diff(rec.rated[0])[0])
    lengths = {}
    for n in (n_items - 1, n_items, n_items + 1, 10**6):
        out = tmp_path / f"r{n}.csv"
        code, _, err = run_cli(capsys, "recommend", "--model", model, "--user-id", user, "--n", n,
                            "--out", out)
        assert code == 0, err
        lengths[n] = len(pd.read_csv(out))
    # Everything the user did not rate, and no more however long the list asked for.
    assert rated >= 2
    assert lengths == {n: min(n, n_items - rated) for n in lengths}
    code, out, _ = run_cli(capsys, "similar", "--model", model, "--anime-id",
                        int(rec.anime_ids[0]), "--n", n_items, "--json")
    assert code == 0 and len(json.loads(out)) == n_items - 1
    for argv in (["recommend", "--model", model, "--user-id", user, "--n", 0],
                 ["similar", "--model", model, "--anime-id", int(rec.anime_ids[0]), "--n", 0],
                 ["recommend", "--model", model, "--user-id", user, "--n", -1]):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and "--n" in err and len(err.strip().splitlines()) == 1


def test_evaluate_k_at_zero_and_at_the_catalogue(model_file, capsys):
    folder, model = model_file
    n_items = Recommender.load(model).anime_ids.shape[0]
    test = folder / "split" / "test.csv"
    code, _, err = run_cli(capsys, "evaluate", "--model", model, "--scores", test, "--k", 0)
    assert code == 2 and "--k" in err
    for k in (1, n_items, n_items + 5):
        code, out, err = run_cli(capsys, "evaluate", "--model", model, "--scores", test,
                              "--k", k, "--json")
        assert code == 0, err
        report = json.loads(out)
        assert report["attrs"]["k"] == k
        assert f"precision@{k}" in report["methods"]["two-tower"]
    # At the catalogue size (and beyond) every unseen anime is listed: recall is complete.
    assert report["methods"]["two-tower"][f"recall@{n_items + 5}"] == 1.0


# ---------------------------------------------------------------------------------------------
# The thread chooser: probe lengths and the intervals between probes, after a loss and a win


class Machine:
    """A clock and a ``run_batches`` whose examples per second per thread count the test
    sets (and may change); records every run."""

    def __init__(self, rates):
        self.rates, self.now, self.runs = dict(rates), 0.0, []

    def clock(self):
        return self.now

    def run_batches(self, start, stop, threads, loss, step):
        self.runs.append((threads, stop - start))
        self.now += (stop - start) / self.rates[threads]
        return loss, step + 1


def test_probe_lengths_and_intervals_after_losses_and_a_win():
    # Two threads 2**17 examples/s, one thread 2**16, batches of 128 examples: every time is
    # a binary fraction, so the clock's sums are exact.
    machine = Machine({2: 2**17, 1: 2**16})
    chooser = ThreadChooser(2, clock=machine.clock)
    run = 2**17  # a run: one second of the faster count
    probe = 3_328  # a probe: 0.05 s at the slower count's speed, 3,276.8 examples, 26 batches
    # Warm-up: 0.2 s of unmeasured first runs of 1,024 examples on two threads, 1/128 s each:
    # 26 of them (25 make 0.195 s); then one measured first run on each count.
    expected = [(2, 1_024)] * 26 + [(2, 1_024), (1, 1_024)]
    # Probes that lose come ever rarer: after 1, 2, 4, 8 and at most 8 seconds of runs.
    for seconds in (1, 2, 4, 8, 8):
        expected += [(2, run)] * seconds + [(1, probe)]
    chooser.run(sum(n for _, n in expected), 128, machine.run_batches, 0)
    assert machine.runs == expected
    # One thread becomes 8 times as fast (2**19 examples/s): its next probe wins, the wait
    # falls back to one run, and now two threads are probed, for 0.05 s at their speed
    # (6,553.6 examples: 52 batches).
    machine.rates[1] = 2**19
    after = [(2, run)] * 8 + [(1, probe)]
    for seconds in (1, 2, 4):
        after += [(1, 2**19)] * seconds + [(2, 6_656)]
    machine.runs.clear()
    chooser.run(sum(n for _, n in after), 128, machine.run_batches, 0)
    assert machine.runs == after
    assert chooser.rates == {1: 2**19, 2: 2**17}
