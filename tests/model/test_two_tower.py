"""Behaviour of the two-tower model under every backend."""

import math
import zipfile

import numpy as np
import pytest

import anirec
from anirec import kernels
from anirec.errors import DataError, DivergenceError, ModelFormatError, NotFittedError
from anirec.model import TwoTower
from anirec.model import persistence

from ..conftest import planted

NOISE = 0.5


def split(users, items, ratings, test=0.2, seed=1):
    held = np.random.default_rng(seed).random(users.shape[0]) < test
    return (users[~held], items[~held], ratings[~held]), (users[held], items[held], ratings[held])


def small_model(**overrides):
    options = dict(layers=(32, 16), epochs=12, lr=3e-3, batch_size=128, patience=3, seed=0,
                   lr_schedule="inverse_time", lr_schedule_options={"decay_rate": 0.05})
    options.update(overrides)
    return TwoTower(**options)


def test_training_reaches_the_noise_floor(each_backend):
    users, items, ratings, user_x, item_x = planted()
    train, test = split(users, items, ratings)
    model = small_model().fit(train, user_x, item_x)
    predicted = model.predict(user_x[test[0]], item_x[test[1]])
    rmse = math.sqrt(np.mean((predicted - test[2]) ** 2))
    baseline = math.sqrt(np.mean((train[2].mean() - test[2]) ** 2))
    assert baseline > 1.3
    assert rmse < NOISE * 1.25, rmse  # close to the noise floor
    assert rmse < baseline / 2
    assert all(np.isfinite(entry["train_loss"]) for entry in model.history_)
    assert model.history_[-1]["train_loss"] < model.history_[0]["train_loss"]


def test_same_seed_gives_identical_weights(each_backend):
    users, items, ratings, user_x, item_x = planted(n_examples=3000)
    first = small_model(epochs=3).fit((users, items, ratings), user_x, item_x)
    second = small_model(epochs=3).fit((users, items, ratings), user_x, item_x)
    third = small_model(epochs=3, seed=1).fit((users, items, ratings), user_x, item_x)
    np.testing.assert_array_equal(first.params_, second.params_)
    assert not np.array_equal(first.params_, third.params_)


@pytest.mark.skipif(not anirec.backend.cython_available(), reason="needs the compiled kernels")
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_backends_follow_the_same_trajectory(optimizer):
    users, items, ratings, user_x, item_x = planted(n_examples=4000)
    runs = {}
    for name in ("cython", "numpy"):
        with anirec.use_backend(name):
            model = small_model(epochs=3, dtype="float64", optimizer=optimizer, momentum=0.9,
                                lr=3e-3 if optimizer == "adam" else 0.05, patience=None)
            runs[name] = model.fit((users, items, ratings), user_x, item_x)
    np.testing.assert_allclose(runs["cython"].params_, runs["numpy"].params_, rtol=1e-9,
                               atol=1e-11)
    for a, b in zip(runs["cython"].history_, runs["numpy"].history_):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-9)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-9)


def test_early_stopping_restores_the_best_epoch(each_backend):
    users, items, ratings, user_x, item_x = planted(n_examples=3000)
    train, valid = split(users, items, ratings)
    # A learning rate this high overshoots, so the validation loss does not fall monotonically.
    model = small_model(epochs=15, lr=0.05, lr_schedule="constant", lr_schedule_options={},
                        patience=2)
    model.fit(train, user_x, item_x, validation=valid)
    losses = [entry["val_loss"] for entry in model.history_]
    best = int(np.argmin(losses))
    assert model.best_epoch_ == best + 1
    assert len(losses) == min(15, best + 1 + 2)
    model.knees_ = (0.0, 0.0)  # validation scored with the clip; the knees came after training
    predicted = model.predict(user_x[valid[0]], item_x[valid[1]], valid[0], valid[1])
    restored = np.mean((model.to_target(predicted) - model.to_target(valid[2])) ** 2)
    assert restored == pytest.approx(losses[best], rel=1e-4)


