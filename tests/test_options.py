"""Every option away from its default, checked where it takes effect.

One table per owner: each option with a value other than its default and a check of what that
value changes, computed in the test from the inputs (the epoch's configuration and examples,
the initial weights, the learning rates, the split, the features, the retrieval scores). One
test iterates each table, for :class:`~anirec.TwoTower`, for :class:`~anirec.Recommender`
(which passes the model's options on) and for ``anirec train`` (whose flags are parsed into
them): an option dropped anywhere between the flag and the place it acts fails it. Every
option of :mod:`anirec.options` must have its row.
"""

import argparse
import inspect
import math
import re
from pathlib import Path

import numpy as np
import pytest

from anirec import Recommender, TwoTower, cli, kernels, options
from anirec.cli import main
from anirec.data import WEIGHTINGS, generate_synthetic, load_mal, split_ratings
from anirec.data.synthetic import write_tables

from .conftest import planted

# ---------------------------------------------------------------------------------------------
# The model's options

USERS, ITEMS, RATINGS, USER_X, ITEM_X = planted(seed=3, n_users=30, n_items=20, n_examples=600)
TRAIN = (USERS, ITEMS, RATINGS)
N = USERS.shape[0]
BASE = dict(layers=(8,), epochs=2, batch_size=64, seed=0)


def _model(**options) -> TwoTower:
    return TwoTower(**{**BASE, **options})


def _plan(**options):
    """The model and the epoch plan its fit would train on (weights initialised, no epoch)."""
    model = _model(**options)
    return model, model.epoch_plan(TRAIN, USER_X, ITEM_X)


def _fit(**options) -> TwoTower:
    return _model(**options).fit(TRAIN, USER_X, ITEM_X)


def _trained_weights(model):
    return [model.params_, *(table for _, table in model.tables_.values())]


def _trains_differently(name, value, **context):
    """Training with ``name=value`` ends in other weights than without it (the kernels read
    the value, not only the configuration)."""
    plain, changed = _fit(**context), _fit(**context, **{name: value})
    assert any(not np.array_equal(a, b) for a, b in
               zip(_trained_weights(plain), _trained_weights(changed))), name


def _lrs(model):
    return [entry["lr"] for entry in model.history_]


def _check_layers(value):
    model = _fit(layers=value)
    assert list(model.user_sizes_) == [USER_X.shape[1], 12, 6]
    assert list(model.item_sizes_) == [ITEM_X.shape[1], 12, 6]
    expected = sum(a * b + b for d in (USER_X.shape[1], ITEM_X.shape[1])
                   for a, b in ((d, 12), (12, 6)))
    assert model.params_.shape == (expected,)


def _check_optimizer(value):
    assert _plan(optimizer=value)[1].config.optimizer == "sgd"
    _trains_differently("optimizer", value)


def _check_lr(value):
    # The default schedule, inverse_time with decay 0.1: lr / (1 + 0.1 epoch).
    assert _lrs(_fit(lr=value, patience=None)) == pytest.approx([0.05, 0.05 / 1.1])


def _check_lr_schedule(value):
    assert _lrs(_fit(lr_schedule=value, epochs=3, patience=None)) == [1e-3] * 3


def _check_lr_schedule_options(value):
    assert _lrs(_fit(lr_schedule_options=value, patience=None)) == pytest.approx([1e-3, 5e-4])


def _check_batch_size(value):
    _, plan = _plan(batch_size=value)
    assert plan.config.batch_size == 7
    # One optimizer step per mini-batch: an epoch of 600 examples takes ceil(600 / 7) steps.
    _, steps = plan.run(np.arange(N, dtype=np.int32), lr=1e-3)
    assert steps == math.ceil(N / 7) == 86


def _check_epochs(value):
    assert len(_fit(epochs=value, patience=None).history_) == 3


def _check_optimizer_number(name, **context):
    def check(value):
        assert getattr(_plan(**context, **{name: value})[1].config, name) == value
        _trains_differently(name, value, **context)
    return check


def _check_patience(value):
    # At lr=1e-30 no float32 weight moves, so no validation loss improves after the first
    # epoch: training stops after 1 + patience epochs (4 with the default 3).
    assert len(_fit(lr=1e-30, epochs=8, patience=value).history_) == 2
    assert len(_fit(lr=1e-30, epochs=8).history_) == 4


