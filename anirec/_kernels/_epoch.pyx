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

With OpenMP and at least two OpenMP threads allowed (``tower_threads()``), the epoch runs one
thread per tower with BLAS on one thread: each thread gathers and runs forward its own tower;
after a barrier thread 0 alone computes the head (normalisation, losses, gradients, the loss
sum); after a second barrier each thread runs backward its own tower, and after the batch's
last span the optimizer step over its own parameter range (user tower first in the flat buffer,
so the ranges are disjoint and the element-wise update is split, not changed). On one thread
(no OpenMP, or one OpenMP thread) the same code does both towers in turn, so the result is the
same bit for bit when BLAS runs on one thread; otherwise the large products of the ranking head
go to BLAS's own threads, and a threaded OpenBLAS may round them differently. Either way a run
is deterministic for a given BLAS and thread count.

The sequence of operations is that of ``anirec._kernels._numpy.train_epoch``, so both backends
follow the same trajectory up to floating-point rounding.
"""

import numpy as np

from cython cimport floating
from libc.stdint cimport int64_t
from libc.string cimport memcpy

from anirec._kernels._ops cimport (adam_ptr, dense_backward_ptr, dense_forward_ptr,
                                   loo_item_cols, loo_row, mse_ptr, normalize_dot_backward_ptr, normalize_dot_ptr,
                                   sgd_ptr)
from anirec._kernels._ranking cimport inbatch_softmax_ptr, normalize_dot_backward_add_ptr
from anirec._kernels._blas cimport blas_set_num_threads
from anirec._kernels._openmp cimport (ANIREC_OPENMP, anirec_omp_barrier, omp_get_max_threads,
                                      omp_get_num_threads, omp_get_thread_num)
from cython.parallel cimport parallel


def tower_threads():
    """Threads the compiled epoch runs on now: 2 (one per tower) with OpenMP and at least two
    OpenMP threads allowed, else 1 (both towers in turn)."""
    return 2 if ANIREC_OPENMP and omp_get_max_threads() >= 2 else 1


#: Rows of a span (rating loss) and of a tower pass. More rows run in blocks: forward and the
#: input gradients are row-separable, the parameter gradients of later blocks are added to
#: those of the first. Single-threaded OpenBLAS loses a fifth of its speed on the 256 -> 128
#: layer between 1,024 and 4,096 rows (the operands leave the cache), and a block's
#: activations stay in cache from one layer to the next.
cdef enum:
    ROW_BLOCK = 1024

#: For tests: the row block of the tower passes.
TOWER_ROW_BLOCK = ROW_BLOCK


cdef void _forward_tower(floating* acts, const floating* P, const int64_t* info,
                         Py_ssize_t first, Py_ssize_t end, Py_ssize_t size) noexcept nogil:
    """Forward layers ``first..end-1`` (one tower) block by block: ReLU on all but the last."""
    cdef Py_ssize_t l, rows
    cdef const int64_t* row
    cdef Py_ssize_t start = 0
    while start < size:
        rows = min(<Py_ssize_t> ROW_BLOCK, size - start)
        for l in range(first, end):
            row = info + 6 * l
            dense_forward_ptr(acts + row[4] + start * row[0], P + row[2], P + row[3],
                              acts + row[5] + start * row[1], <int> rows, <int> row[0],
                              <int> row[1], l < end - 1)
        start += rows


cdef void _backward_tower(floating* G_out, floating* acts, const floating* P, floating* Gr,
                          const int64_t* info, Py_ssize_t first, Py_ssize_t end,
                          Py_ssize_t size, floating* ping, floating* pong,
                          bint accumulate) noexcept nogil:
    """Backward layers ``end-1..first`` (one tower) block by block, from the gradient
    ``G_out`` wrt the tower's output into the flat gradient buffer ``Gr``. Each input gradient
    goes to whichever of the two ping-pong buffers (``ROW_BLOCK`` rows of the widest layer) does
    not hold the layer's own gradient. With ``accumulate`` the parameter gradients are added to
    those already in ``Gr`` (the span is not the first of its batch)."""
    cdef Py_ssize_t l, rows, start = 0
    cdef Py_ssize_t last = end - 1
    cdef Py_ssize_t d_out = info[6 * last + 1]  # every tower has a layer (kernels checks)
    cdef const int64_t* row
    cdef floating* G
    cdef floating* G_in
    while start < size:
        rows = min(<Py_ssize_t> ROW_BLOCK, size - start)
        G = G_out + start * d_out
        for l in range(last, first - 1, -1):
            row = info + 6 * l
            G_in = pong if G == ping else ping
            dense_backward_ptr(G, acts + row[4] + start * row[0], P + row[2],
                               acts + row[5] + start * row[1], Gr + row[2], Gr + row[3],
                               G_in if l > first else NULL, <int> rows, <int> row[0],
                               <int> row[1], l < last, accumulate or start > 0)
            G = G_in
        start += rows


cdef tuple _train_epoch(
        const int64_t[::1] order, const int64_t[::1] users, const int64_t[::1] items,
        const floating[::1] targets, const floating[:, ::1] user_x,
        const floating[:, ::1] item_x, const int64_t[::1] user_sizes,
        const int64_t[::1] item_sizes, floating[::1] params, floating[::1] grads,
        floating[::1] state1, floating[::1] state2, int optimizer, double lr, double beta1,
        double beta2, double eps, double momentum, double weight_decay, int64_t step,
        Py_ssize_t batch_size, bint has_loo, const floating[:, ::1] loo_num,
        const floating[:, ::1] loo_den, const floating[::1] loo_total,
        const floating[::1] loo_count, const floating[:, ::1] loo_item_genres,
        const floating[::1] loo_item_weight, int loo_mode, double loo_global_mean,
        const floating[::1] loo_mean, const floating[::1] loo_std,
        const floating[::1] loo_ratings, bint has_item_loo, const floating[::1] il_sum,
        const floating[::1] il_count, const floating[::1] il_prior_num,
        const floating[::1] il_prior_den, const floating[::1] il_from_ratings,
        double il_global_mean, const int64_t[::1] il_columns, const floating[::1] il_mean,
        const floating[::1] il_std, const floating[::1] il_ratings,
        double rating_weight, double ranking_weight,
        double temperature, const floating[::1] rank_weights, const floating[::1] item_logq):
    dtype = np.float32 if floating is float else np.float64
    cdef Py_ssize_t n_examples = order.shape[0]
    cdef Py_ssize_t n_user_layers = user_sizes.shape[0] - 1
    cdef Py_ssize_t n_item_layers = item_sizes.shape[0] - 1
    cdef Py_ssize_t n_layers = n_user_layers + n_item_layers
    cdef Py_ssize_t n_params = params.shape[0]
    cdef Py_ssize_t rows = min(batch_size, n_examples) if n_examples > 0 else 1
    cdef bint ranking = ranking_weight != 0
    # The rows of a span: forward, head and backward run span by span, the optimizer step once
    # per batch. The ranking loss couples every row of a batch, so its span is the batch.
    cdef Py_ssize_t span = rows if ranking else min(rows, <Py_ssize_t> ROW_BLOCK)
    cdef Py_ssize_t l, t, r, max_width
    cdef Py_ssize_t du = user_sizes[0], di = item_sizes[0]
    cdef Py_ssize_t d_out = user_sizes[n_user_layers], n_genres = du - 2
    cdef floating alpha = <floating> rating_weight

    # Per layer (user tower first): fan-in, fan-out, offsets of W and b in the flat buffer,
    # offsets of its input and output activations (``span`` rows) in the tower's buffer.
    layer_info = np.zeros((max(n_layers, 1), 6), dtype=np.int64)
    cdef int64_t[:, ::1] info = layer_info
    cdef Py_ssize_t offset = 0, act_offset, user_params = 0
    act_sizes = [0, 0]
    max_width = 1
    l = 0
    for t, sizes in enumerate((user_sizes, item_sizes)):
        act_offset = span * sizes[0]
        max_width = max(max_width, sizes[0])
        for r in range(sizes.shape[0] - 1):
            info[l, 0] = sizes[r]
            info[l, 1] = sizes[r + 1]
            info[l, 2] = offset
            info[l, 3] = offset + sizes[r] * sizes[r + 1]
            offset += sizes[r] * sizes[r + 1] + sizes[r + 1]
            info[l, 4] = act_offset - span * sizes[r]
            info[l, 5] = act_offset
            act_offset += span * sizes[r + 1]
            max_width = max(max_width, sizes[r + 1])
            l += 1
        act_sizes[t] = act_offset
        if t == 0:
            user_params = offset

    cdef floating[::1] acts_u = np.empty(act_sizes[0], dtype=dtype)
    cdef floating[::1] acts_i = np.empty(act_sizes[1], dtype=dtype)
    # Gradient ping-pong buffers: rows 0-1 for the user tower, 2-3 for the item tower (the
    # two threads run both backward passes at once).
    cdef floating[:, ::1] back = np.empty((4, min(span, ROW_BLOCK) * max_width), dtype=dtype)
    cdef floating[:, ::1] head = np.empty((4, span * d_out), dtype=dtype)  # Yu Yv gZu gZv
    cdef floating[:, ::1] per_row = np.empty((6, span), dtype=dtype)  # nu nv pred gpred tgt w
    # The ranking loss: the batch x batch logits, a double row of the softmax, the items of the
    # batch and the gradients wrt the normalised outputs (allocated only when used).
    cdef Py_ssize_t rank_rows = rows if ranking else 1
    cdef floating[:, ::1] rank_S = np.empty((rank_rows, rank_rows), dtype=dtype)
    cdef floating[:, ::1] rank_grad = np.empty((2, rank_rows * d_out), dtype=dtype)
    cdef double[::1] rank_row = np.empty(rank_rows, dtype=np.float64)
    cdef int64_t[::1] batch_items_view = np.empty(span, dtype=np.int64)

    cdef floating* P = &params[0]
    cdef floating* Gr = &grads[0]
    cdef floating* s1 = &state1[0]
    cdef floating* s2 = &state2[0]
    cdef floating* velocity = s1 if momentum != 0 else NULL
    cdef floating* Au = &acts_u[0]
    cdef floating* Ai = &acts_i[0]
    cdef floating* back0 = &back[0, 0]
    cdef floating* back1 = &back[1, 0]
    cdef floating* back2 = &back[2, 0]
    cdef floating* back3 = &back[3, 0]
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
    cdef floating* rS = &rank_S[0, 0]
    cdef floating* rYu = &rank_grad[0, 0]
    cdef floating* rYv = &rank_grad[1, 0]
    cdef double* rrow = &rank_row[0]
    cdef int64_t* bitems = &batch_items_view[0]
    cdef const floating* rw = &rank_weights[0]
    cdef const floating* lq = &item_logq[0]
    cdef const floating* ux = &user_x[0, 0]
    cdef const floating* ix = &item_x[0, 0]
    cdef const floating* Zu = Au + info[n_user_layers - 1, 5] if n_layers > 0 else NULL
    cdef const floating* Zv = Ai + info[n_layers - 1, 5] if n_layers > 0 else NULL
    cdef size_t du_bytes = du * sizeof(floating), di_bytes = di * sizeof(floating)
    cdef double[::1] loss_box = np.zeros(1, dtype=np.float64)
    cdef double* loss_acc = &loss_box[0]
    cdef const int64_t* info_p = &info[0, 0]
    cdef const int64_t* order_p = &order[0] if n_examples > 0 else NULL
    cdef const int64_t* users_p = &users[0]
    cdef const int64_t* items_p = &items[0]
    cdef const floating* targets_p = &targets[0]
    cdef bint towers = (ANIREC_OPENMP and omp_get_max_threads() >= 2 and n_examples > 0
                        and n_layers > 0)
    # The parallel region's private loop state (prefixed ``p_``), initialised for Cython.
    cdef int tid = 0, n_threads = 0, previous_blas = -1
    cdef bint p_user = False, p_item = False
    cdef int64_t p_step = 0, p_u = 0, p_i = 0
    cdef Py_ssize_t p_start = 0, p_size = 0, p_first = 0, p_done = 0, p_rows = 0, p_r = 0
    cdef Py_ssize_t p_e = 0, p_off = 0, p_count = 0
    cdef double p_loss = 0.0
    cdef floating* p_vel = NULL

    # With two threads, thread 0 gathers, runs and updates the user tower, thread 1 the item
    # tower; between the forward and the backward pass of each span, thread 0 alone computes
    # the head (normalisation, losses, their gradients) between two barriers. Both threads
    # walk the same spans, hence meet the same barriers; nothing in the region can fail.
    # With one thread (no OpenMP, one OpenMP thread allowed, or one granted) it does both
    # towers itself in the same order, so the result is the same bit for bit.
    with nogil:
        if towers:
            previous_blas = blas_set_num_threads(1)
        with parallel(num_threads=2 if towers else 1):
            tid = omp_get_thread_num()
            n_threads = omp_get_num_threads()
            p_user = tid == 0
            p_item = tid == 1 or n_threads == 1
            p_step = step
            p_start = 0
            while p_start < n_examples:
                p_size = min(rows, n_examples - p_start)
                p_done = 0
                while p_done < p_size:
                    p_rows = min(span, p_size - p_done)
                    p_first = p_start + p_done
                    if p_user:
                        for p_r in range(p_rows):
                            p_e = order_p[p_first + p_r]
                            p_u = users_p[p_e]
                            if has_loo:
                                loo_row(&loo_num[0, 0], &loo_den[0, 0], &loo_total[0],
                                        &loo_count[0], &loo_item_genres[0, 0],
                                        &loo_item_weight[0], loo_mode, loo_global_mean,
                                        &loo_mean[0], &loo_std[0], n_genres, p_u,
                                        items_p[p_e], <double> loo_ratings[p_e],
                                        Au + p_r * du)
                            else:
                                memcpy(Au + p_r * du, ux + p_u * du, du_bytes)
                        _forward_tower(Au, P, info_p, 0, n_user_layers, p_rows)
                    if p_item:
                        for p_r in range(p_rows):
                            p_e = order_p[p_first + p_r]
                            p_i = items_p[p_e]
                            memcpy(Ai + p_r * di, ix + p_i * di, di_bytes)
                            if has_item_loo:
                                loo_item_cols(&il_sum[0], &il_count[0], &il_prior_num[0],
                                              &il_prior_den[0], &il_from_ratings[0],
                                              il_global_mean, &il_columns[0], &il_mean[0],
                                              &il_std[0], p_i, <double> il_ratings[p_e], True,
                                              Ai + p_r * di)
                            tgt[p_r] = targets_p[p_e]
                            bitems[p_r] = p_i
                            if ranking:
                                wrow[p_r] = rw[p_e]
                        _forward_tower(Ai, P, info_p, n_user_layers, n_layers, p_rows)
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
                                Yu, Yv, bitems, wrow, lq, temperature, rS, rrow, rYu, rYv,
                                p_rows, d_out)
                            normalize_dot_backward_add_ptr(gpred, Yu, Yv, nu, nv, rYu, rYv,
                                                           ranking_weight, gZu, gZv, p_rows,
                                                           d_out)
                        else:
                            normalize_dot_backward_ptr(gpred, Yu, Yv, nu, nv, gZu, gZv,
                                                       p_rows, d_out)
                        loss_acc[0] = loss_acc[0] + p_loss * p_size
                    anirec_omp_barrier()
                    if p_user:
                        _backward_tower(gZu, Au, P, Gr, info_p, 0, n_user_layers, p_rows,
                                        back0, back1, p_done > 0)
                    if p_item:
                        _backward_tower(gZv, Ai, P, Gr, info_p, n_user_layers, n_layers,
                                        p_rows, back2, back3, p_done > 0)
                    p_done = p_done + p_rows
                p_step = p_step + 1
                if p_user:
                    if optimizer == 1:
                        adam_ptr(P, Gr, s1, s2, user_params, lr, beta1, beta2, eps,
                                 weight_decay, p_step)
                    else:
                        sgd_ptr(P, Gr, velocity, user_params, lr, momentum, weight_decay)
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
                p_start = p_start + p_size
        if previous_blas > 1:
            blas_set_num_threads(previous_blas)
    return loss_box[0], step + (n_examples + rows - 1) // rows


def train_epoch(order, users, items, targets, user_x, item_x, user_sizes, item_sizes, params,
                grads, state1, state2, optimizer, lr, beta1, beta2, eps, momentum,
                weight_decay, step, batch_size, loo, item_loo, rating_weight, ranking_weight,
                temperature, rank_weights, item_logq):
    dtype = params.dtype
    if loo is None:
        has_loo = False
        empty_2d = np.zeros((1, 1), dtype=dtype)
        empty_1d = np.zeros(1, dtype=dtype)
        loo = (empty_2d, empty_2d, empty_1d, empty_1d, empty_2d, empty_1d, 0, 0.0, empty_1d,
               empty_1d, empty_1d)
    else:
        has_loo = True
        user_x = np.zeros((1, 1), dtype=dtype)
    if user_x is None:
        user_x = np.zeros((1, 1), dtype=dtype)
    args = (order, users, items, targets, user_x, item_x, user_sizes, item_sizes, params,
            grads, state1, state2, int(optimizer), float(lr), float(beta1), float(beta2),
            float(eps), float(momentum), float(weight_decay), int(step), int(batch_size),
            has_loo) + tuple(loo)
    if item_loo is None:
        empty_1d = np.zeros(1, dtype=dtype)
        args += (False,) + (empty_1d,) * 5 + (0.0, np.zeros(3, dtype=np.int64)) + \
            (empty_1d,) * 3
    else:
        args += (True,) + tuple(item_loo)
    if rank_weights is None or item_logq is None or ranking_weight == 0:
        rank_weights = item_logq = np.zeros(1, dtype=dtype)
    args += (float(rating_weight), float(ranking_weight), float(temperature), rank_weights,
             item_logq)
    if dtype == np.float32:
        return _train_epoch[float](*args)
    return _train_epoch[double](*args)
