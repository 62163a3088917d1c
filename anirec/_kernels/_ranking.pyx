"""Compiled in-batch softmax retrieval loss of the two towers, and its backward pass.

For a mini-batch of ``n`` positive (user, item) pairs with normalised tower outputs ``Yu`` and
``Yv`` (n, d), every user row is scored against every item of the batch:

    S[j, k] = <Yu[j], Yv[k]> / temperature - logq[items[k]]       (one GEMM)

the column ``k`` of row ``j`` is masked out when ``items[k] == items[j]`` and ``k != j`` (an
in-batch duplicate of the positive is not a negative), and the loss is the weighted mean
cross-entropy of the diagonal,

    L = sum_j w_j (logsumexp_k S[j, k] - S[j, j]) / sum_j w_j     (rows with w_j > 0; 0 if none)

``logq`` is the log-probability of each item being drawn into a batch (its training frequency):
subtracting it from the logits corrects the popularity bias of in-batch negatives ("logQ
correction", Yi et al., RecSys 2019), so the loss estimates a softmax over the whole catalogue.

With ``G[j, k] = w_j / (W temperature) (softmax(S[j])[k] - [j == k])`` the exact gradients are
``grad_Yu = G Yv`` and ``grad_Yv = G^T Yu`` (a second and third GEMM). The softmax is taken in
double with the row maximum subtracted (its exponentials in the data's precision: ``expf`` for
float32, the hot spot of the kernel); the loss and the normaliser are accumulated in double.

The operation order is that of ``anirec._kernels._numpy.inbatch_softmax``.
"""

import numpy as np

from cython cimport floating
from libc.math cimport exp, expf, log, INFINITY
from libc.stdint cimport int64_t
from libc.string cimport memset

from anirec._kernels._blas cimport gemm


cdef double inbatch_softmax_ptr(const floating* Yu, const floating* Yv, const int64_t* items,
                                const floating* weights, const floating* logq,
                                double temperature, floating* S, double* row,
                                floating* grad_Yu, floating* grad_Yv, Py_ssize_t n,
                                Py_ssize_t d) noexcept nogil:
    """Returns the loss; ``S`` (n x n) and ``row`` (n) are workspaces. When ``grad_Yu`` is NULL
    only the loss is computed (``grad_Yv`` is then ignored)."""
    cdef Py_ssize_t j, k
    cdef double total = 0, loss = 0, top, z, coef, scale, positive
    cdef floating inv_t = <floating> (1.0 / temperature)
    cdef floating* s
    cdef int64_t item
    if n <= 0:
        return 0.0
    for j in range(n):
        if weights[j] > 0:
            total += <double> weights[j]
    if total <= 0:
        if grad_Yu != NULL:
            for j in range(n * d):
                grad_Yu[j] = 0
                grad_Yv[j] = 0
        return 0.0

    gemm(False, True, <int> n, <int> n, <int> d, <floating> 1, Yu, <int> d, Yv, <int> d,
         <floating> 0, S, <int> n)
    for j in range(n):
        s = S + j * n
        if not weights[j] > 0:
            if grad_Yu != NULL:
                for k in range(n):
                    s[k] = 0
            continue
        item = items[j]
        # Logits in the data's dtype (as the NumPy twin computes them), widened to double.
        for k in range(n):
            row[k] = <double> (s[k] * inv_t - logq[items[k]])
        positive = row[j]
        for k in range(n):
            if items[k] == item and k != j:
                row[k] = -INFINITY
        top = row[0]
        for k in range(1, n):
            top = row[k] if row[k] > top else top
        z = 0
        for k in range(n):
            # exp(-inf) = 0 for the masked columns. The arguments are <= 0 and the terms are
            # summed in double; float32 data takes expf (several times faster, and as accurate
            # as the data), float64 data exp.
            if floating is float:
                row[k] = expf(<float> (row[k] - top))
            else:
                row[k] = exp(row[k] - top)
            z += row[k]
        loss += <double> weights[j] * (log(z) + top - positive)
        if grad_Yu != NULL:
            coef = (<double> weights[j] / total) / temperature
            scale = coef / z
            for k in range(n):
                s[k] = <floating> (row[k] * scale)
            s[j] = <floating> (row[j] * scale - coef)
    if grad_Yu != NULL:
        gemm(False, False, <int> n, <int> d, <int> n, <floating> 1, S, <int> n, Yv, <int> d,
             <floating> 0, grad_Yu, <int> d)
        gemm(True, False, <int> n, <int> d, <int> n, <floating> 1, S, <int> n, Yu, <int> d,
             <floating> 0, grad_Yv, <int> d)
    return loss / total


cdef double positive_weight(const floating* weights, Py_ssize_t n) noexcept nogil:
    """``W = sum_j w_j`` over the rows with ``w_j > 0``, in row order (in double)."""
    cdef Py_ssize_t j
    cdef double total = 0
    for j in range(n):
        if weights[j] > 0:
            total += <double> weights[j]
    return total


