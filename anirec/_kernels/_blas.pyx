"""Row-major ``?gemm`` on top of ``scipy.linalg.cython_blas``.

Fortran BLAS is column-major. A row-major matrix read column-major is its transpose, so the
row-major product ``C = op(A) op(B)`` is issued as the column-major product
``C^T = op(B)^T op(A)^T``: the operands and their transpose flags swap places, and ``m`` and
``n`` swap. Nothing is copied.

The thread count of that BLAS can be read and set from nogil code (``blas_get_num_threads``,
``blas_set_num_threads``) so that kernels running their own OpenMP threads can make each BLAS
call single-threaded, then restore the caller's setting. The library is found from the address
of ``sgemm`` itself (``dladdr``), so it is exactly the one SciPy calls, whatever its symbol
prefix; with a BLAS other than OpenBLAS (or off Linux/macOS) both are no-ops returning -1.

Single-threaded float32 products ``A B`` and ``A^T B`` skip BLAS when the CPU has AVX-512F
(x86-64, GCC or Clang): a direct kernel reads the row-major operands where they lie, tiles of
8 (then 4, 2, 1) rows by 32 columns of ``C`` in registers, and sums over ``k`` in order with
FMA. OpenBLAS copies (packs) both operands on every call, a large share of the mini-batch's
skinny products; read directly, they skip that copy, and the forward pass adds its bias and
ReLU as the tile is stored (:c:func:`sgemm_bias_relu`). Whether that pays depends on the CPU
and the rows: ``benchmarks/direct_gemm.py`` times both (figures in ``benchmarks/README.md``).
``A B^T`` stays with BLAS: transposing ``B`` first cost more than the packing saves at small
batches. ``set_direct_gemm(False)`` or ``ANIREC_DIRECT_GEMM=0`` turns the kernels off.
"""

import os

from libc.limits cimport INT_MAX
from scipy.linalg.cython_blas cimport dgemm, sgemm

cdef extern from *:
    """
    #if defined(__linux__) || defined(__APPLE__)
    #include <dlfcn.h>
    /* The symbol ``name`` of the shared library that holds the code at ``inside``, or NULL. */
    static void* anirec_sibling_symbol(void* inside, const char* name) {
        Dl_info info;
        void* handle;
        if (!dladdr(inside, &info) || info.dli_fname == NULL) return NULL;
        handle = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD);
        if (handle == NULL) return NULL;
        return dlsym(handle, name);  /* the library stays loaded: SciPy holds it */
    }
    #else
    static void* anirec_sibling_symbol(void* inside, const char* name) { return NULL; }
    #endif
    typedef int (*anirec_get_threads_t)(void);
    typedef void (*anirec_set_threads_t)(int);
    """
    void* anirec_sibling_symbol(void* inside, const char* name)
    ctypedef int (*anirec_get_threads_t)() noexcept nogil
    ctypedef void (*anirec_set_threads_t)(int) noexcept nogil

cdef anirec_get_threads_t _get_threads = NULL
cdef anirec_set_threads_t _set_threads = NULL


cdef void _find_thread_controls():
    global _get_threads, _set_threads
    cdef void* get_fn
    cdef void* set_fn
    for prefix in (b"scipy_openblas", b"openblas"):
        for suffix in (b"", b"64_"):
            get_fn = anirec_sibling_symbol(<void*> sgemm, prefix + b"_get_num_threads" + suffix)
            set_fn = anirec_sibling_symbol(<void*> sgemm, prefix + b"_set_num_threads" + suffix)
            if get_fn != NULL and set_fn != NULL:
                _get_threads = <anirec_get_threads_t> get_fn
                _set_threads = <anirec_set_threads_t> set_fn
                return


_find_thread_controls()


cdef int blas_get_num_threads() noexcept nogil:
    """Threads SciPy's BLAS uses now, or -1 when it cannot be told."""
    if _get_threads == NULL:
        return -1
    return _get_threads()


cdef int blas_set_num_threads(int n) noexcept nogil:
    """Set SciPy's BLAS thread count (process-wide); return the previous one, or -1 (and do
    nothing) when it cannot be set."""
    cdef int previous
    if _get_threads == NULL or _set_threads == NULL or n < 1:
        return -1
    previous = _get_threads()
    if previous != n:
        _set_threads(n)
    return previous


