"""Benchmark options shared by every benchmark module.

``--anirec-full`` (or the environment variable ``ANIREC_BENCH_FULL=1``) enables the
benchmarks marked ``@pytest.mark.full``: runs at the full MyAnimeList size that are too slow
for an ordinary run. Without it they are skipped.
"""

import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--anirec-full", action="store_true", default=False,
                     help="run the full-size anirec benchmarks (also: ANIREC_BENCH_FULL=1)")


def pytest_configure(config):
    config.addinivalue_line("markers", "full: full-size benchmark, needs --anirec-full")


def full_enabled(config) -> bool:
    return bool(config.getoption("--anirec-full")) or os.environ.get("ANIREC_BENCH_FULL") == "1"


def pytest_collection_modifyitems(config, items):
    if full_enabled(config):
        return
    skip = pytest.mark.skip(reason="full-size benchmark: pass --anirec-full or ANIREC_BENCH_FULL=1")
    for item in items:
        if "full" in item.keywords:
            item.add_marker(skip)
