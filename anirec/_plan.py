"""The epoch plan: a checked training problem whose epochs each run in one backend call.

:class:`EpochPlan` holds everything an epoch reads and updates (the examples, both towers' layer
widths and input blocks, the dense parameters with their gradient and optimizer state, the
options) and checks it all once, when a ``fit`` builds it. The compiled backend then keeps its
own layout of the plan (pointers, workspaces) for every epoch of the fit; the NumPy twin reads
the plan as it is. An epoch takes the plan and its own arguments: the visiting order, the
learning rate, the steps so far and the thread count.

Training on T threads gives the same bits for every T: no sum is split between threads. The
rows of a batch are cut into chunks that share out the row-wise work (forward, loss, backward
through the rows); each layer's weight gradient is cut into strips, each summed over the whole
batch by one thread, chunk by chunk in order, which then steps it; a table row's gradient is
added in row order by the thread that owns the row. Which thread runs which chunk or strip
changes only the speed.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from anirec import backend
from anirec import kernels as K
from anirec._epoch_threads import ThreadChooser
from anirec.blocks import KINDS, Embedding, Features, History
from anirec.blocks.features import ItemLeaveOneOutStats, LeaveOneOutStats

__all__ = ["Examples", "Params", "EpochConfig", "Tower", "EpochPlan", "train_epoch"]


class Examples(NamedTuple):
    """The training examples: user and item rows (int32 or int64, each its own), scaled
    targets and raw ratings (for the leave-one-out statistics), and for the ranking loss each
    example's weight as a positive and each item row's log sampling probability."""

    users: np.ndarray
    items: np.ndarray
    targets: np.ndarray
    ratings: np.ndarray | None = None
    rank_weights: np.ndarray | None = None
    item_logq: np.ndarray | None = None


class Params(NamedTuple):
    """The dense layers of both towers in flat buffers (user tower first; each layer ``W``
    row-major then ``b``), a same-sized gradient workspace and the optimizer state (Adam's
    ``m`` and ``v``; SGD's velocity in ``state1``)."""

    params: np.ndarray
    grads: np.ndarray
    state1: np.ndarray
    state2: np.ndarray


class EpochConfig(NamedTuple):
    """How an epoch trains. The loss of a batch is ``rating_weight * MSE(targets) +
    ranking_weight * L_rank`` (:func:`anirec.kernels.inbatch_softmax` with ``temperature``);
    ``weight_decay`` is the L2 penalty of the dense layers, ``embedding_decay`` that of the
    blocks' table rows (applied when a row is touched)."""

    optimizer: str = "adam"
    batch_size: int = 256
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    momentum: float = 0.0
    weight_decay: float = 0.0
    embedding_decay: float = 0.0
    rating_weight: float = 1.0
    ranking_weight: float = 0.0
    temperature: float = 0.2


class Tower(NamedTuple):
    """One tower: its layer widths ``[in, h1, ..., out]`` and its input blocks, whose widths add
    up to ``in``; blocks with parameters come after those without."""

    sizes: np.ndarray
    blocks: tuple

    def offsets(self) -> list[int]:
        """The first input column of each block."""
        return [int(v) for v in np.cumsum([0] + [b.width for b in self.blocks])[:-1]]


def check_config(config: EpochConfig) -> EpochConfig:
    """The configuration with every number checked (and converted)."""
    if not isinstance(config, EpochConfig):
        raise TypeError(f"config must be an EpochConfig, got {type(config).__name__}")
    if config.optimizer not in K.OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(K.OPTIMIZERS)}, got "
                         f"{config.optimizer!r}")
    checked = config._replace(
        batch_size=K._positive_int("batch_size", config.batch_size, K.GEMM_MAX_DIM),
        beta1=K._finite_number("beta1", config.beta1, 0.0, 1.0 - 1e-12),
        beta2=K._finite_number("beta2", config.beta2, 0.0, 1.0 - 1e-12),
        eps=K._positive_number("eps", config.eps),
        momentum=K._finite_number("momentum", config.momentum, 0.0, 1.0),
        weight_decay=K._finite_number("weight_decay", config.weight_decay, 0.0),
        embedding_decay=K._finite_number("embedding_decay", config.embedding_decay, 0.0),
        rating_weight=K._finite_number("rating_weight", config.rating_weight, 0.0),
        ranking_weight=K._finite_number("ranking_weight", config.ranking_weight, 0.0),
        temperature=K._temperature(config.temperature))
    if checked.rating_weight == 0 and checked.ranking_weight == 0:
        raise ValueError("rating_weight and ranking_weight cannot both be 0")
    return checked


