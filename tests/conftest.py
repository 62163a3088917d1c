"""Shared test configuration: which backends to run the behavioural suites under."""

import numpy as np
import pytest

import anirec

BACKENDS = ["cython", "numpy"] if anirec.backend.cython_available() else ["numpy"]


@pytest.fixture(params=BACKENDS)
def each_backend(request):
    """Run a test once per available backend, with that backend active."""
    with anirec.use_backend(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
