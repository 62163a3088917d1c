"""The Bayesian average rating of an anime: one home for the formula."""

from __future__ import annotations

import numpy as np

__all__ = ["bayesian_average"]


def bayesian_average(score: np.ndarray, scored_by: np.ndarray, rating_sum: np.ndarray,
                     rating_count: np.ndarray) -> np.ndarray:
    """Bayesian average rating per anime, as in the original notebook.

    With ``C`` the mean of the known ``Scored By`` and ``m`` the mean of the known ``Score``::

        bayes = (m * C + Score * ScoredBy) / (C + ScoredBy)

    Where ``Score`` or ``Scored By`` is missing, the anime's own ratings stand in for them
    (their mean and count); an anime with neither gets ``m``. When no anime has metadata,
    ``m`` is the mean of all ratings and ``C`` the mean number of ratings per rated anime.

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
    score = np.asarray(score, dtype=np.float64)
    scored_by = np.asarray(scored_by, dtype=np.float64)
    rating_sum = np.asarray(rating_sum, dtype=np.float64)
    rating_count = np.asarray(rating_count, dtype=np.float64)
    known_s = np.isfinite(score)
    known_c = np.isfinite(scored_by) & (scored_by > 0)
    rated = rating_count > 0
    if known_s.any() and known_c.any():
        m = float(score[known_s].mean())
        c = float(scored_by[known_c].mean())
    elif rated.any():
        m = float(rating_sum.sum() / rating_count.sum())
        c = float(rating_count[rated].mean())
    else:
        return np.where(known_s, score, 5.5)
    meta = known_s & known_c
    s = np.where(meta, score, np.where(rated, rating_sum / np.maximum(rating_count, 1), m))
    v = np.where(meta, scored_by, rating_count)
    return (m * c + s * v) / (c + v)
