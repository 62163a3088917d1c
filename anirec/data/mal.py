"""Loading and cleaning the Kaggle "MyAnimeList 2023" files.

:func:`load_mal` reads ``anime-dataset-2023.csv`` into a :class:`Catalogue` and
``users-score-2023.csv`` into compact :class:`Ratings` arrays, and reports in a
:class:`LoadSummary` every row it did not keep and why. Nothing is merged into a wide table:
the 24-million-row scores file is streamed in blocks of its three numeric columns.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ..errors import DataError, UnknownIdError
from . import _csv

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
]

#: Genres whose anime leave the catalogue by default.
DEFAULT_EXCLUDED_GENRES: tuple[str, ...] = ("Ecchi", "Hentai", "Erotica")
#: The ``Type`` values of the 2023 data set (``UNKNOWN`` is missing), in a stable order.
ANIME_TYPES: tuple[str, ...] = ("TV", "Movie", "OVA", "ONA", "Special", "Music")

MISSING = "UNKNOWN"
ANIME_REQUIRED = ("anime_id", "Name", "Score", "Genres", "Type", "Episodes", "Aired",
                  "Scored By", "Members")
SCORES_REQUIRED = ("user_id", "anime_id", "rating")
_YEAR = re.compile(r"(?<!\d)(\d{4})(?!\d)")
_UTF8_BOM = b"\xef\xbb\xbf"


@dataclass
class Catalogue:
    """The anime that can be trained on and recommended.

    Item index ``k`` (row ``k`` of every array) is the anime ``anime_ids[k]``; items are sorted
    by MAL id. Anime carrying an excluded genre are not in the catalogue.

    Attributes
    ----------
    anime_ids : ndarray of int64
        Item index -> MAL ``anime_id`` (increasing).
    names : ndarray of object
        ``Name`` per item.
    genres : tuple of str
        Genre names in their stable (sorted) order, excluded genres removed: the columns of
        ``genre_matrix``.
    genre_matrix : ndarray of float32, shape (n_items, n_genres)
        Genre one-hot (0/1).
    attributes : pandas.DataFrame
        Per item: ``score``, ``scored_by``, ``members``, ``episodes``, ``start_year`` (float,
        NaN where ``UNKNOWN``) and ``type`` (string, missing where ``UNKNOWN``).
    bayes_rating : ndarray of float64
        Bayesian average rating per item (see :func:`bayesian_average`); where the metadata
        is missing it is computed from all loaded ratings (feature building recomputes those
        from training ratings only).
    excluded_genres : tuple of str
        The genres whose anime were removed.
    """

    anime_ids: np.ndarray
    names: np.ndarray
    genres: tuple[str, ...]
    genre_matrix: np.ndarray
    attributes: pd.DataFrame
    bayes_rating: np.ndarray
    excluded_genres: tuple[str, ...] = DEFAULT_EXCLUDED_GENRES

    @property
    def n_items(self) -> int:
        """Number of anime in the catalogue."""
        return int(self.anime_ids.shape[0])

    @property
    def n_genres(self) -> int:
        """Number of genre features."""
        return len(self.genres)

    def index_of(self, anime_ids: Iterable[int] | np.ndarray | int) -> np.ndarray:
        """Item indices of MAL anime ids.

        Parameters
        ----------
        anime_ids : int or array_like of int

        Returns
        -------
        ndarray of int64
            Same shape as the input.

        Raises
        ------
        UnknownIdError
            Naming the first id that is not in the catalogue (unknown or excluded).
        """
        return index_of_sorted(self.anime_ids, anime_ids, "anime_id", "the catalogue")


@dataclass
class Ratings:
    """Ratings as compact parallel arrays, one entry per (user, anime) pair.

    Attributes
    ----------
    user_ids : ndarray of int64
        User index -> MAL ``user_id`` (increasing).
    users : ndarray of int32
        User index of each rating.
    items : ndarray of int32
        Item index (into the :class:`Catalogue`) of each rating.
    ratings : ndarray of int8
        The rating, 1..10.
    """

    user_ids: np.ndarray
    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray

    @property
    def n_users(self) -> int:
        """Number of users."""
        return int(self.user_ids.shape[0])

    @property
    def n_ratings(self) -> int:
        """Number of ratings."""
        return int(self.ratings.shape[0])

    def __len__(self) -> int:
        return self.n_ratings

    def user_index_of(self, user_ids: Iterable[int] | np.ndarray | int) -> np.ndarray:
        """User indices of MAL user ids.

        Raises
        ------
        UnknownIdError
            Naming the first id that has no kept rating.
        """
        return index_of_sorted(self.user_ids, user_ids, "user_id", "the ratings")


def index_of_sorted(sorted_ids: np.ndarray, ids: object, what: str, where: str) -> np.ndarray:
    """Positions of ``ids`` in the increasing array ``sorted_ids`` (same shape as ``ids``).

    Raises
    ------
    UnknownIdError
        Naming the first id that ``sorted_ids`` lacks, as "unknown {what} {id} (not in
        {where})".
    """
    arr = np.asarray(ids)
    if arr.dtype.kind not in "iu":
        if arr.size == 0:
            arr = arr.astype(np.int64)
        else:
            raise UnknownIdError(f"{what} must be integers, got {arr.dtype} values")
    arr = arr.astype(np.int64, copy=False)
    pos = np.searchsorted(sorted_ids, arr)
    pos_c = np.minimum(pos, max(sorted_ids.shape[0] - 1, 0))
    ok = (pos < sorted_ids.shape[0]) & (sorted_ids[pos_c] == arr) if sorted_ids.size else \
        np.zeros(arr.shape, dtype=bool)
    if not np.all(ok):
        bad = arr[~ok].ravel()[0]
        raise UnknownIdError(f"unknown {what} {int(bad)} (not in {where})")
    return pos_c.astype(np.int64)


@dataclass
class LoadSummary:
    """What :func:`load_mal` read, kept and dropped, with counts per reason.

    Every rating row of the scores file is counted exactly once in ``ratings_kept`` or one of
    the ``ratings_*`` drop reasons (checked in this order: unknown anime, excluded anime,
    rating outside 1..10, duplicate pair, too few ratings of the user, of the anime).
    """

    anime_file: str = ""
    scores_file: str = ""
    anime_rows: int = 0
    anime_duplicate: int = 0
    anime_excluded: int = 0
    anime_values_coerced: int = 0
    anime_kept: int = 0
    rating_rows: int = 0
    ratings_unknown_anime: int = 0
    ratings_excluded_anime: int = 0
    ratings_invalid: int = 0
    ratings_duplicate: int = 0
    ratings_user_min: int = 0
    ratings_item_min: int = 0
    ratings_kept: int = 0
    users_kept: int = 0
    users_dropped: int = 0
    excluded_genres: tuple[str, ...] = ()
    coerced_columns: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """The counts (and file names) as a plain dict."""
        return asdict(self)

    @property
    def ratings_dropped(self) -> int:
        """Rating rows not kept, all reasons together."""
        return self.rating_rows - self.ratings_kept

    def __str__(self) -> str:
        lines = [
            f"anime file {self.anime_file}: {self.anime_rows} rows, {self.anime_kept} anime kept",
            f"  duplicate anime_id rows (last kept): {self.anime_duplicate}",
            f"  anime with an excluded genre {list(self.excluded_genres)}: {self.anime_excluded}",
            f"  non-numeric values read as missing: {self.anime_values_coerced}"
            + (f" {self.coerced_columns}" if self.coerced_columns else ""),
            f"scores file {self.scores_file}: {self.rating_rows} rows, "
            f"{self.ratings_kept} ratings kept from {self.users_kept} users",
            f"  anime not in the anime file: {self.ratings_unknown_anime}",
            f"  anime with an excluded genre: {self.ratings_excluded_anime}",
            f"  rating outside 1..10 or missing: {self.ratings_invalid}",
            f"  duplicate (user, anime) pairs (last kept): {self.ratings_duplicate}",
            f"  user below the minimum number of ratings: {self.ratings_user_min}"
            f" ({self.users_dropped} users)",
            f"  anime below the minimum number of ratings: {self.ratings_item_min}",
        ]
        return "\n".join(lines)


@dataclass
class MALData:
    """A loaded data set: the catalogue, the ratings and the load summary."""

    catalogue: Catalogue
    ratings: Ratings
    summary: LoadSummary


# --------------------------------------------------------------------------- Bayesian rating


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


# --------------------------------------------------------------------------- anime file


def _coerce(frame: pd.DataFrame, column: str, summary: LoadSummary) -> np.ndarray:
    """Numbers of ``column``; ``UNKNOWN``/empty -> NaN; other junk -> NaN, counted."""
    raw = frame[column].str.strip()
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    junk = np.isnan(values) & ~raw.isin([MISSING, ""]).to_numpy()
    n = int(junk.sum())
    if n:
        summary.coerced_columns[column] = n
        summary.anime_values_coerced += n
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
        Missing or empty file, missing column, wrong delimiter, undecodable bytes, malformed
        CSV, or an ``anime_id`` that is not a non-negative integer (naming its row).
    """
    path = _csv.as_path(anime_csv)
    summary = summary if summary is not None else LoadSummary()
    summary.anime_file = str(path)
    header = _csv.read_header(path, ANIME_REQUIRED)
    data = path.read_bytes()
    _csv.check_utf8(path, data, header)
    # "utf-8-sig" decodes through a slower Python codec; it only differs on a leading BOM.
    encoding = "utf-8-sig" if data.startswith(_UTF8_BOM) else "utf-8"
    try:
        frame = pd.read_csv(path, usecols=list(ANIME_REQUIRED), dtype=str,
                            keep_default_na=False, na_filter=False, encoding=encoding)
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed CSV: {exc}") from None
    except ValueError as exc:  # e.g. usecols mismatch after a BOM or odd quoting
        raise DataError(f"{path}: cannot read the required columns: {exc}") from None
    del data
    summary.anime_rows = len(frame)
    if len(frame) == 0:
        raise DataError(f"{path}: has a header but no data rows")

    ids_raw = frame["anime_id"].str.strip()
    ids_f = pd.to_numeric(ids_raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(ids_f) | (ids_f != np.round(ids_f)) | (ids_f < 0)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        shown = ids_raw.iloc[k] if ids_raw.iloc[k] else "(empty)"
        raise DataError(f"{path}, column 'anime_id', row {k + 1}: {shown!r} is not a "
                        "non-negative integer id")
    ids = ids_f.astype(np.int64)

    # Duplicate anime_id rows: keep the last, as for ratings.
    last = ~pd.Series(ids).duplicated(keep="last").to_numpy()
    summary.anime_duplicate = int((~last).sum())
    if summary.anime_duplicate:
        frame = frame.loc[last].reset_index(drop=True)
        ids = ids[last]

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

    score = _coerce(frame, "Score", summary)
    scored_by = _coerce(frame, "Scored By", summary)
    members = _coerce(frame, "Members", summary)
    episodes = _coerce(frame, "Episodes", summary)
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


# --------------------------------------------------------------------------- scores file


try:
    from . import _scores
except ImportError:  # not built: pyarrow reads the file
    _scores = None

#: The header the compiled reader accepts (any other order or extra column goes to pyarrow).
_SCORES_HEADER = b"user_id,Username,anime_id,Anime Title,rating"
#: Bytes read at a time by the compiled reader (grown for a record longer than this).
_FAST_BLOCK = 1 << 23
#: Blocks of at least this many bytes are parsed in two halves by two threads.
_FAST_SPLIT = 1 << 20
#: Threads of the compiled reader: 2 when this process may run on two cores or more.
_FAST_THREADS = min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                    else (os.cpu_count() or 1))


