"""One person's own ratings, however given: a mapping, a table, a CSV file or a MyAnimeList export.

:func:`read_person_ratings` turns every form into one :class:`PersonRatings`;
:func:`read_mal_list` reads MyAnimeList's list export (``animelist_*.xml.gz``: the root
``<myanimelist>``, an optional ``<myinfo>``, then one ``<anime>`` per list entry with its
``<series_animedb_id>``, ``<my_score>`` (0 = not scored), ``<my_status>``, ...). Scored entries
are ratings; every entry, Plan to Watch included, is *listed* (to be left out of the
recommendations).

The export comes from outside, so it is parsed by expat with every DTD and entity declaration
refused (no entity expansion, no external file or network access) and within the limits below;
a gzipped file is inflated a chunk at a time, so a gzip bomb stops at :data:`MAX_XML_BYTES`.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import re
import stat
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import BinaryIO, Iterator
from xml.parsers import expat

import numpy as np
import pandas as pd

from .. import _files
from ..errors import DataError
from . import _csv, _ids

__all__ = ["PersonRatings", "read_mal_list", "read_person_ratings", "MAX_FILE_BYTES",
           "MAX_XML_BYTES", "MAX_DEPTH", "MAX_ENTRIES", "MAX_FIELD_CHARS"]

#: The largest file read, in bytes as stored (gzipped or not); a real export is well under 5 MiB.
MAX_FILE_BYTES = 64 << 20
#: The most bytes of XML read, once decompressed (:data:`MAX_ENTRIES` full entries fit twice).
MAX_XML_BYTES = 64 << 20
#: The deepest element nesting accepted (an export nests three deep).
MAX_DEPTH = 16
#: The most ``<anime>`` entries accepted (MyAnimeList lists fewer than 30 000 anime in all).
MAX_ENTRIES = 50_000
#: The longest text of one element, in characters (titles, tags and comments are far shorter).
MAX_FIELD_CHARS = 1 << 16

_ROOT = "myanimelist"
_FIELDS = ("series_animedb_id", "series_title", "my_score")
_GZIP = b"\x1f\x8b"
_CHUNK = 1 << 20
_SCORE = re.compile(r"\s*(?:[0-9]|10)\s*")
_NUMBER = re.compile(r"\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*")


@dataclass(frozen=True, eq=False)
class PersonRatings:
    """One person's ratings and list, ready to fold in.

    Attributes
    ----------
    anime_ids : ndarray of int64
        The rated anime, increasing, distinct.
    ratings : ndarray of float64
        The rating of each of ``anime_ids``.
    listed : ndarray of int64
        Every anime on the person's list, increasing, distinct: the rated ones and, from a
        MyAnimeList export, the unscored entries too (Plan to Watch included).
    source : str
        Where they came from: a file name, "the ratings mapping" or "the ratings table".

    The arrays are made read-only; two instances compare equal only if they are the same.
    """

    anime_ids: np.ndarray
    ratings: np.ndarray
    listed: np.ndarray
    source: str

    def __post_init__(self) -> None:
        for array in (self.anime_ids, self.ratings, self.listed):
            array.setflags(write=False)

    def __len__(self) -> int:
        return int(self.anime_ids.shape[0])


# --------------------------------------------------------------------------- the export


def read_mal_list(path: str | os.PathLike[str], *,
                  rating_scale: tuple[float, float] | None = None) -> PersonRatings:
    """Read a MyAnimeList anime list export, gzipped or not (told by its first bytes).

    Parameters
    ----------
    path : path-like
        The export (``animelist_<time>_<user>.xml.gz`` as downloaded, or unpacked).
    rating_scale : (low, high), optional
        Scores outside it are refused (MyAnimeList scores are 1..10).

    Returns
    -------
    PersonRatings
        Entries with ``my_score`` 1..10 as ratings; every entry in ``listed``. The same anime
        listed twice with the same score counts once.

    Raises
    ------
    DataError
        Naming the file and, for a bad entry, its position, line, anime id and title where
        known, and the field: not a regular file; beyond a size limit (:data:`MAX_FILE_BYTES`,
        :data:`MAX_XML_BYTES`, :data:`MAX_DEPTH`, :data:`MAX_ENTRIES`,
        :data:`MAX_FIELD_CHARS`); a DTD or entity declaration; malformed XML or gzip; a root
        other than ``<myanimelist>``; a manga list; an entry without ``series_animedb_id``, or
        whose id is not a positive integer of at most 18 digits, or whose ``my_score`` is not
        an integer 0..10; the same anime listed twice with different scores; no entry.

    Examples
    --------
    >>> person = anirec.read_mal_list("animelist_1700000000_12345.xml.gz")  # doctest: +SKIP
    >>> person.anime_ids, person.ratings, person.listed                       # doctest: +SKIP
    """
    path = _csv.as_path(path)
    reader = _ListReader(path)
    size = 0
    with _open(path) as fh:
        try:
            for chunk in _xml_chunks(fh, path):
                size += len(chunk)
                if size > MAX_XML_BYTES:
                    raise DataError(f"{path}: more than {MAX_XML_BYTES >> 20} MiB of XML once "
                                    "decompressed (MAX_XML_BYTES); not a list export?")
                reader.parser.Parse(chunk, False)
            reader.parser.Parse(b"", True)
        except expat.ExpatError as exc:
            raise DataError(f"{path}: malformed XML at line {exc.lineno}, column "
                            f"{exc.offset + 1}: {expat.ErrorString(exc.code)}") from None
    return reader.result(rating_scale)


def _open(path: Path) -> BinaryIO:
    """``path`` opened for binary reading, if it is a regular file (checked once opened)."""
    try:
        return _files.open_regular(path, lambda st: _not_a_file(path, st))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read: {exc.strerror}") from None


def _file_chunks(fh: BinaryIO, path: Path) -> Iterator[bytes]:
    """The bytes of ``fh``, counted against :data:`MAX_FILE_BYTES` as they are read (not by
    the size at the open: the file may be growing)."""
    read = 0
    while chunk := fh.read(_CHUNK):
        read += len(chunk)
        if read > MAX_FILE_BYTES:
            raise DataError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB (MAX_FILE_BYTES); "
                            "not a list export?")
        yield chunk


def _xml_chunks(fh: BinaryIO, path: Path) -> Iterator[bytes]:
    """The XML of ``fh``: its bytes, or if they start as gzip does, one gzip stream inflated at
    most ``_CHUNK`` bytes at a time (so a gzip bomb is never inflated whole)."""
    chunks = _file_chunks(fh, path)
    first = next(chunks, b"")
    if first[:2] != _GZIP:
        yield first
        yield from chunks
        return
    inflate = zlib.decompressobj(wbits=31)   # gzip: zlib checks the header, CRC and length
    for data in itertools.chain([first], chunks):
        # Output still pending when a chunk's input is used up comes with the next chunk's
        # (the stream's end, its trailer, is only read once all output is out).
        while data and not inflate.eof:
            try:
                out = inflate.decompress(data, _CHUNK)
            except zlib.error as exc:
                raise DataError(f"{path}: not a valid gzip file ({exc})") from None
            data = inflate.unconsumed_tail
            yield out
        # Only one stream: members padding a file out would cost time, not XML bytes.
        if inflate.eof and (data or inflate.unused_data):
            raise DataError(f"{path}: data after the end of the gzip stream (an export is one "
                            "gzip stream)")
    if not inflate.eof:
        raise DataError(f"{path}: not a valid gzip file (truncated)")


def _not_a_file(path: Path, st: os.stat_result) -> DataError:
    if stat.S_ISDIR(st.st_mode):
        return DataError(f"{path}: is a directory, expected a file")
    return _csv._irregular(path, st)


class _ListReader:
    """The expat handlers of one export: entries collected as they end, limits enforced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stack: list[str] = []
        self.entries: list[tuple[str, int, int]] = []   # (entry label, anime id, score)
        self.fields: dict[str, list[str]] = {}
        self.chars = 0
        self.line = 0
        p = self.parser = expat.ParserCreate()
        p.buffer_text = True
        # Any DTD (and so any entity declaration) is refused before it is read, so no entity
        # is ever expanded and no external file or URL ever opened; the second handler is a
        # guard should a declaration reach expat some other way.
        p.StartDoctypeDeclHandler = self._refuse_dtd
        p.EntityDeclHandler = self._refuse_entity
        p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.CharacterDataHandler = self._text

    def _refuse_dtd(self, name, *_) -> None:
        raise DataError(f"{self.path}, line {self.parser.CurrentLineNumber}: declares a DTD "
                        f"(<!DOCTYPE {name}>); refused, as a list export has none")

    def _refuse_entity(self, name, *_) -> None:
        raise DataError(f"{self.path}, line {self.parser.CurrentLineNumber}: declares the "
                        f"entity {name!r}; refused, as a list export has none")

    def _label(self) -> str:
        """The current entry for an error message: position, line, and id and title if read."""
        parts = [f"line {self.line}"]
        anime_id = "".join(self.fields.get("series_animedb_id", ())).strip()
        title = "".join(self.fields.get("series_title", ())).strip()
        if anime_id:
            parts.append(f"anime id {_ids.shown(anime_id, 20)}")
        if title:
            parts.append(_ids.shown(title))
        return f"entry {len(self.entries) + 1} ({', '.join(parts)})"

    def _where(self) -> str:
        """The file and where in it the parser is: the current entry, or the line."""
        if len(self.stack) > 1 and self.stack[1] == "anime":
            return f"{self.path}, {self._label()}"
        return f"{self.path}, line {self.parser.CurrentLineNumber}"

    def _start(self, name: str, _attributes) -> None:
        depth = len(self.stack)
        if depth == 0 and name != _ROOT:
            raise DataError(f"{self.path}: the root element is <{name}>, expected <{_ROOT}> "
                            "(a MyAnimeList anime list export)")
        if depth >= MAX_DEPTH:
            raise DataError(f"{self._where()}: elements nested deeper than {MAX_DEPTH} "
                            "(MAX_DEPTH)")
        if depth == 1 and name == "manga":
            raise DataError(f"{self.path}: a manga list export; expected the anime list")
        if depth == 1 and name == "anime":
            if len(self.entries) >= MAX_ENTRIES:
                raise DataError(f"{self.path}: more than {MAX_ENTRIES} entries (MAX_ENTRIES)")
            self.fields, self.line = {}, self.parser.CurrentLineNumber
        elif depth == 2 and self.stack[1] == "anime" and name in _FIELDS:
            if name in self.fields:
                raise DataError(f"{self._where()}: field {name!r} given twice")
            self.fields[name] = []
        self.stack.append(name)
        self.chars = 0

    def _text(self, data: str) -> None:
        self.chars += len(data)
        # Text directly inside <myanimelist> or <anime> (the spaces between fields) is not kept.
        if self.chars > MAX_FIELD_CHARS and len(self.stack) > 2:
            raise DataError(f"{self._where()}: field {self.stack[-1]!r} is longer than "
                            f"{MAX_FIELD_CHARS} characters (MAX_FIELD_CHARS)")
        if len(self.stack) == 3 and self.stack[1] == "anime" and self.stack[2] in _FIELDS:
            self.fields[self.stack[2]].append(data)

    def _end(self, name: str) -> None:
        self.stack.pop()
        self.chars = 0
        if len(self.stack) == 1 and name == "anime":
            self.entries.append(self._entry())

    def _entry(self) -> tuple[str, int, int]:
        """The entry just ended as (label, anime id, score), checked."""
        label = self._label()
        where = f"{self.path}, {label}"
        if "series_animedb_id" not in self.fields:
            raise DataError(f"{where}: no <series_animedb_id>")
        text = "".join(self.fields["series_animedb_id"])
        if not _ids.is_id(text) or int(text) == 0:
            raise DataError(f"{where}, field 'series_animedb_id': {_ids.shown(text)} is not a "
                            "positive integer id (1 to 18 plain digits: no sign, decimal point, "
                            "exponent or hex)")
        score = "".join(self.fields.get("my_score", ()))
        if score.strip() and not _SCORE.fullmatch(score):
            raise DataError(f"{where}, field 'my_score': {_ids.shown(score)} is not an "
                            "integer 0..10 (0 = not scored)")
        return label, int(text), int(score) if score.strip() else 0

    def result(self, rating_scale) -> PersonRatings:
        """The entries read as :class:`PersonRatings` (after the whole document parsed)."""
        if not self.entries:
            raise DataError(f"{self.path}: the list has no <anime> entry")
        # The same anime twice with different scores is refused: which one the person meant
        # cannot be known, and either guess would change their recommendations.
        first: dict[int, tuple[str, int]] = {}
        for label, anime_id, score in self.entries:
            seen = first.setdefault(anime_id, (label, score))
            if seen[1] != score:
                raise DataError(f"{self.path}, {label}: anime id {anime_id} is listed again "
                                f"with score {score}, but {seen[1]} in {seen[0]}")
        listed = np.array(sorted(first), dtype=np.int64)
        scores = np.array([first[a][1] for a in listed.tolist()], dtype=np.float64)
        rated = scores > 0
        _check_scale(listed[rated], scores[rated], rating_scale,
                     lambda a: f"{self.path}, {first[a][0]}")
        return PersonRatings(listed[rated], scores[rated], listed, str(self.path))


