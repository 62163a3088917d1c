"""Fold-in: recommendations, with their reasons, for a person the model was not trained on.

A two-tower model's user tower reads features computed from ratings, so a person who is not in
the training data is embedded from their own ratings at once, without retraining (the
"fold-in" of matrix factorisation, here exact rather than a least-squares fit):

* **the user row** is built as training builds a user's full-training row: the sums of their
  ratings by :meth:`anirec.data.UserStats.of` (the computation training uses) with the
  statistics saved with the model (the genre matrix, the anime's weights, the mean training
  rating, the z-score scaler), then the formulas of :func:`anirec.loo.user_rows`; a training
  user folded in from their own training ratings gets their training row back;
* **the ID embedding** is the unknown row, which training leaves as the average of the users'
  rows: the model has no row of its own for the person;
* **the pooled history** (a model with ``history_dim``) pools the rated anime the model
  trained on (an anime no training rating touched has an untrained vector);
* **the rating bias** is the user half-step of the bias fit given the item biases, with the
  same regularisation (:func:`anirec.model.biases.user_bias`);
* **the cosine's weight** in their predicted ratings is fitted on their own ratings, each
  predicted from the person folded in without it (:func:`cosine_weight`): a trained user's
  cosine is read with their own learned ID row, a person's with the average row, and it
  predicts their ratings less well, sometimes worse than the biases alone.

The person's rated anime that the model does not know (not in the catalogue, or dropped for an
excluded genre) are left out, counted by reason and named, in an
:class:`~anirec.errors.AnirecWarning` and in the result's ``attrs``: never an error. Every anime
on their list, rated or not (Plan to Watch included), is left out of the recommendations.

Reasons
-------
A recommendation is explained by the anime of the person's list that support it most, and the
genres that push it. Support is measured, not guessed: an anime supports a recommendation by
how much the recommendation's score (the retrieval score that ranks the list) falls when that
anime is removed from the person's ratings and they are folded in again. That is cheap, because
a user row without one of its ratings is exactly the leave-one-out row training computes for
each of its examples (:meth:`anirec.data.UserStats.rows`): every candidate at once is one
batch through the user tower. Candidates are the anime rated above the person's own mean; the
reasons are those of largest support, and only those whose removal lowers the score: removing
the first reason and folding in again lowers the score by construction (``faithful``). A genre
of the recommendation pushes it when setting the person's preference for that genre to the
average user's (0 after scaling) lowers the score.

The simpler rule, the rated anime *nearest* to the recommendation in the item tower's space,
is not faithful enough: removing the nearest anime lowers the score for only 63% to 77% of the
recommendations on the real development sets (``benchmarks/foldin.py`` measures both rules).
Nearness in the item tower's space says what the model finds alike, not what moves this
person's embedding: the user tower sees a rated anime only through what it adds to the
person's row (its genres and Bayesian weight, the count and mean) and, with a pooled history,
its learned history vector.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from anirec import _unknown, _validate
from anirec.data.features import UserStats
from anirec.data.person import PersonRatings, read_person_ratings
from anirec.data.split import Triplets
from anirec.errors import AnirecWarning, DataError, UnknownIdError
from anirec.model.biases import user_bias

__all__ = ["FoldIn", "fold_in", "fold_in_person", "cosine_weight", "recommend", "predict",
           "locate_anime", "count_unknown", "Reasons", "reasons_for", "anime_support",
           "genre_support"]

#: The most anime and genres named as the reasons of one recommendation.
MAX_ANIME_REASONS = 2
MAX_GENRE_REASONS = 2
#: Support (a fall of the cosine) below this is rounding, not a reason: float32 towers
#: round cosines to about 1e-7.
MIN_SUPPORT = 1e-5
#: Candidates embedded per batch when explaining (bounds the pooled histories' memory).
_BATCH = 256
#: Unknown anime ids named in a warning (the rest are counted).
_SHOWN = 10


@dataclass(frozen=True, eq=False)
class FoldIn:
    """One person folded into a trained :class:`~anirec.Recommender`.

    Attributes
    ----------
    person : PersonRatings
        What was read of their ratings and list.
    items, ratings : ndarray
        The catalogue rows of the rated anime the model knows, and their ratings.
    listed : ndarray of int64
        The catalogue rows of every anime on their list that the model knows.
    unknown : dict of str to ndarray of int64
        The anime ids of their list that the model does not know, by reason
        (:data:`anirec._unknown.REASONS`: not in the catalogue, of an excluded genre).
    stats : UserStats
        The sums of their ratings (one user), scaled as the model's user rows are.
    history : ndarray of int64 or None
        The rows pooled as their history (``None``: the model has no pooled history).
    bias : float
        Their rating bias (0 for a model without biases).
    cosine_weight : float
        The weight of the towers' cosine in their predicted ratings, in [0, 1] (1, as for a
        trained user, without biases): :func:`cosine_weight`.
    row : ndarray of float64, shape (1, G + 2)
        Their scaled user row.
    vector : ndarray, shape (1, d)
        Their user-tower output.
    """

    person: PersonRatings
    items: np.ndarray
    ratings: np.ndarray
    listed: np.ndarray
    unknown: dict
    stats: UserStats
    history: np.ndarray | None
    bias: float
    cosine_weight: float
    row: np.ndarray
    vector: np.ndarray

    @property
    def n_unknown(self) -> int:
        """Anime of the list the model does not know, all reasons together."""
        return int(sum(ids.shape[0] for ids in self.unknown.values()))

    def describe_unknown(self) -> str:
        """``"2 of 10 anime of the list are unknown to the model and left out: ..."`` (or
        ``""``)."""
        if not self.n_unknown:
            return ""
        parts = []
        for reason, ids in self.unknown.items():
            if ids.shape[0]:
                shown = ", ".join(str(a) for a in ids[:_SHOWN].tolist())
                more = f", ... {ids.shape[0] - _SHOWN} more" if ids.shape[0] > _SHOWN else ""
                parts.append(f"{ids.shape[0]} {reason} ({shown}{more})")
        return (f"{self.n_unknown} of {self.person.listed.shape[0]} anime of "
                f"{self.person.source} are unknown to the model and left out: "
                f"{'; '.join(parts)}")

    def attrs(self) -> dict:
        """What a result's ``attrs`` report of the fold-in."""
        return {"rated": int(self.items.shape[0]), "listed": int(self.listed.shape[0]),
                "unknown": int(self.n_unknown),
                "unknown_anime": {reason: ids.tolist() for reason, ids in self.unknown.items()},
                "rating_bias": float(self.bias)}


