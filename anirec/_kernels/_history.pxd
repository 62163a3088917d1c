# The compiled pooled-history block: the mean of learned item vectors over a user's anime.
from cython cimport floating
from libc.stdint cimport int64_t

from anirec._kernels._block cimport Run, Table


cdef struct History:
    Table table
    const int64_t* indptr    # per user row
    const int64_t* indices   # the item rows of each user's history
    int64_t* counts          # per gathered row of a round: the anime it pooled


cdef History bind_history(object block, list keep, Py_ssize_t max_threads,
                          Py_ssize_t rows) except *
cdef void history_gather(History* h, Run run, Py_ssize_t rows, floating* out,
                         Py_ssize_t stride, int64_t* record) noexcept nogil
cdef void history_scatter(History* h, Run run, Py_ssize_t rows, const floating* grad_rows,
                          Py_ssize_t stride, int tid, int n_threads) noexcept nogil
