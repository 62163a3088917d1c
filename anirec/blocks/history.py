"""The pooled history of a user: the mean of learned item vectors over the anime they rated.

As the implicit part of SVD++ (Koren, KDD 2008) and the watch history of YouTube's deep
network (Covington et al., RecSys 2016), the user tower also reads
``y_u = mean_{j in H(u)} q_j`` over the anime ``H(u)`` the user rated in training, with ``q`` a
learned table of one row per item row. A training example ``(u, i)`` leaves its own anime out
(``H(u) \\ {i}``): with it the positive of every ranking example would be in its own input. A
user with no other anime reads zeros. The table rows are regularised like the ID embeddings
(``embedding_decay``, applied at each update of a row) and updated lazily.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from .embedding import lazy_step


@dataclass(eq=False)
class History:
    """The pooled history block of the user tower.

    Parameters
    ----------
    indptr : (n_users + 1,) int64
    indices : (n_pairs,) int64
        ``indices[indptr[u]:indptr[u + 1]]`` are the item rows user row ``u`` rated in
        training (each once).
    table : (n_items, width) array
        The learned item vectors ``q``, updated in place by training.
    grad, m, v : arrays like ``table``, optional
        Gradient workspace and optimizer state (zeros by default).
    """

    kind: ClassVar[int] = 2
    trained: ClassVar[bool] = True
    side: ClassVar[str] = "user"

    indptr: np.ndarray
    indices: np.ndarray
    table: np.ndarray
    grad: np.ndarray = field(default=None)
    m: np.ndarray = field(default=None)
    v: np.ndarray = field(default=None)

    def __post_init__(self):
        for name in ("grad", "m", "v"):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros_like(self.table))

    @property
    def width(self) -> int:
        return int(self.table.shape[1])

    @property
    def n_rows(self) -> int:
        return int(self.indptr.shape[0]) - 1

    def pooling(self, users, items=None) -> tuple[sp.csr_matrix, np.ndarray]:
        """``(A, n)``: ``A[k, j] = 1`` for the anime ``j`` of user ``users[k]``'s history but
        ``items[k]`` (none left out without ``items``), and ``n[k]`` their number."""
        users = np.asarray(users, dtype=np.int64)
        starts, stops = self.indptr[users], self.indptr[users + 1]
        lengths = stops - starts
        rows = np.repeat(np.arange(users.shape[0]), lengths)
        cols = self.indices[np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
                            + np.arange(int(lengths.sum()))]
        if items is not None:
            keep = cols != np.repeat(np.asarray(items, dtype=np.int64), lengths)
            rows, cols = rows[keep], cols[keep]
        counts = np.bincount(rows, minlength=users.shape[0])
        matrix = sp.csr_matrix((np.ones(rows.shape[0], dtype=self.table.dtype), (rows, cols)),
                               shape=(users.shape[0], self.table.shape[0]))
        return matrix, counts

    def pooled(self, users, items=None) -> np.ndarray:
        """The mean item vector of each user's history (``items`` left out), zeros for none."""
        matrix, counts = self.pooling(users, items)
        sums = np.asarray(matrix @ self.table, dtype=self.table.dtype)
        return sums / np.maximum(counts, 1).astype(self.table.dtype)[:, None]

    def gather(self, examples, index, step: int = 0) -> np.ndarray:
        """NumPy twin: the pooled history of each training example, its own anime left out."""
        return self.pooled(examples.users[index], examples.items[index])

    def step(self, examples, index, grad_rows, config, lr: float, step: int) -> None:
        """NumPy twin: each example's input gradient, divided by its history's length, added
        into the rows of its history, then one lazy step on every row touched."""
        matrix, counts = self.pooling(examples.users[index], examples.items[index])
        scaled = grad_rows / np.maximum(counts, 1).astype(grad_rows.dtype)[:, None]
        self.grad += np.asarray(matrix.T @ scaled, dtype=self.grad.dtype)
        lazy_step(self.table, self.grad, self.m, self.v, np.unique(matrix.indices), config,
                  lr, step)
