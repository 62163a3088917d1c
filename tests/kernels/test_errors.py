"""Bad arguments raise TypeError / ValueError / IndexError naming the argument, under every
backend, before any kernel runs."""

import numpy as np
import pytest

from anirec import kernels as K
from .kernel_helpers import epoch_inputs, make_loo, make_problem, run_epoch

f32, f64 = np.float32, np.float64


def _dense(n=4, k=3, m=2, dtype=f64):
    return np.ones((n, k), dtype), np.ones((k, m), dtype), np.ones(m, dtype)


def test_dense_forward_errors(each_backend):
    X, W, b = _dense()
    with pytest.raises(TypeError, match="X must be float32 or float64"):
        K.dense_forward(X.astype(np.int64), W, b)
    with pytest.raises(TypeError, match="X must be a numpy array"):
        K.dense_forward(X.tolist(), W, b)
    with pytest.raises(TypeError, match="W must have dtype float64"):
        K.dense_forward(X, W.astype(f32), b)
    with pytest.raises(ValueError, match=r"W must have shape \(3, any\)"):
        K.dense_forward(X, np.ones((4, 2)), b)
    with pytest.raises(ValueError, match=r"b must have shape \(2\)"):
        K.dense_forward(X, W, np.ones(3))
    with pytest.raises(ValueError, match="X must be C-contiguous"):
        K.dense_forward(np.ones((3, 4)).T, W, b)
    with pytest.raises(ValueError, match="out must have shape"):
        K.dense_forward(X, W, b, out=np.empty((4, 3)))
    readonly = np.empty((4, 2))
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        K.dense_forward(X, W, b, out=readonly)


def test_dense_backward_errors(each_backend):
    X, W, _ = _dense()
    G, out = np.ones((4, 2)), np.ones((4, 2))
    with pytest.raises(ValueError, match="X must have shape"):
        K.dense_backward(G, X[:3], W, out)
    with pytest.raises(ValueError, match="out must have shape"):
        K.dense_backward(G, X, W, out[:, :1].copy())
    with pytest.raises(TypeError, match="grad_W must have dtype float64"):
        K.dense_backward(G, X, W, out, grad_W=np.empty((3, 2), f32))
    readonly = G.copy()
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="grad_out must be writeable"):
        K.dense_backward(readonly, X, W, out)


def test_normalize_and_loss_errors(each_backend):
    with pytest.raises(ValueError, match="Zv must have shape"):
        K.normalize_dot(np.ones((3, 2)), np.ones((3, 3)))
    with pytest.raises(TypeError, match="Zv must have dtype float32"):
        K.normalize_dot(np.ones((3, 2), f32), np.ones((3, 2)))
    with pytest.raises(ValueError, match="Z must have shape"):
        K.l2_normalize(np.ones(3))
    with pytest.raises(ValueError, match="norm_u must have shape"):
        K.normalize_dot_backward(np.ones(3), np.ones((3, 2)), np.ones((3, 2)), np.ones(2),
                                 np.ones(3))
    with pytest.raises(ValueError, match="target must have shape"):
        K.mse(np.ones(3), np.ones(4))


def test_optimizer_errors(each_backend):
    p, g = np.ones(5), np.ones(5)
    with pytest.raises(ValueError, match="grad must have shape"):
        K.sgd_step(p, np.ones(4), lr=0.1)
    with pytest.raises(ValueError, match="velocity is required"):
        K.sgd_step(p, g, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="lr must be a finite number"):
        K.sgd_step(p, g, lr=float("nan"))
    with pytest.raises(ValueError, match="momentum must be a finite number"):
        K.sgd_step(p, g, lr=0.1, momentum=1.5, velocity=np.zeros(5))
    with pytest.raises(ValueError, match="step must be at least 1"):
        K.adam_step(p, g, np.zeros(5), np.zeros(5), lr=0.1, step=0)
    with pytest.raises(TypeError, match="step must be an integer"):
        K.adam_step(p, g, np.zeros(5), np.zeros(5), lr=0.1, step=1.5)
    with pytest.raises(ValueError, match="v must have shape"):
        K.adam_step(p, g, np.zeros(5), np.zeros(4), lr=0.1, step=1)
    with pytest.raises(ValueError, match="param must be C-contiguous"):
        K.sgd_step(np.ones(10)[::2], g, lr=0.1)


