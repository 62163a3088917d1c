"""The numerical kernels of the two-tower network, checked and dispatched to the active backend.

Each function validates its arguments once (dtype, shape, C-contiguity, index ranges) and raises
``TypeError`` or ``ValueError`` naming the argument and what was expected, then calls the same
function of the active backend (:mod:`anirec.backend`): the compiled Cython kernels or their
pure-NumPy twin. Floating arrays of one call share one dtype, ``float32`` or ``float64``; index
arrays are ``int64``, except the examples' rows and the visiting order of an epoch, which may
also be ``int32`` (the data layer's 24M-row arrays are used as they are, not widened). Outputs
may be passed in (``out=`` style) to reuse memory; otherwise they are allocated and returned.

One rule for both backends on hostile inputs, so that they never disagree: floating inputs
must be finite (NaN and inf raise ``ValueError`` naming the argument and the position); an
output may not share memory with an input or another output; dimensions the compiled GEMM
would truncate to a 32-bit ``int`` are refused; ``topk`` caps ``k`` at the number of items
before allocating its result. A training epoch is checked once per fit, as a plan
(:class:`EpochPlan`, in :mod:`anirec._plan`), of input blocks (:mod:`anirec.blocks`).
"""

from __future__ import annotations

import numbers

import numpy as np

from anirec import _validate, backend
from anirec._kernels._numpy import LOO_MODES, NORM_EPS, OPTIMIZERS, unpack_params

__all__ = [
    "NORM_EPS",
    "LeaveOneOutStats",
    "dense_forward",
    "dense_backward",
    "l2_normalize",
    "normalize_dot",
    "normalize_dot_backward",
    "mse",
    "inbatch_softmax",
    "sgd_step",
    "adam_step",
    "gather_rows",
    "user_rows_loo",
    "ItemLeaveOneOutStats",
    "item_rows_loo",
    "topk",
    "Features",
    "Embedding",
    "History",
    "Tower",
    "Examples",
    "Params",
    "EpochConfig",
    "EpochPlan",
    "train_epoch",
    "n_parameters",
    "unpack_params",
]

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
INDEX = np.dtype(np.int64)
#: Dtypes of the per-example indices of an epoch (``examples.users``, ``examples.items``,
#: ``order``), each array its own.
ROW_INDEX = (np.dtype(np.int32), INDEX)


# ---------------------------------------------------------------------------------------------
# Argument checks


def _float_dtype(name: str, array) -> np.dtype:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")
    if array.dtype not in FLOATS:
        raise TypeError(f"{name} must be float32 or float64, got {array.dtype}")
    return array.dtype