cdef extern from *:
    """
    #if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    #include <immintrin.h>
    #define ANIREC_DIRECT_GEMM 1
    #define ANIREC_AVX512 __attribute__((target("avx512f")))

    static int anirec_has_avx512f(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") != 0;
    }

    /* Lane masks of columns j0 .. j0 + 31 of n. */
    ANIREC_AVX512 static inline void anirec_masks(int n, int j0, __mmask16* m0, __mmask16* m1) {
        int w = n - j0 < 32 ? n - j0 : 32;
        *m0 = w >= 16 ? (__mmask16) 0xFFFF : (__mmask16) ((1u << w) - 1);
        *m1 = w >= 32 ? (__mmask16) 0xFFFF : (w > 16 ? (__mmask16) ((1u << (w - 16)) - 1) : 0);
    }

    /* Store 32 columns of a row of C: (C +) sum, then + bias, then ReLU. The order of the
       additions is BLAS's then the bias pass's; max(0, y) keeps a NaN (vmaxps returns its
       second operand when either is NaN) and -0.0, like ``0 if y < 0 else y``. */
    ANIREC_AVX512 static inline void anirec_store(float* c, __mmask16 m0, __mmask16 m1,
                                                  __m512 y0, __m512 y1, int accumulate,
                                                  const float* bias, int relu) {
        if (accumulate) {
            y0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c), y0);
            y1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c + 16), y1);
        }
        if (bias) {
            y0 = _mm512_add_ps(y0, _mm512_maskz_loadu_ps(m0, bias));
            y1 = _mm512_add_ps(y1, _mm512_maskz_loadu_ps(m1, bias + 16));
        }
        if (relu) {
            y0 = _mm512_max_ps(_mm512_setzero_ps(), y0);
            y1 = _mm512_max_ps(_mm512_setzero_ps(), y1);
        }
        _mm512_mask_storeu_ps(c, m0, y0);
        _mm512_mask_storeu_ps(c + 16, m1, y1);
    }

    /* An MR x 32 tile of C (+)= a B: a[r, p] at a + r * sa + p * sp, B[p, j] at
       B + p * ldb + j, summed over p = 0 .. k - 1 in order, in registers: every loop over r
       is unrolled, or the compiler keeps the tile in memory and stores it on every step. */
    #define ANIREC_UNROLL _Pragma("GCC unroll 8")
    #define ANIREC_TILE(MR)                                                                 \
    ANIREC_AVX512 static inline void anirec_tile##MR(                                       \
            int k, const float* a, size_t sa, size_t sp, const float* B, int ldb, float* C, \
            int ldc, __mmask16 m0, __mmask16 m1, int accumulate, const float* bias,         \
            int relu) {                                                                     \
        __m512 c[MR][2];                                                                    \
        int p, r;                                                                           \
        ANIREC_UNROLL for (r = 0; r < MR; r++) c[r][0] = c[r][1] = _mm512_setzero_ps();     \
        for (p = 0; p < k; p++) {                                                           \
            const float* b = B + (size_t) p * ldb;                                          \
            const float* ap = a + (size_t) p * sp;                                          \
            __m512 x0 = _mm512_maskz_loadu_ps(m0, b);                                       \
            __m512 x1 = _mm512_maskz_loadu_ps(m1, b + 16);                                  \
            ANIREC_UNROLL for (r = 0; r < MR; r++) {                                        \
                __m512 s = _mm512_set1_ps(ap[(size_t) r * sa]);                             \
                c[r][0] = _mm512_fmadd_ps(s, x0, c[r][0]);                                  \
                c[r][1] = _mm512_fmadd_ps(s, x1, c[r][1]);                                  \
            }                                                                               \
        }                                                                                   \
        ANIREC_UNROLL for (r = 0; r < MR; r++)                                              \
            anirec_store(C + (size_t) r * ldc, m0, m1, c[r][0], c[r][1], accumulate, bias,  \
                         relu);                                                             \
    }
    ANIREC_TILE(8)
    ANIREC_TILE(4)
    ANIREC_TILE(2)
    ANIREC_TILE(1)

    /* C[m, n] = (C +) A B (+ bias, ReLU) for a[i, p] at A + i * sa + p * sp: A's rows
       (sa = lda, sp = 1) or, for A^T B, its columns (sa = 1, sp = lda). Tiles of 8 rows,
       then 4, 2 and 1 for the last rows (one row alone waits on its FMAs' latency). */
    ANIREC_AVX512 static void anirec_sgemm_direct(int m, int n, int k, const float* A,
                                                  size_t sa, size_t sp, const float* B,
                                                  int ldb, float* C, int ldc, int accumulate,
                                                  const float* bias, int relu) {
        int i, j0;
        for (j0 = 0; j0 < n; j0 += 32) {
            __mmask16 m0, m1;
            const float* bj = bias ? bias + j0 : NULL;
            const float* b = B + j0;
            float* c = C + j0;
            anirec_masks(n, j0, &m0, &m1);
            for (i = 0; i + 8 <= m; i += 8)
                anirec_tile8(k, A + (size_t) i * sa, sa, sp, b, ldb, c + (size_t) i * ldc,
                             ldc, m0, m1, accumulate, bj, relu);
            if (m - i >= 4) {
                anirec_tile4(k, A + (size_t) i * sa, sa, sp, b, ldb, c + (size_t) i * ldc,
                             ldc, m0, m1, accumulate, bj, relu);
                i += 4;
            }
            if (m - i >= 2) {
                anirec_tile2(k, A + (size_t) i * sa, sa, sp, b, ldb, c + (size_t) i * ldc,
                             ldc, m0, m1, accumulate, bj, relu);
                i += 2;
            }
            if (m - i >= 1)
                anirec_tile1(k, A + (size_t) i * sa, sa, sp, b, ldb, c + (size_t) i * ldc,
                             ldc, m0, m1, accumulate, bj, relu);
        }
    }
    #else
    #define ANIREC_DIRECT_GEMM 0
    static int anirec_has_avx512f(void) { return 0; }
    static void anirec_sgemm_direct(int m, int n, int k, const float* A, size_t sa, size_t sp,
                                    const float* B, int ldb, float* C, int ldc, int accumulate,
                                    const float* bias, int relu) { }
    #endif
    """
    const int ANIREC_DIRECT_GEMM
    int anirec_has_avx512f() noexcept nogil
    void anirec_sgemm_direct(int m, int n, int k, const float* A, size_t sa, size_t sp,
                             const float* B, int ldb, float* C, int ldc, int accumulate,
                             const float* bias, int relu) noexcept nogil

