"""The composed two-tower forward/backward matches central finite differences (float64),
down to the ID embedding rows and the pooled history's vectors."""

import numpy as np
import pytest

from anirec import kernels as K
from anirec._kernels._numpy import unpack_params
from .kernel_helpers import batch_inputs, deep_copy, make_problem, run_epoch


def _forward(params, tables, problem, batch):
    """Loss and every intermediate of one batch, through the public kernels."""
    towers = unpack_params(params, problem["user_sizes"], problem["item_sizes"])
    acts = []
    for x, layers in zip(batch_inputs(problem, batch, tables), towers):
        tower = [x]
        for index, (W, b) in enumerate(layers):
            tower.append(K.dense_forward(tower[-1], W, b, relu=index < len(layers) - 1))
        acts.append(tower)
    pred, Yu, Yv, nu, nv = K.normalize_dot(acts[0][-1], acts[1][-1])
    loss, grad_pred = K.mse(pred, problem["targets"][batch])
    return loss, acts, towers, (grad_pred, Yu, Yv, nu, nv)


def _tables(problem):
    """The learned tables: the user and item embeddings', the pooled history's."""
    return [None if problem.get(name) is None else problem[name].table
            for name in ("user_embedding", "item_embedding", "user_history")]


def _epoch_gradient(problem, batch):
    """Gradients of a one-batch epoch of plain SGD with lr=1: the dense ones left in
    ``grads``, the embedding ones read off the table rows' change."""
    p = {key: (value.copy() if isinstance(value, np.ndarray) else value)
         for key, value in problem.items()}
    for name in ("user_embedding", "item_embedding", "user_history"):
        p[name] = deep_copy(p.get(name))
    before = [None if t is None else t.copy() for t in _tables(p)]
    loss_sum, step = run_epoch(p, batch, optimizer="sgd", lr=1.0, batch_size=batch.shape[0])
    assert step == 1
    loss = _forward(problem["params"], _tables(problem), problem, batch)[0]
    np.testing.assert_allclose(loss_sum / batch.shape[0], loss, rtol=1e-12)
    tables = [None if b is None else b - a for b, a in zip(before, _tables(p))]
    return p["grads"], tables


def _finite_differences(problem, batch, h=1e-6):
    """Central differences of the batch loss wrt every parameter and every table entry."""
    def loss(params, tables):
        return _forward(params, tables, problem, batch)[0]

    params, tables = problem["params"], _tables(problem)
    grad = np.empty_like(params)
    for j in range(params.shape[0]):
        plus, minus = params.copy(), params.copy()
        plus[j] += h
        minus[j] -= h
        grad[j] = (loss(plus, tables) - loss(minus, tables)) / (2 * h)
    table_grads = []
    for t, table in enumerate(tables):
        if table is None:
            table_grads.append(None)
            continue
        g = np.empty_like(table)
        for j in np.ndindex(table.shape):
            shifted = [list(tables), list(tables)]
            for sign, version in zip((1, -1), shifted):
                version[t] = table.copy()
                version[t][j] += sign * h
            g[j] = (loss(params, shifted[0]) - loss(params, shifted[1])) / (2 * h)
        table_grads.append(g)
    return grad, table_grads


def _composed_gradient(problem, batch):
    _, acts, towers, head = _forward(problem["params"], _tables(problem), problem, batch)
    grads = np.zeros_like(problem["params"])
    grad_towers = unpack_params(grads, problem["user_sizes"], problem["item_sizes"])
    for grad, tower, layers, grad_layers in zip(K.normalize_dot_backward(*head), acts, towers,
                                                grad_towers):
        for index in range(len(layers) - 1, -1, -1):
            gW, gb = grad_layers[index]
            _, _, grad = K.dense_backward(grad, tower[index], layers[index][0],
                                          tower[index + 1], relu=index < len(layers) - 1,
                                          grad_W=gW, grad_b=gb, need_grad_X=index > 0)
    return grads


@pytest.mark.parametrize("loo_mode,embedding_dim,history_dim",
                         [(None, 0, 0), (0, 0, 0), (2, 0, 0), (2, 2, 0), (None, 2, 0),
                          (2, 0, 2), (None, 2, 3)])
def test_gradients_match_finite_differences(each_backend, loo_mode, embedding_dim,
                                            history_dim):
    problem = make_problem(np.random.default_rng(11), np.float64, user_sizes=(5, 6, 4, 3),
                           item_sizes=(4, 5, 3), n_examples=23, loo_mode=loo_mode,
                           embedding_dim=embedding_dim, history_dim=history_dim)
    batch = np.random.default_rng(1).permutation(23)[:17].astype(np.int64)
    numeric, numeric_tables = _finite_differences(problem, batch)
    assert np.abs(numeric).max() > 1e-3  # the check is not vacuous
    if embedding_dim == history_dim == 0:
        np.testing.assert_allclose(_composed_gradient(problem, batch), numeric, rtol=1e-5,
                                   atol=1e-8)
    grads, tables = _epoch_gradient(problem, batch)
    np.testing.assert_allclose(grads, numeric, rtol=1e-5, atol=1e-8)
    for got, want in zip(tables, numeric_tables):
        if want is not None:
            assert np.abs(want).max() > 1e-3
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8)


def test_zero_rows_have_finite_gradients(each_backend):
    for dtype in (np.float32, np.float64):
        Zu = np.zeros((3, 4), dtype)
        Zv = np.ones((3, 4), dtype)
        Zv[1] = 0
        pred, Yu, Yv, nu, nv = K.normalize_dot(Zu, Zv)
        assert np.all(pred == 0) and np.all(Yu == 0)
        gu, gv = K.normalize_dot_backward(np.ones(3, dtype), Yu, Yv, nu, nv)
        assert np.isfinite(gu).all() and np.isfinite(gv).all()
        Y, norms = K.l2_normalize(Zu)
        assert np.all(Y == 0) and np.all(norms > 0)
