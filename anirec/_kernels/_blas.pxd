# Row-major GEMM over scipy's BLAS, for every kernel module that cimports it, and the thread
# count of that BLAS (OpenBLAS only; the functions are no-ops returning -1 elsewhere).
from cython cimport floating

cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
               const floating* A, int lda, const floating* B, int ldb, floating beta,
               floating* C, int ldc) noexcept nogil
cdef bint sgemm_bias_relu(int m, int n, int k, const float* A, int lda, const float* B, int ldb,
                          const float* bias, bint relu, float* C, int ldc) noexcept nogil
cdef int blas_get_num_threads() noexcept nogil
cdef int blas_set_num_threads(int n) noexcept nogil
