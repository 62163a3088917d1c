"""The Recommender's wiring, where leaks live: each test fails on one leak.

- leave-one-out: the user row of a training example must not contain that example's rating;
- features and weights depend on training ratings only: changing test ratings changes nothing;
- ``recommend`` leaves out exactly the pairs the user rated outside the test split, a set the
  test computes from the data itself (``pairs_recommend_excludes``), not from ``fit``'s state.
"""

import copy
import tempfile

import numpy as np
import pytest

import anirec
from anirec import Recommender, kernels
from anirec.data import generate_synthetic, load_mal
from anirec.data.synthetic import write_tables

from .conftest import pairs_recommend_excludes

# No refit: the features and weights under test are those of the run on the training split.
OPTIONS = dict(layers=(16, 8), epochs=2, batch_size=128, lr=3e-3, seed=0, objective="rating",
               dtype="float64", refit=False)


@pytest.fixture(scope="module")
def data():
    synthetic = generate_synthetic(200, 150, 6_000, seed=5)
    with tempfile.TemporaryDirectory() as tmp:
        return load_mal(*write_tables(synthetic, tmp))


def _positions(data, users, items):
    """Positions in ``data.ratings`` of the (user row, item row) pairs."""
    n_items = data.catalogue.n_items
    keys = data.ratings.users.astype(np.int64) * n_items + data.ratings.items
    order = np.argsort(keys)
    wanted = np.asarray(users, np.int64) * n_items + np.asarray(items, np.int64)
    found = order[np.searchsorted(keys, wanted, sorter=order)]
    assert np.array_equal(keys[found], wanted)
    return found


def _with_ratings_flipped(data, positions):
    """A copy of ``data`` whose ratings at ``positions`` are mirrored (r -> 11 - r), with the
    catalogue's Score moved as MyAnimeList's would be: it counts every loaded rating."""
    changed = copy.deepcopy(data)
    values = changed.ratings.ratings
    before = values.astype(np.float64)
    values[positions] = 11 - values[positions]
    n_items = data.catalogue.n_items
    moved = np.bincount(changed.ratings.items, weights=values - before, minlength=n_items)
    attributes = changed.catalogue.attributes
    attributes["score"] += moved / attributes["scored_by"]
    return changed


def _assert_same(actual, expected, err_msg=""):
    """Equal up to the rounding of a Score moved by the flips (a leak moves them by more
    than 1e-6: a rating in a Score of fewer than a million)."""
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-9, err_msg=err_msg)


class _Recorder:
    """Stands in for ``kernels.EpochPlan`` and remembers the training problem of its first
    use."""

    def __init__(self, monkeypatch):
        self.calls = []
        recorder = self

        class Recording(kernels.EpochPlan):
            def __init__(self, examples, user, item, *args, **kwargs):
                recorder.calls.append((examples, user, item))
                super().__init__(examples, user, item, *args, **kwargs)

        monkeypatch.setattr(kernels, "EpochPlan", Recording)

    @property
    def first(self):
        examples, user, item = self.calls[0]
        features_u, features_i = user.blocks[0], item.blocks[0]
        return {"users": examples.users, "items": examples.items,
                "ratings": examples.ratings, "loo": features_u.user_stats,
                "user_x": features_u.x, "item_loo": features_i.item_stats}


# ---------------------------------------------------------------------------------------------
# Leave-one-out


