"""The composed two-tower forward/backward matches central finite differences (float64)."""

import numpy as np
import pytest

from anirec import kernels as K
from anirec._kernels._numpy import unpack_params
from .kernel_helpers import make_problem


def _inputs(problem, batch):
    users, items = problem["users"][batch], problem["items"][batch]
    if problem["loo"] is None:
        xu = K.gather_rows(problem["user_x"], users)
    else:
        loo = problem["loo"]
        xu = K.user_rows_loo(loo, users, items, loo.ratings[batch])
    return xu, K.gather_rows(problem["item_x"], items)


def _forward(params, problem, batch):
    """Loss and every intermediate of one batch, through the public kernels."""
    towers = unpack_params(params, problem["user_sizes"], problem["item_sizes"])
    acts = []
    for x, layers in zip(_inputs(problem, batch), towers):
        tower = [x]
        for index, (W, b) in enumerate(layers):
            tower.append(K.dense_forward(tower[-1], W, b, relu=index < len(layers) - 1))
        acts.append(tower)
    pred, Yu, Yv, nu, nv = K.normalize_dot(acts[0][-1], acts[1][-1])
    loss, grad_pred = K.mse(pred, problem["targets"][batch])
    return loss, acts, towers, (grad_pred, Yu, Yv, nu, nv)


def _composed_gradient(params, problem, batch):
    _, acts, towers, head = _forward(params, problem, batch)
    grads = np.zeros_like(params)
    grad_towers = unpack_params(grads, problem["user_sizes"], problem["item_sizes"])
    for grad, tower, layers, grad_layers in zip(K.normalize_dot_backward(*head), acts, towers,
                                                grad_towers):
        for index in range(len(layers) - 1, -1, -1):
            gW, gb = grad_layers[index]
            _, _, grad = K.dense_backward(grad, tower[index], layers[index][0],
                                          tower[index + 1], relu=index < len(layers) - 1,
                                          grad_W=gW, grad_b=gb, need_grad_X=index > 0)
    return grads


def _epoch_gradient(params, problem, batch):
    """Gradient left in ``grads`` by a one-batch epoch of plain SGD with lr=0."""
    p, grads = params.copy(), np.zeros_like(params)
    loss_sum, step = K.train_epoch(
        batch, problem["users"], problem["items"], problem["targets"], problem["user_x"],
        problem["item_x"], problem["user_sizes"], problem["item_sizes"], p, grads,
        np.zeros_like(p), np.zeros_like(p), optimizer="sgd", lr=0.0,
        batch_size=batch.shape[0], loo=problem["loo"])
    assert step == 1
    np.testing.assert_array_equal(p, params)  # lr = 0 leaves the parameters alone
    np.testing.assert_allclose(loss_sum / batch.shape[0], _forward(params, problem, batch)[0],
                               rtol=1e-12)
    return grads


def _finite_differences(params, problem, batch, h=1e-6):
    grad = np.empty_like(params)
    for j in range(params.shape[0]):
        plus, minus = params.copy(), params.copy()
        plus[j] += h
        minus[j] -= h
        grad[j] = (_forward(plus, problem, batch)[0] - _forward(minus, problem, batch)[0]) / (2 * h)
    return grad


@pytest.mark.parametrize("loo_mode", [None, 0, 2])
def test_gradients_match_finite_differences(each_backend, loo_mode):
    problem = make_problem(np.random.default_rng(11), np.float64, user_sizes=(5, 6, 4, 3),
                           item_sizes=(4, 5, 3), n_examples=23, loo_mode=loo_mode)
    batch = np.random.default_rng(1).permutation(23)[:17].astype(np.int64)
    params = problem["params"]
    numeric = _finite_differences(params, problem, batch)
    assert np.abs(numeric).max() > 1e-3  # the check is not vacuous
    np.testing.assert_allclose(_composed_gradient(params, problem, batch), numeric,
                               rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(_epoch_gradient(params, problem, batch), numeric,
                               rtol=1e-5, atol=1e-8)


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
