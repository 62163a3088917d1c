"""The Bayesian average rating of an anime: its prior from the catalogue metadata, and the
average itself (whose formula lives in :func:`anirec.loo.item_rows`)."""

from __future__ import annotations

import numpy as np

from .. import loo

__all__ = ["bayesian_prior", "bayesian_average"]


def bayesian_prior(score, scored_by, rating_sum, rating_count):
    """``(prior_num, prior_den, from_ratings)`` of the Bayesian average rating per anime.

    The original notebook's average, with ``C`` the mean of the known ``Scored By`` and ``m``
    the mean of the known ``Score``, is ``(m C + Score ScoredBy) / (C + ScoredBy)``. Where
    ``Score`` or ``Scored By`` is missing the anime's own training ratings stand in for them
    (their sum for ``Score ScoredBy``, their count for ``ScoredBy``: ``from_ratings`` is 1);
    an anime with neither gets ``m``. When no anime has metadata, ``m`` is the mean training
    rating and ``C`` the mean number of ratings per rated anime. The average itself is
    ``loo.item_rows(...)[:, 0]``, with or without a rating left out.
    """
    score = np.asarray(score, dtype=np.float64)
    scored_by = np.asarray(scored_by, dtype=np.float64)
    rating_sum = np.asarray(rating_sum, dtype=np.float64)
    rating_count = np.asarray(rating_count, dtype=np.float64)
    known_s = np.isfinite(score)
    known_c = np.isfinite(scored_by) & (scored_by > 0)
    rated = rating_count > 0
    if known_s.any() and known_c.any():
        m, c = float(score[known_s].mean()), float(scored_by[known_c].mean())
    elif rated.any():
        m = float(rating_sum.sum() / rating_count.sum())
        c = float(rating_count[rated].mean())
    else:  # nothing to average: the Score where known, else the middle of the scale
        fixed = np.where(known_s, score, 5.5)
        return fixed, np.ones_like(fixed), np.zeros_like(fixed)
    meta = known_s & known_c
    prior_num = np.where(meta, m * c + np.where(meta, score * scored_by, 0.0), m * c)
    prior_den = np.where(meta, c + np.where(meta, scored_by, 0.0), c)
    return prior_num, prior_den, (~meta).astype(np.float64)


def bayesian_average(score: np.ndarray, scored_by: np.ndarray, rating_sum: np.ndarray,
                     rating_count: np.ndarray) -> np.ndarray:
    """Bayesian average rating per anime, as in the original notebook (see
    :func:`bayesian_prior`): ``(prior_num + from_ratings * rating_sum) /
    (prior_den + from_ratings * rating_count)``, the formula of :func:`anirec.loo.item_rows`.

    Parameters
    ----------
    score, scored_by : ndarray of float
        Catalogue metadata, NaN where missing.
    rating_sum, rating_count : ndarray of float
        Sum and number of the ratings per anime (from whichever ratings may be used).

    Returns
    -------
    ndarray of float64
    """
    prior = bayesian_prior(score, scored_by, rating_sum, rating_count)
    items = np.arange(np.shape(rating_sum)[0])
    return loo.item_rows(rating_sum, rating_count, *prior, 0.0, items)[:, 0]
