"""The scores file, ``users-score-2023.csv``: streamed into three compact arrays.

Two readers give the same arrays, counts and errors:

* the compiled reader (:mod:`anirec.data._scores`), used when the ``cython`` backend is active
  (see :mod:`anirec.backend`) and the file holds only what it reads without doubt. It exists
  because it saves more than a third of ``load_mal`` (two thirds at 2,000,000 ratings:
  ``benchmarks/README.md``, ``benchmarks/bench_reader.py``);
* pyarrow, for everything else: the file is read in blocks, three numeric columns converted.
  One pass before checks the UTF-8 and the line lengths. pyarrow reads the file itself, never
  a Python object, so its threads never take the GIL (which at interpreter exit aborted the
  process); on Linux it opens it through ``/proc/self/fd`` of a descriptor checked to be a
  regular file, so a path swapped for a FIFO meanwhile cannot block it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from . import _csv
from .types import LoadSummary

__all__ = ["SCORES_REQUIRED", "AnimeLookup", "read_scores", "reader_name", "compact_ids",
           "sorted_last"]

SCORES_REQUIRED = ("user_id", "anime_id", "rating")
# pyarrow's block: a record longer than this is an error (as a line longer than MAX_LINE is).
_BLOCK = _csv.MAX_LINE

#: The header the compiled reader accepts (any other order or extra column goes to pyarrow).
_SCORES_HEADER = b"user_id,Username,anime_id,Anime Title,rating"
#: Bytes read at a time by the compiled reader (grown for a record longer than this).
_FAST_BLOCK = 1 << 23


def _native():
    """The compiled reader module when the ``cython`` backend is active and it is built."""
    from .. import backend

    if backend.get_backend() != "cython":
        return None
    try:
        from . import _scores
    except ImportError:  # not built: pyarrow reads the file
        return None
    return _scores


def reader_name() -> str:
    """Which reader :func:`read_scores` tries first: ``"compiled"`` or ``"pyarrow"``."""
    return "compiled" if _native() is not None else "pyarrow"


class AnimeLookup:
    """``anime_id`` -> item index, -1 for an anime not in the anime file, -2 for an excluded one.

    A table indexed by id when the ids are dense enough, else a binary search: memory never
    depends on the largest id.

    Parameters
    ----------
    catalogue_ids : ndarray of int64
        The catalogue's ids, increasing (item ``k`` is ``catalogue_ids[k]``).
    excluded_ids : ndarray of int64
        Ids of the anime removed for an excluded genre.
    """

    def __init__(self, catalogue_ids: np.ndarray, excluded_ids: np.ndarray) -> None:
        ids = np.concatenate([catalogue_ids, excluded_ids]).astype(np.int64)
        codes = np.concatenate([np.arange(catalogue_ids.shape[0], dtype=np.int64),
                                np.full(excluded_ids.shape[0], -2, dtype=np.int64)])
        order = np.argsort(ids, kind="stable")
        self.ids, self.codes = ids[order], codes[order]
        top = int(self.ids[-1]) if self.ids.size else -1
        self.table = None
        if top < 16 * self.ids.size + (1 << 20):
            self.table = np.full(top + 1, -1, dtype=np.int64)
            self.table[self.ids] = self.codes

    def __call__(self, anime_ids: np.ndarray) -> np.ndarray:
        """Codes of non-negative ``anime_ids`` (int64)."""
        if self.table is not None:
            inside = anime_ids < self.table.shape[0]
            out = np.full(anime_ids.shape[0], -1, dtype=np.int64)
            out[inside] = self.table[anime_ids[inside]]
            return out
        pos = np.searchsorted(self.ids, anime_ids)
        pos_c = np.minimum(pos, max(self.ids.shape[0] - 1, 0))
        found = (pos < self.ids.shape[0]) & (self.ids[pos_c] == anime_ids)
        return np.where(found, self.codes[pos_c], -1)


def read_scores(path: Path, lookup: AnimeLookup, summary: LoadSummary, progress: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stream the scores file; (user_id int64, item int32, rating int8) of its valid rows.

    Rows are counted in ``summary``: all of them, and those with an unknown anime, an
    excluded anime or a rating that is missing, not an integer or outside 1..10 (these three
    dropped here; checked in that order).

    Parameters
    ----------
    path : Path
    lookup : AnimeLookup
    summary : LoadSummary
    progress : bool
        Show a tqdm bar over the file's bytes.

    Returns
    -------
    tuple of ndarray

    Raises
    ------
    DataError
        Naming the file and, where it applies, the column and the row or line: not a regular
        file, a missing column, invalid UTF-8, a line longer than ``MAX_LINE`` bytes, an id
        that is not plain digits (no sign, decimal point, exponent or hex) or is empty, a
        rating that is not a number, a malformed row, no data rows.
    """
    header = _csv.read_header(path, SCORES_REQUIRED)
    fast = None
    if lookup.table is not None:
        fast = _read_scores_fast(path, lookup.table, progress)
    if fast is not None:
        arrays, counts = fast
        (summary.rating_rows, summary.ratings_unknown_anime, summary.ratings_excluded_anime,
         summary.ratings_invalid) = (int(c) for c in counts)
        return arrays
    return _read_arrow(path, header, lookup, summary, progress)


