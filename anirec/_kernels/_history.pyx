"""The compiled pooled-history block (the twin of :class:`anirec.blocks.History`).

Gather sums, in history order, the table rows of the anime the example's user rated but its
own, and divides by their number (zeros for none), recording it. After a round, each thread adds
every row's input gradient divided by that number into the rows of its history that the thread
owns, in row order (the tables of ``_embedding``), so each table row's gradient is the same sum
whatever the thread count.
"""

import numpy as np

from libc.stdint cimport int64_t
from libc.string cimport memset

from anirec._kernels._block cimport Run, data_of, row_at
from anirec._kernels._embedding cimport bind_table, table_add


cdef History bind_history(object block, list keep, Py_ssize_t max_threads,
                          Py_ssize_t rows) except *:
    """The compiled view of an :class:`anirec.blocks.History`, recording the pooled counts
    of up to ``rows`` gathered rows."""
    cdef History h
    cdef int64_t[::1] counts = np.zeros(max(rows, 1), dtype=np.int64)
    keep.append(counts)
    h.table = bind_table(block, keep, max_threads)
    h.indptr = <const int64_t*> data_of(block.indptr, keep)
    h.indices = <const int64_t*> data_of(block.indices, keep)
    h.counts = &counts[0]
    return h


cdef void history_gather(History* h, Run run, Py_ssize_t rows, floating* out,
                         Py_ssize_t stride, int64_t* record) noexcept nogil:
    """Each row's pooled history into ``out`` (rows ``stride`` apart), the number of anime
    pooled into ``record`` (unless NULL)."""
    cdef Py_ssize_t r, k, c, width = h.table.width
    cdef int64_t ex, user, item, j, n
    cdef floating* row
    cdef const floating* q
    cdef const floating* table = <const floating*> h.table.table
    for r in range(rows):
        ex = row_at(run.order, run.base + r)
        user, item = row_at(run.users, ex), row_at(run.items, ex)
        row = out + r * stride
        memset(row, 0, width * sizeof(floating))
        n = 0
        for k in range(h.indptr[user], h.indptr[user + 1]):
            j = h.indices[k]
            if j == item:
                continue
            q = table + j * width
            for c in range(width):
                row[c] = row[c] + q[c]
            n += 1
        if n > 0:
            for c in range(width):
                row[c] = row[c] / <floating> n
        if record != NULL:
            record[r] = n


cdef void history_scatter(History* h, Run run, Py_ssize_t rows, const floating* grad_rows,
                          Py_ssize_t stride, int tid, int n_threads) noexcept nogil:
    """Add each row's input gradient, divided by its pooled count, into the table rows of its
    history that thread ``tid`` of ``n_threads`` owns, in row order."""
    cdef Py_ssize_t r, k
    cdef Py_ssize_t per_thread = (h.table.n_rows + n_threads - 1) // n_threads
    cdef int64_t ex, user, item, j, n
    for r in range(rows):
        n = h.counts[r]
        if n == 0:
            continue
        ex = row_at(run.order, run.base + r)
        user, item = row_at(run.users, ex), row_at(run.items, ex)
        for k in range(h.indptr[user], h.indptr[user + 1]):
            j = h.indices[k]
            if j != item and j % n_threads == tid:
                table_add(&h.table, j, grad_rows + r * stride, <floating> n, tid, per_thread)
