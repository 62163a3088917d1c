"""One training epoch of ``TwoTower.fit`` on 200,000 synthetic triplets, both backends.

Run with ``pytest benchmarks/test_bench_model.py --benchmark-group-by=group``; each group is one
batch size with ids ``cython`` and ``numpy``. The towers are the default ``[19, 256, 128, 64,
32]`` in float32 with Adam; the figure to read is samples per second = 200,000 / mean time.
"""

import numpy as np
import pytest

import anirec
from anirec.model import TwoTower

BACKENDS = ["cython", "numpy"] if anirec.backend.cython_available() else ["numpy"]
N_EXAMPLES, N_USERS, N_ITEMS = 200_000, 20_000, 5_000


@pytest.fixture(scope="module")
def triplets():
    rng = np.random.default_rng(7)
    user_x = rng.standard_normal((N_USERS, 19))
    item_x = rng.standard_normal((N_ITEMS, 19))
    users = rng.integers(0, N_USERS, N_EXAMPLES)
    items = rng.integers(0, N_ITEMS, N_EXAMPLES)
    ratings = rng.integers(1, 11, N_EXAMPLES).astype(float)
    return (users, items, ratings), user_x, item_x


@pytest.mark.parametrize("batch_size", [64, 256, 1024])
@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_one_epoch(benchmark, triplets, backend, batch_size):
    benchmark.group = f"TwoTower.fit, one epoch of {N_EXAMPLES} triplets, batch {batch_size}"
    train, user_x, item_x = triplets
    model = TwoTower(epochs=1, batch_size=batch_size, validation_fraction=0.0)
    with anirec.use_backend(backend):
        benchmark.pedantic(model.fit, args=(train, user_x, item_x), rounds=3, iterations=1)
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["samples_per_second"] = N_EXAMPLES / benchmark.stats["mean"]