def test_training_rows_leave_the_example_out(data, monkeypatch):
    """With leave_one_out (the default) each training example's user row is derived without
    its own rating: its count and mean columns are those of the user's other ratings."""
    recorder = _Recorder(monkeypatch)
    rec = Recommender(**OPTIONS).fit(data)
    call = recorder.first
    loo = call["loo"]
    assert loo is not None and call["user_x"] is None
    users, items, ratings = call["users"], call["items"], call["ratings"]
    # The epoch reads the data layer's int32 rows as they are; the row kernels take int64.
    assert users.dtype == items.dtype == np.int32
    users, items = users.astype(np.int64), items.astype(np.int64)
    # The left-out ratings are the examples' own ratings, aligned with them.
    np.testing.assert_array_equal(ratings, data.ratings.ratings[_positions(data, users, items)])
    raw = kernels.user_rows_loo(loo, users, items, ratings) * loo.std + loo.mean
    # Independently: the count and mean of each user's *other* training ratings.
    n_users = rec.user_ids.shape[0]
    count = np.bincount(users, minlength=n_users)[users] - 1.0
    total = np.bincount(users, ratings, minlength=n_users)[users] - ratings
    mean = np.where(count > 0, total / np.maximum(count, 1), np.mean(ratings))
    np.testing.assert_allclose(raw[:, -2], np.log1p(count), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(raw[:, -1], mean, rtol=1e-9, atol=1e-9)
    # ...and these rows are not the full-train rows the model sees at inference.
    full = rec.user_x[users]
    assert np.mean(np.abs(full[:, -1] - kernels.user_rows_loo(loo, users, items,
                                                               ratings)[:, -1]) > 1e-6) > 0.9
    # The item statistics leave the example out too: the count column is the item's other
    # ratings.
    item_loo = call["item_loo"]
    item_rows = kernels.item_rows_loo(item_loo, rec.item_x, items, ratings)
    n_items = rec.anime_ids.shape[0]
    others = np.bincount(items, minlength=n_items)[items] - 1.0
    log_count = item_rows[:, item_loo.columns[2]] * item_loo.std[2] + item_loo.mean[2]
    np.testing.assert_allclose(log_count, np.log1p(others), rtol=1e-9, atol=1e-9)


def test_leave_one_out_off_trains_on_the_full_rows(data, monkeypatch):
    recorder = _Recorder(monkeypatch)
    rec = Recommender(leave_one_out=False, **OPTIONS).fit(data)
    call = recorder.first
    assert call["loo"] is None and call["item_loo"] is None
    np.testing.assert_array_equal(call["user_x"], rec.user_x)


def test_leave_one_out_changes_the_trained_weights(data):
    on = Recommender(**OPTIONS).fit(data)
    off = Recommender(leave_one_out=False, **OPTIONS).fit(data)
    np.testing.assert_array_equal(on.user_x, off.user_x)  # same features at inference
    assert not np.allclose(on.model.params_, off.model.params_)


# ---------------------------------------------------------------------------------------------
# Features and weights come from the training ratings only


@pytest.fixture(scope="module")
def reference(data):
    return Recommender(**OPTIONS).fit(data)


def _baseline_arrays(rec):
    return {"global mean": np.atleast_1d(rec.baselines[0].mean),
            "Bayesian average": rec.baselines[1].item_scores,
            "bias": np.concatenate([[rec.baselines[2].mean], rec.baselines[2].user_bias,
                                    rec.baselines[2].item_scores]),
            "popularity": rec.baselines[3].item_scores}


def test_changing_test_ratings_changes_no_feature_and_no_weight(data, reference):
    test = reference.test
    changed = _with_ratings_flipped(data, _positions(data, test.users, test.items))
    rec = Recommender(**OPTIONS).fit(changed)
    assert not np.array_equal(rec.test.ratings, test.ratings)  # the change reached the test set
    _assert_same(rec.user_x, reference.user_x)
    _assert_same(rec.item_x, reference.item_x)
    _assert_same(rec.model.params_, reference.model.params_)
    # Early stopping watched the same (validation) losses: test ratings never entered them.
    _assert_same([h["val_loss"] for h in rec.model.history_],
                 [h["val_loss"] for h in reference.model.history_])
    ours, theirs = _baseline_arrays(rec), _baseline_arrays(reference)
    for name in ("global mean", "bias", "popularity"):
        _assert_same(ours[name], theirs[name], err_msg=name)


def test_refit_uses_validation_but_no_test_rating(data, reference):
    options = dict(OPTIONS, refit=True)
    refit = Recommender(**options).fit(data)
    # Refit features come from training + validation ratings: not those of the training split.
    assert not np.array_equal(refit.user_x, reference.user_x)
    test = refit.test
    changed = Recommender(**options).fit(
        _with_ratings_flipped(data, _positions(data, test.users, test.items)))
    assert not np.array_equal(changed.test.ratings, test.ratings)
    _assert_same(changed.user_x, refit.user_x)
    _assert_same(changed.item_x, refit.item_x)
    _assert_same(changed.model.params_, refit.model.params_)
    for side in ("user", "item"):
        _assert_same(changed.model.tables_[side][1],
                                      refit.model.tables_[side][1])


def test_bayesian_baseline_uses_training_ratings_only(data, reference):
    from anirec.data import split_ratings

    options = reference.options
    train = split_ratings(data.ratings, valid=options["valid"], test=options["test"],
                          min_ratings=options["min_ratings"], seed=options["seed"]).train
    n_items = data.catalogue.n_items
    attributes = data.catalogue.attributes
    assert attributes["score"].isna().any()  # some anime fall back on their ratings
    # The formula written out: the catalogue's Score without every loaded rating, plus the
    # training ratings, under the prior of the outside ratings' mean and count.
    every = data.ratings
    file_sum = np.bincount(every.items, every.ratings.astype(np.float64), minlength=n_items)
    file_count = np.bincount(every.items, minlength=n_items)
    scored = attributes["score"].notna().to_numpy()
    assert (attributes["scored_by"].to_numpy()[scored] > file_count[scored]).all()
    out_count = np.where(scored, attributes["scored_by"] - file_count, 0.0)
    out_sum = np.where(scored, attributes["score"] * attributes["scored_by"] - file_sum, 0.0)
    m = np.mean(out_sum[scored] / out_count[scored])
    c = np.mean(out_count[scored])
    train_sum = np.bincount(train.items, train.ratings.astype(np.float64), minlength=n_items)
    train_count = np.bincount(train.items, minlength=n_items)
    expected = (m * c + out_sum + train_sum) / (c + out_count + train_count)
    np.testing.assert_allclose(reference.baselines[1].item_scores, expected, rtol=1e-12)


def test_changing_validation_ratings_changes_no_feature(data, reference):
    # Validation ratings steer early stopping, so the weights may move; the features may not.
    test = reference.test
    valid_positions = np.setdiff1d(np.arange(len(data.ratings.ratings)),
                                   np.concatenate([_positions(data, test.users, test.items),
                                                   _train_positions(data, reference)]))
    assert valid_positions.size > 0
    rec = Recommender(**OPTIONS).fit(_with_ratings_flipped(data, valid_positions))
    _assert_same(rec.user_x, reference.user_x)
    _assert_same(rec.item_x, reference.item_x)


def _train_positions(data, rec):
    """Positions in ``data.ratings`` of the training ratings of ``rec``'s split."""
    from anirec.data import split_ratings

    options = rec.options
    train = split_ratings(data.ratings, valid=options["valid"], test=options["test"],
                          min_ratings=options["min_ratings"], seed=options["seed"]).train
    return _positions(data, train.users, train.items)


def test_changing_a_training_rating_changes_the_features(data, reference):
    """The control of the two tests above: the features do read the training ratings."""
    positions = _train_positions(data, reference)[:50]
    rec = Recommender(**OPTIONS).fit(_with_ratings_flipped(data, positions))
    assert not np.array_equal(rec.user_x, reference.user_x)


# ---------------------------------------------------------------------------------------------
# Exclusions


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_recommend_excludes_exactly_the_rated_pairs(data, reference, backend):
    if backend == "cython" and not anirec.backend.cython_available():
        pytest.skip("compiled kernels not built")
    excluded = pairs_recommend_excludes(data, reference.options)
    by_user = {}
    for user, anime in excluded:
        by_user.setdefault(user, set()).add(anime)
    n_anime = reference.anime_ids.shape[0]
    users = reference.user_ids[::7]
    with anirec.use_backend(backend):
        recs = reference.recommend(users, n=n_anime)
    catalogue = set(reference.anime_ids.tolist())
    checked = 0
    for user_id in users.tolist():
        got = set(recs.loc[recs["user_id"] == user_id, "anime_id"].tolist())
        expected_out = by_user.get(user_id, set())
        assert got == catalogue - expected_out, user_id
        checked += bool(expected_out)
    assert checked > 10


def test_a_verbose_refit_says_it_trains_again(data, capsys):
    Recommender(**dict(OPTIONS, refit=True, verbose=True)).fit(data)
    err = capsys.readouterr().err
    assert "refit: training again on training + validation ratings for" in err
    assert err.index("refit:") > err.index("training (")  # after the first training bar
