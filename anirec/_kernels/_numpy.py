"""Pure-NumPy twin of the compiled kernels.

Every function here has exactly the name and signature of its Cython counterpart in
:mod:`anirec._kernels._cython` and computes the same thing; the tests hold the two equal.
Arguments are trusted: shapes, dtypes and contiguity are checked once, in :mod:`anirec.kernels`.
Outputs are written into the arrays passed in, as the compiled kernels do.
"""

from __future__ import annotations

import numpy as np

from anirec import loo

#: Guard of the L2 normalisation: ``norm = sqrt(|z|^2 + NORM_EPS^2)``, smooth and never zero.
NORM_EPS = 1e-6

OPTIMIZERS = {"sgd": 0, "adam": 1}
LOO_MODES = loo.USER_MODES


def dense_forward(X, W, b, out, relu):
    np.matmul(X, W, out=out)
    out += b
    if relu:
        np.maximum(out, 0, out=out)


def dense_backward(grad_out, X, W, out, grad_W, grad_b, grad_X, relu):
    if relu:
        grad_out *= out > 0
    np.matmul(X.T, grad_out, out=grad_W)
    np.sum(grad_out, axis=0, out=grad_b)
    if grad_X is not None:
        np.matmul(grad_out, W.T, out=grad_X)


def l2_normalize(Z, Y, norms):
    squares = np.einsum("ij,ij->i", Z, Z)
    with np.errstate(over="ignore"):
        np.sqrt(squares + Z.dtype.type(NORM_EPS * NORM_EPS), out=norms)
    np.divide(Z, norms[:, None], out=Y)
    # A finite row whose squared norm overflows (float32 [1e20, 1e20]) would come out as zeros;
    # such rows (and only they, so other rows keep their bits) are redone scaled.
    overflow = np.flatnonzero(np.isinf(squares))
    if overflow.size:
        _normalize_scaled(Z, Y, norms, overflow)


def _normalize_scaled(Z, Y, norms, rows):
    """Rows ``rows`` normalised after division by their largest magnitude ``s``, in float64:
    ``Y = (z/s) / r`` with ``r = sqrt(|z/s|^2 + (eps/s)^2)``; the norm ``s r`` becomes ``inf``
    when it does not fit the dtype. The compiled kernel's overflow path computes the same."""
    z = Z[rows].astype(np.float64)
    scale = np.abs(z).max(axis=1)
    z /= scale[:, None]
    with np.errstate(over="ignore", under="ignore"):
        root = np.sqrt(np.einsum("ij,ij->i", z, z) + (NORM_EPS / scale) ** 2)
        Y[rows] = z / root[:, None]
        norms[rows] = scale * root


def normalize_dot(Zu, Zv, Yu, Yv, norm_u, norm_v, pred):
    l2_normalize(Zu, Yu, norm_u)
    l2_normalize(Zv, Yv, norm_v)
    np.einsum("ij,ij->i", Yu, Yv, out=pred)


def _normalize_backward(grad_y, y, norms, grad_z):
    # y = z / n with n = sqrt(|z|^2 + eps^2):  dz = (dy - y (y . dy)) / n
    proj = np.einsum("ij,ij->i", y, grad_y)
    np.subtract(grad_y, y * proj[:, None], out=grad_z)
    grad_z /= norms[:, None]


def normalize_dot_backward(grad_pred, Yu, Yv, norm_u, norm_v, grad_Zu, grad_Zv):
    _normalize_backward(grad_pred[:, None] * Yv, Yu, norm_u, grad_Zu)
    _normalize_backward(grad_pred[:, None] * Yu, Yv, norm_v, grad_Zv)


def mse(pred, target, grad):
    diff = pred - target
    n = pred.shape[0]
    if grad is not None and n:  # an empty batch has an empty gradient (and no 2/0)
        np.multiply(diff, pred.dtype.type(2.0 / n), out=grad)
    return float(np.dot(diff.astype(np.float64), diff.astype(np.float64)) / n) if n else 0.0


def inbatch_softmax(Yu, Yv, items, weights, logq, temperature, grad_Yu, grad_Yv):
    n = Yu.shape[0]
    t = Yu.dtype.type
    w = weights.astype(np.float64)
    active = w > 0
    total = float(w[active].sum()) if n else 0.0
    if total <= 0:
        if grad_Yu is not None:
            grad_Yu.fill(0)
            grad_Yv.fill(0)
        return 0.0
    S = np.matmul(Yu, Yv.T)
    S *= t(1.0 / temperature)
    S -= logq[items][None, :]
    logits = S.astype(np.float64)
    # An in-batch duplicate of the positive item is not a negative for that row.
    duplicate = items[:, None] == items[None, :]
    np.fill_diagonal(duplicate, False)
    logits[duplicate] = -np.inf
    logits = logits[active]
    top = logits.max(axis=1, keepdims=True)
    e = np.exp(logits - top)
    z = e.sum(axis=1)
    rows = np.flatnonzero(active)
    value = np.log(z) + top[:, 0] - logits[np.arange(rows.shape[0]), rows]
    loss = float(np.dot(w[active], value)) / total
    if grad_Yu is not None:
        coef = (w[active] / total) / temperature
        G = np.zeros((n, n))
        G[rows] = e * (coef / z)[:, None]
        G[rows, rows] = e[np.arange(rows.shape[0]), rows] * (coef / z) - coef
        G = G.astype(Yu.dtype)
        np.matmul(G, Yv, out=grad_Yu)
        np.matmul(G.T, Yu, out=grad_Yv)
    return loss


