# Pointer-level, GIL-free cores of the row-wise and elementwise kernels, shared with the
# epoch and top-k modules. Every pointer is C-contiguous and trusted.
from cython cimport floating
from libc.stdint cimport int64_t

cdef void dense_forward_ptr(const floating* X, const floating* W, const floating* b,
                            floating* out, int n, int k, int m, bint relu) noexcept nogil
cdef void dense_backward_ptr(floating* G, const floating* X, const floating* W,
                             const floating* out, floating* gW, floating* gb, floating* gX,
                             int n, int k, int m, bint relu, bint accumulate) noexcept nogil
cdef void relu_mask_ptr(floating* G, const floating* out, Py_ssize_t n,
                        Py_ssize_t m) noexcept nogil
cdef void column_sums_ptr(floating* G, const floating* out, floating* sums, Py_ssize_t n,
                          Py_ssize_t m, bint accumulate) noexcept nogil
cdef void l2_normalize_ptr(const floating* Z, floating* Y, floating* norms, Py_ssize_t n,
                           Py_ssize_t d) noexcept nogil
cdef void normalize_dot_ptr(const floating* Zu, const floating* Zv, floating* Yu, floating* Yv,
                            floating* norm_u, floating* norm_v, floating* pred, Py_ssize_t n,
                            Py_ssize_t d) noexcept nogil
cdef void normalize_dot_backward_ptr(const floating* grad_pred, const floating* Yu,
                                     const floating* Yv, const floating* norm_u,
                                     const floating* norm_v, floating* grad_Zu,
                                     floating* grad_Zv, Py_ssize_t n,
                                     Py_ssize_t d) noexcept nogil
cdef void normalize_backward_side_ptr(const floating* grad_pred, const floating* Yu,
                                      const floating* Yv, const floating* norm,
                                      floating* grad_Z, Py_ssize_t n, Py_ssize_t d,
                                      bint item) noexcept nogil
cdef double mse_ptr(const floating* pred, const floating* target, floating* grad,
                    Py_ssize_t n, Py_ssize_t n_mean) noexcept nogil
cdef void sgd_ptr(floating* param, const floating* grad, floating* velocity, Py_ssize_t n,
                  double lr, double momentum, double weight_decay) noexcept nogil
cdef void adam_ptr(floating* param, const floating* grad, floating* m, floating* v,
                   Py_ssize_t n, double lr, double beta1, double beta2, double eps,
                   double weight_decay, int64_t step) noexcept nogil
cdef void adam_range_ptr(floating* param, const floating* grad, floating* m, floating* v,
                         Py_ssize_t lo, Py_ssize_t hi, double lr, double beta1, double beta2,
                         double eps, double weight_decay, int64_t step) noexcept nogil
cdef void loo_row(const floating* num, const floating* den, const floating* total,
                  const floating* count, const floating* item_genres,
                  const floating* item_weight, int mode, double global_mean,
                  const floating* mean, const floating* std, Py_ssize_t n_genres,
                  int64_t user, int64_t item, double rating, floating* out) noexcept nogil
cdef void loo_item_cols(const floating* rating_sum, const floating* rating_count,
                        const floating* prior_num, const floating* prior_den,
                        const floating* from_ratings, double global_mean,
                        const int64_t* columns, const floating* mean, const floating* std,
                        int64_t item, double rating, bint leave_out,
                        floating* row) noexcept nogil
