"""A whole compiled epoch follows the NumPy twin's trajectory, batch for batch."""

import numpy as np
import pytest

import anirec
from anirec import kernels as K
from .kernel_helpers import deep_copy, epoch_inputs, make_problem, requires_cython, run_epoch

OPTIMIZERS = [("adam", 0.0), ("sgd", 0.0), ("sgd", 0.9)]


def _run(backend, problem, *, optimizer, momentum, batch_size, epochs=3, weight_decay=1e-3,
         lr=0.01, objective=None):
    p = {k: deep_copy(v) for k, v in problem.items()}
    step, losses = 0, []
    n = p["targets"].shape[0]
    with anirec.use_backend(backend):
        for epoch in range(epochs):
            order = np.random.default_rng(epoch).permutation(n).astype(np.int64)
            loss, step = run_epoch(p, order, lr=lr, step=step, optimizer=optimizer,
                                   momentum=momentum, weight_decay=weight_decay,
                                   embedding_decay=weight_decay, batch_size=batch_size,
                                   **(objective or {}))
            losses.append(loss)
    return p, np.array(losses), step


def _state(problem):
    """Every array an epoch updates, by name."""
    state = {name: problem[name] for name in ("params", "grads", "state1", "state2")}
    for side in ("user", "item"):
        if problem[f"{side}_embedding"] is not None:
            for part in ("table", "grad", "m", "v"):
                state[f"{side} {part}"] = getattr(problem[f"{side}_embedding"], part)
    return state


