"""The compiled extension itself: it is active when required, reports how it was built, shares
the NumPy twin's namespace and constants, and its row-major GEMM wrapper is right."""

import inspect
import os

import numpy as np
import pytest

import anirec
from anirec._kernels import _numpy
from .kernel_helpers import HAS_CYTHON, requires_cython

RAW_KERNELS = ["dense_forward", "dense_backward", "l2_normalize", "normalize_dot",
               "normalize_dot_backward", "mse", "sgd_step", "adam_step", "gather_rows",
               "user_rows_loo", "topk", "train_epoch"]


@pytest.mark.skipif(os.environ.get("ANIREC_REQUIRE_EXTENSIONS", "") in ("", "0"),
                    reason="ANIREC_REQUIRE_EXTENSIONS is not set")
def test_compiled_backend_is_active_when_required():
    assert HAS_CYTHON, "ANIREC_REQUIRE_EXTENSIONS=1 but the compiled kernels cannot be imported"
    if os.environ.get("ANIREC_BACKEND", "cython") == "cython":
        assert anirec.get_backend() == "cython"


@requires_cython
def test_same_namespace_and_signatures_as_the_numpy_twin():
    from anirec._kernels import _cython

    for name in RAW_KERNELS:
        compiled, twin = getattr(_cython, name), getattr(_numpy, name)
        assert callable(compiled)
        compiled_params = list(inspect.signature(compiled).parameters)
        assert compiled_params == list(inspect.signature(twin).parameters), name
    assert _cython.NORM_EPS == _numpy.NORM_EPS
    from anirec._kernels import _ops

    assert _ops.NORM_EPS == _numpy.NORM_EPS


@requires_cython
def test_build_report():
    from anirec._kernels import _cython

    assert isinstance(_cython.openmp_enabled(), bool)
    threads = _cython.max_threads()
    assert isinstance(threads, int) and threads >= 1
    if not _cython.openmp_enabled():
        assert threads == 1
    config = anirec.show_config(print_out=False)
    assert config["openmp"] == _cython.openmp_enabled()


@requires_cython
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (3, 5, 7), (16, 1, 9), (4, 6, 0)])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (2.5, 1.0), (-1.0, 0.5)])
def test_gemm_rowmajor(dtype, trans_a, trans_b, m, n, k, alpha, beta):
    from anirec._kernels._blas import gemm_rowmajor

    rng = np.random.default_rng(m * 100 + n * 10 + k)
    A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    C = rng.standard_normal((m, n)).astype(dtype)
    expected = alpha * (A.T if trans_a else A) @ (B.T if trans_b else B) + beta * C
    gemm_rowmajor(trans_a, trans_b, alpha, A, B, beta, C)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(C, expected, rtol=rtol, atol=rtol * 10)


@requires_cython
def test_gemm_rowmajor_rejects_mismatched_shapes():
    from anirec._kernels._blas import gemm_rowmajor

    with pytest.raises(ValueError, match="shapes"):
        gemm_rowmajor(False, False, 1.0, np.ones((2, 3)), np.ones((4, 2)), 0.0, np.ones((2, 2)))
