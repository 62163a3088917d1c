"""One whole training epoch of the two towers in a single compiled call.

Every workspace is allocated once per call; the batch loop then runs without the GIL and
without any Python object. Each mini-batch is processed span by span: gather the span's rows,
forward both towers, normalised dot product, MSE (weighted by ``rating_weight``) and, when
``ranking_weight`` is positive, the in-batch softmax ranking loss of ``_ranking.pyx`` on the same
normalised outputs (both gradients combined before the normalisation backward), backward both
towers adding into the flat ``grads`` buffer; then one optimizer step over the flat ``params``
buffer. A span is at most ``ROW_BLOCK`` rows, or the whole batch for the ranking loss, which
couples every row of a batch: the rating loss is a sum over rows, so its spans' gradients add up
to the batch's and the workspaces stay at ``ROW_BLOCK`` rows whatever the batch size. The tower
passes also work in row blocks of at most ``ROW_BLOCK`` rows.

With OpenMP and at least two OpenMP threads allowed (``tower_threads()``), the epoch can run one
thread per tower (``threads=2``): each thread gathers and runs forward its own tower;
after a barrier thread 0 alone computes the head (normalisation, losses, gradients, the loss
sum); after a second barrier each thread runs backward its own tower, and after the batch's
last span the optimizer step over its own parameter range (user tower first in the flat buffer,
so the ranges are disjoint and the element-wise update is split, not changed). On one thread
(``threads=1``, no OpenMP, or one OpenMP thread) the same code does both towers in turn. With
OpenMP, BLAS runs on one thread inside the epoch either way, so 1 and 2 threads give the same
bits and a caller may switch between them from one run of batches to the next
(:class:`anirec._epoch_threads.ThreadChooser` does, by measured speed). Without OpenMP the
products go to BLAS's own threads. Either way a run is deterministic for a given BLAS.

Embedding rows (``anirec.kernels.Embedding``) are appended to a tower's input at the gather;
the backward pass then also computes the gradient wrt the first layer's embedding columns (only
those) and adds it, row by row in order, into the table's gradient rows; after the batch each
touched row (listed in first-touch order) takes one optimizer step and its gradient is zeroed.

The sequence of operations is that of ``anirec._kernels._numpy.train_epoch``, so both backends
follow the same trajectory up to floating-point rounding.
"""

import numpy as np

from cython cimport floating
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memcpy, memset

from anirec._kernels._ops cimport (adam_ptr, dense_backward_ptr, dense_forward_ptr,
                                   loo_item_cols, loo_row, mse_ptr, normalize_dot_backward_ptr, normalize_dot_ptr,
                                   sgd_ptr)
from anirec._kernels._ranking cimport inbatch_softmax_ptr, normalize_dot_backward_add_ptr
from anirec._kernels._blas cimport blas_set_num_threads, gemm
from anirec._kernels._openmp cimport (ANIREC_OPENMP, anirec_omp_barrier, omp_get_max_threads,
                                      omp_get_num_threads, omp_get_thread_num)
from cython.parallel cimport parallel


cdef int _tower_threads() noexcept nogil:
    return 2 if ANIREC_OPENMP and omp_get_max_threads() >= 2 else 1


def tower_threads():
    """Threads the compiled epoch can run on now: 2 (one per tower) with OpenMP and at least
    two OpenMP threads allowed, else 1 (both towers in turn)."""
    return _tower_threads()


#: Rows of a span (rating loss) and of a tower pass. More rows run in blocks: forward and the
#: input gradients are row-separable, the parameter gradients of later blocks are added to
#: those of the first. Single-threaded OpenBLAS loses a fifth of its speed on the 256 -> 128
#: layer between 1,024 and 4,096 rows (the operands leave the cache), and a block's
#: activations stay in cache from one layer to the next.
cdef enum:
    ROW_BLOCK = 1024

#: For tests: the row block of the tower passes.
TOWER_ROW_BLOCK = ROW_BLOCK


