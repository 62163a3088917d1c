"""Hostile arguments to the public API: strict types, contradictions refused, divergence
caught (also when no weight is NaN), a diverged model neither used nor saved."""

import json
import math
import re
import tempfile

import numpy as np
import pytest

from anirec import DataError, DivergenceError, NotFittedError, Recommender, TwoTower
from anirec.data import generate_synthetic, load_mal
from anirec.data.synthetic import write_tables

from ..conftest import planted as shared_planted


def planted(seed=0, n_users=200, n_items=150, n_examples=4000):
    """The shared planted problem, as ``((users, items, ratings), user_x, item_x)``."""
    users, items, ratings, user_x, item_x = shared_planted(seed, n_users, n_items, n_examples)
    return (users, items, ratings), user_x, item_x


@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.fixture(scope="module")
def mal():
    synthetic = generate_synthetic(150, 80, 3000, seed=3)
    with tempfile.TemporaryDirectory() as tmp:
        return load_mal(*write_tables(synthetic, tmp))


# ---------------------------------------------------------------------------------------------
# Divergence


@pytest.mark.parametrize("objective", ["rating", "hybrid"])
def test_a_huge_learning_rate_diverges_and_leaves_nothing_to_save(each_backend, data, tmp_path,
                                                                 objective):
    # lr=1e6 keeps every weight finite: the model just never beats its rating biases alone.
    model = TwoTower(layers=(32, 16), epochs=3, lr=1e6, seed=0, objective=objective)
    with pytest.raises(DivergenceError, match="no better than the rating biases alone.*"
                                              "lr=1e\\+06"):
        model.fit(*data)
    with pytest.raises(DivergenceError, match="diverged in its last fit"):
        model.save(tmp_path / "diverged.anirec")
    with pytest.raises(DivergenceError):
        model.predict(data[1][:2], data[2][:2])
    assert list(tmp_path.iterdir()) == []


def test_divergence_without_validation_uses_the_training_loss(each_backend, data):
    model = TwoTower(layers=(32, 16), epochs=3, lr=1e6, seed=0, validation_fraction=0.0)
    with pytest.raises(DivergenceError, match="training MSE"):
        model.fit(*data)


@pytest.mark.parametrize("prior", [True, False])
def test_a_ranking_model_diverges_when_it_never_beats_a_constant_cosine(each_backend, tmp_path,
                                                                        prior):
    # lr=1e6 keeps every weight and loss finite: the ranking loss just never gets below that
    # of ranking by the popularity prior alone (scoring every item alike without it).
    data = planted(n_examples=5000)
    model = TwoTower(layers=(16, 8), epochs=3, lr=1e6, seed=0, objective="ranking",
                     positive_threshold=7, popularity_prior=prior)
    constant = "popularity alone" if prior else "scoring every item alike"
    with pytest.raises(DivergenceError, match=f"validation ranking loss.*no better than.*"
                                              f"{constant}.*lr=1e\\+06") as caught:
        model.fit(*data)
    # The planted items are drawn uniformly: either constant's loss is about log(n_items).
    baseline = float(re.search(r"\(([0-9.]+); lr=", str(caught.value))[1])
    assert baseline == pytest.approx(math.log(data[2].shape[0]), abs=0.05)
    with pytest.raises(DivergenceError, match="diverged in its last fit"):
        model.save(tmp_path / "diverged.anirec")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("prior", [True, False])
def test_a_sane_ranking_model_beats_the_constant_cosine_and_is_kept(each_backend, prior):
    data = planted(n_examples=5000)
    model = TwoTower(layers=(16, 8), epochs=3, lr=1e-2, seed=0, objective="ranking",
                     positive_threshold=7, popularity_prior=prior).fit(*data)
    # The planted items are drawn uniformly: a constant cosine's loss is about log(n_items).
    best = min(entry["val_rank"] for entry in model.history_)
    assert best < math.log(data[2].shape[0]) - 0.2
    model.predict(data[1][:2], data[2][:2])