def _read_arrow(path: Path, header: list[str], lookup: AnimeLookup, summary: LoadSummary,
                progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pyarrow reader of :func:`read_scores`."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    # pyarrow reads "0x10" as 16: only a file holding "0x" somewhere gets the strict id pass.
    maybe_hex = _csv.scan(path, header, needles=(b"0x", b"0X"))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                   desc=f"reading {path.name}")
    read_opts = pacsv.ReadOptions(block_size=_BLOCK, use_threads=True)
    conv_opts = pacsv.ConvertOptions(
        include_columns=list(SCORES_REQUIRED),
        column_types={"user_id": pa.int64(), "anime_id": pa.int64(), "rating": pa.float64()},
    )
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    rows = 0
    try:
        with _csv.open_regular(path) as checked, \
                pa.OSFile(_same_file(checked, path)) as source, \
                pacsv.open_csv(source, read_options=read_opts, convert_options=conv_opts) as reader:
            for batch in reader:
                parts.append(_batch_arrays(path, batch, rows, lookup, summary))
                rows += batch.num_rows
                if bar is not None:
                    bar.update(source.tell() - bar.n)
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        found = _csv.find_bad_value(path, header, integer=("user_id", "anime_id"),
                                    numeric=("rating",))
        if found is not None:
            raise found from None
        raise DataError(f"{path}: cannot be read as CSV: {' '.join(str(exc).split())}") from None
    finally:
        if bar is not None:
            bar.close()
    if maybe_hex:
        found = _csv.find_bad_value(path, header, integer=("user_id", "anime_id"))
        if found is not None:
            raise found
    summary.rating_rows = rows
    if rows == 0:
        raise DataError(f"{path}: has a header but no data rows")
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.int8)
    return tuple(np.concatenate(p) for p in zip(*parts))  # type: ignore[return-value]


def _same_file(checked, path: Path) -> str:
    """A path by which pyarrow opens the very file ``checked`` (opened by
    :func:`anirec.data._csv.open_regular`, so a regular file): its descriptor's entry in
    ``/proc/self/fd`` where there is one (Linux), else ``path`` itself."""
    entry = f"/proc/self/fd/{checked.fileno()}"
    return entry if os.path.exists(entry) else str(path)


