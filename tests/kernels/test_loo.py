"""The leave-one-out formulas (anirec.loo) against a recomputation from scratch without the
row, and every implementation of them (data layer, NumPy kernels, compiled kernels) against
the formulas."""

from __future__ import annotations

import numpy as np
import pytest

import anirec
from anirec import kernels as K
from anirec import loo
from anirec.data import build_features, split_ratings
from anirec.data.split import Triplets

from .kernel_helpers import HAS_CYTHON, make_item_loo, make_loo

WEIGHTINGS = list(loo.USER_MODES)
BACKENDS = ["numpy", "cython"] if HAS_CYTHON else ["numpy"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from anirec.data import generate_synthetic, load_mal
    from anirec.data.synthetic import write_tables

    synthetic = generate_synthetic(n_users=150, n_anime=200, n_ratings=2500, seed=4)
    return load_mal(*write_tables(synthetic, tmp_path_factory.mktemp("loo")))


@pytest.fixture(scope="module")
def train(data):
    return split_ratings(data.ratings, seed=0).train


def _examples(train: Triplets, count: int):
    """Training examples whose user and item each keep at least one other rating, so no
    global fallback (which moves when a rating leaves the training set) is involved."""
    users = np.bincount(train.users)[train.users]
    items = np.bincount(train.items)[train.items]
    eligible = np.flatnonzero((users >= 2) & (items >= 2))
    return np.random.default_rng(0).choice(eligible, count, replace=False)


@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_leaving_one_out_equals_training_without_the_row(data, train, weighting):
    n_users = data.ratings.n_users
    full = build_features(data.catalogue, train, n_users, weighting=weighting)
    for k in _examples(train, 12):
        u, i, r = train.users[k], train.items[k], train.ratings[k]
        without = build_features(data.catalogue, train.subset(np.arange(len(train)) != k),
                                 n_users, weighting=weighting)
        np.testing.assert_allclose(full.user_stats.rows([u], [i], [r], scaled=False),
                                   without.user_stats.rows([u], scaled=False), rtol=1e-12)
        np.testing.assert_allclose(full.item_stats.rows([i], [r], scaled=False),
                                   without.item_stats.rows([i], scaled=False), rtol=1e-12)


def test_user_rows_by_hand():
    # One user, two genres, three rated anime: (genres, rating) = ({0}, 8), ({0, 1}, 6), ({1}, 3).
    genres = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    ratings = np.array([8.0, 6.0, 3.0])
    num = (ratings[:, None] * genres).sum(axis=0)[None]
    den = genres.sum(axis=0)[None]
    total, count = np.array([17.0]), np.array([3.0])
    # Leaving out anime 2 (rating 3): genre 0 averages (8 + 6) / 2, genre 1 holds only the 6.
    row = loo.user_rows(num, den, total, count, genres, None, 0, 5.0, [0], [2], [3.0])
    np.testing.assert_allclose(row, [[7.0, 6.0, np.log1p(2), 7.0]])
    centered = loo.user_rows(num, den, total, count, genres, None, 1, 5.0, [0], [2], [3.0])
    np.testing.assert_allclose(centered, [[0.0, -1.0, np.log1p(2), 7.0]])
    # Leaving out anime 0: genre 0 keeps the 6 only; nothing left at all gives the fallbacks.
    row = loo.user_rows(num, den, total, count, genres, None, 0, 5.0, [0], [0], [8.0])
    np.testing.assert_allclose(row, [[6.0, 4.5, np.log1p(2), 4.5]])
    single = loo.user_rows([[4.0, 0.0]], [[1.0, 0.0]], [4.0], [1.0], genres[:1], None, 0, 5.0,
                           [0], [0], [4.0])
    np.testing.assert_allclose(single, [[5.0, 5.0, 0.0, 5.0]])
    # "bayesian": genre shares weighted by the anime's weight, without the left-out anime.
    weight = np.array([2.0, 1.0, 4.0])
    num_b = (weight[:, None] * genres).sum(axis=0)[None]
    den_b = np.full((1, 2), weight.sum())
    row = loo.user_rows(num_b, den_b, total, count, genres, weight, 2, 5.0, [0], [1], [6.0])
    np.testing.assert_allclose(row, [[2 / 6, 4 / 6, np.log1p(2), 5.5]])


def test_item_rows_by_hand():
    # Item 0 has a public score (fixed Bayesian average 7.5), item 1 falls back on its ratings.
    rating_sum, rating_count = np.array([15.0, 12.0]), np.array([2.0, 3.0])
    prior_num, prior_den = np.array([75.0, 60.0]), np.array([10.0, 10.0])
    from_ratings = np.array([0.0, 1.0])
    args = (rating_sum, rating_count, prior_num, prior_den, from_ratings, 6.0)
    np.testing.assert_allclose(loo.item_rows(*args, [0, 1]),
                               [[7.5, 7.5, np.log1p(2)], [72 / 13, 4.0, np.log1p(3)]])
    # Leaving out a 9 of item 0 and a 2 of item 1.
    np.testing.assert_allclose(loo.item_rows(*args, [0, 1], [9.0, 2.0]),
                               [[7.5, 6.0, np.log1p(1)], [70 / 12, 5.0, np.log1p(2)]])
    # The last rating of an item: its mean falls back on the global mean.
    np.testing.assert_allclose(loo.item_rows([9.0], [1.0], [75.0], [10.0], [1.0], 6.0, [0],
                                             [9.0]), [[7.5, 6.0, 0.0]])


def test_empty_is_one_threshold_everywhere():
    from anirec._kernels import _numpy

    assert _numpy.LOO_MODES is loo.USER_MODES
    if HAS_CYTHON:
        from anirec._kernels import _ops

        assert _ops.LOO_EMPTY == loo.EMPTY
    # A weight sum that cancels to dust counts as empty in every implementation.
    dust = loo.EMPTY / 2
    num = np.array([[1.0, 1.0 + dust]])
    den = np.array([[1.0, 1.0 + dust]])
    stats = K.LeaveOneOutStats(num, den, np.array([9.0]), np.array([2.0]),
                               np.array([[1.0, 1.0]]), np.array([1.0]), 2, 6.0,
                               np.zeros(4), np.ones(4))
    want = loo.user_rows(*stats[:8], [0], [0], [9.0])
    assert want[0, 0] == 0.0 and want[0, 1] == 0.0
    for backend in BACKENDS:
        with anirec.use_backend(backend):
            got = K.user_rows_loo(stats, np.array([0]), np.array([0]), np.array([9.0]))
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", [0, 1, 2])
def test_user_rows_loo_kernels_follow_the_formula(backend, dtype, mode):
    stats, users, items, ratings = make_loo(np.random.default_rng(mode), dtype, mode=mode)
    raw = loo.user_rows(*stats[:8], users, items, ratings)
    want = (raw.astype(dtype) - stats.mean) / stats.std
    with anirec.use_backend(backend):
        got = K.user_rows_loo(stats, users, items, ratings)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_item_rows_loo_kernels_follow_the_formula(backend, dtype):
    rng = np.random.default_rng(2)
    items = rng.integers(0, 9, 40).astype(np.int64)
    ratings = rng.integers(1, 11, 40).astype(dtype)
    item_x = rng.standard_normal((9, 6)).astype(dtype)
    stats = make_item_loo(rng, dtype, items, ratings, 9, 6)
    with anirec.use_backend(backend):
        got = K.item_rows_loo(stats, item_x, items, ratings)
    raw = loo.item_rows(*stats[:6], items, ratings)
    want = item_x[items].copy()
    want[:, stats.columns] = (raw.astype(dtype) - stats.mean) / stats.std
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    other = np.setdiff1d(np.arange(6), stats.columns)
    np.testing.assert_array_equal(got[:, other], item_x[items][:, other])


def test_data_layer_full_rows_are_the_formula_without_leaving_out(data, train):
    f = build_features(data.catalogue, train, data.ratings.n_users)
    stats = f.item_stats
    scaled = (loo.item_rows(stats.rating_sum, stats.rating_count, stats.prior_num,
                            stats.prior_den, stats.from_ratings, stats.global_mean,
                            np.arange(data.catalogue.n_items)) - stats.mean) / stats.std
    np.testing.assert_allclose(f.item_x[:, stats.columns], scaled, rtol=1e-12, atol=1e-12)
    assert [f.item_feature_names[c] for c in stats.columns] == list(loo.ITEM_COLUMNS)
