"""The scores-reader comparison of ``bench_reader.py`` under pytest.

A small run always (200,000 ratings, one round: the script works and the readers agree); the
full-size table (24.3M ratings, three interleaved rounds) with ``--anirec-full``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("bench_reader",
                                               Path(__file__).with_name("bench_reader.py"))
bench_reader = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_reader)


def test_reader_table_small(tmp_path, capsys):
    assert bench_reader.main(["--ratings", "200000", "--repeats", "1", "--dir", str(tmp_path),
                              "--tables", "read", "load"]) == 0
    out = capsys.readouterr().out
    assert "same arrays: True" in out and "same arrays: False" not in out


@pytest.mark.full
def test_reader_table_full():
    assert bench_reader.main(["--repeats", "3"]) == 0
