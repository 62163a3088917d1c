"""The one rule for ids, in every reader and every public lookup.

An id is a non-negative integer of at most 18 decimal digits, so that every id fits an int64
and none ever goes through float64 (where ids above 2**53 merge: two users become one).

* Text (a CSV file): plain decimal digits, whitespace around allowed; no sign, decimal point,
  exponent or hex (:func:`parse_text_ids`).
* Typed values (a DataFrame column, a list given to the API): integers, never bools (``True``
  is not user 1); floats only when whole and below ``2**53``, where float64 holds every integer
  exactly (:func:`column_ids`).
* Ids looked up in a model (:func:`lookup_ids`): the same types; an integer outside int64 is
  simply unknown.

Every refusal is a :class:`~anirec.errors.DataError` (or ``TypeError`` for an argument of the
wrong type) naming the source, the column and where the value is.
"""

from __future__ import annotations

import numbers
import re
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError, UnknownIdError

#: The largest id: 18 digits.
MAX_ID = 10**18 - 1
#: Floats hold every integer exactly up to here, and no further.
_EXACT_FLOAT = 2**53
# Python's whitespace (str.isspace), spelt for RE2: the rule is the same in every reader.
_SPACE = r"[\t\n\x0b\f\r\x1c-\x1f\x85\p{Z}]*"
_TEXT_ID = rf"^{_SPACE}[0-9]{{1,18}}{_SPACE}$"
_TEXT_RE = re.compile(r"\s*[0-9]{1,18}\s*")  # the same rule for one Python string


def _row(index: int) -> str:
    return f"row {index + 1}"


def shown(value, limit: int = 40) -> str:
    """``value`` for an error message: quoted, cut to ``limit`` characters, "(empty)"."""
    value = "" if value is None else str(value)
    if not value.strip():
        return "(empty)"
    return repr(value if len(value) <= limit else value[:limit] + "...")


def id_error(source, column: str, where: str, value) -> DataError:
    """The :class:`DataError` for a value that breaks the rule, at ``where`` (``"row 3"``)."""
    return DataError(f"{source}, column {column!r}, {where}: {shown(value)} is not an integer "
                     "id (1 to 18 plain digits: no sign, decimal point, exponent or hex)")


def parse_text_ids(values, source, column: str,
                   where: Callable[[int], str] = _row) -> np.ndarray:
    """Ids from text (a sequence of str or a pyarrow string array): int64, or
    :class:`DataError` naming the first bad value (``where(k)`` locates value ``k``)."""
    text = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else \
        pa.array(np.asarray(values, dtype=object), type=pa.string())
    if len(text) == 0:
        return np.empty(0, np.int64)
    ok = pc.fill_null(pc.match_substring_regex(text, _TEXT_ID), False)
    if not pc.all(ok).as_py():
        k = int(np.flatnonzero(~ok.to_numpy(zero_copy_only=False))[0])
        raise id_error(source, column, where(k), text[k].as_py())
    digits = pc.replace_substring_regex(text, r"[^0-9]", "")
    return np.asarray(pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False),
                      dtype=np.int64)


def column_ids(values, source, column: str,
               where: Callable[[int], str] = _row) -> np.ndarray:
    """Ids from a column of any type (text, integers, whole floats below ``2**53``): int64,
    or :class:`DataError` naming the first bad value."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise DataError(f"{source}, column {column!r}: ids must form one column, got shape "
                        f"{array.shape}")
    kind = array.dtype.kind
    if kind in "US" or (kind == "O" and all(isinstance(v, str) for v in array)):
        return parse_text_ids(array.astype(object), source, column, where)
    if kind == "b":
        raise DataError(f"{source}, column {column!r}: holds booleans, not ids (True is not "
                        "an id)")
    if kind in "iu":
        bad = (array < 0) | (array > MAX_ID) if array.size else np.zeros(0, bool)
    elif kind == "f":
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(array) | (array != np.floor(array)) | (array < 0) | \
                (array >= _EXACT_FLOAT)
    elif kind == "O":  # mixed: text by the text rule, the rest by the typed one
        bad = np.array([not (_TEXT_RE.fullmatch(v) if isinstance(v, str) else _typed_id(v))
                        for v in array], dtype=bool)
    else:
        raise DataError(f"{source}, column {column!r}: holds {array.dtype} values, not ids")
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        value = array[k].item() if isinstance(array[k], np.generic) else array[k]
        raise DataError(f"{source}, column {column!r}, {where(k)}: {value!r:.40} is not an "
                        f"integer id (integers of at most 18 digits; floats only whole and "
                        f"below 2**53, where they hold every integer)")
    return np.array([int(v) for v in array], dtype=np.int64) if kind == "O" else \
        array.astype(np.int64)


def _typed_id(value) -> bool:
    """Whether one typed value is an id by the rule."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, numbers.Integral):
        return 0 <= int(value) <= MAX_ID
    if isinstance(value, numbers.Real):
        value = float(value)
        return value.is_integer() and 0 <= value < _EXACT_FLOAT
    return False


def is_id(value) -> bool:
    """Whether one value, text or typed, is an id by the rule."""
    return bool(_TEXT_RE.fullmatch(value)) if isinstance(value, str) else _typed_id(value)


def lookup_ids(values, what: str) -> np.ndarray:
    """Ids given to a query (one or many), for looking up in a model: an int64 array of
    ``values``' shape.

    Raises
    ------
    TypeError
        A value that is no integer: a bool, a string, a fractional, non-finite or inexact
        float (at or above ``2**53``).
    UnknownIdError
        An integer outside int64, which no model knows.
    """
    array = np.asarray(values, dtype=object) if isinstance(values, (list, tuple)) else \
        np.asarray(values)
    if array.dtype.kind == "i":
        return array.astype(np.int64)
    out = np.empty(array.size, dtype=np.int64)
    for k, value in enumerate(array.ravel().tolist()):
        exact_float = isinstance(value, float) and value.is_integer() and \
            abs(value) < _EXACT_FLOAT
        if isinstance(value, bool) or not (isinstance(value, numbers.Integral) or exact_float):
            raise TypeError(f"{what} must be integers, got {value!r:.40} "
                            f"({type(value).__name__})")
        if not -2**63 <= int(value) < 2**63:
            raise UnknownIdError(f"unknown {what} {int(value)} (outside int64, so in no model)")
        out[k] = int(value)
    return out.reshape(array.shape)
