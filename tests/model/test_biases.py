"""Rating biases: the closed-form fit against a direct least-squares solve, the leave-one-out
offsets against a naive recomputation, and how the model uses them."""

import numpy as np
import pytest

from anirec.model import TwoTower
from anirec.model.biases import fit_biases, leave_one_out_base


def _ratings(seed=0, n_users=7, n_items=9, n=40):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n)
    items = rng.integers(0, n_items, n)
    ratings = rng.integers(1, 11, n).astype(np.float64)
    return users, items, ratings, n_users, n_items


def test_fit_is_the_regularised_least_squares_solution():
    users, items, ratings, n_users, n_items = _ratings()
    reg = 3.0
    biases = fit_biases(users, items, ratings, n_users, n_items, reg=reg, iterations=500)
    # min |r - mu - b_u - b_i|^2 + reg (|b_u|^2 + |b_i|^2) with mu the mean, solved directly.
    design = np.zeros((len(ratings), n_users + n_items))
    design[np.arange(len(ratings)), users] = 1
    design[np.arange(len(ratings)), n_users + items] = 1
    augmented = np.vstack([design, np.sqrt(reg) * np.eye(n_users + n_items)])
    target = np.concatenate([ratings - ratings.mean(), np.zeros(n_users + n_items)])
    solution = np.linalg.lstsq(augmented, target, rcond=None)[0]
    assert biases.mean == pytest.approx(ratings.mean())
    np.testing.assert_allclose(biases.user, solution[:n_users], atol=1e-8)
    np.testing.assert_allclose(biases.item, solution[n_users:], atol=1e-8)


def test_leave_one_out_base_by_a_naive_loop():
    users, items, ratings, n_users, n_items = _ratings(1)
    reg = 5.0
    biases = fit_biases(users, items, ratings, n_users, n_items, reg=reg)
    got = leave_one_out_base(biases, users, items, ratings, reg=reg)
    for k in range(len(ratings)):
        others = np.arange(len(ratings)) != k
        mine = others & (users == users[k])
        user_bias = sum(ratings[j] - biases.mean - biases.item[items[j]]
                        for j in np.flatnonzero(mine)) / (mine.sum() + reg)
        theirs = others & (items == items[k])
        item_bias = sum(ratings[j] - biases.mean - biases.user[users[j]]
                        for j in np.flatnonzero(theirs)) / (theirs.sum() + reg)
        assert got[k] == pytest.approx(biases.mean + user_bias + item_bias, rel=1e-12)


def test_predictions_are_biases_plus_the_scaled_cosine(each_backend):
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 30, 600), rng.integers(0, 20, 600)
    ratings = np.clip(np.round(6 + 0.1 * users - 0.1 * items + rng.normal(0, 1, 600)), 1, 10)
    user_x, item_x = rng.normal(size=(30, 4)), rng.normal(size=(20, 3))
    model = TwoTower((8, 4), epochs=2, objective="rating", seed=0)
    model.fit((users, items, ratings), user_x, item_x)
    cos = np.einsum("ij,ij->i", model.user_embeddings(user_x[users]),
                    model.item_embeddings(item_x[items]))
    want = np.clip(model.biases_.mean + model.biases_.user[users] + model.biases_.item[items]
                   + 4.5 * cos, 1, 10)
    np.testing.assert_allclose(model.predict(user_x[users], item_x[items], users, items), want)
    # An unknown user (no row): only the item's bias.
    unknown = model.score_to_rating(cos[:5], None, items[:5])
    np.testing.assert_allclose(unknown, np.clip(model.biases_.mean + model.biases_.item[items[:5]]
                                                + 4.5 * cos[:5], 1, 10))
    # A model without biases, and a ranking model, predict as before.
    assert TwoTower((8, 4), epochs=1, biases=False).fit(
        (users, items, ratings), user_x, item_x).biases_ is None
    assert TwoTower((8, 4), epochs=1, objective="ranking").fit(
        (users, items, ratings), user_x, item_x).biases_ is None
