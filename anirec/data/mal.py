"""Loading and cleaning the Kaggle "MyAnimeList 2023" files: :func:`load_mal`.

Orchestration only: :mod:`anirec.data.anime` reads ``anime-dataset-2023.csv`` into a
:class:`Catalogue`, :mod:`anirec.data.scores` streams ``users-score-2023.csv`` into compact
arrays; here the ratings are de-duplicated, filtered by the minimum counts and sorted into
:class:`Ratings` (a CSR matrix by user), and every row not kept is counted in a
:class:`LoadSummary`. Nothing is merged into a wide table.
"""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np

from . import _csv
from .anime import load_catalogue
from .bayes import bayesian_average, bayesian_rating, outside_statistics
from .scores import AnimeLookup, compact_ids, read_scores, sorted_last
from .types import (ANIME_TYPES, DEFAULT_EXCLUDED_GENRES, Catalogue, LoadSummary, MALData,
                    Ratings, index_of_sorted, row_pointer)

__all__ = [
    "DEFAULT_EXCLUDED_GENRES",
    "ANIME_TYPES",
    "Catalogue",
    "Ratings",
    "LoadSummary",
    "MALData",
    "load_mal",
    "load_catalogue",
    "bayesian_average",
    "index_of_sorted",
]


def load_mal(anime_csv: str | os.PathLike[str], scores_csv: str | os.PathLike[str], *,
             exclude_genres: Iterable[str] | str | None = DEFAULT_EXCLUDED_GENRES,
             min_user_ratings: int = 1, min_item_ratings: int = 1,
             progress: bool = False) -> MALData:
    """Load and clean the two MyAnimeList 2023 files.

    The anime file becomes the :class:`Catalogue` (anime with an excluded genre removed,
    genres one-hot in sorted order, ``UNKNOWN`` read as missing, numbers coerced). The scores
    file is streamed, three numeric columns only (by the compiled reader of
    :mod:`anirec.data.scores` with the ``cython`` backend, else or for an unusual file by
    pyarrow: same result), into :class:`Ratings` sorted by (user, item), with their CSR row
    pointer. Rows are dropped, and counted in the
    :class:`LoadSummary`, for: an anime
    not in the anime file; an anime with an excluded genre; a rating that is missing, not an
    integer or outside 1..10; a repeated (user, anime) pair (the last row is kept); a user with
    fewer than ``min_user_ratings`` or an anime with fewer than ``min_item_ratings`` ratings
    (applied repeatedly until both hold). The catalogue keeps anime with few or no ratings:
    they can still be recommended from their content features.

    Parameters
    ----------
    anime_csv, scores_csv : path-like
        ``anime-dataset-2023.csv`` and ``users-score-2023.csv``.
    exclude_genres : iterable of str
        Genres whose anime leave the catalogue (matched case-insensitively); ``()`` keeps all.
    min_user_ratings, min_item_ratings : int
        Minimum number of ratings of a kept user / of an anime whose ratings are kept.
    progress : bool
        Show a tqdm progress bar over the bytes of the scores file.

    Returns
    -------
    MALData

    Raises
    ------
    DataError
        A missing or empty file, not a regular file (a FIFO, pipe or device), a missing required
        column, a wrong delimiter, an undecodable byte, CR-only line endings, a line longer
        than ``anirec.data._csv.MAX_LINE`` bytes, a malformed row, an id that is not plain
        digits, a catalogue number outside its range; the message names the file, the column
        and the row (or line).
    """
    for name, v in (("min_user_ratings", min_user_ratings),
                    ("min_item_ratings", min_item_ratings)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    summary = LoadSummary()
    scores_path = _csv.as_path(scores_csv)
    catalogue, excluded_ids = load_catalogue(anime_csv, exclude_genres=exclude_genres,
                                             summary=summary)
    catalogue.excluded_ids = excluded_ids
    summary.scores_file = str(scores_path)
    lookup = AnimeLookup(catalogue.anime_ids, excluded_ids)
    uid, items, ratings = read_scores(scores_path, lookup, summary, progress)

    user_ids, users = compact_ids(uid)
    del uid
    users = users.astype(np.int32, copy=False)     # at most one user per row
    n_rows = users.shape[0]
    users, items, ratings = sorted_last(users, items, ratings, catalogue.n_items)
    summary.ratings_duplicate = int(n_rows - users.shape[0])

    keep = np.ones(users.shape[0], dtype=bool)
    while True:
        changed = False
        if min_user_ratings > 1:
            cnt = np.bincount(users[keep], minlength=user_ids.shape[0])
            low = keep & (cnt[users] < min_user_ratings)
            if low.any():
                summary.ratings_user_min += int(low.sum())
                keep &= ~low
                changed = True
        if min_item_ratings > 1:
            cnt = np.bincount(items[keep], minlength=catalogue.n_items)
            low = keep & (cnt[items] < min_item_ratings)
            if low.any():
                summary.ratings_item_min += int(low.sum())
                keep &= ~low
                changed = True
        if not changed:
            break
    if not keep.all():
        users, items, ratings = users[keep], items[keep], ratings[keep]
    del keep
    present = np.zeros(user_ids.shape[0], dtype=bool)
    present[users] = True
    summary.users_dropped = int((~present).sum())
    if summary.users_dropped:
        remap = (np.cumsum(present) - 1).astype(np.int32)
        users = remap[users]
        user_ids = user_ids[present]
    summary.users_kept = int(user_ids.shape[0])
    summary.ratings_kept = int(users.shape[0])

    rsum = np.bincount(items, weights=ratings, minlength=catalogue.n_items)
    rcount = np.bincount(items, minlength=catalogue.n_items).astype(np.float64)
    # The catalogue is taken to count these ratings (as MyAnimeList's counts its own).
    outside = outside_statistics(catalogue, rsum, rcount)
    summary.anime_disagreeing = outside.disagreeing
    catalogue.bayes_rating = bayesian_rating(outside, rsum, rcount)
    # Sorted by (user, item): the row pointer makes the ratings a CSR matrix, computed once
    # here for split, features and the recommender's exclusions.
    result = Ratings(user_ids=user_ids, users=users.astype(np.int32, copy=False),
                     items=items.astype(np.int32, copy=False),
                     ratings=ratings.astype(np.int8, copy=False),
                     indptr=row_pointer(users, user_ids.shape[0]))
    return MALData(catalogue=catalogue, ratings=result, summary=summary)