# --------------------------------------------------------------------------- any form


def read_person_ratings(source, *, item: str = "anime_id", rating: str = "rating",
                        rating_scale: tuple[float, float] | None = None) -> PersonRatings:
    """One person's ratings from a mapping, a table, a CSV file or a MyAnimeList export.

    Parameters
    ----------
    source : mapping, DataFrame or path-like
        ``{anime_id: rating}``; a DataFrame with the columns ``item`` and ``rating``; or a
        file: a MyAnimeList export (XML, gzipped or not) or a CSV file with those columns,
        told apart by their first bytes (gzip, or ``<`` after any byte order mark and
        spaces, is an export).
    item, rating : str
        The columns of a table or CSV file holding the anime id and the rating.
    rating_scale : (low, high), optional
        Ratings outside it are refused. Default: any finite rating.

    Returns
    -------
    PersonRatings
        Sorted by anime id; an anime given twice with the same rating counts once. From a
        mapping, table or CSV file every anime listed is rated.

    Raises
    ------
    DataError
        Naming the key or row (counted from 1, the header not included) and the column: an
        id that is not a whole number 0 to 10**18 - 1 (booleans and fractions refused, text
        by the one rule of the CSV files), a rating that is not a finite number or is
        outside ``rating_scale``, an anime given twice with different ratings, a missing
        column, no rating; and every error of :func:`read_mal_list`.
    TypeError
        ``source`` is none of the forms above.

    Examples
    --------
    >>> anirec.read_person_ratings({1: 10, 6: 9, 30: 7}).anime_ids
    array([ 1,  6, 30])
    """
    if isinstance(source, Mapping):
        where = "the ratings mapping"
        keys = list(source)
        ids = [_as_id(k) for k in keys]
        values = [_as_rating(v) for v in source.values()]
        for k, key in enumerate(keys):
            if ids[k] is None:
                raise DataError(f"{where}, key {key!r}: not an integer anime id")
            if values[k] is None:
                raise DataError(f"{where}, anime id {ids[k]}: rating {source[key]!r} is not "
                                "a finite number")
        return _person(np.array(ids, np.int64), np.array(values, np.float64), rating_scale,
                       where, lambda k: f"key {keys[k]!r}")
    if isinstance(source, pd.DataFrame):
        return _from_table(source, item, rating, rating_scale, "the ratings table")
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError("source must be a mapping {anime_id: rating}, a DataFrame or the "
                        f"path of a CSV file or MyAnimeList export, got {type(source).__name__}")
    path = _csv.as_path(source)
    with _open(path) as fh:
        head = fh.read(64)
    if head[:2] == _GZIP or head.removeprefix(_csv.UTF8_BOM).lstrip().startswith(b"<"):
        return read_mal_list(path, rating_scale=rating_scale)
    columns = _csv.read_header(path, [item, rating])
    data = _csv.read_small(path)
    _csv.check_utf8(path, data, columns)
    try:
        frame = pd.read_csv(io.BytesIO(data), usecols=[item, rating], dtype=str,
                            keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed CSV: {' '.join(str(exc).split())}") from None
    return _from_table(frame, item, rating, rating_scale, str(path))


def _from_table(frame: pd.DataFrame, item: str, rating: str, rating_scale,
                where: str) -> PersonRatings:
    missing = [c for c in (item, rating) if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing} (found {list(frame.columns)}); "
                        "name the columns with item=, rating=")
    twice = [c for c in (item, rating) if (frame.columns == c).sum() > 1]
    if twice:
        raise DataError(f"{where}: more than one column named {twice[0]!r}")
    ids = [_as_id(v) for v in frame[item].tolist()]
    values = [_as_rating(v) for v in frame[rating].tolist()]
    for k in range(len(ids)):
        if ids[k] is None:
            raise _ids.id_error(where, item, f"row {k + 1}", str(frame[item].iloc[k]))
        if values[k] is None:
            raise DataError(f"{where}, column {rating!r}, row {k + 1}: "
                            f"{_ids.shown(str(frame[rating].iloc[k]))} is not a finite number")
    return _person(np.array(ids, np.int64), np.array(values, np.float64), rating_scale, where,
                   lambda k: f"column {item!r}, row {k + 1}")