def _check_validation_fraction(value):
    model = _fit(validation_fraction=value, biases=False)
    # The pairs held out are the seeded draws rng.random(n) < fraction, the fit's first draws.
    held = np.random.default_rng(0).random(N) < 0.5
    assert 0.4 < held.mean() < 0.6
    predicted = model.predict(USER_X[USERS[held]], ITEM_X[ITEMS[held]])
    rmse = math.sqrt(np.mean((predicted - RATINGS[held]) ** 2))
    assert model.history_[model.best_epoch_ - 1]["val_rmse"] == pytest.approx(rmse, rel=1e-5)


def _check_rating_range(value):
    _, plan = _plan(rating_range=value, biases=False)
    np.testing.assert_allclose(plan.examples.targets, RATINGS / 10 - 1, rtol=1e-6)


def _check_dtype(value):
    model, plan = _plan(dtype=value)
    assert model.params_.dtype == plan.examples.targets.dtype == np.float64


def _check_seed(value):
    model, _ = _plan(seed=value)
    width = USER_X.shape[1] * 8  # He initialisation of the first user layer: the first draws
    expected = np.random.default_rng(7).normal(0.0, math.sqrt(2.0 / USER_X.shape[1]), width)
    np.testing.assert_array_equal(model.params_[:width], expected.astype(np.float32))


def _check_verbose(value, capsys):
    _fit(verbose=value)
    assert "training (rating objective)" in capsys.readouterr().err


def _check_objective(value):
    model, plan = _plan(objective=value)
    assert (plan.config.rating_weight, plan.config.ranking_weight) == (0.0, 1.0)
    assert model.biases_ is None and model.item_log_prior_ is not None
    assert _fit(objective=value).calibration_ is not None


def _check_ranking_weight(value):
    _, plan = _plan(objective="hybrid", ranking_weight=value)
    assert (plan.config.rating_weight, plan.config.ranking_weight) == (1.0, 0.5)


def _check_temperature(value):
    model, plan = _plan(objective="hybrid", temperature=value)
    assert plan.config.temperature == 0.5
    vectors = np.array([[0.6, 0.8]], dtype=np.float32)
    np.testing.assert_allclose(model.retrieval_queries(vectors), [[1.2, 1.6, 1.0]], rtol=1e-6)


def _check_positive_threshold(value):
    _, plan = _plan(objective="ranking", positive_threshold=value)
    np.testing.assert_array_equal(plan.examples.rank_weights, RATINGS >= 6.0)
    assert 0 < (RATINGS >= 6.0).mean() < 1


def _check_popularity_prior(value):
    model, plan = _plan(objective="hybrid", popularity_prior=value)
    assert model.item_log_prior_ is None
    # Without the prior in the score, the in-batch logits are corrected by log q instead.
    share = np.maximum(np.bincount(ITEMS, minlength=ITEM_X.shape[0]), 1) / N
    np.testing.assert_allclose(plan.examples.item_logq, np.log(share), rtol=1e-6)
    prior_model, prior_plan = _plan(objective="hybrid")
    np.testing.assert_allclose(prior_model.item_log_prior_, np.log(share), rtol=1e-6)
    assert not prior_plan.examples.item_logq.any()


def _check_biases(value):
    model, plan = _plan(biases=value)
    assert model.biases_ is None
    np.testing.assert_allclose(plan.examples.targets, 2 * (RATINGS - 1) / 9 - 1, rtol=1e-6)


def _hand_biases(reg, iterations=10):
    """``r = mu + b_u + b_i`` by alternating exact half-steps with the L2 penalty ``reg``, and
    each example's ``mu + b_u + b_i`` with its own rating left out: loops over the
    definitions."""
    mu = RATINGS.mean()
    b_u, b_i = np.zeros(USER_X.shape[0]), np.zeros(ITEM_X.shape[0])
    for _ in range(iterations):
        for u in range(b_u.shape[0]):
            mine = USERS == u
            b_u[u] = np.sum(RATINGS[mine] - mu - b_i[ITEMS[mine]]) / (mine.sum() + reg)
        for i in range(b_i.shape[0]):
            mine = ITEMS == i
            b_i[i] = np.sum(RATINGS[mine] - mu - b_u[USERS[mine]]) / (mine.sum() + reg)
    base = np.empty(N)
    for j, (u, i, r) in enumerate(zip(USERS, ITEMS, RATINGS)):
        by_user, by_item = USERS == u, ITEMS == i
        user_sum = np.sum(RATINGS[by_user] - mu - b_i[ITEMS[by_user]]) - (r - mu - b_i[i])
        item_sum = np.sum(RATINGS[by_item] - mu - b_u[USERS[by_item]]) - (r - mu - b_u[u])
        base[j] = mu + user_sum / (by_user.sum() - 1 + reg) + item_sum / (by_item.sum() - 1 + reg)
    return b_u, b_i, base