def _check(name: str, array, dtype: np.dtype, shape: tuple) -> np.ndarray:
    """Check type, dtype, shape (``None`` = any size) and C-contiguity of one argument."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")
    if array.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {array.dtype}")
    if array.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(array.shape, shape)
    ):
        wanted = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {wanted}, got {array.shape}")
    if not array.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use np.ascontiguousarray)")
    return array


def _check_out(name: str, array, dtype: np.dtype, shape: tuple) -> np.ndarray:
    if array is None:
        return np.empty(shape, dtype=dtype)
    _check(name, array, dtype, shape)
    if not array.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    return array


def _check_index(name: str, index, n_rows: int, shape: tuple = (None,),
                 dtypes: tuple = (INDEX,)) -> np.ndarray:
    if isinstance(index, np.ndarray) and index.dtype not in dtypes:
        raise TypeError(f"{name} must have dtype {' or '.join(map(str, dtypes))}, got "
                        f"{index.dtype}")
    _check(name, index, index.dtype if isinstance(index, np.ndarray) else INDEX, shape)
    if index.size and (index.min() < 0 or index.max() >= n_rows):
        bad = index[(index < 0) | (index >= n_rows)][0]
        raise IndexError(f"{name} holds {bad}, outside the valid range [0, {n_rows})")
    return index


#: Largest dimension the compiled GEMM takes: BLAS counts rows and columns in 32-bit ``int``.
GEMM_MAX_DIM = 2**31 - 1


def _finite(name: str, array: np.ndarray) -> np.ndarray:
    """Refuse NaN and inf in an input: the backends would otherwise disagree on them (a NaN
    score ranks first in one top-k and is dropped by the other), so both refuse them alike."""
    if array.size and not np.isfinite(array).all():
        position = np.unravel_index(int(np.flatnonzero(~np.isfinite(array.ravel()))[0]),
                                    array.shape)
        where = ", ".join(str(int(p)) for p in position)
        raise ValueError(f"{name} holds {array[position]} at [{where}]: kernel inputs must be "
                         "finite")
    return array


def _no_alias(outputs: dict, inputs: dict) -> None:
    """Refuse an output that shares memory with an input or another output.

    The backends write outputs in different orders (a fused loop, a BLAS call, a NumPy
    expression), so an aliased output would give a different answer per backend. Every array
    here is C-contiguous, for which the cheap bounds test of ``np.may_share_memory`` is exact.
    """
    arrays = [(name, array) for name, array in outputs.items() if array is not None]
    others = arrays + [(name, array) for name, array in inputs.items()
                       if isinstance(array, np.ndarray)]
    for position, (name, out) in enumerate(arrays):
        for other_name, other in others[position + 1:]:
            if out.size and other.size and np.may_share_memory(out, other):
                raise ValueError(f"{name} shares memory with {other_name}: outputs must not "
                                 "alias an input or another output")


def _gemm_dims(**dims: int) -> None:
    """Refuse dimensions the compiled GEMM would truncate to a 32-bit ``int``."""
    for name, value in dims.items():
        if value > GEMM_MAX_DIM:
            raise ValueError(f"{name} is {value}, above the largest matrix dimension of the "
                             f"kernels, 2**31 - 1")


#: The largest count a kernel takes (optimizer steps, batch sizes): the compiled kernels hold
#: counts in int64, so a count must leave room for the updates of an epoch after it.
MAX_COUNT = 2**62
#: The smallest softmax temperature: logits are cosines / temperature, and their gradients
#: scale with 1 / temperature; below this they overflow float32 (1e-45 gives NaN).
MIN_TEMPERATURE = 1e-6


def _positive_int(name: str, value, high: int = MAX_COUNT) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    if value > high:
        raise ValueError(f"{name} must be at most {high}, got {value}")
    return int(value)


def _number(name: str, value) -> float:
    """``value`` as a float; a bool or a string is no number (``float("3")`` is not taken)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r:.40} ({type(value).__name__})")
    return float(value)


def _finite_number(name: str, value, low: float = -np.inf, high: float = np.inf) -> float:
    value = _number(name, value)
    if not (np.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name} must be a finite number in [{low}, {high}], got {value}")
    return value


# ---------------------------------------------------------------------------------------------
# Dense layers


def dense_forward(X, W, b, *, relu: bool = True, out=None) -> np.ndarray:
    """``out = act(X @ W + b)`` with ``act`` ReLU or identity, bias and activation fused.

    Parameters
    ----------
    X : (n, k) array
    W : (k, m) array
    b : (m,) array
    relu : bool
        ReLU when true, identity otherwise.
    out : (n, m) array, optional
        Where to write the result.
    """
    dtype = _float_dtype("X", X)
    n, k = _check("X", X, dtype, (None, None)).shape
    m = _check("W", W, dtype, (k, None)).shape[1]
    _check("b", b, dtype, (m,))
    _gemm_dims(n=n, k=k, m=m)
    for name, array in (("X", X), ("W", W), ("b", b)):
        _finite(name, array)
    out = _check_out("out", out, dtype, (n, m))
    _no_alias({"out": out}, {"X": X, "W": W, "b": b})
    backend.implementation().dense_forward(X, W, b, out, bool(relu))
    return out


