"""Kernels against independent references: hand-worked numbers and plain float64 loops written
from the definitions, never from the other backend.

Parity tests (``test_parity.py``, ``test_train_epoch.py``) prove that the Cython kernels and
the NumPy twin agree; a mistake made in both passes them. The tests here run under each backend
(``each_backend``) against a reference that shares no code with either.
"""

import math

import numpy as np
import pytest

from anirec import kernels as K
from .kernel_helpers import DTYPES, make_problem, run_epoch

# Tolerance of a kernel in ``dtype`` against a float64 reference.
RTOL = {np.float32: 2e-5, np.float64: 1e-12}


# ---------------------------------------------------------------------------------------------
# Optimizers


def adam_reference(param, grads, *, lr, beta1, beta2, eps, weight_decay, first_step=1):
    """Bias-corrected Adam (Kingma & Ba, Algorithm 1) with L2 weight decay added to the gradient,
    element by element in float64, one step per entry of ``grads``."""
    param = [float(p) for p in param]
    m, v = [0.0] * len(param), [0.0] * len(param)
    for offset, grad in enumerate(grads):
        t = first_step + offset
        for j in range(len(param)):
            g = float(grad[j]) + weight_decay * param[j]
            m[j] = beta1 * m[j] + (1 - beta1) * g
            v[j] = beta2 * v[j] + (1 - beta2) * g * g
            m_hat = m[j] / (1 - beta1 ** t)
            v_hat = v[j] / (1 - beta2 ** t)
            param[j] -= lr * m_hat / (math.sqrt(v_hat) + eps)
    return np.array(param), np.array(m), np.array(v)


def sgd_reference(param, grads, *, lr, momentum, weight_decay):
    """Heavy-ball SGD (``v = mu v + g``, ``p -= lr v``; ``g`` includes ``wd p``), in float64."""
    param = [float(p) for p in param]
    velocity = [0.0] * len(param)
    for grad in grads:
        for j in range(len(param)):
            g = float(grad[j]) + weight_decay * param[j]
            velocity[j] = momentum * velocity[j] + g if momentum else g
            param[j] -= lr * velocity[j]
    return np.array(param), np.array(velocity)


def test_adam_first_step_moves_each_weight_by_lr(each_backend):
    # Hand-worked: at step 1 the corrected moments are g and g^2, so each weight moves by
    # lr * g / (|g| + eps) = lr * sign(g), whatever the size of g (eps is tiny: 0 is refused).
    # Without the correction the move would be lr * 0.1 g / (sqrt(0.001) |g|) = 3.16 lr.
    param = np.array([1.0, -2.0, 0.5, 3.0])
    grad = np.array([0.3, -40.0, 1e-3, -0.7])
    m, v = np.zeros(4), np.zeros(4)
    K.adam_step(param, grad, m, v, lr=0.01, step=1, eps=1e-300)
    np.testing.assert_allclose(param, [0.99, -1.99, 0.49, 3.01], rtol=1e-14)
    np.testing.assert_allclose(m, 0.1 * grad, rtol=1e-14)
    np.testing.assert_allclose(v, 0.001 * grad**2, rtol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("first_step", [1, 7])
def test_adam_matches_the_algorithm_over_several_steps(each_backend, dtype, weight_decay,
                                                       first_step):
    rng = np.random.default_rng(4)
    param0 = rng.standard_normal(9)
    grads = rng.standard_normal((5, 9)) * [[0.1], [1.0], [3.0], [0.5], [2.0]]
    options = dict(lr=0.05, beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=weight_decay)
    want, want_m, want_v = adam_reference(param0, grads, first_step=first_step, **options)
    param, m, v = param0.astype(dtype), np.zeros(9, dtype), np.zeros(9, dtype)
    for offset, grad in enumerate(grads):
        K.adam_step(param, grad.astype(dtype), m, v, step=first_step + offset, **options)
    rtol = RTOL[dtype]
    np.testing.assert_allclose(param, want, rtol=rtol * 10, atol=rtol)
    np.testing.assert_allclose(m, want_m, rtol=rtol * 10, atol=rtol)
    np.testing.assert_allclose(v, want_v, rtol=rtol * 10, atol=rtol)


def test_sgd_momentum_and_weight_decay_by_hand(each_backend):
    # p0 = 1, grad 0.5 each step, lr 0.1, momentum 0.9, weight decay 0.1:
    # step 1: g = 0.5 + 0.1 * 1 = 0.6,        v = 0.6,                 p = 1 - 0.06 = 0.94
    # step 2: g = 0.5 + 0.1 * 0.94 = 0.594,   v = 0.9 * 0.6 + 0.594 = 1.134,  p = 0.8266
    param, velocity = np.array([1.0]), np.zeros(1)
    for _ in range(2):
        K.sgd_step(param, np.array([0.5]), lr=0.1, momentum=0.9, weight_decay=0.1,
                   velocity=velocity)
    assert param[0] == pytest.approx(0.8266, rel=1e-14)
    assert velocity[0] == pytest.approx(1.134, rel=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.0, 0.1), (0.9, 0.0),
                                                   (0.7, 0.05)])