cdef struct Rows:
    # A read-only vector of row indices, int32 or int64 (``wide``), read through ``_at``: one
    # compiled epoch per float type serves both widths and any mix of them (a fused index type
    # would compile the whole epoch once per combination). The array it points into is owned
    # by the caller of ``train_epoch`` and outlives the call.
    const void* data
    Py_ssize_t n
    bint wide


cdef inline int64_t _at(Rows rows, Py_ssize_t k) noexcept nogil:
    # The width is fixed for the call, so the branch is always predicted.
    if rows.wide:
        return (<const int64_t*> rows.data)[k]
    return (<const int32_t*> rows.data)[k]


cdef Rows _rows(array) except *:
    """A ``Rows`` of a 1-D C-contiguous int32 or int64 array (a ``ValueError`` for any other
    dtype or layout, from the typed memoryview)."""
    cdef const int32_t[::1] narrow
    cdef const int64_t[::1] wide
    cdef Rows rows
    rows.data = NULL
    rows.wide = array.dtype == np.int64
    if rows.wide:
        wide = array
        rows.n = wide.shape[0]
        if rows.n:
            rows.data = &wide[0]
    else:
        narrow = array
        rows.n = narrow.shape[0]
        if rows.n:
            rows.data = &narrow[0]
    return rows


cdef struct Layer:
    # Fan-in, fan-out, offsets of W and b in the flat parameter buffer, offsets of the input
    # and output activations (``span`` rows) in the tower's activation buffer.
    Py_ssize_t fan_in, fan_out, w, b, x, y


cdef Py_ssize_t _layout(const int64_t[::1] sizes, Layer* layers, Py_ssize_t param_offset,
                        Py_ssize_t span) noexcept:
    """Fill ``layers`` for one tower; returns the size of its activation buffer."""
    cdef Py_ssize_t r, act = span * sizes[0]
    for r in range(sizes.shape[0] - 1):
        layers[r].fan_in = sizes[r]
        layers[r].fan_out = sizes[r + 1]
        layers[r].w = param_offset
        layers[r].b = param_offset + sizes[r] * sizes[r + 1]
        param_offset += sizes[r] * sizes[r + 1] + sizes[r + 1]
        layers[r].x = act - span * sizes[r]
        layers[r].y = act
        act += span * sizes[r + 1]
    return act


cdef void _forward_tower(floating* acts, const floating* P, const Layer* layers,
                         Py_ssize_t n_layers, Py_ssize_t size) noexcept nogil:
    """Forward one tower block by block: ReLU on all layers but the last."""
    cdef Py_ssize_t l, rows
    cdef Py_ssize_t start = 0
    while start < size:
        rows = min(<Py_ssize_t> ROW_BLOCK, size - start)
        for l in range(n_layers):
            dense_forward_ptr(acts + layers[l].x + start * layers[l].fan_in, P + layers[l].w,
                              P + layers[l].b, acts + layers[l].y + start * layers[l].fan_out,
                              <int> rows, <int> layers[l].fan_in, <int> layers[l].fan_out,
                              l < n_layers - 1)
        start += rows


