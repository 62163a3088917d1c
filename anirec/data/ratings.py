"""A user's own ratings table: any column names, any rating scale, the catalogue optional.

:func:`load_ratings` turns a ``(user, item, rating)`` table (a DataFrame or a CSV file) into the
same :class:`~anirec.data.MALData` that :func:`~anirec.data.load_mal` returns, plus the rating
scale, so :meth:`anirec.Recommender.fit` trains on it and every output (predicted ratings,
splits, the evaluation) stays on that scale. Without a catalogue the items have no genres or
attributes: the model then learns from who rated what, and the Bayesian rating, count and mean
of each item.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np
import pandas as pd

from ..errors import DataError
from . import _csv
from .bayes import bayesian_rating, outside_statistics
from .mal import (DEFAULT_EXCLUDED_GENRES, Catalogue, LoadSummary, MALData, Ratings,
                  load_catalogue)
from .scale import MAL_SCALE, RatingScale

__all__ = ["RatingData", "load_ratings", "Columns", "COLUMNS", "read_columns"]

#: The attribute columns of a :class:`Catalogue` (all missing when no catalogue is given).
_ATTRIBUTES = ("score", "scored_by", "members", "episodes", "start_year")


class Columns(NamedTuple):
    """The names of the user id, item id and rating columns of a ratings table.

    Every reader of ratings takes them the same way: ``user=, item=, rating=`` in Python
    (:func:`load_ratings`, :meth:`anirec.Recommender.evaluate`), ``--user-col, --item-col,
    --rating-col`` on the command line (``train``, ``evaluate``, ``predict``).
    """

    user: str = "user_id"
    item: str = "anime_id"
    rating: str = "rating"


#: The columns of MyAnimeList's scores file, the default everywhere.
COLUMNS = Columns()


def read_columns(table, names: Iterable[str], source: str | None = None) -> pd.DataFrame:
    """The columns ``names`` of a DataFrame or a CSV file, as strings for a CSV file.

    Raises
    ------
    DataError
        A missing or unreadable file, or a missing column: the message names the file and
        lists the columns found, and how to name others.
    """
    names = list(names)
    if isinstance(table, pd.DataFrame):
        source = source or "the ratings table"
        found = [str(column) for column in table.columns]
        missing = [name for name in names if name not in table.columns]
        frame = table
    else:
        path = Path(os.fspath(table))
        source = source or str(path)
        _csv.check_regular(path)
        try:
            with _csv.open_regular(path) as handle:
                found = list(pd.read_csv(handle, nrows=0).columns)
            missing = [name for name in names if name not in found]
            if not missing:  # only the columns asked for, all as text: ids are checked after
                with _csv.open_regular(path) as handle:
                    frame = pd.read_csv(handle, usecols=names, dtype=str, keep_default_na=False)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
            raise DataError(f"{path}: cannot be read as CSV ({error})") from None
    if missing:
        raise DataError(f"{source}: missing column(s) {missing} (found {found}); name the "
                        "columns with user=, item=, rating= (--user-col, --item-col, "
                        "--rating-col)")
    return frame[names]


@dataclass
class RatingData(MALData):
    """A loaded ratings table: :class:`MALData` plus the scale of its ratings.

    Attributes
    ----------
    rating_scale : (float, float)
        The lowest and highest possible rating.
    """

    rating_scale: tuple[float, float] = field(default=MAL_SCALE)


def _bare_catalogue(item_ids: np.ndarray) -> Catalogue:
    """A catalogue of ids only: names are the ids, no genres, every attribute missing."""
    attributes = pd.DataFrame({name: np.full(item_ids.shape[0], np.nan) for name in _ATTRIBUTES})
    attributes["type"] = pd.Series([None] * item_ids.shape[0], dtype=object)
    return Catalogue(anime_ids=item_ids, names=item_ids.astype(str).astype(object), genres=(),
                     genre_matrix=np.zeros((item_ids.shape[0], 0), dtype=np.float32),
                     attributes=attributes, bayes_rating=np.zeros(item_ids.shape[0]),
                     excluded_genres=())


def _integer_ids(values: pd.Series, source: str, column: str) -> np.ndarray:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | (numbers != numbers.round()) | numbers.abs().gt(2**62)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{source}: column {column!r}, row {row + 1}: {values.iloc[row]!r} is "
                        "not an integer id")
    return numbers.to_numpy(np.int64)


def load_ratings(table, *, user: str = "user_id", item: str = "anime_id",
                 rating: str = "rating", rating_scale: tuple[float, float] | None = None,
                 catalogue=None,
                 exclude_genres: Iterable[str] | str | None = DEFAULT_EXCLUDED_GENRES,
                 ) -> RatingData:
    """Load a ratings table with any column names and rating scale.

    Parameters
    ----------
    table : DataFrame or path-like
        One row per rating; a path is read as CSV.
    user, item, rating : str
        The columns holding the user id, the item (anime) id and the rating. Ids must be
        integers.
    rating_scale : (low, high), optional
        The lowest and highest possible rating (e.g. ``(0.5, 5)`` for half stars). Ratings
        outside it, or missing, are dropped and counted in the summary. Default: the lowest
        and highest rating in the table.
    catalogue : path-like or Catalogue, optional
        An ``anime-dataset-2023.csv``-schema file (or a loaded catalogue) for genres and
        attributes; ratings of items not in it are dropped and counted. Without it every
        rated item is in the catalogue, named by its id, with no genres.
    exclude_genres : iterable of str
        With a catalogue file: genres whose anime leave the catalogue (as in ``load_mal``).

    Returns
    -------
    RatingData
        Ratings sorted by (user, item), a repeated (user, item) pair keeping its last row.

    Raises
    ------
    DataError
        A missing file or column (the message lists the columns found), a non-integer id, an
        empty scale, or no rating left.

    Examples
    --------
    >>> data = anirec.load_ratings("ratings.csv", user="userId", item="movieId",
    ...                            rating="rating", rating_scale=(0.5, 5))  # doctest: +SKIP
    >>> rec = anirec.Recommender().fit(data)                                # doctest: +SKIP
    """
    summary = LoadSummary()
    source = "the ratings table" if isinstance(table, pd.DataFrame) else str(table)
    frame = read_columns(table, (user, item, rating))
    summary.scores_file = source
    summary.rating_rows = int(len(frame))
    users = _integer_ids(frame[user], source, user)
    items = _integer_ids(frame[item], source, item)
    values = pd.to_numeric(frame[rating], errors="coerce").to_numpy(np.float64)
    finite = np.isfinite(values)
    if rating_scale is None:
        if not finite.any():
            raise DataError(f"{source}: column {rating!r} holds no numeric rating")
        rating_scale = (float(values[finite].min()), float(values[finite].max()))
    try:
        scale = RatingScale.of(rating_scale)
    except (TypeError, ValueError) as error:
        raise DataError(str(error)) from None
    lo, hi = scale
    summary.rating_scale = scale
    keep = scale.contains(values)
    summary.ratings_invalid = int((~keep).sum())

    if catalogue is None:
        cat = _bare_catalogue(np.unique(items[keep]))
    elif isinstance(catalogue, Catalogue):
        cat = catalogue
        summary.anime_file = "the catalogue given"
        summary.anime_rows = summary.anime_kept = cat.n_items
    else:
        cat, excluded_ids = load_catalogue(catalogue, exclude_genres=exclude_genres,
                                           summary=summary)
        cat.excluded_ids = excluded_ids
    position = np.searchsorted(cat.anime_ids, items)
    known = (position < cat.n_items) & \
        (cat.anime_ids[np.minimum(position, max(cat.n_items - 1, 0))] == items) \
        if cat.n_items else np.zeros(items.shape[0], dtype=bool)
    excluded = keep & ~known & np.isin(items, cat.excluded_ids)
    summary.ratings_excluded_anime = int(excluded.sum())
    summary.ratings_unknown_anime = int((keep & ~known).sum()) - summary.ratings_excluded_anime
    keep &= known
    users, items, values = users[keep], position[keep], values[keep]

    # The last row of a repeated (user, item) pair wins, as in load_mal.
    order = np.lexsort((np.arange(users.shape[0]), items, users))
    users, items, values = users[order], items[order], values[order]
    last = np.ones(users.shape[0], dtype=bool)
    last[:-1] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])
    summary.ratings_duplicate = int((~last).sum())
    users, items, values = users[last], items[last], values[last]
    if users.shape[0] == 0:
        raise DataError(f"{source}: no rating left within {lo:g}..{hi:g} (of "
                        f"{summary.rating_rows} rows)")
    user_ids, user_index = np.unique(users, return_inverse=True)
    summary.users_kept = int(user_ids.shape[0])
    summary.ratings_kept = int(users.shape[0])

    rsum = np.bincount(items, weights=values, minlength=cat.n_items)
    rcount = np.bincount(items, minlength=cat.n_items).astype(np.float64)
    # The catalogue is taken to count these ratings (as MyAnimeList's counts its own).
    outside = outside_statistics(cat, rsum, rcount, scale=(lo, hi))
    summary.anime_disagreeing = outside.disagreeing
    cat.bayes_rating = bayesian_rating(outside, rsum, rcount)
    # Whole ratings that fit are stored compactly (int8, as load_mal does); others as float32.
    whole = np.array_equal(values, np.round(values)) and -128 <= lo and hi <= 127
    ratings = Ratings(user_ids=user_ids, users=user_index.astype(np.int32),
                      items=items.astype(np.int32),
                      ratings=values.astype(np.int8 if whole else np.float32))
    return RatingData(catalogue=cat, ratings=ratings, summary=summary, rating_scale=scale)