def dense_backward(grad_out, X, W, out, *, relu: bool = True, grad_W=None, grad_b=None,
                   grad_X=None, need_grad_X: bool = True):
    """Gradients of a dense layer from the gradient of its output.

    With ``G = grad_out * (out > 0)`` for ReLU (``grad_out`` itself for identity):
    ``grad_W = X.T @ G``, ``grad_b = G.sum(0)`` and ``grad_X = G @ W.T``. For ReLU the mask is
    applied to ``grad_out`` in place (it becomes ``G``).

    Parameters
    ----------
    grad_out : (n, m) array
        Gradient of the loss with respect to the layer output; overwritten when ``relu``.
    X : (n, k) array
        Layer input.
    W : (k, m) array
    out : (n, m) array
        Layer output of the forward pass (post-activation; ``out > 0`` is the ReLU mask).
    need_grad_X : bool
        Skip ``grad_X`` (returned as ``None``) for the first layer.

    Returns
    -------
    grad_W, grad_b, grad_X
    """
    dtype = _float_dtype("grad_out", grad_out)
    n, m = _check("grad_out", grad_out, dtype, (None, None)).shape
    k = _check("X", X, dtype, (n, None)).shape[1]
    _check("W", W, dtype, (k, m))
    _check("out", out, dtype, (n, m))
    if not grad_out.flags.writeable:
        raise ValueError("grad_out must be writeable")
    _gemm_dims(n=n, k=k, m=m)
    for name, array in (("grad_out", grad_out), ("X", X), ("W", W), ("out", out)):
        _finite(name, array)
    grad_W = _check_out("grad_W", grad_W, dtype, (k, m))
    grad_b = _check_out("grad_b", grad_b, dtype, (m,))
    grad_X = _check_out("grad_X", grad_X, dtype, (n, k)) if need_grad_X else None
    # grad_out is overwritten by design (the ReLU mask), so it must not alias the rest either.
    _no_alias({"grad_W": grad_W, "grad_b": grad_b, "grad_X": grad_X, "grad_out": grad_out},
              {"X": X, "W": W, "out": out})
    backend.implementation().dense_backward(grad_out, X, W, out, grad_W, grad_b, grad_X,
                                            bool(relu))
    return grad_W, grad_b, grad_X


# ---------------------------------------------------------------------------------------------
# L2 normalisation and the two-tower score


def l2_normalize(Z, *, out=None, norms=None):
    """Row-wise ``Y = Z / sqrt(|Z|^2 + NORM_EPS^2)``; returns ``(Y, norms)``.

    The epsilon keeps zero rows finite (they map to zero) and their gradient finite. A row
    whose norm overflows the dtype (float32 ``[1e20, 1e20]`` squares past 3.4e38) is
    normalised after dividing it by its largest magnitude, by both backends; its norm is
    reported as ``inf`` when the norm itself does not fit the dtype.

    Raises
    ------
    ValueError
        If ``Z`` holds NaN or inf, or ``out``/``norms`` share memory with ``Z`` or each other.
    """
    dtype = _float_dtype("Z", Z)
    n, d = _check("Z", Z, dtype, (None, None)).shape
    _finite("Z", Z)
    out = _check_out("out", out, dtype, (n, d))
    norms = _check_out("norms", norms, dtype, (n,))
    _no_alias({"out": out, "norms": norms}, {"Z": Z})
    backend.implementation().l2_normalize(Z, out, norms)
    return out, norms


def normalize_dot(Zu, Zv):
    """The two-tower prediction ``pred[i] = <Zu[i]/|Zu[i]|, Zv[i]/|Zv[i]|>``, in [-1, 1].

    Returns
    -------
    pred, Yu, Yv, norm_u, norm_v
        The prediction, the normalised rows and their norms (kept for the backward pass).
    """
    dtype = _float_dtype("Zu", Zu)
    n, d = _check("Zu", Zu, dtype, (None, None)).shape
    _check("Zv", Zv, dtype, (n, d))
    _finite("Zu", Zu)
    _finite("Zv", Zv)
    Yu, Yv = np.empty((n, d), dtype), np.empty((n, d), dtype)
    norm_u, norm_v, pred = np.empty(n, dtype), np.empty(n, dtype), np.empty(n, dtype)
    backend.implementation().normalize_dot(Zu, Zv, Yu, Yv, norm_u, norm_v, pred)
    return pred, Yu, Yv, norm_u, norm_v


def normalize_dot_backward(grad_pred, Yu, Yv, norm_u, norm_v):
    """Exact backward pass of :func:`normalize_dot`; returns ``(grad_Zu, grad_Zv)``.

    ``grad_Zu = (g Yv - Yu <Yu, g Yv>) / norm_u`` row by row, and symmetrically for ``Zv``.
    """
    dtype = _float_dtype("grad_pred", grad_pred)
    n = _check("grad_pred", grad_pred, dtype, (None,)).shape[0]
    d = _check("Yu", Yu, dtype, (n, None)).shape[1]
    _check("Yv", Yv, dtype, (n, d))
    _check("norm_u", norm_u, dtype, (n,))
    _check("norm_v", norm_v, dtype, (n,))
    for name, array in (("grad_pred", grad_pred), ("Yu", Yu), ("Yv", Yv)):
        _finite(name, array)
    grad_Zu, grad_Zv = np.empty((n, d), dtype), np.empty((n, d), dtype)
    backend.implementation().normalize_dot_backward(grad_pred, Yu, Yv, norm_u, norm_v,
                                                    grad_Zu, grad_Zv)
    return grad_Zu, grad_Zv


