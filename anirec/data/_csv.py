"""Low-level CSV checks shared by the MAL readers: the file itself, header, encoding, ids.

Everything here turns a problem with an input file into :class:`anirec.errors.DataError` whose
message names the file, the column and, where it applies, the row (data rows are counted from 1,
the header not included) or the line (physical lines counted from 1, the header being line 1).
Nothing here blocks or reads without bound: only regular files are opened (a FIFO would block,
a pipe could be read only once, a device may never end) and no line may exceed
:data:`MAX_LINE` bytes.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import stat
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np
import pandas as pd

from .. import _files
from . import _ids
from ..errors import DataError

UTF8_BOM = b"\xef\xbb\xbf"
#: The longest physical line accepted, in bytes (the real files' longest is a few KiB).
MAX_LINE = 1 << 24
#: The largest file read whole into memory (the real anime file is 15 MiB).
MAX_SMALL = 1 << 30
# Delimiters that a mis-exported file may use instead of ",".
_OTHER_DELIMITERS = (";", "\t", "|")


def as_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a :class:`~pathlib.Path`."""
    return Path(os.fspath(path))


def check_regular(path: Path) -> int:
    """The size of ``path``, after checking that it is a regular file (never opening it).

    Raises
    ------
    DataError
        Not found, a directory, or anything but a regular file: a FIFO (opening it would
        wait for a writer), a pipe such as ``<(cat file)`` or a device (``/dev/zero`` never
        ends).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise _irregular(path, st)
    return st.st_size


def open_regular(path: Path, buffering: int = -1) -> BinaryIO:
    """``path`` opened for binary reading, refused unless the file *opened* is regular.

    :func:`check_regular` gives the early error; this one makes each open safe as well, as
    the path may have become a FIFO since (the open never waits for a writer).
    """
    try:
        return _files.open_regular(path, lambda st: _irregular(path, st), buffering)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read: {exc.strerror}") from None


def _irregular(path: Path, st: os.stat_result) -> DataError:
    if stat.S_ISDIR(st.st_mode):
        return DataError(f"{path}: is a directory, expected a CSV file")
    kind = "a FIFO or pipe" if stat.S_ISFIFO(st.st_mode) else "a device or socket"
    return DataError(f"{path}: is {kind}, not a regular file; save the data to a file and "
                     "pass that")


def _readline(fh, path: Path, line_no: int) -> bytes:
    line = fh.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise DataError(f"{path}, line {line_no}: longer than {MAX_LINE} bytes (not a CSV "
                        "file of this data set?)")
    return line


def read_header(path: Path, required: Sequence[str]) -> list[str]:
    """Check that ``path`` is a non-empty regular file whose header has the ``required``
    columns, and that it has a data row.

    Returns
    -------
    list of str
        The header's column names.
    """
    check_regular(path)
    try:
        with open_regular(path) as fh:
            first = _readline(fh, path, 1)
            second = _readline(fh, path, 2)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read: {exc.strerror}") from None
    if not first.strip():
        raise DataError(f"{path}: file is empty (expected a header line with columns "
                        f"{', '.join(repr(c) for c in required)})")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}, line 1 (header): invalid UTF-8 byte "
                        f"0x{first[exc.start]:02x} at byte offset {exc.start}") from None
    text = text.rstrip("\r\n")
    if "\r" in text:
        raise DataError(f"{path}: lines end with a lone CR (old Mac line endings); convert "
                        "them to LF or CRLF")
    columns = next(csv.reader([text]))
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


def read_small(path: Path) -> bytes:
    """The bytes of a regular file of at most :data:`MAX_SMALL` bytes."""
    if check_regular(path) > MAX_SMALL:
        raise DataError(f"{path}: larger than {MAX_SMALL >> 20} MiB (not the file of this "
                        "data set?)")
    with open_regular(path) as fh:
        return fh.read(MAX_SMALL + 1)


def check_line_length(path: Path, data: bytes) -> None:
    """Raise :class:`DataError` naming the first line of ``data`` longer than
    :data:`MAX_LINE` bytes."""
    if len(data) <= MAX_LINE:
        return
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    starts = np.concatenate([[0], ends + 1])
    lengths = np.concatenate([ends, [len(data)]]) - starts
    long = np.flatnonzero(lengths > MAX_LINE)
    if long.size:
        raise DataError(f"{path}, line {int(long[0]) + 1}: longer than {MAX_LINE} bytes")


def locate_byte(path: Path, offset: int, columns: Sequence[str]) -> tuple[int, str | None]:
    """Line number (1-based) and column name of the byte at ``offset``.

    The column is found by parsing that one line; it is ``None`` when the line cannot be
    parsed alone (a quoted field spanning lines).
    """
    line_no = 1
    line_start = 0
    pos = 0
    with open_regular(path) as fh:
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
        line = fh.readline(MAX_LINE)
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
    """The :class:`DataError` for the invalid UTF-8 byte at ``offset`` of ``path``."""
    with open_regular(path) as fh:
        fh.seek(offset)
        byte = fh.read(1)
    line, column = locate_byte(path, offset, columns)
    where = f", column {column!r}" if column else ""
    return DataError(f"{path}, line {line}{where}: invalid UTF-8 byte 0x{byte.hex()} at byte "
                     f"offset {offset} (the file must be UTF-8)")


def check_utf8(path: Path, data: bytes, columns: Sequence[str]) -> None:
    """Raise :class:`DataError` locating the first invalid UTF-8 sequence in ``data``."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise encoding_error(path, exc.start, columns) from None


