"""The in-batch softmax ranking kernel: NumPy reference, Cython/NumPy parity, finite-difference
gradients, and its use inside a whole training epoch (trajectory parity, gradients)."""

import inspect

import numpy as np
import pytest

from anirec import kernels as K
from anirec._kernels import _numpy
from anirec._kernels._numpy import unpack_params
from .kernel_helpers import (DTYPES, assert_close, batch_inputs, both, make_problem,
                             requires_cython, run_epoch)


def _normalised(rng, n, d, dtype):
    Y = rng.standard_normal((n, d))
    return np.ascontiguousarray(Y / np.linalg.norm(Y, axis=1, keepdims=True), dtype=dtype)


def _batch(rng, dtype, *, n=9, d=5, n_items=6, zero_weights=2):
    """A batch with duplicate items (n > n_items) and some rows that are not positives."""
    Yu, Yv = _normalised(rng, n, d, dtype), _normalised(rng, n, d, dtype)
    items = rng.integers(0, n_items, n).astype(np.int64)
    weights = rng.uniform(0.5, 2.0, n)
    weights[rng.permutation(n)[:zero_weights]] = 0.0
    logq = np.log(rng.dirichlet(np.ones(n_items)))
    return Yu, Yv, items, weights.astype(dtype), logq.astype(dtype)


def _reference(Yu, Yv, items, weights, logq, temperature):
    """The loss written out row by row in float64, straight from the definition."""
    Yu, Yv, w = (np.asarray(a, np.float64) for a in (Yu, Yv, weights))
    total, loss = w[w > 0].sum(), 0.0
    for j in range(Yu.shape[0]):
        if w[j] <= 0:
            continue
        logits = [Yu[j] @ Yv[k] / temperature - float(logq[items[k]])
                  for k in range(Yu.shape[0]) if k == j or items[k] != items[j]]
        positive = Yu[j] @ Yv[j] / temperature - float(logq[items[j]])
        loss += w[j] * (np.logaddexp.reduce(logits) - positive)
    return loss / total if total > 0 else 0.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("temperature", [1.0, 0.05])
def test_loss_matches_the_definition(each_backend, dtype, temperature):
    Yu, Yv, items, weights, logq = _batch(np.random.default_rng(3), dtype)
    loss, gu, gv = K.inbatch_softmax(Yu, Yv, items, weights, logq, temperature)
    expected = _reference(Yu, Yv, items, weights, logq, temperature)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert loss == pytest.approx(expected, rel=rtol)
    assert gu.dtype == gv.dtype == dtype and gu.shape == gv.shape == Yu.shape