def mse(pred, target, *, grad=None, return_grad: bool = True):
    """Mean squared error ``mean((pred - target)^2)`` and its gradient ``2 (pred - target) / n``.

    Returns ``(loss, grad)``; ``grad`` is ``None`` when ``return_grad`` is false.
    The loss is accumulated in float64.
    """
    dtype = _float_dtype("pred", pred)
    n = _check("pred", pred, dtype, (None,)).shape[0]
    _check("target", target, dtype, (n,))
    _finite("pred", pred)
    _finite("target", target)
    grad = _check_out("grad", grad, dtype, (n,)) if return_grad else None
    _no_alias({"grad": grad}, {"pred": pred, "target": target})
    loss = backend.implementation().mse(pred, target, grad)
    return float(loss), grad


def _check_weights(name: str, weights, dtype, n: int) -> np.ndarray:
    _check(name, weights, dtype, (n,))
    if n and not (np.all(np.isfinite(weights)) and weights.min() >= 0):
        raise ValueError(f"{name} must be finite and non-negative")
    return weights


def _check_logq(name: str, logq, dtype) -> int:
    n_items = _check(name, logq, dtype, (None,)).shape[0]
    if n_items and not np.all(np.isfinite(logq)):
        raise ValueError(f"{name} must be finite")
    return n_items


def _positive_number(name: str, value, least: float = 0.0) -> float:
    value = _number(name, value)
    if not (np.isfinite(value) and value > 0 and value >= least):
        at_least = f" of at least {least:g}" if least else ""
        raise ValueError(f"{name} must be a positive finite number{at_least}, got {value}")
    return value


def _temperature(value) -> float:
    return _positive_number("temperature", value, MIN_TEMPERATURE)


def inbatch_softmax(Yu, Yv, items, weights, logq, temperature: float, *, grad_Yu=None,
                    grad_Yv=None, return_grad: bool = True):
    """The in-batch softmax retrieval loss of ``n`` positive pairs and its exact gradients.

    Row ``j`` (user ``Yu[j]``, positive item ``items[j]`` with output ``Yv[j]``) is scored
    against every item of the batch, with the log-popularity ("logQ") correction of in-batch
    negatives::

        S[j, k] = <Yu[j], Yv[k]> / temperature - logq[items[k]]

    Columns ``k != j`` with ``items[k] == items[j]`` (duplicates of the positive) are masked
    out of row ``j``. The loss is the weighted mean cross-entropy of the diagonal,
    ``L = sum_j w_j (logsumexp_k S[j, k] - S[j, j]) / sum_j w_j`` over rows with ``w_j > 0``
    (0 when there is none); rows with ``w_j = 0`` still serve as negatives. With
    ``G[j, k] = w_j / (W temperature) (softmax(S[j])[k] - [j == k])``, ``grad_Yu = G Yv`` and
    ``grad_Yv = G^T Yu``. The softmax is taken in float64, its row maximum subtracted.

    Parameters
    ----------
    Yu, Yv : (n, d) arrays
        Normalised user and item tower outputs of the batch.
    items : (n,) int64
        The item of each row (row of ``logq``); equal items are duplicates.
    weights : (n,) array
        Non-negative weight of each row as a positive (e.g. 1 for ratings at or above a
        threshold, else 0).
    logq : (n_items,) array
        Log-probability of each item to be drawn into a batch (its training frequency).
    temperature : float
        Positive; the logits are cosines divided by it.
    grad_Yu, grad_Yv : (n, d) arrays, optional
        Where to write the gradients.
    return_grad : bool
        Compute only the loss when false (the gradients are returned as ``None``).

    Returns
    -------
    loss, grad_Yu, grad_Yv
    """
    dtype = _float_dtype("Yu", Yu)
    n, d = _check("Yu", Yu, dtype, (None, None)).shape
    _check("Yv", Yv, dtype, (n, d))
    n_items = _check_logq("logq", logq, dtype)
    _check_index("items", items, n_items, (n,))
    _check_weights("weights", weights, dtype, n)
    temperature = _temperature(temperature)
    _gemm_dims(n=n, d=d)
    _finite("Yu", Yu)
    _finite("Yv", Yv)
    if return_grad:
        grad_Yu = _check_out("grad_Yu", grad_Yu, dtype, (n, d))
        grad_Yv = _check_out("grad_Yv", grad_Yv, dtype, (n, d))
    else:
        grad_Yu = grad_Yv = None
    _no_alias({"grad_Yu": grad_Yu, "grad_Yv": grad_Yv},
              {"Yu": Yu, "Yv": Yv, "weights": weights, "logq": logq})
    loss = backend.implementation().inbatch_softmax(Yu, Yv, items, weights, logq, temperature,
                                                    grad_Yu, grad_Yv)
    return float(loss), grad_Yu, grad_Yv


