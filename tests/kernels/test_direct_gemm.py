"""The direct float32 products (AVX-512F, no packing copies) that replace BLAS for the epoch's
single-threaded ``A B`` and ``A^T B``: right against a float64 reference, masked at every edge
of a tile, fused bias and ReLU as the separate pass computes them, and the epoch on the BLAS path
(which the default now bypasses on such a CPU) still following the NumPy twin."""

import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest

from .kernel_helpers import HAS_CYTHON, make_problem, requires_cython
from .test_train_epoch import OPTIMIZERS, _rounds_problem, _run, _state

if HAS_CYTHON:
    from anirec._kernels import _blas, _ops
    DIRECT = _blas.direct_gemm_available()
else:
    DIRECT = False

requires_direct = pytest.mark.skipif(not DIRECT, reason="no AVX-512F direct kernels here")


@contextlib.contextmanager
def direct_gemm(enabled):
    previous = _blas.set_direct_gemm(enabled)
    try:
        yield
    finally:
        _blas.set_direct_gemm(previous)


def _reference(A, B, C, trans_a, beta):
    """The product summed in float64, one term at a time (independent of any BLAS)."""
    a = (A.T if trans_a else A).astype(np.float64)
    b = B.astype(np.float64)
    out = np.zeros((a.shape[0], b.shape[1]))
    for p in range(a.shape[1]):
        out += np.outer(a[:, p], b[p])
    return out + (C.astype(np.float64) if beta else 0)


# Rows around the 8-row tile and every mix of the 4-, 2- and 1-row tiles after it, columns
# around the 16-lane halves of the 32-column tile.
SHAPES = [(1, 1, 1), (7, 15, 3), (8, 16, 5), (9, 17, 64), (16, 31, 2), (17, 32, 9),
          (3, 33, 1), (24, 80, 40), (12, 64, 0), (2, 5, 4), (6, 40, 7), (14, 64, 3),
          (13, 20, 11)]


@requires_direct
@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_direct_product_matches_a_float64_sum(m, n, k, trans_a, beta):
    rng = np.random.default_rng(m * 1000 + n * 10 + k)
    A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    B = rng.standard_normal((k, n)).astype(np.float32)
    # C is the leading rows of a larger buffer: a guard row after it must stay untouched.
    buffer = np.full((m + 1, n), 7.0, dtype=np.float32)
    C = buffer[:m]
    C[:] = rng.standard_normal((m, n)) if beta else np.nan  # beta 0 ignores C, NaN included
    expected = _reference(A, B, C, trans_a, beta)
    with direct_gemm(True):
        _blas.gemm_rowmajor(trans_a, False, 1.0, A, B, beta, C)
    np.testing.assert_allclose(C, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(buffer[m], 7.0)


@requires_direct
@pytest.mark.parametrize("m,n,k", [(9, 17, 64), (40, 128, 256), (1024, 32, 64)])
def test_direct_and_blas_products_agree(m, n, k):
    rng = np.random.default_rng(0)
    A, B = (rng.standard_normal(s).astype(np.float32) for s in ((m, k), (k, n)))
    results = []
    for enabled in (True, False):
        C = np.zeros((m, n), dtype=np.float32)
        with direct_gemm(enabled):
            _blas.gemm_rowmajor(False, False, 1.0, A, B, 0.0, C)
        results.append(C)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-5 * np.sqrt(k))


