"""Shared helpers of the kernel tests: run a call under both backends, tolerances per dtype."""

import dataclasses

import numpy as np
import pytest

import anirec

HAS_CYTHON = anirec.backend.cython_available()

requires_cython = pytest.mark.skipif(not HAS_CYTHON, reason="compiled kernels not built")

#: (rtol, atol) per dtype for Cython-vs-NumPy parity of one kernel call.
TOL = {np.dtype(np.float32): (1e-5, 1e-6), np.dtype(np.float64): (1e-12, 1e-13)}

DTYPES = [np.float32, np.float64]


def both(fn, *args, **kwargs):
    """``fn(*deep copies of args)`` under NumPy then Cython; returns ``(numpy, cython)``.

    Arrays are copied for each run so in-place kernels see the same inputs.
    """
    results = []
    for name in ("numpy", "cython"):
        copied = [deep_copy(a) for a in args]
        copied_kw = {k: deep_copy(v) for k, v in kwargs.items()}
        with anirec.use_backend(name):
            results.append((fn(*copied, **copied_kw), copied, copied_kw))
    return results


def deep_copy(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if dataclasses.is_dataclass(value):  # an input block
        return dataclasses.replace(value, **{field.name: deep_copy(getattr(value, field.name))
                                             for field in dataclasses.fields(value)})
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(deep_copy(v) for v in value)
    if hasattr(value, "_fields"):  # NamedTuple such as LeaveOneOutStats
        return type(value)(*(deep_copy(v) for v in value))
    return value


def assert_close(actual, desired, dtype, scale=1.0):
    """Parity with the dtype's tolerance (``scale`` loosens it).

    The absolute part of the tolerance follows the magnitude of ``desired``, so entries that
    cancel to near zero (sums of products from two different BLAS builds) are judged against
    the scale of the array, not against themselves.
    """
    rtol, atol = TOL[np.dtype(dtype)]
    if actual is None or desired is None:
        assert actual is None and desired is None
        return
    if isinstance(actual, (tuple, list)):
        assert len(actual) == len(desired)
        for a, d in zip(actual, desired):
            assert_close(a, d, dtype, scale)
        return
    if isinstance(actual, np.ndarray):
        assert actual.dtype == desired.dtype
        assert actual.shape == desired.shape
    magnitude = float(np.max(np.abs(desired))) if np.size(desired) else 0.0
    if not np.isfinite(magnitude):
        magnitude = 0.0
    np.testing.assert_allclose(actual, desired, rtol=rtol * scale,
                               atol=max(atol, rtol * magnitude) * scale)


def make_loo(rng, dtype, *, n_users=12, n_items=15, n_genres=4, n_examples=60, mode=0):
    """Consistent leave-one-out statistics of random triplets, with zero denominators.

    Returns ``(stats, users, items, ratings)``. Some users rate a single item (``n' = 0``) and
    some genres are seen once per user, so every fallback of the formulas is exercised.
    """
    from anirec.kernels import LeaveOneOutStats

    users = rng.integers(0, n_users, n_examples)
    users[users == 0] = 1
    users[3] = 0  # user 0 has exactly one example
    items = rng.integers(0, n_items, n_examples)
    ratings = rng.integers(1, 11, n_examples).astype(np.float64)
    genres = (rng.random((n_items, n_genres)) < 0.35).astype(np.float64)
    weight = rng.uniform(0.5, 2.0, n_items).round(2)
    num = np.zeros((n_users, n_genres))
    den = np.zeros((n_users, n_genres))
    if mode == 2:
        np.add.at(num, users, weight[items, None] * genres[items])
        np.add.at(den, users, np.repeat(weight[items, None], n_genres, axis=1))
    else:
        np.add.at(num, users, ratings[:, None] * genres[items])
        np.add.at(den, users, genres[items])
    total = np.bincount(users, ratings, n_users)
    count = np.bincount(users, minlength=n_users).astype(np.float64)
    mean = rng.normal(0, 0.5, n_genres + 2)
    std = rng.uniform(0.5, 2.0, n_genres + 2)
    as_dtype = lambda a: np.ascontiguousarray(a, dtype=dtype)  # noqa: E731
    stats = LeaveOneOutStats(as_dtype(num), as_dtype(den), as_dtype(total), as_dtype(count),
                             as_dtype(genres), as_dtype(weight), mode, 6.5, as_dtype(mean),
                             as_dtype(std))
    return stats, users.astype(np.int64), items.astype(np.int64), as_dtype(ratings)


def make_item_loo(rng, dtype, items, ratings, n_items, d_item):
    """Consistent item leave-one-out statistics of the examples ``(items, ratings)``: some
    items with and some without a public score (``from_ratings`` 0 or 1), some rated once."""
    from anirec.kernels import ItemLeaveOneOutStats

    as_dtype = lambda a: np.ascontiguousarray(a, dtype=dtype)  # noqa: E731
    rating_sum = np.bincount(items, ratings.astype(np.float64), n_items)
    rating_count = np.bincount(items, minlength=n_items).astype(np.float64)
    from_ratings = (rng.random(n_items) < 0.5).astype(np.float64)
    prior_den = rng.uniform(1.0, 50.0, n_items).round(1)
    prior_num = prior_den * rng.uniform(4.0, 9.0, n_items).round(2)
    columns = rng.choice(d_item, 3, replace=False).astype(np.int64)
    return ItemLeaveOneOutStats(as_dtype(rating_sum), as_dtype(rating_count),
                                as_dtype(prior_num), as_dtype(prior_den),
                                as_dtype(from_ratings), 6.25, columns,
                                as_dtype(rng.normal(0, 0.5, 3)),
                                as_dtype(rng.uniform(0.5, 2.0, 3)))


def make_embedding(rng, dtype, n_rows, width, *, side="user", n_known=None, dropout=0.0):
    """A training embedding table: the first ``n_known`` rows (default: all but 2) own a
    table row, the others share the last (unknown) row."""
    from anirec.kernels import Embedding

    n_known = n_rows - 2 if n_known is None else n_known
    index = np.where(np.arange(n_rows) < n_known, np.arange(n_rows), n_known).astype(np.int64)
    shape = (n_known + 1, width)
    table = (rng.standard_normal(shape) * 0.5).astype(dtype)
    return Embedding(side, index, table, dropout=dropout)


def make_history(rng, dtype, users, items, n_users, n_items, width):
    """A pooled history block of the examples ``(users, items)``: each user's distinct items,
    in a shuffled order."""
    from anirec.kernels import History

    pairs = np.unique(np.stack([users, items], axis=1), axis=0)
    pairs = pairs[np.lexsort((rng.random(pairs.shape[0]), pairs[:, 0]))]
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(pairs[:, 0], minlength=n_users), out=indptr[1:])
    table = (rng.standard_normal((n_items, width)) * 0.5).astype(dtype)
    return History(indptr, pairs[:, 1].astype(np.int64), table)