# ---------------------------------------------------------------------------------------------
# Optimizers (in place, one fused pass over a flat parameter buffer)


def _check_param_grad(param, grad):
    dtype = _float_dtype("param", param)
    n = _check("param", param, dtype, (None,)).shape[0]
    _check("grad", grad, dtype, (n,))
    if not param.flags.writeable:
        raise ValueError("param must be writeable")
    _finite("param", param)
    _finite("grad", grad)
    return dtype, n


def sgd_step(param, grad, *, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
             velocity=None) -> None:
    """One SGD update in place: ``g = grad + wd*param``; with momentum ``v = mu*v + g``,
    ``param -= lr*v``; without, ``param -= lr*g``. ``velocity`` is required when momentum > 0.
    A velocity below the dtype's smallest normal number is stored as zero (see
    :func:`adam_step`)."""
    dtype, n = _check_param_grad(param, grad)
    lr = _finite_number("lr", lr, 0.0)
    momentum = _finite_number("momentum", momentum, 0.0, 1.0)
    weight_decay = _finite_number("weight_decay", weight_decay, 0.0)
    if momentum:
        if velocity is None:
            raise ValueError("velocity is required when momentum > 0")
        _check_out("velocity", velocity, dtype, (n,))
    else:
        velocity = None
    _no_alias({"param": param, "velocity": velocity}, {"grad": grad})
    if velocity is not None:
        _finite("velocity", velocity)
    backend.implementation().sgd_step(param, grad, velocity, lr, momentum, weight_decay)


def adam_step(param, grad, m, v, *, lr: float, step: int, beta1: float = 0.9,
              beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0) -> None:
    """One bias-corrected Adam update in place (``step`` counts from 1).

    ``g = grad + wd*param``, ``m = b1 m + (1-b1) g``, ``v = b2 v + (1-b2) g^2``,
    ``param -= lr * (m / (1-b1^step)) / (sqrt(v / (1-b2^step)) + eps)``.

    A moment whose magnitude falls below the dtype's smallest normal number
    (``np.finfo(dtype).tiny``) is stored as zero. A weight whose gradient stays zero (a dead
    ReLU unit) would otherwise keep its first moment at the smallest subnormal number for
    good, where every operation on it is much slower on x86.
    """
    dtype, n = _check_param_grad(param, grad)
    _check_out("m", m, dtype, (n,))
    _check_out("v", v, dtype, (n,))
    lr = _finite_number("lr", lr, 0.0)
    beta1 = _finite_number("beta1", beta1, 0.0, 1.0 - 1e-12)
    beta2 = _finite_number("beta2", beta2, 0.0, 1.0 - 1e-12)
    # eps = 0 would turn a zero gradient (m = v = 0) into 0 / 0.
    eps = _positive_number("eps", eps)
    weight_decay = _finite_number("weight_decay", weight_decay, 0.0)
    step = _positive_int("step", step)
    _no_alias({"param": param, "m": m, "v": v}, {"grad": grad})
    _finite("m", m)
    _finite("v", v)
    backend.implementation().adam_step(param, grad, m, v, lr, beta1, beta2, eps, weight_decay,
                                       step)


# ---------------------------------------------------------------------------------------------
# Batch assembly