@requires_direct
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (9, 17, 5), (33, 80, 40)])
def test_fused_bias_and_relu_match_the_separate_pass(relu, m, n, k):
    rng = np.random.default_rng(n)
    X = rng.standard_normal((m, k)).astype(np.float32)
    W = rng.standard_normal((k, n)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    X[0, 0] = np.nan  # row 0 is NaN throughout: ReLU must keep it, not zero it
    outputs = []
    for enabled in (True, False):
        out = np.full((m, n), 5.0, dtype=np.float32)
        with direct_gemm(enabled):
            _ops.dense_forward(X, W, b, out, relu)
        outputs.append(out)
    fused, separate = outputs
    assert np.isnan(fused[0]).all()
    expected = _reference(X, W, np.zeros((m, n)), False, 0.0) + b
    if relu:
        expected = np.where(expected < 0, 0.0, expected)
    np.testing.assert_allclose(fused[1:], expected[1:], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused, separate, rtol=1e-5, atol=1e-5)
    if relu:
        assert (fused[1:] >= 0).all()


@requires_direct
def test_exact_sums_through_bias_and_relu():
    """Small integers sum exactly in any order: the fused store gives ``act(x W + b)`` to
    the bit, zeros and negatives alike."""
    X = np.array([[1, 2, -1], [0, 0, 0], [3, -2, 1]], dtype=np.float32)
    W = np.array([[1, -1], [2, 0], [5, 1]], dtype=np.float32)
    b = np.array([0.5, -1], dtype=np.float32)
    out = np.empty((3, 2), dtype=np.float32)
    with direct_gemm(True):
        _ops.dense_forward(X, W, b, out, True)
    np.testing.assert_array_equal(out, [[0.5, 0], [0.5, 0], [4.5, 0]])
    with direct_gemm(True):
        _ops.dense_forward(X, W, b, out, False)
    np.testing.assert_array_equal(out, [[0.5, -3], [0.5, -1], [4.5, -3]])


@requires_cython
def test_the_environment_switch_turns_the_kernels_off(tmp_path):
    code = ("import anirec; from anirec._kernels import _blas; "
            "print(anirec.show_config(print_out=False)['direct_float32_gemm'], "
            "_blas.set_direct_gemm(False))")
    env = dict(os.environ, ANIREC_DIRECT_GEMM="0")
    # Run outside the checkout: from its root, ``import anirec`` would find the sources.
    printed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True, cwd=tmp_path).stdout.split()
    assert printed == ["False", "False"]
    env.pop("ANIREC_DIRECT_GEMM")
    printed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True, cwd=tmp_path).stdout.split()
    assert printed == [str(DIRECT), str(DIRECT)]


@requires_direct
@pytest.mark.parametrize("optimizer,momentum", OPTIMIZERS)
@pytest.mark.parametrize("loo_mode,embedding_dim", [(None, 0), (2, 3)])
@pytest.mark.parametrize("batch_size", [1, 1000])
def test_epoch_on_the_blas_path_follows_numpy(optimizer, momentum, loo_mode, embedding_dim,
                                              batch_size):
    problem = make_problem(np.random.default_rng(5), np.float32, loo_mode=loo_mode,
                           embedding_dim=embedding_dim)
    kwargs = dict(optimizer=optimizer, momentum=momentum, batch_size=batch_size)
    ref, ref_losses, _ = _run("numpy", problem, **kwargs)
    with direct_gemm(False):
        got, got_losses, _ = _run("cython", problem, **kwargs)
    np.testing.assert_allclose(got_losses, ref_losses, rtol=2e-4)
    ref_state, got_state = _state(ref), _state(got)
    for name in ref_state:
        np.testing.assert_allclose(got_state[name], ref_state[name], rtol=2e-4, atol=2e-5,
                                   err_msg=name)


@requires_direct
@pytest.mark.parametrize("enabled", [True, False])
def test_batches_in_rounds_follow_numpy_on_both_paths(enabled):
    problem, batch = _rounds_problem(np.float32, 2, 4, 3)
    kwargs = dict(optimizer="adam", momentum=0.0, batch_size=batch)
    ref, ref_losses, _ = _run("numpy", problem, **kwargs)
    with direct_gemm(enabled):
        got, got_losses, _ = _run("cython", problem, **kwargs)
    np.testing.assert_allclose(got_losses, ref_losses, rtol=2e-3)
    for name, value in _state(ref).items():
        np.testing.assert_allclose(_state(got)[name], value, rtol=2e-3, atol=2e-4,
                                   err_msg=name)