# ---------------------------------------------------------------------------------------------
# Each block kind, checked


def _check_table(name: str, block, dtype, n_table_rows=None) -> None:
    n_table, width = K._check(f"{name}.table", block.table, dtype, (n_table_rows, None)).shape
    if n_table < 1 or width < 1:
        raise ValueError(f"{name}.table must have at least one row and column, got "
                         f"{block.table.shape}")
    for part in ("grad", "m", "v"):
        K._check_out(f"{name}.{part}", getattr(block, part), dtype, (n_table, width))
    K._finite(f"{name}.table", block.table)


def _check_features(name: str, block: Features, dtype, n_items: int | None) -> int:
    if block.user_stats is not None:
        if block.side != "user" or block.item_stats is not None:
            raise ValueError(f"{name}: user statistics derive user rows, alone")
        if not isinstance(block.user_stats, LeaveOneOutStats):
            raise TypeError(f"{name}.user_stats must be a LeaveOneOutStats")
        n_rows = K._check_loo(block.user_stats, dtype, n_items)[0]
        return n_rows
    n_rows, width = K._check(f"{name}.x", block.x, dtype, (None, None)).shape
    K._finite(f"{name}.x", block.x)
    if block.item_stats is not None:
        if block.side != "item" or not isinstance(block.item_stats, ItemLeaveOneOutStats):
            raise TypeError(f"{name}.item_stats must be an ItemLeaveOneOutStats of the item side")
        K._check_item_loo(block.item_stats, dtype, n_rows, width)
    return n_rows


def _check_block(name: str, block, dtype, side: str, n_items: int | None) -> int:
    """Check one block of the ``side`` tower; returns the number of rows of its side it
    knows."""
    if type(block) not in KINDS.values():
        raise TypeError(f"{name} must be one of {[k.__name__ for k in KINDS.values()]}, got "
                        f"{type(block).__name__}")
    if block.side != side:
        raise ValueError(f"{name} reads the {block.side!r} side of the examples, not the "
                         f"{side!r} side")
    if isinstance(block, Features):
        return _check_features(name, block, dtype, n_items)
    if isinstance(block, Embedding):
        _check_table(name, block, dtype)
        K._check_index(f"{name}.index", block.index, block.table.shape[0])
        K._finite_number(f"{name}.dropout", block.dropout, 0.0, 1.0 - 1e-12)
        return block.index.shape[0]
    indptr = K._check(f"{name}.indptr", block.indptr, K.INDEX, (None,))
    if indptr.shape[0] < 1 or indptr[0] != 0 or np.any(np.diff(indptr) < 0):
        raise ValueError(f"{name}.indptr must start at 0 and never decrease")
    _check_table(name, block, dtype, n_items)
    K._check_index(f"{name}.indices", block.indices, block.table.shape[0],
                   (int(indptr[-1]),))
    return indptr.shape[0] - 1


