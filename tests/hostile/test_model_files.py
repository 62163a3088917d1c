"""Hostile model files and save targets: a clear named error, nothing inflated that was not
asked for, nothing replaced that is not a regular file, no temporary file left behind."""

import io
import json
import os
import stat
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anirec import AnirecError, ModelFormatError, ModelWriteError, Recommender, TwoTower
from anirec.data import generate_synthetic, load_mal
from anirec.data.synthetic import write_tables
from anirec.model import persistence

from .conftest import edit_header, npy, rebuild


@pytest.fixture(scope="module")
def recommender():
    data = generate_synthetic(150, 80, 3000, seed=3)
    with tempfile.TemporaryDirectory() as tmp:
        mal = load_mal(*write_tables(data, tmp))
    return Recommender(layers=(8, 4), epochs=2, seed=0).fit(mal)


@pytest.fixture(scope="module")
def saved(recommender, tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    recommender.save(folder / "rec.anirec")
    recommender.model.save(folder / "tower.anirec")
    return folder / "rec.anirec", folder / "tower.anirec"


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------------------------------------
# Reading: only known members, sizes checked before inflating


def test_unknown_members_are_never_read(saved, tmp_path):
    # A garbage member (it would fail to parse if it were read) and a member whose name has no
    # ``.npy``: neither is read, and the model loads.
    path = rebuild(saved[0], tmp_path / "extra.anirec",
                   {"junk.npy": b"\x00garbage" * 100, "notes.txt": b"hello"})
    rec = Recommender.load(path)
    assert rec.user_ids.shape[0] == 150


def test_a_member_declaring_a_huge_shape_is_refused_before_inflating(saved, tmp_path):
    header = {"descr": "<f4", "fortran_order": False, "shape": (10**12,)}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    path = rebuild(saved[1], tmp_path / "huge.anirec",
                   {"params.npy": buffer.getvalue() + b"\x00" * 64})
    with pytest.raises(ModelFormatError, match=r"huge.anirec.*'params' declares shape "
                                               r"\(1000000000000,\).*more than"):
        TwoTower.load(path)


def test_a_member_whose_stored_size_disagrees_is_refused(saved, tmp_path):
    header = {"descr": "<f4", "fortran_order": False, "shape": (100_000,)}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    path = rebuild(saved[1], tmp_path / "short.anirec",
                   {"params.npy": buffer.getvalue() + b"\x00" * 64})
    with pytest.raises(ModelFormatError, match="'params'.*stored size does not match "
                                               r"\(truncated or corrupted\?\)"):
        TwoTower.load(path)


def test_total_size_cap(saved, tmp_path, monkeypatch):
    monkeypatch.setattr(persistence, "MAX_MODEL_BYTES", 1000)
    with pytest.raises(ModelFormatError, match="more than the 1,000 bytes"):
        Recommender.load(saved[0])


@pytest.mark.parametrize("name,array,message", [
    ("user_x.npy", np.zeros((3, 16)), r"'user_x' has shape \(3, 16\), but the header "
                                      r"declares 150 users"),
    ("anime_ids.npy", np.arange(72.0), r"'anime_ids' has dtype float64, expected kind 'i'"),
    ("genre_matrix.npy", np.zeros(72), r"'genre_matrix' has 1 dimensions"),
    ("anime_names.npy", np.array([{"a": 1}] * 72, dtype=object), r"'anime_names' has dtype "
                                                                 r"object.*never holds"),
    ("baseline.GlobalMean.mean.npy", np.zeros(2),
     r"'baseline.GlobalMean.mean' has shape \(2,\)"),
])
def test_declared_shapes_and_dtypes_are_checked(saved, tmp_path, name, array, message):
    if array.dtype == object:
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, array, allow_pickle=True)
        raw = buffer.getvalue()
    else:
        raw = npy(array)
    path = rebuild(saved[0], tmp_path / "bad.anirec", {name: raw})
    with pytest.raises(ModelFormatError, match=message):
        Recommender.load(path)