cdef void _backward_tower(floating* G_out, floating* acts, const floating* P, floating* Gr,
                          const Layer* layers, Py_ssize_t n_layers, Py_ssize_t size,
                          floating* ping, floating* pong, bint accumulate,
                          floating* table_grad, Py_ssize_t width,
                          const int64_t* table_rows) noexcept nogil:
    """Backward one tower block by block, from the gradient ``G_out`` wrt its output into the
    flat gradient buffer ``Gr``. Each input gradient goes to whichever of the two ping-pong
    buffers (``ROW_BLOCK`` rows of the widest layer) does not hold the layer's own gradient.
    With ``accumulate`` the parameter gradients are added to those already in ``Gr`` (the
    span is not the first of its batch). With an embedding (``table_grad``) the gradient wrt
    the first layer's last ``width`` inputs (the embedding columns) is computed too, and its
    row ``r`` is added to the table's gradient row ``table_rows[r]``, in row order."""
    cdef Py_ssize_t l, rows, r, j, start = 0
    cdef Py_ssize_t last = n_layers - 1, d_in = layers[0].fan_in
    cdef floating* G
    cdef floating* G_in
    cdef floating* dst
    cdef const floating* src
    while start < size:
        rows = min(<Py_ssize_t> ROW_BLOCK, size - start)
        G = G_out + start * layers[last].fan_out
        for l in range(last, -1, -1):
            G_in = pong if G == ping else ping
            dense_backward_ptr(G, acts + layers[l].x + start * layers[l].fan_in,
                               P + layers[l].w, acts + layers[l].y + start * layers[l].fan_out,
                               Gr + layers[l].w, Gr + layers[l].b, G_in if l > 0 else NULL,
                               <int> rows, <int> layers[l].fan_in, <int> layers[l].fan_out,
                               l < last, accumulate or start > 0)
            if l == 0 and table_grad != NULL:
                # Only the embedding columns of the input gradient are used: the product
                # with the last ``width`` rows of W, not all ``d_in``.
                gemm(False, True, <int> rows, <int> width, <int> layers[0].fan_out,
                     <floating> 1, G, <int> layers[0].fan_out,
                     P + layers[0].w + (d_in - width) * layers[0].fan_out,
                     <int> layers[0].fan_out, <floating> 0, G_in, <int> width)
            G = G_in
        if table_grad != NULL:
            for r in range(rows):
                dst = table_grad + table_rows[start + r] * width
                src = G + r * width
                for j in range(width):
                    dst[j] = dst[j] + src[j]
        start += rows


cdef void _gather_embedding(floating* row, const floating* table, Py_ssize_t width,
                            int64_t table_row, int64_t* stamp, int64_t batch,
                            int64_t* touched, Py_ssize_t* n_touched) noexcept nogil:
    """Copy a table row into an input row and list it as touched by this batch (once)."""
    memcpy(row, table + table_row * width, width * sizeof(floating))
    if stamp[table_row] != batch:
        stamp[table_row] = batch
        touched[n_touched[0]] = table_row
        n_touched[0] += 1


cdef void _embedding_step(floating* table, floating* grad, floating* m, floating* v,
                          Py_ssize_t width, const int64_t* touched, Py_ssize_t n_touched,
                          int optimizer, double lr, double beta1, double beta2, double eps,
                          double momentum, double decay, int64_t step) noexcept nogil:
    """One lazy optimizer step on each touched table row, whose gradient is then zeroed."""
    cdef Py_ssize_t t, at
    for t in range(n_touched):
        at = touched[t] * width
        if optimizer == 1:
            adam_ptr(table + at, grad + at, m + at, v + at, width, lr, beta1, beta2, eps, decay,
                     step)
        else:
            sgd_ptr(table + at, grad + at, m + at if momentum != 0 else NULL, width, lr,
                    momentum, decay)
        memset(grad + at, 0, width * sizeof(floating))