def gather_rows(X, index, *, out=None) -> np.ndarray:
    """``out[j] = X[index[j]]``: a mini-batch of feature rows, gathered by index."""
    dtype = _float_dtype("X", X)
    n_rows, d = _check("X", X, dtype, (None, None)).shape
    _check_index("index", index, n_rows)
    out = _check_out("out", out, dtype, (index.shape[0], d))
    _no_alias({"out": out}, {"X": X, "index": index})
    backend.implementation().gather_rows(X, index, out)
    return out


def _check_loo(stats: LeaveOneOutStats, dtype, n_items: int | None = None):
    if not isinstance(stats, LeaveOneOutStats):
        raise TypeError(f"stats must be a LeaveOneOutStats, got {type(stats).__name__}")
    n_users, n_genres = _check("stats.num", stats.num, dtype, (None, None)).shape
    _check("stats.den", stats.den, dtype, (n_users, n_genres))
    _check("stats.total", stats.total, dtype, (n_users,))
    _check("stats.count", stats.count, dtype, (n_users,))
    n_items = _check("stats.item_genres", stats.item_genres, dtype, (n_items, n_genres)).shape[0]
    _check("stats.item_weight", stats.item_weight, dtype, (n_items,))
    _check("stats.mean", stats.mean, dtype, (n_genres + 2,))
    _check("stats.std", stats.std, dtype, (n_genres + 2,))
    _validate.integer("stats.mode", stats.mode)  # 1.0 and True are no mode
    if stats.mode not in LOO_MODES.values():
        raise ValueError(f"stats.mode must be one of {sorted(LOO_MODES.values())}, got {stats.mode}")
    if not np.all(stats.std > 0):
        raise ValueError("stats.std must be positive in every column")
    _finite_number("stats.global_mean", stats.global_mean)
    return n_users, n_genres, n_items


def user_rows_loo(stats: LeaveOneOutStats, users, items, ratings, *, out=None) -> np.ndarray:
    """Scaled user feature rows, each leaving out its own example (see :class:`LeaveOneOutStats`).

    Parameters
    ----------
    users, items : (n,) int64 arrays
        The user and item of each example.
    ratings : (n,) array
        The raw rating of each example, the one left out.
    """
    dtype = _float_dtype("stats.num", stats.num) if isinstance(stats, LeaveOneOutStats) else None
    n_users, n_genres, n_items = _check_loo(stats, dtype)
    n = _check_index("users", users, n_users).shape[0]
    _check_index("items", items, n_items, (n,))
    _check("ratings", ratings, dtype, (n,))
    out = _check_out("out", out, dtype, (n, n_genres + 2))
    _no_alias({"out": out}, {**{f"stats.{name}": value for name, value in stats._asdict().items()},
                             "users": users, "items": items, "ratings": ratings})
    backend.implementation().user_rows_loo(*stats, users, items, ratings, out)
    return out


def _check_item_loo(stats: ItemLeaveOneOutStats, dtype, n_items: int, d_item: int) -> None:
    if not isinstance(stats, ItemLeaveOneOutStats):
        raise TypeError(f"item_loo must be an ItemLeaveOneOutStats, got {type(stats).__name__}")
    for name in ("rating_sum", "rating_count", "prior_num", "prior_den", "from_ratings"):
        _check(f"item_loo.{name}", getattr(stats, name), dtype, (n_items,))
    for name in ("mean", "std"):
        _check(f"item_loo.{name}", getattr(stats, name), dtype, (3,))
    _check_index("item_loo.columns", stats.columns, d_item, (3,))
    if np.unique(stats.columns).shape[0] != 3:
        raise ValueError(f"item_loo.columns must be 3 distinct columns, got {stats.columns}")
    if not np.all(stats.std > 0):
        raise ValueError("item_loo.std must be positive")
    if not np.all(stats.prior_den > 0):
        raise ValueError("item_loo.prior_den must be positive")
    _finite_number("item_loo.global_mean", stats.global_mean)


