"""Row-major ``?gemm`` on top of ``scipy.linalg.cython_blas``.

Fortran BLAS is column-major. A row-major matrix read column-major is its transpose, so the
row-major product ``C = op(A) op(B)`` is issued as the column-major product
``C^T = op(B)^T op(A)^T``: the operands and their transpose flags swap places, and ``m`` and
``n`` swap. Nothing is copied.
"""

from scipy.linalg.cython_blas cimport dgemm, sgemm


cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
               const floating* A, int lda, const floating* B, int ldb, floating beta,
               floating* C, int ldc) noexcept nogil:
    """``C = alpha op(A) op(B) + beta C`` with row-major ``C`` (m, n), ``op(A)`` (m, k),
    ``op(B)`` (k, n); ``ld*`` are row lengths of the stored arrays."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef Py_ssize_t i, j
    if m <= 0 or n <= 0:
        return
    if k <= 0:
        # An empty inner dimension only scales C; BLAS would also reject ld* = 0 here.
        for i in range(m):
            for j in range(n):
                C[i * ldc + j] = 0 if beta == 0 else beta * C[i * ldc + j]
        return
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> B, &ldb, <float*> A, &lda, &beta, C, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> B, &ldb, <double*> A, &lda, &beta, C,
              &ldc)


def gemm_rowmajor(bint trans_a, bint trans_b, double alpha, const floating[:, ::1] A,
                  const floating[:, ::1] B, double beta, floating[:, ::1] C):
    """Thin Python twin of :c:func:`gemm` for tests: ``C = alpha op(A) op(B) + beta C``."""
    cdef int m = C.shape[0], n = C.shape[1]
    cdef int k = A.shape[0] if trans_a else A.shape[1]
    cdef int kb = B.shape[1] if trans_b else B.shape[0]
    cdef int mb = A.shape[1] if trans_a else A.shape[0]
    cdef int nb = B.shape[0] if trans_b else B.shape[1]
    if kb != k or mb != m or nb != n:
        raise ValueError("gemm_rowmajor: shapes of A, B and C do not match")
    with nogil:
        gemm(trans_a, trans_b, m, n, k, <floating> alpha, &A[0, 0], max(A.shape[1], 1),
             &B[0, 0], max(B.shape[1], 1), <floating> beta, &C[0, 0], max(n, 1))
