"""Cython versus NumPy, kernel by kernel, through the checked API in :mod:`anirec.kernels`."""

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anirec import kernels as K
from .kernel_helpers import DTYPES, assert_close, both, make_loo, requires_cython

pytestmark = requires_cython

SHAPES = [(1, 1, 1), (1, 19, 256), (7, 3, 5), (64, 19, 32), (33, 128, 64), (0, 4, 3), (5, 0, 3)]
FEW = settings(max_examples=25, deadline=None)


def _rng(*key):
    # crc32, not hash(): string hashes change from one interpreter run to the next.
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _dense_args(rng, n, k, m, dtype):
    X = rng.standard_normal((n, k)).astype(dtype)
    W = rng.standard_normal((k, m)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    return X, W, b


def _check_dense(dtype, n, k, m, relu, rng):
    X, W, b = _dense_args(rng, n, k, m, dtype)
    (ref, _, _), (got, _, _) = both(K.dense_forward, X, W, b, relu=relu)
    assert_close(got, ref, dtype)
    if relu and n * m:
        assert (got >= 0).all()
    out = ref
    grad = rng.standard_normal((n, m)).astype(dtype)
    for need in (True, False):
        (ref_g, ref_args, _), (got_g, got_args, _) = both(
            K.dense_backward, grad, X, W, out, relu=relu, need_grad_X=need)
        assert_close(got_g, ref_g, dtype)
        assert_close(got_args[0], ref_args[0], dtype)  # grad_out masked in place
        assert (got_g[2] is None) == (not need)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k,m", SHAPES)
@pytest.mark.parametrize("relu", [True, False])
def test_dense_grid(dtype, n, k, m, relu):
    _check_dense(dtype, n, k, m, relu, _rng("dense", n, k, m, relu))


@FEW
@given(n=st.integers(1, 40), k=st.integers(1, 40), m=st.integers(1, 40),
       relu=st.booleans(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31))
def test_dense_hypothesis(n, k, m, relu, dtype, seed):
    _check_dense(dtype, n, k, m, relu, np.random.default_rng(seed))


def test_dense_forward_writes_into_out():
    rng = _rng("out")
    X, W, b = _dense_args(rng, 6, 4, 3, np.float64)
    for (_, args, kwargs) in both(K.dense_forward, X, W, b, out=np.full((6, 3), np.nan)):
        np.testing.assert_allclose(kwargs["out"], np.maximum(X @ W + b, 0), rtol=1e-12)


def _normalize_inputs(rng, n, d, dtype, zero_rows):
    Zu = rng.standard_normal((n, d)).astype(dtype)
    Zv = rng.standard_normal((n, d)).astype(dtype)
    if zero_rows and n:
        Zu[0] = 0
        Zv[-1] = 0
    return Zu, Zv


def _check_normalize(dtype, n, d, zero_rows, rng):
    Zu, Zv = _normalize_inputs(rng, n, d, dtype, zero_rows)
    (ref, _, _), (got, _, _) = both(K.l2_normalize, Zu)
    assert_close(got, ref, dtype)
    (ref, _, _), (got, _, _) = both(K.normalize_dot, Zu, Zv)
    assert_close(got, ref, dtype)
    grad_pred = rng.standard_normal(n).astype(dtype)
    (ref_b, _, _), (got_b, _, _) = both(K.normalize_dot_backward, grad_pred, *ref[1:])
    assert_close(got_b, ref_b, dtype)
    assert all(np.isfinite(g).all() for g in got_b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,d", [(1, 1), (1, 32), (7, 5), (64, 32), (0, 3)])
@pytest.mark.parametrize("zero_rows", [False, True])
def test_normalize_grid(dtype, n, d, zero_rows):
    _check_normalize(dtype, n, d, zero_rows, _rng("norm", n, d, zero_rows))


@FEW
@given(n=st.integers(1, 30), d=st.integers(1, 40), zero_rows=st.booleans(),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31))
def test_normalize_hypothesis(n, d, zero_rows, dtype, seed):
    _check_normalize(dtype, n, d, zero_rows, np.random.default_rng(seed))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 7, 1024])
def test_mse(dtype, n):
    rng = _rng("mse", n)
    pred = rng.uniform(-1, 1, n).astype(dtype)
    target = rng.uniform(-1, 1, n).astype(dtype)
    (ref, _, _), (got, _, _) = both(K.mse, pred, target)
    assert isinstance(got[0], float)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-12, atol=1e-15)  # both accumulate in double
    assert_close(got[1], ref[1], dtype)
    (ref, _, _), (got, _, _) = both(K.mse, pred, target, return_grad=False)
    assert got[1] is None and ref[1] is None
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
@pytest.mark.parametrize("n", [1, 13, 1000])
def test_sgd_step(dtype, momentum, weight_decay, n):
    rng = _rng("sgd", momentum, weight_decay, n)
    param, grad, velocity = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    results = both(K.sgd_step, param, grad, lr=0.05, momentum=momentum,
                   weight_decay=weight_decay, velocity=velocity)
    (_, ref_args, ref_kw), (_, got_args, got_kw) = results
    assert_close(got_args[0], ref_args[0], dtype)
    assert_close(got_kw["velocity"], ref_kw["velocity"], dtype)
    if momentum == 0:  # the velocity is left alone
        np.testing.assert_array_equal(got_kw["velocity"], velocity)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("step", [1, 2, 50])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
