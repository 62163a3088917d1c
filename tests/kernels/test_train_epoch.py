"""A whole compiled epoch follows the NumPy twin's trajectory, batch for batch."""

import numpy as np
import pytest

import anirec
from anirec import kernels as K
from .kernel_helpers import deep_copy, make_plan, make_problem, requires_cython, run_epoch

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
    for name in ("user_embedding", "item_embedding", "user_history"):
        if problem.get(name) is not None:
            for part in ("table", "grad", "m", "v"):
                state[f"{name} {part}"] = getattr(problem[name], part)
    return state


@requires_cython
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer,momentum", OPTIMIZERS)
@pytest.mark.parametrize("loo_mode", [None, 0, 1, 2])
@pytest.mark.parametrize("batch_size", [1, 16, 1000])
@pytest.mark.parametrize("embedding_dim,history_dim,id_dropout", [(0, 0, 0.0), (3, 0, 0.0),
                                                                 (0, 2, 0.0), (3, 2, 0.4)])
def test_same_trajectory_as_numpy(dtype, optimizer, momentum, loo_mode, batch_size,
                                  embedding_dim, history_dim, id_dropout):
    problem = make_problem(np.random.default_rng(5), dtype, loo_mode=loo_mode,
                           embedding_dim=embedding_dim, history_dim=history_dim,
                           id_dropout=id_dropout)
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
        if id_dropout:  # the dropped examples touch the unknown row
            touched = np.union1d(touched, [problem["user_embedding"].table.shape[0] - 1])
        np.testing.assert_array_equal(np.flatnonzero(moved), touched)  # only touched rows
        assert not got["user_embedding"].grad.any()  # left zero between batches
    if history_dim:
        moved = np.any(got["user_history"].table != problem["user_history"].table, axis=1)
        assert moved.any() and not got["user_history"].grad.any()


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


def _assert_follows_numpy_on_any_thread_count(problem, epochs=3, **kwargs):
    """The compiled epoch follows the NumPy twin's trajectory (losses, parameters, optimizer
    state, tables) and gives the same bits on 1 and 3 threads; returns the steps taken."""
    ref, ref_losses, ref_step = _run("numpy", problem, epochs=epochs, **kwargs)
    got, got_losses, got_step = _run("cython", problem, epochs=epochs, **kwargs)
    assert got_step == ref_step
    rtol, atol = (1e-9, 1e-11) if got["params"].dtype == np.float64 else (2e-3, 2e-4)
    np.testing.assert_allclose(got_losses, ref_losses, rtol=rtol)
    ref_state, got_state = _state(ref), _state(got)
    for name in ref_state:
        np.testing.assert_allclose(got_state[name], ref_state[name], rtol=rtol, atol=atol,
                                   err_msg=name)
    _assert_same_bits(_threaded(problem, 3, **kwargs), _threaded(problem, 1, **kwargs))
    return got_step


@requires_cython
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer,momentum", [("adam", 0.0), ("sgd", 0.9)])
def test_layers_in_several_strips(dtype, optimizer, momentum):
    """Wide layers whose weight gradients are cut into several strips (the first and the
    last of 520 x 30 are 272 and 248 rows, 20 x 520 is three strips of at most 8 rows): the
    NumPy twin's trajectory, and the same bits on 1 and 3 threads."""
    from anirec._kernels._epoch import strip_rows

    assert (strip_rows(20, 520), strip_rows(520, 30), strip_rows(30, 4)) == (8, 272, 30)
    problem = make_problem(np.random.default_rng(3), dtype, user_sizes=(20, 520, 30, 4),
                           item_sizes=(9, 300, 4), loo_mode=2, embedding_dim=3, n_examples=1300)
    kwargs = dict(optimizer=optimizer, momentum=momentum, batch_size=600)
    _assert_follows_numpy_on_any_thread_count(problem, epochs=2, **kwargs)


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


