"""The anirec model file: one ``.npz`` archive, no pickle.

Layout: every array of the model under its own name (numeric or fixed-width unicode dtypes
only, never ``object``), plus ``__header__``, a UTF-8 JSON document stored as a ``uint8`` array::

    {"format": "anirec", "format_version": 2, "kind": "...", "dims": {...}, ...}

Reading trusts nothing in the file. Only the members a loader names are read; before anything
is inflated, each member's ``.npy`` header is parsed and its dtype, number of dimensions and
shape are checked against the loader's :class:`Member` specification, every dimension against
the size the header declares for it (the loader derives them from the header: users, anime,
rated pairs, feature widths, parameters, the longest name, ...; no member has a free
dimension, so none can be larger than the header says the model is), its declared size against
the sizes the zip directory records, and the total against :data:`MAX_MODEL_BYTES`. Floating
arrays must be finite. Header fields are checked by one validator, :func:`header_field`: types
strictly (a JSON ``true`` is not the number 1, ``"yes"`` is not a boolean), numbers finite and
within their range. Every error names the file and the member or header field.

Writing is atomic: to a temporary file in the same folder, flushed to disk, then renamed over the
target, so a crash mid-save leaves any previous file intact; the temporary file is removed on any
failure, ``KeyboardInterrupt`` included, and one left by a process killed outright is removed by
the next save to the same file (:func:`anirec._files.atomic_write`). Only a regular file is
ever replaced (never a symbolic link, a device or a folder), and it keeps its permission bits;
a new file gets the usual ``0o666`` less the umask. Reading opens the file without waiting and
checks what it opened, so a FIFO is refused, never waited on.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Iterator, Mapping, NamedTuple

import numpy as np

from anirec._files import atomic_write, check_target, folder_of, open_regular
from anirec.errors import ModelFormatError, ModelWriteError

FORMAT_NAME = "anirec"
#: Version 2 declares the size of every dimension in the header (``dims``); version 1 files
#: did not, so their members could not be checked before inflating them, and are refused.
FORMAT_VERSION = 2
OLDEST_FORMAT_VERSION = 2
HEADER_KEY = "__header__"

#: Most bytes of array data a model file may declare, over the members read (16 GiB): a file
#: declaring more is refused before anything is inflated, instead of exhausting memory.
MAX_MODEL_BYTES = 16 * 2**30
#: Most bytes of the JSON header (it holds the configuration, the history and the genres).
MAX_HEADER_BYTES = 64 * 2**20
#: Deflate cannot expand data by more than about 1032:1; a member claiming more is forged.
_MAX_DEFLATE_RATIO = 1100
#: Dtype kinds a model file may hold: bool, integers, floats, fixed-width unicode.
_SAFE_KINDS = "biufU"
#: What reading a damaged zip member raises (RuntimeError: an encrypted member;
#: NotImplementedError: an unknown compression method; zlib.error: a damaged deflate stream).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError,
               NotImplementedError, zlib.error, struct.error)


class Member(NamedTuple):
    """What a loader expects of one array of a model file.

    Parameters
    ----------
    kinds : str
        Allowed dtype kinds (``"i"`` signed integers, ``"f"`` floats, ``"U"`` unicode, ...).
    shape : tuple
        One entry per dimension: an int (that exact size), a str naming a dimension whose size
        the header declares (see :func:`read_model_file`'s ``dims``), or ``(name, offset)`` for
        that size plus ``offset``.
    required : bool
        A missing required member is an error; a missing optional one is left out.
    chars : str, optional
        For a unicode member: the dimension holding the most characters of one string.
    """

    kinds: str
    shape: tuple
    required: bool = True
    chars: str | None = None


def _name(path) -> str:
    return repr(str(path))


# ---------------------------------------------------------------------------------------------
# Writing


def _check_target(path: Path) -> int | None:
    """The permission bits of the regular file ``path`` replaces, ``None`` for a new file.

    Raises :class:`ModelWriteError` for anything but a regular file or a missing one in an
    existing folder (the one rule of every output: :func:`anirec._files.check_target`).
    """
    mode = check_target(path, "the model", ModelWriteError)
    folder = folder_of(path)
    if mode is None and not folder.is_dir():
        raise ModelWriteError(f"cannot save the model to {_name(path)}: the folder "
                              f"{_name(folder)} does not exist")
    return mode


def write_model_file(path, header: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``header`` and ``arrays`` to ``path`` atomically; returns the path.

    Raises
    ------
    ModelWriteError
        If ``path`` is a symbolic link, a folder, a device or in a missing folder, or the
        folder is not writeable.
    ValueError
        If an array is of dtype object or a floating array holds NaN or inf.
    """
    path = Path(path)
    if HEADER_KEY in arrays:
        raise ValueError(f"{HEADER_KEY!r} is reserved for the header")
    for name, array in arrays.items():
        array = np.asarray(array)
        if array.dtype.kind not in _SAFE_KINDS:
            raise TypeError(f"array {name!r} has dtype {array.dtype}, which cannot be saved "
                            "safely")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError(f"cannot save {_name(path)}: array {name!r} holds NaN or inf")
    header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **header}
    try:
        text = json.dumps(header, allow_nan=False)
    except ValueError:
        raise ValueError(f"cannot save {_name(path)}: the header holds NaN or inf") from None
    encoded = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    mode = _check_target(path)
    try:
        # A replaced file keeps its permissions; checked again just before the rename: the
        # target may have changed since.
        with atomic_write(path, mode=mode, before_replace=lambda: _check_target(path),
                          what="the model", error=ModelWriteError) as handle:
            np.savez(handle, **{HEADER_KEY: encoded}, **arrays)
    except PermissionError:
        raise ModelWriteError(f"cannot save the model to {_name(path)}: permission denied in "
                              f"{_name(folder_of(path))}") from None
    return path