def normalize_dot_backward_add(grad_pred, Yu, Yv, norm_u, norm_v, extra_Yu, extra_Yv,
                               extra_weight, grad_Zu, grad_Zv):
    """:func:`normalize_dot_backward` when the normalised outputs also feed another loss whose
    gradients wrt ``Yu``/``Yv`` are ``extra_weight * extra_Yu/extra_Yv``: both are combined
    before the (linear) normalisation backward."""
    t = Yu.dtype.type
    _normalize_backward(grad_pred[:, None] * Yv + t(extra_weight) * extra_Yu, Yu, norm_u,
                        grad_Zu)
    _normalize_backward(grad_pred[:, None] * Yu + t(extra_weight) * extra_Yv, Yv, norm_v,
                        grad_Zv)


def _flush_subnormal(state):
    """An optimizer state below the dtype's smallest normal number becomes zero (see the
    compiled ``adam_range_ptr``: a decaying moment would otherwise stop at the smallest
    subnormal for good, where every step on it is slow)."""
    np.copyto(state, 0, where=np.abs(state) < np.finfo(state.dtype).tiny)


def sgd_step(param, grad, velocity, lr, momentum, weight_decay):
    t = param.dtype.type
    g = grad + t(weight_decay) * param if weight_decay else grad
    if momentum:
        velocity *= t(momentum)
        velocity += g
        _flush_subnormal(velocity)
        g = velocity
    param -= t(lr) * g


def adam_step(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step):
    t = param.dtype.type
    g = grad + t(weight_decay) * param if weight_decay else grad
    m *= t(beta1)
    m += t(1.0 - beta1) * g
    _flush_subnormal(m)
    v *= t(beta2)
    v += t(1.0 - beta2) * (g * g)
    _flush_subnormal(v)
    m_hat_scale = t(1.0 / (1.0 - beta1**step))
    v_hat_scale = t(1.0 / (1.0 - beta2**step))
    param -= t(lr) * (m * m_hat_scale) / (np.sqrt(v * v_hat_scale) + t(eps))


def gather_rows(X, index, out):
    np.take(X, index, axis=0, out=out)


def user_rows_loo(num, den, total, count, item_genres, item_weight, mode, global_mean,
                  mean, std, users, items, ratings, out):
    out[:] = loo.user_rows(num, den, total, count, item_genres, item_weight, mode, global_mean,
                           users, items, ratings)
    out -= mean
    out /= std


def item_rows_loo(rating_sum, rating_count, prior_num, prior_den, from_ratings, global_mean,
                  columns, mean, std, item_x, items, ratings, out):
    np.take(item_x, items, axis=0, out=out)
    raw = loo.item_rows(rating_sum, rating_count, prior_num, prior_den, from_ratings,
                        global_mean, items, ratings).astype(out.dtype)
    out[:, columns] = (raw - mean) / std


def topk(Q, V, k, exclude_indptr, exclude_indices, block_size, out_index, out_score):
    n, m = Q.shape[0], V.shape[0]
    out_index.fill(-1)
    out_score.fill(-np.inf)
    kk = min(k, m)
    if kk == 0:
        return
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        scores = Q[start:stop] @ V.T
        excluded = np.zeros(scores.shape, dtype=bool)
        if exclude_indptr is not None:
            for row in range(start, stop):
                excluded[row - start, exclude_indices[exclude_indptr[row]:exclude_indptr[row + 1]]] = True
            scores[excluded] = -np.inf
        for row in range(stop - start):
            s = scores[row]
            if kk < m:
                # Partition on a key that breaks ties by lower index, then sort the top exactly.
                candidates = np.argpartition(-s, kk - 1)[:kk]
                threshold = s[candidates].min()
                candidates = np.flatnonzero(s >= threshold)
            else:
                candidates = np.arange(m)
            order = np.lexsort((candidates, -s[candidates]))[:kk]
            best = candidates[order]
            keep = ~excluded[row, best]
            count = int(keep.sum())
            out_index[start + row, :count] = best[keep]
            out_score[start + row, :count] = s[best[keep]]


def _layer_shapes(sizes):
    return [(int(sizes[l]), int(sizes[l + 1])) for l in range(len(sizes) - 1)]