def test_index_errors(each_backend):
    X = np.ones((5, 2))
    with pytest.raises(IndexError, match=r"index holds 5, outside the valid range \[0, 5\)"):
        K.gather_rows(X, np.array([0, 5], dtype=np.int64))
    with pytest.raises(IndexError, match="index holds -1"):
        K.gather_rows(X, np.array([-1], dtype=np.int64))
    with pytest.raises(TypeError, match="index must have dtype int64"):
        K.gather_rows(X, np.array([0], dtype=np.int32))
    stats, users, items, ratings = make_loo(np.random.default_rng(0), f64)
    bad = users.copy()
    bad[0] = 10**6
    with pytest.raises(IndexError, match="users holds 1000000"):
        K.user_rows_loo(stats, bad, items, ratings)
    with pytest.raises(ValueError, match="ratings must have shape"):
        K.user_rows_loo(stats, users, items, ratings[:-1])
    with pytest.raises(ValueError, match="stats.mode must be one of"):
        K.user_rows_loo(stats._replace(mode=7), users, items, ratings)
    with pytest.raises(ValueError, match="stats.std must be positive"):
        K.user_rows_loo(stats._replace(std=np.zeros_like(stats.std)), users, items, ratings)
    with pytest.raises(TypeError, match="stats must be a LeaveOneOutStats"):
        K.user_rows_loo(tuple(stats), users, items, ratings)


def test_topk_errors(each_backend):
    Q, V = np.ones((3, 2)), np.ones((5, 2))
    with pytest.raises(ValueError, match="V must have shape"):
        K.topk(Q, np.ones((5, 3)), 2)
    with pytest.raises(ValueError, match="k must be at least 1"):
        K.topk(Q, V, 0)
    with pytest.raises(TypeError, match="block_size must be an integer"):
        K.topk(Q, V, 2, block_size=2.0)
    with pytest.raises(TypeError, match="exclude must be a tuple"):
        K.topk(Q, V, 2, exclude=[np.zeros(4, np.int64), np.zeros(0, np.int64)])
    with pytest.raises(ValueError, match="exclude indptr must have shape"):
        K.topk(Q, V, 2, exclude=(np.zeros(3, np.int64), np.zeros(0, np.int64)))
    with pytest.raises(IndexError, match="exclude indices holds 5"):
        K.topk(Q, V, 2, exclude=(np.array([0, 1, 1, 1]), np.array([5])))
    with pytest.raises(ValueError, match="exclude indptr must start at 0"):
        K.topk(Q, V, 2, exclude=(np.array([0, 2, 1, 2]), np.array([1, 2])))


def _epoch(problem, **overrides):
    """``run_epoch`` of ``problem`` with some of its entries replaced."""
    p = dict(problem, **overrides)
    return run_epoch(p, np.arange(p["targets"].shape[0], dtype=np.int64), optimizer="adam",
                     lr=0.01)


@pytest.mark.parametrize("override,error,message", [
    (dict(params=np.ones(3)), ValueError, "params.params must have shape"),
    (dict(grads=np.ones(211, f32)), TypeError, "params.grads must have dtype float64"),
    (dict(user_sizes=np.array([6, 9, 5, 3])), ValueError, "same width"),
    (dict(user_sizes=np.array([6])), ValueError, "user.sizes must hold at least two"),
    (dict(item_x=np.ones((13, 4))), ValueError, "item: its blocks make 4 inputs, but the "
                                                "tower takes 5"),
    (dict(user_x=np.ones((10, 7))), ValueError, "user: its blocks make 7 inputs"),
    (dict(users=np.full(57, 10, np.int64)), IndexError, "users holds 10"),
    (dict(targets=np.ones(50)), ValueError, "users must have shape"),
    (dict(user_x=None), TypeError, r"user.blocks\[0\].x must be a numpy array"),
    (dict(targets=np.full(57, np.nan)), ValueError, "examples.targets holds nan"),
])
def test_train_epoch_errors(each_backend, override, error, message):
    problem = make_problem(np.random.default_rng(0), f64)
    assert problem["params"].shape == (211,)
    with pytest.raises(error, match=message):
        _epoch(problem, **override)


def test_train_epoch_option_errors(each_backend):
    from anirec.kernels import EpochConfig, EpochPlan, Tower

    problem = make_problem(np.random.default_rng(0), f64)
    order = np.arange(57, dtype=np.int64)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        run_epoch(problem, order, lr=0.1, optimizer="rmsprop")
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        run_epoch(problem, order, lr=0.1, batch_size=0)
    with pytest.raises(IndexError, match="order holds"):
        run_epoch(problem, np.array([57], np.int64), lr=0.1)
    with pytest.raises(ValueError, match="step must be a non-negative integer"):
        run_epoch(problem, order, lr=0.1, step=-1)
    with pytest.raises(ValueError, match="lr must be"):
        run_epoch(problem, order, lr=float("nan"))
    examples, user, item, params, _ = epoch_inputs(problem)
    with pytest.raises(TypeError, match="config must be an EpochConfig"):
        EpochPlan(examples, user, item, params, {"optimizer": "adam"})
    with pytest.raises(TypeError, match="user must be a Tower"):
        EpochPlan(examples, tuple(user), item, params, EpochConfig())
    with pytest.raises(ValueError, match="threads must be at least 1"):
        EpochPlan(examples, user, item, params, EpochConfig(), threads=0)
    with pytest.raises(ValueError, match="user has no input block"):
        EpochPlan(examples, Tower(user.sizes, ()), item, params, EpochConfig())
    with pytest.raises(ValueError, match=r"user.blocks\[0\] reads the 'item' side"):
        EpochPlan(examples, Tower(user.sizes, item.blocks), item, params, EpochConfig())
    with pytest.raises(TypeError, match=r"user.blocks\[0\] must be one of"):
        EpochPlan(examples, Tower(user.sizes, (user.blocks[0].x,)), item, params,
                  EpochConfig())
    loo_problem = make_problem(np.random.default_rng(0), f64, loo_mode=0)
    with pytest.raises(ValueError, match="examples.ratings are required"):
        _epoch(loo_problem, ratings=None)
    with pytest.raises(ValueError, match="examples.ratings must have shape"):
        _epoch(loo_problem, ratings=loo_problem["ratings"][:5].copy())
    with pytest.raises(TypeError, match="item_stats must be an ItemLeaveOneOutStats"):
        _epoch(loo_problem, item_loo=loo_problem["loo"])
    with pytest.raises(ValueError, match="item_loo.columns must be 3 distinct"):
        _epoch(loo_problem, item_loo=loo_problem["item_loo"]._replace(
            columns=np.array([0, 0, 1], np.int64)))


