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
"""

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
    if m <= 0 or n <= 0:
        return
    if k <= 0:
        # An empty inner dimension only scales C; BLAS would also reject ld* = 0 here.
        for i in range(m):
            for j in range(n):
                C[i * ldc + j] = 0 if beta == 0 else beta * C[i * ldc + j]
        return
    if <long long> m * n * k <= _single_thread_max:
        previous = blas_set_num_threads(1)
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> B, &ldb, <float*> A, &lda, &beta, C, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> B, &ldb, <double*> A, &lda, &beta, C,
              &ldc)
    if previous > 1:
        blas_set_num_threads(previous)


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
