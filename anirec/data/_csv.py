"""Low-level CSV checks shared by the MAL readers: header, encoding, locating bad values.

Everything here turns a problem with an input file into :class:`anirec.errors.DataError` whose
message names the file, the column and, where it applies, the row (data rows are counted from 1,
the header not included) or the line (physical lines counted from 1, the header being line 1).
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError

try:
    from . import _scores
except ImportError:  # not built: Python's decoder checks the bytes
    _scores = None

# Delimiters that a mis-exported file may use instead of ",".
_OTHER_DELIMITERS = (";", "\t", "|")


def as_path(path: str | os.PathLike[str]) -> Path:
    return Path(os.fspath(path))


def read_header(path: Path, required: Sequence[str]) -> list[str]:
    """Check that ``path`` exists, is not empty, and its header has the ``required`` columns.

    Returns the header's column names.
    """
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a CSV file")
    with open(path, "rb") as fh:
        first = fh.readline()
        second = fh.readline()
    if not first.strip():
        raise DataError(f"{path}: file is empty (expected a header line with columns "
                        f"{', '.join(repr(c) for c in required)})")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}, line 1 (header): invalid UTF-8 byte "
                        f"0x{first[exc.start]:02x} at byte offset {exc.start}") from None
    columns = next(csv.reader([text.rstrip("\r\n")]))
    missing = [c for c in required if c not in columns]
    if missing:
        if len(columns) == 1:
            for d in _OTHER_DELIMITERS:
                if d in columns[0]:
                    raise DataError(
                        f"{path}: wrong delimiter: the header is one column separated by "
                        f"{d!r}; expected ',' (columns {', '.join(repr(c) for c in required)})")
        raise DataError(f"{path}: missing required column(s) "
                        f"{', '.join(repr(c) for c in missing)}; the header has "
                        f"{', '.join(repr(c) for c in columns)}")
    if not second.strip():
        raise DataError(f"{path}: has a header but no data rows")
    return columns


def locate_byte(path: Path, offset: int, columns: Sequence[str]) -> tuple[int, str | None]:
    """Line number (1-based) and column name of the byte at ``offset``.

    The column is found by parsing that one line; it is ``None`` when the line cannot be
    parsed alone (a quoted field spanning lines).
    """
    line_no = 1
    line_start = 0
    pos = 0
    with open(path, "rb") as fh:
        while pos < offset:
            block = fh.read(min(1 << 24, offset - pos))
            if not block:
                break
            n = block.count(b"\n")
            if n:
                line_no += n
                line_start = pos + block.rfind(b"\n") + 1
            pos += len(block)
        fh.seek(line_start)
        line = fh.readline()
    text_line = line.decode("utf-8", errors="surrogateescape").rstrip("\r\n")
    try:
        fields = next(csv.reader([text_line]))
    except (csv.Error, StopIteration):
        return line_no, None
    # The offending byte is the first undecodable one, so the first field holding a
    # surrogate-escaped byte is the column.
    for k, value in enumerate(fields):
        if any("\udc80" <= ch <= "\udcff" for ch in value):
            return line_no, (columns[k] if k < len(columns) else None)
    return line_no, None


def encoding_error(path: Path, offset: int, columns: Sequence[str]) -> DataError:
    with open(path, "rb") as fh:
        fh.seek(offset)
        byte = fh.read(1)
    line, column = locate_byte(path, offset, columns)
    where = f", column {column!r}" if column else ""
    return DataError(f"{path}, line {line}{where}: invalid UTF-8 byte 0x{byte.hex()} at byte "
                     f"offset {offset} (the file must be UTF-8)")


def check_utf8(path: Path, data: bytes, columns: Sequence[str]) -> None:
    """Raise :class:`DataError` locating the first invalid UTF-8 sequence in ``data``."""
    if _scores is not None:
        # The compiled check finds the same first offset as the decoder, without a str.
        bad = _scores.utf8_error(data, 0, len(data))
        if bad >= 0:
            raise encoding_error(path, bad, columns)
        return
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise encoding_error(path, exc.start, columns) from None


class CheckedReader(io.RawIOBase):
    """A binary file that validates UTF-8 as it is read and reports progress.

    Validation happens block by block with an incremental decoder, so a huge file costs no
    extra memory; the first invalid sequence is recorded in :attr:`error` and reading stops.
    """

    def __init__(self, path: Path, columns: Sequence[str],
                 on_read: Callable[[int], Any] | None = None) -> None:
        super().__init__()
        self._path = path
        self._columns = columns
        self._fh = open(path, "rb")
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._on_read = on_read
        self.pos = 0
        self.error: DataError | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.error is not None:
            return 0
        n = self._fh.readinto(buffer)
        if not n:
            try:
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                pending = len(self._decoder.getstate()[0])
                self.error = encoding_error(self._path, self.pos - pending, self._columns)
            return 0
        pending = len(self._decoder.getstate()[0])
        try:
            self._decoder.decode(bytes(memoryview(buffer)[:n]))
        except UnicodeDecodeError as exc:
            self.error = encoding_error(self._path, self.pos - pending + exc.start, self._columns)
            raise self.error from None
        self.pos += n
        if self._on_read is not None:
            self._on_read(n)
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


def find_bad_value(path: Path, columns: Sequence[str], *, integer: Sequence[str] = (),
                   numeric: Sequence[str] = ()) -> DataError | None:
    """Slow diagnostic pass: the first value of ``integer``/``numeric`` columns that does not
    parse (or a row that does not tokenise), as a :class:`DataError`; ``None`` if all parse.

    Used only after the fast reader failed, to give the row and column.
    """
    usecols = list(dict.fromkeys([*integer, *numeric]))
    row0 = 0
    try:
        chunks = pd.read_csv(path, usecols=usecols, dtype=str, keep_default_na=False,
                             na_filter=False, chunksize=1 << 20, encoding="utf-8",
                             encoding_errors="replace")
        for chunk in chunks:
            for col in usecols:
                values = chunk[col].to_numpy(dtype=object)
                parsed = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy()
                if col in integer:
                    with np.errstate(invalid="ignore"):
                        bad = ~np.isfinite(parsed) | (parsed != np.round(parsed))
                else:
                    bad = np.isnan(parsed) & (pd.Series(values).str.strip() != "").to_numpy()
                if bad.any():
                    k = int(np.flatnonzero(bad)[0])
                    kind = "an integer id" if col in integer else "a number"
                    shown = values[k] if values[k] != "" else "(empty)"
                    return DataError(f"{path}, column {col!r}, row {row0 + k + 1}: "
                                     f"{shown!r} is not {kind}")
            row0 += len(chunk)
    except pd.errors.ParserError as exc:
        return DataError(f"{path}: malformed CSV: {exc}")
    return None