def unpack_params(flat, user_sizes, item_sizes):
    """Views ``[(W, b), ...]`` of the user tower then the item tower into a flat buffer."""
    towers, offset = [], 0
    for sizes in (user_sizes, item_sizes):
        layers = []
        for k, m in _layer_shapes(sizes):
            W = flat[offset:offset + k * m].reshape(k, m)
            offset += k * m
            b = flat[offset:offset + m]
            offset += m
            layers.append((W, b))
        towers.append(layers)
    return towers


def _tower_forward(X, layers):
    activations = [X]
    for index, (W, b) in enumerate(layers):
        out = np.empty((X.shape[0], W.shape[1]), dtype=X.dtype)
        dense_forward(activations[-1], W, b, out, index < len(layers) - 1)
        activations.append(out)
    return activations


def _tower_backward(grad, activations, layers, grads, need_input_grad=False):
    """Backward through one tower into ``grads``; returns the gradient wrt its input when
    ``need_input_grad`` (for an embedding), else ``None``."""
    for index in range(len(layers) - 1, -1, -1):
        W, _ = layers[index]
        gW, gb = grads[index]
        grad_in = np.empty_like(activations[index]) if index > 0 or need_input_grad else None
        dense_backward(grad, activations[index], W, activations[index + 1], gW, gb, grad_in,
                       index < len(layers) - 1)
        grad = grad_in
    return grad


def gather_inputs(plan, side, index, step=0):
    """Each block's columns of the ``side`` tower's input rows of the examples ``index`` at
    update ``step`` (0: not training)."""
    tower = plan.user if side == "user" else plan.item
    return np.concatenate([block.gather(plan.examples, index, step)
                           for block in tower.blocks], axis=1)


def epoch_threads():
    """Threads :func:`train_epoch` can use: this twin runs on one."""
    return 1


def train_epoch(plan, order, lr, step, threads=1, loss=0.0):
    # ``threads`` is the compiled epoch's (this twin runs on one); ``loss`` starts the sum.
    # ``order`` and the examples' rows index alike as int32 or int64.
    examples, params, config = plan.examples, plan.params, plan.backend_config
    flat, flat_grads = params.params, params.grads
    dtype = flat.dtype
    alpha, beta = config.rating_weight, config.ranking_weight
    user_layers, item_layers = unpack_params(flat, plan.user.sizes, plan.item.sizes)
    user_grads, item_grads = unpack_params(flat_grads, plan.user.sizes, plan.item.sizes)
    trains = [any(block.trained for block in tower.blocks) for tower in (plan.user, plan.item)]
    loss_sum = loss
    for start in range(0, order.shape[0], config.batch_size):
        batch = order[start:start + config.batch_size]
        size = batch.shape[0]
        acts_u = _tower_forward(gather_inputs(plan, "user", batch, step + 1), user_layers)
        acts_i = _tower_forward(gather_inputs(plan, "item", batch, step + 1), item_layers)
        yu, yv = np.empty_like(acts_u[-1]), np.empty_like(acts_i[-1])
        nu, nv, pred = (np.empty(size, dtype=dtype) for _ in range(3))
        normalize_dot(acts_u[-1], acts_i[-1], yu, yv, nu, nv, pred)
        grad_pred = np.empty(size, dtype=dtype)
        loss = mse(pred, examples.targets[batch], grad_pred) * alpha
        grad_pred *= dtype.type(alpha)
        grad_zu, grad_zv = np.empty_like(yu), np.empty_like(yv)
        if beta != 0:
            rank_yu, rank_yv = np.empty_like(yu), np.empty_like(yv)
            loss += beta * inbatch_softmax(yu, yv, examples.items[batch],
                                           examples.rank_weights[batch], examples.item_logq,
                                           config.temperature, rank_yu, rank_yv)
            normalize_dot_backward_add(grad_pred, yu, yv, nu, nv, rank_yu, rank_yv, beta,
                                       grad_zu, grad_zv)
        else:
            normalize_dot_backward(grad_pred, yu, yv, nu, nv, grad_zu, grad_zv)
        loss_sum += loss * size
        grad_xu = _tower_backward(grad_zu, acts_u, user_layers, user_grads, trains[0])
        grad_xi = _tower_backward(grad_zv, acts_i, item_layers, item_grads, trains[1])
        step += 1
        if config.optimizer == OPTIMIZERS["adam"]:
            adam_step(flat, flat_grads, params.state1, params.state2, lr, config.beta1,
                      config.beta2, config.eps, config.weight_decay, step)
        else:
            sgd_step(flat, flat_grads, params.state1 if config.momentum else None, lr,
                     config.momentum, config.weight_decay)
        for tower, grad_x in ((plan.user, grad_xu), (plan.item, grad_xi)):
            for block, offset in zip(tower.blocks, tower.offsets()):
                if block.trained:
                    block.step(examples, batch, grad_x[:, offset:offset + block.width],
                               config, lr, step)
    return loss_sum, step
