"""User and item rating biases ``r ~ mu + b_user + b_item``, regularised, in closed form.

The two-tower model predicts ratings as these biases plus its scaled cosine (the towers then
learn what the biases cannot: the user's taste for this anime), and the bias baseline is the
same fit alone.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import numpy as np

from anirec.model import _chunked


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
    (an id without ratings keeps 0). The arithmetic is float64 whatever the dtypes of the
    arguments (int32 or int64 rows, float32 or float64 ratings give the same biases), a chunk
    of examples at a time (:mod:`anirec.model._chunked`): no float64 copy of the ratings.
    """
    if not reg > 0:
        raise ValueError(f"reg must be positive, got {reg!r}")
    users, items, ratings = np.asarray(users), np.asarray(items), np.asarray(ratings)
    mean = float(np.mean(ratings, dtype=np.float64))
    user_count = _chunked.counts(users, n_users) + reg
    item_count = _chunked.counts(items, n_items) + reg
    user_bias, item_bias = np.zeros(n_users), np.zeros(n_items)

    def residual(start, stop):
        return np.asarray(ratings[start:stop], dtype=np.float64) - mean

    for _ in range(iterations):
        user_bias = _chunked.sums(users, n_users, lambda start, stop: residual(start, stop)
                                  - item_bias[items[start:stop]]) / user_count
        item_bias = _chunked.sums(items, n_items, lambda start, stop: residual(start, stop)
                                  - user_bias[users[start:stop]]) / item_count
    return Biases(mean, user_bias, item_bias)


def user_bias(biases: Biases, items, ratings, *, reg: float = 5.0) -> float:
    """The bias of a user not fitted, from their ``ratings`` of the item rows ``items``: the
    user half-step of :func:`fit_biases` given the fitted item biases,
    ``b_u = sum_i (r - mu - b_i) / (n_u + reg)`` (0 without ratings)."""
    if not reg > 0:
        raise ValueError(f"reg must be positive, got {reg!r}")
    residual = (np.asarray(ratings, dtype=np.float64) - biases.mean
                - biases.item[np.asarray(items, dtype=np.int64)])
    return float(residual.sum() / (residual.shape[0] + reg))


def leave_one_out_base(biases: Biases, users, items, ratings, *, reg: float = 5.0) -> np.ndarray:
    """``mu + b_user + b_item`` of each training example with its own rating left out.

    Each side's bias is solved again without the example given the other side's full bias
    (one exact half-step): ``b_u' = (S_u - (r - mu - b_i)) / (n_u - 1 + reg)`` with
    ``S_u = sum over u's ratings of (r - mu - b_i)``, and the same for the item. So, like every
    input of a training example, the offset its target is measured from never holds the target.
    :func:`leave_one_out_chunks` gives the same values a chunk at a time.
    """
    base = np.empty(np.shape(ratings)[0])
    for start, stop, chunk in leave_one_out_chunks(biases, users, items, ratings, reg=reg):
        base[start:stop] = chunk
    return base


def leave_one_out_chunks(biases: Biases, users, items, ratings, *, reg: float = 5.0
                         ) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(start, stop, base[start:stop])`` of :func:`leave_one_out_base`, chunk by chunk in
    order, computed in float64 without any array of all the examples."""
    users, items, ratings = np.asarray(users), np.asarray(items), np.asarray(ratings)
    n_users, n_items = biases.user.shape[0], biases.item.shape[0]

    def from_user(start, stop):
        return (np.asarray(ratings[start:stop], dtype=np.float64) - biases.mean
                - biases.item[items[start:stop]])

    def from_item(start, stop):
        return (np.asarray(ratings[start:stop], dtype=np.float64) - biases.mean
                - biases.user[users[start:stop]])

    user_sum = _chunked.sums(users, n_users, from_user)
    item_sum = _chunked.sums(items, n_items, from_item)
    user_count = _chunked.counts(users, n_users).astype(np.float64)
    item_count = _chunked.counts(items, n_items).astype(np.float64)
    for start, stop in _chunked.spans(ratings.shape[0]):
        u, i = users[start:stop], items[start:stop]
        user_bias = (user_sum[u] - from_user(start, stop)) / (user_count[u] - 1.0 + reg)
        item_bias = (item_sum[i] - from_item(start, stop)) / (item_count[i] - 1.0 + reg)
        yield start, stop, biases.mean + user_bias + item_bias