@pytest.mark.parametrize("n", [1, 13, 1000])
def test_adam_step(dtype, step, weight_decay, n):
    rng = _rng("adam", step, weight_decay, n)
    param, grad = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    m = rng.standard_normal(n).astype(dtype) * 0.1
    v = rng.uniform(0, 0.1, n).astype(dtype)
    (_, ref, _), (_, got, _) = both(K.adam_step, param, grad, m, v, lr=1e-3, step=step,
                                    weight_decay=weight_decay)
    for index in (0, 2, 3):
        assert_close(got[index], ref[index], dtype)


@requires_cython
@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_mask_and_bias_sums_give_the_bits_of_numpy(dtype):
    # The compiled mask-and-sum loop (its AVX2 clone on such a CPU) against the twin's
    # ``grad_out *= out > 0`` and row-order column sums: equal, -0.0 included. 45 columns
    # leave a vector tail.
    rng = _rng("mask-bits")
    G = rng.standard_normal((37, 45)).astype(dtype)
    X, W = rng.standard_normal((37, 9)).astype(dtype), rng.standard_normal((9, 45)).astype(dtype)
    out = np.maximum(rng.standard_normal((37, 45)), 0).astype(dtype)
    G[1, 2], out[1, 2] = -1.5, 0.0
    (ref, ref_args, _), (got, got_args, _) = both(K.dense_backward, G, X, W, out, relu=True)
    np.testing.assert_array_equal(got_args[0], ref_args[0])  # the masked gradient, in place
    assert np.signbit(got_args[0][1, 2])
    np.testing.assert_array_equal(got[1], ref[1])  # grad_b


@requires_cython
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_adam_step_gives_the_bits_of_numpy(dtype, weight_decay):
    # The compiled loop (its AVX2 clone on such a CPU) performs each element's operations in
    # the twin's order and dtype: not close, equal. 1,003 elements leave a vector tail.
    rng = _rng("adam-bits", weight_decay)
    n = 1003
    args = [rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype),
            (rng.standard_normal(n) * 0.1).astype(dtype), rng.uniform(0, 0.1, n).astype(dtype)]
    (_, ref, _), (_, got, _) = both(K.adam_step, *args, lr=1e-3, step=7,
                                    weight_decay=weight_decay)
    for index in (0, 2, 3):
        np.testing.assert_array_equal(got[index], ref[index])


def _around_the_smallest_normal(dtype, n):
    """Optimizer states just below, at and above the smallest normal number (either sign),
    the smallest subnormal, zero and ordinary values, repeated over ``n`` elements (vector
    bodies and a tail)."""
    info = np.finfo(dtype)
    values = np.array([1.05 * info.tiny, -1.05 * info.tiny, 2 * info.tiny, -2 * info.tiny,
                       info.smallest_subnormal, 0.0, 0.5, -0.25], dtype=dtype)
    return np.resize(values, n)


@requires_cython
@pytest.mark.parametrize("dtype", DTYPES)
def test_optimizer_states_below_the_smallest_normal_become_zero(dtype):
    # A weight whose gradient stays zero (a dead ReLU unit): its moments decay by beta each
    # step, and rounded to nearest a subnormal one would stop at the smallest subnormal for
    # good. Both backends store zero once a state falls below the smallest normal number; the
    # expected values are the decay in the dtype, then that rule.
    info = np.finfo(dtype)
    assert info.smallest_subnormal * dtype(0.9) == info.smallest_subnormal  # why it sticks
    n = 37
    state = _around_the_smallest_normal(dtype, n)
    zero = np.zeros(n, dtype)

    def expected(decayed):
        return np.where(np.abs(decayed) < info.tiny, dtype(0), decayed)

    (_, ref, _), (_, got, _) = both(K.adam_step, zero.copy(), zero, state, np.abs(state),
                                    lr=1e-3, step=50)
    m = expected(state * dtype(0.9))
    for args in (ref, got):
        np.testing.assert_array_equal(args[2], m)
        np.testing.assert_array_equal(args[3], expected(np.abs(state) * dtype(0.999)))
        np.testing.assert_array_equal(args[0][m == 0], 0)  # a zero moment moves nothing
    results = both(K.sgd_step, zero.copy(), zero, lr=0.1, momentum=0.9, velocity=state)
    for _, _, kwargs in results:
        np.testing.assert_array_equal(kwargs["velocity"], expected(state * dtype(0.9)))