def _check_bias_reg(value):
    model, plan = _plan(bias_reg=value)
    b_u, b_i, base = _hand_biases(1.0)
    np.testing.assert_allclose(model.biases_.user, b_u, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.biases_.item, b_i, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(plan.examples.targets, (RATINGS - base) / 4.5, rtol=1e-5,
                               atol=1e-6)
    assert not np.allclose(b_u, _hand_biases(5.0)[0])  # the default gives other biases


def _check_embedding_dim(value):
    model, _ = _plan(embedding_dim=value)
    for side, rows, x in (("user", USERS, USER_X), ("item", ITEMS, ITEM_X)):
        known = int((np.bincount(rows, minlength=x.shape[0]) >= 2).sum())
        assert model.tables_[side][1].shape == (known + 1, 3)
    assert (model.user_sizes_[0], model.item_sizes_[0]) == (USER_X.shape[1] + 3,
                                                            ITEM_X.shape[1] + 3)


def _check_min_id_count(value):
    model, _ = _plan(embedding_dim=2, min_id_count=value)
    counts = np.bincount(USERS, minlength=USER_X.shape[0])
    assert (counts == value).any() and (counts == value - 1).any()  # both sides of it
    index, table = model.tables_["user"]
    assert table.shape[0] == (counts >= value).sum() + 1
    np.testing.assert_array_equal(index == table.shape[0] - 1, counts < value)


def _check_embedding_decay(value):
    _, plan = _plan(embedding_dim=2, weight_decay=0.1, embedding_decay=value)
    assert (plan.config.weight_decay, plan.config.embedding_decay) == (0.1, 0.01)
    _trains_differently("embedding_decay", value, embedding_dim=2, weight_decay=0.1)


def _check_id_dropout(value):
    _, plan = _plan(embedding_dim=2, id_dropout=value)
    for tower in (plan.user, plan.item):
        [embedding] = [b for b in tower.blocks if isinstance(b, kernels.Embedding)]
        assert embedding.dropout == value
    _trains_differently("id_dropout", value, embedding_dim=2)


def _check_history_dim(value):
    model, _ = _plan(history_dim=value)
    indptr, indices, table = model.pooled_history_
    assert table.shape == (ITEM_X.shape[0], 3)
    np.testing.assert_array_equal(np.diff(indptr), np.bincount(USERS, minlength=30))
    for u in (0, 17):
        assert sorted(indices[indptr[u]:indptr[u + 1]]) == sorted(ITEMS[USERS == u])
    assert model.user_sizes_[0] == USER_X.shape[1] + 3


def _check_n_threads(value):
    model, plan = _plan(n_threads=value)
    assert model.threads == plan.threads == 3


#: Every model option: a value other than its default (and the Recommender's), and its check.
MODEL_CASES = {
    "layers": ((12, 6), _check_layers),
    "optimizer": ("sgd", _check_optimizer),
    "lr": (0.05, _check_lr),
    "lr_schedule": ("constant", _check_lr_schedule),
    "lr_schedule_options": ({"decay_rate": 1.0}, _check_lr_schedule_options),
    "batch_size": (7, _check_batch_size),
    "epochs": (3, _check_epochs),
    "momentum": (0.5, _check_optimizer_number("momentum", optimizer="sgd")),
    "beta1": (0.5, _check_optimizer_number("beta1")),
    "beta2": (0.9, _check_optimizer_number("beta2")),
    "eps": (1e-3, _check_optimizer_number("eps")),
    "weight_decay": (0.1, _check_optimizer_number("weight_decay")),
    "patience": (1, _check_patience),
    "validation_fraction": (0.5, _check_validation_fraction),
    "rating_range": ((0.0, 20.0), _check_rating_range),
    "dtype": ("float64", _check_dtype),
    "seed": (7, _check_seed),
    "verbose": (True, _check_verbose),
    "objective": ("ranking", _check_objective),
    "ranking_weight": (0.5, _check_ranking_weight),
    "temperature": (0.5, _check_temperature),
    "positive_threshold": (6.0, _check_positive_threshold),
    "popularity_prior": (False, _check_popularity_prior),
    "biases": (False, _check_biases),
    "bias_reg": (1.0, _check_bias_reg),
    "embedding_dim": (3, _check_embedding_dim),
    "min_id_count": (20, _check_min_id_count),
    "embedding_decay": (0.01, _check_embedding_decay),
    "id_dropout": (0.5, _check_id_dropout),
    "history_dim": (3, _check_history_dim),
    "n_threads": (3, _check_n_threads),
}


#: Options that only exist beside another's value (TwoTower's objective is "rating").
NEEDS = {"ranking_weight": {"objective": "hybrid"}}


def test_every_model_option_has_a_case():
    assert list(MODEL_CASES) == list(options.MODEL)


@pytest.mark.parametrize("name", list(MODEL_CASES))
def test_each_model_option_takes_effect(name, capsys):
    value, check = MODEL_CASES[name]
    option = options.MODEL[name]
    assert value not in (option.default, option.recommender_default)
    if "capsys" in inspect.signature(check).parameters:
        check(value, capsys)
    else:
        check(value)


@pytest.mark.parametrize("name", list(MODEL_CASES))
def test_each_model_option_survives_get_config(name):
    value, _ = MODEL_CASES[name]
    option = options.MODEL[name]
    model = TwoTower(**NEEDS.get(name, {}), **{name: value})
    assert getattr(model, name) == option.check(value)
    if not option.saved:  # verbose, and the schedule's options inside the schedule
        return
    config = model.get_config()
    assert config[name] == option.kind.to_json(option.check(value)) or name == "lr_schedule"
    again = TwoTower(**config)
    assert getattr(again, name) == getattr(model, name) or name == "lr_schedule"
    assert again.get_config() == config


# ---------------------------------------------------------------------------------------------
# The Recommender's options


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("options")
    return load_mal(*write_tables(generate_synthetic(200, 120, 5000, seed=4), folder))


SMALL = dict(layers=(8,), epochs=2, embedding_dim=2)


def _rec(data, **options):
    return Recommender(**{**SMALL, **options}).fit(data)


@pytest.fixture(scope="module")
def plain(data):
    return _rec(data)


def _per_user_split(data, valid, test, min_ratings):
    """How many validation and test ratings each user gets: ``rint(fraction * count)`` for a
    user with at least ``min_ratings`` ratings, none for the others, one always left to
    train on (validation gives way first)."""
    counts = np.bincount(data.ratings.users, minlength=data.ratings.n_users)
    big = counts >= min_ratings
    n_test = np.where(big, np.rint(test * counts), 0)
    n_valid = np.where(big, np.rint(valid * counts), 0)
    n_valid = np.minimum(n_valid, np.maximum(counts - 1 - n_test, 0))
    n_test = np.minimum(n_test, counts - 1 - n_valid)
    return n_valid.astype(int), n_test.astype(int)


def _split_counts(rec, part):
    users = rec.user_rows(rec.split_frames()[part]["user_id"])
    return np.bincount(users, minlength=rec.user_ids.shape[0])


def _check_weighting(data, plain, value):
    rec = _rec(data, weighting=value)
    np.testing.assert_array_equal(rec.item_x, plain.item_x)
    assert not np.allclose(rec.user_x, plain.user_x)


def _check_valid(data, plain, value):
    rec = _rec(data, valid=value)
    n_valid, _ = _per_user_split(data, value, 0.1, 5)
    np.testing.assert_array_equal(_split_counts(rec, "validation"), n_valid)


def _check_test(data, plain, value):
    rec = _rec(data, test=value)
    _, n_test = _per_user_split(data, 0.1, value, 5)
    np.testing.assert_array_equal(_split_counts(rec, "test"), n_test)


def _check_min_ratings(data, plain, value):
    counts = np.bincount(data.ratings.users)
    assert 0 < (counts < value).sum() < counts.shape[0]  # some users keep all in training
    rec = _rec(data, min_ratings=value)
    _, n_test = _per_user_split(data, 0.1, 0.1, value)
    np.testing.assert_array_equal(_split_counts(rec, "test"), n_test)


def _check_leave_one_out(data, plain, value):
    rec = _rec(data, leave_one_out=value)
    np.testing.assert_array_equal(rec.user_x, plain.user_x)
    assert not np.array_equal(rec.model.params_, plain.model.params_)


def _check_item_attributes(data, plain, value):
    rec = _rec(data, item_attributes=value)
    assert rec.item_x.shape[1] == len(rec.genres) < plain.item_x.shape[1]


def _check_catalogue_counts_ratings(data, plain, value):
    rec = _rec(data, catalogue_counts_ratings=value)
    assert rec.item_x.shape == plain.item_x.shape
    assert not np.allclose(rec.item_x, plain.item_x)


def _check_split_seed(data, plain, value):
    rec = _rec(data, seed=value)
    test = split_ratings(data.ratings, valid=0.1, test=0.1, min_ratings=5, seed=value).test
    frame = rec.split_frames()["test"]
    assert set(zip(frame["user_id"], frame["anime_id"])) == set(zip(
        data.ratings.user_ids[test.users], data.catalogue.anime_ids[test.items]))
    assert not np.array_equal(rec.test.items, plain.test.items)


def _check_refit(data, plain, value):
    rec = _rec(data, refit=value, epochs=3)
    assert rec.model.epochs == 3 and rec.model.patience == 3  # the first training's model
    refitted = _rec(data, epochs=3)
    assert refitted.model.epochs == refitted.model.best_epoch_ and \
        refitted.model.patience is None


def _check_verbose_rec(data, plain, value, capsys):
    _rec(data, verbose=value)
    err = capsys.readouterr().err
    assert "training (hybrid objective)" in err and "refit: training again" in err


def _retrieval_scores(rec, user_row, popularity, quality):
    """``cosine / temperature + popularity * log q + quality * b_item`` of every anime for
    one user, the rated ones at ``-inf``: the retrieval score written out."""
    model = rec.model
    cosine = rec.item_vectors.astype(np.float64) @ rec.user_vectors[user_row].astype(np.float64)
    scores = cosine / model.temperature + popularity * model.item_log_prior_ + \
        quality * model.biases_.item
    indptr, indices = rec.rated
    scores[indices[indptr[user_row]:indptr[user_row + 1]]] = -np.inf
    return scores


def _check_weight(name):
    def check(data, plain, value):
        rec = _rec(data, **{name: value})
        weights = {"popularity": rec.popularity_weight, "quality": rec.quality_weight}
        assert weights[name.split("_")[0]] == value
        recs = rec.recommend(rec.user_ids[3], n=10)
        scores = _retrieval_scores(rec, 3, weights["popularity"], weights["quality"])
        np.testing.assert_allclose(recs["score"], np.sort(scores)[::-1][:10], rtol=1e-5)
        # A query-time option: changed after fitting, it acts at once.
        setattr(plain, name, value)
        try:
            np.testing.assert_array_equal(plain.recommend(plain.user_ids[3], n=10)["anime_id"],
                                          plain.anime_ids[np.argsort(-_retrieval_scores(
                                              plain, 3, plain.popularity_weight,
                                              plain.quality_weight), kind="stable")[:10]])
        finally:
            setattr(plain, name, options.RECOMMENDER[name].default)
    return check


#: Every option of the Recommender's own: a value other than its default, and its check.
RECOMMENDER_CASES = {
    "weighting": ("rating", _check_weighting),
    "valid": (0.3, _check_valid),
    "test": (0.3, _check_test),
    "min_ratings": (30, _check_min_ratings),
    "leave_one_out": (False, _check_leave_one_out),
    "item_attributes": (False, _check_item_attributes),
    "catalogue_counts_ratings": (False, _check_catalogue_counts_ratings),
    "seed": (3, _check_split_seed),
    "refit": (False, _check_refit),
    "verbose": (True, _check_verbose_rec),
    "popularity_weight": (0.0, _check_weight("popularity_weight")),
    "quality_weight": (2.0, _check_weight("quality_weight")),
}


def test_every_recommender_option_has_a_case():
    assert list(RECOMMENDER_CASES) == [option.name for option in options.OWN]


@pytest.mark.parametrize("name", list(RECOMMENDER_CASES))
def test_each_recommender_option_takes_effect(name, data, plain, capsys):
    value, check = RECOMMENDER_CASES[name]
    assert value != options.RECOMMENDER[name].default
    if "capsys" in inspect.signature(check).parameters:
        check(data, plain, value, capsys)
    else:
        check(data, plain, value)


@pytest.mark.parametrize("name", options.passed_on())
def test_each_model_option_reaches_the_recommenders_model(name):
    value, _ = MODEL_CASES[name]
    rec = Recommender(**{name: value})
    assert getattr(rec.model, name) == options.MODEL[name].check(value)
    assert name not in rec.options


def test_the_recommender_passes_its_seed_and_verbose_on_and_takes_the_scale_from_the_data():
    rec = Recommender(seed=9, verbose=True)
    assert (rec.model.seed, rec.model.verbose) == (9, True)
    with pytest.raises(TypeError, match="unexpected keyword argument 'rating_range'"):
        Recommender(rating_range=(1, 5))


def test_the_recommenders_own_defaults_of_model_options():
    model = Recommender().model
    assert (model.objective, model.embedding_dim, model.epochs) == ("hybrid", 32, 20)
    assert Recommender(valid=0).model.validation_fraction == 0.0
    assert Recommender(valid=0, validation_fraction=0.2).model.validation_fraction == 0.2


def test_each_saved_option_survives_the_file(data, tmp_path):
    changed = {name: value for name, (value, _) in RECOMMENDER_CASES.items()
               if options.RECOMMENDER[name].saved}
    rec = _rec(data, **changed)
    rec.save(tmp_path / "m.anirec")
    loaded = Recommender.load(tmp_path / "m.anirec")
    assert loaded.options == rec.options == {name: changed[name] for name in options.SAVED_OWN}


# ---------------------------------------------------------------------------------------------
# The command line: each flag parsed into its option, arriving at the Recommender's model


#: Every flag of ``anirec train`` that sets an option: what to give, and the value it means.
FLAG_CASES = {
    "--layers": (["16,8"], (16, 8)),
    "--optimizer": (["sgd"], "sgd"),
    "--lr": (["0.02"], 0.02),
    "--batch-size": (["7"], 7),
    "--epochs": (["3"], 3),
    "--dtype": (["float64"], "float64"),
    "--objective": (["rating"], "rating"),
    "--ranking-weight": (["0.5"], 0.5),
    "--temperature": (["0.5"], 0.5),
    "--positive-threshold": (["6"], 6.0),
    "--biases": ([], False),
    "--bias-reg": (["1.5"], 1.5),
    "--embedding-dim": (["0"], 0),
    "--min-id-count": (["7"], 7),
    "--embedding-decay": (["0.01"], 0.01),
    "--id-dropout": (["0.25"], 0.25),
    "--history-dim": (["4"], 4),
    "--threads": (["3"], 3),
    "--weighting": (["centered"], "centered"),
    "--validation": (["0.3"], 0.3),
    "--test": (["0.2"], 0.2),
    "--seed": (["5"], 5),
    "--leave-one-out": ([], False),
    "--catalogue-counts-ratings": ([], False),
    "--refit": ([], False),
    "--popularity-weight": (["0.25"], 0.25),
}
TRAIN_ARGS = ["train", "--scores", "s.csv", "--out", "m.anirec"]


def _train_flags() -> dict[str, str]:
    """``{flag: dest}`` of the options of ``anirec train`` that are not its own (files,
    columns, output)."""
    train = next(a for a in cli.build_parser()._actions
                 if isinstance(a, argparse._SubParsersAction)).choices["train"]
    own = {"-h", "--anime", "--scores", "--user-col", "--item-col", "--rating-col",
           "--rating-scale", "--out", "--save-split", "--strict", "--exclude-genres",
           "--threshold", "--quiet"}
    return {action.option_strings[0]: action.dest for action in train._actions
            if action.option_strings[0] not in own}


def test_every_flag_has_a_case():
    assert sorted(FLAG_CASES) == sorted(_train_flags())


def _recommender_of(argv):
    return cli._recommender(cli.build_parser().parse_args(TRAIN_ARGS + argv))


def _where(rec, name):
    return rec.options[name] if name in rec.options else getattr(rec.model, name)


@pytest.mark.parametrize("flag", list(FLAG_CASES))
def test_each_flag_reaches_the_model(flag):
    tokens, expected = FLAG_CASES[flag]
    name = _train_flags()[flag]
    given = [flag.replace("--", "--no-", 1)] if not tokens else [flag, *tokens]
    default = _where(_recommender_of([]), name)
    assert expected != default
    assert _where(_recommender_of(given), name) == expected


def test_without_flags_the_command_line_trains_the_recommenders_defaults():
    rec, default = _recommender_of([]), Recommender()
    assert rec.options == default.options
    assert rec.model.get_config() == default.model.get_config()


def test_the_flags_reach_the_saved_model(tmp_path, capsys):
    # Every flag away from its default at once (those compatible with one another), through
    # training and the file.
    folder = tmp_path / "data"
    assert main(["generate", "--out", str(folder), "--users", "200", "--anime", "120",
                 "--ratings", "5000", "--seed", "4"]) == 0
    argv = ["--anime", str(folder / "anime-dataset-2023.csv"), "--layers", "6,4", "--quiet"]
    for flag, (tokens, _) in FLAG_CASES.items():
        if flag in ("--layers", "--objective", "--batch-size", "--epochs"):
            continue
        argv += [flag.replace("--", "--no-", 1)] if not tokens else [flag, *tokens]
    model = tmp_path / "m.anirec"
    assert main(["train", "--scores", str(folder / "users-score-2023.csv"), "--out",
                 str(model), "--epochs", "2", *argv]) == 0
    loaded = Recommender.load(model)
    for flag, (tokens, expected) in FLAG_CASES.items():
        name = _train_flags()[flag]
        if flag in ("--layers", "--objective", "--batch-size", "--epochs") or \
                not options.RECOMMENDER[name].saved:
            continue
        assert _where(loaded, name) == expected, flag
    assert loaded.model.layers == (6, 4)


# ---------------------------------------------------------------------------------------------
# Bounds, from both sides: written here, not read from the table


#: ``(option, lowest accepted, highest refused below it, highest accepted, lowest refused
#: above it)`` of the Python API (``None``: no such side).
API_BOUNDS = [
    ("lr", 1e-300, 0.0, None, None),
    ("batch_size", 1, 0, 2**31 - 1, 2**31),
    ("epochs", 1, 0, None, None),
    ("momentum", 0.0, -1e-12, 0.999, 1.0),
    ("beta1", 0.0, -1e-12, 0.999, 1.0),
    ("beta2", 0.0, -1e-12, 0.999, 1.0),
    ("eps", 1e-300, 0.0, None, None),
    ("weight_decay", 0.0, -1e-12, None, None),
    ("patience", 1, 0, None, None),
    ("validation_fraction", 0.0, -1e-12, 0.999, 1.0),
    ("seed", 0, -1, None, None),
    ("ranking_weight", 1e-300, 0.0, None, None),
    ("temperature", 1e-3, 0.00099, 1e3, 1000.001),
    ("bias_reg", 1e-300, 0.0, None, None),
    ("embedding_dim", 0, -1, 2**31 - 1, 2**31),
    ("min_id_count", 1, 0, None, None),
    ("embedding_decay", 0.0, -1e-12, None, None),
    ("id_dropout", 0.0, -1e-12, 0.999, 1.0),
    ("history_dim", 0, -1, 2**31 - 1, 2**31),
    ("n_threads", 1, 0, None, None),
    ("valid", 0.0, -1e-12, 0.5, None),
    ("test", 0.0, -1e-12, 0.5, None),
    ("min_ratings", 1, 0, None, None),
    ("popularity_weight", 0.0, -1e-12, 1000.0, 1000.001),
    ("quality_weight", 0.0, -1e-12, 1000.0, 1000.001),
]


@pytest.mark.parametrize("name,low,below,high,above", API_BOUNDS)
def test_each_bound_from_both_sides(name, low, below, high, above):
    context = {"objective": "hybrid"} if name == "ranking_weight" else {}
    owner = TwoTower if name in options.MODEL else Recommender
    for accepted in (low, high):
        if accepted is not None:
            owner(**context, **{name: accepted})
    for refused in (below, above):
        if refused is not None:
            with pytest.raises(ValueError, match=rf"^{name} must be"):
                owner(**context, **{name: refused})


def test_fractions_of_one_and_the_split_sum_are_refused():
    for name in ("valid", "test"):
        with pytest.raises(ValueError, match=rf"^{name} must be a finite number in \[0, 1\)"):
            Recommender(**{name: 1.0})
    Recommender(valid=0.5, test=0.499)
    with pytest.raises(ValueError, match=r"valid \+ test must leave ratings"):
        Recommender(valid=0.5, test=0.5)


#: ``(flag, lowest accepted, highest refused below, highest accepted, lowest refused above)``
#: of ``anirec train``: the model's bounds, and the command line's caps on sizes.
CLI_BOUNDS = [
    ("--epochs", "1", "0", "100000", "100001"),
    ("--batch-size", "1", "0", "1048576", "1048577"),
    ("--embedding-dim", "0", "-1", "4096", "4097"),
    ("--history-dim", "0", "-1", "4096", "4097"),
    ("--min-id-count", "1", "0", "1000000000", "1000000001"),
    ("--threads", "1", "0", "4096", "4097"),
    ("--seed", "0", "-1", "4294967295", "4294967296"),
    ("--lr", "1e-9", "0", None, "inf"),
    ("--temperature", "0.001", "0.00099", "1000", "1000.01"),
    ("--validation", "0", "-0.01", "0.99", "1"),
    ("--test", "0", "-0.01", "0.99", "1"),
    ("--id-dropout", "0", "-0.01", "0.99", "1"),
    ("--popularity-weight", "0", "-0.01", "1000", "1000.01"),
    ("--bias-reg", "1e-9", "0", None, "nan"),
    ("--layers", "1", "0", ",".join(["65536"] * 32), ",".join(["8"] * 33)),
]


@pytest.mark.parametrize("flag,low,below,high,above", CLI_BOUNDS)
def test_each_flag_bound_from_both_sides(flag, low, below, high, above, capsys):
    parser = cli.build_parser()
    for accepted in (low, high):
        if accepted is not None:
            parser.parse_args(TRAIN_ARGS + [f"{flag}={accepted}"])
    for refused in (below, above):
        with pytest.raises(SystemExit) as stop:
            parser.parse_args(TRAIN_ARGS + [f"{flag}={refused}"])
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert f"argument {flag}: expected" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flags,objective", [
    (["--ranking-weight", "0.5"], "rating"), (["--ranking-weight", "0.5"], "ranking"),
    (["--temperature", "0.5"], "rating"), (["--positive-threshold", "7"], "rating"),
    (["--popularity-weight", "0.5"], "rating")])
