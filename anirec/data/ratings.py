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
from typing import Iterable, NamedTuple

import numpy as np
import pandas as pd

from ..errors import DataError
from . import _csv, _ids
from .bayes import bayesian_rating, outside_statistics
from .mal import (DEFAULT_EXCLUDED_GENRES, Catalogue, LoadSummary, MALData, Ratings,
                  load_catalogue)
from .scale import MAL_SCALE, RatingScale

__all__ = ["RatingData", "load_ratings", "Columns", "COLUMNS", "read_table"]

#: The attribute columns of a :class:`Catalogue` (all missing when no catalogue is given).
_ATTRIBUTES = ("score", "scored_by", "members", "episodes", "start_year")


@dataclass
class RatingData(MALData):
    """A loaded ratings table: :class:`MALData` plus the scale of its ratings.

    Attributes
    ----------
    rating_scale : (float, float)
        The lowest and highest possible rating.
    """

    rating_scale: tuple[float, float] = field(default=MAL_SCALE)


class Columns(NamedTuple):
    """The names of the user id, item id and rating columns of a ratings table.

    Every reader of ratings takes them the same way: ``user=, item=, rating=`` in Python
    (:func:`load_ratings`, :meth:`anirec.Recommender.evaluate`), ``--user-col, --item-col,
    --rating-col`` on the command line (``train``, ``evaluate``, ``predict``), and reads them
    with :func:`read_table`.
    """

    user: str = "user_id"
    item: str = "anime_id"
    rating: str = "rating"


#: The columns of MyAnimeList's scores file, the default everywhere.
COLUMNS = Columns()


def _bare_catalogue(item_ids: np.ndarray) -> Catalogue:
    """A catalogue of ids only: names are the ids, no genres, every attribute missing."""
    attributes = pd.DataFrame({name: np.full(item_ids.shape[0], np.nan) for name in _ATTRIBUTES})
    attributes["type"] = pd.Series([None] * item_ids.shape[0], dtype=object)
    return Catalogue(anime_ids=item_ids, names=item_ids.astype(str).astype(object), genres=(),
                     genre_matrix=np.zeros((item_ids.shape[0], 0), dtype=np.float32),
                     attributes=attributes, bayes_rating=np.zeros(item_ids.shape[0]),
                     excluded_genres=())


def read_table(table, columns: tuple[str, str, str], name: str = "the ratings table"):
    """``(source, ids of each id column, rating values as text or numbers, rows)`` of a
    DataFrame (called ``name`` in messages) or a CSV file, ids by the one rule
    (:mod:`anirec.data._ids`), errors naming the row (a table) or the line (a file)."""
    user, item, rating = columns
    if isinstance(table, pd.DataFrame):
        source, found = name, list(table.columns)
        _check_columns(source, columns, found)
        ids = [_ids.column_ids(table[c].to_numpy(), source, c) for c in (user, item)]
        return source, ids, table[rating], len(table)
    path = _csv.as_path(table)
    if not os.path.lexists(path):
        raise DataError(f"{path}: file not found")
    header = _csv.read_header(path, ())
    _check_columns(path, columns, header)
    _, text = _csv.read_text_columns(path, list(dict.fromkeys(columns)))

    def line(row: int) -> str:
        return f"line {_csv.record_line(path, row)}"

    ids = [_ids.parse_text_ids(text[c], path, c, line) for c in (user, item)]
    values = pd.Series(text[rating].to_numpy(zero_copy_only=False), dtype=object)
    return str(path), ids, values, len(values)


def _check_columns(source, columns, found) -> None:
    missing = [c for c in columns if c not in found]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing} (found {list(found)}); name the "
                        "columns with user=, item=, rating= (--user-col, --item-col, "
                        "--rating-col)")


def _scale_of(values: np.ndarray, finite: np.ndarray, source: str, rating: str,
              rating_scale) -> RatingScale:
    """The rating scale: ``rating_scale`` checked, or the lowest and highest rating."""
    if rating_scale is None:
        if not finite.any():
            raise DataError(f"{source}: column {rating!r} holds no numeric rating")
        lo, hi = float(values[finite].min()), float(values[finite].max())
        if lo == hi:
            raise DataError(f"{source}: every rating in column {rating!r} is {lo:g}, so the "
                            "data cannot tell the rating scale: give it (rating_scale=(low, "
                            "high), --rating-scale LOW,HIGH)")
        rating_scale = (lo, hi)
    try:
        return RatingScale.of(rating_scale)
    except ValueError as error:
        raise DataError(str(error)) from None


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
        integers of at most 18 digits (:mod:`anirec.data._ids`: never through float64, no
        bools); in a file, plain digits.
    rating_scale : (low, high), optional
        The lowest and highest possible rating (e.g. ``(0.5, 5)`` for half stars), two finite
        numbers, low < high. Ratings outside it, or missing, are dropped and counted in the
        summary. Default: the lowest and highest rating in the table (which must differ).
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
        A missing file or column (the message lists the columns found), not a regular file, a
        non-integer id, a row with more or fewer fields than the header, invalid UTF-8 or an
        unterminated quote (a file: naming the line), an empty scale, or no rating left.

    Examples
    --------
    >>> data = anirec.load_ratings("ratings.csv", user="userId", item="movieId",
    ...                            rating="rating", rating_scale=(0.5, 5))  # doctest: +SKIP
    >>> rec = anirec.Recommender().fit(data)                                # doctest: +SKIP
    """
    summary = LoadSummary()
    source, (users, items), raw, rows = read_table(table, (user, item, rating))
    summary.scores_file = source
    summary.rating_rows = int(rows)
    values = pd.to_numeric(raw, errors="coerce").to_numpy(np.float64)
    finite = np.isfinite(values)
    scale = _scale_of(values, finite, source, rating, rating_scale)
    lo, hi = summary.rating_scale = scale
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
