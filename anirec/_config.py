"""``show_config``: what this installation of anirec was built with and is running on."""

from __future__ import annotations

import json
import os
import platform

import numpy as np

from anirec import backend


def _blas_info() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return []
    keys = ("user_api", "internal_api", "version", "num_threads", "filepath")
    return [{key: pool.get(key) for key in keys} for pool in threadpool_info()]


def show_config(print_out: bool = True) -> dict:
    """Report the anirec version, active backend, compiled parts (and which scores reader the
    backend selects), OpenMP, the threads training runs on by default, BLAS and whether the
    direct float32 products run.

    Parameters
    ----------
    print_out : bool
        Print the report as JSON as well as returning it.

    Returns
    -------
    dict
    """
    from anirec import __version__

    compiled = backend.cython_available()
    openmp = threads = direct_gemm = None
    if compiled:
        from anirec._kernels import _blas, _cython

        openmp = bool(_cython.openmp_enabled())
        threads = int(_cython.max_threads())
        direct_gemm = bool(_blas.direct_gemm_in_use())
    try:
        from anirec.data import _scores  # noqa: F401

        compiled_reader = True
    except ImportError:
        compiled_reader = False
    from anirec.data.scores import reader_name  # imported here: anirec.data imports slowly
    config = {
        "anirec": __version__,
        "backend": backend.get_backend(),
        "compiled_extensions": compiled,
        "compiled_scores_reader": compiled_reader,
        # The backend decides: the compiled reader with "cython", pyarrow with "numpy".
        "scores_reader": reader_name(),
        "openmp": openmp,
        "openmp_max_threads": threads,
        # What a fit trains on by default (TwoTower(n_threads=...), anirec train --threads).
        "training_threads": backend.training_threads(),
        # The compiled epoch's float32 products on anirec's AVX-512 kernels instead of BLAS.
        "direct_float32_gemm": direct_gemm,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": _blas_info(),
    }
    if print_out:
        print(json.dumps(config, indent=2))
    return config
