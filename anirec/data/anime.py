"""The anime file, ``anime-dataset-2023.csv``: read into a :class:`~anirec.data.Catalogue`."""

from __future__ import annotations

import io
import os
import re
from typing import Iterable

import numpy as np
import pandas as pd

from ..errors import DataError
from . import _csv
from .bayes import bayesian_average
from .types import DEFAULT_EXCLUDED_GENRES, Catalogue, LoadSummary

__all__ = ["ANIME_REQUIRED", "load_catalogue"]

MISSING = "UNKNOWN"
ANIME_REQUIRED = ("anime_id", "Name", "Score", "Genres", "Type", "Episodes", "Aired",
                  "Scored By", "Members")
#: The range of each numeric column: a value outside it is an error, not a missing value.
RANGES = {"Score": (1.0, 10.0), "Scored By": (0.0, 1e10), "Members": (0.0, 1e10),
          "Episodes": (0.0, 1e5)}
_YEAR = re.compile(r"(?<!\d)(\d{4})(?!\d)")


def _coerce(frame: pd.DataFrame, column: str, summary: LoadSummary, path: os.PathLike[str],
            file_rows: np.ndarray) -> np.ndarray:
    """Numbers of ``column``: ``UNKNOWN``/empty -> NaN; other text -> NaN, counted in
    ``summary``; a number outside :data:`RANGES` -> :class:`DataError` naming its row
    (``file_rows[k]`` is the data row of the file that ``frame`` row ``k`` came from)."""
    raw = frame[column].str.strip()
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    junk = np.isnan(values) & ~raw.isin([MISSING, ""]).to_numpy()
    n = int(junk.sum())
    if n:
        summary.coerced_columns[column] = n
        summary.anime_values_coerced += n
    lo, hi = RANGES[column]
    with np.errstate(invalid="ignore"):
        out = ~np.isnan(values) & ~((values >= lo) & (values <= hi))
    if out.any():
        k = int(np.flatnonzero(out)[0])
        raise DataError(f"{path}, column {column!r}, row {int(file_rows[k]) + 1}: "
                        f"{_csv.shown(raw.iloc[k])} is outside "
                        f"[{lo:g}, {hi:g}]")
    return values


def _normalise_excluded(exclude_genres: Iterable[str] | str | None) -> tuple[str, ...]:
    if exclude_genres is None:
        return ()
    if isinstance(exclude_genres, str):
        exclude_genres = (exclude_genres,)
    out = []
    for g in exclude_genres:
        if not isinstance(g, str):
            raise TypeError(f"exclude_genres must hold genre names, got {g!r}")
        out.append(g.strip())
    return tuple(dict.fromkeys(out))


