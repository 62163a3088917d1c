"""The data layer's types: the catalogue, the ratings (a CSR matrix by user), the load summary.

Nothing here reads a file: :mod:`anirec.data.anime` and :mod:`anirec.data.scores` build these,
:func:`anirec.data.load_mal` puts them together.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd

from ..errors import UnknownIdError
from .scale import MAL_SCALE, RatingScale

__all__ = [
    "DEFAULT_EXCLUDED_GENRES",
    "ANIME_TYPES",
    "Catalogue",
    "Ratings",
    "LoadSummary",
    "MALData",
    "index_of_sorted",
    "row_pointer",
]

#: Genres whose anime leave the catalogue by default.
DEFAULT_EXCLUDED_GENRES: tuple[str, ...] = ("Ecchi", "Hentai", "Erotica")
#: The ``Type`` values of the 2023 data set (``UNKNOWN`` is missing), in a stable order.
ANIME_TYPES: tuple[str, ...] = ("TV", "Movie", "OVA", "ONA", "Special", "Music")


@dataclass
class Catalogue:
    """The anime that can be trained on and recommended.

    Item index ``k`` (row ``k`` of every array) is the anime ``anime_ids[k]``; items are sorted
    by MAL id. Anime carrying an excluded genre are not in the catalogue.

    Attributes
    ----------
    anime_ids : ndarray of int64
        Item index -> MAL ``anime_id`` (increasing).
    names : ndarray of object
        ``Name`` per item.
    genres : tuple of str
        Genre names in their stable (sorted) order, excluded genres removed: the columns of
        ``genre_matrix``.
    genre_matrix : ndarray of float32, shape (n_items, n_genres)
        Genre one-hot (0/1).
    attributes : pandas.DataFrame
        Per item: ``score``, ``scored_by``, ``members``, ``episodes``, ``start_year`` (float,
        NaN where ``UNKNOWN``) and ``type`` (string, missing where ``UNKNOWN``).
    bayes_rating : ndarray of float64
        Bayesian average rating per item (see :func:`anirec.data.bayesian_prior`) over the
        catalogue's Score and the loaded ratings, each counted once (the catalogue is taken to
        count the loaded ratings); feature building recomputes it from the training ratings.
    excluded_genres : tuple of str
        The genres whose anime were removed.
    excluded_ids : ndarray of int64
        The MAL ids of the anime removed for an excluded genre (increasing), so that a query
        naming one can say why it is not in the catalogue.
    """

    anime_ids: np.ndarray
    names: np.ndarray
    genres: tuple[str, ...]
    genre_matrix: np.ndarray
    attributes: pd.DataFrame
    bayes_rating: np.ndarray
    excluded_genres: tuple[str, ...] = DEFAULT_EXCLUDED_GENRES
    excluded_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def n_items(self) -> int:
        """Number of anime in the catalogue."""
        return int(self.anime_ids.shape[0])

    @property
    def n_genres(self) -> int:
        """Number of genre features."""
        return len(self.genres)

    def index_of(self, anime_ids: Iterable[int] | np.ndarray | int) -> np.ndarray:
        """Item indices of MAL anime ids.

        Parameters
        ----------
        anime_ids : int or array_like of int

        Returns
        -------
        ndarray of int64
            Same shape as the input.

        Raises
        ------
        UnknownIdError
            Naming the first id that is not in the catalogue (unknown or excluded).
        """
        return index_of_sorted(self.anime_ids, anime_ids, "anime_id", "the catalogue")


@dataclass
class Ratings:
    """Ratings as compact parallel arrays, one entry per (user, anime) pair.

    Loaded ratings are sorted by (user, item), so together with :attr:`indptr` they are the
    CSR matrix users x items: user ``u``'s ratings are the entries ``indptr[u]:indptr[u + 1]``.

    Attributes
    ----------
    user_ids : ndarray of int64
        User index -> MAL ``user_id`` (increasing).
    users : ndarray of int32
        User index of each rating.
    items : ndarray of int32
        Item index (into the :class:`Catalogue`) of each rating.
    ratings : ndarray of int8
        The rating, 1..10.
    indptr : ndarray of int64, shape (n_users + 1,)
        Row pointer: ``indptr[u + 1] - indptr[u]`` ratings of user ``u``, starting at
        ``indptr[u]`` when the ratings are grouped by user (as loaded). Given by the loader;
        computed from ``users`` when omitted.
    """

    user_ids: np.ndarray
    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    indptr: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.indptr is None:
            self.indptr = row_pointer(np.asarray(self.users), self.n_users)

    @property
    def n_users(self) -> int:
        """Number of users."""
        return int(self.user_ids.shape[0])

    @property
    def n_ratings(self) -> int:
        """Number of ratings."""
        return int(self.ratings.shape[0])

    def __len__(self) -> int:
        return self.n_ratings

    def user_index_of(self, user_ids: Iterable[int] | np.ndarray | int) -> np.ndarray:
        """User indices of MAL user ids.

        Raises
        ------
        UnknownIdError
            Naming the first id that has no kept rating.
        """
        return index_of_sorted(self.user_ids, user_ids, "user_id", "the ratings")


def row_pointer(users: np.ndarray, n_users: int) -> np.ndarray:
    """The CSR row pointer of ratings grouped by user: ``n_users + 1`` offsets, int64.

    Parameters
    ----------
    users : ndarray of int
        User index of each rating, in ``[0, n_users)``.
    n_users : int
        Number of rows; users past the largest index get empty rows.

    Returns
    -------
    ndarray of int64
    """
    indptr = np.zeros(max(int(n_users), int(users.max()) + 1 if users.size else 0) + 1,
                      dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=indptr.shape[0] - 1), out=indptr[1:])
    return indptr


def index_of_sorted(sorted_ids: np.ndarray, ids: object, what: str, where: str) -> np.ndarray:
    """Positions of ``ids`` in the increasing array ``sorted_ids`` (same shape as ``ids``):
    the public id lookup behind :meth:`Catalogue.index_of` and :meth:`Ratings.user_index_of`.

    Parameters
    ----------
    sorted_ids : ndarray of int64
        Distinct ids, increasing.
    ids : int or array_like of int
        The ids to look up.
    what, where : str
        For the error message: the id's name (``"anime_id"``) and where it was looked for.

    Returns
    -------
    ndarray of int64

    Raises
    ------
    UnknownIdError
        Naming the first id that ``sorted_ids`` lacks, as "unknown {what} {id} (not in
        {where})", or a value that is no integer (the one id rule,
        :func:`anirec.data._ids.lookup_ids`).
    """
    from ._ids import lookup_ids

    try:
        arr = lookup_ids(ids, what)
    except TypeError as error:
        raise UnknownIdError(str(error)) from None
    pos = np.searchsorted(sorted_ids, arr)
    pos_c = np.minimum(pos, max(sorted_ids.shape[0] - 1, 0))
    ok = (pos < sorted_ids.shape[0]) & (sorted_ids[pos_c] == arr) if sorted_ids.size else \
        np.zeros(arr.shape, dtype=bool)
    if not np.all(ok):
        bad = arr[~ok].ravel()[0]
        raise UnknownIdError(f"unknown {what} {int(bad)} (not in {where})")
    return pos_c.astype(np.int64)


@dataclass
class LoadSummary:
    """What :func:`load_mal` read, kept and dropped, with counts per reason.

    Every rating row of the scores file is counted exactly once in ``ratings_kept`` or one of
    the ``ratings_*`` drop reasons (checked in this order: unknown anime, excluded anime,
    rating outside ``rating_scale``, duplicate pair, too few ratings of the user, of the anime).
    ``anime_file`` is empty when no anime file was read (the items are known by their ids).
    """

    anime_file: str = ""
    scores_file: str = ""
    anime_rows: int = 0
    anime_duplicate: int = 0
    anime_excluded: int = 0
    anime_values_coerced: int = 0
    anime_kept: int = 0
    rating_rows: int = 0
    ratings_unknown_anime: int = 0
    ratings_excluded_anime: int = 0
    ratings_invalid: int = 0
    ratings_duplicate: int = 0
    ratings_user_min: int = 0
    ratings_item_min: int = 0
    ratings_kept: int = 0
    users_kept: int = 0
    users_dropped: int = 0
    anime_disagreeing: int = 0
    excluded_genres: tuple[str, ...] = ()
    coerced_columns: dict[str, int] = field(default_factory=dict)
    rating_scale: tuple[float, float] = MAL_SCALE

    def as_dict(self) -> dict[str, object]:
        """The counts (and file names) as a plain dict."""
        return asdict(self)

    @property
    def ratings_dropped(self) -> int:
        """Rating rows not kept, all reasons together."""
        return self.rating_rows - self.ratings_kept

    def __str__(self) -> str:
        lines = [
            f"anime file {self.anime_file}: {self.anime_rows} rows, {self.anime_kept} anime kept",
            f"  duplicate anime_id rows (last kept): {self.anime_duplicate}",
            f"  anime with an excluded genre {list(self.excluded_genres)}: {self.anime_excluded}",
            f"  non-numeric values read as missing: {self.anime_values_coerced}"
            + (f" {self.coerced_columns}" if self.coerced_columns else ""),
        ] if self.anime_file else ["no anime file: the anime are known by their ids only"]
        lines.append(f"scores file {self.scores_file}: {self.rating_rows} rows, "
                     f"{self.ratings_kept} ratings kept from {self.users_kept} users")
        if self.anime_file:
            lines += [f"  anime not in the anime file: {self.ratings_unknown_anime}",
                      f"  anime with an excluded genre: {self.ratings_excluded_anime}"]
        lines += [
            f"  rating missing or not on the scale {RatingScale(*self.rating_scale)}: "
            f"{self.ratings_invalid}",
            f"  duplicate (user, anime) pairs (last kept): {self.ratings_duplicate}",
            f"  user below the minimum number of ratings: {self.ratings_user_min}"
            f" ({self.users_dropped} users)",
            f"  anime below the minimum number of ratings: {self.ratings_item_min}",
        ]
        if self.anime_disagreeing:
            lines.append(f"anime whose Scored By or Members is below their ratings in the scores "
                         f"file (their Score and Members are not used): {self.anime_disagreeing}")
        return "\n".join(lines)


@dataclass
class MALData:
    """A loaded data set: the catalogue, the ratings and the load summary."""

    catalogue: Catalogue
    ratings: Ratings
    summary: LoadSummary