def test_an_undertrained_model_is_not_called_diverged(each_backend, data):
    # One epoch at a tiny rate: worse than the mean, but the weights did not explode.
    model = TwoTower(layers=(32, 16), epochs=1, lr=1e-5, seed=0).fit(*data)
    ratings = data[0][2]
    assert model.history_[0]["val_rmse"] > np.std(ratings)  # worse than the mean rating
    model.predict(data[1][:2], data[2][:2])


def test_a_recommender_whose_model_diverged_cannot_be_saved(mal, tmp_path):
    rec = Recommender(layers=(8, 4), epochs=2, lr=1e6, seed=0, objective="rating")
    with pytest.raises(DivergenceError):
        rec.fit(mal)
    with pytest.raises(NotFittedError):
        rec.save(tmp_path / "rec.anirec")
    assert list(tmp_path.iterdir()) == []


def test_a_refit_that_diverges_drops_the_old_weights(each_backend, data, tmp_path):
    model = TwoTower(layers=(32, 16), epochs=2, lr=3e-3, seed=0).fit(*data)
    model.lr = 1e6
    with pytest.raises(DivergenceError):
        model.fit(*data)
    with pytest.raises(DivergenceError):
        model.save(tmp_path / "m.anirec")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# TwoTower arguments


@pytest.mark.parametrize("options,error,message", [
    ({"layers": "12"}, TypeError, "layers must be a sequence of integers"),
    ({"layers": (16, 1.5)}, TypeError, r"layers\[1\] must be an integer"),
    ({"layers": ()}, ValueError, "layers must not be empty"),
    ({"layers": (2**40,)}, ValueError, r"layers\[0\] must be an integer in"),
    ({"patience": 1.7}, TypeError, "patience must be an integer"),
    ({"patience": 0}, ValueError, "patience must be an integer in"),
    ({"epochs": 2.0}, TypeError, "epochs must be an integer"),
    ({"batch_size": "256"}, TypeError, "batch_size must be an integer"),
    ({"batch_size": 2**63}, ValueError, "batch_size must be an integer in"),
    ({"seed": "0"}, TypeError, "seed must be an integer"),
    ({"seed": -1}, ValueError, "seed must be an integer in"),
    ({"lr": -1.0}, ValueError, "lr must be a finite number"),
    ({"lr": "0.1"}, TypeError, "lr must be a number"),
    ({"momentum": "0.5"}, TypeError, "momentum must be a number"),
    ({"rating_range": (1,)}, ValueError, "rating_range must be a pair"),
    ({"rating_range": "ab"}, TypeError, "rating_range must be a pair"),
    ({"rating_range": (10, 1)}, ValueError, "low < high"),
    ({"temperature": 1e-300}, ValueError, "temperature must be a finite number in"),
    ({"temperature": True}, TypeError, "temperature must be a number"),
    ({"objective": "rating", "ranking_weight": 5}, ValueError,
     "ranking_weight=5 contradicts objective='rating'"),
    ({"validation_fraction": 1.0}, ValueError, "validation_fraction must be"),
    ({"positive_threshold": "8"}, TypeError, "positive_threshold must be a number"),
])
def test_two_tower_arguments_are_strict(options, error, message):
    with pytest.raises(error, match=message):
        TwoTower(**options)


def test_too_many_parameters_are_refused_before_allocating(data):
    model = TwoTower(layers=(2**20, 2**20), epochs=1)
    with pytest.raises(ValueError, match="parameters, more than"):
        model.fit(*data)


def test_a_validation_fraction_leaving_no_training_rows(data):
    train = tuple(array[:3] for array in data[0])
    with pytest.raises(DataError, match="held out all 3 training examples"):
        TwoTower(validation_fraction=0.99, seed=1).fit(train, data[1], data[2])


def test_an_empty_validation_set_leaves_no_nan_in_the_history(each_backend, data):
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    model = TwoTower(layers=(8,), epochs=1, seed=0).fit(*data, validation=empty)
    json.dumps(model.history_, allow_nan=False)
    assert model.best_epoch_ is None


