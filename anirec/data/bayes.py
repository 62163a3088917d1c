"""What the catalogue's rating statistics add to the ratings a model trains on, and the
Bayesian average rating built from both.

MyAnimeList's ``Score`` and ``Scored By`` count every rating of ``users-score-2023.csv``, and a
platform that scores its own catalogue computes them from the very ratings it trains on. Used
as they are, they hold every training and held-out rating inside them: next to a training
example's leave-one-out statistics the two give its rating back (``r = n Score - (n - 1)
mean_without_r``), and a held-out rating is in the Score the model reads for it. So the
catalogue's statistics are split into the part the loaded ratings made and the rest
(:func:`outside_statistics`); the model reads the rest plus its *training* ratings, each
training example without its own (:func:`bayesian_prior`, :func:`anirec.loo.item_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import loo

__all__ = ["OutsideStatistics", "outside_statistics", "prior_constants", "bayesian_prior",
           "bayesian_rating", "bayesian_average"]


@dataclass(frozen=True)
class OutsideStatistics:
    """The catalogue's rating statistics without the loaded ratings, per item.

    Attributes
    ----------
    rating_sum, rating_count : ndarray of float64
        The sum and number of the ratings behind ``Score`` and ``Scored By`` that are not in
        the loaded ratings (``Score x Scored By`` and ``Scored By`` less the loaded ratings'
        sum and count); 0 and 0 where the catalogue says nothing more.
    members : ndarray of float64
        ``Members`` less the loaded ratings' count (the people listing the anime who are not
        among the loaded raters); NaN where unknown.
    disagreeing : int
        Anime whose ``Scored By`` or ``Members`` is smaller than the number of loaded ratings of
        them: the catalogue cannot count those ratings, so its values are not used for them.
    """

    rating_sum: np.ndarray
    rating_count: np.ndarray
    members: np.ndarray
    disagreeing: int = 0


def outside_statistics(catalogue, file_sum, file_count, *, counts_ratings: bool = True,
                       scale: tuple[float, float] = (1.0, 10.0)) -> OutsideStatistics:
    """Split the catalogue's statistics into the loaded ratings' part and the rest.

    Parameters
    ----------
    catalogue : Catalogue
        Its ``score``, ``scored_by`` and ``members`` attributes (NaN where missing) are read.
    file_sum, file_count : array_like of float
        Sum and number of the loaded ratings of each item (every split: training, validation
        and test ratings alike).
    counts_ratings : bool
        Whether the catalogue counts the loaded ratings (MyAnimeList's does, and so does any
        catalogue scored from the same ratings). ``False`` for a catalogue known to be
        independent of them: its values are then used as they are.
    scale : (low, high)
        The rating scale of ``Score``: what is left of a rounded Score is kept within it.

    Returns
    -------
    OutsideStatistics
        With ``counts_ratings``: ``Score x Scored By - file_sum`` (clipped to ``scale`` times
        the count: a published Score is rounded, and what is left of it after the loaded
        ratings are taken out must still be ratings) and ``Scored By - file_count``. Where
        ``Scored By`` (or ``Members``) is below ``file_count`` the catalogue cannot count the
        loaded ratings: nothing of its statistics is used for that anime.
    """
    attributes = catalogue.attributes
    score, scored_by, members = (attributes[name].to_numpy(np.float64)
                                 for name in ("score", "scored_by", "members"))
    file_sum = np.asarray(file_sum, dtype=np.float64)
    file_count = np.asarray(file_count, dtype=np.float64)
    if not counts_ratings:
        file_sum, file_count = np.zeros_like(file_sum), np.zeros_like(file_count)
    with np.errstate(invalid="ignore"):  # NaN where the catalogue is silent
        scored = np.isfinite(score * scored_by) & (scored_by > 0)
        count = np.where(scored, scored_by - file_count, 0.0)
        members = members - file_count
        disagree = (count < 0) | (members < 0)
    used = scored & ~disagree & (count > 0)
    count = np.where(used, count, 0.0)
    total = np.where(used, score * scored_by - file_sum, 0.0)
    if counts_ratings:
        total = np.clip(total, float(scale[0]) * count, float(scale[1]) * count)
    return OutsideStatistics(rating_sum=total, rating_count=count,
                             members=np.where(disagree, np.nan, members),
                             disagreeing=int(disagree.sum()))


def prior_constants(outside: OutsideStatistics, rating_sum, rating_count) -> tuple[float, float]:
    """``(m, C)`` of the Bayesian average: the mean outside rating and the mean outside count of
    the anime that have outside ratings (the usual mean Score and mean Scored By of the
    catalogue); when none has, the mean training rating and the mean number of training
    ratings of a rated anime (``rating_sum``, ``rating_count``)."""
    rating_sum = np.asarray(rating_sum, dtype=np.float64)
    rating_count = np.asarray(rating_count, dtype=np.float64)
    known = outside.rating_count > 0
    rated = rating_count > 0
    if known.any():
        return (float(np.mean(outside.rating_sum[known] / outside.rating_count[known])),
                float(outside.rating_count[known].mean()))
    if rated.any():
        return float(rating_sum.sum() / rating_count.sum()), float(rating_count[rated].mean())
    return 5.5, 1.0  # nothing to average: the middle of the 1..10 scale


def bayesian_prior(outside: OutsideStatistics, m: float, c: float):
    """``(prior_num, prior_den, from_ratings)`` of the Bayesian average rating per anime.

    The usual average of a catalogue, ``(m C + Score ScoredBy) / (C + ScoredBy)``, here over the
    ratings the model may read: those outside the loaded file (``outside``) and the training
    ratings ``s``, ``n``: ``(m C + s_out + s) / (C + n_out + n)`` (:func:`prior_constants`
    gives ``m`` and ``C``). The average itself is ``loo.item_rows(...)[:, 0]``, with or
    without a training rating left out.
    """
    prior_num = m * c + outside.rating_sum
    prior_den = c + outside.rating_count
    return prior_num, prior_den, np.ones_like(prior_num)


def bayesian_rating(outside: OutsideStatistics, rating_sum, rating_count) -> np.ndarray:
    """The Bayesian average rating per anime over ``outside`` and the ratings ``rating_sum``,
    ``rating_count`` (:func:`bayesian_prior` with :func:`prior_constants`)."""
    prior = bayesian_prior(outside, *prior_constants(outside, rating_sum, rating_count))
    items = np.arange(np.shape(rating_sum)[0])
    return loo.item_rows(rating_sum, rating_count, *prior, 0.0, items)[:, 0]


def bayesian_average(score: np.ndarray, scored_by: np.ndarray, rating_sum: np.ndarray,
                     rating_count: np.ndarray) -> np.ndarray:
    """Bayesian average rating per anime from a catalogue's ``Score`` and ``Scored By`` and
    ratings that it does not count: ``(m C + Score ScoredBy + s) / (C + ScoredBy + n)``, ``s``
    and ``n`` the sum and number of the ratings (:func:`bayesian_prior`).

    Parameters
    ----------
    score, scored_by : ndarray of float
        Catalogue metadata, NaN where missing.
    rating_sum, rating_count : ndarray of float
        Sum and number of the ratings per anime, outside those the Score counts.

    Returns
    -------
    ndarray of float64
    """
    score = np.asarray(score, dtype=np.float64)
    scored = np.isfinite(score) & np.isfinite(scored_by) & (np.asarray(scored_by) > 0)
    outside = OutsideStatistics(rating_sum=np.where(scored, score * scored_by, 0.0),
                                rating_count=np.where(scored, scored_by, 0.0),
                                members=np.full(score.shape, np.nan))
    return bayesian_rating(outside, rating_sum, rating_count)
