"""Rating biases: the closed-form fit against a direct least-squares solve, the leave-one-out
offsets against a naive recomputation, and how the model uses them."""

import numpy as np
import pytest

from anirec.model import TwoTower
from anirec.model.biases import fit_biases, leave_one_out_base
from anirec.model.bounds import bend


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
    raw = model.biases_.mean + model.biases_.user[users] + model.biases_.item[items] + 4.5 * cos
    want = bend(raw, 1, 10, model.knees_)  # the scale's ends bent, not clipped (test_bounds)
    np.testing.assert_allclose(model.predict(user_x[users], item_x[items], users, items), want)
    # An unknown user (no row): only the item's bias.
    unknown = model.score_to_rating(cos[:5], None, items[:5])
    np.testing.assert_allclose(unknown, bend(model.biases_.mean + model.biases_.item[items[:5]]
                                             + 4.5 * cos[:5], 1, 10, model.knees_))
    # A model without biases, and a ranking model, predict as before.
    assert TwoTower((8, 4), epochs=1, biases=False).fit(
        (users, items, ratings), user_x, item_x).biases_ is None
    assert TwoTower((8, 4), epochs=1, objective="ranking").fit(
        (users, items, ratings), user_x, item_x).biases_ is None


def _whole_array_fit(users, items, ratings, n_users, n_items, reg, iterations=10):
    """The fit in whole-array passes of ``np.bincount`` over float64 copies."""
    ratings = np.asarray(ratings, dtype=np.float64)
    mean = float(ratings.mean())
    user_count = np.bincount(users, minlength=n_users) + reg
    item_count = np.bincount(items, minlength=n_items) + reg
    user_bias, item_bias = np.zeros(n_users), np.zeros(n_items)
    residual = ratings - mean
    for _ in range(iterations):
        user_bias = np.bincount(users, residual - item_bias[items], n_users) / user_count
        item_bias = np.bincount(items, residual - user_bias[users], n_items) / item_count
    from_user = ratings - mean - item_bias[items]
    from_item = ratings - mean - user_bias[users]
    user_n = np.bincount(users, minlength=n_users).astype(np.float64)
    item_n = np.bincount(items, minlength=n_items).astype(np.float64)
    user_loo = ((np.bincount(users, from_user, n_users)[users] - from_user)
                / (user_n[users] - 1.0 + reg))
    item_loo = ((np.bincount(items, from_item, n_items)[items] - from_item)
                / (item_n[items] - 1.0 + reg))
    base = mean + user_loo + item_loo
    return mean, user_bias, item_bias, base


@pytest.mark.parametrize("chunk", [7, 64, 1 << 18])
@pytest.mark.parametrize("index,values", [(np.int32, np.float32), (np.int64, np.float64),
                                          (np.int32, np.float64)])
def test_chunked_fit_is_the_whole_array_fit_bit_for_bit(monkeypatch, chunk, index, values):
    """Chunk by chunk, from int32 rows and float32 ratings or not: the float64 arithmetic
    of one whole-array pass, bit for bit."""
    from anirec.model import _chunked

    monkeypatch.setattr(_chunked, "CHUNK", chunk)
    users, items, ratings, n_users, n_items = _ratings(2, n_users=30, n_items=20, n=1000)
    ratings = (ratings + np.random.default_rng(2).random(1000)).astype(np.float32)
    mean, user_bias, item_bias, base = _whole_array_fit(users, items, ratings, n_users,
                                                        n_items, reg=3.0)
    users, items, ratings = users.astype(index), items.astype(index), ratings.astype(values)
    biases = fit_biases(users, items, ratings, n_users, n_items, reg=3.0)
    assert biases.mean == mean
    np.testing.assert_array_equal(biases.user, user_bias)
    np.testing.assert_array_equal(biases.item, item_bias)
    np.testing.assert_array_equal(leave_one_out_base(biases, users, items, ratings, reg=3.0),
                                  base)
