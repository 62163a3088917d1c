"""Strict checks of public arguments: a wrong type raises ``TypeError``, a value out of range
``ValueError``, each naming the argument and what was expected. The one argument-checking rule
of the public API (ids have theirs: :mod:`anirec.data._ids`).

Nothing is coerced silently: ``n=1.9`` is not 1, ``n="3"`` is not 3, ``layers="12"`` is not
``(1, 2)``, ``True`` is not a number, ``"yes"`` is not a boolean, ``(1, 5, 10)`` is not a pair
and ``"Action=9"`` is not a mapping of genres.
"""

from __future__ import annotations

import math
import numbers
from typing import Mapping, Sequence

import numpy as np


def integer(name: str, value, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int``, which must be an integer (not a bool, a float or a string) in
    ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer in [{low if low is not None else '-inf'}, "
                         f"{high if high is not None else 'inf'}], got {value}")
    return value


def boolean(name: str, value) -> bool:
    """``value``, which must be ``True`` or ``False`` (``"no"``, 1 or ``None`` are refused:
    ``bool("no")`` is true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r:.40} "
                        f"({type(value).__name__})")
    return bool(value)


def optional_integer(name: str, value, low: int | None = None,
                     high: int | None = None) -> int | None:
    """Like :func:`integer`, ``None`` allowed."""
    return None if value is None else integer(name, value, low, high)


def real(name: str, value, low: float = -math.inf, high: float = math.inf, *,
         low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite ``float`` in the interval from ``low`` to ``high`` (closed unless
    ``low_open``/``high_open``); strings and bools are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    inside = (low < value if low_open else low <= value) and \
        (value < high if high_open else value <= high)
    if not (math.isfinite(value) and inside):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value}")
    return value


def integer_tuple(name: str, value, low: int = 1, high: int | None = None) -> tuple[int, ...]:
    """A non-empty sequence of integers in ``[low, high]`` as a tuple (a string is refused,
    not split into its characters)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of integers, got {value!r}")
    values = tuple(value)
    if not values:
        raise ValueError(f"{name} must not be empty")
    return tuple(integer(f"{name}[{index}]", item, low, high) for index, item in
                 enumerate(values))


def number_pair(name: str, value) -> tuple[float, float]:
    """Two finite numbers ``(low, high)`` with ``low < high``."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a pair (low, high), got {value!r}")
    values = tuple(value)
    if len(values) != 2:
        raise ValueError(f"{name} must be a pair (low, high), got {len(values)} values")
    low, high = (real(f"{name}[{index}]", item) for index, item in enumerate(values))
    if not low < high:
        raise ValueError(f"{name} must be (low, high) with low < high, got ({low:g}, {high:g})")
    if not math.isfinite(high - low):  # (-1e308, 1e308): every scaled value would be 0 or NaN
        raise ValueError(f"{name} must be (low, high) with a finite width high - low, got "
                         f"({low:g}, {high:g})")
    return low, high


def number_mapping(name: str, value, what: str = "names") -> dict[str, float]:
    """A mapping of strings to finite numbers (``{"Action": 9}``), as a new dict; a string
    such as ``"Action=9"`` or a list of pairs is refused, not read letter by letter."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping of {what} to numbers, e.g. {{'Action': 9}}, "
                        f"got {value!r:.60} ({type(value).__name__})")
    result = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise TypeError(f"{name} must have {what} (strings) as keys, got {key!r:.40}")
        result[key] = real(f"{name}[{key!r}]", item)
    return result
