"""One argument-checking rule for the public API and the kernels, the retrieval score in the
same units on any rating scale, no traceback from the environment, and a command that says
when the model it saves does worse than the baselines printed beside it."""

import math

import numpy as np
import pandas as pd
import pytest

import anirec
from anirec import DataError, Recommender, TwoTower, UnknownIdError
from anirec import kernels as K

from ..kernels.kernel_helpers import make_loo, make_problem, run_epoch
from ..conftest import run_cli
from .conftest import run_command

# ---------------------------------------------------------------------------------------------
# recommend_for_genres and the id arguments


@pytest.mark.parametrize("genres,error,message", [
    ("Action=9", TypeError, "genre_ratings must be a mapping of genre names to numbers"),
    (None, TypeError, "genre_ratings must be a mapping"),
    ([("Action", 9)], TypeError, "genre_ratings must be a mapping"),
    ({"Action": 3 + 4j}, TypeError, r"genre_ratings\['Action'\] must be a number"),
    ({"Action": "9"}, TypeError, r"genre_ratings\['Action'\] must be a number"),
    ({1: 9}, TypeError, "must have genre names"),
])
def test_genre_ratings_must_be_a_mapping_of_numbers(models, genres, error, message):
    rec, _ = models["hybrid"]
    with pytest.raises(error, match=message):
        rec.recommend_for_genres(genres)


@pytest.mark.parametrize("options,error,message", [
    ({"scale": (1,)}, ValueError, "scale must be a pair"),
    ({"scale": "1,10"}, TypeError, "scale must be a pair"),
    ({"n": 1.9}, TypeError, "n must be an integer, got 1.9"),
    ({"n": True}, TypeError, "n must be an integer"),
    ({"exclude": [np.nan]}, TypeError, "exclude must be integers, got nan"),
    ({"exclude": ["x"]}, TypeError, "exclude must be integers, got 'x'"),
])
def test_the_other_arguments_of_recommend_for_genres(models, options, error, message):
    rec, _ = models["hybrid"]
    with pytest.raises(error, match=message):
        rec.recommend_for_genres({rec.genres[0]: 9}, **options)


def test_an_exclusion_beyond_int64_excludes_nothing(models):
    rec, _ = models["hybrid"]
    plain = rec.recommend_for_genres({rec.genres[0]: 9}, n=5)
    beyond = rec.recommend_for_genres({rec.genres[0]: 9}, n=5, exclude=[2**70])
    pd.testing.assert_frame_equal(plain, beyond)


def test_a_model_without_genres_says_so(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user_id": rng.integers(1, 60, 1500), "anime_id":
                          rng.integers(1, 40, 1500), "rating": rng.integers(1, 11, 1500)})
    rec = Recommender(layers=(4,), epochs=1, embedding_dim=2).fit(anirec.load_ratings(frame))
    with pytest.raises(DataError, match="knows no genres.*without an anime file"):
        rec.recommend_for_genres({"Action": 9})


@pytest.mark.parametrize("call,error,message", [
    (lambda rec: rec.recommend(2**64), UnknownIdError,
     "unknown user id 18446744073709551616"),
    (lambda rec: rec.predict([rec.user_ids[0]], [2**64]), UnknownIdError,
     "unknown anime id 18446744073709551616"),
    (lambda rec: rec.recommend([[rec.user_ids[0], rec.user_ids[1]]]), ValueError,
     r"user_ids must be one id or a 1-D sequence of ids, got shape \(1, 2\)"),
    (lambda rec: rec.similar([[rec.anime_ids[0]]]), ValueError,
     r"anime_ids must be one id or a 1-D sequence"),
    (lambda rec: rec.recommend(True), UnknownIdError, "user id must be integers, got True"),
    (lambda rec: rec.evaluate(k=2.5), TypeError, "k must be an integer, got 2.5"),
])
def test_query_arguments_are_named(models, call, error, message):
    rec, _ = models["hybrid"]
    with pytest.raises(error, match=message):
        call(rec)


def test_the_planted_truth_broadcasts_its_ids_or_names_them():
    from anirec.data import generate_synthetic

    truth = generate_synthetic(50, 60, 500, seed=1).truth
    users, anime = truth.user_ids[:3], truth.anime_ids[:3]
    row = truth.expected_rating(users[0], anime)  # one user against three anime
    np.testing.assert_allclose(row, [truth.expected_rating(users[0], a) for a in anime])
    with pytest.raises(ValueError, match=r"must broadcast together, got shapes \(3,\) and "
                                         r"\(2,\)"):
        truth.expected_rating(users, anime[:2])
    missing = int(truth.user_ids.max()) + 1
    with pytest.raises(UnknownIdError, match=f"unknown user id {missing}"):
        truth.expected_rating(missing, anime[0])


