"""The anirec model file: one ``.npz`` archive, no pickle.

Layout: every array of the model under its own name (numeric or fixed-width unicode dtypes
only, never ``object``), plus ``__header__``, a UTF-8 JSON document stored as a ``uint8`` array::

    {"format": "anirec", "format_version": 1, "kind": "...", ...}

Files are read with ``allow_pickle=False`` and written atomically: to a temporary file in the
same folder, flushed to disk, then renamed over the target, so a crash mid-save leaves any
previous file intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from anirec.errors import ModelFormatError

FORMAT_NAME = "anirec"
FORMAT_VERSION = 1
HEADER_KEY = "__header__"


def write_model_file(path, header: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``header`` and ``arrays`` to ``path`` atomically; returns the path."""
    path = Path(path)
    if HEADER_KEY in arrays:
        raise ValueError(f"{HEADER_KEY!r} is reserved for the header")
    for name, array in arrays.items():
        if np.asarray(array).dtype.hasobject:
            raise TypeError(f"array {name!r} has dtype object, which cannot be saved safely")
    header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **header}
    encoded = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                             dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            np.savez(handle, **{HEADER_KEY: encoded}, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path


def read_model_file(path, kind: str | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a model file; returns ``(header, arrays)``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ModelFormatError
        If the file is truncated, corrupted, not an anirec model (or not of ``kind``), or was
        written by a newer format version.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
        raise ModelFormatError(
            f"{str(path)!r} is not a readable anirec model file (truncated or corrupted?): {error}"
        ) from None
    if HEADER_KEY not in arrays:
        raise ModelFormatError(f"{str(path)!r} is not an anirec model file: it has no header")
    try:
        header = json.loads(arrays.pop(HEADER_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFormatError(f"{str(path)!r} has a corrupted header: {error}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ModelFormatError(f"{str(path)!r} is not an anirec model file")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{str(path)!r} has format version {version!r}; this anirec reads versions up to "
            f"{FORMAT_VERSION}: upgrade anirec to load it"
        )
    if kind is not None and header.get("kind") != kind:
        raise ModelFormatError(
            f"{str(path)!r} holds a {header.get('kind')!r}, not a {kind!r}"
        )
    return header, arrays