@requires_cython
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,d,n_items", [(1, 3, 2), (7, 4, 3), (64, 16, 50), (200, 32, 400)])
@pytest.mark.parametrize("temperature", [0.5, 0.05])
def test_parity(dtype, n, d, n_items, temperature):
    rng = np.random.default_rng(n * 7 + d)
    batch = _batch(rng, dtype, n=n, d=d, n_items=n_items, zero_weights=n // 4)
    (ref, _, _), (got, _, _) = both(K.inbatch_softmax, *batch, temperature)
    assert got[0] == pytest.approx(ref[0], rel=1e-12 if dtype == np.float64 else 1e-5)
    # The gradients pass through a softmax over cosines / temperature: scale the tolerance.
    assert_close(got[1:], ref[1:], dtype, scale=20 if dtype == np.float32 else 1)


@pytest.mark.parametrize("temperature", [1.0, 0.1])
def test_gradients_match_finite_differences(each_backend, temperature):
    Yu, Yv, items, weights, logq = _batch(np.random.default_rng(8), np.float64, n=8, d=4)
    _, gu, gv = K.inbatch_softmax(Yu, Yv, items, weights, logq, temperature)
    h = 1e-6
    for Y, grad in ((Yu, gu), (Yv, gv)):
        numeric = np.empty_like(Y)
        for index in np.ndindex(Y.shape):
            saved = Y[index]
            Y[index] = saved + h
            plus = K.inbatch_softmax(Yu, Yv, items, weights, logq, temperature,
                                     return_grad=False)[0]
            Y[index] = saved - h
            minus = K.inbatch_softmax(Yu, Yv, items, weights, logq, temperature,
                                      return_grad=False)[0]
            Y[index] = saved
            numeric[index] = (plus - minus) / (2 * h)
        assert np.abs(numeric).max() > 1e-2  # not vacuous
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_duplicates_are_not_negatives(each_backend):
    # Rows 0 and 1 share item 0: masking leaves each its positive (logit 1) and item 1's row
    # (logit 0), a two-way softmax; row 2 sees all three columns (logits 0, 0, 1).
    Yu = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    Yv = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    items = np.array([0, 0, 1], dtype=np.int64)
    weights, logq = np.ones(3), np.zeros(2)
    loss = K.inbatch_softmax(Yu, Yv, items, weights, logq, 1.0, return_grad=False)[0]
    expected = (2 * np.log1p(np.exp(-1.0)) + np.log1p(2 * np.exp(-1.0))) / 3
    assert loss == pytest.approx(expected, rel=1e-12)


def test_logq_correction_penalises_popular_negatives(each_backend):
    rng = np.random.default_rng(1)
    Yu, Yv, _, _, _ = _batch(rng, np.float64, n=6, d=3, n_items=6, zero_weights=0)
    items = np.arange(6, dtype=np.int64)
    only_row_0 = np.array([1.0, 0, 0, 0, 0, 0])  # the loss is row 0's cross-entropy alone
    loss = lambda logq: K.inbatch_softmax(Yu, Yv, items, only_row_0, logq, 0.5,  # noqa: E731
                                          return_grad=False)[0]
    flat = loss(np.zeros(6))
    # A popular negative (item 3 drawn often) has its logit lowered: row 0's loss falls, by
    # exactly the definition's amount.
    popular = np.zeros(6)
    popular[3] = np.log(4.0)
    assert loss(popular) < flat
    assert loss(popular) == pytest.approx(_reference(Yu, Yv, items, only_row_0, popular, 0.5),
                                          rel=1e-12)
    # A popular positive is the other way round: its own logit is lowered, the loss rises.
    popular_positive = np.zeros(6)
    popular_positive[0] = np.log(4.0)
    assert loss(popular_positive) > flat
    # A constant shift of logq changes nothing.
    assert loss(np.full(6, -3.0)) == pytest.approx(flat, rel=1e-12)


def test_zero_weights_and_empty_batches(each_backend):
    Yu, Yv, items, weights, logq = _batch(np.random.default_rng(2), np.float64)
    gu, gv = np.full_like(Yu, 7.0), np.full_like(Yv, 7.0)
    loss, gu, gv = K.inbatch_softmax(Yu, Yv, items, np.zeros_like(weights), logq, 0.1,
                                     grad_Yu=gu, grad_Yv=gv)
    assert loss == 0.0 and not gu.any() and not gv.any()
    empty = np.zeros((0, 5))
    loss, gu, gv = K.inbatch_softmax(empty, empty, np.zeros(0, np.int64), np.zeros(0), logq,
                                     0.1)
    assert loss == 0.0 and gu.shape == (0, 5)
    # Rows with weight 0 are negatives only: scaling the positive weights changes nothing.
    a = K.inbatch_softmax(Yu, Yv, items, weights, logq, 0.1)
    b = K.inbatch_softmax(Yu, Yv, items, weights * 3.0, logq, 0.1)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-12)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-10, atol=1e-14)


def test_argument_errors(each_backend):
    Yu, Yv, items, weights, logq = _batch(np.random.default_rng(2), np.float64)
    with pytest.raises(ValueError, match="Yv must have shape"):
        K.inbatch_softmax(Yu, Yv[:3], items, weights, logq, 0.1)
    with pytest.raises(TypeError, match="weights must have dtype float64"):
        K.inbatch_softmax(Yu, Yv, items, weights.astype(np.float32), logq, 0.1)
    with pytest.raises(IndexError, match="items holds"):
        K.inbatch_softmax(Yu, Yv, items + 100, weights, logq, 0.1)
    with pytest.raises(ValueError, match="weights must be finite and non-negative"):
        K.inbatch_softmax(Yu, Yv, items, -weights, logq, 0.1)
    with pytest.raises(ValueError, match="logq must be finite"):
        K.inbatch_softmax(Yu, Yv, items, weights, logq - np.inf, 0.1)
    with pytest.raises(ValueError, match="temperature must be a positive"):
        K.inbatch_softmax(Yu, Yv, items, weights, logq, 0.0)
    with pytest.raises(ValueError, match="grad_Yu must have shape"):
        K.inbatch_softmax(Yu, Yv, items, weights, logq, 0.1, grad_Yu=np.empty((2, 2)))


@requires_cython
def test_same_signature_as_the_numpy_twin():
    from anirec._kernels import _cython

    for name in ("inbatch_softmax", "train_epoch"):
        assert list(inspect.signature(getattr(_cython, name)).parameters) == \
            list(inspect.signature(getattr(_numpy, name)).parameters), name


# ---------------------------------------------------------------------------------------------
# Inside the epoch


def _ranking_problem(rng, dtype, loo_mode=None, **kwargs):
    problem = make_problem(rng, dtype, loo_mode=loo_mode, **kwargs)
    n_items = problem["item_x"].shape[0]
    n = problem["targets"].shape[0]
    counts = np.bincount(problem["items"], minlength=n_items) + 1.0
    problem["item_logq"] = np.log(counts / counts.sum()).astype(dtype)
    weights = (rng.random(n) < 0.7).astype(dtype)
    problem["rank_weights"] = weights
    return problem