def test_embedding_errors(each_backend):
    import dataclasses

    problem = make_problem(np.random.default_rng(0), f64, embedding_dim=2)
    embedding = problem["user_embedding"]
    replace = dataclasses.replace
    with pytest.raises(IndexError, match=r"user.blocks\[1\].index holds 9"):
        _epoch(problem, user_embedding=replace(embedding, index=np.full(10, 9, np.int64)))
    with pytest.raises(ValueError, match="the blocks know different numbers of rows"):
        _epoch(problem, user_embedding=replace(embedding, index=embedding.index[:5].copy()))
    with pytest.raises(ValueError, match=r"user.blocks\[1\].m must have shape"):
        _epoch(problem, user_embedding=replace(embedding, m=np.zeros((3, 2))))
    with pytest.raises(ValueError, match="its blocks make 6 inputs, but the tower takes 8"):
        _epoch(problem, user_embedding=None)
    with pytest.raises(ValueError, match=r"user.blocks\[1\].m shares memory with "
                                         r"user.blocks\[1\].v"):
        _epoch(problem, user_embedding=replace(embedding, v=embedding.m))
    with pytest.raises(ValueError, match="params.params shares memory with params.grads"):
        _epoch(problem, grads=problem["params"])
    with pytest.raises(ValueError, match=r"user.blocks\[1\].table holds nan"):
        _epoch(problem, user_embedding=replace(embedding, table=np.full_like(embedding.table,
                                                                            np.nan)))


def test_history_errors(each_backend):
    import dataclasses

    problem = make_problem(np.random.default_rng(0), f64, history_dim=2)
    history = problem["user_history"]
    replace = dataclasses.replace
    with pytest.raises(ValueError, match="indptr must start at 0 and never decrease"):
        _epoch(problem, user_history=replace(history, indptr=history.indptr[::-1].copy()))
    with pytest.raises(IndexError, match=r"user.blocks\[1\].indices holds 13"):
        _epoch(problem, user_history=replace(history, indices=np.full_like(history.indices,
                                                                           13)))
    with pytest.raises(ValueError, match=r"user.blocks\[1\].table must have shape \(13, any\)"):
        _epoch(problem, user_history=replace(history, table=history.table[:5].copy()))
    with pytest.raises(ValueError, match="the blocks know different numbers of rows"):
        _epoch(problem, user_history=replace(history, indptr=history.indptr[:5].copy(),
                                             indices=history.indices[:history.indptr[4]]))


@pytest.mark.parametrize("bad", [np.uint64, np.uint32, np.int16, np.float64, np.float32])
@pytest.mark.parametrize("name", ["users", "items", "order"])
def test_train_epoch_refuses_index_dtypes_other_than_int32_and_int64(each_backend, name, bad):
    problem = make_problem(np.random.default_rng(0), f64)
    order = np.arange(57, dtype=np.int64)
    if name == "order":
        order = order.astype(bad)
    else:
        problem[name] = problem[name].astype(bad)
    with pytest.raises(TypeError, match=f"{name} must have dtype int32 or int64, got "
                                        f"{np.dtype(bad)}"):
        run_epoch(problem, order, optimizer="adam", lr=0.01)


def test_train_epoch_refuses_int32_indices_out_of_range(each_backend):
    problem = make_problem(np.random.default_rng(0), f64)
    order = np.arange(57, dtype=np.int32)
    for name, value in (("users", 10), ("items", 13), ("users", -1)):
        p = dict(problem, **{name: problem[name].astype(np.int32)})
        p[name][20] = value
        with pytest.raises(IndexError, match=f"examples.{name} holds {value}, outside"):
            run_epoch(p, order, optimizer="adam", lr=0.01)
    for value in (57, -1):
        with pytest.raises(IndexError, match=f"order holds {value}, outside"):
            run_epoch(problem, np.array([0, value], np.int32), optimizer="adam", lr=0.01)
