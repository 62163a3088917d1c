"""Shared test configuration: which backends to run the behavioural suites under, and a
deterministic hypothesis profile."""

import os

import numpy as np
import pytest
from hypothesis import settings

import anirec

# Property tests draw the same examples on every run, so a CI failure reproduces locally.
# ``HYPOTHESIS_PROFILE=explore`` draws fresh random examples when hunting for new failures.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

BACKENDS = ["cython", "numpy"] if anirec.backend.cython_available() else ["numpy"]


@pytest.fixture(params=BACKENDS)
def each_backend(request):
    """Run a test once per available backend, with that backend active."""
    with anirec.use_backend(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
