# The compiled ID-embedding block, and the lazily updated tables it shares with pooled history.
from cython cimport floating
from libc.stdint cimport int64_t

from anirec._kernels._block cimport Run, Table


cdef struct Embedding:
    Table table
    const int64_t* index     # table row of every row of its side
    bint user_side
    int64_t* table_rows      # per gathered row of a round: its table row
    double dropout           # a training example's probability of reading the unknown row


cdef Table bind_table(object block, list keep, Py_ssize_t max_threads) except *
cdef void table_add(Table* t, int64_t row, const floating* g, floating divisor, int tid,
                    Py_ssize_t per_thread) noexcept nogil
cdef void table_step(Table* t, floating* table, int tid, Py_ssize_t per_thread,
                     int optimizer, double lr, double beta1, double beta2, double eps,
                     double momentum, double decay, int64_t step) noexcept nogil
cdef Embedding bind_embedding(object block, list keep, Py_ssize_t max_threads,
                              Py_ssize_t rows) except *
cdef void embedding_gather(Embedding* e, Run run, Py_ssize_t rows, floating* out,
                           Py_ssize_t stride, int64_t* record) noexcept nogil
cdef void embedding_scatter(Embedding* e, Py_ssize_t rows, const floating* grad_rows,
                            Py_ssize_t stride, int tid, int n_threads) noexcept nogil
