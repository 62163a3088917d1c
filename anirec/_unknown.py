"""Unknown ids: one rule for every function and command that takes user or anime ids (what
an id may look like is :mod:`anirec.data._ids`'s rule).

Functions that take many (user, anime) pairs (:meth:`Recommender.predict`,
:meth:`Recommender.evaluate`, ``anirec predict``, ``anirec evaluate``) skip a pair that names
an id the model does not know and count it, by reason; with ``strict`` they refuse it instead.
A query about one user or anime (``recommend``, ``similar``) always refuses an unknown id.
Either way the message says why the id is unknown: a user with no rating in the model's data,
an anime not in the catalogue, or an anime that was dropped for an excluded genre.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from anirec.data._ids import lookup_ids
from anirec.errors import UnknownIdError

#: The reasons a pair is skipped, in the order they are checked and reported.
REASONS = ("unknown user", "anime not in the catalogue", "anime of an excluded genre")


def as_ids(what: str, values) -> np.ndarray:
    """``values`` (one id or a 1-D sequence) as a 1-D int64 array of ids.

    Raises
    ------
    UnknownIdError
        For a value that is no integer (:func:`anirec.data._ids.lookup_ids`), or an integer
        outside int64, naming ``what`` and the value.
    ValueError
        For a nested sequence.
    """
    array = np.atleast_1d(np.asarray(values, dtype=object) if isinstance(values, (list, tuple))
                          else np.asarray(values))
    if array.ndim != 1:
        raise ValueError(f"{what.replace(' ', '_')}s must be one id or a 1-D sequence of ids, "
                         f"got shape {array.shape}")
    try:
        return lookup_ids(array, what)
    except TypeError as error:
        raise UnknownIdError(str(error)) from None


class IdSpace(NamedTuple):
    """The ids of one kind that a model knows, and those it dropped on purpose.

    Attributes
    ----------
    ids : ndarray of int64
        The known ids, increasing (row ``r`` is ``ids[r]``).
    what : str
        Their name in messages: ``"user id"``, ``"anime id"``.
    where : str
        Where a known id is: ``"the model's ratings"``, ``"the catalogue"``.
    dropped : ndarray of int64
        Ids left out on purpose (increasing), e.g. anime of an excluded genre.
    dropped_why : str
        Why they were left out, e.g. ``"an excluded genre (Ecchi, Hentai)"``.
    """

    ids: np.ndarray
    what: str
    where: str
    dropped: np.ndarray = np.zeros(0, dtype=np.int64)
    dropped_why: str = ""

    def find(self, values) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, known)``: the row of each id (0 where unknown) and whether it is known."""
        values = as_ids(self.what, values)
        rows = np.searchsorted(self.ids, values)
        clipped = np.minimum(rows, max(self.ids.shape[0] - 1, 0))
        known = (rows < self.ids.shape[0]) & (self.ids[clipped] == values) if self.ids.size \
            else np.zeros(values.shape, dtype=bool)
        return np.where(known, clipped, 0).astype(np.int64), known

    def is_dropped(self, values) -> np.ndarray:
        """Whether each id is one of :attr:`dropped`."""
        return np.isin(as_ids(self.what, values), self.dropped)

    def why(self, value) -> str:
        """The message for an unknown id ``value``."""
        value = int(value)
        if self.is_dropped(value):
            return f"{self.what} {value} was dropped for {self.dropped_why}"
        return f"unknown {self.what} {value} (not in {self.where})"

    def rows(self, values) -> np.ndarray:
        """Rows of ``values`` (same shape).

        Raises
        ------
        UnknownIdError
            Naming the first unknown id and why it is unknown.
        """
        rows, known = self.find(values)
        if not known.all():
            raise UnknownIdError(self.why(as_ids(self.what, values)[np.flatnonzero(~known)[0]]))
        return rows


class Located(NamedTuple):
    """Where the pairs of :func:`locate_pairs` are.

    Attributes
    ----------
    known : ndarray of bool
        Per pair: are both ids known?
    users, items : ndarray of int64
        The user and anime rows of the known pairs, in order.
    skipped : dict of str to int
        The pairs skipped, per reason of :data:`REASONS` (a pair is counted once, under its
        first reason).
    """

    known: np.ndarray
    users: np.ndarray
    items: np.ndarray
    skipped: dict

    @property
    def n_skipped(self) -> int:
        """Pairs skipped, all reasons together."""
        return int(sum(self.skipped.values()))

    def describe(self) -> str:
        """``"3 pairs skipped: 1 unknown user, 2 anime not in the catalogue"`` (or ``""``)."""
        if not self.n_skipped:
            return ""
        parts = ", ".join(f"{count} {reason}" for reason, count in self.skipped.items()
                          if count)
        return f"{self.n_skipped} of {self.known.shape[0]} pairs skipped ({parts})"


def locate_pairs(users: IdSpace, anime: IdSpace, user_ids, anime_ids, *, strict: bool = False,
                 where: Callable[[int], str] | None = None) -> Located:
    """Find the rows of (user, anime) pairs, skipping the unknown ones or, with ``strict``,
    refusing them.

    Parameters
    ----------
    users, anime : IdSpace
    user_ids, anime_ids : array_like of int, one-dimensional, of one length
    strict : bool
        Refuse the first pair that names an unknown id instead of skipping it.
    where : callable(int) -> str, optional
        Where pair ``k`` is, for a refusal (``"pairs.csv, line 5"``); by default
        ``"pair k"``.

    Raises
    ------
    UnknownIdError
        With ``strict``: naming the first unknown id, why it is unknown, its line or position
        and how many pairs are unknown.
        Also for an id that is no integer.
    ValueError
        If the two lists differ in length.
    """
    user_ids, anime_ids = as_ids(users.what, user_ids), as_ids(anime.what, anime_ids)
    if user_ids.shape != anime_ids.shape:
        raise ValueError(f"user_ids and anime_ids must have one length, got "
                         f"{user_ids.shape[0]} and {anime_ids.shape[0]}")
    user_rows, user_known = users.find(user_ids)
    item_rows, item_known = anime.find(anime_ids)
    known = user_known & item_known
    if strict and not known.all():
        first = int(np.flatnonzero(~known)[0])
        why = users.why(user_ids[first]) if not user_known[first] else \
            anime.why(anime_ids[first])
        place = where(first) if where is not None else f"pair {first}"
        raise UnknownIdError(f"{place}: {why} ({int((~known).sum())} of {known.shape[0]} "
                             "pairs name an id the model does not know; without strict they "
                             "are skipped and counted)")
    excluded = ~item_known & anime.is_dropped(anime_ids)
    skipped = dict(zip(REASONS, (int((~user_known).sum()),
                                 int((user_known & ~item_known & ~excluded).sum()),
                                 int((user_known & excluded).sum()))))
    return Located(known, user_rows[known], item_rows[known], skipped)
