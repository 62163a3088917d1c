"""Dense feature rows, their statistic columns left out of each training example.

The user tower's rows are derived entirely from per-user sufficient statistics
(:class:`LeaveOneOutStats`); the item tower's are the item rows with three statistic columns
rewritten from per-item statistics (:class:`ItemLeaveOneOutStats`). Either way a training
example's row leaves its own rating out; the formulas live in :mod:`anirec.loo`, and the
compiled twin (``anirec._kernels._features``) is tested against them. Without statistics the
rows are gathered as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np

from anirec import loo


class LeaveOneOutStats(NamedTuple):
    """Per-user sufficient statistics from which leave-one-out user feature rows are derived.

    The raw row of user ``u`` leaving out its training example (item ``i``, rating ``r``) is
    :func:`anirec.loo.user_rows` (``mode`` a code of :data:`anirec.loo.USER_MODES`,
    ``item_genres`` the genre one-hot, ``item_weight`` the Bayesian ratings), then z-scored
    with ``mean`` and ``std``.
    """

    num: np.ndarray
    den: np.ndarray
    total: np.ndarray
    count: np.ndarray
    item_genres: np.ndarray
    item_weight: np.ndarray
    mode: int
    global_mean: float
    mean: np.ndarray
    std: np.ndarray


class ItemLeaveOneOutStats(NamedTuple):
    """Per-item sufficient statistics from which leave-one-out item columns are derived.

    Item rows are gathered from the item features, then the three columns ``columns`` are
    replaced by :func:`anirec.loo.item_rows` of the item leaving out the example's rating
    (the Bayesian average, the mean rating and ``log1p`` of the count of the training
    ratings), z-scored with ``mean`` and ``std`` (3 values each).
    """

    rating_sum: np.ndarray
    rating_count: np.ndarray
    prior_num: np.ndarray
    prior_den: np.ndarray
    from_ratings: np.ndarray
    global_mean: float
    columns: np.ndarray
    mean: np.ndarray
    std: np.ndarray


@dataclass(eq=False)
class Features:
    """Dense feature rows of one side of the examples.

    Parameters
    ----------
    side : {"user", "item"}
        Whose row of an example the block reads.
    x : (n_rows, width) array or None
        The feature rows (``None`` when ``user_stats`` derives them).
    user_stats : LeaveOneOutStats, optional
        Derive every column of a user row from these, leaving the example out.
    item_stats : ItemLeaveOneOutStats, optional
        Rewrite three columns of ``x[item]`` from these, leaving the example's rating out.
    """

    kind: ClassVar[int] = 0
    trained: ClassVar[bool] = False

    side: str
    x: np.ndarray | None = None
    user_stats: LeaveOneOutStats | None = None
    item_stats: ItemLeaveOneOutStats | None = None

    @property
    def width(self) -> int:
        if self.user_stats is not None:
            return int(self.user_stats.num.shape[1]) + 2
        return int(self.x.shape[1])

    @property
    def n_rows(self) -> int:
        if self.user_stats is not None:
            return int(self.user_stats.num.shape[0])
        return int(self.x.shape[0])

    def gather(self, examples, index, step: int = 0) -> np.ndarray:
        """NumPy twin of the compiled gather: the rows of the examples ``index`` (each leaving
        out its own rating where the block has statistics)."""
        users, items = examples.users[index], examples.items[index]
        ratings = None if examples.ratings is None else examples.ratings[index]
        if self.user_stats is not None:
            s = self.user_stats
            rows = loo.user_rows(s.num, s.den, s.total, s.count, s.item_genres, s.item_weight,
                                 s.mode, s.global_mean, users, items, ratings)
            rows = rows.astype(s.num.dtype)  # scaled in the data's dtype, as compiled
            rows -= s.mean
            rows /= s.std
            return rows
        rows = np.take(self.x, users if self.side == "user" else items, axis=0)
        if self.item_stats is not None:
            s = self.item_stats
            raw = loo.item_rows(s.rating_sum, s.rating_count, s.prior_num, s.prior_den,
                                s.from_ratings, s.global_mean, items, ratings)
            rows[:, s.columns] = (raw.astype(rows.dtype) - s.mean) / s.std
        return rows