@pytest.mark.parametrize("objective", ["hybrid", "ranking", "rating"])
def test_seed_none_trains(each_backend, data, objective):
    model = TwoTower(layers=(8,), epochs=1, seed=None, objective=objective).fit(*data)
    assert np.isfinite(model.params_).all()


# ---------------------------------------------------------------------------------------------
# Recommender arguments


@pytest.mark.parametrize("options,error,message", [
    ({"seed": None}, TypeError, "seed must be an integer"),
    ({"seed": 1.5}, TypeError, "seed must be an integer"),
    ({"valid": "0.1"}, TypeError, "valid must be a number"),
    ({"valid": 0.6, "test": 0.5}, ValueError, "valid \\+ test must leave ratings"),
    ({"min_ratings": 2.5}, TypeError, "min_ratings must be an integer"),
    ({"weighting": "loud"}, ValueError, "weighting must be"),
    ({"layers": "12"}, TypeError, "layers must be a sequence"),
    ({"objective": "rating", "ranking_weight": 5}, ValueError, "contradicts"),
])
def test_recommender_arguments_are_strict(options, error, message):
    with pytest.raises(error, match=message):
        Recommender(**options)


@pytest.fixture(scope="module")
def fitted(mal):
    return Recommender(layers=(8, 4), epochs=2, seed=0).fit(mal)


@pytest.mark.parametrize("n,error", [(1.9, TypeError), ("3", TypeError), (0, ValueError),
                                     (True, TypeError), (None, TypeError)])
def test_n_is_strict(fitted, n, error):
    user = fitted.user_ids[0]
    with pytest.raises(error, match="n must be an integer"):
        fitted.recommend(user, n=n)
    with pytest.raises(error, match="n must be an integer"):
        fitted.similar(fitted.anime_ids[0], n=n)


def test_a_huge_n_is_capped_at_the_catalogue(fitted):
    n_items = fitted.anime_ids.shape[0]
    ids, scores = fitted.recommend_arrays(fitted.user_ids[:2], n=10**12, exclude_rated=False)
    assert ids.shape == (2, n_items)
    frame = fitted.similar(fitted.anime_ids[0], n=2**63 - 1)
    assert len(frame) == n_items - 1
    table = fitted.evaluate(k=10**9, baselines=False)
    assert math.isfinite(table.loc["two-tower", "rmse"])


def test_train_with_a_huge_learning_rate_exits_2_and_writes_nothing(tmp_path, capsys):
    from anirec.cli import main

    assert main(["generate", "--out", str(tmp_path), "--users", "300", "--anime", "200",
                 "--ratings", "15000", "--seed", "1"]) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    capsys.readouterr()
    code = main(["train", "--anime", str(tmp_path / "anime-dataset-2023.csv"), "--scores",
                 str(tmp_path / "users-score-2023.csv"), "--out", str(tmp_path / "m.anirec"),
                 "--lr", "1e6", "--epochs", "3", "--layers", "16,8"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("anirec train: error: training diverged")
    assert "Traceback" not in "\n".join(err)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("shift,error,message", [
    (0.999, DataError, r"train users holds \d+\.999 at row 0: row indices must be whole"),
    (np.nan, DataError, "train users holds nan at row 0"),
])
def test_fractional_row_indices_are_refused(data, shift, error, message):
    (users, items, ratings), user_x, item_x = data
    with pytest.raises(error, match=message):
        TwoTower(epochs=1).fit((users + shift, items, ratings), user_x, item_x)


def test_whole_float_row_indices_still_work(data):
    (users, items, ratings), user_x, item_x = data
    TwoTower(layers=(4,), epochs=1).fit((users.astype(float), items, ratings), user_x, item_x)


def test_dtype_none_is_refused():
    with pytest.raises(ValueError, match="dtype must be one of"):
        TwoTower(dtype=None)