@pytest.mark.parametrize("name", ["model.params", "user_x",
                                  "baseline.BayesianAverage.item_scores", "test_ratings"])
def test_non_finite_arrays_are_refused_on_load(saved, tmp_path, name):
    array = np.load(saved[0])[name].copy()
    array.flat[0] = np.nan
    path = rebuild(saved[0], tmp_path / "nan.anirec", {f"{name}.npy": npy(array)})
    with pytest.raises(ModelFormatError, match=rf"nan.anirec.*'{name}' holds NaN or inf"):
        Recommender.load(path)


@pytest.mark.parametrize("name,array,message", [
    ("seen_indices", lambda a: a + 1000, "seen_indices refers to anime rows outside"),
    ("seen_indptr", lambda a: a[::-1].copy(), "seen_indptr must start at 0"),
    ("user_ids", lambda a: a[::-1].copy(), "user_ids must be sorted and distinct"),
    ("test_users", lambda a: a - 10**6, "test_users refers to user rows outside"),
    ("cold.std", lambda a: -a, "deviations at least 1e-12"),
    ("model.item_log_prior", lambda a: -a + 1, "item_log_prior must be"),
])
def test_bad_values_are_refused(saved, tmp_path, name, array, message):
    original = np.load(saved[0])[name]
    path = rebuild(saved[0], tmp_path / "bad.anirec", {f"{name}.npy": npy(array(original))})
    with pytest.raises(ModelFormatError, match=message):
        Recommender.load(path)


def test_a_missing_member_is_named(saved, tmp_path):
    path = rebuild(saved[0], tmp_path / "missing.anirec", drop=("seen_indptr.npy",))
    with pytest.raises(ModelFormatError, match="missing.anirec' lacks the array 'seen_indptr'"):
        Recommender.load(path)


# ---------------------------------------------------------------------------------------------
# Header fields: type and range, the field named


def _set(path_keys, value):
    def edit(header):
        node = header
        for key in path_keys[:-1]:
            node = node[key]
        node[path_keys[-1]] = value
    return edit


@pytest.mark.parametrize("keys,value,field", [
    (("format_version",), "1", "format_version"),
    (("format_version",), None, "format_version"),
    (("model", "config"), None, "model.config"),
    (("model", "config", "layers"), "12", "model.config"),
    (("model", "config", "temperature"), 1e-300, "model.config"),
    (("model", "config", "patience"), 1.7, "model.config"),
    (("model", "history"), "long", "model.history"),
    (("model", "history"), [{"epoch": "one"}], "model.history"),
    (("model", "best_epoch"), "2", "model.best_epoch"),
    (("model", "best_epoch"), 99, "model.best_epoch"),
    (("model", "calibration"), [1], "model.calibration"),
    (("options",), None, "options"),
    (("options", "seed"), "0", "options.seed"),
    (("options", "weighting"), "loud", "options.weighting"),
    (("options", "valid"), 2.0, "options.valid"),
    (("cold_start", "mode"), 7, "cold_start.mode"),
    (("cold_start", "global_mean"), None, "cold_start.global_mean"),
    (("cold_start", "typical_count"), True, "cold_start.typical_count"),
    (("genres",), [1, 2], "genres"),
    (("excluded_genres",), "Ecchi", "excluded_genres"),
])
def test_header_fields_are_checked_and_named(saved, tmp_path, keys, value, field):
    path = edit_header(saved[0], tmp_path / "header.anirec", _set(keys, value))
    with pytest.raises(ModelFormatError, match=rf"header.anirec.*'{field}'"):
        Recommender.load(path)


def test_deeply_nested_header_is_refused(saved, tmp_path):
    raw = np.frombuffer(b"[" * 100_000 + b"]" * 100_000, np.uint8)
    path = rebuild(saved[1], tmp_path / "deep.anirec", {"__header__.npy": npy(raw)})
    with pytest.raises(ModelFormatError, match="corrupted header: nested too deeply"):
        TwoTower.load(path)