# ---------------------------------------------------------------------------------------------
# Reading


@contextlib.contextmanager
def _open_archive(path: Path) -> Iterator[zipfile.ZipFile]:
    """The zip archive at ``path``, once the file opened is known to be a regular file."""
    try:
        handle = open_regular(path, lambda info: _not_a_model_file(path, info))
    except FileNotFoundError:
        raise FileNotFoundError(f"model file {_name(path)} does not exist") from None
    except PermissionError:
        raise PermissionError(f"cannot read the model file {_name(path)}: permission "
                              "denied") from None
    except OSError as error:
        raise ModelFormatError(f"cannot read the model file {_name(path)}: "
                               f"{error.strerror}") from None
    with handle:
        try:
            archive = zipfile.ZipFile(handle)
        except (*_ZIP_ERRORS, ValueError) as error:
            handle.seek(0)
            start = handle.read(512)
            if start[:2] != b"PK":
                what = ("a single .npy array" if start.startswith(b"\x93NUMPY") else
                        "a text file (CSV?)" if _looks_like_text(start) else
                        "not a zip archive")
                raise ModelFormatError(f"{_name(path)} is not an anirec model file: it is "
                                       f"{what}") from None
            raise ModelFormatError(f"{_name(path)} is not a readable anirec model file "
                                   f"(truncated or corrupted?): {error}") from None
        with archive:
            yield archive


def _not_a_model_file(path: Path, info: os.stat_result) -> ModelFormatError:
    if stat.S_ISDIR(info.st_mode):
        return ModelFormatError(f"{_name(path)} is a folder, not a model file")
    # Opened without waiting, so a FIFO is refused instead of blocking; a device may never end.
    return ModelFormatError(f"{_name(path)} is not a regular file, so not a model file")


def _looks_like_text(start: bytes) -> bool:
    try:
        start.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in start


def _npy_header(archive: zipfile.ZipFile, member: zipfile.ZipInfo, source: str, name: str):
    """``(shape, dtype, fortran_order, data_offset)`` from the ``.npy`` header of a member,
    read alone (nothing of the data is inflated beyond the header)."""
    try:
        with archive.open(member) as stream:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
            else:
                raise ValueError(f"unknown .npy version {version}")
            offset = stream.tell()
    except _ZIP_ERRORS as error:
        raise ModelFormatError(f"{source}: member {name!r} cannot be read (truncated or "
                               f"corrupted?): {error}") from None
    except (ValueError, TypeError, SyntaxError, OverflowError, MemoryError,
            RecursionError) as error:
        raise ModelFormatError(f"{source}: member {name!r} is not a valid .npy array "
                               f"({error})") from None
    if any(size < 0 for size in shape):
        raise ModelFormatError(f"{source}: member {name!r} declares the shape {shape}")
    return tuple(shape), np.dtype(dtype), fortran, offset