def test_callback_can_stop_training(each_backend):
    users, items, ratings, user_x, item_x = planted(n_examples=2000)
    seen = []
    model = small_model(epochs=10, patience=None)
    model.fit((users, items, ratings), user_x, item_x,
              callback=lambda epoch, logs: seen.append((epoch, logs["train_loss"])) or epoch == 2)
    assert [epoch for epoch, _ in seen] == [1, 2]
    assert len(model.history_) == 2


def test_divergence_raises_a_clear_error(each_backend):
    users, items, ratings, user_x, item_x = planted(n_examples=2000)
    model = small_model(optimizer="sgd", lr=1e30, lr_schedule="constant", lr_schedule_options={})
    with pytest.raises(DivergenceError, match=r"epoch 1.*[Ll]ower the learning rate"):
        model.fit((users, items, ratings), user_x, item_x)


def test_bad_inputs_name_the_row_and_column():
    users, items, ratings, user_x, item_x = planted(n_examples=500)
    user_x[7, 3] = np.nan
    with pytest.raises(DataError, match=r"user_features.*row 7, column 3"):
        small_model().fit((users, items, ratings), user_x, item_x)
    user_x[7, 3] = 0.0
    ratings[11] = 11.0
    with pytest.raises(DataError, match=r"row 11 .*11"):
        small_model().fit((users, items, ratings), user_x, item_x)
    ratings[11] = 5.0
    items[4] = 10_000
    with pytest.raises(DataError, match=r"row 4 .*10000"):
        small_model().fit((users, items, ratings), user_x, item_x)


@pytest.mark.parametrize("options, message", [
    ({"layers": ()}, "layers"),
    ({"layers": (8, 0)}, "layers"),
    ({"lr": -1.0}, "lr"),
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"dtype": "float16"}, "dtype"),
    ({"batch_size": 0}, "batch_size"),
    ({"lr_schedule": "cosine"}, "lr_schedule"),
    ({"rating_range": (10, 1)}, "rating_range"),
])
def test_invalid_configurations_raise(options, message):
    with pytest.raises(ValueError, match=message):
        TwoTower(**options)


def test_unfitted_model_raises():
    with pytest.raises(NotFittedError):
        TwoTower().predict(np.zeros((1, 3)), np.zeros((1, 3)))


@pytest.fixture(scope="module")
def trained():
    users, items, ratings, user_x, item_x = planted(n_examples=3000)
    model = small_model(epochs=2).fit((users, items, ratings), user_x, item_x)
    return model, user_x, item_x


def test_save_load_gives_identical_predictions(trained, tmp_path):
    model, user_x, item_x = trained
    path = tmp_path / "model.anirec"
    model.save(path)
    loaded = TwoTower.load(path)
    np.testing.assert_array_equal(loaded.params_, model.params_)
    rows = np.arange(50)
    np.testing.assert_array_equal(loaded.predict(user_x[:50], item_x[:50], rows, rows),
                                  model.predict(user_x[:50], item_x[:50], rows, rows))
    assert loaded.biases_.mean == model.biases_.mean
    np.testing.assert_array_equal(loaded.biases_.user, model.biases_.user)
    np.testing.assert_array_equal(loaded.biases_.item, model.biases_.item)
    assert loaded.get_config() == model.get_config()
    assert loaded.history_ == model.history_
    with zipfile.ZipFile(path) as archive:  # plain arrays, nothing pickled
        assert sorted(archive.namelist()) == ["__header__.npy", "bias_item.npy",
                                              "bias_user.npy", "item_sizes.npy", "params.npy",
                                              "user_sizes.npy"]