@pytest.mark.parametrize("make,error,message", [
    (lambda: TwoTower(biases="yes"), TypeError, "biases must be True or False"),
    (lambda: TwoTower(popularity_prior="no"), TypeError, "popularity_prior must be True or"),
    (lambda: TwoTower(eps=0.0), ValueError, r"eps must be a finite number in \(0"),
    (lambda: TwoTower(rating_range=(1, 5, 10)), ValueError, "rating_range must be a pair"),
    (lambda: TwoTower(rating_range=(-1e308, 1e308)), ValueError, "finite width"),
    (lambda: TwoTower(objective="ranking", batch_size=1), ValueError,
     "batch_size=1 leaves the in-batch ranking loss"),
    (lambda: Recommender(refit="no"), TypeError, "refit must be True or False"),
    (lambda: Recommender(leave_one_out=1), TypeError, "leave_one_out must be True or False"),
    (lambda: Recommender(popularity_weight=1e300), ValueError,
     r"popularity_weight must be a finite number in \[0, 1000\]"),
])
def test_constructor_arguments_are_strict(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_a_tower_without_input_is_refused_by_name():
    rng = np.random.default_rng(0)
    train = (rng.integers(0, 20, 200), rng.integers(0, 15, 200),
             rng.integers(1, 11, 200).astype(float))
    with pytest.raises(ValueError, match="user_features has no columns and embedding_dim=0"):
        TwoTower(layers=(8,), epochs=1).fit(train, np.zeros((20, 0)),
                                            rng.standard_normal((15, 3)))


# ---------------------------------------------------------------------------------------------
# Kernel edge cases: one rule under both backends


def test_adam_eps_zero_is_refused_and_a_zero_gradient_moves_nothing(each_backend):
    param, grad = np.ones(4), np.zeros(4)
    m, v = np.zeros(4), np.zeros(4)
    with pytest.raises(ValueError, match="eps must be a positive finite number"):
        K.adam_step(param, grad, m, v, lr=0.1, step=1, eps=0.0)
    K.adam_step(param, grad, m, v, lr=0.1, step=1, eps=1e-300)
    np.testing.assert_array_equal(param, np.ones(4))


@pytest.mark.parametrize("step", [2**63, 2**63 - 1, 2**62 + 1])
def test_huge_counts_are_refused_alike_by_both_backends(each_backend, step):
    param, grad = np.ones(3), np.ones(3)
    with pytest.raises(ValueError, match="step must be at most"):
        K.adam_step(param, grad, np.zeros(3), np.zeros(3), lr=0.1, step=step)
    problem = make_problem(np.random.default_rng(0), np.float64)
    order = np.arange(problem["targets"].shape[0], dtype=np.int64)
    with pytest.raises(ValueError, match="step must be a non-negative integer of at most"):
        run_epoch(problem, order, lr=0.01, step=step)
    with pytest.raises(ValueError, match="batch_size must be at most"):
        run_epoch(problem, order, lr=0.01, batch_size=step)


@pytest.mark.parametrize("entry,index,name", [("targets", 3, "examples.targets"),
                                              ("ratings", 5, "examples.ratings"),
                                              ("user_x", (2, 1), r"user.blocks\[0\].x")])
def test_a_nan_example_is_refused_before_it_poisons_the_weights(each_backend, entry, index,
                                                                name):
    problem = make_problem(np.random.default_rng(1), np.float64,
                           loo_mode=0 if entry == "ratings" else None)
    problem[entry] = problem[entry].copy()
    problem[entry][index] = np.nan
    before = problem["params"].copy()
    order = np.arange(problem["targets"].shape[0], dtype=np.int64)
    with pytest.raises(ValueError, match=f"{name} holds nan"):
        run_epoch(problem, order, lr=0.01)
    np.testing.assert_array_equal(problem["params"], before)


@pytest.mark.parametrize("temperature", [1e-45, 1e-7, 0.0])
def test_a_temperature_that_overflows_the_logits_is_refused(each_backend, temperature):
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((4, 3)).astype(np.float32)
    Y /= np.linalg.norm(Y, axis=1, keepdims=True)
    with pytest.raises(ValueError, match="temperature must be a positive finite number"):
        K.inbatch_softmax(Y, Y.copy(), np.arange(4), np.ones(4, np.float32),
                          np.zeros(4, np.float32), temperature)


@pytest.mark.parametrize("mode", [1.0, True, "1"])
def test_a_leave_one_out_mode_must_be_an_integer(mode):
    stats, users, items, ratings = make_loo(np.random.default_rng(0), np.float64)
    with pytest.raises(TypeError, match="stats.mode must be an integer"):
        K.user_rows_loo(stats._replace(mode=mode), users, items, ratings)


@pytest.mark.parametrize("sizes", [(4, -2), (4,), (4, 2.5), (True, 2)])
def test_n_parameters_takes_positive_widths_only(sizes):
    with pytest.raises((TypeError, ValueError), match="user_sizes"):
        K.n_parameters(sizes, (3, 2))


# ---------------------------------------------------------------------------------------------
# The retrieval score in the same units on every rating scale


def test_the_ranking_does_not_depend_on_the_rating_units():
    from anirec.data import generate_synthetic

    scores = generate_synthetic(300, 120, 6000, seed=5).scores
    lists = {}
    for scale, factor in (((1, 10), 1.0), ((0.5, 5), 0.5), ((1000, 10000), 1000.0)):
        frame = scores[["user_id", "anime_id", "rating"]].assign(
            rating=scores["rating"].astype(float) * factor)
        rec = Recommender(layers=(16, 8), epochs=3, seed=0, embedding_dim=8).fit(
            anirec.load_ratings(frame, rating_scale=scale))
        assert rec._ranks_by_quality  # the term under test is in the score
        lists[scale] = rec.recommend_arrays(rec.user_ids, n=10)[0]
    np.testing.assert_array_equal(lists[(0.5, 5)], lists[(1, 10)])
    np.testing.assert_array_equal(lists[(1000, 10000)], lists[(1, 10)])


# ---------------------------------------------------------------------------------------------
# The environment: one line, whatever the command


def test_an_unknown_backend_is_one_line_not_a_traceback(tmp_path):
    done = run_command(["info", "--model", tmp_path / "m.anirec"], cwd=tmp_path,
                       env={"ANIREC_BACKEND": "bogus"})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == ("anirec info: error: the environment variable "
                                   "ANIREC_BACKEND is 'bogus': it must be one of cython, numpy "
                                   "(or unset)")


# ---------------------------------------------------------------------------------------------
# A saved model must beat the baselines printed beside it, or the command says it does not


def _report(rmse, ndcg):
    return pd.DataFrame({"rmse": [rmse, 1.6, 1.5, 1.2, math.nan],
                         "ndcg@10": [ndcg, math.nan, 0.30, 0.11, 0.26]},
                        index=["two-tower", "global mean", "Bayesian average",
                               "user + item bias", "popularity"])


@pytest.mark.parametrize("objective,rmse,ndcg,losses", [
    ("hybrid", 1.1, 0.35, []),
    ("hybrid", 1.3, 0.35, ["predicts worse than the user + item bias baseline"]),
    ("hybrid", 1.1, 0.29, ["ranks worse than the Bayesian average baseline"]),
    ("ranking", 9.9, 0.31, []),               # a ranking model is judged on ranking only
    ("ranking", 1.0, 0.09, ["ranks worse than the Bayesian average baseline"]),
    ("rating", 1.19, 0.01, []),               # and a rating model on its ratings only
    ("rating", 1.21, 0.99, ["predicts worse than the user + item bias baseline"]),
])
def test_the_baseline_rule(objective, rmse, ndcg, losses):
    from anirec.cli import _shortfalls

    found = _shortfalls(_report(rmse, ndcg), objective)
    assert len(found) == len(losses)
    for message, expected in zip(found, losses):
        assert expected in message


def test_train_warns_about_a_model_worse_than_a_baseline_and_strict_refuses_it(mal_files,
                                                                               tmp_path,
                                                                               capsys):
    # A learning rate far too small: the model stays near its random start.
    argv = ["train", "--anime", mal_files[0], "--scores", mal_files[1], "--objective",
            "rating", "--lr", "1e-9", "--epochs", "1", "--layers", "4", "--embedding-dim", "2"]
    status, out, err = run_cli(capsys, *argv, "--out", tmp_path / "m.anirec")
    assert status == 0 and (tmp_path / "m.anirec").exists()
    assert "warning: the model predicts worse than the user + item bias baseline" in err, err
    status, out, err = run_cli(capsys, *argv, "--out", tmp_path / "strict.anirec",
                               "--save-split", tmp_path / "sp", "--strict")
    assert status == 2 and "predicts worse than" in err and "nothing saved" in err, err
    assert not (tmp_path / "strict.anirec").exists() and not (tmp_path / "sp").exists()
    status, out, err = run_cli(capsys, *argv, "--out", tmp_path / "n.anirec", "--strict",
                               "--test", "0")
    assert status == 2 and "--strict" in err and "--test" in err