def _dimension_checks(source: str, declared: dict, members: Mapping[str, Member],
                      dims: Mapping[str, int] | None) -> None:
    """Every declared shape against its spec and the header's ``dims`` (without ``dims``,
    dimensions named alike must agree across members)."""
    sizes: dict[str, tuple[int, str]] = {}
    for name, spec in members.items():
        if name not in declared:
            continue
        shape, dtype = declared[name]
        if dtype.kind not in spec.kinds:
            raise ModelFormatError(f"{source}: member {name!r} has dtype {dtype}, expected "
                                   f"kind {spec.kinds!r}")
        if len(shape) != len(spec.shape):
            raise ModelFormatError(f"{source}: member {name!r} has {len(shape)} dimensions "
                                   f"(shape {shape}), expected {len(spec.shape)}")
        if spec.chars is not None and dims is not None:
            longest = dims.get(spec.chars)
            if longest is None or dtype.itemsize // 4 > longest:
                raise ModelFormatError(f"{source}: member {name!r} has dtype {dtype}: strings "
                                       f"longer than the {longest} characters the header "
                                       f"declares ({spec.chars!r})")
        for axis, (got, want) in enumerate(zip(shape, spec.shape)):
            if want is None:
                continue
            if isinstance(want, int):
                if got != want:
                    raise ModelFormatError(f"{source}: member {name!r} has shape {shape}, "
                                           f"expected size {want} along axis {axis}")
                continue
            symbol, offset = (want, 0) if isinstance(want, str) else want
            if dims is not None:
                if symbol not in dims:
                    raise ModelFormatError(f"{source}: member {name!r} is present, but the "
                                           f"header declares no {symbol} (field 'dims')")
                if got != dims[symbol] + offset:
                    raise ModelFormatError(f"{source}: member {name!r} has shape {shape}, but "
                                           f"the header declares {dims[symbol]} {symbol} "
                                           f"(field 'dims'): expected size "
                                           f"{dims[symbol] + offset} along axis {axis}")
                continue
            base = got - offset
            if symbol in sizes and sizes[symbol][0] != base:
                other = sizes[symbol][1]
                raise ModelFormatError(f"{source}: member {name!r} has shape {shape}, which "
                                       f"disagrees with {other!r} on the number of {symbol}")
            sizes.setdefault(symbol, (base, name))


