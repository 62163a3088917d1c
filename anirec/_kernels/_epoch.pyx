"""One whole training epoch of the two towers in a single compiled call, on T threads with the
same bits for every T.

A plan (:class:`anirec.kernels.EpochPlan`) is laid out once per fit (:class:`CompiledPlan`:
the layers, the blocks' compiled views, every workspace); each call then runs batches of the
visiting order without the GIL and without any Python object.

The rule that gives the same bits for every T: no sum is ever split between threads. Every
output element is computed whole by one thread, in an order fixed by the batch size alone;
which thread computes it changes only the speed. Per batch:

1. the rows are cut into chunks (``chunks = min(8, batch // 256)``, at least 1, of
   ``ceil(batch / chunks)`` rows, at most 1,024); each unit (chunk, tower) gathers its input
   rows from the blocks and runs the tower forward; the units, tower by tower, are cut into T
   runs of equal length, one per thread (a thread keeps to one tower's weights);
2. (ranking loss) each chunk's rows are normalised, then their softmax rows over the whole
   batch and the gradient rows of both normalised outputs are computed, chunk by chunk;
3. every unit takes its head (normalisation, loss gradient; for the rating loss alone, inside
   the unit) and runs its tower backward through the rows: each layer's output gradient
   (ReLU-masked) is kept for the whole batch, and the input gradient of the trained blocks'
   columns per row;
4. the weight gradient ``X^T G`` of each layer is cut into strips of the weight's rows
   (dense units, fixed by the layer widths); each strip, and its layer's bias column sums, is
   summed over the whole batch by one thread, chunk by chunk in order (each chunk's sum added
   to the earlier ones'), which then takes the optimizer step on it. On one or two threads
   the thread that ran a tower owns its strips and sums a chunk right after its backward
   pass, while its rows are in cache, with no wait between; on more, after a barrier. Each
   thread adds the rows' block gradients into the table rows it owns (a tower's tables
   belong to the threads of its half of the T), in row order, then steps them.

Besides the ranking loss's own barriers, a round's threads meet after the forward pass
(every head reads both towers' outputs) and after the steps (on more than two threads also
before the strips). On two threads with the rating loss alone the one after the steps is
dropped: each thread keeps to its own tower's buffers, weights and tables, but for the
outputs and targets that both heads read, which alternate between two halves from round to
round; the barrier after the next forward pass keeps a thread from overwriting a half the
other still reads.

A batch of the rating loss alone runs in rounds of ``ceil(T / 2)`` chunks (at most 8, so the
workspaces stay at most 8,192 rows): as many units as threads, and a chunk's rows still in
cache when its backward pass comes (5% faster at batch 1,024 and 4,096 on two threads than
whole batches). The strips add each round's sum to the last, and step after the last round,
so the rounds change only the speed. The ranking loss couples every row of a batch, so its
batch is one round. With OpenMP, BLAS runs on one thread inside the epoch.

The sequence of operations per batch is that of ``anirec._kernels._numpy.train_epoch``, so both
backends follow the same trajectory up to floating-point rounding.
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport parallel
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memcpy

from anirec._kernels._block cimport (EMBEDDING, FEATURES, HISTORY, Block, Rows, Run, data_of,
                                     row_at)
from anirec._kernels._blas cimport blas_set_num_threads, gemm
from anirec._kernels._embedding cimport (Embedding, bind_embedding, embedding_gather,
                                         embedding_scatter, table_step)
from anirec._kernels._features cimport Features, bind_features, features_gather
from anirec._kernels._history cimport History, bind_history, history_gather, history_scatter
from anirec._kernels._openmp cimport (ANIREC_OPENMP, anirec_omp_barrier, omp_get_num_threads,
                                      omp_get_thread_limit, omp_get_thread_num)
from anirec._kernels._ops cimport (adam_range_ptr, column_sums_ptr, dense_forward_ptr,
                                   normalize_backward_side_ptr, normalize_dot_ptr, relu_mask_ptr,
                                   sgd_ptr)
from anirec._kernels._ranking cimport (normalize_dot_backward_add_ptr, positive_weight,
                                       softmax_item_grad_ptr, softmax_rows_ptr)

cdef enum:
    MAX_CHUNKS = 8     # chunks of a round
    CHUNK_ROWS = 256   # the fewest rows of a chunk of a batch of at least 256 rows: BLAS's
                       # products on fewer rows ran slower on two cores
    MAX_CHUNK = 1024
    STRIP_MACS = 8192  # multiply-adds per batch row of a dense unit (a strip of a layer)


def batch_layout(Py_ssize_t n):
    """The chunks of a round and the rows of a chunk of a batch of ``n`` rows."""
    cdef Py_ssize_t chunks, chunk
    _layout(n, &chunks, &chunk)
    return chunks, chunk


def max_chunk(Py_ssize_t batch):
    """The most rows of a chunk of any batch of at most ``batch`` rows (the last batch of an
    epoch is smaller, and may have fewer chunks): batches below 512 rows are one chunk, those
    below 4,096 chunks under 512 rows, the others chunks of an eighth, at most 1,024."""
    return max(min(batch, 2 * CHUNK_ROWS - 1),
               min(<Py_ssize_t> MAX_CHUNK, (batch + MAX_CHUNKS - 1) // MAX_CHUNKS))


def strip_rows(Py_ssize_t fan_in, Py_ssize_t fan_out):
    """The weight rows of each dense unit of a ``fan_in`` x ``fan_out`` layer (the last strip
    may be shorter): a multiple of 8 near ``8192 / fan_out``, at least 8."""
    return min(fan_in, max(<Py_ssize_t> 8, STRIP_MACS // fan_out // 8 * 8))


def epoch_threads():
    """The most threads the compiled epoch can run on: OpenMP's thread limit
    (``OMP_THREAD_LIMIT``; 1 without OpenMP)."""
    return omp_get_thread_limit() if ANIREC_OPENMP else 1


cdef inline void _layout(Py_ssize_t n, Py_ssize_t* chunks, Py_ssize_t* chunk) noexcept nogil:
    chunks[0] = min(<Py_ssize_t> MAX_CHUNKS, max(<Py_ssize_t> 1, n // CHUNK_ROWS))
    chunk[0] = min(<Py_ssize_t> MAX_CHUNK, (n + chunks[0] - 1) // chunks[0])


cdef inline int _owner(Py_ssize_t c, int tower, Py_ssize_t chunks,
                       int n_threads) noexcept nogil:
    """The thread of chunk ``c`` (of the round's ``chunks``) of a tower: the units tower by
    tower, cut into T runs of equal length, so that a thread keeps to one tower's weights."""
    return <int> ((tower * chunks + c) * n_threads // (2 * chunks))


cdef struct Layer:
    # Fan-in, fan-out, offsets of W and b in the flat parameter buffer, offsets of the layer's
    # input and output rows in the tower's activation buffer (``cap`` rows each).
    Py_ssize_t fan_in, fan_out, w, b, x, y


cdef struct TowerState:
    Layer* layers
    Py_ssize_t n_layers, d_in, d_out
    Block* blocks
    Py_ssize_t n_blocks
    Py_ssize_t trained_from    # first input column of the blocks with parameters (d_in: none)
    void* acts                 # the layers' input and output rows
    void* grad_acts            # the gradient wrt each layer's output rows, laid out as acts
    void* grad_out             # the last layer's part of grad_acts
    Py_ssize_t out_b           # offset in acts of the last layer's second output buffer
    void* row_grad             # per row, the gradient wrt the trained blocks' columns


cdef struct Strip:
    # A dense unit: rows ``lo .. hi`` of one layer's weight (and with ``lo`` 0 its bias); the
    # cost of the units before it and its own, to share them out over the threads.
    int tower
    Py_ssize_t layer, lo, hi
    double before, cost


cdef struct State:
    TowerState towers[2]
    Rows users, items
    const void* targets
    const void* ratings
    const void* rank_weights
    const void* item_logq
    void* params
    void* grads
    void* state1
    void* state2
    Py_ssize_t n_params, d, cap, back_rows
    Strip* strips
    Py_ssize_t n_strips
    double total_cost
    # Per round row: the normalised outputs, their norms, the prediction, its gradient, the
    # target, the ranking weight and item; the ranking loss term. Per chunk: the rating loss.
    void* y_user
    void* y_item
    void* norm_user
    void* norm_item
    void* pred
    void* gpred
    void* tgt
    void* wrow
    int64_t* bitems
    double* row_loss
    double* chunk_loss
    void* rank_S
    void* rank_user
    void* rank_item
    # Per thread: the head of a unit, a softmax row.
    void* head
    double* softmax_row
    int optimizer
    Py_ssize_t batch_size
    double beta1, beta2, eps, momentum, weight_decay, embedding_decay, rating_weight
    double ranking_weight, temperature


cdef class CompiledPlan:
    """The layout of one :class:`anirec.kernels.EpochPlan` for the compiled epoch, built once
    per fit: pointers into the plan's arrays and every workspace, for up to ``max_threads``."""

    cdef State st
    cdef list keep
    cdef readonly int max_threads
    cdef readonly object dtype

    def __cinit__(self, plan, int max_threads):
        self.keep = []
        self.max_threads = max(1, max_threads)
        self.dtype = plan.dtype
        config = plan.backend_config
        ranking = config.ranking_weight != 0
        cdef Py_ssize_t batch = config.batch_size
        cdef Py_ssize_t chunks, chunk
        _layout(batch, &chunks, &chunk)
        cdef Py_ssize_t cap = batch if ranking else min(batch, <Py_ssize_t> MAX_CHUNKS * chunk)
        cdef State* s = &self.st
        s.cap = max(cap, 1)
        s.back_rows = max(max_chunk(batch), 1)
        ex = plan.examples
        s.users, s.items = self._rows(ex.users), self._rows(ex.items)
        s.targets = data_of(ex.targets, self.keep)
        s.ratings = data_of(ex.ratings, self.keep) if ex.ratings is not None else NULL
        s.rank_weights = data_of(ex.rank_weights, self.keep) if ranking else NULL
        s.item_logq = data_of(ex.item_logq, self.keep) if ranking else NULL
        p = plan.params
        s.params = <void*> data_of(p.params, self.keep)
        s.grads = <void*> data_of(p.grads, self.keep)
        s.state1 = <void*> data_of(p.state1, self.keep)
        s.state2 = <void*> data_of(p.state2, self.keep)
        s.n_params = p.params.shape[0]
        s.d = int(plan.user.sizes[plan.user.sizes.shape[0] - 1])
        offset = self._tower(&s.towers[0], plan.user, 0)
        self._tower(&s.towers[1], plan.item, offset)
        self._strips()
        d = s.d
        s.y_user, s.y_item = self._zeros(s.cap * d), self._zeros(s.cap * d)
        s.norm_user, s.norm_item = self._zeros(s.cap), self._zeros(s.cap)
        s.pred, s.gpred = self._zeros(s.cap), self._zeros(s.cap)
        s.tgt, s.wrow = self._zeros(2 * s.cap), self._zeros(s.cap)
        s.bitems = <int64_t*> self._buffer(s.cap, np.int64)
        s.row_loss = <double*> self._buffer(s.cap, np.float64)
        s.chunk_loss = <double*> self._buffer(
            max(<Py_ssize_t> MAX_CHUNKS, (batch + MAX_CHUNK - 1) // MAX_CHUNK), np.float64)
        rank_rows = s.cap if ranking else 1
        s.rank_S = self._zeros(rank_rows * rank_rows)
        s.rank_user, s.rank_item = self._zeros(rank_rows * d), self._zeros(rank_rows * d)
        threads = self.max_threads
        s.head = self._zeros(threads * s.back_rows * (2 * d + 4))
        s.softmax_row = <double*> self._buffer(threads * rank_rows, np.float64)
        s.optimizer = config.optimizer
        s.batch_size = batch
        s.beta1, s.beta2, s.eps = config.beta1, config.beta2, config.eps
        s.momentum, s.weight_decay = config.momentum, config.weight_decay
        s.embedding_decay = config.embedding_decay
        s.rating_weight, s.ranking_weight = config.rating_weight, config.ranking_weight
        s.temperature = config.temperature

    cdef void* _buffer(self, Py_ssize_t n, dtype) except NULL:
        array = np.zeros(max(n, 1), dtype=dtype)
        return <void*> data_of(array, self.keep)

    cdef void* _zeros(self, Py_ssize_t n) except NULL:
        return self._buffer(n, self.dtype)

    cdef Rows _rows(self, array) except *:
        cdef Rows rows
        if array.dtype not in (np.int32, np.int64):
            raise ValueError(f"row indices must be int32 or int64, got {array.dtype}")
        if not array.flags.c_contiguous:
            raise ValueError("row indices must be C-contiguous")
        rows.data = data_of(array, self.keep)
        rows.n = array.shape[0]
        rows.wide = array.dtype == np.int64
        return rows

    cdef Py_ssize_t _tower(self, TowerState* t, tower, Py_ssize_t param_offset) except -1:
        """Lay out one tower (its parameters from ``param_offset``); returns the offset after
        them."""
        cdef Py_ssize_t r, act, cap = self.st.cap
        sizes = [int(v) for v in tower.sizes]
        t.n_layers = len(sizes) - 1
        t.d_in, t.d_out = sizes[0], sizes[t.n_layers]
        t.layers = <Layer*> self._buffer(t.n_layers * sizeof(Layer), np.uint8)
        act = cap * sizes[0]
        for r in range(t.n_layers):
            t.layers[r].fan_in, t.layers[r].fan_out = sizes[r], sizes[r + 1]
            t.layers[r].w = param_offset
            t.layers[r].b = param_offset + sizes[r] * sizes[r + 1]
            param_offset += sizes[r] * sizes[r + 1] + sizes[r + 1]
            t.layers[r].x = act - cap * sizes[r]
            t.layers[r].y = act
            act += cap * sizes[r + 1]
        t.grad_acts = self._zeros(act)
        t.out_b = act
        t.acts = self._zeros(act + cap * sizes[t.n_layers])
        cdef Py_ssize_t itemsize = np.dtype(self.dtype).itemsize
        t.grad_out = <void*> (<char*> t.grad_acts + t.layers[t.n_layers - 1].y * itemsize)
        t.n_blocks = len(tower.blocks)
        t.blocks = <Block*> self._buffer(t.n_blocks * sizeof(Block), np.uint8)
        t.trained_from = t.d_in
        offsets = tower.offsets()
        for r, block in enumerate(tower.blocks):
            t.blocks[r].kind = block.kind
            t.blocks[r].user_side = block.side == "user"
            t.blocks[r].offset = offsets[r]
            t.blocks[r].width = block.width
            t.blocks[r].state = self._bind(block)
            t.blocks[r].table = NULL
            if block.kind == EMBEDDING:
                t.blocks[r].table = &(<Embedding*> t.blocks[r].state).table
            elif block.kind == HISTORY:
                t.blocks[r].table = &(<History*> t.blocks[r].state).table
            if block.trained:
                t.trained_from = min(t.trained_from, offsets[r])
        t.row_grad = self._zeros(cap * (t.d_in - t.trained_from))
        return param_offset

    cdef int _strips(self) except -1:
        """Cut every layer's weight into dense units of about the same cost."""
        cdef State* s = &self.st
        cdef Layer* L
        units = []
        for tower in range(2):
            for l in range(s.towers[tower].n_layers):
                L = &s.towers[tower].layers[l]
                rows = strip_rows(L.fan_in, L.fan_out)
                for lo in range(0, L.fan_in, rows):
                    hi = min(L.fan_in, lo + rows)
                    units.append((tower, l, lo, hi, (hi - lo + (lo == 0)) * L.fan_out))
        s.n_strips = len(units)
        s.strips = <Strip*> self._buffer(s.n_strips * sizeof(Strip), np.uint8)
        before = 0.0
        for k, (tower, l, lo, hi, cost) in enumerate(units):
            s.strips[k].tower, s.strips[k].layer = tower, l
            s.strips[k].lo, s.strips[k].hi = lo, hi
            s.strips[k].before, s.strips[k].cost = before, cost
            before += cost
        s.total_cost = before
        return 0

    cdef void* _bind(self, block) except NULL:
        """A block's compiled view, in memory the plan keeps."""
        cdef Features f
        cdef Embedding e
        cdef History h
        if block.kind == FEATURES:
            f = bind_features(block, self.keep)
            return self._copy(&f, sizeof(Features))
        if block.kind == EMBEDDING:
            e = bind_embedding(block, self.keep, self.max_threads, self.st.cap)
            return self._copy(&e, sizeof(Embedding))
        h = bind_history(block, self.keep, self.max_threads, self.st.cap)
        return self._copy(&h, sizeof(History))

    cdef void* _copy(self, const void* source, size_t size) except NULL:
        cdef void* target = self._buffer(<Py_ssize_t> size, np.uint8)
        memcpy(target, source, size)
        return target

    def gather(self, side, index):
        """The input rows of one tower for the examples ``index`` (int64), as the epoch
        gathers them (nothing recorded for the backward pass)."""
        cdef TowerState* t = &self.st.towers[0 if side == "user" else 1]
        out = np.zeros((index.shape[0], t.d_in), dtype=self.dtype)
        if index.shape[0] == 0:
            return out
        keep = []
        cdef Run run
        run.order = self._rows(index)
        run.base, run.step = 0, 0
        run.users, run.items, run.ratings = self.st.users, self.st.items, self.st.ratings
        cdef void* target = <void*> data_of(out, keep)
        cdef Py_ssize_t n = index.shape[0]
        cdef bint single = self.dtype == np.float32
        with nogil:
            if single:
                _gather(t, run, n, <float*> target, -1)
            else:
                _gather(t, run, n, <double*> target, -1)
        return out

    def train(self, order, double lr, int64_t step, int threads, double loss):
        """Run the batches of ``order``; returns ``(loss sum, step)``."""
        cdef Rows rows = self._rows(order)
        cdef double[::1] loss_box = np.full(1, loss, dtype=np.float64)
        cdef double* total = &loss_box[0]
        cdef int previous = -1, want = max(1, min(threads, self.max_threads))
        cdef int tid, n_threads
        cdef State* s = &self.st
        cdef bint single = self.dtype == np.float32
        if rows.n == 0:
            return loss, step
        with nogil:
            if ANIREC_OPENMP:  # the products on one BLAS thread each
                previous = blas_set_num_threads(1)
            with parallel(num_threads=want):
                tid = omp_get_thread_num()
                n_threads = omp_get_num_threads()
                if single:
                    _run[float](s, <float*> s.params, rows, lr, step, tid, n_threads, total)
                else:
                    _run[double](s, <double*> s.params, rows, lr, step, tid, n_threads, total)
            if previous > 1:
                blas_set_num_threads(previous)
        cdef Py_ssize_t batches = (rows.n + s.batch_size - 1) // s.batch_size
        return loss_box[0], step + batches


cdef void _gather(TowerState* t, Run run, Py_ssize_t rows, floating* out,
                  Py_ssize_t at) noexcept nogil:
    """Every block's columns of ``rows`` input rows of the tower (``out`` rows ``d_in``
    wide); the blocks record what their backward pass needs from round row ``at`` on
    (nothing when ``at`` is -1)."""
    cdef Py_ssize_t k
    cdef Block* b
    cdef Embedding* e
    cdef History* h
    for k in range(t.n_blocks):
        b = &t.blocks[k]
        if b.kind == FEATURES:
            features_gather(<Features*> b.state, run, rows, out + b.offset, t.d_in)
        elif b.kind == EMBEDDING:
            e = <Embedding*> b.state
            embedding_gather(e, run, rows, out + b.offset, t.d_in,
                             e.table_rows + at if at >= 0 else NULL)
        else:
            h = <History*> b.state
            history_gather(h, run, rows, out + b.offset, t.d_in,
                           h.counts + at if at >= 0 else NULL)


cdef void _run(State* s, floating* P, Rows order, double lr, int64_t step, int tid,
               int n_threads, double* total) noexcept nogil:
    """The batches of ``order``, as thread ``tid`` of ``n_threads`` (every thread of the
    region runs this, meeting the others at the same barriers)."""
    cdef Py_ssize_t start = 0, size, chunks, chunk, n_chunks, first, last, per_round, row0, rows
    cdef bint ranking = s.ranking_weight != 0
    cdef int half = 0
    while start < order.n:
        size = min(s.batch_size, order.n - start)
        _layout(size, &chunks, &chunk)
        n_chunks = (size + chunk - 1) // chunk
        # A round of the rating loss alone: enough units for every thread, and no more, so
        # that a chunk's rows are still in cache when its backward pass comes. The rounds
        # change only the speed (the sums' order is the chunks').
        per_round = n_chunks if ranking else min(chunks, (n_threads + 1) // 2)
        step += 1
        first = 0
        while first < n_chunks:
            last = min(n_chunks, first + per_round)
            row0 = first * chunk
            rows = min(size, last * chunk) - row0
            _round(s, P, order, start, size, chunk, first, last, ranking, step, half, tid,
                   n_threads)
            if last == n_chunks:
                _steps(s, P, lr, step, tid, n_threads)
            _tables(s, P, order, start + row0, rows, last == n_chunks, lr, step, tid,
                    n_threads)
            if tid == 0 and last == n_chunks:
                total[0] += _batch_loss(s, P, size, n_chunks)
            # The next round reuses the row buffers and reads the steps; not needed on two
            # threads with the rating loss alone (see the module's docstring).
            if n_threads != 2 or ranking:
                anirec_omp_barrier()
            half = 1 - half
            first = last
        start += size


cdef void _round(State* s, floating* P, Rows order, Py_ssize_t start, Py_ssize_t size,
                 Py_ssize_t chunk, Py_ssize_t first, Py_ssize_t last, bint ranking,
                 int64_t step, int half, int tid, int n_threads) noexcept nogil:
    """Chunks ``first .. last`` of the batch at ``start`` (update ``step``): forward, head,
    backward."""
    cdef Py_ssize_t c, row0 = first * chunk, rows, at, chunks = last - first
    cdef Py_ssize_t round_rows = min(size, last * chunk) - row0
    cdef int tower, add
    cdef double total_weight = 0
    for c in range(first, last):
        at = c * chunk - row0
        rows = min(chunk, size - c * chunk)
        for tower in range(2):
            if _owner(c - first, tower, chunks, n_threads) == tid:
                _forward(s, P, tower, order, start + c * chunk, at, rows, step, half)
    anirec_omp_barrier()
    if ranking:
        for c in range(first, last):
            if c % n_threads == tid:
                _head_rows(s, P, c, c * chunk - row0, min(chunk, size - c * chunk), size,
                           half)
        anirec_omp_barrier()
        total_weight = positive_weight(<const floating*> s.wrow, round_rows)
        for c in range(first, last):
            if c % n_threads == tid:
                softmax_rows_ptr(<floating*> s.y_user, <floating*> s.y_item, s.bitems,
                                 <floating*> s.wrow, <const floating*> s.item_logq,
                                 s.temperature, total_weight, <floating*> s.rank_S,
                                 s.softmax_row + tid * s.cap, s.row_loss,
                                 <floating*> s.rank_user, c * chunk - row0,
                                 min(chunk, size - c * chunk), round_rows, s.d)
        anirec_omp_barrier()
        for c in range(first, last):
            if c % n_threads == tid:
                _rank_grad_rows(s, P, c * chunk - row0, min(chunk, size - c * chunk),
                                round_rows)
        anirec_omp_barrier()
    for c in range(first, last):
        at = c * chunk - row0
        rows = min(chunk, size - c * chunk)
        for tower in range(2):
            if _owner(c - first, tower, chunks, n_threads) == tid:
                if not ranking:
                    _unit_head(s, P, tower, c, at, rows, size, half, tid)
                # On one or two threads this thread owns its tower's strips: it sums them
                # right after the chunk's backward pass, while its rows are in cache.
                add = (first > 0 or c > first) if n_threads <= 2 else -1
                _backward(s, P, tower, at, rows, add)
                if add >= 0:
                    _strip_sums(s, P, tower, at, rows, add, False, tid, n_threads)
    if n_threads != 2:  # on two threads, each keeps to its tower up to the step: no wait
        anirec_omp_barrier()
    if n_threads > 2:
        for c in range(first, last):
            _strip_sums(s, P, -1, c * chunk - row0, min(chunk, size - c * chunk),
                        first > 0 or c > first, True, tid, n_threads)


cdef void _forward(State* s, floating* P, int tower, Rows order, Py_ssize_t first,
                   Py_ssize_t at, Py_ssize_t rows, int64_t step, int half) noexcept nogil:
    """Gather the input rows ``at .. at + rows`` of the round (order positions ``first ..``)
    and run the tower forward on them, the outputs into ``half``; the item unit also reads
    the rows' targets (into ``half``), items and ranking weights."""
    cdef TowerState* t = &s.towers[tower]
    cdef floating* acts = <floating*> t.acts
    cdef floating* out
    cdef Py_ssize_t l, r, last = t.n_layers - 1
    cdef Layer* L
    cdef int64_t e
    cdef Run run
    run.order, run.base, run.step = order, first, step
    run.users, run.items, run.ratings = s.users, s.items, s.ratings
    _gather(t, run, rows, acts + at * t.d_in, at)
    if tower == 1:
        for r in range(rows):
            e = row_at(order, first + r)
            (<floating*> s.tgt)[half * s.cap + at + r] = (<const floating*> s.targets)[e]
            s.bitems[at + r] = row_at(s.items, e)
            if s.rank_weights != NULL:
                (<floating*> s.wrow)[at + r] = (<const floating*> s.rank_weights)[e]
    for l in range(t.n_layers):
        L = &t.layers[l]
        out = _output(s, P, tower, half) if l == last else acts + L.y
        dense_forward_ptr(acts + L.x + at * L.fan_in, P + L.w, P + L.b, out + at * L.fan_out,
                          <int> rows, <int> L.fan_in, <int> L.fan_out, l < last)


cdef inline floating* _output(State* s, floating* P, int tower, int half) noexcept nogil:
    """A tower's output rows of the round, in ``half`` (0 or 1)."""
    cdef TowerState* t = &s.towers[tower]
    return <floating*> t.acts + (t.out_b if half else t.layers[t.n_layers - 1].y)


cdef double _rating_rows(State* s, floating* pred, floating* gpred, Py_ssize_t at,
                         Py_ssize_t rows, Py_ssize_t size, int half) noexcept nogil:
    """The rating loss's gradient of ``rows`` predictions (a mean over the batch's ``size``
    rows, weighted); returns their summed squared error."""
    cdef Py_ssize_t r
    cdef floating diff
    cdef floating scale = <floating> (2.0 / size)
    cdef floating alpha = <floating> s.rating_weight
    cdef const floating* tgt = <floating*> s.tgt + half * s.cap + at
    cdef double acc = 0
    for r in range(rows):
        diff = pred[r] - tgt[r]
        acc += <double> diff * diff
        gpred[r] = diff * scale * alpha
    return acc


cdef void _unit_head(State* s, floating* P, int tower, Py_ssize_t c, Py_ssize_t at,
                     Py_ssize_t rows, Py_ssize_t size, int half, int tid) noexcept nogil:
    """The rating loss's head of one unit, in the thread's own workspace: both towers' rows
    normalised, the predictions and their gradient, then this tower's output gradient (the
    user unit also keeps the chunk's loss)."""
    cdef Py_ssize_t d = s.d
    cdef floating* yu = <floating*> s.head + tid * s.back_rows * (2 * d + 4)
    cdef floating* yv = yu + rows * d
    cdef floating* nu = yv + rows * d
    cdef floating* nv = nu + rows
    cdef floating* pred = nv + rows
    cdef floating* gpred = pred + rows
    cdef double loss
    normalize_dot_ptr(_output(s, P, 0, half) + at * d, _output(s, P, 1, half) + at * d, yu,
                      yv, nu, nv, pred, rows, d)
    loss = _rating_rows(s, pred, gpred, at, rows, size, half)
    if tower == 0:
        s.chunk_loss[c] = loss
    normalize_backward_side_ptr(gpred, yu, yv, nv if tower else nu,
                                <floating*> s.towers[tower].grad_out + at * d, rows, d,
                                tower == 1)


cdef void _head_rows(State* s, floating* P, Py_ssize_t c, Py_ssize_t at, Py_ssize_t rows,
                     Py_ssize_t size, int half) noexcept nogil:
    """With the ranking loss: the rows ``at ..`` of chunk ``c`` normalised into the round's
    shared rows, their predictions and rating gradient, the chunk's rating loss."""
    cdef Py_ssize_t d = s.d
    normalize_dot_ptr(_output(s, P, 0, half) + at * d, _output(s, P, 1, half) + at * d,
                      <floating*> s.y_user + at * d, <floating*> s.y_item + at * d,
                      <floating*> s.norm_user + at, <floating*> s.norm_item + at,
                      <floating*> s.pred + at, rows, d)
    s.chunk_loss[c] = _rating_rows(s, <floating*> s.pred + at, <floating*> s.gpred + at, at,
                                   rows, size, half)


cdef void _rank_grad_rows(State* s, floating* P, Py_ssize_t at, Py_ssize_t rows,
                          Py_ssize_t n) noexcept nogil:
    """With the ranking loss: the item rows' softmax gradient, then both towers' output
    gradients of rows ``at ..`` (the rating and ranking gradients combined)."""
    cdef Py_ssize_t d = s.d
    softmax_item_grad_ptr(<floating*> s.rank_S, <floating*> s.y_user, <floating*> s.rank_item,
                          at, rows, n, d)
    normalize_dot_backward_add_ptr(<floating*> s.gpred + at, <floating*> s.y_user + at * d,
                                   <floating*> s.y_item + at * d,
                                   <floating*> s.norm_user + at, <floating*> s.norm_item + at,
                                   <floating*> s.rank_user + at * d,
                                   <floating*> s.rank_item + at * d, s.ranking_weight,
                                   <floating*> s.towers[0].grad_out + at * d,
                                   <floating*> s.towers[1].grad_out + at * d, rows, d)


cdef void _backward(State* s, floating* P, int tower, Py_ssize_t at, Py_ssize_t rows,
                    int add) noexcept nogil:
    """Rows ``at .. at + rows`` of a tower backward through its rows: each layer's output
    gradient (masked by its ReLU) into ``grad_acts``, and the gradient of the trained blocks'
    columns into the tower's row buffer. The weights' gradients are the dense units'; with
    ``add`` 0 or 1 (not -1), the bias sums over these rows are taken here, in the mask's pass
    (added to the earlier chunks' with 1)."""
    cdef TowerState* t = &s.towers[tower]
    cdef floating* acts = <floating*> t.acts
    cdef floating* grads = <floating*> t.grad_acts
    cdef floating* Gr = <floating*> s.grads
    cdef floating* G
    cdef Py_ssize_t l, last = t.n_layers - 1
    cdef Py_ssize_t width = t.d_in - t.trained_from
    cdef Layer* L
    for l in range(last, -1, -1):
        L = &t.layers[l]
        G = grads + L.y + at * L.fan_out
        if add >= 0:  # the thread's own strips: the bias sums in the mask's pass
            column_sums_ptr(G, acts + L.y + at * L.fan_out if l < last else NULL,
                            Gr + L.b, rows, L.fan_out, add)
        elif l < last:
            relu_mask_ptr(G, acts + L.y + at * L.fan_out, rows, L.fan_out)
        if l > 0:
            gemm(False, True, <int> rows, <int> L.fan_in, <int> L.fan_out, <floating> 1, G,
                 <int> L.fan_out, P + L.w, <int> L.fan_out, <floating> 0,
                 grads + L.x + at * L.fan_in, <int> L.fan_in)
        elif width > 0:
            # Only the trained blocks' columns of the input gradient are used: the product
            # with the last ``width`` rows of W, not all ``d_in``.
            gemm(False, True, <int> rows, <int> width, <int> L.fan_out, <floating> 1, G,
                 <int> L.fan_out, P + L.w + t.trained_from * L.fan_out, <int> L.fan_out,
                 <floating> 0, <floating*> t.row_grad + at * width, <int> width)


cdef inline int _strip_owner(State* s, Strip* u, int n_threads) noexcept nogil:
    """The thread of a dense unit: on two threads the one that ran its tower (which then needs
    no wait between its backward pass and its steps); otherwise the units in order, cut into T
    runs of about equal cost."""
    if n_threads == 2:
        return u.tower
    return min(n_threads - 1, <int> ((u.before + 0.5 * u.cost) * n_threads / s.total_cost))


cdef void _strip_sums(State* s, floating* P, int tower, Py_ssize_t at, Py_ssize_t rows,
                      bint add, bint bias, int tid, int n_threads) noexcept nogil:
    """This thread's strips of ``tower`` (of both towers with -1): ``X^T G`` over the rows
    ``at .. at + rows`` of the round, one chunk (added to the earlier chunks' sums with
    ``add``), and with ``bias`` the bias column sums with a layer's first strip."""
    cdef Py_ssize_t k
    cdef Strip* u
    cdef TowerState* t
    cdef Layer* L
    cdef floating* Gr = <floating*> s.grads
    cdef floating* G
    for k in range(s.n_strips):
        u = &s.strips[k]
        if (tower >= 0 and u.tower != tower) or _strip_owner(s, u, n_threads) != tid:
            continue
        t = &s.towers[u.tower]
        L = &t.layers[u.layer]
        G = <floating*> t.grad_acts + L.y + at * L.fan_out
        gemm(True, False, <int> (u.hi - u.lo), <int> L.fan_out, <int> rows, <floating> 1,
             <floating*> t.acts + L.x + at * L.fan_in + u.lo, <int> L.fan_in, G,
             <int> L.fan_out, <floating> add, Gr + L.w + u.lo * L.fan_out, <int> L.fan_out)
        if u.lo == 0 and bias:
            column_sums_ptr(G, NULL, Gr + L.b, rows, L.fan_out, add)


cdef void _steps(State* s, floating* P, double lr, int64_t step, int tid,
                 int n_threads) noexcept nogil:
    """The optimizer step on this thread's strips (after a batch's last round)."""
    cdef Py_ssize_t k
    cdef Strip* u
    cdef Layer* L
    for k in range(s.n_strips):
        u = &s.strips[k]
        if _strip_owner(s, u, n_threads) == tid:
            L = &s.towers[u.tower].layers[u.layer]
            _step_range(s, P, L.w + u.lo * L.fan_out, L.w + u.hi * L.fan_out, lr, step)
            if u.lo == 0:
                _step_range(s, P, L.b, L.b + L.fan_out, lr, step)


cdef void _step_range(State* s, floating* P, Py_ssize_t lo, Py_ssize_t hi, double lr,
                      int64_t step) noexcept nogil:
    """One optimizer step on the dense parameters ``lo .. hi``."""
    cdef floating* Gr = <floating*> s.grads
    cdef floating* vel = <floating*> s.state1 if s.momentum != 0 else NULL
    if s.optimizer == 1:
        adam_range_ptr(P, Gr, <floating*> s.state1, <floating*> s.state2, lo, hi, lr, s.beta1,
                       s.beta2, s.eps, s.weight_decay, step)
    else:
        sgd_ptr(P + lo, Gr + lo, vel + lo if vel != NULL else NULL, hi - lo, lr, s.momentum,
                s.weight_decay)


cdef void _tables(State* s, floating* P, Rows order, Py_ssize_t first, Py_ssize_t rows,
                  bint last, double lr, int64_t step, int tid, int n_threads) noexcept nogil:
    """The trained blocks' row gradients of a round, into the table rows this thread owns;
    after the last round, one optimizer step on each of them. A tower's tables belong to the
    threads of its half (on two threads, the thread that ran the tower); each of them owns
    the rows ``row % threads == its rank``."""
    cdef TowerState* t
    cdef Block* b
    cdef Py_ssize_t k, width
    cdef int tower, lo, size, rank
    cdef Run run
    cdef floating* grads
    run.order, run.base, run.step = order, first, 0
    run.users, run.items, run.ratings = s.users, s.items, s.ratings
    for tower in range(2):
        lo, size = (0, 1) if n_threads == 1 else \
            (tower * n_threads // 2, (tower + 1) * n_threads // 2 - tower * n_threads // 2)
        rank = tid - lo
        if rank < 0 or rank >= size:
            continue
        t = &s.towers[tower]
        width = t.d_in - t.trained_from
        for k in range(t.n_blocks):
            b = &t.blocks[k]
            grads = <floating*> t.row_grad + (b.offset - t.trained_from)
            if b.kind == EMBEDDING:
                embedding_scatter(<Embedding*> b.state, rows, grads, width, rank, size)
            elif b.kind == HISTORY:
                history_scatter(<History*> b.state, run, rows, grads, width, rank, size)
            if last and b.table != NULL:
                table_step(b.table, <floating*> b.table.table, rank,
                           (b.table.n_rows + size - 1) // size, s.optimizer, lr, s.beta1,
                           s.beta2, s.eps, s.momentum, s.embedding_decay, step)


cdef double _batch_loss(State* s, floating* P, Py_ssize_t size,
                        Py_ssize_t n_chunks) noexcept nogil:
    """The batch's loss times its rows: the chunks' rating losses in order, then the ranking
    rows' in order."""
    cdef Py_ssize_t k
    cdef double loss = 0, rank = 0, total_weight
    for k in range(n_chunks):
        loss += s.chunk_loss[k]
    loss = s.rating_weight * (loss / size)
    if s.ranking_weight != 0:
        for k in range(size):
            rank += s.row_loss[k]
        total_weight = positive_weight(<const floating*> s.wrow, size)
        if total_weight > 0:
            loss += s.ranking_weight * (rank / total_weight)
    return loss * size


cdef CompiledPlan _compiled(plan):
    """The plan's compiled layout, built at its first use (for up to ``plan.threads``)."""
    if plan._compiled is None:
        plan._compiled = CompiledPlan(plan, min(plan.threads, epoch_threads()))
    return plan._compiled


def train_epoch(plan, order, lr, step, threads=1, loss=0.0):
    """One epoch (or a run of whole batches) of ``plan`` over ``order`` (int32 or int64) on
    ``threads`` threads (at most ``plan.threads``), which all give the same bits; ``loss`` is
    added to the returned loss sum, so an epoch run in parts sums its loss in the same
    order."""
    return _compiled(plan).train(order, float(lr), int(step), int(threads), float(loss))


def gather_inputs(plan, side, index):
    """The input rows of one tower for the examples ``index``, as the epoch gathers them."""
    return _compiled(plan).gather(side, np.ascontiguousarray(index, dtype=np.int64))
