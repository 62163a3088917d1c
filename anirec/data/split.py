"""Per-user train / validation / test split of the ratings, done before any feature is fitted."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .mal import Ratings, _scores

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
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray

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
    """Train, validation and test triplets (disjoint; together: all ratings)."""

    train: Triplets
    valid: Triplets
    test: Triplets


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
    n_users = max(ratings.n_users, int(users.max()) + 1 if n else 0)
    rng = np.random.default_rng(seed)
    # Random order within each user: sort on user + a uniform key in [0, 1). float64 keeps 52
    # bits, enough for user indices up to ~2^20 with ~32 random bits left for the tie-break.
    key = users.astype(np.float64) + rng.random(n)
    # Loaded ratings are grouped by user: then one compiled pass gives the runs.
    bounds = None
    if _scores is not None and n:
        bounds = _scores.run_bounds(np.ascontiguousarray(users, dtype=np.int32), n_users)
    if bounds is not None:
        starts = bounds
        per_user = np.diff(bounds)
    else:
        per_user = np.bincount(users, minlength=n_users)
        starts = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(per_user, out=starts[1:])
    rank = _rank_in_user(users, key, n_users, starts, grouped=bounds is not None)
    del key
    big = per_user >= min_ratings
    n_test = np.where(big, np.rint(test * per_user), 0).astype(np.int64)
    n_valid = np.where(big, np.rint(valid * per_user), 0).astype(np.int64)
    # Always leave one rating for training.
    over = np.maximum(n_test + n_valid - (per_user - 1), 0)
    n_valid -= np.minimum(over, n_valid)
    over = np.maximum(n_test + n_valid - (per_user - 1), 0)
    n_test -= np.minimum(over, n_test)
    if _scores is not None:
        items = np.asarray(ratings.items)
        values = np.asarray(ratings.ratings)
        if (users.dtype == np.int32 and items.dtype == np.int32 and values.dtype == np.int8
                and users.flags.c_contiguous and items.flags.c_contiguous
                and values.flags.c_contiguous and items.shape == values.shape == (n,)):
            # One pass to the part of each rating (train 0, valid 1, test 2), one to copy
            # the parts out.
            part = _scores.split_parts(users, rank, n_test, n_valid)
            n_te, n_va = int(n_test.sum()), int(n_valid.sum())
            parts = _scores.partition3(part, users, items, values, n - n_va - n_te, n_va, n_te)
            return Split(*(Triplets(*p) for p in parts))
    r_test = n_test[users]
    is_test = rank < r_test
    is_valid = ~is_test & (rank < r_test + n_valid[users])
    del rank, r_test
    is_train = ~(is_test | is_valid)
    full = Triplets(ratings.users, ratings.items, ratings.ratings)
    return Split(train=full.subset(is_train), valid=full.subset(is_valid),
                 test=full.subset(is_test))


def _rank_in_user(users: np.ndarray, key: np.ndarray, n_users: int, starts: np.ndarray,
                  grouped: bool = False) -> np.ndarray:
    """Rank of each rating within its user by ``key`` (``floor(key)`` is the user; equal keys
    in index order): as from ``np.argsort(key, kind="stable")``.

    With the compiled helpers: a counting sort by user (none when the users are already
    grouped, as loaded ratings are, or ``grouped`` says so) and a linear-time bucket sort
    of each user's run.
    """
    n = users.shape[0]
    rank = np.empty(n, dtype=np.int64)
    if _scores is None:
        order = np.argsort(key, kind="stable")
        rank[order] = np.arange(n) - starts[users[order]]
        return rank
    users = np.ascontiguousarray(users, dtype=np.int32)
    if grouped or _scores.run_bounds(users, n_users) is not None:
        order = np.arange(n, dtype=np.int64)
        bounds = starts
    else:
        order, bounds = _scores.counting_order(users, n_users)
    _scores.grouped_argsort(bounds, np.ascontiguousarray(key, dtype=np.float64), order, rank)
    return rank