def _as_id(value) -> int | None:
    """``value`` as an anime id by the one rule of every reader (``anirec.data._ids``), or
    ``None``."""
    return int(value) if _ids.is_id(value) else None


def _as_rating(value) -> float | None:
    """``value`` as a finite rating, or ``None``: a real number (not a bool) or decimal text."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, str):
        if not _NUMBER.fullmatch(value):
            return None
        value = float(value)
    if not isinstance(value, Real) or not math.isfinite(value):
        return None
    return float(value)


def _person(ids: np.ndarray, values: np.ndarray, rating_scale, source: str,
            name) -> PersonRatings:
    """Checked, sorted :class:`PersonRatings` of every-one-rated input; ``name(k)`` names the
    ``k``-th input for an error message."""
    if ids.shape[0] == 0:
        raise DataError(f"{source}: no rating given")
    order = np.argsort(ids, kind="stable")
    repeat = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    differ = repeat[values[order][repeat + 1] != values[order][repeat]]
    if differ.size:
        a, b = order[differ[0]], order[differ[0] + 1]
        raise DataError(f"{source}, {name(b)}: anime id {ids[b]} again with rating "
                        f"{values[b]:g}, but {values[a]:g} at {name(a)}")
    keep = np.ones(order.shape[0], dtype=bool)
    keep[repeat + 1] = False
    ids, values = ids[order][keep], values[order][keep]
    _check_scale(ids, values, rating_scale, lambda a: f"{source}, anime id {a}")
    return PersonRatings(ids, values, ids.copy(), source)


def _check_scale(ids: np.ndarray, values: np.ndarray, rating_scale, where) -> None:
    """Refuse the first rating outside ``rating_scale`` (if given); ``where(anime_id)``."""
    if rating_scale is None:
        return
    lo, hi = (float(x) for x in rating_scale)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"rating_scale must be (low, high) with low < high, got "
                         f"{tuple(rating_scale)!r}")
    outside = np.flatnonzero((values < lo) | (values > hi))
    if outside.size:
        k = int(outside[0])
        raise DataError(f"{where(int(ids[k]))}: rating {values[k]:g} is outside the rating "
                        f"scale {lo:g}..{hi:g}")
