"""Compiled dense layers, L2-normalised dot product, MSE, optimizers and batch assembly.

Each kernel is a GIL-free pointer-level core (declared in ``_ops.pxd`` so the epoch loop can
call it without Python) plus a ``def`` entry point with exactly the raw signature of its twin in
:mod:`anirec._kernels._numpy`. Arguments are trusted: :mod:`anirec.kernels` checks them.

Floating-point order follows the NumPy twin wherever it is observable: element-wise updates use
the same operations in the same order and in the array dtype; reductions (norms, dot products,
the loss) accumulate in double, which is at least as accurate.
"""

from cython.parallel cimport prange
from libc.float cimport DBL_MIN, FLT_MIN
from libc.math cimport fabs, isinf, log1p, pow, sqrt
from libc.string cimport memcpy

from anirec._kernels._blas cimport gemm, sgemm_bias_relu
from anirec._kernels._simd cimport ANIREC_HAS_CLONES  # noqa: F401 (its C: ANIREC_CLONES)

#: Must equal ``anirec._kernels._numpy.NORM_EPS`` (a test holds them equal).
cdef double _NORM_EPS = 1e-6
NORM_EPS = _NORM_EPS
#: A leave-one-out denominator at most this is empty; must equal ``anirec.loo.EMPTY``.
cdef double _LOO_EMPTY = 1e-9
LOO_EMPTY = _LOO_EMPTY


# ---------------------------------------------------------------------------------------------
# Pointer cores


cdef void dense_forward_ptr(const floating* X, const floating* W, const floating* b,
                            floating* out, int n, int k, int m, bint relu) noexcept nogil:
    """``out = act(X W + b)``: one GEMM, then bias and ReLU in one pass over ``out``."""
    cdef Py_ssize_t i, j
    cdef floating value
    cdef floating* row
    if floating is float:
        if sgemm_bias_relu(n, m, k, X, k, W, m, b, relu, out, m):
            return
    gemm(False, False, n, m, k, <floating> 1, X, k, W, m, <floating> 0, out, m)
    for i in range(n):
        row = out + i * m
        if relu:
            for j in range(m):
                value = row[j] + b[j]
                # ``value < 0`` (not ``<= 0``) keeps a NaN visible, like np.maximum.
                row[j] = 0 if value < 0 else value
        else:
            for j in range(m):
                row[j] = row[j] + b[j]


cdef extern from *:
    """
    /* The backward pass's ReLU mask (in place on G, n rows of m) and bias column sums, row
       by row in order, compiled for AVX2 and the baseline (ANIREC_CLONES): multiplied by the
       0/1 mask like ``grad_out *= out > 0``, so a NaN stays NaN. The three never overlap
       (restrict) and the comparison may become a mask (ANIREC_NO_TRAPS): the loops
       vectorise. */
    #define ANIREC_MASK_BIAS(name, T)                                                        \
    ANIREC_CLONES ANIREC_NO_TRAPS                                                            \
    static void name(T* G, const T* out, T* __restrict gb, Py_ssize_t n, Py_ssize_t m,      \
                     int relu, int accumulate) {                                             \
        Py_ssize_t i, j;                                                                     \
        if (!accumulate)                                                                     \
            for (j = 0; j < m; j++) gb[j] = 0;                                               \
        for (i = 0; i < n; i++) {                                                            \
            T* __restrict g = G + i * m;                                                     \
            const T* __restrict o = out + i * m;                                             \
            if (relu)                                                                        \
                for (j = 0; j < m; j++) {                                                    \
                    g[j] = g[j] * (T) (o[j] > 0);                                            \
                    gb[j] = gb[j] + g[j];                                                    \
                }                                                                            \
            else                                                                             \
                for (j = 0; j < m; j++) gb[j] = gb[j] + g[j];                                \
        }                                                                                    \
    }
    ANIREC_MASK_BIAS(anirec_mask_bias_f32, float)
    ANIREC_MASK_BIAS(anirec_mask_bias_f64, double)

    /* The ReLU mask alone, in place on G (n rows of m). */
    #define ANIREC_MASK(name, T)                                                             \
    ANIREC_CLONES ANIREC_NO_TRAPS                                                            \
    static void name(T* __restrict G, const T* __restrict out, Py_ssize_t n, Py_ssize_t m) {\
        Py_ssize_t i;                                                                        \
        for (i = 0; i < n * m; i++) G[i] = G[i] * (T) (out[i] > 0);                         \
    }
    ANIREC_MASK(anirec_mask_f32, float)
    ANIREC_MASK(anirec_mask_f64, double)
    """
    void anirec_mask_bias_f32(float* G, const float* out, float* gb, Py_ssize_t n,
                              Py_ssize_t m, int relu, int accumulate) noexcept nogil
    void anirec_mask_bias_f64(double* G, const double* out, double* gb, Py_ssize_t n,
                              Py_ssize_t m, int relu, int accumulate) noexcept nogil
    void anirec_mask_f32(float* G, const float* out, Py_ssize_t n, Py_ssize_t m) noexcept nogil
    void anirec_mask_f64(double* G, const double* out, Py_ssize_t n,
                         Py_ssize_t m) noexcept nogil


