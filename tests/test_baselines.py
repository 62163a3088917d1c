"""Each baseline against its formula on a small hand example; the bias model against a direct
regularised least-squares solve.

A weaker baseline only makes "the model beats the baselines" easier, so the report's comparison
cannot catch a broken baseline: these tests do.
"""

import numpy as np
import pytest

from anirec.baselines import BayesianAverage, BiasModel, GlobalMean, Popularity

# Three users, four anime (anime 3 is never rated).
USERS = np.array([0, 0, 0, 1, 1, 2], dtype=np.int64)
ITEMS = np.array([0, 1, 2, 0, 2, 0], dtype=np.int64)
RATINGS = np.array([9, 7, 5, 8, 4, 2], dtype=np.float64)  # mean 35/6, median 6


def test_global_mean():
    model = GlobalMean.fit(USERS, ITEMS, RATINGS, 3, 4)
    assert model.mean == pytest.approx(35 / 6, rel=1e-15)
    np.testing.assert_allclose(model.predict([0, 2, 1], [3, 1, 0]), [35 / 6] * 3, rtol=1e-15)
    assert model.item_scores is None  # predicts only; never ranks


def test_popularity_counts_training_ratings():
    model = Popularity.fit(USERS, ITEMS, RATINGS, 3, 4)
    np.testing.assert_array_equal(model.item_scores, [3.0, 1.0, 2.0, 0.0])
    assert model.predict(USERS, ITEMS) is None  # ranks only


def test_bayesian_average_predicts_its_item_scores():
    scores = np.array([7.5, 6.0, 8.25, 5.0])
    model = BayesianAverage(scores)
    np.testing.assert_array_equal(model.predict([2, 2, 0], [3, 0, 2]), [5.0, 7.5, 8.25])
    np.testing.assert_array_equal(model.item_scores, scores)


def bias_least_squares(users, items, ratings, n_users, n_items, reg):
    """``argmin sum (r - mu - b_u - b_i)^2 + reg (|b_user|^2 + |b_item|^2)`` with ``mu`` the
    mean rating, solved directly as one augmented linear least-squares problem."""
    mu = ratings.mean()
    n = ratings.shape[0]
    A = np.zeros((n + n_users + n_items, n_users + n_items))
    A[np.arange(n), users] = 1.0
    A[np.arange(n), n_users + items] = 1.0
    A[n:, :] = np.sqrt(reg) * np.eye(n_users + n_items)
    y = np.concatenate([ratings - mu, np.zeros(n_users + n_items)])
    solution = np.linalg.lstsq(A, y, rcond=None)[0]
    return mu, solution[:n_users], solution[n_users:]


def test_bias_model_single_rating_by_hand():
    # One rating of 8 by user 0 of anime 1, reg 1, plus user 1 rating anime 0 a 6: mu = 7.
    # Converged: b_u0 = (1 - b_i1) / 2 and b_i1 = (1 - b_u0) / 2, so both are 1/3
    # (and symmetrically -1/3 for the 6).
    model = BiasModel.fit(np.array([0, 1]), np.array([1, 0]), np.array([8.0, 6.0]), 2, 2,
                          reg=1.0, iterations=60)
    np.testing.assert_allclose(model.user_bias, [1 / 3, -1 / 3], rtol=1e-12)
    np.testing.assert_allclose(model.item_scores, [-1 / 3, 1 / 3], rtol=1e-12)
    np.testing.assert_allclose(model.predict([0, 1], [1, 0]), [7 + 2 / 3, 7 - 2 / 3],
                               rtol=1e-12)


@pytest.mark.parametrize("reg", [0.5, 5.0])
def test_bias_model_converges_to_the_least_squares_solution(reg):
    rng = np.random.default_rng(0)
    n_users, n_items = 12, 9
    users = rng.integers(0, n_users, 80)
    items = rng.integers(0, n_items, 80)
    true_user, true_item = rng.normal(0, 1, n_users), rng.normal(0, 1.5, n_items)
    ratings = np.clip(np.round(6 + true_user[users] + true_item[items]
                               + rng.normal(0, 0.5, 80)), 1, 10)
    mu, user_bias, item_bias = bias_least_squares(users, items, ratings, n_users, n_items, reg)
    model = BiasModel.fit(users, items, ratings, n_users, n_items, reg=reg, iterations=300)
    assert model.mean == pytest.approx(mu, rel=1e-15)
    np.testing.assert_allclose(model.user_bias, user_bias, atol=1e-9)
    np.testing.assert_allclose(model.item_scores, item_bias, atol=1e-9)
    assert np.abs(item_bias).max() > 0.5  # the item biases matter in this example
    np.testing.assert_allclose(model.predict(users, items),
                               mu + user_bias[users] + item_bias[items], atol=1e-9)
    # The default number of iterations is close to the solution already.
    default = BiasModel.fit(users, items, ratings, n_users, n_items, reg=reg)
    np.testing.assert_allclose(default.predict(users, items), model.predict(users, items),
                               atol=0.05)


def test_bias_model_default_regularisation_is_five():
    # The documented default: reg = 5.
    rng = np.random.default_rng(1)
    users, items = rng.integers(0, 6, 40), rng.integers(0, 5, 40)
    ratings = rng.integers(1, 11, 40).astype(float)
    _, user_bias, item_bias = bias_least_squares(users, items, ratings, 6, 5, 5.0)
    model = BiasModel.fit(users, items, ratings, 6, 5, iterations=300)
    np.testing.assert_allclose(model.user_bias, user_bias, atol=1e-9)
    np.testing.assert_allclose(model.item_scores, item_bias, atol=1e-9)


def test_unrated_rows_get_zero_bias():
    model = BiasModel.fit(USERS, ITEMS, RATINGS, 4, 5, reg=2.0)
    assert model.user_bias[3] == 0.0 and model.item_scores[3] == 0.0
    assert model.item_scores[4] == 0.0