def test_flags_of_other_objectives_are_refused(flags, objective):
    with pytest.raises(cli.UsageError, match=f"^{flags[0]} has no effect with --objective "
                                             f"{objective}$"):
        _recommender_of([*flags, "--objective", objective])


# ---------------------------------------------------------------------------------------------
# What derives from the table: signatures, help, docs


def test_the_signatures_show_every_option_and_its_default():
    model = inspect.signature(TwoTower).parameters
    assert list(model) == list(options.MODEL)
    assert {name: p.default for name, p in model.items()} == \
        {name: option.default for name, option in options.MODEL.items()}
    assert model["layers"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    rec = inspect.signature(Recommender).parameters
    assert set(rec) == {option.name for option in options.OWN} | set(options.passed_on())
    assert rec["objective"].default == "hybrid" and rec["embedding_dim"].default == 32
    assert TwoTower((16, 8)).layers == (16, 8)


def test_the_docstrings_describe_every_option():
    model_doc, rec_doc = TwoTower.__doc__, Recommender.__doc__
    for name in options.MODEL:
        assert re.search(rf"\b{name}\b", model_doc), name
    for option in options.OWN:
        assert re.search(rf"\b{option.name}\b", rec_doc), option.name


def test_the_weightings_are_the_feature_builders():
    assert sorted(options.RECOMMENDER["weighting"].kind.values) == sorted(WEIGHTINGS)


def test_the_readme_lists_every_option():
    readme = Path(__file__).resolve().parents[1] / "README.md"
    if not readme.exists():
        pytest.skip("runs from a source checkout only")
    text = readme.read_text("utf-8")
    table = text.split("<!-- options -->\n", 1)[1].split("<!-- /options -->", 1)[0]
    assert table == options.markdown_table()
    for option in [*options.OWN, *options.MODEL.values()]:
        assert f"| `{option.name}` |" in table


def test_help_shows_each_flags_default_from_the_table(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in options.flags():
        assert f"(default: {option.show(option.recommender_default)})" in text, option.flag
    assert "(default: hybrid)" in text and "(default: 32)" in text


def test_the_saved_header_checks_every_saved_option(data, tmp_path):
    from anirec import ModelFormatError
    from anirec._saved_recommender import check_header

    header, _ = _rec(data).to_state()
    check_header(header, "m")
    for name in options.SAVED_OWN:
        bad = dict(header, options={**header["options"], name: "x" if name != "weighting"
                                    else "loud"})
        with pytest.raises(ModelFormatError, match=rf"'options.{name}'"):
            check_header(bad, "m")
    for name, value in (("valid", 1.0), ("min_ratings", 0), ("quality_weight", 1001.0)):
        bad = dict(header, options={**header["options"], name: value})
        with pytest.raises(ModelFormatError, match=rf"'options.{name}' is invalid: {name} must"):
            check_header(bad, "m")