cdef void relu_mask_ptr(floating* G, const floating* out, Py_ssize_t n,
                        Py_ssize_t m) noexcept nogil:
    """``G *= out > 0`` over ``n`` rows of ``m`` (a NaN in ``G`` stays NaN)."""
    if floating is float:
        anirec_mask_f32(G, out, n, m)
    else:
        anirec_mask_f64(G, out, n, m)


cdef void column_sums_ptr(floating* G, const floating* out, floating* sums, Py_ssize_t n,
                          Py_ssize_t m, bint accumulate) noexcept nogil:
    """``sums (+)= G.sum(axis=0)`` over ``n`` rows of ``m``, row by row in order; unless
    ``out`` is NULL, ``G *= out > 0`` first, in the same pass (the same sums as the mask
    and then the sums)."""
    if floating is float:
        anirec_mask_bias_f32(G, out, sums, n, m, out != NULL, accumulate)
    else:
        anirec_mask_bias_f64(G, out, sums, n, m, out != NULL, accumulate)


cdef void dense_backward_ptr(floating* G, const floating* X, const floating* W,
                             const floating* out, floating* gW, floating* gb, floating* gX,
                             int n, int k, int m, bint relu, bint accumulate) noexcept nogil:
    """ReLU mask (in place on ``G``) fused with the bias column sums, then ``gW = X^T G`` and,
    unless ``gX`` is NULL, ``gX = G W^T``. With ``accumulate`` the parameter gradients are
    added to ``gW`` and ``gb`` instead of overwriting them (a mini-batch in row blocks)."""
    if floating is float:
        anirec_mask_bias_f32(G, out, gb, n, m, relu, accumulate)
    else:
        anirec_mask_bias_f64(G, out, gb, n, m, relu, accumulate)
    gemm(True, False, k, m, n, <floating> 1, X, k, G, m, <floating> accumulate, gW, m)
    if gX != NULL:
        gemm(False, True, n, k, m, <floating> 1, G, m, W, m, <floating> 0, gX, k)