def test_nan_in_the_header_is_refused(saved, tmp_path):
    header = json.loads(np.load(saved[1])["__header__"].tobytes())
    text = json.dumps(header).replace('"lr": 0.001', '"lr": NaN', 1)
    path = rebuild(saved[1], tmp_path / "nan.anirec",
                   {"__header__.npy": npy(np.frombuffer(text.encode(), np.uint8))})
    with pytest.raises(ModelFormatError, match="corrupted header: NaN is not a finite"):
        TwoTower.load(path)


# ---------------------------------------------------------------------------------------------
# Not a model file at all


def test_a_csv_given_as_a_model_says_so(tmp_path):
    path = tmp_path / "users-score-2023.csv"
    path.write_text("user_id,Username,anime_id,Anime Title,rating\n1,a,1,b,9\n")
    with pytest.raises(ModelFormatError, match="is not an anirec model file: it is a text "
                                               r"file \(CSV\?\)"):
        Recommender.load(path)


def test_a_plain_npy_file_says_so(tmp_path):
    path = tmp_path / "params.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(ModelFormatError, match="it is a single .npy array"):
        TwoTower.load(path)


def test_a_truncated_file_says_truncated(saved, tmp_path):
    data = saved[0].read_bytes()
    path = tmp_path / "cut.anirec"
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ModelFormatError, match=r"truncated or corrupted\?"):
        Recommender.load(path)


def test_a_folder_is_not_called_truncated(tmp_path):
    with pytest.raises(ModelFormatError, match="is a folder, not a model file") as caught:
        Recommender.load(tmp_path)
    assert "truncated" not in str(caught.value)


def test_a_fifo_does_not_block(tmp_path):
    fifo = tmp_path / "model.fifo"
    os.mkfifo(fifo)
    with pytest.raises(ModelFormatError, match="is not a regular file"):
        Recommender.load(fifo)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_is_not_called_truncated(saved, tmp_path):
    path = tmp_path / "locked.anirec"
    path.write_bytes(saved[1].read_bytes())
    path.chmod(0)
    with pytest.raises(PermissionError, match="permission denied"):
        TwoTower.load(path)


def test_permission_denied_is_reported_as_such_even_as_root(saved, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(persistence, "open_regular", denied)
    with pytest.raises(PermissionError, match="cannot read the model file .*permission "
                                              "denied") as caught:
        TwoTower.load(saved[1])
    assert "truncated" not in str(caught.value)


# ---------------------------------------------------------------------------------------------
# Writing: only over regular files, mode kept, nothing left behind


def test_an_unwritable_folder_is_a_model_write_error(recommender, tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(persistence.os, "open", denied)
    with pytest.raises(ModelWriteError, match="permission denied in"):
        recommender.model.save(tmp_path / "m.anirec")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_save_over_a_symlink(recommender, tmp_path):
    target = tmp_path / "precious.csv"
    target.write_text("keep me\n")
    link = tmp_path / "model.anirec"
    link.symlink_to(target)
    with pytest.raises(ModelWriteError, match="over '.*model.anirec': it is a symbolic link"):
        recommender.save(link)
    assert link.is_symlink() and target.read_text() == "keep me\n"
    assert not _leftovers(tmp_path)


def test_refuses_to_save_over_a_fifo_or_a_folder(recommender, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ModelWriteError, match="not a regular file"):
        recommender.model.save(fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    with pytest.raises(ModelWriteError, match="it is a folder"):
        recommender.save(tmp_path)
    with pytest.raises(ModelWriteError, match="does not exist"):
        recommender.save(tmp_path / "missing" / "m.anirec")
    assert not _leftovers(tmp_path)


def test_a_replaced_file_keeps_its_mode_and_a_new_file_follows_the_umask(recommender, tmp_path):
    old = tmp_path / "old.anirec"
    old.write_bytes(b"previous")
    old.chmod(0o640)
    recommender.model.save(old)
    assert stat.S_IMODE(os.stat(old).st_mode) == 0o640
    previous = os.umask(0o027)
    try:
        recommender.model.save(tmp_path / "new.anirec")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(tmp_path / "new.anirec").st_mode) == 0o640
    TwoTower.load(old)


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, OSError(28, "No space left")])
def test_temporary_file_is_removed_on_any_failure(recommender, tmp_path, monkeypatch,
                                                 interrupt):
    target = tmp_path / "model.anirec"
    target.write_bytes(b"previous")

    def fail(*args, **kwargs):
        raise interrupt

    monkeypatch.setattr(persistence.np, "savez", fail)
    with pytest.raises(type(interrupt) if isinstance(interrupt, OSError) else interrupt):
        recommender.save(target)
    assert target.read_bytes() == b"previous"
    assert not _leftovers(tmp_path)


