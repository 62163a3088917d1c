"""Predictions kept on the scale by a bend near its ends: the formula against hand-worked
values, the properties the bend promises, the fit of the knees, and a model that uses them."""

import numpy as np
import pytest

from anirec import TwoTower
from anirec.errors import ModelFormatError
from anirec.model.bounds import KNEE_GRID, bend, fit_knees

from ..conftest import planted


def test_hand_worked_values():
    # Scale 1..10, top knee 1, bottom knee 0.5: identity down to 9 and up from 1.5;
    # 10 - 1 / (x - 10 + 2) above 9, 1 + 0.25 / (1 + 1 - x) below 1.5.
    raw = [-5.0, 1.0, 1.5, 5.0, 9.0, 10.0, 11.0, 100.0]
    want = [1 + 0.25 / 7, 1.25, 1.5, 5.0, 9.0, 9.5, 10 - 1 / 3, 10 - 1 / 92]
    np.testing.assert_allclose(bend(raw, 1, 10, (0.5, 1.0)), want, rtol=1e-15)
    np.testing.assert_array_equal(bend(raw, 1, 10), np.clip(raw, 1, 10))  # knees 0: the clip


def test_increasing_continuous_and_never_on_an_end():
    x = np.linspace(-20, 30, 200_001)
    y = bend(x, 0.5, 5, (0.3, 0.7))
    assert (np.diff(y) > 0).all()                     # strictly: order kept, no pile
    assert ((y > 0.5) & (y < 5)).all()
    for knee in (0.5 + 0.3, 5 - 0.7):                 # C1: slope 1 on both sides of a knee
        h = 1e-7
        left, middle, right = bend([knee - h, knee, knee + h], 0.5, 5, (0.3, 0.7))
        assert (middle - left) / h == pytest.approx(1, abs=1e-6)
        assert (right - middle) / h == pytest.approx(1, abs=1e-5)
    inside = (x >= 0.8) & (x <= 4.3)
    np.testing.assert_array_equal(y[inside], x[inside])


def _naive_top_knee(raw, ratings, low, high):
    """The top knee by a plain loop over the grid, with the bend written per value."""
    best, best_error = None, np.inf
    for c in KNEE_GRID * (high - low):
        error = 0.0
        for x, r in zip(raw, ratings):
            if c > 0 and x > high - c:
                y = high - c * c / (x - high + 2 * c)
            else:
                y = min(max(x, low), high)
            error += (y - r) ** 2
        if error < best_error:
            best, best_error = c, error
    return best


def test_knees_fit_saturating_ratings():
    rng = np.random.default_rng(3)
    raw = rng.uniform(5, 11.5, 3000)
    # Ratings that cannot pass 10: their mean bends below the raw prediction near the top.
    ratings = np.clip(np.round(raw + rng.normal(0, 1.0, raw.shape[0])), 1, 10)
    low_knee, top_knee = fit_knees(raw, ratings, 1, 10)
    assert top_knee == pytest.approx(_naive_top_knee(raw, ratings, 1, 10))
    assert top_knee > 0.1
    assert low_knee == 0.0  # nothing near the bottom: the clip, the grid's first value
    assert np.mean((bend(raw, 1, 10, (low_knee, top_knee)) - ratings) ** 2) < \
        np.mean((np.clip(raw, 1, 10) - ratings) ** 2)


def test_a_model_with_biases_never_predicts_the_top_exactly(each_backend, tmp_path):
    users, items, ratings, user_x, item_x = planted(n_examples=6000)
    ratings = np.clip(ratings + 3.5, 1, 10)  # many ratings at the top: raw predictions pass it
    model = TwoTower((16, 8), epochs=3, objective="rating", seed=0)
    model.fit((users, items, ratings), user_x, item_x)
    low, top = model.knees_
    assert top > 0
    predicted = model.predict(user_x[users], item_x[items], users, items)
    clipped = np.clip(model._unbounded_rating(
        np.einsum("ij,ij->i", model.user_embeddings(user_x[users], users),
                  model.item_embeddings(item_x[items], items)), users, items), 1, 10)
    assert (clipped == 10).mean() > 0.05      # what the clip did
    assert (predicted < 10).all() and (predicted >= 1).all()
    model.save(tmp_path / "m.anirec")
    loaded = TwoTower.load(tmp_path / "m.anirec")
    assert loaded.knees_ == model.knees_
    np.testing.assert_array_equal(loaded.predict(user_x[users], item_x[items], users, items),
                                  predicted)


def test_saved_knees_are_checked():
    users, items, ratings, user_x, item_x = planted(n_examples=1000)
    model = TwoTower((8,), epochs=1, objective="rating", seed=0)
    header, arrays = model.fit((users, items, ratings), user_x, item_x).to_state()
    del header["knees"]  # a file from before the knees: the clip
    assert TwoTower.from_state(header, arrays).knees_ == (0.0, 0.0)
    for bad in ([1.0], [0.0, -1.0], [0.0, 5.0], ["a", 0.0], "0, 1"):
        header["knees"] = bad
        with pytest.raises(ModelFormatError, match="header field 'knees'"):
            TwoTower.from_state(header, arrays)