cdef inline double _dot(const floating* a, const floating* b, Py_ssize_t d) noexcept nogil:
    """``sum a[j] b[j]`` in double with four independent partial sums: a fixed summation order
    (so results are reproducible) that keeps four additions in flight instead of one."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t j = 0
    while j + 4 <= d:
        s0 += <double> a[j] * b[j]
        s1 += <double> a[j + 1] * b[j + 1]
        s2 += <double> a[j + 2] * b[j + 2]
        s3 += <double> a[j + 3] * b[j + 3]
        j += 4
    while j < d:
        s0 += <double> a[j] * b[j]
        j += 1
    return (s0 + s1) + (s2 + s3)


cdef inline floating _row_norm(const floating* z, Py_ssize_t d) noexcept nogil:
    return <floating> sqrt(_dot(z, z, d) + _NORM_EPS * _NORM_EPS)


cdef floating _normalize_scaled(const floating* z, floating* y, Py_ssize_t d) noexcept nogil:
    """``y = z / |z|`` for a row whose norm overflows the dtype (float32 ``[3e38, 3e38]``,
    float64 ``[1e200, 1e200]``), which the plain path would turn into zeros: divided by its
    largest magnitude ``s`` first, in double, ``y = (z/s) / r`` with
    ``r = sqrt(|z/s|^2 + (eps/s)^2)``, as the NumPy twin does. Returns the norm ``s r`` in the
    dtype (``inf`` when it does not fit)."""
    cdef Py_ssize_t j
    cdef double scale = 0, acc = 0, w, root
    for j in range(d):
        if fabs(<double> z[j]) > scale:
            scale = fabs(<double> z[j])
    for j in range(d):
        w = <double> z[j] / scale
        acc += w * w
    root = sqrt(acc + (_NORM_EPS / scale) * (_NORM_EPS / scale))
    for j in range(d):
        y[j] = <floating> ((<double> z[j] / scale) / root)
    return <floating> (scale * root)


cdef inline floating _normalize_row(const floating* z, floating* y, Py_ssize_t d) noexcept nogil:
    """``y = z / sqrt(|z|^2 + eps^2)``; returns that norm. Rows whose norm overflows the dtype
    take the scaled path; every other row is computed exactly as before (same bits)."""
    cdef Py_ssize_t j
    cdef floating nrm = _row_norm(z, d)
    if isinf(nrm):
        return _normalize_scaled(z, y, d)
    for j in range(d):
        y[j] = z[j] / nrm
    return nrm


cdef void l2_normalize_ptr(const floating* Z, floating* Y, floating* norms, Py_ssize_t n,
                           Py_ssize_t d) noexcept nogil:
    """``Y[i] = Z[i] / sqrt(|Z[i]|^2 + eps^2)``."""
    cdef Py_ssize_t i
    for i in range(n):
        norms[i] = _normalize_row(Z + i * d, Y + i * d, d)


cdef void normalize_dot_ptr(const floating* Zu, const floating* Zv, floating* Yu, floating* Yv,
                            floating* norm_u, floating* norm_v, floating* pred, Py_ssize_t n,
                            Py_ssize_t d) noexcept nogil:
    """Both normalisations and the row-wise dot product in one sweep per row."""
    cdef Py_ssize_t i, base
    for i in range(n):
        base = i * d
        norm_u[i] = _normalize_row(Zu + base, Yu + base, d)
        norm_v[i] = _normalize_row(Zv + base, Yv + base, d)
        pred[i] = <floating> _dot(Yu + base, Yv + base, d)


cdef void normalize_dot_backward_ptr(const floating* grad_pred, const floating* Yu,
                                     const floating* Yv, const floating* norm_u,
                                     const floating* norm_v, floating* grad_Zu,
                                     floating* grad_Zv, Py_ssize_t n,
                                     Py_ssize_t d) noexcept nogil:
    """``grad_Zu = (g Yv - Yu <Yu, g Yv>) / norm_u`` and symmetrically, row by row."""
    cdef Py_ssize_t i, j, base
    cdef floating g, nu, nv, proj_u, proj_v
    for i in range(n):
        base = i * d
        g = grad_pred[i]
        # <Yu, g Yv> = g <Yu, Yv> up to rounding; both projections share one dot product.
        proj_u = <floating> (g * _dot(Yu + base, Yv + base, d))
        proj_v = proj_u
        nu = norm_u[i]
        nv = norm_v[i]
        for j in range(d):
            grad_Zu[base + j] = (g * Yv[base + j] - Yu[base + j] * proj_u) / nu
            grad_Zv[base + j] = (g * Yu[base + j] - Yv[base + j] * proj_v) / nv


cdef void normalize_backward_side_ptr(const floating* grad_pred, const floating* Yu,
                                      const floating* Yv, const floating* norm,
                                      floating* grad_Z, Py_ssize_t n, Py_ssize_t d,
                                      bint item) noexcept nogil:
    """One side of :c:func:`normalize_dot_backward_ptr`, computed as it computes it: the user
    side ``(g Yv - Yu proj) / norm_u`` (``item``: ``(g Yu - Yv proj) / norm_v``), with
    ``proj = g <Yu, Yv>``."""
    cdef Py_ssize_t i, j, base
    cdef floating g, proj, nrm
    cdef const floating* own = Yv if item else Yu
    cdef const floating* other = Yu if item else Yv
    for i in range(n):
        base = i * d
        g = grad_pred[i]
        proj = <floating> (g * _dot(Yu + base, Yv + base, d))
        nrm = norm[i]
        for j in range(d):
            grad_Z[base + j] = (g * other[base + j] - own[base + j] * proj) / nrm


cdef double mse_ptr(const floating* pred, const floating* target, floating* grad,
                    Py_ssize_t n, Py_ssize_t n_mean) noexcept nogil:
    """Over ``n`` rows of a mean over ``n_mean`` rows (``n`` itself unless the rows are one
    part of a larger batch): returns ``sum((pred - target)^2) / n_mean`` (accumulated in
    double) and sets ``grad = 2 diff / n_mean``."""
    cdef Py_ssize_t i
    cdef floating diff
    cdef floating scale
    cdef double acc = 0
    if n == 0:
        return 0.0
    scale = <floating> (2.0 / n_mean)
    for i in range(n):
        diff = pred[i] - target[i]
        acc += <double> diff * diff
        if grad != NULL:
            grad[i] = diff * scale
    return acc / n_mean


cdef void sgd_ptr(floating* param, const floating* grad, floating* velocity, Py_ssize_t n,
                  double lr, double momentum, double weight_decay) noexcept nogil:
    """``g = grad + wd param``; ``v = mu v + g`` when ``velocity`` is given; ``param -= lr g``.
    A velocity below the smallest normal number is stored as zero (as Adam's moments are, see
    ``adam_range_ptr``)."""
    cdef Py_ssize_t i
    cdef floating lr_ = <floating> lr, mu = <floating> momentum, wd = <floating> weight_decay
    cdef floating tiny = <floating> (FLT_MIN if floating is float else DBL_MIN)
    cdef floating vi
    # One loop per case, each with a single expression per element, so the compiler
    # vectorises them (a branch or a re-read of velocity[i] inside the loop stops it).
    if velocity == NULL:
        if weight_decay != 0:
            for i in range(n):
                param[i] = param[i] - lr_ * (grad[i] + wd * param[i])
        else:
            for i in range(n):
                param[i] = param[i] - lr_ * grad[i]
    elif weight_decay != 0:
        for i in range(n):
            vi = velocity[i] * mu + (grad[i] + wd * param[i])
            vi = 0 if fabs(vi) < tiny else vi
            velocity[i] = vi
            param[i] = param[i] - lr_ * vi
    else:
        for i in range(n):
            vi = velocity[i] * mu + grad[i]
            vi = 0 if fabs(vi) < tiny else vi
            velocity[i] = vi
            param[i] = param[i] - lr_ * vi


#: Below this many parameters Adam stays on one thread. An OpenMP region costs a few
#: microseconds on an idle machine, but on a shared, oversubscribed one its barrier waits for a
#: descheduled thread: 97k updates (the default towers) took 0.85-1.8 ms on two threads against
#: 0.08-0.13 ms on one, with the other core busy. Only much larger buffers are split.
cdef Py_ssize_t _PARALLEL_MIN = 1 << 18
#: Parameters per OpenMP chunk: a multiple of 64 so each chunk starts on a cache line.
cdef Py_ssize_t _CHUNK = 1 << 12


cdef void adam_ptr(floating* param, const floating* grad, floating* m, floating* v,
                   Py_ssize_t n, double lr, double beta1, double beta2, double eps,
                   double weight_decay, int64_t step) noexcept nogil:
    """Bias-corrected Adam: moments, then ``param -= lr m^ / (sqrt(v^) + eps)``.

    Element-wise, so splitting the buffer over OpenMP threads changes nothing in the result:
    every element sees the same operations in the same order whatever the thread count.
    """
    cdef Py_ssize_t c, n_chunks = (n + _CHUNK - 1) // _CHUNK, start
    if n < _PARALLEL_MIN or n_chunks < 2:
        adam_range_ptr(param, grad, m, v, 0, n, lr, beta1, beta2, eps, weight_decay, step)
        return
    for c in prange(n_chunks, schedule="static"):
        start = c * _CHUNK
        adam_range_ptr(param, grad, m, v, start, min(start + _CHUNK, n), lr, beta1, beta2, eps,
                    weight_decay, step)


cdef extern from *:
    """
    #include <float.h>
    #include <math.h>
    /* One Adam update per element, in the element's dtype, compiled for AVX2 and the
       baseline (ANIREC_CLONES): 1.6x faster with AVX2 on 64k float32 parameters, the same
       bits. sqrtf for float32 is correctly rounded like NumPy's float32 sqrt. One loop per
       case so each vectorises. A moment below the smallest normal number (``tiny``) is
       stored as zero: see ``adam_range_ptr``. */
    #define ANIREC_ADAM(name, T, SQRT, TINY)                                                 \
    ANIREC_CLONES static void name(T* param, const T* grad, T* m, T* v, Py_ssize_t lo,       \
                                   Py_ssize_t hi, T b1, T b2, T c1, T c2, T m_scale,        \
                                   T v_scale, T lr, T eps, T wd, int decay) {                \
        const T tiny = TINY;                                                                 \
        Py_ssize_t i;                                                                        \
        if (decay) {                                                                         \
            for (i = lo; i < hi; i++) {                                                      \
                T g = grad[i] + wd * param[i];                                               \
                T mi = m[i] * b1 + c1 * g, vi = v[i] * b2 + c2 * (g * g);                    \
                mi = (mi > -tiny && mi < tiny) ? (T) 0 : mi;                                 \
                vi = vi < tiny ? (T) 0 : vi;                                                 \
                m[i] = mi;                                                                   \
                v[i] = vi;                                                                   \
                param[i] = param[i] - (lr * (mi * m_scale)) / (SQRT(vi * v_scale) + eps);    \
            }                                                                                \
        } else {                                                                             \
            for (i = lo; i < hi; i++) {                                                      \
                T g = grad[i];                                                               \
                T mi = m[i] * b1 + c1 * g, vi = v[i] * b2 + c2 * (g * g);                    \
                mi = (mi > -tiny && mi < tiny) ? (T) 0 : mi;                                 \
                vi = vi < tiny ? (T) 0 : vi;                                                 \
                m[i] = mi;                                                                   \
                v[i] = vi;                                                                   \
                param[i] = param[i] - (lr * (mi * m_scale)) / (SQRT(vi * v_scale) + eps);    \
            }                                                                                \
        }                                                                                    \
    }
    ANIREC_ADAM(anirec_adam_f32, float, sqrtf, FLT_MIN)
    ANIREC_ADAM(anirec_adam_f64, double, sqrt, DBL_MIN)
    """
    void anirec_adam_f32(float* param, const float* grad, float* m, float* v, Py_ssize_t lo,
                         Py_ssize_t hi, float b1, float b2, float c1, float c2, float m_scale,
                         float v_scale, float lr, float eps, float wd, int decay) noexcept nogil
    void anirec_adam_f64(double* param, const double* grad, double* m, double* v,
                         Py_ssize_t lo, Py_ssize_t hi, double b1, double b2, double c1,
                         double c2, double m_scale, double v_scale, double lr, double eps,
                         double wd, int decay) noexcept nogil


cdef void adam_range_ptr(floating* param, const floating* grad, floating* m, floating* v,
                         Py_ssize_t lo, Py_ssize_t hi, double lr, double beta1, double beta2,
                         double eps, double weight_decay, int64_t step) noexcept nogil:
    """Adam on the elements ``lo..hi`` (on the calling thread). The constants are rounded to
    the dtype once, as the NumPy twin rounds them.

    A moment whose magnitude falls below the dtype's smallest normal number is stored as zero.
    Without that, the first moment of a weight whose gradient stays zero (a dead ReLU unit)
    decays into the subnormal numbers within a few hundred steps and, rounded to nearest, stops
    at the smallest one for good (``0.9 x`` of it rounds back to it); on x86 every operation on
    a subnormal takes a microcode assist, and the compiled epoch at batch 64 lost a third of
    its rate within eight epochs (``benchmarks/epoch_rates.py``)."""
    cdef double m_scale = 1.0 / (1.0 - pow(beta1, <double> step))
    cdef double v_scale = 1.0 / (1.0 - pow(beta2, <double> step))
    if floating is float:
        anirec_adam_f32(param, grad, m, v, lo, hi, <float> beta1, <float> beta2,
                        <float> (1.0 - beta1), <float> (1.0 - beta2), <float> m_scale,
                        <float> v_scale, <float> lr, <float> eps, <float> weight_decay,
                        weight_decay != 0)
    else:
        anirec_adam_f64(param, grad, m, v, lo, hi, beta1, beta2, 1.0 - beta1, 1.0 - beta2,
                        m_scale, v_scale, lr, eps, weight_decay, weight_decay != 0)


cdef void loo_row(const floating* num, const floating* den, const floating* total,
                  const floating* count, const floating* item_genres,
                  const floating* item_weight, int mode, double global_mean,
                  const floating* mean, const floating* std, Py_ssize_t n_genres,
                  int64_t user, int64_t item, double rating, floating* out) noexcept nogil:
    """One scaled leave-one-out user row (the formula of ``anirec.loo.user_rows``).

    Precision as in the twin: the statistics and quotients in double, the z-scoring in the
    array dtype.
    """
    cdef Py_ssize_t g
    cdef const floating* num_u = num + user * n_genres
    cdef const floating* den_u = den + user * n_genres
    cdef const floating* genres = item_genres + item * n_genres
    cdef double n_left = <double> count[user] - 1.0
    cdef double sum_left = <double> total[user] - rating
    cdef double mean_left = sum_left / n_left if n_left > 0 else global_mean
    cdef double weight = <double> item_weight[item]
    cdef double numer, denom, pref
    cdef floating value
    for g in range(n_genres):
        if mode == 2:
            numer = <double> num_u[g] - weight * <double> genres[g]
            denom = <double> den_u[g] - weight
            pref = numer / denom if denom > _LOO_EMPTY else 0.0
        else:
            numer = <double> num_u[g] - rating * <double> genres[g]
            denom = <double> den_u[g] - <double> genres[g]
            if denom > _LOO_EMPTY:
                pref = numer / denom
                if mode == 1:
                    pref = pref - mean_left
            else:
                pref = mean_left if mode == 0 else 0.0
        value = <floating> pref
        out[g] = (value - mean[g]) / std[g]
    value = <floating> log1p(n_left if n_left > 0 else 0.0)
    out[n_genres] = (value - mean[n_genres]) / std[n_genres]
    value = <floating> mean_left
    out[n_genres + 1] = (value - mean[n_genres + 1]) / std[n_genres + 1]


cdef void loo_item_cols(const floating* rating_sum, const floating* rating_count,
                        const floating* prior_num, const floating* prior_den,
                        const floating* from_ratings, double global_mean,
                        const int64_t* columns, const floating* mean, const floating* std,
                        int64_t item, double rating, bint leave_out,
                        floating* row) noexcept nogil:
    """Write the three scaled item statistics of ``item`` (the formula of
    ``anirec.loo.item_rows``), without ``rating`` when ``leave_out``, into ``row`` at
    ``columns``. Quotients in double, the z-scoring in the array dtype, as in the twin."""
    cdef double s = <double> rating_sum[item]
    cdef double n = <double> rating_count[item]
    cdef double use = <double> from_ratings[item]
    cdef double raw[3]
    cdef floating value
    cdef int c
    if leave_out:
        s = s - rating
        n = n - 1.0
    raw[0] = (<double> prior_num[item] + use * s) / (<double> prior_den[item] + use * n)
    raw[1] = s / n if n > 0 else global_mean
    raw[2] = log1p(n if n > 0 else 0.0)
    for c in range(3):
        value = <floating> raw[c]
        row[columns[c]] = (value - mean[c]) / std[c]


# ---------------------------------------------------------------------------------------------
# Raw entry points (same names and signatures as the NumPy twin)


def dense_forward(const floating[:, ::1] X, const floating[:, ::1] W, const floating[::1] b,
                  floating[:, ::1] out, bint relu):
    with nogil:
        dense_forward_ptr(&X[0, 0], &W[0, 0], &b[0], &out[0, 0], <int> X.shape[0],
                          <int> X.shape[1], <int> W.shape[1], relu)


def dense_backward(floating[:, ::1] grad_out, const floating[:, ::1] X,
                   const floating[:, ::1] W, const floating[:, ::1] out,
                   floating[:, ::1] grad_W, floating[::1] grad_b, grad_X, bint relu):
    cdef floating[:, ::1] grad_X_view
    cdef floating* gX = NULL
    if grad_X is not None:
        grad_X_view = grad_X
        gX = &grad_X_view[0, 0]
    with nogil:
        dense_backward_ptr(&grad_out[0, 0], &X[0, 0], &W[0, 0], &out[0, 0], &grad_W[0, 0],
                           &grad_b[0], gX, <int> X.shape[0], <int> X.shape[1],
                           <int> W.shape[1], relu, False)


def l2_normalize(const floating[:, ::1] Z, floating[:, ::1] Y, floating[::1] norms):
    with nogil:
        l2_normalize_ptr(&Z[0, 0], &Y[0, 0], &norms[0], Z.shape[0], Z.shape[1])


def normalize_dot(const floating[:, ::1] Zu, const floating[:, ::1] Zv, floating[:, ::1] Yu,
                  floating[:, ::1] Yv, floating[::1] norm_u, floating[::1] norm_v,
                  floating[::1] pred):
    with nogil:
        normalize_dot_ptr(&Zu[0, 0], &Zv[0, 0], &Yu[0, 0], &Yv[0, 0], &norm_u[0], &norm_v[0],
                          &pred[0], Zu.shape[0], Zu.shape[1])


def normalize_dot_backward(const floating[::1] grad_pred, const floating[:, ::1] Yu,
                           const floating[:, ::1] Yv, const floating[::1] norm_u,
                           const floating[::1] norm_v, floating[:, ::1] grad_Zu,
                           floating[:, ::1] grad_Zv):
    with nogil:
        normalize_dot_backward_ptr(&grad_pred[0], &Yu[0, 0], &Yv[0, 0], &norm_u[0], &norm_v[0],
                                   &grad_Zu[0, 0], &grad_Zv[0, 0], Yu.shape[0], Yu.shape[1])


def mse(const floating[::1] pred, const floating[::1] target, grad):
    cdef floating[::1] grad_view
    cdef floating* g = NULL
    cdef double loss
    if grad is not None:
        grad_view = grad
        g = &grad_view[0]
    with nogil:
        loss = mse_ptr(&pred[0], &target[0], g, pred.shape[0], pred.shape[0])
    return loss


def sgd_step(floating[::1] param, const floating[::1] grad, velocity, double lr,
             double momentum, double weight_decay):
    cdef floating[::1] velocity_view
    cdef floating* vel = NULL
    if velocity is not None and momentum != 0:
        velocity_view = velocity
        vel = &velocity_view[0]
    with nogil:
        sgd_ptr(&param[0], &grad[0], vel, param.shape[0], lr, momentum, weight_decay)


def adam_step(floating[::1] param, const floating[::1] grad, floating[::1] m, floating[::1] v,
              double lr, double beta1, double beta2, double eps, double weight_decay,
              int64_t step):
    with nogil:
        adam_ptr(&param[0], &grad[0], &m[0], &v[0], param.shape[0], lr, beta1, beta2, eps,
                 weight_decay, step)


def gather_rows(const floating[:, ::1] X, const int64_t[::1] index, floating[:, ::1] out):
    cdef Py_ssize_t i, d = X.shape[1]
    cdef size_t row_bytes = d * sizeof(floating)
    with nogil:
        for i in range(index.shape[0]):
            memcpy(&out[i, 0], &X[index[i], 0], row_bytes)


def item_rows_loo(const floating[::1] rating_sum, const floating[::1] rating_count,
                  const floating[::1] prior_num, const floating[::1] prior_den,
                  const floating[::1] from_ratings, double global_mean,
                  const int64_t[::1] columns, const floating[::1] mean,
                  const floating[::1] std, const floating[:, ::1] item_x,
                  const int64_t[::1] items, const floating[::1] ratings,
                  floating[:, ::1] out):
    cdef Py_ssize_t i, width = out.shape[1]
    cdef size_t row_bytes = width * sizeof(floating)
    with nogil:
        for i in range(items.shape[0]):
            memcpy(&out[i, 0], &item_x[items[i], 0], row_bytes)
            loo_item_cols(&rating_sum[0], &rating_count[0], &prior_num[0], &prior_den[0],
                          &from_ratings[0], global_mean, &columns[0], &mean[0], &std[0],
                          items[i], <double> ratings[i], True, &out[i, 0])


def user_rows_loo(const floating[:, ::1] num, const floating[:, ::1] den,
                  const floating[::1] total, const floating[::1] count,
                  const floating[:, ::1] item_genres, const floating[::1] item_weight, int mode,
                  double global_mean, const floating[::1] mean, const floating[::1] std,
                  const int64_t[::1] users, const int64_t[::1] items,
                  const floating[::1] ratings, floating[:, ::1] out):
    cdef Py_ssize_t i, n_genres = num.shape[1], width = out.shape[1]
    with nogil:
        for i in range(users.shape[0]):
            loo_row(&num[0, 0], &den[0, 0], &total[0], &count[0], &item_genres[0, 0],
                    &item_weight[0], mode, global_mean, &mean[0], &std[0], n_genres, users[i],
                    items[i], <double> ratings[i], &out[0, 0] + i * width)