cdef void softmax_rows_ptr(const floating* Yu, const floating* Yv, const int64_t* items,
                           const floating* weights, const floating* logq, double temperature,
                           double total, floating* S, double* row, double* row_loss,
                           floating* grad_Yu, Py_ssize_t first, Py_ssize_t rows, Py_ssize_t n,
                           Py_ssize_t d) noexcept nogil:
    """Rows ``first .. first + rows`` of :c:func:`inbatch_softmax_ptr`, as it computes them:
    their logits (a product of those rows of ``Yu`` with every row of ``Yv``), their softmax,
    the loss term of each row into ``row_loss`` (``w_j (logsumexp - positive)``, 0 for a row
    that is no positive), the rows of ``G`` into ``S`` and of ``grad_Yu = G Yv``. ``total`` is
    :c:func:`positive_weight` of the whole batch; ``row`` a workspace of ``n`` doubles. The
    rows of a batch are independent here: any split of them gives the same bits."""
    cdef Py_ssize_t j, k
    cdef double top, z, coef, scale, positive
    cdef floating inv_t = <floating> (1.0 / temperature)
    cdef floating* s
    cdef int64_t item
    if total <= 0:
        memset(S + first * n, 0, rows * n * sizeof(floating))
        memset(grad_Yu + first * d, 0, rows * d * sizeof(floating))
        for j in range(first, first + rows):
            row_loss[j] = 0
        return
    gemm(False, True, <int> rows, <int> n, <int> d, <floating> 1, Yu + first * d, <int> d, Yv,
         <int> d, <floating> 0, S + first * n, <int> n)
    for j in range(first, first + rows):
        s = S + j * n
        row_loss[j] = 0
        if not weights[j] > 0:
            for k in range(n):
                s[k] = 0
            continue
        item = items[j]
        for k in range(n):
            row[k] = <double> (s[k] * inv_t - logq[items[k]])
        positive = row[j]
        for k in range(n):
            if items[k] == item and k != j:
                row[k] = -INFINITY
        top = row[0]
        for k in range(1, n):
            top = row[k] if row[k] > top else top
        z = 0
        for k in range(n):
            if floating is float:
                row[k] = expf(<float> (row[k] - top))
            else:
                row[k] = exp(row[k] - top)
            z += row[k]
        row_loss[j] = <double> weights[j] * (log(z) + top - positive)
        coef = (<double> weights[j] / total) / temperature
        scale = coef / z
        for k in range(n):
            s[k] = <floating> (row[k] * scale)
        s[j] = <floating> (row[j] * scale - coef)
    gemm(False, False, <int> rows, <int> d, <int> n, <floating> 1, S + first * n, <int> n, Yv,
         <int> d, <floating> 0, grad_Yu + first * d, <int> d)


cdef void softmax_item_grad_ptr(const floating* S, const floating* Yu, floating* grad_Yv,
                                Py_ssize_t first, Py_ssize_t rows, Py_ssize_t n,
                                Py_ssize_t d) noexcept nogil:
    """Rows ``first .. first + rows`` of ``grad_Yv = G^T Yu`` (``G`` in ``S``, every row of it
    complete): columns of ``G`` times ``Yu``."""
    gemm(True, False, <int> rows, <int> d, <int> n, <floating> 1, S + first, <int> n, Yu,
         <int> d, <floating> 0, grad_Yv + first * d, <int> d)


cdef inline double _dot(const floating* a, const floating* b, Py_ssize_t d) noexcept nogil:
    cdef double acc = 0
    cdef Py_ssize_t j
    for j in range(d):
        acc += <double> a[j] * b[j]
    return acc


cdef void normalize_dot_backward_add_ptr(const floating* grad_pred, const floating* Yu,
                                         const floating* Yv, const floating* norm_u,
                                         const floating* norm_v, const floating* extra_Yu,
                                         const floating* extra_Yv, double extra_weight,
                                         floating* grad_Zu, floating* grad_Zv, Py_ssize_t n,
                                         Py_ssize_t d) noexcept nogil:
    """Backward pass of the normalised dot product when the normalised outputs also feed
    another loss: with ``gYu = grad_pred Yv + extra_weight extra_Yu`` (and symmetrically),
    ``grad_Zu = (gYu - Yu <Yu, gYu>) / norm_u``. Both gradients are combined before the
    normalisation backward, which is linear in them."""
    cdef Py_ssize_t i, j, base
    cdef floating g, proj
    cdef floating beta = <floating> extra_weight
    for i in range(n):
        base = i * d
        g = grad_pred[i]
        for j in range(d):
            grad_Zu[base + j] = g * Yv[base + j] + beta * extra_Yu[base + j]
            grad_Zv[base + j] = g * Yu[base + j] + beta * extra_Yv[base + j]
        proj = <floating> _dot(Yu + base, grad_Zu + base, d)
        for j in range(d):
            grad_Zu[base + j] = (grad_Zu[base + j] - Yu[base + j] * proj) / norm_u[i]
        proj = <floating> _dot(Yv + base, grad_Zv + base, d)
        for j in range(d):
            grad_Zv[base + j] = (grad_Zv[base + j] - Yv[base + j] * proj) / norm_v[i]


# ---------------------------------------------------------------------------------------------
# Raw entry point (same name and signature as the NumPy twin)


def inbatch_softmax(const floating[:, ::1] Yu, const floating[:, ::1] Yv,
                    const int64_t[::1] items, const floating[::1] weights,
                    const floating[::1] logq, double temperature, grad_Yu, grad_Yv):
    cdef Py_ssize_t n = Yu.shape[0], d = Yu.shape[1]
    cdef floating[:, ::1] gu_view
    cdef floating[:, ::1] gv_view
    cdef floating* gu = NULL
    cdef floating* gv = NULL
    cdef double loss
    dtype = np.float32 if floating is float else np.float64
    if n == 0:
        return 0.0
    cdef floating[:, ::1] S = np.empty((n, n), dtype=dtype)
    cdef double[::1] row = np.empty(n, dtype=np.float64)
    if grad_Yu is not None:
        gu_view = grad_Yu
        gv_view = grad_Yv
        if d > 0:
            gu = &gu_view[0, 0]
            gv = &gv_view[0, 0]
    with nogil:
        loss = inbatch_softmax_ptr(&Yu[0, 0] if d > 0 else NULL,
                                   &Yv[0, 0] if d > 0 else NULL, &items[0], &weights[0],
                                   &logq[0], temperature, &S[0, 0], &row[0], gu, gv, n, d)
    return loss