def _person(rec, ratings, item: str, rating: str) -> PersonRatings:
    """``ratings`` read (anything :func:`read_person_ratings` takes, or its result), every
    rating on the model's scale."""
    scale = rec.rating_scale
    if not isinstance(ratings, PersonRatings):
        return read_person_ratings(ratings, item=item, rating=rating, rating_scale=tuple(scale))
    off = np.flatnonzero(~scale.contains(ratings.ratings))
    if off.size:
        k = int(off[0])
        raise DataError(f"{ratings.source}, anime id {int(ratings.anime_ids[k])}: rating "
                        f"{ratings.ratings[k]:g} is outside the model's rating scale {scale}")
    return ratings


def locate_anime(rec, anime_ids) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(rows, known, unknown)``: the catalogue row of each anime id (0 where unknown),
    whether the model knows it, and the unknown ids by reason (not in the catalogue, of an
    excluded genre: :data:`anirec._unknown.REASONS`)."""
    anime_ids = _unknown.as_ids("anime id", anime_ids)
    rows, known = rec._anime.find(anime_ids)
    unknown = anime_ids[~known]
    dropped = rec._anime.is_dropped(unknown) if unknown.size else np.zeros(0, dtype=bool)
    not_in, excluded = _unknown.REASONS[1:]
    return rows, known, {not_in: unknown[~dropped], excluded: unknown[dropped]}


def count_unknown(unknown: dict) -> str:
    """``"2 anime not in the catalogue, 1 anime of an excluded genre"``: the reasons of
    :func:`locate_anime` counted."""
    return ", ".join(f"{ids.shape[0]} {reason}" for reason, ids in unknown.items()
                     if ids.shape[0])


def _stats(rec, items: np.ndarray, ratings: np.ndarray) -> UserStats:
    """The sums of one person's ratings, with the model's saved statistics and scaler."""
    cold = rec.cold_start
    genres = np.ascontiguousarray(rec.genre_matrix, dtype=np.float64)
    person = Triplets(np.zeros(items.shape[0]), items, ratings)
    return UserStats.of(person, 1, genres, rec.item_weight, cold.mode, cold.global_mean,
                        cold.mean, cold.std)


def _history(rec, items: np.ndarray) -> np.ndarray | None:
    """The rows of ``items`` the pooled history reads: those some training rating touched
    (``None`` without a pooled history)."""
    pooled = rec.model.pooled_history_
    if pooled is None:
        return None
    trained = np.zeros(pooled[2].shape[0], dtype=bool)
    trained[pooled[1]] = True
    return items[trained[items]]


def _embed(rec, rows: np.ndarray, histories) -> np.ndarray:
    """User-tower outputs of new users: scaled ``rows``, the unknown ID row, ``histories``
    (one array of item rows per row; ignored without a pooled history)."""
    pooled = rec.model.pooled_history_ is not None
    return rec.model.user_embeddings(rows, history=histories if pooled else None)


def fold_in(rec, ratings, *, item: str = "anime_id", rating: str = "rating") -> FoldIn:
    """Fold a person into ``rec`` from their ratings (see the module docstring).

    Parameters
    ----------
    rec : Recommender
        A fitted or loaded recommender.
    ratings : mapping, DataFrame, path-like or PersonRatings
        Anything :func:`anirec.read_person_ratings` reads: ``{anime_id: rating}``, a table
        or CSV file with the columns ``item`` and ``rating``, a MyAnimeList list export
        (XML, gzipped or not); ratings on the model's scale.

    Returns
    -------
    FoldIn

    Raises
    ------
    DataError
        For ratings that cannot be read or are off the model's scale (naming the file, row
        or anime id).
    """
    rec._check_fitted()
    return fold_in_person(rec, _person(rec, ratings, item, rating))


def fold_in_person(rec, person: PersonRatings) -> FoldIn:
    """:func:`fold_in` of ratings already read and on the model's scale, without asking
    whether ``rec`` counts as fitted: the loader folds people in to check a model file before
    it does."""
    rows, known, _ = locate_anime(rec, person.anime_ids)
    items, values = rows[known], person.ratings[known]
    listed_rows, listed_known, unknown = locate_anime(rec, person.listed)
    stats = _stats(rec, items, values)
    row = stats.rows(np.zeros(1, np.int64))
    history = _history(rec, items)
    biases = rec.model.biases_
    bias = 0.0 if biases is None else user_bias(biases, items, values,
                                                reg=float(rec.model.bias_reg))
    vector = _embed(rec, row, [history])
    weight = cosine_weight(rec, stats, items, values, history)
    return FoldIn(person, items, values, listed_rows[listed_known], unknown, stats, history,
                  bias, weight, row, vector)


def _left_out_vectors(rec, stats: UserStats, items: np.ndarray, values: np.ndarray,
                      history, chosen: np.ndarray) -> np.ndarray:
    """The user-tower outputs of the person folded in without each rating ``chosen`` (one
    left out at a time): the leave-one-out rows of training."""
    without = stats.rows(np.zeros(chosen.shape[0], dtype=np.int64), items[chosen],
                         values[chosen])
    histories = None if history is None else [history[history != items[k]] for k in chosen]
    return _embed(rec, without, histories)


def cosine_weight(rec, stats: UserStats, items: np.ndarray, values: np.ndarray,
                  history) -> float:
    """The weight ``w`` of the towers' cosine in a folded-in person's predicted ratings,
    ``mu + b_user + b_item + w * cosine * (hi - lo) / 2``.

    Each of the person's ratings is predicted as training measures its examples: from the
    person folded in without it (their leave-one-out row, history and bias). ``w`` is the
    least-squares weight of those cosines for what the biases leave of the ratings, held to
    [0, 1]: 1 is a trained user's weight, 0 the biases alone, for a person whose held-back
    ratings the cosine does not predict. With fewer than two ratings, or a model without
    biases, it is 1.
    """
    biases = rec.model.biases_
    n = items.shape[0]
    if biases is None or n < 2:
        return 1.0
    cosines = np.empty(n)
    for start in range(0, n, _BATCH):
        chosen = np.arange(start, min(n, start + _BATCH))
        vectors = _left_out_vectors(rec, stats, items, values, history, chosen)
        cosines[chosen] = np.einsum("ij,ij->i", vectors.astype(np.float64),
                                    rec.item_vectors[items[chosen]].astype(np.float64))
    # The bias without each rating: user_bias's sum with that residual taken out.
    residuals = values.astype(np.float64) - biases.mean - biases.item[items]
    reg = float(rec.model.bias_reg)
    targets = residuals - (residuals.sum() - residuals) / (n - 1 + reg)
    lo, hi = rec.model.rating_range
    scaled = cosines * (hi - lo) / 2
    power = float(scaled @ scaled)
    return float(np.clip(scaled @ targets / power, 0.0, 1.0)) if power > 0 else 1.0


def _warn(folded: FoldIn) -> None:
    if folded.n_unknown:
        warnings.warn(folded.describe_unknown(), AnirecWarning, stacklevel=4)


def recommend(rec, ratings, n: int = 10, *, exclude=None, explain: bool = False,
              genres=None, types=None, min_year=None, item: str = "anime_id",
              rating: str = "rating") -> pd.DataFrame:
    """:meth:`anirec.Recommender.recommend_for_ratings` (see there)."""
    from anirec.recommender import _filter_args

    explain = _validate.boolean("explain", explain)
    folded = fold_in(rec, ratings, item=item, rating=rating)
    _warn(folded)
    exclusions = rec._exclusions(np.zeros(1, np.int64), False, exclude,
                                 _filter_args(genres, types, min_year), also=folded.listed)
    index, scores = rec._top(folded.vector, n, exclusions)
    frame = rec._frame(np.array([-1]), index, scores, "user_id", user_bias=folded.bias,
                       cosine_weight=folded.cosine_weight)
    frame = frame.drop(columns="user_id")
    if explain:
        why = reasons_for(rec, folded, index[0][index[0] >= 0])
        frame["because"] = [reasons.text(rec) for reasons in why]
        frame.attrs["because"] = [reasons.as_dict() for reasons in why]
    frame.attrs.update(folded.attrs())
    return frame


def predict(rec, ratings, anime_ids, *, strict: bool = False, item: str = "anime_id",
            rating: str = "rating") -> np.ndarray:
    """:meth:`anirec.Recommender.predict_for_ratings` (see there)."""
    folded = fold_in(rec, ratings, item=item, rating=rating)
    _warn(folded)
    anime_ids = _unknown.as_ids("anime id", anime_ids)
    rows, known, unknown = locate_anime(rec, anime_ids)
    if strict and not known.all():
        first = int(np.flatnonzero(~known)[0])
        raise UnknownIdError(f"anime_ids[{first}]: {rec._anime.why(anime_ids[first])} "
                             f"({int((~known).sum())} of {known.shape[0]} anime ids are "
                             "unknown; without strict their prediction is NaN)")
    rows = rows[known]
    cosines = np.einsum("j,ij->i", folded.vector[0].astype(np.float64),
                        rec.item_vectors[rows].astype(np.float64))
    predicted = np.full(known.shape[0], np.nan)
    predicted[known] = rec.model.score_to_rating(folded.cosine_weight * cosines, None, rows,
                                                 user_bias=folded.bias)
    if not known.all():
        warnings.warn(f"{int((~known).sum())} of {known.shape[0]} anime ids skipped "
                      f"({count_unknown(unknown)}): their prediction is NaN (strict=True "
                      "refuses them)", AnirecWarning, stacklevel=3)
    return predicted


# --------------------------------------------------------------------------- reasons


@dataclass(frozen=True)
class Reasons:
    """Why one anime is recommended to a person folded in.

    Attributes
    ----------
    anime : list of (int, float, float)
        ``(catalogue row, the person's rating, support)`` of the anime of their list that
        support the recommendation most, strongest first: removing the first lowers its
        score by its support (a fall of the cosine), more than removing any other.
    genres : list of (int, float)
        ``(genre column, support)`` of the recommendation's genres that push it most.
    """

    anime: list
    genres: list

    def text(self, rec) -> str:
        """``"Cowboy Bebop (10), Trigun (9); Sci-Fi"``: the anime with the person's ratings,
        then the genres."""
        parts = [", ".join(f"{rec.anime_names[row]} ({value:g})"
                           for row, value, _ in self.anime),
                 ", ".join(rec.genres[column] for column, _ in self.genres)]
        return "; ".join(part for part in parts if part)

    def as_dict(self) -> dict:
        """The reasons by catalogue row, JSON-friendly (the ``attrs`` of a result)."""
        return {"anime_rows": [int(row) for row, _, _ in self.anime],
                "genres": [int(column) for column, _ in self.genres]}


def _fall(vectors: np.ndarray, full: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``(k, m)``: how much each of ``vectors``' cosine with each target item falls below
    that of ``full``."""
    return (full.astype(np.float64) @ targets.T)[None, :] - \
        vectors.astype(np.float64) @ targets.T


def anime_support(rec, folded: FoldIn, rows: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """``(len(candidates), len(rows))``: how much the cosine of each anime ``rows`` falls when
    the rated anime ``folded.items[candidates]`` is removed from the person's ratings (each
    one alone) and they are folded in again."""
    targets = rec.item_vectors[rows].astype(np.float64)
    support = np.empty((candidates.shape[0], rows.shape[0]))
    for start in range(0, candidates.shape[0], _BATCH):
        chosen = candidates[start:start + _BATCH]
        vectors = _left_out_vectors(rec, folded.stats, folded.items, folded.ratings,
                                    folded.history, chosen)
        support[start:start + _BATCH] = _fall(vectors, folded.vector[0], targets)
    return support


def genre_support(rec, folded: FoldIn, rows: np.ndarray) -> np.ndarray:
    """``(G, len(rows))``: how much the cosine of each anime ``rows`` falls when the person's
    preference for each genre is set to the average user's (0 after scaling)."""
    G = len(rec.genres)
    average = np.repeat(folded.row, G, axis=0)
    average[np.arange(G), np.arange(G)] = 0.0
    vectors = _embed(rec, average, [folded.history] * G)
    return _fall(vectors, folded.vector[0], rec.item_vectors[rows].astype(np.float64))


def reasons_for(rec, folded: FoldIn, rows) -> list[Reasons]:
    """The reasons of each recommended anime ``rows`` (catalogue rows) for ``folded``.

    Returns
    -------
    list of Reasons
        One per row: up to :data:`MAX_ANIME_REASONS` anime rated above the person's mean
        whose removal lowers the recommendation's score most (only those that lower it), and
        up to :data:`MAX_GENRE_REASONS` of its genres that push it.
    """
    rows = np.asarray(rows, dtype=np.int64)
    candidates = np.flatnonzero(folded.ratings > folded.ratings.mean()) \
        if folded.ratings.size else np.zeros(0, np.int64)
    by_anime = anime_support(rec, folded, rows, candidates)
    by_genre = genre_support(rec, folded, rows) if rec.genres else np.zeros((0, rows.shape[0]))
    carries = rec.genre_matrix[rows] > 0
    result = []
    for j in range(rows.shape[0]):
        order = np.argsort(-by_anime[:, j], kind="stable")[:MAX_ANIME_REASONS]
        anime = [(int(folded.items[candidates[k]]), float(folded.ratings[candidates[k]]),
                  float(by_anime[k, j])) for k in order if by_anime[k, j] > MIN_SUPPORT]
        pushing = np.flatnonzero(carries[j] & (by_genre[:, j] > MIN_SUPPORT))
        pushing = pushing[np.argsort(-by_genre[pushing, j], kind="stable")][:MAX_GENRE_REASONS]
        result.append(Reasons(anime, [(int(g), float(by_genre[g, j])) for g in pushing]))
    return result
