"""Hostile CSV inputs: each gives one named error on one line, never a hang, a
traceback from a library or a changed input file."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from anirec.backend import use_backend
from anirec.data import _csv, load_catalogue, load_mal, scores as sc
from anirec.errors import DataError

from .conftest import ANIME_HEADER, ANIME_ROWS, SCORES_HEADER, SCORES_ROWS, anime_row

BACKENDS = ["cython", "numpy"]


def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def anime_file(tmp_path: Path, rows=ANIME_ROWS, name="anime.csv") -> Path:
    return write(tmp_path / name, "\n".join([ANIME_HEADER, *rows]) + "\n")


def scores_file(tmp_path: Path, rows=SCORES_ROWS, name="scores.csv") -> Path:
    return write(tmp_path / name, "\n".join([SCORES_HEADER, *rows]) + "\n")


def refused(anime: Path, scores: Path, *parts: str, backend: str = "cython") -> str:
    """load_mal's error: a DataError on one line holding ``parts``; both files unchanged."""
    before = {p: p.read_bytes() for p in (anime, scores) if p.is_file()}
    with use_backend(backend), pytest.raises(DataError) as exc:
        load_mal(anime, scores)
    msg = str(exc.value)
    assert "\n" not in msg, msg
    for p in parts:
        assert p in msg, f"{p!r} not in {msg!r}"
    assert {p: p.read_bytes() for p in before} == before
    return msg


