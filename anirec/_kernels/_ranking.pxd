# Pointer-level, GIL-free cores of the in-batch softmax ranking loss, shared with the epoch
# module. Every pointer is C-contiguous and trusted.
from cython cimport floating
from libc.stdint cimport int64_t

cdef double inbatch_softmax_ptr(const floating* Yu, const floating* Yv, const int64_t* items,
                                const floating* weights, const floating* logq,
                                double temperature, floating* S, double* row,
                                floating* grad_Yu, floating* grad_Yv, Py_ssize_t n,
                                Py_ssize_t d) noexcept nogil
cdef void normalize_dot_backward_add_ptr(const floating* grad_pred, const floating* Yu,
                                         const floating* Yv, const floating* norm_u,
                                         const floating* norm_v, const floating* extra_Yu,
                                         const floating* extra_Yv, double extra_weight,
                                         floating* grad_Zu, floating* grad_Zv, Py_ssize_t n,
                                         Py_ssize_t d) noexcept nogil
cdef double positive_weight(const floating* weights, Py_ssize_t n) noexcept nogil
cdef void softmax_rows_ptr(const floating* Yu, const floating* Yv, const int64_t* items,
                           const floating* weights, const floating* logq, double temperature,
                           double total, floating* S, double* row, double* row_loss,
                           floating* grad_Yu, Py_ssize_t first, Py_ssize_t rows, Py_ssize_t n,
                           Py_ssize_t d) noexcept nogil
cdef void softmax_item_grad_ptr(const floating* S, const floating* Yu, floating* grad_Yv,
                                Py_ssize_t first, Py_ssize_t rows, Py_ssize_t n,
                                Py_ssize_t d) noexcept nogil