def test_non_finite_parameters_are_not_saved(recommender, tmp_path):
    model = TwoTower.from_state(*recommender.model.to_state())
    model.params_ = model.params_.copy()
    model.params_[3] = np.inf
    with pytest.raises(ValueError, match="'params' holds NaN or inf"):
        model.save(tmp_path / "inf.anirec")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Fuzz: whatever the bytes, only anirec's errors


def _load_any(path):
    try:
        (TwoTower if "tower" in path.name else Recommender).load(path)
    except AnirecError:
        pass


@settings(derandomize=True, max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(which=st.sampled_from([0, 1]), edits=st.lists(
    st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1,
    max_size=8), cut=st.none() | st.floats(0, 1))
def test_fuzzed_bytes_give_only_anirec_errors(saved, which, edits, cut):
    data = bytearray(saved[which].read_bytes())
    for where, value in edits:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[:int(cut * len(data))]
    with tempfile.TemporaryDirectory() as tmp:
        path = persistence.Path(tmp) / ("tower.anirec" if which else "rec.anirec")
        path.write_bytes(bytes(data))
        _load_any(path)


_HEADER_PATHS = [
    ("format",), ("format_version",), ("kind",), ("options",), ("model",), ("cold_start",),
    ("genres",), ("excluded_genres",), ("summary",), ("model", "config"), ("model", "history"),
    ("model", "best_epoch"), ("model", "calibration"), ("cold_start", "genres"),
    ("cold_start", "mode"), ("cold_start", "global_mean"), ("cold_start", "typical_count"),
    *[("options", key) for key in ("weighting", "valid", "test", "min_ratings",
                                   "leave_one_out", "item_attributes", "seed")],
    *[("model", "config", key) for key in (
        "layers", "optimizer", "lr", "lr_schedule", "batch_size", "epochs", "momentum", "beta1",
        "beta2", "eps", "weight_decay", "patience", "validation_fraction", "rating_range",
        "dtype", "seed", "objective", "ranking_weight", "temperature", "positive_threshold",
        "popularity_prior")],
]


@settings(derandomize=True, max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(keys=st.sampled_from(_HEADER_PATHS),
       value=st.recursive(st.none() | st.booleans() | st.integers() |
                          st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
                          lambda inner: st.lists(inner, max_size=3) |
                          st.dictionaries(st.text(max_size=5), inner, max_size=3),
                          max_leaves=6))
def test_fuzzed_header_fields_give_only_anirec_errors(saved, keys, value):
    header = json.loads(np.load(saved[0])["__header__"].tobytes())
    _set(keys, value)(header)
    with tempfile.TemporaryDirectory() as tmp:
        raw = np.frombuffer(json.dumps(header).encode(), np.uint8)
        target = rebuild(saved[0], persistence.Path(tmp) / "rec.anirec",
                         {"__header__.npy": npy(raw)})
        _load_any(target)

