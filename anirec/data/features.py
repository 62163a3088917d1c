"""Item and user features for the two-tower model, fitted on training ratings only.

Item features
    The genre one-hot, plus (optionally) three statistics of the training ratings (the
    Bayesian average rating, the mean rating and ``log1p`` of the count), ``log1p(Members)``,
    ``log1p(Episodes)``, the start year from ``Aired`` and a ``Type`` one-hot. Missing
    attributes are imputed with the column mean over the catalogue; every column is then
    z-scored.

User features
    ``[pref_0 .. pref_{G-1}, log1p(count), mean_rating]`` from the user's *training* ratings,
    computed with sparse matrix products (user x anime weights @ anime x genre). The genre
    preference ``pref_g`` depends on the weighting:

    * ``"rating"``: the user's average rating of their anime in genre ``g`` (their overall
      mean where they rated none);
    * ``"centered"``: that average minus the user's mean (0 where they rated none);
    * ``"bayesian"`` (default): the share of the user's anime in genre ``g`` with each anime
      weighted by its Bayesian average rating (the user's own ratings enter only through
      ``mean_rating``).

    The default was chosen on validation results of the synthetic data (see
    ``tests/data/test_weighting_choice.py``). No model is trained there: the proxy is a ridge
    regression of the rating on the user x item feature interactions (a two-tower model also
    scores a pair by an interaction of the two feature vectors), training examples with their
    leave-one-out user rows, validation examples with the full training rows. Validation RMSE
    on the default synthetic set (seeds 0, 1, 2; global-mean baseline 1.63, 1.65, 1.63):
    ``"bayesian"`` 1.177, 1.197, 1.202; ``"rating"`` 1.209, 1.235, 1.232; ``"centered"`` the
    same as ``"rating"`` (a linear model spans both). Which genres a user watches carries more
    information than the noisy per-genre averages of a few ratings each, because the planted
    selection, like MyAnimeList users, favours liked genres and avoids disliked ones.

No target leakage
    A training example's features must not contain its own rating. :class:`UserStats` and
    :class:`ItemStats` keep sufficient statistics (sums and counts) from which the features of
    example ``(u, i, r)`` are derived minus that example's contribution (the formulas live in
    :mod:`anirec.loo`), so no feature row per rating is stored. Validation and test examples
    use the full training statistics (:attr:`Features.user_x`, :attr:`Features.item_x`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import scipy.sparse as sp

from .. import loo
from ..errors import DataError
from ..loo import USER_MODES
from .bayes import OutsideStatistics, bayesian_prior, outside_statistics, prior_constants
from .types import ANIME_TYPES, Catalogue
from .split import Triplets

__all__ = ["WEIGHTINGS", "UserStats", "ItemStats", "FeatureScales", "Features", "ColdStart",
           "build_features", "zscore_fit"]

#: Weighting name -> ``UserStats.mode`` code.
WEIGHTINGS: dict[str, int] = USER_MODES
_MODE_NAMES = {v: k for k, v in WEIGHTINGS.items()}


def zscore_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations of ``x`` (a std of 0 is replaced by 1)."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] == 0:
        return np.zeros(x.shape[1]), np.ones(x.shape[1])
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return mean, std


@dataclass
class UserStats:
    """Sufficient statistics of the users' training ratings, for leave-one-out user rows.

    ``num``, ``den``, ``total`` and ``count`` are those of :mod:`anirec.loo` (the formula's
    one home), with ``item_genres`` and ``item_weight`` (the Bayesian ratings of the anime)
    and the weighting code ``mode``; ``mean`` and ``std`` are the z-score scaler of the rows.
    """

    num: np.ndarray
    den: np.ndarray
    total: np.ndarray
    count: np.ndarray
    item_genres: np.ndarray
    item_weight: np.ndarray
    mode: int
    global_mean: float
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of(cls, train: Triplets, n_users: int, item_genres: np.ndarray,
           item_weight: np.ndarray, mode: int, global_mean: float, mean: np.ndarray | None = None,
           std: np.ndarray | None = None) -> "UserStats":
        """The statistics of the users' ratings ``train``: the one computation of a user row's
        sums, for the training users and for a person folded into a trained model alike.

        ``num`` and ``den`` come from sparse products (user x anime weights @ anime x genre);
        ``mean`` and ``std`` default to the identity scaler (zeros and ones).
        """
        n_items, G = item_genres.shape
        if mode == WEIGHTINGS["bayesian"]:
            mat = _user_csr(train, n_users, n_items, item_weight[train.items])
            num = np.asarray(mat @ item_genres)
            den = np.repeat(np.asarray(mat.sum(axis=1)).reshape(-1, 1), G, axis=1)
        else:
            mat = _user_csr(train, n_users, n_items, train.ratings.astype(np.float64))
            num = np.asarray(mat @ item_genres)
            mat.data = np.ones_like(mat.data)
            den = np.asarray(mat @ item_genres)
        del mat
        ratings = train.ratings.astype(np.float64)
        total = np.bincount(train.users, weights=ratings, minlength=n_users)
        count = np.bincount(train.users, minlength=n_users).astype(np.float64)
        return cls(num=num, den=den, total=total, count=count, item_genres=item_genres,
                   item_weight=item_weight, mode=mode, global_mean=float(global_mean),
                   mean=np.zeros(G + 2) if mean is None else mean,
                   std=np.ones(G + 2) if std is None else std)

    @property
    def n_users(self) -> int:
        return int(self.num.shape[0])

    @property
    def n_genres(self) -> int:
        return int(self.num.shape[1])

    @property
    def weighting(self) -> str:
        """The weighting name of :attr:`mode`."""
        return _MODE_NAMES[self.mode]

    def rows(self, users: np.ndarray, items: np.ndarray | None = None,
             ratings: np.ndarray | None = None, *, scaled: bool = True) -> np.ndarray:
        """User feature rows, leaving out one training example per row when given.

        Parameters
        ----------
        users : array_like of int
            User indices.
        items, ratings : array_like, optional
            The training example ``(users[k], items[k], ratings[k])`` whose contribution row
            ``k`` leaves out. Both or neither. Passing an example that is not in the training
            set gives meaningless rows.
        scaled : bool
            Apply the z-score scaler (``(raw - mean) / std``).

        Returns
        -------
        ndarray of float64, shape (len(users), G + 2)
        """
        u = np.asarray(users, dtype=np.int64).ravel()
        if u.size and (u.min() < 0 or u.max() >= self.n_users):
            raise IndexError(f"user index out of range 0..{self.n_users - 1}")
        if (items is None) != (ratings is None):
            raise ValueError("give both items and ratings (leave-one-out) or neither")
        if items is not None:
            items = np.asarray(items, dtype=np.int64).ravel()
            ratings = np.asarray(ratings, dtype=np.float64).ravel()
            if items.shape != u.shape or ratings.shape != u.shape:
                raise ValueError(f"users, items and ratings must have one length, got "
                                 f"{u.shape[0]}, {items.shape[0]}, {ratings.shape[0]}")
        raw = loo.user_rows(self.num, self.den, self.total, self.count, self.item_genres,
                            self.item_weight, self.mode, self.global_mean, u, items, ratings)
        if scaled:
            raw -= self.mean
            raw /= self.std
        return raw


@dataclass
class ItemStats:
    """Sufficient statistics of the items' training ratings, for leave-one-out item columns.

    The item rows hold three columns derived from training ratings (:data:`anirec.loo.ITEM_COLUMNS`:
    the Bayesian average, the mean rating and ``log1p`` of the count) at ``columns`` of
    :attr:`Features.item_x`; ``mean`` and ``std`` are their z-score scaler. A training example
    sees them computed without its own rating (:meth:`rows`); the formula and the meaning of
    ``prior_num``, ``prior_den`` and ``from_ratings`` are in :mod:`anirec.loo`.
    """

    rating_sum: np.ndarray
    rating_count: np.ndarray
    prior_num: np.ndarray
    prior_den: np.ndarray
    from_ratings: np.ndarray
    global_mean: float
    columns: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    @property
    def n_items(self) -> int:
        return int(self.rating_sum.shape[0])

    def rows(self, items, ratings=None, *, scaled: bool = True) -> np.ndarray:
        """The three statistics of ``items`` ``(n, 3)``, leaving out ``ratings`` when given."""
        items = np.asarray(items, dtype=np.int64).ravel()
        if items.size and (items.min() < 0 or items.max() >= self.n_items):
            raise IndexError(f"item index out of range 0..{self.n_items - 1}")
        raw = loo.item_rows(self.rating_sum, self.rating_count, self.prior_num, self.prior_den,
                            self.from_ratings, self.global_mean, items, ratings)
        if scaled:
            raw -= self.mean
            raw /= self.std
        return raw


@dataclass(frozen=True)
class FeatureScales:
    """The constants fitted with the features: one value per column or per data set, shared by
    every example (unlike the per-user and per-item statistics, which each training example
    sees without its own rating).

    Attributes
    ----------
    global_mean : float
        The mean training rating (the mean of a user or item without other ratings).
    prior_mean, prior_weight : float
        ``m`` and ``C`` of the Bayesian average (:func:`anirec.data.bayes.prior_constants`).
    item_mean, item_std, user_mean, user_std : ndarray of float64
        The z-score scalers of the item and user rows.
    """

    global_mean: float
    prior_mean: float
    prior_weight: float
    item_mean: np.ndarray
    item_std: np.ndarray
    user_mean: np.ndarray
    user_std: np.ndarray


@dataclass
class Features:
    """Feature matrices, scalers and sufficient statistics built from the training ratings.

    Attributes
    ----------
    item_x : ndarray of float64, shape (n_items, d_item)
        z-scored item features; ``item_feature_names`` names the columns, ``item_mean`` and
        ``item_std`` are the scaler.
    user_x : ndarray of float64, shape (n_users, G + 2)
        z-scored full-train user features (for validation/test examples and recommendation);
        equal to ``user_stats.rows(all users)``. ``user_feature_names`` are the genres then
        ``"log_count"`` and ``"mean_rating"``; ``user_mean``/``user_std`` is the scaler, fitted
        on the raw rows of the users with at least one training rating.
    user_stats : UserStats
        For the leave-one-out rows of training examples.
    genres : tuple of str
        The genre order of the catalogue.
    weighting : str
        ``"rating"``, ``"centered"`` or ``"bayesian"``.
    item_bayes : ndarray of float64
        Bayesian average rating per item, missing metadata filled from training ratings only
        (what the baselines and the ``"bayesian"`` weighting use).
    item_stats : ItemStats or None
        For the leave-one-out item statistics of training examples (``None`` without item
        attributes, whose rows hold no statistic of the ratings).
    scales : FeatureScales
        The constants the features were built with.
    """

    item_x: np.ndarray
    item_feature_names: list[str]
    item_mean: np.ndarray
    item_std: np.ndarray
    user_x: np.ndarray
    user_feature_names: list[str]
    user_mean: np.ndarray
    user_std: np.ndarray
    user_stats: UserStats
    genres: tuple[str, ...]
    weighting: str
    item_bayes: np.ndarray
    item_stats: ItemStats | None
    scales: FeatureScales

    @property
    def cold_start(self) -> "ColdStart":
        """What :meth:`new_user_row` needs, small enough to be saved with a model."""
        active = self.user_stats.count[self.user_stats.count > 0]
        return ColdStart(genres=tuple(self.genres), mode=int(self.user_stats.mode),
                         global_mean=float(self.user_stats.global_mean),
                         mean=self.user_stats.mean, std=self.user_stats.std,
                         typical_count=float(np.median(active)) if active.size else 0.0)

    def new_user_row(self, genre_ratings: Mapping[str, float], *,
                     scale: tuple[float, float] = (1, 10)) -> np.ndarray:
        """Scaled feature row of a new user who rates genres (see :meth:`ColdStart.row`)."""
        return self.cold_start.row(genre_ratings, scale=scale)


@dataclass
class ColdStart:
    """The user-feature recipe for a new user who rates genres instead of anime.

    Attributes
    ----------
    genres : tuple of str
        The genre order.
    mode : int
        The weighting code (:data:`WEIGHTINGS`).
    global_mean : float
        The mean training rating.
    mean, std : ndarray of float64, shape (G + 2,)
        The user-feature scaler.
    typical_count : float
        The median number of training ratings of a user.
    """

    genres: tuple[str, ...]
    mode: int
    global_mean: float
    mean: np.ndarray
    std: np.ndarray
    typical_count: float

    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """JSON-friendly header and arrays, to be saved with a model."""
        header = {"genres": list(self.genres), "mode": self.mode,
                  "global_mean": self.global_mean, "typical_count": self.typical_count}
        return header, {"mean": self.mean, "std": self.std}

    @classmethod
    def from_state(cls, header: dict, arrays: dict[str, np.ndarray]) -> "ColdStart":
        return cls(genres=tuple(header["genres"]), mode=int(header["mode"]),
                   global_mean=float(header["global_mean"]), mean=arrays["mean"],
                   std=arrays["std"], typical_count=float(header["typical_count"]))

    def strengths(self, genre_ratings: Mapping[str, float], *,
                  scale: tuple[float, float] = (1, 10)) -> np.ndarray:
        """Signed taste per genre: -1 (rated lowest) .. 0 (the middle, or unrated) .. +1.

        Returns
        -------
        ndarray of float64, shape (G,)

        Raises
        ------
        DataError
            On an unknown or excluded genre name (the message lists the valid ones), a
            rating outside ``scale`` or not finite, or an empty scale.
        """
        lo, hi = (float(scale[0]), float(scale[1]))
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise DataError(f"scale must be (low, high) with high > low, got {scale!r}")
        index = {g: j for j, g in enumerate(self.genres)}
        unknown = [g for g in genre_ratings if g not in index]
        if unknown:
            raise DataError(f"unknown genre(s) {', '.join(repr(g) for g in unknown)}; valid "
                            f"genres are {', '.join(self.genres)}")
        strength = np.zeros(len(self.genres))
        for g, v in genre_ratings.items():
            v = float(v)
            if not np.isfinite(v) or v < lo or v > hi:
                raise DataError(f"rating of genre {g!r} must be within {lo:g}..{hi:g}, got {v!r}")
            strength[index[g]] = 2.0 * (v - lo) / (hi - lo) - 1.0
        return strength

    def row(self, genre_ratings: Mapping[str, float], *,
            scale: tuple[float, float] = (1, 10),
            rating_range: tuple[float, float] = (1, 10)) -> np.ndarray:
        """Scaled feature row of a new user who rates genres instead of anime (cold start).

        A genre rating says how much the user likes that genre: the top of ``scale`` is a fan,
        the bottom someone who avoids it, the middle (and any genre left out) the average
        user. Each genre's preference feature is placed accordingly:

        * ``"bayesian"`` (the share of the user's anime in each genre): from the average
          user's share of that genre up to a share of 1 for the top rating, down to 0 for the
          bottom one, linearly;
        * ``"rating"`` and ``"centered"``: the rating, mapped onto the data's
          ``rating_range`` (minus the training mean for ``"centered"``), as the user's average
          rating of that genre;
        * unrated genres get the average user's value (0 after scaling): a user who names only
          the genres they love says nothing about the others;
        * ``mean_rating`` is the training mean and ``log_count`` that of the median training
          user, so the new user sits at a typical generosity and activity level (rating genres
          says which anime one likes, not how generously one rates them).

        Parameters
        ----------
        genre_ratings : mapping of str to float
            Genre name -> rating on ``scale``; genres may be left out.
        scale : (low, high)
            The scale the ratings are given on.
        rating_range : (low, high)
            The scale of the ratings the features were built from.

        Returns
        -------
        ndarray of float64, shape (1, G + 2)

        Raises
        ------
        DataError
            On an unknown or excluded genre name (the message lists the valid ones), a
            rating outside ``scale`` or not finite, or an empty scale.
        """
        strength = self.strengths(genre_ratings, scale=scale)
        G = len(self.genres)
        rated = np.zeros(G, dtype=bool)
        rated[[self.genres.index(g) for g in genre_ratings]] = True
        raw = np.array(self.mean, dtype=np.float64)  # the average user, before scaling
        if self.mode == 2:
            average = raw[:G]
            raw[:G] = np.where(strength >= 0, average + strength * (1.0 - average),
                               average * (1.0 + strength))
        else:
            low, high = (float(v) for v in rating_range)
            rating = low + (high - low) * (strength + 1.0) / 2.0  # on the data's scale
            raw[:G] = np.where(rated, rating - (self.global_mean if self.mode == 1 else 0.0),
                               raw[:G])
        raw[-2] = np.log1p(self.typical_count)
        raw[-1] = self.global_mean
        scaled = (raw - self.mean) / self.std
        scaled[:G][~rated] = 0.0
        return scaled[None, :]


def _item_matrix(catalogue: Catalogue, stats_raw: np.ndarray, members: np.ndarray,
                 attributes: bool) -> tuple[np.ndarray, list[str]]:
    """Raw item columns: genres, then (with ``attributes``) the training statistics
    (:data:`anirec.loo.ITEM_COLUMNS`), the numeric attributes (``members``: the people
    listing the anime outside the loaded raters) and the type one-hot."""
    cols = [catalogue.genre_matrix.astype(np.float64)]
    names = [f"genre:{g}" for g in catalogue.genres]
    if attributes:
        cols.append(stats_raw)
        names.extend(loo.ITEM_COLUMNS)
        attr = catalogue.attributes
        numeric = {
            "log_members": np.log1p(np.clip(members, 0, None)),
            "log_episodes": np.log1p(np.clip(attr["episodes"].to_numpy(np.float64), 0, None)),
            "start_year": attr["start_year"].to_numpy(np.float64),
        }
        for name, v in numeric.items():
            known = np.isfinite(v)
            fill = float(v[known].mean()) if known.any() else 0.0
            cols.append(np.where(known, v, fill)[:, None])
            names.append(name)
        typ = attr["type"].to_numpy(dtype=object)
        onehot = np.stack([(typ == t).astype(np.float64) for t in ANIME_TYPES], axis=1)
        cols.append(onehot)
        names.extend(f"type:{t}" for t in ANIME_TYPES)
    return np.concatenate(cols, axis=1), names


def _user_csr(train: Triplets, n_users: int, n_items: int,
              values: np.ndarray) -> sp.csr_matrix:
    """The user x item matrix of ``values``; examples already grouped by user (a split part of
    loaded ratings) reuse their row pointer."""
    if train.indptr is not None and train.indptr.shape == (n_users + 1,):
        return sp.csr_matrix((values, train.items, train.indptr), shape=(n_users, n_items))
    users = train.users
    if users.size > 1 and np.any(users[1:] < users[:-1]):
        order = np.argsort(users, kind="stable")
        users, items, values = users[order], train.items[order], values[order]
    else:
        items = train.items
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
    return sp.csr_matrix((values, items, indptr), shape=(n_users, n_items))


def build_features(catalogue: Catalogue, train: Triplets, n_users: int, *,
                   weighting: str = "bayesian", item_attributes: bool = True,
                   outside: OutsideStatistics | None = None,
                   scales: FeatureScales | None = None) -> Features:
    """Build item and user features from the catalogue and the training ratings only.

    Parameters
    ----------
    catalogue : Catalogue
    train : Triplets
        Training examples; validation and test ratings must not be passed here.
    n_users : int
        Number of users (rows of ``user_x``); users without training ratings get the
        no-rating row (``mean_rating`` = the training mean).
    weighting : {"rating", "centered", "bayesian"}
        How the genre preferences weight a user's anime (see the module docstring).
    item_attributes : bool
        Add the numeric and type attributes to the genre one-hot.
    outside : OutsideStatistics, optional
        What the catalogue's Score, Scored By and Members hold beyond the loaded ratings
        (:func:`anirec.data.outside_statistics`: a catalogue that counts the loaded ratings,
        as MyAnimeList's does, must have them taken out, or every example would read its
        own rating). Default: the catalogue's values as they are (a catalogue independent of
        the ratings).
    scales : FeatureScales, optional
        Build with these constants instead of fitting them on ``train`` (the features of other
        ratings on the scale of fitted ones: ``Features.scales`` of an earlier build).

    Returns
    -------
    Features

    Raises
    ------
    ValueError
        On an unknown weighting, an empty training set, or indices out of range.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {', '.join(map(repr, WEIGHTINGS))}, "
                         f"got {weighting!r}")
    if len(train) == 0:
        raise ValueError("the training set is empty")
    n_items = catalogue.n_items
    if int(train.users.max()) >= n_users or int(train.users.min()) < 0:
        raise ValueError(f"train.users must be in 0..{n_users - 1}")
    if int(train.items.max()) >= n_items or int(train.items.min()) < 0:
        raise ValueError(f"train.items must be in 0..{n_items - 1} (the catalogue)")
    mode = WEIGHTINGS[weighting]
    ratings = train.ratings.astype(np.float64)

    # Items: statistics of the *training* ratings, on top of what the catalogue knows beyond
    # the loaded ratings (the Bayesian rating); training examples see them without their own.
    item_sum = np.bincount(train.items, weights=ratings, minlength=n_items)
    item_count = np.bincount(train.items, minlength=n_items).astype(np.float64)
    if outside is None:
        nothing = np.zeros(n_items)
        outside = outside_statistics(catalogue, nothing, nothing, counts_ratings=False)
    if scales is None:
        m, c = prior_constants(outside, item_sum, item_count)
        global_mean = float(ratings.mean())
    else:
        m, c, global_mean = scales.prior_mean, scales.prior_weight, scales.global_mean
    prior = bayesian_prior(outside, m, c)
    stats_raw = loo.item_rows(item_sum, item_count, *prior, global_mean, np.arange(n_items))
    bayes = stats_raw[:, 0].copy()
    item_raw, item_names = _item_matrix(catalogue, stats_raw, outside.members, item_attributes)
    item_mean, item_std = zscore_fit(item_raw) if scales is None else \
        (scales.item_mean, scales.item_std)
    item_x = (item_raw - item_mean) / item_std
    item_stats = None
    if item_attributes:
        columns = np.array([item_names.index(name) for name in loo.ITEM_COLUMNS])
        item_stats = ItemStats(item_sum, item_count, *prior, global_mean, columns,
                               item_mean[columns], item_std[columns])

    # Users: sufficient statistics by sparse products (user x anime) @ (anime x genre).
    genres_m = np.ascontiguousarray(catalogue.genre_matrix, dtype=np.float64)
    stats = UserStats.of(train, n_users, genres_m, bayes, mode, global_mean)
    raw = stats.rows(np.arange(n_users), scaled=False)
    stats.mean, stats.std = zscore_fit(raw[stats.count > 0]) if scales is None else \
        (scales.user_mean, scales.user_std)
    user_x = (raw - stats.mean) / stats.std
    scales = FeatureScales(global_mean, m, c, item_mean, item_std, stats.mean, stats.std)
    return Features(
        item_x=item_x, item_feature_names=item_names, item_mean=item_mean, item_std=item_std,
        user_x=user_x, user_feature_names=[*catalogue.genres, "log_count", "mean_rating"],
        user_mean=stats.mean, user_std=stats.std, user_stats=stats, genres=catalogue.genres,
        weighting=weighting, item_bayes=bayes, item_stats=item_stats, scales=scales,
    )