def in_thread(fn, timeout: float = 20.0):
    """Run ``fn`` in a daemon thread: its result or exception, or a failure if it hangs."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "blocked: the reader waited on its input"
    return out


# --------------------------------------------------------------------------- never a hang


@pytest.mark.parametrize("which", ["anime", "scores"])
def test_fifo_is_refused_without_blocking(tmp_path, which):
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    anime, scores = anime_file(tmp_path), scores_file(tmp_path)
    args = (fifo, scores) if which == "anime" else (anime, fifo)
    out = in_thread(lambda: load_mal(*args))
    assert isinstance(out.get("error"), DataError), out
    msg = str(out["error"])
    assert "fifo.csv" in msg and "FIFO" in msg and "regular file" in msg and "\n" not in msg


@pytest.mark.parametrize("which,after,backend", [
    ("anime", "check_regular", "cython"),
    ("scores", "check_regular", "cython"),
    ("scores", "read_header", "cython"),   # the compiled reader's open
    ("scores", "read_header", "numpy"),    # the UTF-8 pass's open
    ("scores", "scan", "numpy"),           # pyarrow's open
])
def test_a_file_swapped_for_a_fifo_after_its_check_is_refused_without_blocking(
        tmp_path, monkeypatch, which, after, backend):
    anime, scores = anime_file(tmp_path), scores_file(tmp_path)
    target = anime if which == "anime" else scores
    original = getattr(_csv, after)

    def then_swap(path, *args, **kwargs):
        result = original(path, *args, **kwargs)
        if Path(path) == target and target.is_file():
            target.unlink()
            os.mkfifo(target)  # the race: the path is a FIFO by the time it is opened
        return result

    monkeypatch.setattr(_csv, after, then_swap)
    with use_backend(backend):
        out = in_thread(lambda: load_mal(anime, scores))
    assert isinstance(out.get("error"), DataError), out
    msg = str(out["error"])
    assert target.name in msg and "FIFO" in msg and "regular file" in msg, msg


def test_pipe_is_refused_and_not_consumed(tmp_path):
    # What `--scores <(cat S)` passes: a path to a pipe. Refused before any read, so what the
    # writer sent is all still there.
    body = scores_file(tmp_path).read_bytes()
    r, w = os.pipe()
    try:
        os.write(w, body)
        os.close(w)
        w = -1
        refused(anime_file(tmp_path), Path(f"/dev/fd/{r}"), "pipe", "regular file")
        assert os.read(r, len(body) + 10) == body
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
@pytest.mark.parametrize("which", ["anime", "scores"])
def test_endless_device_is_refused(tmp_path, which):
    zero = Path("/dev/zero")
    anime, scores = anime_file(tmp_path), scores_file(tmp_path)
    args = (zero, scores) if which == "anime" else (anime, zero)
    out = in_thread(lambda: load_mal(*args))
    assert isinstance(out.get("error"), DataError), out
    assert "/dev/zero" in str(out["error"]) and "device" in str(out["error"])


@pytest.fixture
def short_lines(monkeypatch):
    """A line limit of 4 KiB (the real one, 16 MiB, is too big for a unit test)."""
    monkeypatch.setattr(_csv, "MAX_LINE", 4096)
    monkeypatch.setattr(sc, "_BLOCK", 4096)
    monkeypatch.setattr(sc, "_FAST_BLOCK", 512)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("where", ["header", "data"])
def test_line_longer_than_the_limit_in_scores(tmp_path, short_lines, backend, where):
    zeros = "0" * 10_000      # what a file of /dev/zero-like content holds: no line end
    if where == "header":
        scores = write(tmp_path / "scores.csv", SCORES_HEADER + zeros)
        line = "line 1"
    else:
        scores = write(tmp_path / "scores.csv", "\n".join([SCORES_HEADER, *SCORES_ROWS])
                       + "\n" + zeros)
        line = f"line {len(SCORES_ROWS) + 2}"
    refused(anime_file(tmp_path), scores, "scores.csv", line, "longer than 4096 bytes",
            backend=backend)


def test_line_longer_than_the_limit_in_anime(tmp_path, short_lines):
    head = "\n".join([ANIME_HEADER, *ANIME_ROWS]) + "\n"     # a synopsis spans lines
    anime = write(tmp_path / "anime.csv", head + "x" * 10_000 + "\n")
    refused(anime, scores_file(tmp_path), "anime.csv", f"line {head.count(chr(10)) + 1}",
            "longer than 4096")


# --------------------------------------------------------------------------- line endings


@pytest.mark.parametrize("backend", BACKENDS)
def test_cr_only_line_endings(tmp_path, backend):
    anime = anime_file(tmp_path)
    scores = write(tmp_path / "scores.csv", "\r".join([SCORES_HEADER, *SCORES_ROWS]) + "\r")
    refused(anime, scores, "scores.csv", "lone CR", backend=backend)
    cr_anime = write(tmp_path / "cr.csv", "\r".join([ANIME_HEADER, ANIME_ROWS[0]]) + "\r")
    refused(cr_anime, scores_file(tmp_path, name="ok.csv"), "cr.csv", "lone CR")


# --------------------------------------------------------------------------- one id rule


@pytest.mark.parametrize("bad", ["7e2", "777.0", "0x10", "+7", "-7", "7.5", "١٢"])
def test_anime_ids_follow_the_scores_rule(tmp_path, bad):
    rows = [ANIME_ROWS[0], ANIME_ROWS[1].replace("5,", f"{bad},", 1)]
    refused(anime_file(tmp_path, rows), scores_file(tmp_path), "anime.csv",
            "column 'anime_id'", "row 2", repr(bad), "not an integer id")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("column,row", [("user_id", "0x10,a,1,t,5"),
                                        ("anime_id", "7,a,0x1,t,5"),
                                        ("anime_id", "7,a,0X1,t,5"),
                                        ("anime_id", "7,a,777.0,t,5"),
                                        ("anime_id", "7,a,7e2,t,5"),
                                        ("user_id", "+7,a,1,t,5")])
def test_scores_ids_refuse_hex_exponent_and_fraction(tmp_path, backend, column, row):
    scores = scores_file(tmp_path, [SCORES_ROWS[0], SCORES_ROWS[7], row, SCORES_ROWS[9]])
    refused(anime_file(tmp_path), scores, "scores.csv", f"column {column!r}", "row 3",
            backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hex_looking_text_is_not_an_id(tmp_path, backend):
    # "0x" in a user name or title only makes the reader look closer.
    scores = scores_file(tmp_path, [*SCORES_ROWS, "9,0xdeadbeef,1,0X Files,6"])
    with use_backend(backend):
        data = load_mal(anime_file(tmp_path), scores)
    assert 9 in data.ratings.user_ids.tolist()


@pytest.mark.parametrize("backend", BACKENDS)
def test_ids_far_apart_need_no_table_as_large(tmp_path, backend):
    # An anime id of 10**15 would have sized a lookup table of 8 PB.
    rows = [ANIME_ROWS[0], anime_row("1000000000000000", "Far", "7.00", "Drama", "TV", "1.0",
                                     "2001", "10.0", "20")]
    scores = scores_file(tmp_path, ["1,a,1,t,5", "1,a,1000000000000000,t,7", "2,b,3,t,4"])
    with use_backend(backend):
        data = load_mal(anime_file(tmp_path, rows), scores)
    assert data.catalogue.anime_ids.tolist() == [1, 10**15]
    r = data.ratings
    assert data.catalogue.anime_ids[r.items].tolist() == [1, 10**15]
    assert r.ratings.tolist() == [5, 7] and data.summary.ratings_unknown_anime == 1


# --------------------------------------------------------------------------- numeric ranges


@pytest.mark.parametrize("column,value,field", [
    ("Score", "1e300", 4), ("Score", "11.5", 4), ("Score", "-inf", 4),
    ("Members", "-5", 23), ("Scored By", "1e30", 22), ("Episodes", "inf", 8)])
def test_catalogue_numbers_are_range_checked(tmp_path, column, value, field):
    fields = ANIME_ROWS[5].split(",")     # "Old Title": no quoted commas before its numbers
    assert fields[0] == "10"
    fields[field] = value
    rows = [ANIME_ROWS[0], ANIME_ROWS[1], ",".join(fields)]
    refused(anime_file(tmp_path, rows), scores_file(tmp_path), "anime.csv",
            f"column {column!r}", "row 3", repr(value), "outside")


def test_row_of_a_range_error_counts_dropped_rows(tmp_path):
    # The bad row comes after an excluded anime and a duplicate: its file row is still named.
    fields = ANIME_ROWS[5].split(",")
    fields[4] = "1e300"
    rows = [*ANIME_ROWS[:6], ",".join(fields)]
    refused(anime_file(tmp_path, rows), scores_file(tmp_path), "row 7", "'Score'")


def test_catalogue_text_is_still_read_as_missing(tmp_path):
    cat, _ = load_catalogue(anime_file(tmp_path))
    assert np.isnan(cat.attributes["score"].iloc[2])      # "n/a": coerced, counted, no error


# --------------------------------------------------------------------------- pyarrow at exit


def test_pyarrow_path_exits_cleanly(tmp_path):
    # A rating written "10." sends the file down the pyarrow path; reading it used to leave a
    # pyarrow thread that took the GIL at exit (SIGABRT, exit 134, in about 6% of runs).
    anime = anime_file(tmp_path)
    scores = scores_file(tmp_path, [*SCORES_ROWS, "42,Jürgen,8,Mystery Box,10."])
    code = ("import sys; from anirec.data import load_mal, scores; "
            f"d = load_mal({str(anime)!r}, {str(scores)!r}); "
            "assert d.summary.ratings_kept == 7, d.summary")
    for _ in range(5):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=tmp_path, timeout=120)
        assert done.returncode == 0, done.stderr