#: Whether the CPU can run the direct kernels, and whether they are used.
cdef bint _direct_available = ANIREC_DIRECT_GEMM and anirec_has_avx512f()
cdef bint _direct = _direct_available and os.environ.get("ANIREC_DIRECT_GEMM", "1") != "0"


def set_direct_gemm(bint enabled):
    """Use the direct float32 kernels where they apply (when the CPU has them); return the
    previous setting. For tests and benchmarks: the results differ from BLAS's in rounding."""
    global _direct
    previous = _direct
    _direct = enabled and _direct_available
    return previous


def direct_gemm_available():
    """Whether this CPU and build can run the direct float32 kernels (AVX-512F, x86-64)."""
    return _direct_available


def direct_gemm_in_use():
    """Whether the direct float32 kernels are in use (available and not turned off)."""
    return _direct


def blas_threads():
    """Threads of SciPy's BLAS as the kernels see it (-1: not OpenBLAS, cannot be told)."""
    return blas_get_num_threads()


#: Products with at most this many multiply-adds (m n k) run on one BLAS thread. OpenBLAS
#: splits anything above 262,144 over all its threads; for the small GEMMs of a mini-batch
#: (64 x 256 x 128 is 2.1M) waking and joining the second thread costs more than it saves,
#: and on a shared machine a descheduled BLAS thread stalls the call for a whole time slice
#: (64 x 256 x 128: 94 us on one thread, 150-410 us on two, with the other core busy).
cdef long long _single_thread_max = 1 << 23


def set_single_thread_max(long long macs):
    """Set the size (m n k multiply-adds) up to which a kernel GEMM runs single-threaded;
    return the previous value. 0 leaves every call to the BLAS's own threading."""
    global _single_thread_max
    previous = _single_thread_max
    _single_thread_max = macs
    return previous


cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
               const floating* A, int lda, const floating* B, int ldb, floating beta,
               floating* C, int ldc) noexcept nogil:
    """``C = alpha op(A) op(B) + beta C`` with row-major ``C`` (m, n), ``op(A)`` (m, k),
    ``op(B)`` (k, n); ``ld*`` are row lengths of the stored arrays. Small products run on one
    BLAS thread (see ``_single_thread_max``); the result does not depend on it (OpenBLAS never
    splits the inner dimension over threads)."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef Py_ssize_t i, j
    cdef int previous = -1
    cdef bint single
    if m <= 0 or n <= 0:
        return
    if k <= 0:
        # An empty inner dimension only scales C; BLAS would also reject ld* = 0 here.
        for i in range(m):
            for j in range(n):
                C[i * ldc + j] = 0 if beta == 0 else beta * C[i * ldc + j]
        return
    single = <long long> m * n * k <= _single_thread_max
    if (floating is float and not trans_b and alpha == 1 and (beta == 0 or beta == 1)
            and _direct_here(single)):
        anirec_sgemm_direct(m, n, k, <const float*> A, 1 if trans_a else lda,
                            lda if trans_a else 1, <const float*> B, ldb, <float*> C, ldc,
                            beta == 1, NULL, 0)
        return
    if single:
        previous = blas_set_num_threads(1)
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> B, &ldb, <float*> A, &lda, &beta, C, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> B, &ldb, <double*> A, &lda, &beta, C,
              &ldc)
    if previous > 1:
        blas_set_num_threads(previous)


cdef inline bint _direct_here(bint single) noexcept nogil:
    """Whether a float32 product goes to the direct kernel: only where BLAS would run it on
    one thread anyway (BLAS's own threads beat one core on large products)."""
    return _direct and (single or blas_get_num_threads() == 1)


cdef bint sgemm_bias_relu(int m, int n, int k, const float* A, int lda, const float* B, int ldb,
                          const float* bias, bint relu, float* C, int ldc) noexcept nogil:
    """``C = act(A B + bias)`` in one pass with the direct kernel, the bias added after the
    sum as BLAS plus a bias pass would. Returns False, doing nothing, when the direct kernel
    does not apply (the caller then uses :c:func:`gemm` and its own pass)."""
    if m <= 0 or n <= 0 or k <= 0:
        return False
    if not _direct_here(<long long> m * n * k <= _single_thread_max):
        return False
    anirec_sgemm_direct(m, n, k, A, lda, 1, B, ldb, C, ldc, 0, bias, relu)
    return True


def gemm_rowmajor(bint trans_a, bint trans_b, double alpha, const floating[:, ::1] A,
                  const floating[:, ::1] B, double beta, floating[:, ::1] C):
    """Thin Python twin of :c:func:`gemm` for tests: ``C = alpha op(A) op(B) + beta C``.

    Raises ``ValueError`` when a dimension does not fit BLAS's 32-bit ``int`` (it would be
    truncated, silently computing something else)."""
    cdef Py_ssize_t m = C.shape[0], n = C.shape[1]
    cdef Py_ssize_t k = A.shape[0] if trans_a else A.shape[1]
    cdef Py_ssize_t kb = B.shape[1] if trans_b else B.shape[0]
    cdef Py_ssize_t mb = A.shape[1] if trans_a else A.shape[0]
    cdef Py_ssize_t nb = B.shape[0] if trans_b else B.shape[1]
    if kb != k or mb != m or nb != n:
        raise ValueError("gemm_rowmajor: shapes of A, B and C do not match")
    for dim in (m, n, k, A.shape[1], B.shape[1]):
        if dim > INT_MAX:
            raise ValueError(f"gemm_rowmajor: dimension {dim} is above 2**31 - 1, the largest "
                             "BLAS takes")
    with nogil:
        gemm(trans_a, trans_b, <int> m, <int> n, <int> k, <floating> alpha, &A[0, 0],
             <int> max(A.shape[1], 1), &B[0, 0], <int> max(B.shape[1], 1), <floating> beta,
             &C[0, 0], <int> max(n, 1))