def scan(path: Path, columns: Sequence[str], needles: Sequence[bytes] = ()) -> bool:
    """One streaming pass over ``path``: UTF-8 and line lengths checked, ``needles`` looked for.

    Returns
    -------
    bool
        Whether any of ``needles`` occurs (at most ``len(needle) - 1`` bytes may be missed
        where two blocks meet, so a caller only uses this as a hint).

    Raises
    ------
    DataError
        Naming the line (and column) of the first invalid UTF-8 byte, or the first line longer
        than :data:`MAX_LINE` bytes.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    block = min(1 << 24, MAX_LINE)   # so that a line within one block is never too long
    found = False
    pos = 0           # bytes before ``buf``
    since_lf = 0      # bytes since the last LF
    line_no = 1
    buf = bytearray(block)
    with open_regular(path, buffering=0) as fh, memoryview(buf) as view:
        while True:
            n = fh.readinto(view)
            data = buf if n == len(buf) else bytes(view[:n])
            pending = len(decoder.getstate()[0])
            # ASCII needs no decoding (the check is much faster than the decoder).
            if pending or not n or not data.isascii():
                try:
                    decoder.decode(data, final=not n)
                except UnicodeDecodeError as exc:
                    raise encoding_error(path, pos - pending + exc.start, columns) from None
            if not n:
                return found
            first = data.find(b"\n")
            if first < 0:
                since_lf += n
                if since_lf > MAX_LINE:
                    raise DataError(f"{path}, line {line_no}: longer than {MAX_LINE} bytes")
            else:
                if since_lf + first > MAX_LINE:
                    raise DataError(f"{path}, line {line_no}: longer than {MAX_LINE} bytes")
                # A line inside one block is shorter than the block, hence than MAX_LINE.
                line_no += data.count(b"\n")
                since_lf = n - data.rfind(b"\n") - 1
            if not found:
                found = any(data.find(nd) >= 0 for nd in needles)
            pos += n


def shown(value: str, limit: int = 40) -> str:
    """``value`` for an error message: quoted, cut to ``limit`` characters, "(empty)"."""
    return _ids.shown(value, limit)


def id_error(path: Path, column: str, row: int, value: str) -> DataError:
    """The :class:`DataError` for an id that breaks the one rule, at data row ``row``."""
    return _ids.id_error(path, column, f"row {row}", value)


def parse_ids(values: np.ndarray, path: Path, column: str, row0: int = 0) -> np.ndarray:
    """Parse ids by the one rule (:mod:`anirec.data._ids`): int64 array, or
    :class:`DataError` naming the first bad value's row (``row0`` rows come before
    ``values``)."""
    return _ids.parse_text_ids(values, path, column, lambda k: f"row {row0 + k + 1}")


def find_bad_value(path: Path, columns: Sequence[str], *, integer: Sequence[str] = (),
                   numeric: Sequence[str] = ()) -> DataError | None:
    """Slow diagnostic pass: the first value of ``integer``/``numeric`` columns that does not
    parse (an id by the one rule of :func:`parse_ids`), or a row that does not tokenise, as a
    :class:`DataError`; ``None`` if all parse.

    Used only after the fast reader failed (or saw a possible hex id), to give the row and
    column.
    """
    usecols = list(dict.fromkeys([*integer, *numeric]))
    try:
        with open_regular(path) as fh:
            chunks = pd.read_csv(fh, usecols=usecols, dtype=str, keep_default_na=False,
                                 na_filter=False, chunksize=1 << 20, encoding="utf-8",
                                 encoding_errors="replace")
            return _first_bad_value(path, chunks, usecols, integer)
    except pd.errors.ParserError as exc:
        return DataError(f"{path}: malformed CSV: {' '.join(str(exc).split())}")


def _first_bad_value(path: Path, chunks, usecols: Sequence[str],
                     integer: Sequence[str]) -> DataError | None:
    """The loop of :func:`find_bad_value` over the chunks of the file."""
    row0 = 0
    for chunk in chunks:
        for col in usecols:
            values = chunk[col].to_numpy(dtype=object)
            if col in integer:
                try:
                    parse_ids(values, path, col, row0)
                except DataError as exc:
                    return exc
                continue
            parsed = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy()
            bad = np.isnan(parsed) & (pd.Series(values).str.strip() != "").to_numpy()
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                return DataError(f"{path}, column {col!r}, row {row0 + k + 1}: "
                                 f"{shown(values[k])} is not a number")
        row0 += len(chunk)
    return None


def read_text_columns(path: Path, columns: Sequence[str] | None = None):
    """The header and the named columns (every column for ``None``) of a CSV file, as text.

    The file is checked first (a regular file, UTF-8, no line longer than :data:`MAX_LINE`;
    errors name the line), then parsed by pyarrow, which takes quoted fields across lines and
    refuses a row with more or fewer fields than the header: such a row, or an unterminated
    quote, is named by its line (:func:`malformed`). Blank lines are skipped.

    Returns
    -------
    header : list of str
    columns : dict of str to pyarrow.ChunkedArray of strings
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from .scores import _same_file

    header = read_header(path, ())
    scan(path, header)
    wanted = list(header) if columns is None else list(columns)
    try:
        with open_regular(path) as checked, pa.OSFile(_same_file(checked, path)) as source:
            table = pacsv.read_csv(
                source, read_options=pacsv.ReadOptions(block_size=MAX_LINE, use_threads=False),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    include_columns=wanted, column_types={c: pa.string() for c in wanted},
                    strings_can_be_null=False, quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise malformed(path, len(header), str(exc)) from None
    return header, {name: table.column(name) for name in wanted}


def _records(path: Path):
    """``(first line, fields)`` of each record of ``path`` (the header's first line is 1),
    blank lines skipped; :class:`csv.Error` where a record cannot be parsed."""
    with open_regular(path) as fh, io.TextIOWrapper(fh, encoding="utf-8-sig",
                                                     newline="") as text:
        reader = csv.reader(text, strict=True)
        start = 1
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                error.line = start
                raise
            if fields:
                yield start, fields
            start = reader.line_num + 1


def malformed(path: Path, n_columns: int, detail: str = "") -> DataError:
    """The :class:`DataError` naming the first line of ``path`` whose record has another
    number of fields than the header's ``n_columns``, or cannot be parsed (an unterminated
    quote); ``detail`` is the parser's message when no such line is found."""
    try:
        for line, fields in _records(path):
            if len(fields) != n_columns:
                return DataError(f"{path}, line {line}: {len(fields)} fields, but the header "
                                 f"has {n_columns} columns")
    except csv.Error as error:
        if "unexpected end of data" in str(error):
            return DataError(f"{path}, line {error.line}: a quoted field opened there is never "
                             'closed (an unterminated ")')
        return DataError(f"{path}, line {error.line}: malformed CSV ({error})")
    return DataError(f"{path}: cannot be read as CSV: {' '.join(detail.split())}")


def record_line(path: Path, row: int) -> int:
    """The first line of data row ``row`` (0-based; the header not counted) of ``path``, for
    error messages: physical lines, quoted line breaks and blank lines counted."""
    for index, (line, _) in enumerate(_records(path)):
        if index == row + 1:
            return line
    return -1
