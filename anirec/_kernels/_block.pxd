# What the compiled epoch and the compiled input blocks share: row index vectors, the examples
# of a run, and the kinds of block (the codes of ``anirec.blocks.KINDS``).
from libc.stdint cimport int32_t, int64_t

cdef enum:
    FEATURES = 0
    EMBEDDING = 1
    HISTORY = 2


cdef struct Rows:
    # A read-only vector of row indices, int32 or int64 (``wide``), read through ``row_at``:
    # one compiled epoch per float type serves both widths and any mix of them. The array it
    # points into is owned by the plan and outlives every call.
    const void* data
    Py_ssize_t n
    bint wide


cdef inline int64_t row_at(Rows rows, Py_ssize_t k) noexcept nogil:
    # The width is fixed for the call, so the branch is always predicted.
    if rows.wide:
        return (<const int64_t*> rows.data)[k]
    return (<const int32_t*> rows.data)[k]


cdef struct Run:
    # The examples of the rows being gathered: row ``r`` is example ``row_at(order, base + r)``,
    # whose user row, item row and rating are read through ``users``, ``items``, ``ratings``
    # (float or double, per the plan; NULL without leave-one-out statistics), at update
    # ``step`` of training (0: not training).
    Rows order
    Py_ssize_t base
    Rows users
    Rows items
    const void* ratings
    int64_t step


cdef struct Table


cdef struct Block:
    # One input block of a tower: its kind, its first column and width in the tower's input,
    # whether it reads the examples' user rows (else their item rows), its kind's state, and
    # the learned table inside it (NULL for a block without parameters).
    int kind
    bint user_side
    Py_ssize_t offset
    Py_ssize_t width
    void* state
    Table* table


cdef struct Table:
    # A learned table with lazy updates (ID embeddings, pooled history): the rows a batch
    # touches are listed per thread, each thread owning the rows ``r`` with ``r % T == t``,
    # so the gradient of every row is added in row order by one thread, whatever T.
    void* table
    void* grad
    void* m
    void* v
    Py_ssize_t n_rows
    Py_ssize_t width
    int64_t* stamp        # per table row: -1, or touched in this batch
    int64_t* touched      # n_rows + max threads: thread t's list at t * ceil(n_rows / T)
    Py_ssize_t* n_touched # per thread


cdef inline const void* data_of(object array, list keep) except *:
    # The address of a checked, C-contiguous array's data; ``keep`` holds the array alive for
    # as long as the address is used.
    keep.append(array)
    return <const void*> <size_t> array.__array_interface__["data"][0]
