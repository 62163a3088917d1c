"""anirec._files: temporary files of killed writers removed by the next save (only theirs),
and opens that refuse a FIFO instead of waiting on it."""

import os
import subprocess
import sys
import textwrap

import pytest

from anirec import _files, cli
from anirec.model import persistence


def _dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def live_pid():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield child.pid
    child.kill()
    child.wait()


def _plant(folder, name: str) -> str:
    (folder / name).write_bytes(b"half a model")
    return name


def _temporaries(folder) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name.endswith(".tmp") or ".tmp." in p.name}


@pytest.mark.parametrize("writer", ["model", "csv"])
def test_a_save_removes_the_temporaries_of_dead_writers_and_nothing_else(tmp_path, live_pid,
                                                                        writer):
    target = tmp_path / ("model.anirec" if writer == "model" else "out.csv")
    dead = _dead_pid()
    stale = {_plant(tmp_path, f".{target.name}.{dead}.0123abcd.tmp"),
             _plant(tmp_path, f".{target.name}.{dead}.ffffffff.tmp")}
    kept = {
        _plant(tmp_path, f".{target.name}.{live_pid}.0123abcd.tmp"),    # being written
        _plant(tmp_path, f".{target.name}.{os.getpid()}.0123abcd.tmp"),  # another thread's
        _plant(tmp_path, f".other.csv.{dead}.0123abcd.tmp"),            # another target
        _plant(tmp_path, f".{target.name}.{dead}.tmp"),                 # not the pattern
        _plant(tmp_path, f".{target.name}.{dead}.0123abcd.tmp.keep"),
        _plant(tmp_path, f"{target.name}.{dead}.0123abcd.tmp"),
    }
    (tmp_path / f".{target.name}.{dead}.aaaaaaaa.tmp").mkdir()  # a folder is never removed
    kept.add(f".{target.name}.{dead}.aaaaaaaa.tmp")
    if writer == "model":
        persistence.write_model_file(target, {"kind": "test"}, {})
    else:
        with cli._atomic_output(target) as stream:
            stream.write("user_id,anime_id\n1,2\n")
        assert target.read_text() == "user_id,anime_id\n1,2\n"
    assert _temporaries(tmp_path) == kept
    assert not stale & _temporaries(tmp_path)


_KILLED_SAVE = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from anirec.model import persistence

    def stall(descriptor):  # the data is written; the process dies before the rename
        print("writing", flush=True)
        time.sleep(600)

    os.fsync = stall
    weights = np.random.default_rng(0).standard_normal(4 * 2**20).astype(np.float32)
    persistence.write_model_file(sys.argv[1], {"kind": "test"}, {"params": weights})
""")


def test_saves_killed_by_sigkill_leave_at_most_one_temporary_and_the_next_save_none(tmp_path):
    target = tmp_path / "model.anirec"
    persistence.write_model_file(target, {"kind": "test"}, {"params": [1.0]})
    for _ in range(3):
        child = subprocess.Popen([sys.executable, "-c", _KILLED_SAVE, str(target)],
                                 stdout=subprocess.PIPE, text=True, cwd=tmp_path)
        try:
            assert child.stdout.readline() == "writing\n"
        finally:
            child.kill()  # SIGKILL: no clean-up runs
            child.wait()
            child.stdout.close()
        # Each killed save removed the one before it: one 16 MiB temporary, not three.
        left = _temporaries(tmp_path)
        assert len(left) == 1 and os.path.getsize(tmp_path / left.pop()) > 2**24
        assert persistence.read_model_file(target)[1]["params"].tolist() == [1.0]
    persistence.write_model_file(target, {"kind": "test"}, {"params": [2.0]})
    assert _temporaries(tmp_path) == set()
    assert persistence.read_model_file(target)[1]["params"].tolist() == [2.0]


_OPEN_FIFO = textwrap.dedent("""
    import os, sys
    from anirec import _files

    try:
        _files.open_regular(sys.argv[1], lambda info: ValueError("refused"))
    except ValueError as error:
        print(error)
""")


def test_open_regular_refuses_a_fifo_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "swapped"
    os.mkfifo(fifo)
    # In a child process: a blocking open would wait for a writer forever.
    done = subprocess.run([sys.executable, "-c", _OPEN_FIFO, str(fifo)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.stdout == "refused\n", done.stderr
    regular = tmp_path / "regular"
    regular.write_bytes(b"data")
    with _files.open_regular(regular, lambda info: ValueError("refused")) as handle:
        assert os.get_blocking(handle.fileno())  # reads wait for data as usual
        assert handle.read() == b"data"