def _epoch_gradient(params, problem, batch, alpha, beta, temperature):
    p = dict(problem, params=params.copy(), grads=np.zeros_like(params),
             state1=np.zeros_like(params), state2=np.zeros_like(params))
    loss_sum, _ = run_epoch(p, batch, optimizer="sgd", lr=0.0, batch_size=batch.shape[0],
                            rating_weight=alpha, ranking_weight=beta, temperature=temperature)
    return loss_sum / batch.shape[0], p["grads"]


def _batch_loss(params, problem, batch, alpha, beta, temperature):
    """The objective of one batch through the public kernels (forward only)."""
    towers = unpack_params(params, problem["user_sizes"], problem["item_sizes"])
    items = problem["items"][batch]
    outs = []
    for x, layers in zip(batch_inputs(problem, batch), towers):
        for index, (W, b) in enumerate(layers):
            x = K.dense_forward(x, W, b, relu=index < len(layers) - 1)
        outs.append(x)
    pred, Yu, Yv, _, _ = K.normalize_dot(*outs)
    mse = K.mse(pred, problem["targets"][batch], return_grad=False)[0]
    rank = K.inbatch_softmax(Yu, Yv, items, problem["rank_weights"][batch],
                             problem["item_logq"], temperature, return_grad=False)[0]
    return alpha * mse + beta * rank


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.5), (0.0, 1.0)])
@pytest.mark.parametrize("loo_mode", [None, 2])
def test_epoch_gradient_matches_finite_differences(each_backend, alpha, beta, loo_mode):
    problem = _ranking_problem(np.random.default_rng(11), np.float64, loo_mode,
                               user_sizes=(5, 6, 4, 3), item_sizes=(4, 5, 3), n_examples=23)
    batch = np.random.default_rng(1).permutation(23)[:17].astype(np.int64)
    params, temperature = problem["params"], 0.2
    loss, grads = _epoch_gradient(params, problem, batch, alpha, beta, temperature)
    assert loss == pytest.approx(_batch_loss(params, problem, batch, alpha, beta, temperature),
                                 rel=1e-12)
    h, numeric = 1e-6, np.empty_like(params)
    for j in range(params.shape[0]):
        plus, minus = params.copy(), params.copy()
        plus[j] += h
        minus[j] -= h
        numeric[j] = (_batch_loss(plus, problem, batch, alpha, beta, temperature)
                      - _batch_loss(minus, problem, batch, alpha, beta, temperature)) / (2 * h)
    assert np.abs(numeric).max() > 1e-3
    np.testing.assert_allclose(grads, numeric, rtol=1e-5, atol=1e-8)


def test_epoch_defaults_are_the_rating_model(each_backend):
    """``ranking_weight=0`` ignores the ranking inputs; the MSE weight scales loss and step."""
    problem = _ranking_problem(np.random.default_rng(4), np.float64)
    batch = np.arange(20, dtype=np.int64)
    loss_a, grads_a = _epoch_gradient(problem["params"], problem, batch, 1.0, 0.0, 0.1)
    loss_b, grads_b = _epoch_gradient(problem["params"], problem, batch, 2.0, 0.0, 0.1)
    np.testing.assert_allclose(loss_b, 2 * loss_a, rtol=1e-12)
    np.testing.assert_allclose(grads_b, 2 * grads_a, rtol=1e-12, atol=1e-15)


def test_epoch_argument_errors(each_backend):
    p = _ranking_problem(np.random.default_rng(4), np.float64)
    order = np.arange(5, dtype=np.int64)
    with pytest.raises(ValueError, match="rank_weights and examples.item_logq are required"):
        run_epoch(dict(p, rank_weights=None), order, lr=1e-3, ranking_weight=1.0)
    with pytest.raises(ValueError, match="cannot both be 0"):
        run_epoch(p, order, lr=1e-3, rating_weight=0.0)
    with pytest.raises(ValueError, match=r"item_logq must have shape"):
        run_epoch(p, order, lr=1e-3, ranking_weight=1.0, item_logq=p["item_logq"][:-1])
    with pytest.raises(ValueError, match="rank_weights must have shape"):
        run_epoch(p, order, lr=1e-3, ranking_weight=1.0, rank_weights=p["rank_weights"][:-1])
    with pytest.raises(ValueError, match="temperature must be a positive"):
        run_epoch(p, order, lr=1e-3, ranking_weight=1.0, temperature=-1)


def test_ranking_epochs_learn(each_backend):
    """A few epochs of the pure ranking objective learn which item each user picks."""
    problem = _ranking_problem(np.random.default_rng(9), np.float64, n_examples=200)
    problem["items"] = problem["users"] % 7  # each user always picks the same item
    problem["rank_weights"][:] = 1.0
    losses, step = [], 0
    for epoch in range(8):
        order = np.random.default_rng(epoch).permutation(200).astype(np.int64)
        loss, step = run_epoch(problem, order, optimizer="adam", lr=0.02, step=step,
                               batch_size=50, rating_weight=0.0, ranking_weight=1.0,
                               temperature=0.2)
        losses.append(loss / 200)
    assert losses[-1] < 0.5 * losses[0]
