"""Filters of a recommendation list: genres and types to keep or leave out, a first year.

Every recommending method takes the same three arguments and turns them into item rows left
out of the list, through the one exclusion mechanism of retrieval (the top-k kernel's
per-query exclusion lists):

* ``genres``: genre names (any case); a name keeps the anime carrying *at least one* of the
  named genres, a name prefixed with ``-`` leaves out every anime carrying it.
  ``genres=["Action", "Sci-Fi", "-Romance"]``: action or science fiction, no romance.
* ``types``: the same for the anime's type (``TV``, ``Movie``, ``OVA``, ``ONA``, ``Special``,
  ``Music``, as the catalogue spells them): ``types=["TV"]`` only TV series,
  ``types=["-Music"]`` no music videos.
* ``min_year``: the first year the anime aired, at least this; an anime whose year the
  catalogue does not know is left out too.

A name the model does not know, or a filter on something the catalogue does not record (no
types, no years), is refused with :class:`~anirec.errors.DataError`: a filter silently
matching nothing would look like a model with nothing to recommend.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anirec import _validate
from anirec.errors import DataError

#: The start year saved for an anime whose ``Aired`` names none.
UNKNOWN_YEAR = 0
#: The earliest and latest year ``min_year`` may be (the years a catalogue can hold).
YEARS = (1, 9999)
#: The prefix of a name to leave out.
NOT = "-"


def anime_types(catalogue) -> np.ndarray:
    """The catalogue's ``Type`` of each anime as a unicode array, ``""`` where unknown."""
    types = catalogue.attributes["type"].to_numpy(dtype=object)
    return np.array(["" if value is None or value != value else str(value) for value in types],
                    dtype=str)


def start_years(catalogue) -> np.ndarray:
    """The first year each anime aired (int64), :data:`UNKNOWN_YEAR` where unknown."""
    years = catalogue.attributes["start_year"].to_numpy(dtype=np.float64)
    return np.where(np.isfinite(years), years, UNKNOWN_YEAR).astype(np.int64)


def _names(name: str, value) -> list[str]:
    """``value`` (one name or a sequence of names) as a list of stripped strings."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, (list, tuple, np.ndarray)) or \
            not all(isinstance(item, str) for item in values):
        raise TypeError(f"{name} must be a name or a sequence of names (strings), got "
                        f"{value!r:.60}")
    return [item.strip() for item in values]


def _split(name: str, value, known: tuple[str, ...], what: str, dropped=()) -> tuple:
    """``(kept, left out)`` column indices of ``known`` named by ``value``; names matched
    in any case; a ``dropped`` name (an excluded genre) may be left out, which is a no-op."""
    index = {item.casefold(): k for k, item in enumerate(known)}
    dropped = {item.casefold() for item in dropped}
    keep, leave = [], []
    for item in _names(name, value):
        negated = item.startswith(NOT)
        bare = item[len(NOT):].strip() if negated else item
        key = bare.casefold()
        if key in index:
            (leave if negated else keep).append(index[key])
        elif key in dropped and negated:
            continue  # already out of the catalogue
        elif key in dropped:
            raise DataError(f"{name}: the {what} {bare!r} was excluded from the catalogue, so "
                            "no anime of it can be recommended")
        elif not known:
            raise DataError(f"{name}: the catalogue records no anime {what}s, so none can be "
                            "chosen")
        else:
            raise DataError(f"{name}: unknown {what} {bare!r}; the catalogue's {what}s are "
                            f"{', '.join(known)} (prefix one with {NOT!r} to leave it out)")
    return keep, leave


@dataclass(frozen=True)
class Catalogue:
    """What the filters read of a model's catalogue: one entry or row per anime."""

    genre_matrix: np.ndarray
    genres: tuple[str, ...]
    excluded_genres: tuple[str, ...]
    types: np.ndarray
    years: np.ndarray

    def left_out(self, genres=None, types=None, min_year=None) -> np.ndarray:
        """The item rows the filters leave out (increasing), empty without filters.

        Raises
        ------
        DataError
            For a name the catalogue does not know, or a filter on what it does not record.
        TypeError, ValueError
            For an argument of the wrong type or a year out of :data:`YEARS`.
        """
        out = np.zeros(self.years.shape[0], dtype=bool)
        if genres is not None:
            keep, leave = _split("genres", genres, self.genres, "genre", self.excluded_genres)
            carries = self.genre_matrix > 0
            if keep:
                out |= ~carries[:, keep].any(axis=1)
            out |= carries[:, leave].any(axis=1)
        if types is not None:
            known = tuple(sorted({value for value in self.types.tolist() if value}))
            keep, leave = _split("types", types, known, "type")
            codes = np.array([known.index(value) if value else -1
                              for value in self.types.tolist()])
            if keep:
                out |= ~np.isin(codes, keep)
            out |= np.isin(codes, leave)
        if min_year is not None:
            year = _validate.integer("min_year", min_year, *YEARS)
            if not (self.years != UNKNOWN_YEAR).any():
                raise DataError("min_year: the catalogue records no year an anime aired, so "
                                "none can be chosen by year")
            out |= (self.years == UNKNOWN_YEAR) | (self.years < year)
        return np.flatnonzero(out).astype(np.int64)