def make_problem(rng, dtype, *, user_sizes=(6, 9, 5, 4), item_sizes=(5, 7, 4), n_users=10,
                 n_items=13, n_examples=57, loo_mode=None, scale=0.5, embedding_dim=0,
                 history_dim=0, id_dropout=0.0):
    """A small two-tower training problem: the keyword arguments of ``train_epoch`` minus the
    optimizer settings, with seeded data and parameters.

    With ``loo_mode`` the user rows come from leave-one-out statistics (``user_x`` is None)
    and ``user_sizes[0]`` is replaced by ``n_genres + 2``; the item rows then also get
    leave-one-out statistic columns (``item_loo``). With ``embedding_dim`` each tower also
    gets an ID embedding of that width (``user_embedding``, ``item_embedding``), its first
    width grown by it, each dropping a training example to its unknown row with probability
    ``id_dropout``; with ``history_dim`` the user tower also gets a pooled history of the
    examples (``user_history``).
    """
    from anirec.kernels import n_parameters

    user_sizes = np.array(user_sizes, dtype=np.int64)
    item_sizes = np.array(item_sizes, dtype=np.int64)
    loo = item_loo = None
    ratings = rng.integers(1, 11, n_examples).astype(dtype)
    if loo_mode is None:
        users = rng.integers(0, n_users, n_examples).astype(np.int64)
        items = rng.integers(0, n_items, n_examples).astype(np.int64)
        user_x = rng.standard_normal((n_users, user_sizes[0])).astype(dtype)
    else:
        loo, users, items, ratings = make_loo(rng, dtype, n_users=n_users, n_items=n_items,
                                              n_genres=int(user_sizes[0]) - 2,
                                              n_examples=n_examples, mode=loo_mode)
        item_loo = make_item_loo(rng, dtype, items, ratings, n_items, int(item_sizes[0]))
        user_x = None
    item_x = rng.standard_normal((n_items, item_sizes[0])).astype(dtype)
    targets = rng.uniform(-1, 1, n_examples).astype(dtype)
    user_embedding = item_embedding = user_history = None
    user_sizes, item_sizes = user_sizes.copy(), item_sizes.copy()
    if embedding_dim:
        user_embedding = make_embedding(rng, dtype, n_users, embedding_dim, dropout=id_dropout)
        item_embedding = make_embedding(rng, dtype, n_items, embedding_dim, side="item",
                                        dropout=id_dropout)
        user_sizes[0] += embedding_dim
        item_sizes[0] += embedding_dim
    if history_dim:
        user_history = make_history(rng, dtype, users, items, n_users, n_items, history_dim)
        user_sizes[0] += history_dim
    n_params = n_parameters(user_sizes, item_sizes)
    params = (rng.standard_normal(n_params) * scale).astype(dtype)
    return dict(users=users, items=items, targets=targets, user_x=user_x, item_x=item_x,
                user_sizes=user_sizes, item_sizes=item_sizes, params=params,
                grads=np.zeros(n_params, dtype), state1=np.zeros(n_params, dtype),
                state2=np.zeros(n_params, dtype), loo=loo, item_loo=item_loo,
                ratings=ratings.astype(dtype), user_embedding=user_embedding,
                item_embedding=item_embedding, user_history=user_history, rank_weights=None,
                item_logq=None)


