"""Features: sparse user statistics, leave-one-out rows (no leakage by construction),
scalers, item features and the cold-start row."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from anirec.data import Triplets, build_features, split_ratings
from anirec.errors import DataError

MODES = ["rating", "centered", "bayesian"]


@pytest.fixture(scope="module")
def split(small_data):
    return split_ratings(small_data.ratings, seed=0)


def naive_user_rows(catalogue, train: Triplets, n_users: int, weighting: str,
                    item_weight: np.ndarray, global_mean: float) -> np.ndarray:
    """Raw user rows by a plain pandas long-table computation, independent of UserStats."""
    G = catalogue.n_genres
    df = pd.DataFrame({"u": train.users, "i": train.items, "r": train.ratings.astype(float)})
    out = np.zeros((n_users, G + 2))
    for u in range(n_users):
        d = df[df.u == u]
        n = len(d)
        mean = d.r.mean() if n else global_mean
        x = catalogue.genre_matrix[d.i.to_numpy()].astype(float)
        for g in range(G):
            if weighting == "bayesian":
                w = item_weight[d.i.to_numpy()]
                out[u, g] = (w * x[:, g]).sum() / w.sum() if n else 0.0
            else:
                inside = x[:, g] > 0
                if inside.any():
                    avg = d.r.to_numpy()[inside].mean()
                    out[u, g] = avg if weighting == "rating" else avg - mean
                else:
                    out[u, g] = mean if weighting == "rating" else 0.0
        out[u, G] = np.log1p(n)
        out[u, G + 1] = mean
    return out


@pytest.mark.parametrize("weighting", MODES)
def test_user_rows_match_a_naive_computation(small_data, split, weighting):
    n_users = small_data.ratings.n_users
    f = build_features(small_data.catalogue, split.train, n_users, weighting=weighting)
    some = np.arange(0, n_users, 7)
    sub = split.train.subset(np.isin(split.train.users, some))
    want = naive_user_rows(small_data.catalogue, sub, n_users, weighting, f.item_bayes,
                           f.user_stats.global_mean)[some]
    got = f.user_stats.rows(some, scaled=False)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    # The scaled rows: the naive raw rows of every user, z-scored over users with ratings.
    raw = naive_user_rows(small_data.catalogue, split.train, n_users, weighting, f.item_bayes,
                          f.user_stats.global_mean)
    active = np.bincount(split.train.users, minlength=n_users) > 0
    std = raw[active].std(axis=0)
    std[std < 1e-12] = 1.0
    np.testing.assert_allclose(f.user_x, (raw - raw[active].mean(axis=0)) / std, rtol=1e-9,
                               atol=1e-9)
    assert f.user_feature_names == [*small_data.catalogue.genres, "log_count", "mean_rating"]


@pytest.mark.parametrize("weighting", MODES)
def test_leave_one_out_equals_recomputing_without_the_example(small_data, split, weighting):
    """No leakage by construction: a training example's user row is the row the user would
    have if that example had never been in the training set."""
    cat, train, n_users = small_data.catalogue, split.train, small_data.ratings.n_users
    f = build_features(cat, train, n_users, weighting=weighting)
    rng = np.random.default_rng(0)
    count = f.user_stats.count
    # Users with at least two ratings: for a single rating, the fallback is the global mean,
    # which itself changes by 1/len(train) when the example is removed.
    candidates = np.flatnonzero(count[train.users] >= 2)
    picks = rng.choice(candidates, 12, replace=False)
    picks = np.append(picks, np.flatnonzero(count[train.users] == 2)[:1])
    loo = f.user_stats.rows(train.users[picks], train.items[picks], train.ratings[picks],
                            scaled=False)
    for k, e in enumerate(picks):
        without = train.subset(np.arange(len(train)) != e)
        g = build_features(cat, without, n_users, weighting=weighting)
        # The bayesian weights must be the same ones for the comparison to be exact.
        if weighting == "bayesian":
            g = _rebuild_with_weights(cat, without, n_users, f.user_stats.item_weight)
        want = g.user_stats.rows([train.users[e]], scaled=False)[0]
        np.testing.assert_allclose(loo[k], want, rtol=1e-9, atol=1e-9)
    # And the row differs from the full-train row (the example did contribute).
    full = f.user_stats.rows(train.users[picks], scaled=False)
    assert np.any(np.abs(full - loo) > 1e-6)


def _rebuild_with_weights(cat, train, n_users, weights):
    """Mode-2 statistics of ``train`` with fixed item weights (the Bayesian rating's metadata
    fallback is fitted on train, so removing one example can move it by ~1e-5)."""
    f = build_features(cat, train, n_users, weighting="bayesian")
    st = f.user_stats
    x = cat.genre_matrix.astype(float)
    w = weights[train.items]
    st.num = np.zeros_like(st.num)
    np.add.at(st.num, train.users, w[:, None] * x[train.items])
    st.den = np.repeat(np.bincount(train.users, weights=w, minlength=n_users)[:, None],
                       st.num.shape[1], axis=1)
    st.item_weight = weights
    return f


def _mirrored(ratings, positions):
    """A copy of ``ratings`` whose ratings at ``positions`` are mirrored (r -> 11 - r)."""
    changed = copy.deepcopy(ratings)
    changed.ratings[positions] = 11 - changed.ratings[positions]
    return changed


def _train_mask(ratings, train):
    """Which entries of ``ratings`` are the (user, item) pairs of ``train``."""
    n_items = int(ratings.items.max()) + 1
    keys = ratings.users.astype(np.int64) * n_items + ratings.items
    return np.isin(keys, train.users.astype(np.int64) * n_items + train.items)


def test_validation_and_test_ratings_change_no_feature(small_data, split):
    """Mirroring every validation and test rating leaves the split's training part and every
    feature (user rows, item rows, the Bayesian item weights) exactly as they were."""
    cat, ratings, n_users = small_data.catalogue, small_data.ratings, small_data.ratings.n_users
    f = build_features(cat, split.train, n_users)
    held_out = np.flatnonzero(~_train_mask(ratings, split.train))
    assert held_out.size == len(split.valid) + len(split.test)
    changed = split_ratings(_mirrored(ratings, held_out), seed=0)
    assert not np.array_equal(changed.test.ratings, split.test.ratings)
    assert not np.array_equal(changed.valid.ratings, split.valid.ratings)
    g = build_features(cat, changed.train, n_users)
    np.testing.assert_array_equal(g.user_x, f.user_x)
    np.testing.assert_array_equal(g.item_x, f.item_x)
    np.testing.assert_array_equal(g.item_bayes, f.item_bayes)
    # The control: mirroring training ratings does change the features.
    train_positions = np.flatnonzero(_train_mask(ratings, split.train))[:100]
    h = build_features(cat, split_ratings(_mirrored(ratings, train_positions), seed=0).train,
                       n_users)
    assert not np.allclose(h.user_x, f.user_x)


def test_item_bayes_falls_back_on_training_ratings_only(small_data, split):
    """Anime without metadata get a Bayesian rating from their *training* ratings (the
    catalogue's own fallback, computed at load time, saw every rating)."""
    from anirec.data.mal import bayesian_average

    cat, train = small_data.catalogue, split.train
    assert cat.attributes["score"].isna().any()
    f = build_features(cat, train, small_data.ratings.n_users)
    n_items = cat.n_items
    expected = bayesian_average(cat.attributes["score"].to_numpy(np.float64),
                                cat.attributes["scored_by"].to_numpy(np.float64),
                                np.bincount(train.items, train.ratings.astype(np.float64),
                                            minlength=n_items),
                                np.bincount(train.items, minlength=n_items).astype(float))
    np.testing.assert_allclose(f.item_bayes, expected, rtol=1e-12)
    assert not np.allclose(f.item_bayes, cat.bayes_rating, rtol=1e-9, atol=0)


def test_scalers_and_item_features(small_data, split):
    f = build_features(small_data.catalogue, split.train, small_data.ratings.n_users)
    active = f.user_stats.count > 0
    np.testing.assert_allclose(f.user_x[active].mean(axis=0), 0, atol=1e-9)
    std = f.user_x[active].std(axis=0)
    assert np.all((np.abs(std - 1) < 1e-9) | (std < 1e-12))
    assert f.item_x.shape == (small_data.catalogue.n_items, len(f.item_feature_names))
    assert np.isfinite(f.item_x).all()
    np.testing.assert_allclose(f.item_x.mean(axis=0), 0, atol=1e-9)
    names = f.item_feature_names
    assert names[:small_data.catalogue.n_genres] == [f"genre:{g}" for g in f.genres]
    for n in ("bayes_rating", "log_members", "log_episodes", "start_year", "type:TV"):
        assert n in names
    plain = build_features(small_data.catalogue, split.train, small_data.ratings.n_users,
                           item_attributes=False)
    assert plain.item_x.shape[1] == small_data.catalogue.n_genres


def test_user_without_train_ratings_gets_the_fallback(small_data, split):
    n_users = small_data.ratings.n_users + 1  # one extra user with no ratings
    for w in MODES:
        f = build_features(small_data.catalogue, split.train, n_users, weighting=w)
        raw = f.user_stats.rows([n_users - 1], scaled=False)[0]
        assert raw[-1] == pytest.approx(f.user_stats.global_mean) and raw[-2] == 0
        assert np.all(raw[:-2] == (f.user_stats.global_mean if w == "rating" else 0.0))


@pytest.mark.parametrize("weighting", MODES)
def test_new_user_row(small_data, split, weighting):
    f = build_features(small_data.catalogue, split.train, small_data.ratings.n_users,
                       weighting=weighting)
    g = f.genres
    row = f.new_user_row({g[0]: 5, g[1]: 1}, scale=(1, 5))
    assert row.shape == (1, len(g) + 2)
    raw = row[0] * f.user_std + f.user_mean
    # Rating genres says which anime one likes, not how generously one rates: the average.
    mean = f.user_stats.global_mean
    assert raw[-1] == pytest.approx(mean)
    assert row[0, 2] == 0  # an unrated genre: the average user's value
    if weighting in ("rating", "centered"):
        assert raw[0] == pytest.approx(10 if weighting == "rating" else 10 - mean)
        assert raw[1] == pytest.approx(1 if weighting == "rating" else 1 - mean)
    else:
        # From the average user's share of the genre up to 1 (top) or down to 0 (bottom).
        assert raw[0] == pytest.approx(1.0) and raw[1] == pytest.approx(0.0, abs=1e-12)
    # A liked genre scores above a disliked one in the same column.
    like = f.new_user_row({g[0]: 10})[0, 0]
    dislike = f.new_user_row({g[0]: 1, g[1]: 10})[0, 0]
    assert like > dislike
    with pytest.raises(DataError, match="valid genres are"):
        f.new_user_row({"Hentai": 10})
    with pytest.raises(DataError, match="within"):
        f.new_user_row({g[0]: 11})
    with pytest.raises(DataError):
        f.new_user_row({g[0]: 3}, scale=(5, 5))
    # On a star model the genre ratings land on the data's own scale, 1..5.
    stars = f.cold_start.row({g[0]: 5, g[1]: 1}, scale=(1, 5), rating_range=(1, 5))
    raw = stars[0] * f.user_std + f.user_mean
    if weighting in ("rating", "centered"):
        assert raw[0] == pytest.approx(5 if weighting == "rating" else 5 - mean)
        assert raw[1] == pytest.approx(1 if weighting == "rating" else 1 - mean)
    else:  # shares do not depend on the rating scale
        np.testing.assert_allclose(stars, row)


def test_bad_arguments(small_data, split):
    with pytest.raises(ValueError, match="weighting"):
        build_features(small_data.catalogue, split.train, small_data.ratings.n_users,
                       weighting="mean")
    with pytest.raises(ValueError, match="train.users"):
        build_features(small_data.catalogue, split.train, 2)
    with pytest.raises(ValueError, match="both"):
        build_features(small_data.catalogue, split.train,
                       small_data.ratings.n_users).user_stats.rows([0], items=[0])
