"""A learned ID embedding: one table row per user (or item) row, rare and unknown ids sharing
the last one.

The row ``table[index[r]]`` of feature row ``r`` fills the block's columns. Training updates
only the table rows a batch touched, each once per batch (lazy Adam or SGD, as PyTorch's
``SparseAdam``): a row's optimizer state moves only when the row is touched.

With ``dropout``, each training example reads the unknown row instead of its own with that
probability (as DropoutNet drops the preference input, Volkovs et al., NeurIPS 2017), so the
unknown row learns what an id known by its features alone looks like: a person folded in, a
new anime. Which examples drop is a hash of the example and the update number
(:func:`dropped`), the same in both backends and on any number of threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from anirec._kernels import _numpy

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def dropped(examples, step: int, rate: float) -> np.ndarray:
    """Whether each of ``examples`` (indices) reads the unknown row at update ``step``: the
    splitmix64 hash of ``example + step * golden`` below ``rate`` as a fraction of 2**53
    (none at step 0, which is not training)."""
    if rate <= 0 or step <= 0:
        return np.zeros(np.shape(examples), dtype=bool)
    with np.errstate(over="ignore"):
        z = np.asarray(examples).astype(np.uint64) + np.uint64(step) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) < rate * 2.0**53


def lazy_step(table, grad, m, v, rows, config, lr: float, step: int) -> None:
    """One optimizer step on each of the table ``rows`` (distinct), whose gradients are then
    zeroed: the NumPy twin of the compiled blocks' step."""
    param, g, m_rows, v_rows = table[rows], grad[rows], m[rows], v[rows]
    if config.optimizer == _numpy.OPTIMIZERS["adam"]:
        _numpy.adam_step(param, g, m_rows, v_rows, lr, config.beta1, config.beta2,
                         config.eps, config.embedding_decay, step)
    else:
        _numpy.sgd_step(param, g, m_rows if config.momentum else None, lr, config.momentum,
                        config.embedding_decay)
    table[rows], m[rows], v[rows] = param, m_rows, v_rows
    grad[rows] = 0


@dataclass(eq=False)
class Embedding:
    """An ID embedding table of one side of the examples.

    Parameters
    ----------
    side : {"user", "item"}
    index : (n_rows,) int64
        Table row of every feature row.
    table : (n_table, width) array
        Updated in place by training.
    grad, m, v : arrays like ``table``, optional
        The gradient workspace (zero between batches) and the optimizer state (Adam's moments;
        SGD's velocity in ``m``); zeros by default.
    dropout : float
        The probability that a training example reads the unknown (last) row instead of its
        own (0: never).
    """

    kind: ClassVar[int] = 1
    trained: ClassVar[bool] = True

    side: str
    index: np.ndarray
    table: np.ndarray
    grad: np.ndarray = field(default=None)
    m: np.ndarray = field(default=None)
    v: np.ndarray = field(default=None)
    dropout: float = 0.0

    def __post_init__(self):
        for name in ("grad", "m", "v"):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros_like(self.table))

    @property
    def width(self) -> int:
        return int(self.table.shape[1])

    @property
    def n_rows(self) -> int:
        return int(self.index.shape[0])

    def _table_rows(self, examples, index, step: int) -> np.ndarray:
        keys = examples.users[index] if self.side == "user" else examples.items[index]
        rows = self.index[keys]
        return np.where(dropped(index, step, self.dropout), self.table.shape[0] - 1, rows)

    def gather(self, examples, index, step: int = 0) -> np.ndarray:
        """NumPy twin: the table rows of the examples ``index`` at update ``step`` (0: not
        training, no dropout)."""
        return self.table[self._table_rows(examples, index, step)]

    def step(self, examples, index, grad_rows, config, lr: float, step: int) -> None:
        """NumPy twin: add each example's input gradient ``grad_rows`` into the table row it
        read at update ``step`` (in example order), then one lazy step on every row touched."""
        rows = self._table_rows(examples, index, step)
        np.add.at(self.grad, rows, grad_rows)
        lazy_step(self.table, self.grad, self.m, self.v, np.unique(rows), config, lr, step)
