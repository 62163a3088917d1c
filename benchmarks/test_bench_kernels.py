"""Kernel benchmarks: the compiled kernels and their NumPy twin side by side.

Run with ``pytest benchmarks/test_bench_kernels.py --benchmark-group-by=group``; each group is
one kernel at one size, with the two backends as ids ``cython`` and ``numpy``. Every call goes
through the checked public API (:mod:`anirec.kernels`), as the model calls it, with output
buffers passed in where the API takes them. Sizes are those of a training step of the default
towers (``[19, 256, 128, 64, 32]``) and of retrieval over a MyAnimeList-sized catalogue.

``ANIREC_BENCH_BLAS_THREADS=n`` caps the BLAS thread pools (both backends) for the run: on a
small shared machine, spinning BLAS threads make timings swing by an order of magnitude.
"""

import contextlib
import os

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import anirec
from anirec import kernels as K

BACKENDS = ["cython", "numpy"] if anirec.backend.cython_available() else ["numpy"]
BATCHES = [64, 256, 1024]
LAYERS = [(19, 256), (256, 128), (64, 32)]
TOWER = np.array([19, 256, 128, 64, 32], dtype=np.int64)
DTYPE = np.float32


BLAS_THREADS = os.environ.get("ANIREC_BENCH_BLAS_THREADS")


@pytest.fixture(params=BACKENDS)
def backend(request):
    with contextlib.ExitStack() as stack:
        if BLAS_THREADS:
            stack.enter_context(threadpool_limits(limits=int(BLAS_THREADS), user_api="blas"))
        stack.enter_context(anirec.use_backend(request.param))
        yield request.param


def _rng():
    return np.random.default_rng(2023)