@requires_cython
@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_step_split_over_threads(dtype):
    # Large enough (and not a multiple of the chunk) for the compiled kernel to split it over
    # OpenMP threads: bit-identical to one thread, and equal to NumPy.
    from threadpoolctl import threadpool_limits

    import anirec

    n = (1 << 18) + 4097
    rng = _rng("adam-threads")
    args = [rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype),
            (rng.standard_normal(n) * 0.1).astype(dtype), rng.uniform(0, 0.1, n).astype(dtype)]
    runs = []
    for threads in (1, 2):
        copies = [a.copy() for a in args]
        with anirec.use_backend("cython"), threadpool_limits(limits=threads, user_api="openmp"):
            K.adam_step(*copies, lr=1e-3, step=3, weight_decay=1e-2)
        runs.append(copies)
    for one, two in zip(*runs):
        np.testing.assert_array_equal(one, two)
    (_, ref, _), _ = both(K.adam_step, *args, lr=1e-3, step=3, weight_decay=1e-2)
    for index in (0, 2, 3):
        assert_close(runs[0][index], ref[index], dtype)


@requires_cython
@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_same_result_on_one_or_many_blas_threads(dtype):
    from anirec._kernels import _blas

    rng = _rng("gemm-threads")
    A = rng.standard_normal((300, 64)).astype(dtype)
    B = rng.standard_normal((64, 200)).astype(dtype)
    results = []
    for limit in (0, 1 << 40):  # 0: BLAS's own threading; huge: always one thread
        previous = _blas.set_single_thread_max(limit)
        try:
            C = np.empty((300, 200), dtype)
            _blas.gemm_rowmajor(False, False, 1.0, A, B, 0.0, C)
            results.append(C)
        finally:
            _blas.set_single_thread_max(previous)
    np.testing.assert_array_equal(results[0], results[1])
    assert_close(results[0], A @ B, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_rows,d,n", [(1, 1, 1), (10, 19, 64), (50, 7, 0), (3, 5, 20)])
def test_gather_rows(dtype, n_rows, d, n):
    rng = _rng("gather", n_rows, d, n)
    X = rng.standard_normal((n_rows, d)).astype(dtype)
    index = rng.integers(0, n_rows, n).astype(np.int64)
    (ref, _, _), (got, _, _) = both(K.gather_rows, X, index)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got, X[index])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", [0, 1, 2])
def test_user_rows_loo(dtype, mode):
    stats, users, items, ratings = make_loo(_rng("loo", mode), dtype, mode=mode)
    (ref, _, _), (got, _, _) = both(K.user_rows_loo, stats, users, items, ratings)
    assert_close(got, ref, dtype)
    assert np.isfinite(got).all()


@FEW
@given(mode=st.sampled_from([0, 1, 2]), dtype=st.sampled_from(DTYPES),
       n_users=st.integers(1, 8), n_genres=st.integers(1, 6), n_examples=st.integers(1, 40),
       seed=st.integers(0, 2**31))
def test_user_rows_loo_hypothesis(mode, dtype, n_users, n_genres, n_examples, seed):
    stats, users, items, ratings = make_loo(
        np.random.default_rng(seed), dtype, n_users=max(n_users, 2), n_items=7,
        n_genres=n_genres, n_examples=max(n_examples, 4), mode=mode)
    (ref, _, _), (got, _, _) = both(K.user_rows_loo, stats, users, items, ratings)
    assert_close(got, ref, dtype)


def _random_exclusions(rng, n, m, density):
    """CSR exclusions, each query's list unsorted and sometimes holding a duplicate."""
    lists = []
    for _ in range(n):
        chosen = np.flatnonzero(rng.random(m) < density)
        if chosen.size and rng.random() < 0.5:
            chosen = np.append(chosen, chosen[0])
        lists.append(rng.permutation(chosen))
    indptr = np.zeros(n + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(x) for x in lists])
    indices = np.concatenate(lists).astype(np.int64) if n else np.zeros(0, np.int64)
    return indptr, indices


def _check_topk(dtype, n, m, d, k, block_size, density, rng):
    Q = rng.standard_normal((n, d)).astype(dtype)
    V = rng.standard_normal((m, d)).astype(dtype)
    exclude = _random_exclusions(rng, n, m, density) if density is not None else None
    (ref, _, _), (got, _, _) = both(K.topk, Q, V, k, exclude=exclude, block_size=block_size)
    np.testing.assert_array_equal(got[0], ref[0])
    assert_close(got[1], ref[1], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,m,d,k,block_size", [
    (1, 1, 1, 1, 1), (1, 50, 8, 10, 1024), (37, 200, 16, 10, 8), (20, 30, 4, 30, 7),
    (9, 12, 3, 40, 4), (0, 10, 3, 2, 4), (5, 0, 3, 2, 4), (64, 500, 32, 1, 64)])
@pytest.mark.parametrize("density", [None, 0.0, 0.3, 1.0])
def test_topk_grid(dtype, n, m, d, k, block_size, density):
    _check_topk(dtype, n, m, d, k, block_size, density, _rng("topk", n, m, d, k, density))


@FEW
@given(n=st.integers(0, 30), m=st.integers(1, 60), d=st.integers(1, 9), k=st.integers(1, 70),
       block_size=st.integers(1, 40), density=st.sampled_from([None, 0.0, 0.1, 0.6, 1.0]),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31))
def test_topk_hypothesis(n, m, d, k, block_size, density, dtype, seed):
    _check_topk(dtype, n, m, d, k, block_size, density, np.random.default_rng(seed))