cdef tuple _train_epoch(
        order_rows, user_rows, item_rows, const floating[::1] targets,
        const floating[::1] ratings, const floating[::1] rank_weights,
        const floating[::1] item_logq,
        const int64_t[::1] user_sizes, const floating[:, ::1] user_x, bint user_loo,
        const floating[:, ::1] loo_num, const floating[:, ::1] loo_den,
        const floating[::1] loo_total, const floating[::1] loo_count,
        const floating[:, ::1] loo_item_genres, const floating[::1] loo_item_weight,
        int loo_mode, double loo_global_mean, const floating[::1] loo_mean,
        const floating[::1] loo_std, const int64_t[::1] item_sizes,
        const floating[:, ::1] item_x, bint item_loo, const floating[::1] il_sum,
        const floating[::1] il_count, const floating[::1] il_prior_num,
        const floating[::1] il_prior_den, const floating[::1] il_from_ratings,
        double il_global_mean, const int64_t[::1] il_columns, const floating[::1] il_mean,
        const floating[::1] il_std, bint user_emb, const int64_t[::1] ue_index,
        floating[:, ::1] ue_table, floating[:, ::1] ue_grad, floating[:, ::1] ue_m,
        floating[:, ::1] ue_v, bint item_emb, const int64_t[::1] ie_index,
        floating[:, ::1] ie_table, floating[:, ::1] ie_grad, floating[:, ::1] ie_m,
        floating[:, ::1] ie_v, floating[::1] params, floating[::1] grads,
        floating[::1] state1, floating[::1] state2, int optimizer, Py_ssize_t batch_size,
        double beta1, double beta2, double eps, double momentum, double weight_decay,
        double embedding_decay, double rating_weight, double ranking_weight,
        double temperature, double lr, int64_t step, int threads, double loss):
    dtype = np.float32 if floating is float else np.float64
    cdef Rows order = _rows(order_rows), users = _rows(user_rows), items = _rows(item_rows)
    cdef Py_ssize_t n_examples = order.n
    cdef Py_ssize_t n_user_layers = user_sizes.shape[0] - 1
    cdef Py_ssize_t n_item_layers = item_sizes.shape[0] - 1
    cdef Py_ssize_t n_params = params.shape[0]
    cdef Py_ssize_t rows = min(batch_size, n_examples) if n_examples > 0 else 1
    cdef bint ranking = ranking_weight != 0
    # The rows of a span: forward, head and backward run span by span, the optimizer step once
    # per batch. The ranking loss couples every row of a batch, so its span is the batch.
    cdef Py_ssize_t span = rows if ranking else min(rows, <Py_ssize_t> ROW_BLOCK)
    cdef Py_ssize_t r, max_width = 1
    cdef Py_ssize_t du = user_sizes[0], di = item_sizes[0]
    cdef Py_ssize_t uw = ue_table.shape[1] if user_emb else 0
    cdef Py_ssize_t iw = ie_table.shape[1] if item_emb else 0
    cdef Py_ssize_t du_f = du - uw, di_f = di - iw
    cdef Py_ssize_t d_out = user_sizes[n_user_layers], n_genres = du_f - 2
    cdef floating alpha = <floating> rating_weight

    # The layers of both towers, user tower first, in one aligned byte buffer.
    cdef unsigned char[::1] layer_bytes = np.zeros(
        (n_user_layers + n_item_layers) * sizeof(Layer), dtype=np.uint8)
    cdef Layer* user_layers = <Layer*> &layer_bytes[0]
    cdef Layer* item_layers = user_layers + n_user_layers
    cdef Py_ssize_t user_acts = _layout(user_sizes, user_layers, 0, span)
    cdef Py_ssize_t user_params = user_layers[n_user_layers - 1].b + d_out
    cdef Py_ssize_t item_acts = _layout(item_sizes, item_layers, user_params, span)
    for r in range(user_sizes.shape[0]):
        max_width = max(max_width, user_sizes[r])
    for r in range(item_sizes.shape[0]):
        max_width = max(max_width, item_sizes[r])

    cdef floating[::1] acts_u = np.empty(user_acts, dtype=dtype)
    cdef floating[::1] acts_i = np.empty(item_acts, dtype=dtype)
    # Gradient ping-pong buffers: rows 0-1 for the user tower, 2-3 for the item tower (the
    # two threads run both backward passes at once).
    cdef floating[:, ::1] back = np.empty((4, min(span, ROW_BLOCK) * max_width), dtype=dtype)
    cdef floating[:, ::1] head = np.empty((4, span * d_out), dtype=dtype)  # Yu Yv gZu gZv
    cdef floating[:, ::1] per_row = np.empty((6, span), dtype=dtype)  # nu nv pred gpred tgt w
    # The ranking loss: the batch x batch logits, a double row of the softmax and the
    # gradients wrt the normalised outputs (allocated only when used).
    cdef Py_ssize_t rank_rows = rows if ranking else 1
    cdef floating[:, ::1] rank_S = np.empty((rank_rows, rank_rows), dtype=dtype)
    cdef floating[:, ::1] rank_grad = np.empty((2, rank_rows * d_out), dtype=dtype)
    cdef double[::1] rank_row = np.empty(rank_rows, dtype=np.float64)
    # Per span row: the item (ranking) and each tower's table row; per table: the batch
    # that last touched each row, and the rows this batch touched.
    cdef int64_t[:, ::1] span_rows = np.empty((3, span), dtype=np.int64)
    cdef int64_t[::1] user_stamp = np.full(ue_table.shape[0], -1, dtype=np.int64)
    cdef int64_t[::1] item_stamp = np.full(ie_table.shape[0], -1, dtype=np.int64)
    cdef int64_t[::1] user_touched = np.empty(min(rows, ue_table.shape[0]), dtype=np.int64)
    cdef int64_t[::1] item_touched = np.empty(min(rows, ie_table.shape[0]), dtype=np.int64)

    cdef floating* P = &params[0]
    cdef floating* Gr = &grads[0]
    cdef floating* s1 = &state1[0]
    cdef floating* s2 = &state2[0]
    cdef floating* velocity = s1 if momentum != 0 else NULL
    cdef floating* Au = &acts_u[0]
    cdef floating* Ai = &acts_i[0]
    cdef floating* Yu = &head[0, 0]
    cdef floating* Yv = &head[1, 0]
    cdef floating* gZu = &head[2, 0]
    cdef floating* gZv = &head[3, 0]
    cdef floating* nu = &per_row[0, 0]
    cdef floating* nv = &per_row[1, 0]
    cdef floating* pred = &per_row[2, 0]
    cdef floating* gpred = &per_row[3, 0]
    cdef floating* tgt = &per_row[4, 0]
    cdef floating* wrow = &per_row[5, 0]
    cdef int64_t* bitems = &span_rows[0, 0]
    cdef int64_t* urows = &span_rows[1, 0]
    cdef int64_t* irows = &span_rows[2, 0]
    cdef const floating* Zu = Au + user_layers[n_user_layers - 1].y
    cdef const floating* Zv = Ai + item_layers[n_item_layers - 1].y
    cdef floating* ue_g = &ue_grad[0, 0] if user_emb else NULL
    cdef floating* ie_g = &ie_grad[0, 0] if item_emb else NULL
    cdef size_t du_bytes = du_f * sizeof(floating), di_bytes = di_f * sizeof(floating)
    cdef double[::1] loss_box = np.full(1, loss, dtype=np.float64)
    cdef double* loss_acc = &loss_box[0]
    cdef bint towers = threads >= 2 and _tower_threads() >= 2 and n_examples > 0
    # The parallel region's private loop state (prefixed ``p_``), initialised for Cython.
    cdef int tid = 0, n_threads = 0, previous_blas = -1
    cdef bint p_user = False, p_item = False
    cdef int64_t p_step = 0, p_u = 0, p_i = 0, p_batch = 0
    cdef Py_ssize_t p_start = 0, p_size = 0, p_first = 0, p_done = 0, p_rows = 0, p_r = 0
    cdef Py_ssize_t p_e = 0, p_off = 0, p_count = 0, p_user_touched = 0, p_item_touched = 0
    cdef double p_loss = 0.0
    cdef floating* p_vel = NULL
    cdef floating* p_row = NULL

    # With two threads, thread 0 gathers, runs and updates the user tower, thread 1 the item
    # tower; between the forward and the backward pass of each span, thread 0 alone computes
    # the head (normalisation, losses, their gradients) between two barriers. Both threads
    # walk the same spans, hence meet the same barriers; nothing in the region can fail.
    # With one thread (no OpenMP, one OpenMP thread allowed, or one granted) it does both
    # towers itself in the same order, so the result is the same bit for bit.
    with nogil:
        # BLAS on one thread either way, so both thread counts give the same bits.
        if ANIREC_OPENMP:
            previous_blas = blas_set_num_threads(1)
        with parallel(num_threads=2 if towers else 1):
            tid = omp_get_thread_num()
            n_threads = omp_get_num_threads()
            p_user = tid == 0
            p_item = tid == 1 or n_threads == 1
            p_step = step
            p_start = 0
            p_batch = 0
            while p_start < n_examples:
                p_size = min(rows, n_examples - p_start)
                p_done = 0
                p_user_touched = 0
                p_item_touched = 0
                while p_done < p_size:
                    p_rows = min(span, p_size - p_done)
                    p_first = p_start + p_done
                    if p_user:
                        for p_r in range(p_rows):
                            p_e = _at(order, p_first + p_r)
                            p_u = _at(users, p_e)
                            p_row = Au + p_r * du
                            if user_loo:
                                loo_row(&loo_num[0, 0], &loo_den[0, 0], &loo_total[0],
                                        &loo_count[0], &loo_item_genres[0, 0],
                                        &loo_item_weight[0], loo_mode, loo_global_mean,
                                        &loo_mean[0], &loo_std[0], n_genres, p_u,
                                        _at(items, p_e), <double> ratings[p_e], p_row)
                            else:
                                memcpy(p_row, &user_x[p_u, 0], du_bytes)
                            if user_emb:
                                urows[p_r] = ue_index[p_u]
                                _gather_embedding(p_row + du_f, &ue_table[0, 0], uw,
                                                  urows[p_r], &user_stamp[0], p_batch,
                                                  &user_touched[0], &p_user_touched)
                        _forward_tower(Au, P, user_layers, n_user_layers, p_rows)
                    if p_item:
                        for p_r in range(p_rows):
                            p_e = _at(order, p_first + p_r)
                            p_i = _at(items, p_e)
                            p_row = Ai + p_r * di
                            memcpy(p_row, &item_x[p_i, 0], di_bytes)
                            if item_loo:
                                loo_item_cols(&il_sum[0], &il_count[0], &il_prior_num[0],
                                              &il_prior_den[0], &il_from_ratings[0],
                                              il_global_mean, &il_columns[0], &il_mean[0],
                                              &il_std[0], p_i, <double> ratings[p_e], True,
                                              p_row)
                            if item_emb:
                                irows[p_r] = ie_index[p_i]
                                _gather_embedding(p_row + di_f, &ie_table[0, 0], iw,
                                                  irows[p_r], &item_stamp[0], p_batch,
                                                  &item_touched[0], &p_item_touched)
                            tgt[p_r] = targets[p_e]
                            bitems[p_r] = p_i
                            if ranking:
                                wrow[p_r] = rank_weights[p_e]
                        _forward_tower(Ai, P, item_layers, n_item_layers, p_rows)
                    anirec_omp_barrier()
                    if tid == 0:
                        normalize_dot_ptr(Zu, Zv, Yu, Yv, nu, nv, pred, p_rows, d_out)
                        # The mean is over the whole batch, so the spans' gradients add up
                        # to the batch's.
                        p_loss = mse_ptr(pred, tgt, gpred, p_rows, p_size) * rating_weight
                        for p_r in range(p_rows):
                            gpred[p_r] = gpred[p_r] * alpha
                        if ranking:
                            p_loss = p_loss + ranking_weight * inbatch_softmax_ptr(
                                Yu, Yv, bitems, wrow, &item_logq[0], temperature,
                                &rank_S[0, 0], &rank_row[0], &rank_grad[0, 0],
                                &rank_grad[1, 0], p_rows, d_out)
                            normalize_dot_backward_add_ptr(gpred, Yu, Yv, nu, nv,
                                                           &rank_grad[0, 0], &rank_grad[1, 0],
                                                           ranking_weight, gZu, gZv, p_rows,
                                                           d_out)
                        else:
                            normalize_dot_backward_ptr(gpred, Yu, Yv, nu, nv, gZu, gZv,
                                                       p_rows, d_out)
                        loss_acc[0] = loss_acc[0] + p_loss * p_size
                    anirec_omp_barrier()
                    if p_user:
                        _backward_tower(gZu, Au, P, Gr, user_layers, n_user_layers, p_rows,
                                        &back[0, 0], &back[1, 0], p_done > 0, ue_g, uw, urows)
                    if p_item:
                        _backward_tower(gZv, Ai, P, Gr, item_layers, n_item_layers, p_rows,
                                        &back[2, 0], &back[3, 0], p_done > 0, ie_g, iw, irows)
                    p_done = p_done + p_rows
                p_step = p_step + 1
                if p_user:
                    if optimizer == 1:
                        adam_ptr(P, Gr, s1, s2, user_params, lr, beta1, beta2, eps,
                                 weight_decay, p_step)
                    else:
                        sgd_ptr(P, Gr, velocity, user_params, lr, momentum, weight_decay)
                    if user_emb:
                        _embedding_step(&ue_table[0, 0], ue_g, &ue_m[0, 0], &ue_v[0, 0], uw,
                                        &user_touched[0], p_user_touched, optimizer, lr,
                                        beta1, beta2, eps, momentum, embedding_decay, p_step)
                if p_item:
                    p_off = user_params
                    p_count = n_params - user_params
                    if optimizer == 1:
                        adam_ptr(P + p_off, Gr + p_off, s1 + p_off, s2 + p_off, p_count, lr,
                                 beta1, beta2, eps, weight_decay, p_step)
                    else:
                        p_vel = velocity + p_off if velocity != NULL else NULL
                        sgd_ptr(P + p_off, Gr + p_off, p_vel, p_count, lr, momentum,
                                weight_decay)
                    if item_emb:
                        _embedding_step(&ie_table[0, 0], ie_g, &ie_m[0, 0], &ie_v[0, 0], iw,
                                        &item_touched[0], p_item_touched, optimizer, lr,
                                        beta1, beta2, eps, momentum, embedding_decay, p_step)
                p_batch = p_batch + 1
                p_start = p_start + p_size
        if previous_blas > 1:
            blas_set_num_threads(previous_blas)
    return loss_box[0], step + (n_examples + rows - 1) // rows