def _read_scores(path: Path, anime_lookup: np.ndarray, summary: LoadSummary,
                 progress: bool, early=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stream the scores file; return (user_id int64, item int32, rating int8) of valid rows.

    ``anime_lookup[anime_id]`` is the item index, -1 for an anime not in the anime file and -2
    for an excluded one (ids past the end of the table are unknown).

    The compiled reader (:mod:`anirec.data._scores`) reads the file when it is built and the
    file holds nothing it does not read without doubt; otherwise pyarrow reads it, and its
    errors name the file, column and row. Both give the same arrays and counts. ``early`` is
    what :func:`_read_scores_early` returned, if the read was started before the catalogue.
    """
    header = _csv.read_header(path, SCORES_REQUIRED)
    if early is not None:
        raw = early[0]()
        fast = _finish_raw(raw, anime_lookup) if raw is not None else None
        # Progress was shown by the early read; pyarrow shows its own if it runs.
    else:
        fast = _read_scores_fast(path, anime_lookup, progress)
    if fast is not None:
        arrays, counts = fast
        (summary.rating_rows, summary.ratings_unknown_anime, summary.ratings_excluded_anime,
         summary.ratings_invalid) = (int(c) for c in counts)
        return arrays
    return _read_scores_arrow(path, header, anime_lookup, summary, progress)


def _read_scores_fast(path: Path, anime_lookup: np.ndarray | None, progress: bool,
                      cancel: threading.Event | None = None
                      ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None:
    """The compiled reader: ((user_id, item, rating), counts) or ``None`` to use pyarrow.

    ``counts`` holds rows, unknown anime, excluded anime and invalid ratings. With
    ``anime_lookup`` None the rows are read before the catalogue is known: every row is
    returned with its ``anime_id`` as item (rating 0 if invalid) and only the rows counted;
    :func:`_finish_raw` applies the lookup. ``cancel`` (set) stops the read. ``None`` when
    the extension is not built or on anything the strict reader does not take (another
    header, a value that is not plain digits, invalid UTF-8, a ragged row, a lone CR, odd
    quoting, no data rows): the caller then reads the file with pyarrow.

    The file goes through a buffer of ``_FAST_BLOCK`` bytes, cut at record boundaries; a
    block of ``_FAST_SPLIT`` bytes or more is parsed in two halves by two threads when
    ``_FAST_THREADS`` is 2. The result does not depend on the thread count or block size.
    """
    if _scores is None:
        return None
    lookup = None if anime_lookup is None else np.ascontiguousarray(anime_lookup, np.int64)
    counts = np.zeros(4, dtype=np.int64)
    try:
        size = path.stat().st_size
    except OSError:
        return None
    buf = bytearray(min(_FAST_BLOCK, size + 1))
    # Output arrays, sized from the first block's bytes per record and grown when a block
    # might not fit (a block of m bytes holds at most m // 8 + 1 records).
    uid = item = rating = None
    total = 0
    filled = 0
    start = -1     # where the records start, once the header is read
    eof = False
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=size, unit="B", unit_scale=True, desc=f"reading {path.name}")
    pool = None
    scratch = (np.empty(0, np.int64),) * 3
    if _FAST_THREADS > 1 and size >= 2 * _FAST_SPLIT:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="anirec-scores")
    try:
        with open(path, "rb", buffering=0) as fh:
            while True:
                if cancel is not None and cancel.is_set():
                    return None
                with memoryview(buf) as view:
                    while filled < len(buf) and not eof:
                        got = fh.readinto(view[filled:])
                        if not got:
                            eof = True
                        else:
                            filled += got
                            if bar is not None:
                                bar.update(got)
                if start < 0:
                    start = 3 if buf.startswith(_UTF8_BOM) else 0
                    end = start + len(_SCORES_HEADER)
                    if buf[start:end] != _SCORES_HEADER:
                        return None
                    if buf[end:end + 1] == b"\n":
                        start = end + 1
                    elif buf[end:end + 2] == b"\r\n":
                        start = end + 2
                    else:
                        return None
                    if _scores.utf8_error(buf, 0, start) >= 0:
                        return None
                room = (filled - start) // 8 + 2
                if uid is None or uid.shape[0] - total < room:
                    if uid is None:
                        # First guess: the first block's newlines scaled to the file.
                        per = max(buf.count(b"\n", start, min(filled, start + (1 << 20))), 1)
                        want = int(size / max(min(filled - start, 1 << 20), 1) * per * 1.05) + room
                    else:
                        want = max(2 * uid.shape[0], total + room)
                    uid, item, rating = (_grown(a, want, total, dt) for a, dt in
                                         ((uid, np.int64), (item, np.int32),
                                          (rating, np.int8)))
                whole = (uid[total:], item[total:], rating[total:])
                mid = -1
                if pool is not None and filled - start >= _FAST_SPLIT:
                    mid = buf.find(b"\n", start + (filled - start) // 2, filled) + 1
                if start < mid < filled:
                    # Two threads: the second half is parsed on the guess that ``mid`` (just
                    # past a LF) starts a record. The first half, parsed from a known record
                    # start, tells whether it does; if not (a LF inside quotes), its guess is
                    # dropped and the rest is parsed here. Same result either way.
                    if scratch[0].shape[0] < (filled - mid) // 8 + 2:
                        scratch = tuple(np.empty(len(buf) // 8 + 2, dtype=dt)
                                        for dt in (np.int64, np.int32, np.int8))
                    counts2 = np.zeros(4, dtype=np.int64)
                    future = pool.submit(_parse_range, buf, mid, filled, eof, lookup, scratch,
                                         counts2)
                    try:
                        first = _parse_range(buf, start, mid, False, lookup, whole, counts)
                    finally:
                        second = future.result()     # the worker reads buf: always wait
                    if first is None:
                        return None
                    consumed, kept = first
                    if consumed == mid:
                        if second is None:
                            return None
                        consumed, kept2 = second
                        for dst, src in zip((uid, item, rating), scratch):
                            dst[total + kept:total + kept + kept2] = src[:kept2]
                        kept += kept2
                        counts += counts2
                    else:
                        rest = _parse_range(buf, consumed, filled, eof, lookup,
                                            tuple(a[kept:] for a in whole), counts)
                        if rest is None:
                            return None
                        consumed, kept2 = rest
                        kept += kept2
                else:
                    one = _parse_range(buf, start, filled, eof, lookup, whole, counts)
                    if one is None:
                        return None
                    consumed, kept = one
                total += kept
                if eof:
                    break
                if consumed == start:
                    # One record longer than the whole buffer: make room.
                    buf.extend(bytes(len(buf)))
                    continue
                # Move the cut record to the front and read on after it.
                buf[:filled - consumed] = buf[consumed:filled]
                filled -= consumed
                start = 0
    except OSError:
        return None
    finally:
        if pool is not None:
            pool.shutdown()
        if bar is not None:
            bar.close()
    if counts[0] == 0:
        return None
    # Views: the unused tail of the outputs was never written, so it holds no memory.
    return (uid[:total], item[:total], rating[:total]), counts


def _finish_raw(raw: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
                lookup: np.ndarray
                ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None:
    """Apply the catalogue's lookup to rows read without it (in place); as
    :func:`_read_scores_fast` with the lookup would have returned, or ``None``."""
    (uid, item, rating), counts = raw
    kept = _scores.apply_lookup(uid, item, rating, uid.shape[0],
                                np.ascontiguousarray(lookup, dtype=np.int64), counts)
    if kept < 0:
        return None
    return (uid[:kept], item[:kept], rating[:kept]), counts


def _read_scores_early(path: Path, progress: bool):
    """Start reading the scores file in a thread while the catalogue loads: a function that
    waits for the rows read without the lookup (or ``None``), and one that cancels the read.

    Only when the compiled reader is built and two cores are free to overlap the two files.
    """
    if _scores is None or _FAST_THREADS < 2:
        return None
    from concurrent.futures import ThreadPoolExecutor

    cancel = threading.Event()

    def read():
        try:
            return _read_scores_fast(path, None, progress, cancel)
        except Exception:  # anything odd: the ordinary path after the catalogue says what
            return None

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="anirec-scores-early")
    future = pool.submit(read)
    pool.shutdown(wait=False)

    def stop() -> None:
        cancel.set()
        future.result()

    return future.result, stop


def _parse_range(buf: bytearray, lo: int, hi: int, final: bool, lookup: np.ndarray,
                 out: tuple[np.ndarray, np.ndarray, np.ndarray],
                 counts: np.ndarray) -> tuple[int, int] | None:
    """Parse and UTF-8-check the records of ``buf[lo:hi]``: (consumed, kept) or ``None``."""
    status, consumed, kept = _scores.parse_block(buf, lo, hi, final, lookup, *out, counts)
    # Records end at LF, so checking up to ``consumed`` never cuts a UTF-8 sequence.
    if status != _scores.OK or _scores.utf8_error(buf, lo, consumed) >= 0:
        return None
    return consumed, kept


def _grown(a: np.ndarray | None, n: int, keep: int, dtype: type) -> np.ndarray:
    """An array of ``n`` entries whose first ``keep`` are those of ``a``."""
    out = np.empty(n, dtype=dtype)
    if a is not None and keep:
        out[:keep] = a[:keep]
    return out


def _read_scores_arrow(path: Path, header: list[str], anime_lookup: np.ndarray,
                       summary: LoadSummary, progress: bool
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pyarrow reader of :func:`_read_scores`, with its precise errors."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                   desc=f"reading {path.name}")
    source = _csv.CheckedReader(path, header, on_read=bar.update if bar is not None else None)
    read_opts = pacsv.ReadOptions(block_size=1 << 24, use_threads=True)
    conv_opts = pacsv.ConvertOptions(
        include_columns=list(SCORES_REQUIRED),
        column_types={"user_id": pa.int64(), "anime_id": pa.int64(), "rating": pa.float64()},
    )
    users_parts: list[np.ndarray] = []
    items_parts: list[np.ndarray] = []
    rating_parts: list[np.ndarray] = []
    n_lookup = anime_lookup.shape[0]
    rows = 0
    try:
        try:
            reader = pacsv.open_csv(source, read_options=read_opts, convert_options=conv_opts)
            for batch in reader:
                n = batch.num_rows
                uid_col = batch.column("user_id")
                aid_col = batch.column("anime_id")
                for name, column in (("user_id", uid_col), ("anime_id", aid_col)):
                    if column.null_count:
                        k = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
                        raise DataError(f"{path}, column {name!r}, row {rows + k + 1}: "
                                        "empty value, expected an integer id")
                uid = uid_col.to_numpy()
                aid = aid_col.to_numpy()
                rat = batch.column("rating").to_numpy(zero_copy_only=False)
                for name, ids in (("user_id", uid), ("anime_id", aid)):
                    if n and ids.min() < 0:
                        k = int(np.flatnonzero(ids < 0)[0])
                        raise DataError(f"{path}, column {name!r}, row {rows + k + 1}: "
                                        f"{int(ids[k])} is not a non-negative id")
                inside = aid < n_lookup
                item = np.full(n, -1, dtype=np.int64)
                item[inside] = anime_lookup[aid[inside]]
                unknown = item == -1
                excluded = item == -2
                with np.errstate(invalid="ignore"):
                    valid_r = (rat >= 1) & (rat <= 10) & (rat == np.round(rat))
                invalid = ~unknown & ~excluded & ~valid_r
                summary.ratings_unknown_anime += int(unknown.sum())
                summary.ratings_excluded_anime += int(excluded.sum())
                summary.ratings_invalid += int(invalid.sum())
                ok = item >= 0
                ok &= valid_r
                users_parts.append(uid[ok])
                items_parts.append(item[ok].astype(np.int32))
                rating_parts.append(rat[ok].astype(np.int8))
                rows += n
        except (pa.ArrowInvalid, pa.ArrowException, OSError, UnicodeDecodeError) as exc:
            if source.error is not None:
                raise source.error from None
            found = _csv.find_bad_value(path, header, integer=("user_id", "anime_id"),
                                        numeric=("rating",))
            if found is not None:
                raise found from None
            raise DataError(f"{path}: cannot be read as CSV: {exc}") from None
        if source.error is not None:
            raise source.error
    finally:
        source.close()
        if bar is not None:
            bar.close()
    summary.rating_rows = rows
    if rows == 0:
        raise DataError(f"{path}: has a header but no data rows")
    cat = lambda parts, dt: np.concatenate(parts) if parts else np.empty(0, dt)  # noqa: E731
    return cat(users_parts, np.int64), cat(items_parts, np.int32), cat(rating_parts, np.int8)


def _compact_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct ids, index of each id into them), in O(n) for dense id ranges."""
    if ids.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    if _scores is not None:
        # The MAL export is sorted by user: one compiled pass, no table over the id range.
        found = _scores.compact_sorted(np.ascontiguousarray(ids, dtype=np.int64))
        if found is not None:
            return found
    top = int(ids.max())
    if top <= max(16 * ids.size, 1 << 24):
        present = np.zeros(top + 1, dtype=bool)
        present[ids] = True
        distinct = np.flatnonzero(present).astype(np.int64)
        rank = np.cumsum(present, dtype=np.int64) - 1
        return distinct, rank[ids]
    distinct, inverse = np.unique(ids, return_inverse=True)
    return distinct.astype(np.int64), inverse.astype(np.int64)


def _pair_order(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> np.ndarray:
    """``np.argsort(users * n_items + items, kind="stable")``: rows by (user, item), rows of
    one pair in file order.

    With the compiled helpers: no sort by user when the rows are already grouped by user (the
    MAL export is), else one counting sort; then each user's run sorted by item.
    """
    n = users.shape[0]
    if _scores is None or n == 0:
        return np.argsort(users.astype(np.int64) * max(n_items, 1) + items, kind="stable")
    users = np.ascontiguousarray(users, dtype=np.int32)
    bounds = _scores.run_bounds(users, n_users)
    if bounds is not None:
        order = np.arange(n, dtype=np.int64)
    else:
        order, bounds = _scores.counting_order(users, n_users)
    _scores.grouped_argsort(bounds, np.ascontiguousarray(items, dtype=np.int32), order)
    return order


def _sorted_last(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int,
                 n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows by (user, item); of a repeated pair only its last row in the file."""
    order = _pair_order(users, items, n_users, n_items)
    if _scores is not None:
        return _scores.gather_last(order, np.ascontiguousarray(users, dtype=np.int32),
                                   np.ascontiguousarray(items, dtype=np.int32),
                                   np.ascontiguousarray(ratings, dtype=np.int8))
    users, items, ratings = users[order], items[order], ratings[order]
    # After a stable sort, the last of a run of equal pairs is the last row in the file.
    last = np.ones(users.shape[0], dtype=bool)
    np.not_equal(users[1:], users[:-1], out=last[:-1])
    last[:-1] |= items[1:] != items[:-1]
    return users[last], items[last], ratings[last]


def load_mal(anime_csv: str | os.PathLike[str], scores_csv: str | os.PathLike[str], *,
             exclude_genres: Iterable[str] | str | None = DEFAULT_EXCLUDED_GENRES,
             min_user_ratings: int = 1, min_item_ratings: int = 1,
             progress: bool = False) -> MALData:
    """Load and clean the two MyAnimeList 2023 files.

    The anime file becomes the :class:`Catalogue` (anime with an excluded genre removed,
    genres one-hot in sorted order, ``UNKNOWN`` read as missing, numbers coerced). The scores
    file is streamed, three numeric columns only, into :class:`Ratings` sorted by (user,
    item): by the compiled reader of :mod:`anirec.data._scores` when it is built and the file
    holds nothing unusual, else by pyarrow (same result). Rows are dropped, and counted in
    the :class:`LoadSummary`, for: an anime
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
        A missing or empty file, a missing required column, a wrong delimiter, an undecodable
        byte, a malformed row, or a non-numeric id; the message names the file, the column and
        the row (or line).
    """
    for name, v in (("min_user_ratings", min_user_ratings),
                    ("min_item_ratings", min_item_ratings)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    summary = LoadSummary()
    scores_path = _csv.as_path(scores_csv)
    # The compiled reader needs the catalogue only to map anime ids: it reads the scores file
    # on another core meanwhile, and the ids are mapped after (same result, same errors: a
    # problem with either file is still reported as before, the anime file first).
    early = _read_scores_early(scores_path, progress)
    try:
        catalogue, excluded_ids = load_catalogue(anime_csv, exclude_genres=exclude_genres,
                                                 summary=summary)
    except BaseException:
        if early is not None:
            early[1]()
        raise
    summary.scores_file = str(scores_path)
    top = int(max(catalogue.anime_ids.max(initial=0), excluded_ids.max(initial=0)))
    lookup = np.full(top + 1, -1, dtype=np.int64)
    lookup[excluded_ids] = -2
    lookup[catalogue.anime_ids] = np.arange(catalogue.n_items)
    uid, items, ratings = _read_scores(scores_path, lookup, summary, progress, early)

    user_ids, users = _compact_ids(uid)
    del uid
    users = users.astype(np.int32, copy=False)     # at most one user per row
    n_rows = users.shape[0]
    users, items, ratings = _sorted_last(users, items, ratings, user_ids.shape[0],
                                         catalogue.n_items)
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
        remap = np.cumsum(present) - 1
        users = remap[users]
        user_ids = user_ids[present]
    summary.users_kept = int(user_ids.shape[0])
    summary.ratings_kept = int(users.shape[0])

    rsum = np.bincount(items, weights=ratings, minlength=catalogue.n_items)
    rcount = np.bincount(items, minlength=catalogue.n_items).astype(np.float64)
    catalogue.bayes_rating = bayesian_average(catalogue.attributes["score"].to_numpy(),
                                              catalogue.attributes["scored_by"].to_numpy(),
                                              rsum, rcount)
    result = Ratings(user_ids=user_ids, users=users.astype(np.int32, copy=False),
                     items=items.astype(np.int32, copy=False),
                     ratings=ratings.astype(np.int8, copy=False))
    return MALData(catalogue=catalogue, ratings=result, summary=summary)