def _normal(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(DTYPE)


@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("k,m", LAYERS)
def test_dense_forward(benchmark, backend, n, k, m):
    benchmark.group = f"dense_forward {n}x{k}->{m}"
    rng = _rng()
    X, W, b, out = _normal(rng, (n, k)), _normal(rng, (k, m)), _normal(rng, m), np.empty((n, m), DTYPE)
    benchmark(K.dense_forward, X, W, b, out=out)


@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("k,m", LAYERS)
def test_dense_backward(benchmark, backend, n, k, m):
    benchmark.group = f"dense_backward {n}x{k}->{m}"
    rng = _rng()
    X, W, b = _normal(rng, (n, k)), _normal(rng, (k, m)), _normal(rng, m)
    out = K.dense_forward(X, W, b)
    G = _normal(rng, (n, m))
    gW, gb, gX = np.empty((k, m), DTYPE), np.empty(m, DTYPE), np.empty((n, k), DTYPE)
    benchmark(K.dense_backward, G, X, W, out, grad_W=gW, grad_b=gb, grad_X=gX)


@pytest.mark.parametrize("n", BATCHES)
def test_l2_normalize(benchmark, backend, n):
    benchmark.group = f"l2_normalize {n}x32"
    rng = _rng()
    Z = _normal(rng, (n, 32))
    benchmark(K.l2_normalize, Z, out=np.empty_like(Z), norms=np.empty(n, DTYPE))


@pytest.mark.parametrize("n", BATCHES)
def test_normalize_dot(benchmark, backend, n):
    benchmark.group = f"normalize_dot {n}x32"
    rng = _rng()
    benchmark(K.normalize_dot, _normal(rng, (n, 32)), _normal(rng, (n, 32)))


@pytest.mark.parametrize("n", BATCHES)
def test_normalize_dot_backward(benchmark, backend, n):
    benchmark.group = f"normalize_dot_backward {n}x32"
    rng = _rng()
    _, Yu, Yv, nu, nv = K.normalize_dot(_normal(rng, (n, 32)), _normal(rng, (n, 32)))
    benchmark(K.normalize_dot_backward, _normal(rng, n), Yu, Yv, nu, nv)


@pytest.mark.parametrize("n", BATCHES)
def test_mse(benchmark, backend, n):
    benchmark.group = f"mse {n}"
    rng = _rng()
    benchmark(K.mse, _normal(rng, n), _normal(rng, n), grad=np.empty(n, DTYPE))


def _n_params():
    return K.n_parameters(TOWER, TOWER)


def test_sgd_step(benchmark, backend):
    n = _n_params()
    benchmark.group = f"sgd_step momentum {n} params"
    rng = _rng()
    param, grad, velocity = _normal(rng, n), _normal(rng, n, 1e-6), np.zeros(n, DTYPE)
    benchmark(K.sgd_step, param, grad, lr=0.01, momentum=0.9, weight_decay=1e-5,
              velocity=velocity)


def test_adam_step(benchmark, backend):
    n = _n_params()
    benchmark.group = f"adam_step {n} params"
    rng = _rng()
    param, grad = _normal(rng, n), _normal(rng, n, 1e-3)
    m, v = np.zeros(n, DTYPE), np.zeros(n, DTYPE)
    benchmark(K.adam_step, param, grad, m, v, lr=1e-3, step=10, weight_decay=1e-5)


@pytest.mark.parametrize("n", BATCHES)
def test_gather_rows(benchmark, backend, n):
    benchmark.group = f"gather_rows {n} of 25000x19"
    rng = _rng()
    X = _normal(rng, (25_000, 19))
    index = rng.integers(0, 25_000, n)
    benchmark(K.gather_rows, X, index, out=np.empty((n, 19), DTYPE))


def _loo_stats(rng, n_users=20_000, n_items=25_000, n_genres=17):
    genres = (rng.random((n_items, n_genres)) < 0.2).astype(DTYPE)
    count = rng.integers(2, 200, n_users).astype(DTYPE)
    den = (count[:, None] * rng.uniform(0.1, 0.5, (n_users, n_genres))).round().astype(DTYPE) + 1
    num = (den * rng.uniform(4, 9, (n_users, n_genres))).astype(DTYPE)
    total = (count * 7).astype(DTYPE)
    return K.LeaveOneOutStats(num, den, total, count, genres, np.ones(n_items, DTYPE), 1, 7.0,
                              np.zeros(n_genres + 2, DTYPE), np.ones(n_genres + 2, DTYPE))


@pytest.mark.parametrize("n", BATCHES)
def test_user_rows_loo(benchmark, backend, n):
    benchmark.group = f"user_rows_loo {n}x19"
    rng = _rng()
    stats = _loo_stats(rng)
    users, items = rng.integers(0, 20_000, n), rng.integers(0, 25_000, n)
    ratings = rng.integers(1, 11, n).astype(DTYPE)
    benchmark(K.user_rows_loo, stats, users, items, ratings, out=np.empty((n, 19), DTYPE))


def test_topk(benchmark, backend):
    benchmark.group = "topk 2000 queries x 25000 items x 32, k=10, 50 exclusions each"
    rng = _rng()
    Q, V = _normal(rng, (2_000, 32)), _normal(rng, (25_000, 32))
    indptr = np.arange(0, 2_001 * 50, 50, dtype=np.int64)
    indices = rng.integers(0, 25_000, 2_000 * 50)
    benchmark.pedantic(K.topk, args=(Q, V, 10), kwargs=dict(exclude=(indptr, indices)),
                       rounds=3, iterations=1, warmup_rounds=1)


N_TRIPLETS = 200_000


@pytest.mark.parametrize("batch_size", BATCHES)
def test_train_epoch(benchmark, backend, batch_size):
    benchmark.group = f"train_epoch {N_TRIPLETS} triplets, batch {batch_size}, adam"
    rng = _rng()
    n_users, n_items = 20_000, 25_000
    users, items = rng.integers(0, n_users, N_TRIPLETS), rng.integers(0, n_items, N_TRIPLETS)
    targets = rng.uniform(-1, 1, N_TRIPLETS).astype(DTYPE)
    user_x, item_x = _normal(rng, (n_users, 19)), _normal(rng, (n_items, 19))
    n = _n_params()
    params = _normal(rng, n, 0.05)
    grads, m, v = (np.zeros(n, DTYPE) for _ in range(3))
    order = rng.permutation(N_TRIPLETS)

    run = K.EpochPlan(K.Examples(users, items, targets),
                      K.Tower(TOWER, (K.Features("user", user_x),)),
                      K.Tower(TOWER, (K.Features("item", item_x),)),
                      K.Params(params, grads, m, v),
                      K.EpochConfig(optimizer="adam", batch_size=batch_size),
                      threads=anirec.backend.available_cores())

    def epoch():
        return run.run(order, lr=1e-4)

    benchmark.pedantic(epoch, rounds=2, iterations=1)
