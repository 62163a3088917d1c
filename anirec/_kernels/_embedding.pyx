"""The compiled ID-embedding block (the twin of :class:`anirec.blocks.Embedding`), and the
lazily updated tables it shares with the pooled history block.

Gather copies each row's table row and records it. After a round of the batch, each thread adds
the rows' input gradients into the table rows it owns (``row % T == t``), in row order, listing
every row it touched once; after the batch it takes one optimizer step on each of them and
zeroes its gradient. Each table row's gradient is thus a sum in row order whatever T.
"""

import numpy as np

from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy, memset

from anirec._kernels._block cimport Run, Table, data_of, row_at
from anirec._kernels._ops cimport adam_ptr, sgd_ptr


cdef Table bind_table(object block, list keep, Py_ssize_t max_threads) except *:
    """The compiled view of a block's table, with its touch lists for ``max_threads``."""
    cdef Table t
    cdef int64_t[::1] stamp = np.full(block.table.shape[0], -1, dtype=np.int64)
    cdef int64_t[::1] touched = np.zeros(block.table.shape[0] + max_threads, dtype=np.int64)
    cdef Py_ssize_t[::1] n_touched = np.zeros(max_threads, dtype=np.intp)
    keep.extend([stamp, touched, n_touched])
    t.table = <void*> data_of(block.table, keep)
    t.grad = <void*> data_of(block.grad, keep)
    t.m = <void*> data_of(block.m, keep)
    t.v = <void*> data_of(block.v, keep)
    t.n_rows, t.width = block.table.shape[0], block.table.shape[1]
    t.stamp, t.touched, t.n_touched = &stamp[0], &touched[0], &n_touched[0]
    return t


cdef void table_add(Table* t, int64_t row, const floating* g, floating divisor, int tid,
                    Py_ssize_t per_thread) noexcept nogil:
    """``grad[row] += g / divisor``, listing ``row`` as touched by thread ``tid`` once."""
    cdef Py_ssize_t j
    cdef floating* dst = <floating*> t.grad + row * t.width
    for j in range(t.width):
        dst[j] = dst[j] + g[j] / divisor
    if t.stamp[row] < 0:
        t.stamp[row] = 1
        t.touched[tid * per_thread + t.n_touched[tid]] = row
        t.n_touched[tid] += 1


cdef void table_step(Table* t, floating* table, int tid, Py_ssize_t per_thread,
                     int optimizer, double lr, double beta1, double beta2, double eps,
                     double momentum, double decay, int64_t step) noexcept nogil:
    """One optimizer step on every row thread ``tid`` touched, whose gradient is then zeroed
    (``table`` is ``t.table``, typed)."""
    cdef Py_ssize_t k, at
    cdef int64_t row
    cdef floating* grad = <floating*> t.grad
    cdef floating* m = <floating*> t.m
    cdef floating* v = <floating*> t.v
    for k in range(t.n_touched[tid]):
        row = t.touched[tid * per_thread + k]
        at = row * t.width
        if optimizer == 1:
            adam_ptr(table + at, grad + at, m + at, v + at, t.width, lr, beta1, beta2, eps,
                     decay, step)
        else:
            sgd_ptr(table + at, grad + at, m + at if momentum != 0 else NULL, t.width, lr,
                    momentum, decay)
        memset(grad + at, 0, t.width * sizeof(floating))
        t.stamp[row] = -1
    t.n_touched[tid] = 0


cdef inline bint _dropped(int64_t example, int64_t step, double rate) noexcept nogil:
    """Whether ``example`` reads the unknown row at update ``step``: the splitmix64 hash of
    ``example + step * golden`` below ``rate`` (as ``anirec.blocks.embedding.dropped``)."""
    cdef uint64_t z
    if rate <= 0 or step <= 0:
        return False
    z = <uint64_t> example + <uint64_t> step * <uint64_t> 0x9E3779B97F4A7C15
    z = (z ^ (z >> 30)) * <uint64_t> 0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t> 0x94D049BB133111EB
    z = z ^ (z >> 31)
    return <double> (z >> 11) < rate * 9007199254740992.0


cdef Embedding bind_embedding(object block, list keep, Py_ssize_t max_threads,
                              Py_ssize_t rows) except *:
    """The compiled view of an :class:`anirec.blocks.Embedding`, recording the table rows of
    up to ``rows`` gathered rows."""
    cdef Embedding e
    cdef int64_t[::1] table_rows = np.zeros(max(rows, 1), dtype=np.int64)
    keep.append(table_rows)
    e.table = bind_table(block, keep, max_threads)
    e.index = <const int64_t*> data_of(block.index, keep)
    e.user_side = block.side == "user"
    e.table_rows = &table_rows[0]
    e.dropout = block.dropout
    return e


cdef void embedding_gather(Embedding* e, Run run, Py_ssize_t rows, floating* out,
                           Py_ssize_t stride, int64_t* record) noexcept nogil:
    """Each row's table row into ``out`` (rows ``stride`` apart), its index into ``record``
    (unless NULL); a training example dropped reads the unknown (last) row."""
    cdef Py_ssize_t r
    cdef int64_t ex, key, at
    for r in range(rows):
        ex = row_at(run.order, run.base + r)
        key = row_at(run.users, ex) if e.user_side else row_at(run.items, ex)
        at = e.index[key]
        if _dropped(ex, run.step, e.dropout):
            at = e.table.n_rows - 1
        memcpy(out + r * stride, <floating*> e.table.table + at * e.table.width,
               e.table.width * sizeof(floating))
        if record != NULL:
            record[r] = at


cdef void embedding_scatter(Embedding* e, Py_ssize_t rows, const floating* grad_rows,
                            Py_ssize_t stride, int tid, int n_threads) noexcept nogil:
    """Add the input gradient of each of ``rows`` gathered rows into its table row, for the
    table rows thread ``tid`` of ``n_threads`` owns, in row order."""
    cdef Py_ssize_t r
    cdef Py_ssize_t per_thread = (e.table.n_rows + n_threads - 1) // n_threads
    cdef int64_t at
    for r in range(rows):
        at = e.table_rows[r]
        if at % n_threads == tid:
            table_add(&e.table, at, grad_rows + r * stride, <floating> 1, tid, per_thread)