def _check_tower(name: str, tower: Tower, dtype, n_items: int | None = None) -> int:
    """Check one tower; returns the number of rows of its side."""
    if not isinstance(tower, Tower):
        raise TypeError(f"{name} must be a Tower, got {type(tower).__name__}")
    sizes = K._check(f"{name}.sizes", tower.sizes, K.INDEX, (None,))
    if sizes.shape[0] < 2 or np.any(sizes < 1):
        raise ValueError(f"{name}.sizes must hold at least two positive widths, got {sizes}")
    if not tower.blocks:
        raise ValueError(f"{name} has no input block")
    rows = {_check_block(f"{name}.blocks[{k}]", block, dtype, name, n_items)
            for k, block in enumerate(tower.blocks)}
    if len(rows) > 1:
        raise ValueError(f"{name}: the blocks know different numbers of rows, {sorted(rows)}")
    trained = [block.trained for block in tower.blocks]
    if trained != sorted(trained):
        raise ValueError(f"{name}: blocks with parameters must come after those without")
    width = sum(block.width for block in tower.blocks)
    if width != sizes[0]:
        raise ValueError(f"{name}: its blocks make {width} inputs, but the tower takes "
                         f"{sizes[0]}")
    return rows.pop()


class EpochPlan:
    """A checked training problem whose epochs each run in one call of the active backend.

    Everything is checked once, here (shapes, dtypes, index ranges, finiteness, the
    configuration); :meth:`run` then checks only its own arguments. The arrays are used in
    place: :meth:`run` updates the parameters and the blocks' tables with their optimizer
    state.

    For each mini-batch of the visiting order an epoch gathers each tower's input rows from
    its blocks, runs both towers (ReLU hidden layers, linear last layer), L2-normalises, takes
    the row-wise dot product and the loss of :class:`EpochConfig`, backpropagates (both loss
    gradients combined at the normalised outputs) down to the blocks' tables, and takes one
    optimizer step on the dense layers and one on each table row the batch touched.

    Parameters
    ----------
    examples : Examples
    user, item : Tower
        Both end in the same width. A block with leave-one-out statistics needs
        ``examples.ratings``.
    params : Params
    config : EpochConfig
    threads : int
        The most threads an epoch may run on; they give the same bits as one. With the
        compiled backend and more than one thread, :meth:`run` trains in runs of whole batches
        on that many threads or one, whichever :class:`~anirec._epoch_threads.ThreadChooser`
        measures faster as the machine's load goes.
    """

    def __init__(self, examples: Examples, user: Tower, item: Tower, params: Params,
                 config: EpochConfig, threads: int = 1):
        self.config = check_config(config)
        self.threads = K._positive_int("threads", threads, K.GEMM_MAX_DIM)
        if not isinstance(params, Params):
            raise TypeError(f"params must be a Params, got {type(params).__name__}")
        if not isinstance(examples, Examples):
            raise TypeError(f"examples must be an Examples, got {type(examples).__name__}")
        dtype = K._float_dtype("params.params", params.params)
        n_items = _check_tower("item", item, dtype)
        n_users = _check_tower("user", user, dtype, n_items)
        if user.sizes[-1] != item.sizes[-1]:
            raise ValueError("both towers must end in the same width, got "
                             f"{user.sizes[-1]} and {item.sizes[-1]}")
        n_params = K.n_parameters(user.sizes, item.sizes)
        for name in Params._fields:
            K._check_out(f"params.{name}", getattr(params, name), dtype, (n_params,))
        K._finite("params.params", params.params)
        n = K._check("examples.targets", examples.targets, dtype, (None,)).shape[0]
        K._finite("examples.targets", examples.targets)
        K._check_index("examples.users", examples.users, n_users, (n,), K.ROW_INDEX)
        K._check_index("examples.items", examples.items, n_items, (n,), K.ROW_INDEX)
        blocks = [*user.blocks, *item.blocks]
        if any(isinstance(b, Features) and (b.user_stats or b.item_stats) for b in blocks):
            if examples.ratings is None:
                raise ValueError("examples.ratings are required with leave-one-out inputs")
            K._check("examples.ratings", examples.ratings, dtype, (n,))
            K._finite("examples.ratings", examples.ratings)
        if self.config.ranking_weight > 0:
            if examples.rank_weights is None or examples.item_logq is None:
                raise ValueError("examples.rank_weights and examples.item_logq are required "
                                 "when ranking_weight > 0")
            K._check_weights("examples.rank_weights", examples.rank_weights, dtype, n)
            if K._check_logq("examples.item_logq", examples.item_logq, dtype) != n_items:
                raise ValueError(f"examples.item_logq must have shape ({n_items},), got "
                                 f"{examples.item_logq.shape}")
        else:
            examples = examples._replace(rank_weights=None, item_logq=None)
        # Everything an epoch writes must be its own memory, apart from what it only reads.
        outputs = {f"params.{name}": value for name, value in params._asdict().items()}
        inputs = {f"examples.{name}": value for name, value in examples._asdict().items()}
        for side, tower in (("user", user), ("item", item)):
            for k, block in enumerate(tower.blocks):
                for part in ("table", "grad", "m", "v"):
                    if hasattr(block, part):
                        outputs[f"{side}.blocks[{k}].{part}"] = getattr(block, part)
                for part in ("x", "index", "indptr", "indices"):
                    if getattr(block, part, None) is not None:
                        inputs[f"{side}.blocks[{k}].{part}"] = getattr(block, part)
        K._no_alias(outputs, inputs)
        self.examples, self.user, self.item, self.params = examples, user, item, params
        self.n_examples = n
        self.dtype = dtype
        self._optimizer = K.OPTIMIZERS[self.config.optimizer]
        self._threads: ThreadChooser | None = None
        self._compiled = None  # the compiled backend's layout of this plan, built once

    @property
    def backend_config(self) -> EpochConfig:
        """The configuration as the backends take it: the optimizer as its code."""
        return self.config._replace(optimizer=self._optimizer)

    def inputs(self, side: str, index) -> np.ndarray:
        """The input rows of the ``"user"`` or ``"item"`` tower that an epoch gathers for the
        examples ``index`` (each leaving out its own rating and anime), under the active
        backend: what the epoch's first layer reads (without ID dropout, which depends on the
        update)."""
        if side not in ("user", "item"):
            raise ValueError(f"side must be 'user' or 'item', got {side!r}")
        index = K._check_index("index", np.asarray(index, dtype=np.int64), self.n_examples)
        return backend.implementation().gather_inputs(self, side, index)

    def run(self, order, *, lr: float, step: int = 0) -> tuple[float, int]:
        """One epoch visiting the examples in ``order`` (the caller's shuffle).

        Parameters
        ----------
        order : (n,) int32 or int64
            Example indices in the order to visit them.
        lr : float
            The learning rate of this epoch.
        step : int
            Updates made before this epoch (Adam's bias correction counts on from it).

        Returns
        -------
        loss_sum : float
            Sum over mini-batches of the batch size times the batch loss seen before each
            update (for the plain rating loss: the sum of the squared errors).
        step : int
            Updates made after this epoch.
        """
        K._check_index("order", order, self.n_examples, dtypes=K.ROW_INDEX)
        if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)) \
                or not 0 <= step <= K.MAX_COUNT:
            raise ValueError(f"step must be a non-negative integer of at most {K.MAX_COUNT}, "
                             f"got {step!r}")
        impl = backend.implementation()
        lr = K._finite_number("lr", lr, 0.0)

        def run_batches(start, stop, threads, loss, step):
            return impl.train_epoch(self, order[start:stop], lr, step, threads, loss)

        threads = min(self.threads, impl.epoch_threads())
        if threads < 2:
            loss_sum, step = run_batches(0, order.shape[0], 1, 0.0, int(step))
        else:
            if self._threads is None or self._threads.counts[0] != threads:
                self._threads = ThreadChooser(threads)
            loss_sum, step = self._threads.run(order.shape[0], self.config.batch_size,
                                               run_batches, int(step))
        return float(loss_sum), int(step)


def train_epoch(order, plan: EpochPlan, *, lr: float, step: int = 0) -> tuple[float, int]:
    """One epoch of ``plan`` (:meth:`EpochPlan.run`)."""
    return plan.run(order, lr=lr, step=step)