def load_catalogue(anime_csv: str | os.PathLike[str], *,
                   exclude_genres: Iterable[str] | str | None = DEFAULT_EXCLUDED_GENRES,
                   summary: LoadSummary | None = None) -> tuple[Catalogue, np.ndarray]:
    """Read ``anime-dataset-2023.csv`` into a :class:`Catalogue`.

    ``bayes_rating`` is computed from the metadata only (``m`` where it is missing);
    :func:`load_mal` fills those in from the ratings.

    Parameters
    ----------
    anime_csv : path-like
    exclude_genres : iterable of str
        Genres (matched case-insensitively) whose anime are removed; may be empty.
    summary : LoadSummary, optional
        Filled in with the anime counts.

    Returns
    -------
    catalogue : Catalogue
    excluded_ids : ndarray of int64
        Sorted MAL ids of the anime removed for an excluded genre.

    Raises
    ------
    DataError
        Missing or empty file, not a regular file (a FIFO, a pipe, a device), missing column,
        wrong delimiter, undecodable bytes, malformed CSV, CR-only line endings, a line longer
        than :data:`anirec.data._csv.MAX_LINE` bytes, an ``anime_id`` that is not a plain
        non-negative integer, or a number outside its column's range (:data:`RANGES`); the
        message names the file and, where it applies, the column and the row.
    """
    path = _csv.as_path(anime_csv)
    summary = summary if summary is not None else LoadSummary()
    summary.anime_file = str(path)
    header = _csv.read_header(path, ANIME_REQUIRED)
    data = _csv.read_small(path)
    _csv.check_utf8(path, data, header)
    _csv.check_line_length(path, data)
    # "utf-8-sig" decodes through a slower Python codec; it only differs on a leading BOM.
    encoding = "utf-8-sig" if data.startswith(_csv.UTF8_BOM) else "utf-8"
    try:
        # From the bytes already read: opening the path again could meet another file.
        frame = pd.read_csv(io.BytesIO(data), usecols=list(ANIME_REQUIRED), dtype=str,
                            keep_default_na=False, na_filter=False, encoding=encoding)
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed CSV: {exc}") from None
    except ValueError as exc:  # e.g. usecols mismatch after a BOM or odd quoting
        raise DataError(f"{path}: cannot read the required columns: {exc}") from None
    del data
    summary.anime_rows = len(frame)
    if len(frame) == 0:
        raise DataError(f"{path}: has a header but no data rows")

    ids = _csv.parse_ids(frame["anime_id"].to_numpy(dtype=object), path, "anime_id")
    file_rows = np.arange(len(frame))

    # Duplicate anime_id rows: keep the last, as for ratings.
    last = ~pd.Series(ids).duplicated(keep="last").to_numpy()
    summary.anime_duplicate = int((~last).sum())
    if summary.anime_duplicate:
        frame = frame.loc[last].reset_index(drop=True)
        ids = ids[last]
        file_rows = file_rows[last]

    # Many anime share a genre string: split and test each distinct string once.
    codes, distinct = pd.factorize(frame["Genres"].to_numpy(dtype=object))
    genre_lists = [
        [] if s.strip() in (MISSING, "") else [g.strip() for g in s.split(",") if g.strip()]
        for s in distinct
    ]
    excluded = _normalise_excluded(exclude_genres)
    excluded_fold = {g.casefold() for g in excluded}
    drop_distinct = np.array([any(g.casefold() in excluded_fold for g in gl)
                              for gl in genre_lists], dtype=bool)
    drop = drop_distinct[codes]
    summary.anime_excluded = int(drop.sum())
    summary.excluded_genres = excluded
    excluded_ids = np.sort(ids[drop])

    keep = ~drop
    order = np.argsort(ids[keep], kind="stable")
    kept_idx = np.flatnonzero(keep)[order]
    # Only the columns still needed are reordered (each one is a copy).
    frame = frame[["Name", "Score", "Scored By", "Members", "Episodes", "Aired", "Type"]]
    frame = frame.iloc[kept_idx].reset_index(drop=True)
    ids = ids[kept_idx]
    file_rows = file_rows[kept_idx]
    kept_codes = codes[kept_idx]
    used = np.unique(kept_codes)
    genres = tuple(sorted({g for k in used for g in genre_lists[k]
                           if g.casefold() not in excluded_fold}))
    col = {g: j for j, g in enumerate(genres)}
    distinct_matrix = np.zeros((len(genre_lists), len(genres)), dtype=np.float32)
    for k in used:
        for g in genre_lists[k]:
            j = col.get(g)
            if j is not None:
                distinct_matrix[k, j] = 1.0
    genre_matrix = distinct_matrix[kept_codes]

    score = _coerce(frame, "Score", summary, path, file_rows)
    scored_by = _coerce(frame, "Scored By", summary, path, file_rows)
    members = _coerce(frame, "Members", summary, path, file_rows)
    episodes = _coerce(frame, "Episodes", summary, path, file_rows)
    # The first four-digit number of "Aired" (what str.extract gives, without its overhead).
    start_year = np.full(len(frame), np.nan)
    for k, text in enumerate(frame["Aired"].to_numpy(dtype=object)):
        found = _YEAR.search(text)
        if found is not None:
            start_year[k] = float(found.group(1))
    typ = frame["Type"].str.strip().to_numpy(dtype=object)
    typ[np.isin(typ, [MISSING, ""])] = None
    attributes = pd.DataFrame({
        "score": score, "scored_by": scored_by, "members": members, "type": pd.Series(typ, dtype=object),
        "episodes": episodes, "start_year": start_year,
    })
    zeros = np.zeros(len(ids))
    catalogue = Catalogue(
        anime_ids=ids, names=frame["Name"].to_numpy(dtype=object), genres=genres,
        genre_matrix=genre_matrix, attributes=attributes,
        bayes_rating=bayesian_average(score, scored_by, zeros, zeros), excluded_genres=excluded,
    )
    summary.anime_kept = catalogue.n_items
    return catalogue, excluded_ids
