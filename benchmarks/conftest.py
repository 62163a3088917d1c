"""Benchmark options shared by every benchmark module.

``pytest benchmarks/`` is the quick run (a few minutes on two cores). Two options add the long
ones:

- ``--anirec-long`` (or ``ANIREC_BENCH_LONG=1``) adds the benchmarks marked
  ``@pytest.mark.long`` and the whole training epochs on the NumPy twin (:func:`is_long`):
  up to a minute an epoch at small batches, several rounds each;
- ``--anirec-full`` (or ``ANIREC_BENCH_FULL=1``) adds those marked ``@pytest.mark.full``:
  runs at the full MyAnimeList size (24M ratings), tens of minutes.

The result tables show the minimum, the median, operations per second and the rounds (all of
pytest-benchmark's columns made them 230 characters wide); ``--benchmark-columns`` chooses
others.
"""

import os

import pytest

#: The columns of the result tables unless ``--benchmark-columns`` is given.
COLUMNS = ["min", "median", "ops", "rounds"]
#: Test functions that train whole epochs; their NumPy-twin variants are long (see is_long).
EPOCH_TESTS = ("test_train_epoch", "test_fit_one_epoch")


def pytest_addoption(parser):
    parser.addoption("--anirec-full", action="store_true", default=False,
                     help="run the full-size anirec benchmarks (also: ANIREC_BENCH_FULL=1)")
    parser.addoption("--anirec-long", action="store_true", default=False,
                     help="also run the long anirec benchmarks, the NumPy twin's training "
                          "epochs (also: ANIREC_BENCH_LONG=1)")


def pytest_configure(config):
    config.addinivalue_line("markers", "full: full-size benchmark, needs --anirec-full")
    config.addinivalue_line("markers", "long: a benchmark of minutes, needs --anirec-long")
    # pytest-benchmark reads its options after this hook (its own runs last).
    if getattr(config.option, "benchmark_columns", "absent") is None:
        config.option.benchmark_columns = COLUMNS


def full_enabled(config) -> bool:
    return bool(config.getoption("--anirec-full")) or os.environ.get("ANIREC_BENCH_FULL") == "1"


def long_enabled(config) -> bool:
    return bool(config.getoption("--anirec-long")) or os.environ.get("ANIREC_BENCH_LONG") == "1"


def is_long(item) -> bool:
    """Marked ``long``, or a whole training epoch on the NumPy twin (the point of those runs
    is the compiled epoch; its twin is the slow reference)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return "long" in item.keywords or (getattr(item, "originalname", "") in EPOCH_TESTS
                                       and "numpy" in params.values())


def pytest_collection_modifyitems(config, items):
    full = pytest.mark.skip(reason="full-size benchmark: pass --anirec-full or "
                                   "ANIREC_BENCH_FULL=1")
    long = pytest.mark.skip(reason="long benchmark: pass --anirec-long or ANIREC_BENCH_LONG=1")
    for item in items:
        if "full" in item.keywords and not full_enabled(config):
            item.add_marker(full)
        elif is_long(item) and not long_enabled(config):
            item.add_marker(long)