def test_bad_model_files_raise_model_format_error(trained, tmp_path):
    model, _, _ = trained
    path = tmp_path / "model.anirec"
    model.save(path)
    data = path.read_bytes()
    (tmp_path / "truncated").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage").write_bytes(b"not a model at all" * 10)
    np.savez(tmp_path / "foreign.npz", weights=np.zeros(3))
    np.savez(tmp_path / "pickled.npz", __header__=np.frombuffer(b'{"format": "anirec"}', np.uint8),
             evil=np.array([{"a": 1}], dtype=object))
    header, arrays = model.to_state()
    persistence.write_model_file(tmp_path / "wrongshape", {"kind": "TwoTower", **header},
                                 {**arrays, "params": arrays["params"][:-1]})
    for name, message in [("truncated", "truncated or corrupted"),
                          ("garbage", "not an anirec model file: it is a text file"),
                          ("foreign.npz", "no header"), ("pickled.npz", "'format_version'"),
                          ("wrongshape", "'params' has shape")]:
        with pytest.raises(ModelFormatError, match=message):
            TwoTower.load(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        TwoTower.load(tmp_path / "missing")


def test_newer_format_is_refused(trained, tmp_path, monkeypatch):
    model, _, _ = trained
    monkeypatch.setattr(persistence, "FORMAT_VERSION", persistence.FORMAT_VERSION + 1)
    model.save(tmp_path / "future")
    monkeypatch.undo()
    with pytest.raises(ModelFormatError, match="upgrade anirec"):
        TwoTower.load(tmp_path / "future")


def test_a_crash_mid_save_keeps_the_previous_file(trained, tmp_path, monkeypatch):
    model, user_x, item_x = trained
    path = tmp_path / "model.anirec"
    model.save(path)
    before = path.read_bytes()

    def crash(handle, **arrays):
        handle.write(b"PK\x03\x04 half of a zip")
        raise OSError("disk full")

    monkeypatch.setattr(persistence.np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.anirec"]
    TwoTower.load(path)


def _loo_problem(n_users=50, n_items=40, n_genres=4):
    """Planted triplets with consistent leave-one-out statistics (mode 0, ``rating``)."""
    users, items, ratings, _, item_x = planted(n_examples=3000, n_users=n_users,
                                               n_items=n_items)
    rng = np.random.default_rng(3)
    item_genres = (rng.random((n_items, n_genres)) < 0.4).astype(float)
    num, den = np.zeros((n_users, n_genres)), np.zeros((n_users, n_genres))
    np.add.at(num, users, ratings[:, None] * item_genres[items])
    np.add.at(den, users, item_genres[items])

    class Stats:  # the fields of kernels.LeaveOneOutStats, as the data layer provides them
        pass

    stats = Stats()
    stats.num, stats.den = num, den
    stats.total = np.bincount(users, ratings, n_users)
    stats.count = np.bincount(users, minlength=n_users).astype(float)
    stats.item_genres, stats.item_weight = item_genres, np.full(n_items, 7.0)
    stats.mode, stats.global_mean = 0, float(ratings.mean())
    stats.mean, stats.std = np.full(n_genres + 2, 5.0), np.full(n_genres + 2, 2.0)
    full = kernels.LeaveOneOutStats(num, den, stats.total, stats.count, item_genres,
                                    stats.item_weight, 0, stats.global_mean, stats.mean,
                                    stats.std)
    return users, items, ratings, item_x, stats, full


def test_loo_training_equals_training_on_the_leave_one_out_rows(each_backend):
    """``fit(loo=...)`` trains each example on its own leave-one-out row: the same run as
    giving every example a user of its own whose feature row is that row."""
    users, items, ratings, item_x, stats, full = _loo_problem()
    n = users.shape[0]
    # Leaving out a rating 0 of a genre-less item from one more example leaves the full row.
    keep_all = full._replace(count=full.count + 1, item_genres=np.zeros_like(full.item_genres))
    user_rows = kernels.user_rows_loo(keep_all, np.arange(50), np.zeros(50, np.int64),
                                      np.zeros(50))  # validation and inference rows
    example_rows = kernels.user_rows_loo(full, users, items, ratings)
    full_rows = user_rows[users]
    # The training rows do leave something out: they are not the users' full rows.
    assert np.abs(example_rows - full_rows).max() > 0.1
    # No rating biases: they would differ between the two runs' users.
    options = dict(epochs=2, validation_fraction=0.0, dtype="float64", patience=None,
                   biases=False)
    with_loo = small_model(**options).fit((users, items, ratings), user_rows, item_x,
                                          loo=stats)
    explicit = small_model(**options).fit((np.arange(n), items, ratings), example_rows,
                                          item_x)
    assert with_loo.user_sizes_[0] == 6
    np.testing.assert_allclose(with_loo.params_, explicit.params_, rtol=1e-9, atol=1e-12)
    # ...and not the same run as training on the full rows.
    on_full = small_model(**options).fit((np.arange(n), items, ratings), full_rows, item_x)
    assert not np.allclose(on_full.params_, with_loo.params_)


def test_plot_history_writes_a_png(trained, tmp_path):
    pytest.importorskip("matplotlib")
    from anirec.model import plot_history

    path = plot_history(trained[0].history_, tmp_path / "loss.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------
# Training objectives


@pytest.mark.parametrize("objective,prior", [("ranking", True), ("hybrid", True),
                                             ("hybrid", False)])
def test_ranking_objectives_train_save_and_predict_ratings(each_backend, objective, prior,
                                                           tmp_path):
    users, items, ratings, user_x, item_x = planted(n_examples=4000)
    train, test = split(users, items, ratings)
    model = small_model(epochs=3, objective=objective, ranking_weight=0.2, temperature=0.1,
                        positive_threshold=6.0, popularity_prior=prior).fit(train, user_x,
                                                                            item_x)
    if prior:
        # The log share of each item among the training pairs (validation_fraction of them
        # were held out, so it follows the counts of ``train`` closely but not exactly).
        counts = np.bincount(train[1], minlength=item_x.shape[0])
        assert model.item_log_prior_.shape == (item_x.shape[0],)
        assert model.item_log_prior_.max() < 0
        assert np.corrcoef(np.log(counts + 1), model.item_log_prior_)[0, 1] > 0.9
        queries = model.retrieval_queries(model.user_embeddings(user_x[:3]))
        rows = model.retrieval_items(model.item_embeddings(item_x))
        cosines = model.user_embeddings(user_x[:3]) @ model.item_embeddings(item_x).T
        np.testing.assert_allclose(queries @ rows.T, cosines / 0.1 + model.item_log_prior_,
                                   rtol=1e-4, atol=1e-4)
    else:
        assert model.item_log_prior_ is None
    entry = model.history_[0]
    assert "val_rank" in entry and np.isfinite(entry["val_rank"])
    assert ("val_rmse" in entry) == (objective == "hybrid")
    predicted = model.predict(user_x[test[0]], item_x[test[1]])
    assert predicted.min() >= 1.0 and predicted.max() <= 10.0
    if objective == "ranking":
        a, b = model.calibration_
        assert b > 0  # higher scores mean higher ratings on this planted data
    else:
        assert model.calibration_ is None
    model.save(tmp_path / "m.anirec")
    loaded = TwoTower.load(tmp_path / "m.anirec")
    assert loaded.get_config() == model.get_config()
    assert loaded.calibration_ == model.calibration_
    if prior:
        np.testing.assert_array_equal(loaded.item_log_prior_, model.item_log_prior_)
    np.testing.assert_array_equal(loaded.predict(user_x[test[0]], item_x[test[1]]), predicted)


def test_files_without_objective_settings_load_as_rating_models(trained):
    header, arrays = trained[0].to_state()
    for key in ("objective", "ranking_weight", "temperature", "positive_threshold"):
        del header["config"][key]
    del header["calibration"]
    model = TwoTower.from_state(header, arrays)
    assert model.objective == "rating" and model.calibration_ is None
    assert model.loss_weights == (1.0, 0.0)


@pytest.mark.parametrize("options, message", [
    ({"objective": "listwise"}, "objective must be one of"),
    ({"temperature": 0.0}, r"temperature must be a finite number in \[0.001, 1000\]"),
    ({"ranking_weight": -1.0}, r"ranking_weight must be a finite number in \(0, inf\]"),
    ({"positive_threshold": float("nan")}, "positive_threshold"),
])
def test_invalid_objective_settings_raise(options, message):
    with pytest.raises(ValueError, match=message):
        TwoTower(**options)


def test_a_threshold_above_every_rating_is_a_data_error():
    users, items, ratings, user_x, item_x = planted(n_examples=500)
    with pytest.raises(DataError, match="positive_threshold"):
        small_model(objective="ranking", positive_threshold=11.0).fit(
            (users, items, ratings), user_x, item_x)


def _narrow_and_wide(n_examples=3000):
    """Planted triplets as int32 rows and float32 ratings, and the same values as int64 and
    float64; a tenth of the ratings are float32(7.1)."""
    users, items, ratings, user_x, item_x = planted(n_examples=n_examples)
    narrow = (users.astype(np.int32), items.astype(np.int32), ratings.astype(np.float32))
    # float32(7.1) is below 7.1: a threshold of 7.1 must compare float64 values alike.
    narrow[2][::10] = 7.1
    wide = (narrow[0].astype(np.int64), narrow[1].astype(np.int64),
            narrow[2].astype(np.float64))
    return narrow, wide, user_x, item_x


@pytest.mark.parametrize("options", [
    dict(),  # rating objective with biases, validation held out of train
    dict(biases=False, embedding_dim=2, min_id_count=3),
    dict(objective="hybrid", positive_threshold=7.1, dtype="float64"),
    dict(objective="ranking", positive_threshold=7.1, validation_fraction=0.0),
])
def test_int32_float32_triplets_train_the_bits_of_int64_float64(each_backend, options):
    """Whatever the dtypes of the triplets, fit follows one trajectory, bit for bit."""
    narrow, wide, user_x, item_x = _narrow_and_wide()
    validation = tuple(a[:300] for a in narrow) if options.get("validation_fraction") == 0 \
        else None
    models = []
    for train in (narrow, wide):
        valid = None if validation is None else tuple(a.astype(w.dtype) for a, w in
                                                     zip(validation, train))
        models.append(small_model(epochs=2, **options).fit(train, user_x, item_x,
                                                           validation=valid))
    first, second = models
    np.testing.assert_array_equal(first.params_, second.params_)
    assert first.history_ == [dict(entry, seconds=got["seconds"]) for entry, got in
                              zip(second.history_, first.history_)]
    assert first.calibration_ == second.calibration_
    if first.biases_ is not None:
        assert first.biases_.mean == second.biases_.mean
        np.testing.assert_array_equal(first.biases_.user, second.biases_.user)
        np.testing.assert_array_equal(first.biases_.item, second.biases_.item)
    for side in first.tables_:
        for got, want in zip(first.tables_[side], second.tables_[side]):
            np.testing.assert_array_equal(got, want)


def test_fit_trains_on_the_int32_and_float32_arrays_it_is_given(monkeypatch):
    """No widening copy: the epochs read the caller's int32 rows and float32 ratings, and
    visit them in an int32 order."""
    narrow, _, user_x, item_x = _narrow_and_wide()
    seen = {}
    init, run = kernels.EpochPlan.__init__, kernels.EpochPlan.run

    def spy_init(self, examples, *args, **kwargs):
        seen["examples"] = examples
        init(self, examples, *args, **kwargs)

    def spy_run(self, order, **kwargs):
        seen["order"] = order.dtype
        return run(self, order, **kwargs)

    monkeypatch.setattr(kernels.EpochPlan, "__init__", spy_init)
    monkeypatch.setattr(kernels.EpochPlan, "run", spy_run)
    small_model(epochs=1, validation_fraction=0.0).fit(narrow, user_x, item_x)
    examples = seen["examples"]
    assert examples.users is narrow[0] and examples.items is narrow[1]
    assert examples.ratings is narrow[2]  # a float32 model reads them as they are
    assert seen["order"] == np.int32


def test_fit_on_millions_of_int32_triplets_allocates_only_its_own_arrays():
    """Peak memory of a fit on 2M int32/float32 triplets: its float32 targets and int32
    order (8 bytes per example) and temporaries of a bounded chunk. Widening the two index
    arrays to int64 would take 16 bytes per example more (the code before: 60 in all)."""
    import tracemalloc

    n = 2_000_000
    rng = np.random.default_rng(0)
    users = rng.integers(0, 20_000, n, dtype=np.int32)
    items = rng.integers(0, 2_000, n, dtype=np.int32)
    ratings = rng.integers(1, 11, n).astype(np.float32)
    user_x = rng.normal(size=(20_000, 3)).astype(np.float32)
    item_x = rng.normal(size=(2_000, 3)).astype(np.float32)
    model = TwoTower(layers=(4,), epochs=1, batch_size=4096, validation_fraction=0.0,
                     embedding_dim=2, seed=0)
    tracemalloc.start()
    try:
        model.fit((users, items, ratings), user_x, item_x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * n + 16 * 2**20, peak / 2**20