def read_model_file(path, kind: str | None = None,
                    members: Mapping[str, Member] | None = None,
                    max_bytes: int | None = None,
                    dims: Callable[[dict, str], Mapping[str, int]] | None = None,
                    ) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a model file; returns ``(header, arrays)``.

    Parameters
    ----------
    path : path-like
    kind : str, optional
        The ``kind`` the header must declare (``"TwoTower"``, ``"Recommender"``).
    members : mapping of str to Member, optional
        The arrays to read and what they must look like; other members are never inflated.
        ``None`` reads every member (each still checked for a safe dtype and its size).
    max_bytes : int, optional
        Most bytes of array data the members read may declare together (default
        :data:`MAX_MODEL_BYTES`).
    dims : callable(header, source) -> mapping of str to int, optional
        The size of each named dimension of ``members``, from the header (checked there,
        raising :class:`ModelFormatError`): every member's shape must match them exactly
        before anything is inflated.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    PermissionError
        If it cannot be read for lack of permission.
    ModelFormatError
        If it is a folder or not a regular file, not an anirec model (or not of ``kind``),
        truncated or corrupted, of a newer format version, or an array is missing, of an
        unexpected dtype or shape, too large, or (floating) not finite.
    """
    path = Path(path)
    source = _name(path)
    max_bytes = MAX_MODEL_BYTES if max_bytes is None else max_bytes
    with _open_archive(path) as archive:
        try:
            infos = {info.filename: info for info in archive.infolist()}
        except (zipfile.BadZipFile, OSError, ValueError) as error:  # pragma: no cover
            raise ModelFormatError(f"{source} is not a readable anirec model file (truncated "
                                   f"or corrupted?): {error}") from None
        header = _read_header(archive, infos, source, path)
        if kind is not None and header.get("kind") != kind:
            raise ModelFormatError(f"{source} holds a {header.get('kind')!r}, not a {kind!r}")
        sizes = dims(header, source) if dims is not None else None
        if members is None:
            wanted = {name[:-4]: None for name in infos
                      if name.endswith(".npy") and name != HEADER_KEY + ".npy"}
        else:
            wanted = dict(members)
        file_size = os.fstat(archive.fp.fileno()).st_size if archive.fp is not None else 0
        declared, total = {}, 0
        for name, spec in wanted.items():
            info = infos.get(name + ".npy")
            if info is None:
                if spec is None or spec.required:
                    raise ModelFormatError(f"{source} lacks the array {name!r}")
                continue
            shape, dtype, fortran, offset = _npy_header(archive, info, source, name)
            if dtype.kind not in _SAFE_KINDS or dtype.hasobject or dtype.fields is not None:
                raise ModelFormatError(f"{source}: member {name!r} has dtype {dtype}, which a "
                                       "model file never holds")
            nbytes = math.prod(shape) * dtype.itemsize
            total += nbytes
            if total > max_bytes:
                raise ModelFormatError(f"{source}: member {name!r} declares shape {shape} "
                                       f"({nbytes:,} bytes): more than the {max_bytes:,} bytes "
                                       "a model file may hold")
            ratio = 1 if info.compress_type == zipfile.ZIP_STORED else _MAX_DEFLATE_RATIO
            if info.file_size != offset + nbytes or info.compress_size > file_size or \
                    info.file_size > ratio * info.compress_size + 4096:
                raise ModelFormatError(f"{source}: member {name!r} declares shape {shape} "
                                       f"{dtype}, which its stored size does not match "
                                       "(truncated or corrupted?)")
            declared[name] = (shape, dtype)
        if members is not None:
            _dimension_checks(source, declared, members, sizes)
        arrays = {name: _read_array(archive, infos[name + ".npy"], source, name)
                  for name in declared}
    return header, arrays


def _read_array(archive, info, source: str, name: str) -> np.ndarray:
    try:
        with archive.open(info) as stream:
            array = np.lib.format.read_array(stream, allow_pickle=False)
    except (*_ZIP_ERRORS, ValueError) as error:
        raise ModelFormatError(f"{source}: member {name!r} cannot be read (truncated or "
                               f"corrupted?): {error}") from None
    array = np.ascontiguousarray(array)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ModelFormatError(f"{source}: member {name!r} holds NaN or inf; a model file "
                               "holds finite numbers only")
    return array


def _read_header(archive, infos, source: str, path: Path) -> dict:
    info = infos.get(HEADER_KEY + ".npy")
    if info is None:
        raise ModelFormatError(f"{source} is not an anirec model file: it has no header")
    shape, dtype, _, offset = _npy_header(archive, info, source, HEADER_KEY)
    if dtype != np.uint8 or len(shape) != 1 or shape[0] > MAX_HEADER_BYTES or \
            info.file_size != offset + shape[0]:
        raise ModelFormatError(f"{source}: the header is not a byte string of at most "
                               f"{MAX_HEADER_BYTES:,} bytes (dtype {dtype}, shape {shape})")
    raw = _read_array(archive, info, source, HEADER_KEY)
    try:
        header = json.loads(raw.tobytes().decode("utf-8"),
                            parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        detail = "nested too deeply" if isinstance(error, RecursionError) else error
        raise ModelFormatError(f"{source} has a corrupted header: {detail}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ModelFormatError(f"{source} is not an anirec model file")
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFormatError(f"{source}: header field 'format_version' is {version!r}, "
                               "expected a positive integer")
    if version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{source} has format version {version!r}; this anirec reads versions up to "
            f"{FORMAT_VERSION}: upgrade anirec to load it"
        )
    if version < OLDEST_FORMAT_VERSION:
        raise ModelFormatError(
            f"{source} has format version {version}, written by an older anirec whose files "
            "do not declare the sizes of their arrays (so they cannot be checked before "
            f"reading); this anirec reads versions {OLDEST_FORMAT_VERSION} to "
            f"{FORMAT_VERSION}: train and save the model again"
        )
    return header


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a finite number")


# ---------------------------------------------------------------------------------------------
# Header field checks, shared by the loaders


def header_field(header: Mapping, name: str, types, source: str, *, where: str = "",
                 required: bool = True, default=None, low: float | None = None,
                 high: float | None = None, choices=None):
    """``header[name]`` checked to be of ``types``: the one validator of header fields.

    Types are strict: a bool is never a number (nor a number a bool), an int field does not
    take ``1.0``; numbers are finite and within ``[low, high]``; a value must be one of
    ``choices`` when given. Raises :class:`ModelFormatError` naming the file and the field.
    """
    label = f"{where}.{name}" if where else name
    if not isinstance(header, Mapping):
        raise ModelFormatError(f"{source}: header field {where!r} is not a mapping")
    if name not in header:
        if required:
            raise ModelFormatError(f"{source}: header field {label!r} is missing")
        return default
    value = header[name]
    types = types if isinstance(types, tuple) else (types,)
    wrong = isinstance(value, bool) and bool not in types
    if wrong or not isinstance(value, types):
        expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
        raise ModelFormatError(f"{source}: header field {label!r} is {value!r:.80}, expected "
                               f"{expected}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value) or (low is not None and value < low) or \
                (high is not None and value > high):
            raise ModelFormatError(f"{source}: header field {label!r} is {value!r:.40}, "
                                   f"expected a number in [{low if low is not None else '-inf'}"
                                   f", {high if high is not None else 'inf'}]")
    if choices is not None and value not in choices:
        raise ModelFormatError(f"{source}: header field {label!r} is {value!r:.40}, expected "
                               f"one of {', '.join(map(repr, choices))}")
    return value


def known_fields(header: Mapping, known, source: str, *, where: str = "") -> None:
    """Refuse a field of ``header`` not in ``known``: a misspelt or foreign field would
    otherwise be passed on (``Recommender(**options)``) or silently ignored."""
    unknown = sorted(str(key) for key in header if key not in known)
    if unknown:
        label = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ModelFormatError(f"{source}: header field {label!r:.80} is not a field of this "
                               f"model (known: {', '.join(sorted(known))})")


def string_list(header: Mapping, name: str, source: str, *, where: str = "") -> list[str]:
    """A header field that must be a list of strings."""
    value = header_field(header, name, list, source, where=where)
    if not all(isinstance(item, str) for item in value):
        label = f"{where}.{name}" if where else name
        raise ModelFormatError(f"{source}: header field {label!r} must be a list of strings")
    return value


def number_list(header: Mapping, name: str, source: str, *, where: str = "",
                length: int | None = None, required: bool = True):
    """A header field that must be a list of finite numbers (of ``length`` numbers); ``None``
    when absent or null and not ``required``."""
    label = f"{where}.{name}" if where else name
    value = header_field(header, name, (list, type(None)), source, where=where,
                         required=required)
    if value is None:
        if required:
            raise ModelFormatError(f"{source}: header field {label!r} is null, expected a list "
                                   "of numbers")
        return None
    if (length is not None and len(value) != length) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in value):
        raise ModelFormatError(f"{source}: header field {label!r} is {value!r:.80}, expected "
                               f"{length or 'a list of'} finite numbers")
    return [float(v) for v in value]


def declared_dims(header: Mapping, names, source: str, *, where: str = "") -> dict[str, int]:
    """The sizes the header's ``dims`` field declares for ``names`` (those present), each a
    count (an integer >= 0); any other name is refused."""
    label = f"{where}.dims" if where else "dims"
    dims = header_field(header, "dims", dict, source, where=where)
    known_fields(dims, names, source, where=label)
    return {name: header_field(dims, name, int, source, where=label, low=0)
            for name in names if name in dims}


__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "HEADER_KEY", "MAX_MODEL_BYTES", "Member",
           "ModelWriteError", "declared_dims", "header_field", "known_fields", "number_list",
           "read_model_file", "string_list", "write_model_file"]