def train_epoch(order, examples, user, item, params, config, lr, step, threads=None,
                loss=0.0):
    """One epoch (or a run of whole batches) over ``order``; ``order``, ``examples.users``
    and ``examples.items`` are int32 or int64, each its own; ``threads`` (default
    :func:`tower_threads`) is 1 or 2, which give the same bits; ``loss`` is added to the
    returned loss sum, so an epoch run in parts sums its loss in the same order."""
    dtype = params.params.dtype
    one = np.zeros(1, dtype=dtype)
    square = np.zeros((1, 1), dtype=dtype)
    index = np.zeros(1, dtype=np.int64)
    ratings = examples.ratings if examples.ratings is not None else one
    rank_weights = examples.rank_weights if examples.rank_weights is not None else one
    item_logq = examples.item_logq if examples.item_logq is not None else one
    user_x = user.x if user.x is not None else square
    if user.loo is not None:
        user_loo = (True,) + tuple(user.loo)
    else:
        user_loo = (False, square, square, one, one, square, one, 0, 0.0, one, one)
    if item.loo is not None:
        item_loo = (True,) + tuple(item.loo)
    else:
        item_loo = (False, one, one, one, one, one, 0.0, np.zeros(3, dtype=np.int64), one, one)
    embeddings = ()
    for tower in (user, item):
        if tower.embedding is not None:
            embeddings += (True,) + tuple(tower.embedding)
        else:
            embeddings += (False, index, square, square, square, square)
    args = ((examples.targets, ratings, rank_weights, item_logq, user.sizes, user_x) + user_loo
            + (item.sizes, item.x) + item_loo + embeddings + tuple(params)
            + (int(config.optimizer), int(config.batch_size), float(config.beta1),
               float(config.beta2), float(config.eps), float(config.momentum),
               float(config.weight_decay), float(config.embedding_decay),
               float(config.rating_weight), float(config.ranking_weight),
               float(config.temperature), float(lr), int(step),
               tower_threads() if threads is None else int(threads), float(loss)))
    if dtype == np.float32:
        return _train_epoch[float](order, examples.users, examples.items, *args)
    return _train_epoch[double](order, examples.users, examples.items, *args)
