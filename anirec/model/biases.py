"""User and item rating biases ``r ~ mu + b_user + b_item``, regularised, in closed form.

The two-tower model predicts ratings as these biases plus its scaled cosine (the towers then
learn what the biases cannot: the user's taste for this anime), and the bias baseline is the
same fit alone.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Biases(NamedTuple):
    """``mean``, ``user`` (n_users,) and ``item`` (n_items,) of ``mu + b_user + b_item``."""

    mean: float
    user: np.ndarray
    item: np.ndarray

    def predict(self, users=None, items=None) -> np.ndarray | float:
        """``mu + b_user + b_item``; ``None`` for a side stands for an unknown id (bias 0)."""
        base = self.mean
        if users is not None:
            base = base + self.user[np.asarray(users)]
        if items is not None:
            base = base + self.item[np.asarray(items)]
        return base


def fit_biases(users, items, ratings, n_users: int, n_items: int, *, reg: float = 5.0,
               iterations: int = 10) -> Biases:
    """Fit ``r = mu + b_user + b_item`` by alternating least squares.

    Each half-step solves its biases exactly given the others, with the L2 penalty ``reg``:
    ``b_u = sum_i (r - mu - b_i) / (n_u + reg)`` and ``b_i = sum_u (r - mu - b_u) / (n_i + reg)``
    (an id without ratings keeps 0).
    """
    if not reg > 0:
        raise ValueError(f"reg must be positive, got {reg!r}")
    ratings = np.asarray(ratings, dtype=np.float64)
    mean = float(ratings.mean())
    user_count = np.bincount(users, minlength=n_users) + reg
    item_count = np.bincount(items, minlength=n_items) + reg
    user_bias, item_bias = np.zeros(n_users), np.zeros(n_items)
    residual = ratings - mean
    for _ in range(iterations):
        user_bias = np.bincount(users, residual - item_bias[items], n_users) / user_count
        item_bias = np.bincount(items, residual - user_bias[users], n_items) / item_count
    return Biases(mean, user_bias, item_bias)


def leave_one_out_base(biases: Biases, users, items, ratings, *, reg: float = 5.0) -> np.ndarray:
    """``mu + b_user + b_item`` of each training example with its own rating left out.

    Each side's bias is solved again without the example given the other side's full bias
    (one exact half-step): ``b_u' = (S_u - (r - mu - b_i)) / (n_u - 1 + reg)`` with
    ``S_u = sum over u's ratings of (r - mu - b_i)``, and the same for the item. So, like every
    input of a training example, the offset its target is measured from never holds the target.
    """
    users = np.asarray(users)
    items = np.asarray(items)
    ratings = np.asarray(ratings, dtype=np.float64)
    n_users, n_items = biases.user.shape[0], biases.item.shape[0]
    from_user = ratings - biases.mean - biases.item[items]
    from_item = ratings - biases.mean - biases.user[users]
    user_sum = np.bincount(users, from_user, n_users)
    item_sum = np.bincount(items, from_item, n_items)
    user_count = np.bincount(users, minlength=n_users).astype(np.float64)
    item_count = np.bincount(items, minlength=n_items).astype(np.float64)
    user_bias = (user_sum[users] - from_user) / (user_count[users] - 1.0 + reg)
    item_bias = (item_sum[items] - from_item) / (item_count[items] - 1.0 + reg)
    return biases.mean + user_bias + item_bias
