"""Per-user train / validation / test split of the ratings, done before any feature is fitted."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .types import Ratings

__all__ = ["Triplets", "Split", "split_ratings"]


@dataclass
class Triplets:
    """(user index, item index, rating) examples as parallel arrays.

    Attributes
    ----------
    users : ndarray of int32
    items : ndarray of int32
    ratings : ndarray of float32
        The raw rating, 1..10.
    indptr : ndarray of int64 or None
        CSR row pointer by user when the examples are grouped by user (the parts of a
        :class:`Split` are: each keeps the order of the loaded ratings), else ``None``.
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    indptr: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.users = np.ascontiguousarray(self.users, dtype=np.int32)
        self.items = np.ascontiguousarray(self.items, dtype=np.int32)
        self.ratings = np.ascontiguousarray(self.ratings, dtype=np.float32)
        n = self.users.shape[0]
        if self.users.ndim != 1 or self.items.shape != (n,) or self.ratings.shape != (n,):
            raise ValueError("Triplets arrays must be 1-D of one length, got shapes "
                             f"{self.users.shape}, {self.items.shape}, {self.ratings.shape}")

    def __len__(self) -> int:
        return int(self.users.shape[0])

    @classmethod
    def from_ratings(cls, ratings: Ratings) -> "Triplets":
        """All ratings of a :class:`~anirec.data.Ratings` as triplets."""
        return cls(ratings.users, ratings.items, ratings.ratings)

    def subset(self, mask_or_index: np.ndarray) -> "Triplets":
        """The examples selected by a boolean mask or an index array."""
        return Triplets(self.users[mask_or_index], self.items[mask_or_index],
                        self.ratings[mask_or_index])


@dataclass
class Split:
    """Train, validation and test triplets (disjoint; together: all ratings).

    Attributes
    ----------
    train, valid, test : Triplets
        Each in the order of the split ratings, with its row pointer.
    part : ndarray of int8 or None
        The part of each split rating, in their order: 0 train, 1 validation, 2 test.
    """

    train: Triplets
    valid: Triplets
    test: Triplets
    part: np.ndarray | None = None


def split_ratings(ratings: Ratings, *, valid: float = 0.1, test: float = 0.1,
                  min_ratings: int = 5, seed: int = 0) -> Split:
    """Split each user's ratings into train, validation and test at random.

    A user with ``n >= min_ratings`` ratings gives ``round(test * n)`` of them to test and
    ``round(valid * n)`` to validation, chosen uniformly at random, and keeps the rest (always
    at least one) for training; a user with fewer ratings keeps them all in train. The split is
    by user so that every validation/test user has training ratings to build features from.
    Each part keeps the order of ``ratings`` (sorted by user, item after loading).

    Parameters
    ----------
    ratings : Ratings
    valid, test : float
        Fractions per user, each in [0, 1), with ``valid + test < 1``.
    min_ratings : int
        Users with fewer ratings keep all of them in train.
    seed : int
        Seed; the same seed on the same ratings gives the same split.

    Returns
    -------
    Split

    Raises
    ------
    ValueError
        On fractions outside [0, 1), summing to 1 or more, or ``min_ratings < 1``.
    """
    for name, f in (("valid", valid), ("test", test)):
        if not 0.0 <= f < 1.0:
            raise ValueError(f"{name} must be a fraction in [0, 1), got {f!r}")
    if valid + test >= 1.0:
        raise ValueError(f"valid + test must be < 1, got {valid} + {test}")
    if int(min_ratings) != min_ratings or min_ratings < 1:
        raise ValueError(f"min_ratings must be an integer >= 1, got {min_ratings!r}")
    users = np.asarray(ratings.users)
    n = users.shape[0]
    per_user = np.diff(ratings.indptr)
    n_users = per_user.shape[0]
    grouped = n == 0 or bool(np.all(users[1:] >= users[:-1]))
    rng = np.random.default_rng(seed)
    # Random order within each user: rank on user + a uniform key in [0, 1). float64 keeps 52
    # bits, enough for user indices up to ~2^20 with ~32 random bits left for the tie-break.
    key = users.astype(np.float64) + rng.random(n)
    native = _native() if grouped else None
    rank = np.empty(n, dtype=np.int64)
    if native is not None:
        # Grouped by user, as loaded: the row pointer bounds each user's run, sorted alone.
        native.grouped_argsort(ratings.indptr, key, np.arange(n, dtype=np.int64), rank)
    else:
        # Keys are >= 0, where float64 and its bits as int64 sort alike: same order, and
        # NumPy's stable sort is faster on integers.
        order = np.argsort(key.view(np.int64), kind="stable")
        # The row pointer gives where each user's run starts in the sorted order.
        rank[order] = np.arange(n) - ratings.indptr[users[order]]
        del order
    del key
    big = per_user >= min_ratings
    n_test = np.where(big, np.rint(test * per_user), 0).astype(np.int64)
    n_valid = np.where(big, np.rint(valid * per_user), 0).astype(np.int64)
    # Always leave one rating for training.
    over = np.maximum(n_test + n_valid - (per_user - 1), 0)
    n_valid -= np.minimum(over, n_valid)
    over = np.maximum(n_test + n_valid - (per_user - 1), 0)
    n_test -= np.minimum(over, n_test)
    if native is not None and _compact(ratings, n):
        part = native.split_parts(users, rank, n_test, n_valid)
        del rank
        n_te, n_va = int(n_test.sum()), int(n_valid.sum())
        parts = [Triplets(*p) for p in native.partition3(part, users, ratings.items,
                                                           ratings.ratings, n - n_va - n_te,
                                                           n_va, n_te)]
    else:
        r_test = n_test[users]
        part = np.where(rank < r_test, np.int8(2), np.int8(0))
        part[(part == 0) & (rank < r_test + n_valid[users])] = 1
        del rank, r_test
        full = Triplets(ratings.users, ratings.items, ratings.ratings)
        parts = [full.subset(part == k) for k in range(3)]
    if grouped:
        # Each part keeps the ratings' order, so its row pointer is its per-user counts summed.
        counts = (per_user - n_valid - n_test, n_valid, n_test)
        for t, c in zip(parts, counts):
            t.indptr = np.zeros(n_users + 1, dtype=np.int64)
            np.cumsum(c, out=t.indptr[1:])
    return Split(train=parts[0], valid=parts[1], test=parts[2], part=part)


def _compact(ratings: Ratings, n: int) -> bool:
    """Whether the ratings' arrays are the loader's dtypes, contiguous (what the compiled
    helpers take without a copy)."""
    arrays = (ratings.users, ratings.items, ratings.ratings)
    return all(isinstance(a, np.ndarray) and a.flags.c_contiguous and a.shape == (n,)
               and a.dtype == dt for a, dt in zip(arrays, (np.int32, np.int32, np.int8)))


def _native():
    """The compiled split helpers when the ``cython`` backend is active and they are built."""
    from .scores import _native as scores_native

    return scores_native()
