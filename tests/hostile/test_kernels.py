"""Hostile inputs to the checked kernels: one rule for both backends, nothing allocated for a
huge ``k``, no aliasing outputs, no overflow in float32 normalisation, no 32-bit truncation."""

import numpy as np
import pytest

import anirec
from anirec import kernels as K

DTYPES = [np.float32, np.float64]


def _unchanged(*arrays):
    """Copies to compare the inputs with after a refused call."""
    return [a.copy() for a in arrays]


def _assert_same(before, after):
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)


# ---------------------------------------------------------------------------------------------
# top-k: k capped at the catalogue before anything is allocated


def test_huge_k_is_capped_at_the_items(each_backend):
    rng = np.random.default_rng(0)
    Q, V = rng.standard_normal((3, 4)), rng.standard_normal((7, 4))
    # Uncapped, this allocates (3, 2**40) int64 and float64 outputs: 50 TB, a MemoryError.
    index, score = K.topk(Q, V, 2**40)
    assert index.shape == score.shape == (3, 7)
    np.testing.assert_array_equal(index, np.argsort(-(Q @ V.T), axis=1, kind="stable"))


def test_k_capped_with_exclusions_pads_with_minus_one(each_backend):
    Q, V = np.ones((2, 2)), np.eye(3, 2)
    exclude = (np.array([0, 2, 2], np.int64), np.array([0, 1], np.int64))
    index, score = K.topk(Q, V, 10**12, exclude=exclude)
    assert index.shape == (2, 3)
    np.testing.assert_array_equal(index[0], [2, -1, -1])
    assert np.all(score[0, 1:] == -np.inf)


def test_no_items_gives_empty_rows(each_backend):
    index, score = K.topk(np.ones((2, 3)), np.ones((0, 3)), 5)
    assert index.shape == score.shape == (2, 0)


@pytest.mark.parametrize("k", [0, -1, 1.5, "3", True])
def test_bad_k_is_refused(each_backend, k):
    with pytest.raises((TypeError, ValueError), match="k must"):
        K.topk(np.ones((1, 2)), np.ones((3, 2)), k)


# ---------------------------------------------------------------------------------------------
# NaN and inf: refused by both backends alike


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["Q", "V"])
def test_topk_refuses_non_finite_scores(each_backend, bad, where):
    Q, V = np.ones((2, 3)), np.arange(12, dtype=np.float64).reshape(4, 3)
    (Q if where == "Q" else V)[1, 2] = bad
    before = _unchanged(Q, V)
    with pytest.raises(ValueError, match=rf"{where} holds .* at \[1, 2\].*finite"):
        K.topk(Q, V, 2)
    _assert_same(before, (Q, V))


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_kernel_refuses_nan_inputs(each_backend, dtype):
    rng = np.random.default_rng(1)
    X, W, b = (rng.standard_normal(s).astype(dtype) for s in ((4, 3), (3, 2), (2,)))
    nan_X = X.copy()
    nan_X[2, 1] = np.nan
    calls = [
        ("X", lambda: K.dense_forward(nan_X, W, b)),
        ("Z", lambda: K.l2_normalize(nan_X)),
        ("Zu", lambda: K.normalize_dot(nan_X, X)),
        ("Zv", lambda: K.normalize_dot(X, nan_X)),
        ("grad_out", lambda: K.dense_backward(np.full((4, 2), np.nan, dtype), X, W,
                                              np.ones((4, 2), dtype))),
        ("pred", lambda: K.mse(np.array([np.nan], dtype), np.zeros(1, dtype))),
        ("grad", lambda: K.adam_step(np.zeros(2, dtype), np.array([0, np.inf], dtype),
                                     np.zeros(2, dtype), np.zeros(2, dtype), lr=0.1, step=1)),
        ("param", lambda: K.sgd_step(np.array([np.nan], dtype), np.zeros(1, dtype), lr=0.1)),
        ("Yu", lambda: K.inbatch_softmax(nan_X, X, np.zeros(4, np.int64), np.ones(4, dtype),
                                         np.zeros(1, dtype), 0.2)),
    ]
    for name, call in calls:
        with pytest.raises(ValueError, match=rf"^{name} holds (nan|inf)"):
            call()


# ---------------------------------------------------------------------------------------------
# out= aliasing an input: refused by both backends


@pytest.mark.parametrize("dtype", DTYPES)
def test_aliasing_outputs_are_refused(each_backend, dtype):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((4, 4)).astype(dtype)
    W = rng.standard_normal((4, 4)).astype(dtype)
    b = np.zeros(4, dtype)
    p, g, m, v = (rng.standard_normal(5).astype(dtype) for _ in range(4))
    v = np.abs(v)
    grad_out = X.copy()
    before = _unchanged(X, W, p, g, m, v)
    calls = [
        ("out shares memory with X", lambda: K.gather_rows(X, np.arange(4), out=X)),
        ("out shares memory with W", lambda: K.dense_forward(X, W, b, out=W)),
        ("out shares memory with Z", lambda: K.l2_normalize(X, out=X)),
        ("norms shares memory with Z", lambda: K.l2_normalize(X, norms=X[0])),
        ("param shares memory with m", lambda: K.adam_step(m, g, m, v, lr=0.1, step=1)),
        ("m shares memory with v", lambda: K.adam_step(p, g, m, m, lr=0.1, step=1)),
        ("param shares memory with grad", lambda: K.sgd_step(p, p, lr=0.1)),
        ("grad shares memory with pred", lambda: K.mse(p, g, grad=p)),
        ("grad_W shares memory with grad_out",
         lambda: K.dense_backward(grad_out, X, W, np.ones((4, 4), dtype), grad_W=grad_out)),
    ]
    for message, call in calls:
        with pytest.raises(ValueError, match=message):
            call()
    _assert_same(before, (X, W, p, g, m, v))