def _threaded(problem, threads, runs=None, **options):
    """An epoch of the compiled backend on ``threads`` threads (or in ``runs`` of
    ``(start, stop, threads)``), from a fresh copy of ``problem``; returns ``(problem, loss,
    step)``."""
    from anirec._kernels import _epoch

    p = {k: deep_copy(v) for k, v in problem.items()}
    plan = make_plan(p, threads=max(threads, 4), **options)
    order = np.random.default_rng(0).permutation(p["targets"].shape[0])
    loss, step = 0.0, 5
    for start, stop, count in runs or [(0, order.shape[0], threads)]:
        loss, step = _epoch.train_epoch(plan, order[start:stop], 0.01, step, count, loss)
    return p, loss, step


def _assert_same_bits(got, expected):
    (got, got_loss, got_step), (ref, ref_loss, ref_step) = got, expected
    assert (got_loss, got_step) == (ref_loss, ref_step)
    ref_state = _state(ref)
    for name, value in _state(got).items():
        np.testing.assert_array_equal(value, ref_state[name], err_msg=name)


@requires_cython
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer,momentum", [("adam", 0.0), ("sgd", 0.9)])
@pytest.mark.parametrize("loo_mode,embedding_dim,history_dim", [(None, 0, 0), (2, 3, 2)])
@pytest.mark.parametrize("weights", [None, (1.0, 0.3), (0.0, 1.0)])
@pytest.mark.parametrize("batch_size", [1, 600, 1000])
def test_every_thread_count_gives_the_same_bits(dtype, optimizer, momentum, loo_mode,
                                                embedding_dim, history_dim, weights,
                                                batch_size):
    """Parameters, optimizer state, tables and loss of an epoch on 1, 2, 3 and 4 threads are
    the same bits: no sum is split between threads, and the order of every sum depends on the
    batch size alone (batches of 600 and 1,000 rows are 2 and 3 chunks)."""
    problem = make_problem(np.random.default_rng(7), dtype, loo_mode=loo_mode,
                           embedding_dim=embedding_dim, history_dim=history_dim,
                           id_dropout=0.2 if embedding_dim else 0.0, n_users=40, n_items=60,
                           n_examples=1100)
    options = dict(optimizer=optimizer, momentum=momentum, batch_size=batch_size,
                   **(_objective(problem, *weights) if weights else {}))
    one = _threaded(problem, 1, **options)
    if (weights, batch_size) != ((0.0, 1.0), 1):  # ranking one row against itself: no loss
        assert not np.array_equal(one[0]["params"], problem["params"])
    for threads in (2, 3, 4):
        _assert_same_bits(_threaded(problem, threads, **options), one)