def item_rows_loo(stats: ItemLeaveOneOutStats, item_x, items, ratings, *,
                  out=None) -> np.ndarray:
    """Item feature rows ``item_x[items]`` whose statistic columns leave out each example's
    rating (see :class:`ItemLeaveOneOutStats`).

    Parameters
    ----------
    item_x : (n_items, d) array
        The full-training item rows.
    items : (n,) int64
    ratings : (n,) array
        The raw rating of each example, the one left out.
    """
    dtype = _float_dtype("item_x", item_x)
    n_items, d_item = _check("item_x", item_x, dtype, (None, None)).shape
    _check_item_loo(stats, dtype, n_items, d_item)
    n = _check_index("items", items, n_items).shape[0]
    _check("ratings", ratings, dtype, (n,))
    out = _check_out("out", out, dtype, (n, d_item))
    _no_alias({"out": out}, {**{f"stats.{name}": value for name, value in stats._asdict().items()},
                             "item_x": item_x, "items": items, "ratings": ratings})
    backend.implementation().item_rows_loo(*stats, item_x, items, ratings, out)
    return out


# ---------------------------------------------------------------------------------------------
# Retrieval


def topk(Q, V, k: int, *, exclude=None, block_size: int = 1024):
    """The ``k`` highest dot products ``Q[i] . V[j]`` of every query row, over the rows of ``V``.

    Parameters
    ----------
    Q : (n, d) array
        Query vectors.
    V : (m, d) array
        Item vectors.
    k : int
        How many items per query; capped at ``m`` before anything is allocated, so a huge
        ``k`` costs no more than the whole catalogue.
    exclude : (indptr, indices), optional
        Per-query item sets to leave out, in CSR form: query ``i`` excludes
        ``indices[indptr[i]:indptr[i+1]]`` (int64 arrays; ``indptr`` has ``n + 1`` entries).
    block_size : int
        Queries scored together; bounds the memory to ``block_size * m`` scores.

    Returns
    -------
    index : (n, min(k, m)) int64 array
        Item rows sorted by score, highest first; ties go to the lower index. When exclusions
        leave fewer items, the row is padded with ``-1``.
    score : (n, min(k, m)) array
        The matching scores, padded with ``-inf``.

    Raises
    ------
    ValueError
        If ``Q`` or ``V`` holds NaN or inf (the backends would rank them differently), or
        ``d`` is too large for the compiled GEMM.
    """
    dtype = _float_dtype("Q", Q)
    n, d = _check("Q", Q, dtype, (None, None)).shape
    m = _check("V", V, dtype, (None, d)).shape[0]
    k = min(_positive_int("k", k, high=2**63 - 1), m)
    block_size = _positive_int("block_size", block_size, high=2**63 - 1)
    _gemm_dims(d=d)
    _finite("Q", Q)
    _finite("V", V)
    indptr = indices = None
    if exclude is not None:
        if not (isinstance(exclude, tuple) and len(exclude) == 2):
            raise TypeError("exclude must be a tuple (indptr, indices)")
        indptr, indices = exclude
        _check("exclude indptr", indptr, INDEX, (n + 1,))
        _check_index("exclude indices", indices, m)
        if indptr[0] != 0 or indptr[-1] != indices.shape[0] or np.any(np.diff(indptr) < 0):
            raise ValueError("exclude indptr must start at 0, never decrease, and end at "
                             f"len(indices) = {indices.shape[0]}")
    out_index = np.empty((n, k), dtype=INDEX)
    out_score = np.empty((n, k), dtype=dtype)
    backend.implementation().topk(Q, V, k, indptr, indices, block_size, out_index, out_score)
    return out_index, out_score


# ---------------------------------------------------------------------------------------------
# A whole training epoch


def n_parameters(user_sizes, item_sizes) -> int:
    """Length of the flat parameter buffer of two towers with these layer widths (each at
    least two positive integers)."""
    towers = []
    for name, sizes in (("user_sizes", user_sizes), ("item_sizes", item_sizes)):
        sizes = _validate.integer_tuple(name, sizes, 1)
        if len(sizes) < 2:
            raise ValueError(f"{name} must hold at least two widths (input and output), got "
                             f"{list(sizes)}")
        towers.append(sizes)
    return int(sum(a * b + b for sizes in towers for a, b in zip(sizes[:-1], sizes[1:])))


# The epoch plan and the input blocks, checked with the helpers above.
from anirec._plan import (EpochConfig, EpochPlan, Examples, Params, Tower,  # noqa: E402
                          check_config, train_epoch)
from anirec.blocks import (Embedding, Features, History, ItemLeaveOneOutStats,  # noqa: E402
                           LeaveOneOutStats)