def test_partial_overlap_is_refused(each_backend):
    X = np.arange(20, dtype=np.float64).reshape(5, 4)
    with pytest.raises(ValueError, match="out shares memory with X"):
        K.gather_rows(X, np.array([0, 1], np.int64), out=X[3:])


def test_disjoint_views_of_one_buffer_are_fine(each_backend):
    buffer = np.zeros(20)
    X = np.arange(8, dtype=np.float64).reshape(2, 4)
    out = buffer[:8].reshape(2, 4)
    K.gather_rows(X, np.array([1, 0], np.int64), out=out)
    np.testing.assert_array_equal(out, X[::-1])


# ---------------------------------------------------------------------------------------------
# float32 normalisation: no overflow on either backend


@pytest.mark.parametrize("row", [[1e20, 1e20], [3e38, -3e38], [3e38, 3e38, 3e38, 1.0]])
def test_float32_normalisation_survives_overflow(each_backend, row):
    Z = np.array([row, [3.0, 4.0] + [0.0] * (len(row) - 2)], dtype=np.float32)
    Y, norms = K.l2_normalize(Z)
    expected = np.array(row, np.float64) / np.linalg.norm(np.array(row, np.float64) / 1e30) / 1e30
    np.testing.assert_allclose(Y[0], expected, rtol=1e-6)
    np.testing.assert_allclose(Y[1, :2], [0.6, 0.8], rtol=1e-6)
    assert norms[0] >= 1e20  # inf when the norm itself does not fit float32
    pred, Yu, Yv, _, _ = K.normalize_dot(Z, Z[::-1].copy())
    np.testing.assert_allclose(Yu[0], expected, rtol=1e-6)
    np.testing.assert_allclose(pred[0], expected[:2] @ [0.6, 0.8], rtol=1e-5, atol=1e-6)


def test_float64_normalisation_survives_overflow(each_backend):
    Y, _ = K.l2_normalize(np.array([[1e200, -1e200]]))
    np.testing.assert_allclose(Y, [[2**-0.5, -(2**-0.5)]], rtol=1e-12)


@pytest.mark.skipif(not anirec.backend.cython_available(), reason="compiled kernels not built")
@pytest.mark.parametrize("dtype", DTYPES)
def test_normalisation_of_normal_rows_is_bit_for_bit_the_plain_formula(dtype):
    # The overflow path must not touch ordinary rows: same bits as z / float(sqrt(sum z^2)).
    rng = np.random.default_rng(5)
    Z = (rng.standard_normal((50, 7)) * 10.0 ** rng.integers(-3, 4, (50, 1))).astype(dtype)
    with anirec.use_backend("cython"):
        Y, norms = K.l2_normalize(Z)
    # The compiled sum of squares: float64, four partial sums over j mod 4 (the tail beyond
    # the last full group of four into the first), then paired.
    z64 = Z.astype(np.float64)
    partial = [np.zeros(Z.shape[0]) for _ in range(4)]
    for j in range(Z.shape[1]):
        partial[j % 4 if j < Z.shape[1] // 4 * 4 else 0] += z64[:, j] * z64[:, j]
    squares64 = (partial[0] + partial[1]) + (partial[2] + partial[3])
    plain = np.sqrt(squares64 + 1e-6 * 1e-6).astype(dtype)
    np.testing.assert_array_equal(Y, Z / plain[:, None])
    np.testing.assert_array_equal(norms, plain)
    with anirec.use_backend("numpy"):
        Y_np, _ = K.l2_normalize(Z)
    squares = np.einsum("ij,ij->i", Z, Z)
    np.testing.assert_array_equal(
        Y_np, Z / np.sqrt(squares + dtype(1e-12))[:, None])


# ---------------------------------------------------------------------------------------------
# GEMM dimensions above 2**31 - 1: refused, not truncated


def test_dimensions_above_int_are_refused_before_any_work(each_backend):
    # Zero-width arrays: 2**31 rows cost no memory, and nothing gets allocated before the check.
    X = np.empty((2**31, 0), np.float32)
    W = np.empty((0, 0), np.float32)
    with pytest.raises(ValueError, match="n is 2147483648, above the largest"):
        K.dense_forward(X, W, np.empty(0, np.float32))
    with pytest.raises(ValueError, match="n is 2147483648, above the largest"):
        K.dense_backward(np.empty((2**31, 0), np.float32), X, W, np.empty((2**31, 0), np.float32),
                         need_grad_X=False)
    with pytest.raises(ValueError, match="d is 2147483648"):
        K.topk(np.empty((0, 2**31), np.float32), np.empty((0, 2**31), np.float32), 1)


@pytest.mark.skipif(not anirec.backend.cython_available(), reason="compiled kernels not built")
def test_compiled_gemm_twin_refuses_dimensions_above_int():
    from anirec._kernels._blas import gemm_rowmajor

    # Empty arrays with 2**31 rows: with 32-bit counters m wrapped to -2**31 unnoticed.
    A = np.empty((2**31, 0), np.float32)
    C = np.empty((2**31, 0), np.float32)
    with pytest.raises(ValueError, match="above 2\\*\\*31 - 1"):
        gemm_rowmajor(False, False, 1.0, A, np.empty((0, 0), np.float32), 0.0, C)


# ---------------------------------------------------------------------------------------------
# Optimizer steps


@pytest.mark.parametrize("step", [0, -1, 1.5, "2"])
def test_adam_step_below_one_is_refused(each_backend, step):
    p, g, m, v = (np.zeros(3) for _ in range(4))
    with pytest.raises((TypeError, ValueError), match="step must"):
        K.adam_step(p, g, m, v, lr=0.1, step=step)
    assert not p.any()