@requires_cython
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weights", [None, (1.0, 0.3)])
@pytest.mark.parametrize("embedding_dim,history_dim", [(0, 0), (3, 2)])
def test_an_epoch_in_runs_on_changing_thread_counts_is_bit_identical(dtype, weights,
                                                                     embedding_dim,
                                                                     history_dim):
    """``anirec._epoch_threads.ThreadChooser`` splits an epoch into runs of whole batches on
    different thread counts as the machine's load goes: the same bits, loss included, as one
    call."""
    problem = make_problem(np.random.default_rng(11), dtype, loo_mode=2,
                           embedding_dim=embedding_dim, history_dim=history_dim)
    options = dict(optimizer="adam", batch_size=7, **(_objective(problem, *weights)
                                                       if weights else {}))
    n = problem["targets"].shape[0]
    whole = _threaded(problem, 1, **options)
    split = _threaded(problem, 1, [(0, 14, 2), (14, 21, 1), (21, 56, 3), (56, n, 1)],
                      **options)
    assert whole[2] == 5 + -(-n // 7)
    _assert_same_bits(split, whole)


def _rounds_problem(dtype, loo_mode, embedding_dim=0, history_dim=0):
    """A batch of the rating loss in two rounds (eight chunks of 1,024 rows, then one of 808),
    then a batch of 500 rows in one chunk."""
    batch = 9000
    problem = make_problem(np.random.default_rng(8), dtype, loo_mode=loo_mode, n_users=40,
                           n_items=60, n_examples=batch + 500, embedding_dim=embedding_dim,
                           history_dim=history_dim)
    return problem, batch


@requires_cython
def test_the_layout_of_a_batch():
    from anirec._kernels._epoch import batch_layout, max_chunk, strip_rows

    assert [batch_layout(n) for n in (1, 64, 127, 255, 256, 300, 1000, 1024, 4096, 9000)] == \
        [(1, 1), (1, 64), (1, 127), (1, 255), (1, 256), (1, 300), (3, 334), (4, 256),
         (8, 512), (8, 1024)]
    for batch in (1, 200, 255, 256, 700, 1024, 3000, 9000):
        assert max_chunk(batch) == max(batch_layout(n)[1] for n in range(1, batch + 1))
    assert [strip_rows(*shape) for shape in ((100, 256), (256, 128), (128, 64), (64, 32),
                                             (5, 10_000), (300, 3))] == \
        [32, 64, 128, 64, 5, 300]


@requires_cython
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer,momentum", [("adam", 0.0), ("sgd", 0.9)])
@pytest.mark.parametrize("loo_mode,embedding_dim,history_dim", [(None, 0, 0), (2, 0, 0),
                                                                (2, 4, 3)])
def test_batches_in_rounds_follow_numpy(dtype, optimizer, momentum, loo_mode, embedding_dim,
                                        history_dim):
    """A batch run in rounds of chunks inside the compiled epoch gives the gradients and the
    trajectory of the whole-batch NumPy twin, and the same bits on 1 and 3 threads."""
    problem, batch = _rounds_problem(dtype, loo_mode, embedding_dim, history_dim)
    kwargs = dict(optimizer=optimizer, momentum=momentum, batch_size=batch)
    assert _assert_follows_numpy_on_any_thread_count(problem, **kwargs) == 6


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
    int64 indices: any other dtype is refused, never reinterpreted."""
    from anirec._kernels import _epoch

    problem = make_problem(np.random.default_rng(0), np.float64)
    plan = make_plan(problem, optimizer="adam")
    order = np.arange(57, dtype=np.int64)
    for bad in (np.uint32, np.int16, np.float64):
        with pytest.raises(ValueError, match="int32 or int64"):
            _epoch.train_epoch(plan, order.astype(bad), 0.01, 0)
    with pytest.raises(ValueError, match="C-contiguous"):
        _epoch.train_epoch(plan, np.arange(114, dtype=np.int64)[::2], 0.01, 0)


def test_id_dropout_is_a_hash_of_the_example_and_the_update():
    from anirec.blocks.embedding import dropped

    def splitmix(x):  # the definition, in Python integers
        mask = 2**64 - 1
        z = x & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    examples = np.arange(20_000)
    for step, rate in ((1, 0.25), (7, 0.1), (10**9, 0.5)):
        got = dropped(examples, step, rate)
        expected = [(splitmix(e + step * 0x9E3779B97F4A7C15) >> 11) < rate * 2**53
                    for e in examples[:200].tolist()]
        assert got[:200].tolist() == expected
        assert abs(got.mean() - rate) < 0.02
    assert not dropped(examples, 0, 0.9).any()  # step 0: not training
    assert not dropped(examples, 5, 0.0).any()
    assert (dropped(examples, 5, 0.3) != dropped(examples, 6, 0.3)).any()  # a new draw


@requires_cython
def test_the_unknown_row_learns_only_from_dropped_examples():
    """Without dropout no training example reads the unknown row of fully known ids; with it,
    the row moves, the same in both backends."""
    results = {}
    for rate in (0.0, 0.5):
        problem = make_problem(np.random.default_rng(3), np.float64, embedding_dim=3,
                               id_dropout=rate)
        embedding = problem["user_embedding"]
        problem["user_embedding"] = embedding.__class__(
            "user", np.arange(10, dtype=np.int64), np.vstack([embedding.table[:8],
                                                              embedding.table[:3]]),
            dropout=rate)  # every user its own row; row 10 unknown
        for backend in ("numpy", "cython"):
            got, _, _ = _run(backend, problem, optimizer="adam", momentum=0.0, batch_size=8)
            results[rate, backend] = got["user_embedding"].table[-1].copy()
        unknown_before = problem["user_embedding"].table[-1]
        moved = not np.array_equal(results[rate, "cython"], unknown_before)
        assert moved == (rate > 0)
        np.testing.assert_allclose(results[rate, "cython"], results[rate, "numpy"], rtol=1e-10)