@requires_cython
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer,momentum", OPTIMIZERS)
@pytest.mark.parametrize("loo_mode", [None, 0, 1, 2])
@pytest.mark.parametrize("batch_size", [1, 16, 1000])
@pytest.mark.parametrize("embedding_dim", [0, 3])
def test_same_trajectory_as_numpy(dtype, optimizer, momentum, loo_mode, batch_size,
                                  embedding_dim):
    problem = make_problem(np.random.default_rng(5), dtype, loo_mode=loo_mode,
                           embedding_dim=embedding_dim)
    kwargs = dict(optimizer=optimizer, momentum=momentum, batch_size=batch_size)
    ref, ref_losses, ref_step = _run("numpy", problem, **kwargs)
    got, got_losses, got_step = _run("cython", problem, **kwargs)
    n_batches = -(-problem["targets"].shape[0] // batch_size)
    assert got_step == ref_step == 3 * n_batches
    rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (2e-4, 2e-5)
    np.testing.assert_allclose(got_losses, ref_losses, rtol=rtol)
    ref_state, got_state = _state(ref), _state(got)
    for name in ref_state:
        np.testing.assert_allclose(got_state[name], ref_state[name], rtol=rtol, atol=atol,
                                   err_msg=name)
    assert not np.array_equal(got["params"], problem["params"])  # training moved them
    if embedding_dim:
        moved = np.any(got["user_embedding"].table != problem["user_embedding"].table, axis=1)
        touched = np.unique(problem["user_embedding"].index[problem["users"]])
        np.testing.assert_array_equal(np.flatnonzero(moved), touched)  # only touched rows
        assert not got["user_embedding"].grad.any()  # left zero between batches


def test_epoch_learns_and_counts_steps(each_backend):
    problem = make_problem(np.random.default_rng(9), np.float64, n_examples=200)
    _, losses, step = _run(each_backend, problem, optimizer="adam", momentum=0.0,
                           batch_size=32, epochs=6, lr=0.02, weight_decay=0.0)
    assert step == 6 * 7
    assert losses[-1] < 0.8 * losses[0]


def test_step_continues_from_the_argument(each_backend):
    problem = make_problem(np.random.default_rng(2), np.float32)
    order = np.arange(problem["targets"].shape[0], dtype=np.int64)
    loss, step = run_epoch(problem, order, optimizer="adam", lr=1e-3, step=40, batch_size=10)
    assert step == 40 + 6
    assert isinstance(loss, float) and loss > 0


def test_empty_order_is_a_no_op(each_backend):
    p = make_problem(np.random.default_rng(2), np.float64)
    before = p["params"].copy()
    loss, step = run_epoch(p, np.zeros(0, np.int64), optimizer="sgd", lr=0.1, step=3)
    assert (loss, step) == (0.0, 3)
    np.testing.assert_array_equal(p["params"], before)


@requires_cython
def test_single_layer_towers():
    # One linear layer per tower: no hidden layer, no ReLU, first layer is also the last.
    problem = make_problem(np.random.default_rng(4), np.float64, user_sizes=(6, 3),
                           item_sizes=(5, 3))
    ref, ref_losses, _ = _run("numpy", problem, optimizer="sgd", momentum=0.5, batch_size=8)
    got, got_losses, _ = _run("cython", problem, optimizer="sgd", momentum=0.5, batch_size=8)
    np.testing.assert_allclose(got["params"], ref["params"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_losses, ref_losses, rtol=1e-10)


def _objective(problem, rating_weight, ranking_weight, temperature=0.1):
    """Ranking-loss arguments for ``problem``: logQ from its item counts, positives = examples
    whose target is at least 0 (about half)."""
    dtype = problem["targets"].dtype
    counts = np.bincount(problem["items"], minlength=problem["item_x"].shape[0]) + 1.0
    return dict(rating_weight=rating_weight, ranking_weight=ranking_weight,
                temperature=temperature,
                rank_weights=(problem["targets"] >= 0).astype(dtype),
                item_logq=np.log(counts / counts.sum()).astype(dtype))


@requires_cython
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weights", [(1.0, 0.3), (0.0, 1.0), (0.5, 2.0)])
@pytest.mark.parametrize("loo_mode", [None, 2])
@pytest.mark.parametrize("batch_size", [1, 16, 1000])
def test_same_trajectory_with_the_ranking_objective(dtype, weights, loo_mode, batch_size):
    problem = make_problem(np.random.default_rng(5), dtype, loo_mode=loo_mode)
    kwargs = dict(optimizer="adam", momentum=0.0, batch_size=batch_size,
                  objective=_objective(problem, *weights))
    ref, ref_losses, ref_step = _run("numpy", problem, **kwargs)
    got, got_losses, got_step = _run("cython", problem, **kwargs)
    assert got_step == ref_step
    rtol, atol = (1e-9, 1e-11) if dtype == np.float64 else (2e-3, 2e-4)
    np.testing.assert_allclose(got_losses, ref_losses, rtol=rtol)
    for name in ("params", "state1", "state2"):
        np.testing.assert_allclose(got[name], ref[name], rtol=rtol, atol=atol, err_msg=name)
    assert not np.array_equal(got["params"], problem["params"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_default_objective_is_bit_identical(each_backend, dtype):
    """Passing the ranking inputs with ``ranking_weight=0`` changes nothing, bit for bit."""
    problem = make_problem(np.random.default_rng(6), dtype)
    kwargs = dict(optimizer="adam", momentum=0.0, batch_size=16)
    plain, plain_losses, _ = _run(each_backend, problem, **kwargs)
    explicit, explicit_losses, _ = _run(each_backend, problem,
                                        objective=_objective(problem, 1.0, 0.0), **kwargs)
    np.testing.assert_array_equal(explicit_losses, plain_losses)
    np.testing.assert_array_equal(explicit["params"], plain["params"])


@requires_cython
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer,momentum", OPTIMIZERS)
@pytest.mark.parametrize("loo_mode,embedding_dim", [(None, 0), (2, 0), (2, 3)])
@pytest.mark.parametrize("weights", [None, (1.0, 0.3), (0.0, 1.0)])
@pytest.mark.parametrize("batch_size", [1, 16, 1000])
def test_tower_parallel_epoch_is_bit_identical_to_serial(dtype, optimizer, momentum, loo_mode,
                                                         embedding_dim, weights, batch_size):
    """One OpenMP thread per tower (2 threads) gives exactly the serial epoch (1 thread)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from anirec._kernels import _epoch

    if _epoch.tower_threads() < 2:
        pytest.skip("no OpenMP, or a single OpenMP thread: the serial loop only")
    problem = make_problem(np.random.default_rng(7), dtype, loo_mode=loo_mode,
                           embedding_dim=embedding_dim)
    objective = None if weights is None else _objective(problem, *weights)
    kwargs = dict(optimizer=optimizer, momentum=momentum, batch_size=batch_size,
                  objective=objective)
    parallel, parallel_losses, parallel_step = _run("cython", problem, **kwargs)
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert _epoch.tower_threads() == 1
        serial, serial_losses, serial_step = _run("cython", problem, **kwargs)
    assert parallel_step == serial_step
    np.testing.assert_array_equal(parallel_losses, serial_losses)
    serial_state = _state(serial)
    for name, value in _state(parallel).items():
        np.testing.assert_array_equal(value, serial_state[name], err_msg=name)
    assert not np.array_equal(parallel["params"], problem["params"])


def _blocked_problem(dtype, loo_mode, embedding_dim=0):
    """Batches of more rows than a span of the rating loss or a tower pass takes at a time:
    2 full row blocks and a partial one, then a remainder batch smaller than one block."""
    from anirec._kernels._epoch import TOWER_ROW_BLOCK

    batch = 2 * TOWER_ROW_BLOCK + 152
    problem = make_problem(np.random.default_rng(8), dtype, loo_mode=loo_mode, n_users=40,
                           n_items=60, n_examples=batch + 148, embedding_dim=embedding_dim)
    return problem, batch


@requires_cython
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer,momentum", [("adam", 0.0), ("sgd", 0.9)])
@pytest.mark.parametrize("loo_mode,weights,embedding_dim",
                         [(None, None, 0), (2, None, 0), (None, (1.0, 0.3), 0), (2, None, 4),
                          (2, (1.0, 0.3), 4)])
def test_row_blocked_batches_follow_numpy(dtype, optimizer, momentum, loo_mode, weights,
                                          embedding_dim):
    """A batch split into row blocks inside the compiled epoch gives the gradients and the
    trajectory of the whole-batch NumPy twin."""
    problem, batch = _blocked_problem(dtype, loo_mode, embedding_dim)
    objective = None if weights is None else _objective(problem, *weights)
    kwargs = dict(optimizer=optimizer, momentum=momentum, batch_size=batch,
                  objective=objective)
    ref, ref_losses, ref_step = _run("numpy", problem, **kwargs)
    got, got_losses, got_step = _run("cython", problem, **kwargs)
    assert got_step == ref_step == 6
    rtol, atol = (1e-9, 1e-11) if dtype == np.float64 else (2e-3, 2e-4)
    np.testing.assert_allclose(got_losses, ref_losses, rtol=rtol)
    ref_state, got_state = _state(ref), _state(got)
    for name in ref_state:
        np.testing.assert_allclose(got_state[name], ref_state[name], rtol=rtol, atol=atol,
                                   err_msg=name)


@requires_cython
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weights", [None, (1.0, 0.3)])
def test_row_blocked_tower_parallel_epoch_is_bit_identical_to_serial(dtype, weights):
    """Tower threads and spans (rating loss) or row blocks (with the ranking loss) together
    still give exactly the epoch on one thread."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from anirec._kernels import _epoch

    if _epoch.tower_threads() < 2:
        pytest.skip("no OpenMP, or a single OpenMP thread: the serial loop only")
    problem, batch = _blocked_problem(dtype, None)
    objective = None if weights is None else _objective(problem, *weights)
    kwargs = dict(optimizer="adam", momentum=0.0, batch_size=batch, objective=objective)
    parallel, parallel_losses, _ = _run("cython", problem, **kwargs)
    # BLAS on one thread too: on one OpenMP thread the epoch leaves the ranking head's
    # batch x batch products to BLAS's threads, and a threaded OpenBLAS rounds them otherwise.
    with threadpoolctl.threadpool_limits(1):
        serial, serial_losses, _ = _run("cython", problem, **kwargs)
    np.testing.assert_array_equal(parallel_losses, serial_losses)
    serial_state = _state(serial)
    for name, value in _state(parallel).items():
        np.testing.assert_array_equal(value, serial_state[name], err_msg=name)


@requires_cython
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weights", [None, (1.0, 0.3)])
@pytest.mark.parametrize("embedding_dim", [0, 3])
def test_an_epoch_in_runs_on_alternating_thread_counts_is_bit_identical(dtype, weights,
                                                                        embedding_dim):
    """``anirec._epoch_threads.ThreadChooser`` splits an epoch into runs of whole batches on 1
    or 2 threads as the machine's load goes: the same bits, loss included, as one call."""
    from anirec._kernels import _epoch
    from .kernel_helpers import epoch_inputs

    if _epoch.tower_threads() < 2:
        pytest.skip("no OpenMP, or a single OpenMP thread: the serial loop only")
    problem = make_problem(np.random.default_rng(11), dtype, loo_mode=2,
                           embedding_dim=embedding_dim)
    options = dict(optimizer="adam", batch_size=7, **(_objective(problem, *weights)
                                                       if weights else {}))
    order = np.random.default_rng(0).permutation(problem["targets"].shape[0])
    results = []
    for runs in ([(0, order.shape[0], 1)], [(0, 14, 2), (14, 21, 1), (21, 56, 2),
                                            (56, order.shape[0], 1)]):
        p = {k: deep_copy(v) for k, v in problem.items()}
        *inputs, config = epoch_inputs(p, **options)
        config = config._replace(optimizer=K.OPTIMIZERS[config.optimizer])
        loss, step = 0.0, 5
        for start, stop, threads in runs:
            loss, step = _epoch.train_epoch(order[start:stop], *inputs, config, 0.01, step,
                                            threads, loss)
        results.append((p, loss, step))
    (whole, whole_loss, whole_step), (split, split_loss, split_step) = results
    assert split_step == whole_step == 5 + -(-order.shape[0] // 7)
    assert split_loss == whole_loss
    whole_state = _state(whole)
    for name, value in _state(split).items():
        np.testing.assert_array_equal(value, whole_state[name], err_msg=name)
    assert not np.array_equal(split["params"], problem["params"])


def _narrowed(problem, users, items):
    """``problem`` with its example rows cast to the given index dtypes."""
    return dict(problem, users=problem["users"].astype(users),
                items=problem["items"].astype(items))


def _run_with_order(backend, problem, order_dtype, *, epochs=2, **options):
    p = {k: deep_copy(v) for k, v in problem.items()}
    losses, step = [], 0
    with anirec.use_backend(backend):
        for epoch in range(epochs):
            order = np.random.default_rng(epoch).permutation(p["targets"].shape[0])
            loss, step = run_epoch(p, order.astype(order_dtype), lr=0.01, step=step,
                                   **options)
            losses.append(loss)
    return p, losses, step


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loo_mode,embedding_dim,weights", [(None, 0, None), (2, 3, None),
                                                            (None, 3, (1.0, 0.3)),
                                                            (2, 0, (0.5, 1.0))])
@pytest.mark.parametrize("batch_size", [1, 16, 1000])
def test_int32_indices_give_the_bits_of_int64(each_backend, dtype, loo_mode, embedding_dim,
                                               weights, batch_size):
    """Examples and order as int32, or any mix of int32 and int64, follow the int64
    trajectory bit for bit, on each backend."""
    problem = make_problem(np.random.default_rng(8), dtype, loo_mode=loo_mode,
                           embedding_dim=embedding_dim)
    options = dict(optimizer="adam", batch_size=batch_size,
                   **(_objective(problem, *weights) if weights else {}))
    ref, ref_losses, ref_step = _run_with_order(each_backend, problem, np.int64, **options)
    for users, items, order in ((np.int32, np.int32, np.int32), (np.int32, np.int64, np.int64),
                                (np.int64, np.int32, np.int32)):
        got, losses, step = _run_with_order(each_backend, _narrowed(problem, users, items),
                                            order, **options)
        assert (losses, step) == (ref_losses, ref_step)
        ref_state, got_state = _state(ref), _state(got)
        for name in ref_state:
            np.testing.assert_array_equal(got_state[name], ref_state[name], err_msg=name)
    assert not np.array_equal(ref["params"], problem["params"])


@requires_cython
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_int32_indices_follow_numpy(dtype):
    """The compiled epoch on int32 indices follows the NumPy twin on int64 ones."""
    problem = make_problem(np.random.default_rng(3), dtype, loo_mode=1, embedding_dim=3)
    ref, ref_losses, _ = _run_with_order("numpy", problem, np.int64, batch_size=16,
                                         optimizer="adam")
    got, got_losses, _ = _run_with_order("cython", _narrowed(problem, np.int32, np.int32),
                                         np.int32, batch_size=16, optimizer="adam")
    rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (2e-4, 2e-5)
    np.testing.assert_allclose(got_losses, ref_losses, rtol=rtol)
    np.testing.assert_allclose(got["params"], ref["params"], rtol=rtol, atol=atol)


@requires_cython
def test_compiled_epoch_refuses_other_index_dtypes_itself():
    """Past the checks of ``anirec.kernels``, the compiled epoch still reads only int32 and
    int64 indices: any other dtype is refused by its typed memoryviews, never reinterpreted."""
    from anirec._kernels import _epoch

    problem = make_problem(np.random.default_rng(0), np.float64)
    examples, user, item, params, config = epoch_inputs(problem, optimizer="adam")
    config = config._replace(optimizer=1)
    order = np.arange(57, dtype=np.int64)
    for bad in (np.uint32, np.int16, np.float64):
        with pytest.raises(ValueError, match="dtype mismatch"):
            _epoch.train_epoch(order.astype(bad), examples, user, item, params, config, 0.01, 0)
        with pytest.raises(ValueError, match="dtype mismatch"):
            _epoch.train_epoch(order, examples._replace(users=examples.users.astype(bad)),
                               user, item, params, config, 0.01, 0)
