"""The compiled kernels gathered into one namespace, the twin of :mod:`anirec._kernels._numpy`.

Every raw kernel here has exactly the name and signature of its NumPy counterpart; the
Cython code lives in ``_ops.pyx`` (dense layers, normalisation, loss, optimizers, gathering),
``_topk.pyx`` (retrieval), ``_ranking.pyx`` (the in-batch softmax ranking loss), ``_epoch.pyx``
(a whole training epoch, reading the input blocks of ``_features.pyx``, ``_embedding.pyx`` and
``_history.pyx``) on top of ``_blas.pyx`` (row-major GEMM over SciPy's BLAS, and direct
AVX-512 float32 products for the epoch). ``openmp_enabled`` and ``max_threads`` report how the
extension was built, for :func:`anirec.show_config`.
"""

from anirec._kernels._epoch import epoch_threads, gather_inputs, train_epoch
from anirec._kernels._numpy import LOO_MODES, NORM_EPS, OPTIMIZERS, unpack_params
from anirec._kernels._ops import NORM_EPS as _COMPILED_NORM_EPS
from anirec._kernels._ops import (
    adam_step,
    dense_backward,
    dense_forward,
    gather_rows,
    item_rows_loo,
    l2_normalize,
    mse,
    normalize_dot,
    normalize_dot_backward,
    sgd_step,
    user_rows_loo,
)
from anirec._kernels._parallel import max_threads, openmp_enabled
from anirec._kernels._ranking import inbatch_softmax
from anirec._kernels._topk import topk

if _COMPILED_NORM_EPS != NORM_EPS:  # pragma: no cover - a build out of step with the source
    raise ImportError(
        f"anirec._kernels._ops was built with NORM_EPS={_COMPILED_NORM_EPS}, the NumPy twin "
        f"uses {NORM_EPS}; rebuild the extension"
    )

__all__ = [
    "LOO_MODES",
    "NORM_EPS",
    "OPTIMIZERS",
    "adam_step",
    "dense_backward",
    "dense_forward",
    "epoch_threads",
    "gather_inputs",
    "gather_rows",
    "inbatch_softmax",
    "item_rows_loo",
    "l2_normalize",
    "max_threads",
    "mse",
    "normalize_dot",
    "normalize_dot_backward",
    "openmp_enabled",
    "sgd_step",
    "topk",
    "train_epoch",
    "unpack_params",
    "user_rows_loo",
]
