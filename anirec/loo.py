"""Leave-one-out statistics: the one home of their formulas.

Every statistic derived from ratings that feeds a training example's input leaves that
example's own rating out, so the model never reads its target. Both kinds are derived from
per-user or per-item sufficient statistics (sums and counts) minus the example's contribution:

User rows (genre preferences, activity, mean)
    For user ``u`` with G genres, ``num[u, g]`` and ``den[u, g]`` are sums over the user's
    rated anime ``a``: of ``r * G[a, g]`` and ``G[a, g]`` (weightings ``"rating"`` and
    ``"centered"``), or of ``w[a] * G[a, g]`` and ``w[a]`` (``"bayesian"``, ``w`` the anime's
    Bayesian rating); ``total[u]`` and ``count[u]`` are the sum and number of the ratings.
    Leaving out ``(i, r)``: ``n' = count - 1``, ``s' = total - r``, ``mean' = s'/n'``
    (``global_mean`` when ``n' = 0``), ``num' = num - r G[i]`` and ``den' = den - G[i]`` (or
    ``num - w[i] G[i]`` and ``den - w[i]``). Genre ``g`` gets

    * ``"rating"``: ``num'/den'``, or ``mean'`` when the genre is empty;
    * ``"centered"``: ``num'/den' - mean'``, or 0 when empty;
    * ``"bayesian"``: ``num'/den'``, or 0 when empty;

    and the raw row is ``[pref_0 .. pref_{G-1}, log1p(n'), mean']``.

Item rows (Bayesian average, mean rating, activity)
    For item ``i`` with training sum ``s`` and count ``n``, leaving out rating ``r``:
    ``n' = n - 1``, ``s' = s - r``, and the raw row is ``[bayes', mean', log1p(n')]`` with
    ``mean' = s'/n'`` (``global_mean`` when ``n' = 0``) and the Bayesian average
    ``bayes' = (prior_num + from_ratings * s') / (prior_den + from_ratings * n')``: an anime
    with a public Score and Scored By has ``from_ratings = 0`` and a fixed value; one without
    them has ``from_ratings = 1`` and its own ratings stand in (see
    :func:`anirec.data.bayesian_average`).

A denominator counts as empty when it is at most :data:`EMPTY` (a float subtraction that
cancels exactly may leave rounding dust, never a real weight). Without an example to leave out
the same formulas give the full-training rows used for validation, test and serving.

The data layer builds features with these functions; the NumPy kernels call them; the compiled
kernels implement the same formulas and are tested against them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["USER_MODES", "EMPTY", "ITEM_COLUMNS", "user_rows", "item_rows"]

#: Weighting name -> the integer code the compiled kernels take.
USER_MODES: dict[str, int] = {"rating": 0, "centered": 1, "bayesian": 2}
#: A denominator at most this is empty.
EMPTY = 1e-9
#: The columns of an item row, in order.
ITEM_COLUMNS = ("bayes_rating", "mean_rating", "log_count")


def _mean(total, count, global_mean):
    has = count > 0
    return np.where(has, total / np.where(has, count, 1.0), global_mean)


def user_rows(num, den, total, count, item_genres, item_weight, mode: int, global_mean: float,
              users, items=None, ratings=None) -> np.ndarray:
    """Raw user rows ``(len(users), G + 2)`` in float64, each leaving out the training example
    ``(users[k], items[k], ratings[k])`` when ``items`` and ``ratings`` are given.

    ``num``, ``den`` are ``(n_users, G)``; ``total``, ``count`` ``(n_users,)``;
    ``item_genres`` ``(n_items, G)``; ``item_weight`` ``(n_items,)``; ``mode`` a
    :data:`USER_MODES` code. See the module docstring for the formula.
    """
    users = np.asarray(users, dtype=np.int64)
    numer = np.asarray(num, dtype=np.float64)[users]
    denom = np.asarray(den, dtype=np.float64)[users]
    s = np.asarray(total, dtype=np.float64)[users]
    n = np.asarray(count, dtype=np.float64)[users]
    if items is not None:
        items = np.asarray(items, dtype=np.int64)
        r = np.asarray(ratings, dtype=np.float64)
        genres = np.asarray(item_genres, dtype=np.float64)[items]
        if mode == USER_MODES["bayesian"]:
            weight = np.asarray(item_weight, dtype=np.float64)[items][:, None]
            numer = numer - weight * genres
            denom = denom - weight
        else:
            numer = numer - r[:, None] * genres
            denom = denom - genres
        s = s - r
        n = n - 1.0
    mean = _mean(s, n, global_mean)
    filled = denom > EMPTY
    average = numer / np.where(filled, denom, 1.0)
    if mode == USER_MODES["rating"]:
        pref = np.where(filled, average, mean[:, None])
    elif mode == USER_MODES["centered"]:
        pref = np.where(filled, average - mean[:, None], 0.0)
    elif mode == USER_MODES["bayesian"]:
        pref = np.where(filled, average, 0.0)
    else:
        raise ValueError(f"mode must be one of {sorted(USER_MODES.values())}, got {mode!r}")
    out = np.empty((users.shape[0], numer.shape[1] + 2))
    out[:, :-2] = pref
    out[:, -2] = np.log1p(np.maximum(n, 0.0))
    out[:, -1] = mean
    return out


def item_rows(rating_sum, rating_count, prior_num, prior_den, from_ratings,
              global_mean: float, items, ratings=None) -> np.ndarray:
    """Raw item rows ``(len(items), 3)`` in float64 (:data:`ITEM_COLUMNS`), each leaving out
    the training rating ``ratings[k]`` of ``items[k]`` when ``ratings`` is given.

    All per-item arguments are ``(n_items,)``: the training ``rating_sum`` and
    ``rating_count``, and the Bayesian average's ``prior_num``, ``prior_den`` and
    ``from_ratings`` (0 or 1). See the module docstring for the formula.
    """
    items = np.asarray(items, dtype=np.int64)
    s = np.asarray(rating_sum, dtype=np.float64)[items]
    n = np.asarray(rating_count, dtype=np.float64)[items]
    if ratings is not None:
        s = s - np.asarray(ratings, dtype=np.float64)
        n = n - 1.0
    use = np.asarray(from_ratings, dtype=np.float64)[items]
    out = np.empty((items.shape[0], 3))
    out[:, 0] = ((np.asarray(prior_num, dtype=np.float64)[items] + use * s)
                 / (np.asarray(prior_den, dtype=np.float64)[items] + use * n))
    out[:, 1] = _mean(s, n, global_mean)
    out[:, 2] = np.log1p(np.maximum(n, 0.0))
    return out