def _read_scores_fast(path: Path, lookup: np.ndarray, progress: bool
                      ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None:
    """The compiled reader: ((user_id, item, rating), counts) or ``None`` to use pyarrow.

    ``lookup[anime_id]`` is the item index (-1 unknown, -2 excluded). ``counts`` holds rows,
    unknown anime, excluded anime and invalid ratings. ``None`` when the compiled reader is
    off or on anything it does not take (another header, a value that is not plain digits,
    invalid UTF-8, a ragged row, a lone CR, odd quoting, a record longer than
    ``_csv.MAX_LINE``, no data rows): the caller then reads the file with pyarrow.

    The file goes through a buffer of ``_FAST_BLOCK`` bytes, cut at record boundaries; the
    result does not depend on the block size.
    """
    native = _native()
    if native is None:
        return None
    lookup = np.ascontiguousarray(lookup, np.int64)
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
    try:
        with _csv.open_regular(path, buffering=0) as fh:
            while True:
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
                    start = 3 if buf.startswith(_csv.UTF8_BOM) else 0
                    end = start + len(_SCORES_HEADER)
                    if buf[start:end] != _SCORES_HEADER:
                        return None
                    if buf[end:end + 1] == b"\n":
                        start = end + 1
                    elif buf[end:end + 2] == b"\r\n":
                        start = end + 2
                    else:
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
                status, consumed, kept = native.parse_block(
                    buf, start, filled, eof, lookup, uid[total:], item[total:], rating[total:],
                    counts)
                # Records end at LF, so checking up to ``consumed`` never cuts a UTF-8 sequence
                # (the header is ASCII, checked above).
                if status != native.OK or native.utf8_error(buf, start, consumed) >= 0:
                    return None
                total += kept
                if eof:
                    break
                if consumed == start:
                    # One record longer than the whole buffer: make room, up to the limit
                    # (past it, pyarrow's path names the line).
                    if len(buf) >= _csv.MAX_LINE:
                        return None
                    buf.extend(bytes(len(buf)))
                    continue
                # Move the cut record to the front and read on after it.
                buf[:filled - consumed] = buf[consumed:filled]
                filled -= consumed
                start = 0
    except OSError:
        return None
    finally:
        if bar is not None:
            bar.close()
    if counts[0] == 0:
        return None
    # Views: the unused tail of the outputs was never written, so it holds no memory.
    return (uid[:total], item[:total], rating[:total]), counts


def _grown(a: np.ndarray | None, n: int, keep: int, dtype: type) -> np.ndarray:
    """An array of ``n`` entries whose first ``keep`` are those of ``a``."""
    out = np.empty(n, dtype=dtype)
    if a is not None and keep:
        out[:keep] = a[:keep]
    return out


def _batch_arrays(path: Path, batch, row0: int, lookup: AnimeLookup, summary: LoadSummary
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The valid rows of one pyarrow batch, its drops counted in ``summary``."""
    n = batch.num_rows
    ids = {}
    for name in ("user_id", "anime_id"):
        column = batch.column(name)
        if column.null_count:
            k = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise _csv.id_error(path, name, row0 + k + 1, "")
        ids[name] = column.to_numpy()
        if n and ids[name].min() < 0:
            k = int(np.flatnonzero(ids[name] < 0)[0])
            raise _csv.id_error(path, name, row0 + k + 1, str(int(ids[name][k])))
    rat = batch.column("rating").to_numpy(zero_copy_only=False)
    item = lookup(ids["anime_id"])
    unknown = item == -1
    excluded = item == -2
    with np.errstate(invalid="ignore"):
        valid_r = (rat >= 1) & (rat <= 10) & (rat == np.round(rat))
    summary.ratings_unknown_anime += int(unknown.sum())
    summary.ratings_excluded_anime += int(excluded.sum())
    summary.ratings_invalid += int((~unknown & ~excluded & ~valid_r).sum())
    ok = (item >= 0) & valid_r
    return ids["user_id"][ok], item[ok].astype(np.int32), rat[ok].astype(np.int8)


def compact_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct ids, index of each id into them).

    One pass when the ids are already grouped in increasing order (the MAL export is sorted by
    user); else a table over the id range when it is small, else :func:`numpy.unique`.
    """
    if ids.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    if np.all(ids[1:] >= ids[:-1]):
        first = np.empty(ids.shape[0], dtype=bool)
        first[0] = True
        np.not_equal(ids[1:], ids[:-1], out=first[1:])
        index = np.cumsum(first, dtype=np.int64)
        index -= 1
        return ids[first].astype(np.int64), index
    top = int(ids.max())
    if top <= max(16 * ids.size, 1 << 24):
        present = np.zeros(top + 1, dtype=bool)
        present[ids] = True
        distinct = np.flatnonzero(present).astype(np.int64)
        rank = np.cumsum(present, dtype=np.int64) - 1
        return distinct, rank[ids]
    distinct, inverse = np.unique(ids, return_inverse=True)
    return distinct.astype(np.int64), inverse.astype(np.int64)


def sorted_last(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_items: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows by (user, item); of a repeated pair only its last row in the file."""
    key = users.astype(np.int64) * max(n_items, 1) + items
    order = np.argsort(key, kind="stable")
    key = key[order]
    # After a stable sort, the last of a run of equal pairs is the last row in the file.
    last = np.ones(key.shape[0], dtype=bool)
    np.not_equal(key[1:], key[:-1], out=last[:-1])
    del key
    keep = order[last]
    del order, last
    return users[keep], items[keep], ratings[keep]