def test_sgd_matches_the_definition_over_several_steps(each_backend, dtype, momentum,
                                                       weight_decay):
    rng = np.random.default_rng(6)
    param0 = rng.standard_normal(11)
    grads = rng.standard_normal((6, 11))
    want, want_velocity = sgd_reference(param0, grads, lr=0.03, momentum=momentum,
                                        weight_decay=weight_decay)
    param = param0.astype(dtype)
    velocity = np.zeros(11, dtype) if momentum else None
    for grad in grads:
        K.sgd_step(param, grad.astype(dtype), lr=0.03, momentum=momentum,
                   weight_decay=weight_decay, velocity=velocity)
    rtol = RTOL[dtype]
    np.testing.assert_allclose(param, want, rtol=rtol * 10, atol=rtol)
    if momentum:
        np.testing.assert_allclose(velocity, want_velocity, rtol=rtol * 10, atol=rtol)


# ---------------------------------------------------------------------------------------------
# Forward values


def cosine_reference(zu, zv, eps=1e-6):
    """``<zu, zv> / (sqrt(|zu|^2 + eps^2) sqrt(|zv|^2 + eps^2))`` with Python floats."""
    dot = sum(float(a) * float(b) for a, b in zip(zu, zv))
    nu = math.sqrt(sum(float(a) ** 2 for a in zu) + eps * eps)
    nv = math.sqrt(sum(float(b) ** 2 for b in zv) + eps * eps)
    return dot / (nu * nv), nu, nv


def test_normalize_dot_by_hand(each_backend):
    Zu = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 0.0], [2.0, 2.0]])
    Zv = np.array([[4.0, 3.0], [-2.0, 0.0], [5.0, 1.0], [-1.0, 1.0]])
    pred, Yu, Yv, nu, nv = K.normalize_dot(Zu, Zv)
    # 24/25; opposite directions; a zero row scores 0; orthogonal rows.
    np.testing.assert_allclose(pred, [0.96, -1.0, 0.0, 0.0], atol=1e-11)
    np.testing.assert_allclose(nu[:2], [5.0, 1.0], rtol=1e-12)
    np.testing.assert_allclose(Yu[0], [0.6, 0.8], rtol=1e-12)
    np.testing.assert_allclose(Yv[1], [-1.0, 0.0], rtol=1e-12)
    assert nu[2] == pytest.approx(1e-6) and not Yu[2].any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_normalize_dot_matches_the_definition(each_backend, dtype):
    rng = np.random.default_rng(8)
    Zu = (rng.standard_normal((13, 7)) * rng.uniform(0.01, 10, (13, 1))).astype(dtype)
    Zv = (rng.standard_normal((13, 7)) * rng.uniform(0.01, 10, (13, 1))).astype(dtype)
    pred, Yu, Yv, nu, nv = K.normalize_dot(Zu, Zv)
    for i in range(13):
        cos, norm_u, norm_v = cosine_reference(Zu[i], Zv[i])
        assert pred[i] == pytest.approx(cos, rel=RTOL[dtype] * 5, abs=RTOL[dtype])
        assert nu[i] == pytest.approx(norm_u, rel=RTOL[dtype])
        assert nv[i] == pytest.approx(norm_v, rel=RTOL[dtype])
        np.testing.assert_allclose(Yu[i], Zu[i].astype(float) / norm_u, rtol=RTOL[dtype] * 5)
        np.testing.assert_allclose(Yv[i], Zv[i].astype(float) / norm_v, rtol=RTOL[dtype] * 5)
    Y, norms = K.l2_normalize(Zu)
    np.testing.assert_array_equal(Y, Yu)
    np.testing.assert_array_equal(norms, nu)