def batch_inputs(problem, batch, tables=None):
    """Each tower's input rows of ``batch`` through the public kernels: features
    (leave-one-out where the problem has statistics), then the rows of the embedding
    ``tables`` (user, item, then the history's; default: the problem's own), then the pooled
    history (written out here from its definition, in float64)."""
    from anirec import kernels as K

    users, items = problem["users"][batch], problem["items"][batch]
    ratings = problem["ratings"][batch]
    if problem["loo"] is None:
        xu = K.gather_rows(problem["user_x"], users)
    else:
        xu = K.user_rows_loo(problem["loo"], users, items, ratings)
    if problem["item_loo"] is None:
        xi = K.gather_rows(problem["item_x"], items)
    else:
        xi = K.item_rows_loo(problem["item_loo"], problem["item_x"], items, ratings)
    out = []
    for t, (x, rows, side) in enumerate(((xu, users, "user"), (xi, items, "item"))):
        parts = [x]
        embedding = problem[f"{side}_embedding"]
        if embedding is not None:
            table = embedding.table if tables is None else tables[t]
            parts.append(table[embedding.index[rows]])
        history = problem.get("user_history")
        if side == "user" and history is not None:
            if tables is not None and len(tables) > 2:
                history = dataclasses.replace(history, table=tables[2])
            parts.append(pooled_reference(history, users, items).astype(x.dtype))
        out.append(np.ascontiguousarray(np.hstack(parts)))
    return out


def pooled_reference(history, users, items):
    """The pooled history by its definition, a plain loop in float64: the mean of the table
    rows of each user's history but the example's own item (zeros for none)."""
    out = np.zeros((len(users), history.table.shape[1]))
    for k, (u, i) in enumerate(zip(users, items)):
        rows = [j for j in history.indices[history.indptr[u]:history.indptr[u + 1]] if j != i]
        if rows:
            out[k] = np.mean(history.table[rows].astype(np.float64), axis=0)
    return out


EXAMPLE_KEYS = ("rank_weights", "item_logq")


def epoch_inputs(problem, **options):
    """``(examples, user, item, params, config)`` of :class:`anirec.kernels.EpochPlan` from
    a :func:`make_problem` dict; ``options`` are :class:`EpochConfig` fields, or
    ``rank_weights`` / ``item_logq`` overriding the problem's."""
    from anirec import kernels as K

    p = dict(problem)
    p.update({key: options.pop(key) for key in EXAMPLE_KEYS if key in options})
    examples = K.Examples(p["users"], p["items"], p["targets"], p["ratings"],
                          p["rank_weights"], p["item_logq"])
    user_blocks = [K.Features("user", p["user_x"], user_stats=p["loo"]),
                   p["user_embedding"], p.get("user_history")]
    item_blocks = [K.Features("item", p["item_x"], item_stats=p["item_loo"]),
                   p["item_embedding"]]
    user = K.Tower(p["user_sizes"], tuple(b for b in user_blocks if b is not None))
    item = K.Tower(p["item_sizes"], tuple(b for b in item_blocks if b is not None))
    params = K.Params(p["params"], p["grads"], p["state1"], p["state2"])
    return examples, user, item, params, K.EpochConfig(**options)


def make_plan(problem, *, threads=1, **options):
    """The :class:`anirec.kernels.EpochPlan` of ``problem`` (its arrays used in place)."""
    from anirec import kernels as K

    return K.EpochPlan(*epoch_inputs(problem, **options), threads=threads)


def run_epoch(problem, order, *, lr, step=0, threads=1, **options):
    """One epoch of ``problem`` (updated in place)."""
    return make_plan(problem, threads=threads, **options).run(order, lr=lr, step=step)