def test_mse_by_hand(each_backend):
    loss, grad = K.mse(np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.0, 5.0]))
    # diffs 1, 2, -2: mean square (1 + 4 + 4) / 3 = 3, gradient 2 diff / 3.
    assert loss == pytest.approx(3.0, rel=1e-15)
    np.testing.assert_allclose(grad, [2 / 3, 4 / 3, -4 / 3], rtol=1e-15)
    loss, grad = K.mse(np.zeros(0), np.zeros(0))
    assert loss == 0.0 and grad.shape == (0,)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mse_matches_the_definition(each_backend, dtype):
    rng = np.random.default_rng(9)
    pred = rng.uniform(-1, 1, 37).astype(dtype)
    target = rng.uniform(-1, 1, 37).astype(dtype)
    diffs = [float(p) - float(t) for p, t in zip(pred, target)]
    loss, grad = K.mse(pred, target)
    assert loss == pytest.approx(sum(d * d for d in diffs) / 37, rel=RTOL[dtype])
    np.testing.assert_allclose(grad, [2 * d / 37 for d in diffs], rtol=RTOL[dtype])


def test_dense_forward_matches_the_definition(each_backend):
    X = np.array([[1.0, -2.0], [0.5, 3.0]])
    W = np.array([[1.0, 2.0, -1.0], [0.5, -1.0, 1.0]])
    b = np.array([0.0, 1.0, -4.0])
    # X W = [[0, 4, -3], [2, -2, 2.5]]; + b = [[0, 5, -7], [2, -1, -1.5]].
    np.testing.assert_allclose(K.dense_forward(X, W, b, relu=False),
                               [[0, 5, -7], [2, -1, -1.5]], rtol=1e-15)
    np.testing.assert_allclose(K.dense_forward(X, W, b, relu=True),
                               [[0, 5, 0], [2, 0, 0]], rtol=1e-15)


# ---------------------------------------------------------------------------------------------
# A whole epoch against a loss written from the definitions


def _reference_loss(params, problem, batch):
    """The batch's mean squared error of the cosine of two MLP towers (ReLU hidden layers,
    linear last layer), with explicit loops over layers and float64 NumPy algebra only."""
    def tower(x, sizes, offset):
        for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            W = params[offset:offset + fan_in * fan_out].reshape(fan_in, fan_out)
            offset += fan_in * fan_out
            b = params[offset:offset + fan_out]
            offset += fan_out
            x = x @ W + b
            if layer < len(sizes) - 2:
                x = np.where(x > 0, x, 0.0)
        return x, offset

    zu, offset = tower(problem["user_x"][problem["users"][batch]], problem["user_sizes"], 0)
    zv, _ = tower(problem["item_x"][problem["items"][batch]], problem["item_sizes"], offset)
    cos = np.array([cosine_reference(a, b)[0] for a, b in zip(zu, zv)])
    return float(np.mean((cos - problem["targets"][batch]) ** 2))


def test_one_sgd_epoch_step_follows_the_reference_gradient(each_backend):
    """One batch, plain SGD: the loss reported equals the reference loss and the parameters
    move by ``-lr`` times its central finite-difference gradient."""
    problem = make_problem(np.random.default_rng(21), np.float64, user_sizes=(4, 5, 3),
                           item_sizes=(3, 4, 3), n_examples=19)
    batch = np.random.default_rng(2).permutation(19)[:15].astype(np.int64)
    params0 = problem["params"].copy()
    numeric = np.empty_like(params0)
    for j in range(params0.shape[0]):
        plus, minus = params0.copy(), params0.copy()
        plus[j] += 1e-6
        minus[j] -= 1e-6
        numeric[j] = (_reference_loss(plus, problem, batch)
                      - _reference_loss(minus, problem, batch)) / 2e-6
    assert np.abs(numeric).max() > 1e-2  # not vacuous
    params = params0.copy()
    loss_sum, step = run_epoch(dict(problem, params=params), batch, optimizer="sgd", lr=0.1,
                               batch_size=15)
    assert step == 1
    assert loss_sum / 15 == pytest.approx(_reference_loss(params0, problem, batch), rel=1e-12)
    np.testing.assert_allclose(params, params0 - 0.1 * numeric, rtol=1e-7, atol=1e-9)
