"""``Recommender``: the catalogue, the features and a trained two-tower model, tied together.

>>> import anirec
>>> data = anirec.datasets.load_demo()                      # doctest: +SKIP
>>> rec = anirec.Recommender(seed=0).fit(data)              # doctest: +SKIP
>>> rec.evaluate()                                          # doctest: +SKIP
>>> rec.recommend(user_id=data.ratings.user_ids[0], n=10)   # doctest: +SKIP
>>> rec.recommend_for_genres({"Action": 9, "Romance": 3})   # doctest: +SKIP
>>> rec.recommend_for_ratings("animelist.xml.gz", explain=True)  # doctest: +SKIP
>>> rec.similar(anime_id=data.catalogue.anime_ids[0])       # doctest: +SKIP
>>> rec.save("model.anirec"); anirec.Recommender.load("model.anirec")  # doctest: +SKIP
"""

from __future__ import annotations

import numbers
import os
import sys
import warnings
from typing import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from anirec import _filters, _unknown, _validate, kernels
from anirec.baselines import (BayesianAverage, BiasModel, GlobalMean, Popularity,
                              baseline_from_state, baseline_to_state)
from anirec.data._ids import lookup_ids
from anirec.data.ratings import COLUMNS
from anirec.data.scale import MAL_SCALE, RatingScale
from anirec.errors import AnirecWarning, DataError, ModelFormatError, NotFittedError
from anirec.metrics import Evaluation, mae, ranking_metrics, relevant_sets, rmse
from anirec.model import TwoTower
from anirec.model.persistence import read_model_file, write_model_file
from anirec.options import RECOMMENDER, SAVED_OWN, passed_on

RATING_RANGE = MAL_SCALE  # the scale until ``fit`` sees the data's
_USER_BLOCK = 4096  # users scored per top-k call when streaming over many users
#: Default weight of the popularity prior in the retrieval score (see ``Recommender``).
POPULARITY_WEIGHT = RECOMMENDER["popularity_weight"].default
#: Default weight of an anime's rating bias in the retrieval score (see ``Recommender``).
QUALITY_WEIGHT = RECOMMENDER["quality_weight"].default
#: Weight of a new user's stated genre tastes in the cold-start score, in units of the spread
#: of the model's scores (see ``Recommender.recommend_for_genres``).
GENRE_WEIGHT = 1.5


def _csr_from_pairs(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]):
    """CSR ``(indptr, indices)`` of the pairs (rows[j], cols[j]), sorted, duplicates merged."""
    matrix = sp.csr_matrix((np.ones(rows.shape[0], dtype=np.int8), (rows, cols)), shape=shape)
    matrix.sum_duplicates()
    return matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64)


def _id_list(ids, name: str) -> np.ndarray:
    """One id or a 1-D sequence of ids as a 1-D array (a nested list is refused by name,
    not met later as a shape error deep inside)."""
    array = np.atleast_1d(np.asarray(ids, dtype=object) if isinstance(ids, (list, tuple))
                          else np.asarray(ids))
    if array.ndim != 1:
        raise ValueError(f"{name} must be one id or a 1-D sequence of ids, got shape "
                         f"{array.shape}")
    return array


def _csr_add_columns(indptr: np.ndarray, indices: np.ndarray, columns: np.ndarray):
    """Every row of ``(indptr, indices)`` with ``columns`` added (sorted, duplicates merged)."""
    if columns.shape[0] == 0:
        return indptr, indices
    n_rows = indptr.shape[0] - 1
    rows = np.concatenate([np.repeat(np.arange(n_rows), np.diff(indptr)),
                           np.repeat(np.arange(n_rows), columns.shape[0])])
    cols = np.concatenate([indices, np.tile(columns, n_rows)])
    n_cols = int(max(cols.max(initial=-1), 0)) + 1
    return _csr_from_pairs(rows, cols, (n_rows, n_cols))


def _csr_take(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray):
    """The CSR rows ``rows`` of ``(indptr, indices)``, in that order."""
    starts, stops = indptr[rows], indptr[rows + 1]
    lengths = stops - starts
    sub_indptr = np.zeros(rows.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=sub_indptr[1:])
    positions = np.repeat(starts - sub_indptr[:-1], lengths) + np.arange(sub_indptr[-1])
    return sub_indptr, np.ascontiguousarray(indices[positions])


def _filter_args(genres, types, min_year):
    """The filters of a recommending method as :meth:`Recommender._exclusions` takes them
    (``None`` without any)."""
    filters = (genres, types, min_year)
    return None if all(value is None for value in filters) else filters


class Recommender:
    """Recommend anime with a two-tower network trained on MyAnimeList-style ratings.

    ``fit`` splits the ratings per user (train / validation / test, seeded), fits the features
    on the training ratings only (with leave-one-out user rows for the training examples), and
    trains a :class:`~anirec.model.TwoTower` with early stopping on the validation ratings.

    Parameters
    ----------
    layers : sequence of int
        Tower widths after the input (default ``(256, 128, 64, 32)``).
    weighting : {"bayesian", "rating", "centered"}
        How user genre preferences are computed (see :func:`anirec.data.build_features`).
        ``"bayesian"`` (the share of each genre among the user's anime, weighted by their
        Bayesian rating) gave the lowest validation RMSE with this model on the demo data:
        1.081 / 1.081 against 1.101 / 1.107 for ``"rating"`` and 1.103 / 1.106 for
        ``"centered"`` (the kept epoch's, seeds 0 / 1, 15 epochs).
    valid, test : float
        Per-user fractions of ratings held out for validation and test; ``valid=0`` trains
        without validation (every epoch, no early stopping).
    min_ratings : int
        Users with fewer ratings keep all of them in training.
    leave_one_out : bool
        Derive each training example's user row without its own rating (recommended: the
        model otherwise reads its own target).
    item_attributes : bool
        Add the items' training statistics (Bayesian rating, mean rating, count) and numeric
        anime attributes (members, type, episodes, year) to genres.
    catalogue_counts_ratings : bool
        Whether the catalogue's ``Score``, ``Scored By`` and ``Members`` count the ratings
        ``fit`` is given, as MyAnimeList's count every rating of ``users-score-2023.csv`` and
        as any catalogue scored from the same ratings does (the default). The model then
        reads them with those ratings taken out (:func:`anirec.data.outside_statistics`) and
        adds back the training ratings, each training example without its own: no input
        holds the rating it is trained on, and no held-out rating is in any input. ``False``
        for a catalogue known to be independent of the ratings: its values are used as they
        are.
    refit : bool
        After early stopping has chosen the number of epochs on the validation ratings, train
        again from scratch on training + validation ratings (features too) for that many
        epochs, so no rating the model may learn from is held back (default: it lowered the
        test RMSE on both public real sets of the README). The model's ``history_`` and
        ``best_epoch_`` stay those of the run that chose the epochs.
    seed : int
        Seeds the split, the initial weights and the shuffles.
    verbose : bool
        Show a progress bar while training (default: silent).
    popularity_weight : float
        How much the popularity prior of a ranking or hybrid model weighs when ranking:
        the retrieval score is ``cosine / temperature + popularity_weight * log q`` (1: as
        trained; 0: taste alone, more of the catalogue recommended, less popular anime).
        Can be changed after fitting (``rec.popularity_weight = 0.5``). The default was chosen
        on the public real sets (README, "Objectives, popularity and quality").
    quality_weight : float
        How much an anime's rating bias ``b_item`` (how much better it is rated than the
        mean, a model with biases) adds to the retrieval score of a ranking or hybrid model:
        ``+ quality_weight * b_item``, the bias in points of the 1..10 scale (times
        ``9 / (hi - lo)`` on another rating scale, so the ranking is the same in any units).
        The bias is fitted on ratings alone, so it tells which anime people who watch it rate
        highly, what the ranking (relevant: 4 of 5 stars and up) rewards. The default 0.5
        raised NDCG@10 on both public real sets (README, "Objectives, popularity and
        quality"); it can be changed after fitting.
    epochs, batch_size, lr, ... : the model's options
        Every option of :class:`~anirec.model.TwoTower` but ``rating_range`` (from the data),
        ``seed`` and ``verbose`` (the Recommender's own, passed on), with the defaults the
        signature shows (:data:`anirec.options.RECOMMENDER`): ``epochs``, ``batch_size``,
        ``lr``, ``optimizer``, ``lr_schedule``, ``patience``, ``dtype``, the training objective:
        ``objective="rating" | "ranking" | "hybrid"``, ``ranking_weight``, ``temperature``,
        ``positive_threshold``). ``"rating"`` predicts ratings well but ranks poorly (below
        popularity); ``"ranking"`` and ``"hybrid"`` learn which anime a user rates highly, and
        ``"hybrid"`` (the default here) keeps the rating accuracy of ``"rating"``. Also the
        rating biases (``biases``, ``bias_reg``) and the ID embeddings (``embedding_dim``,
        default 32 here, ``min_id_count``, ``embedding_decay``).
    """

    def __init__(self, **kwargs):
        # The signature, the defaults and each value's check: anirec.options.RECOMMENDER.
        values = RECOMMENDER.bind((), kwargs)
        if values["valid"] + values["test"] >= 1:
            raise ValueError(f"valid + test must leave ratings to train on, got "
                             f"{values['valid']:g} + {values['test']:g}")
        self.options = {name: values[name] for name in SAVED_OWN}
        model_options = {name: values[name] for name in passed_on()}
        if values["valid"] == 0 and "validation_fraction" not in kwargs:
            # No validation split means no validation at all, not the model's own fallback
            # of holding out part of the training ratings.
            model_options["validation_fraction"] = 0.0
        verbose = values["verbose"]
        self.model = TwoTower(rating_range=RATING_RANGE, seed=values["seed"], verbose=verbose,
                              **model_options)
        self.verbose = verbose
        self.fitted = False

    # -----------------------------------------------------------------------------------------
    # Fitting

    def fit(self, data) -> "Recommender":
        """Split ``data``, build features, train.

        Parameters
        ----------
        data : MALData, RatingData, DataFrame or path-like
            What :func:`anirec.load_mal` or :func:`anirec.load_ratings` returns; a table or
            CSV path is read with ``load_ratings`` (columns ``user_id, anime_id, rating``,
            the scale from the data). Predictions stay on the data's rating scale.

        Returns
        -------
        self
        """
        from anirec.data import Triplets
        from anirec.data.ratings import load_ratings

        if not hasattr(data, "ratings"):  # a plain table or file
            data = load_ratings(data)
        # Ratings keep their scale: the model maps it to [-1, 1] and back.
        self.model.rating_range = tuple(float(v) for v in getattr(data, "rating_scale",
                                                                   RATING_RANGE))
        split = self._split_of(data)
        train = split.train
        outside = self._outside(data)
        features = self._train_model(data, train, split.valid, outside)
        if self.options["refit"] and self.model.best_epoch_ is not None:
            train = Triplets(*(np.concatenate([getattr(split.train, name),
                                               getattr(split.valid, name)])
                               for name in ("users", "items", "ratings")))
            features = self._refit(data, train, outside)
        catalogue = data.catalogue
        self.anime_ids = np.asarray(catalogue.anime_ids, dtype=np.int64)
        self.anime_names = np.asarray(catalogue.names, dtype=str)
        self.genres = tuple(catalogue.genres)
        self.excluded_genres = tuple(catalogue.excluded_genres)
        self.excluded_anime_ids = np.asarray(catalogue.excluded_ids, dtype=np.int64)
        self.genre_matrix = np.asarray(catalogue.genre_matrix, dtype=np.float32)
        self.anime_types = _filters.anime_types(catalogue)
        self.start_years = _filters.start_years(catalogue)
        # The anime's weights in a user row, for a person folded in (anirec.foldin).
        self.item_weight = np.asarray(features.user_stats.item_weight, dtype=np.float64)
        self.user_ids = np.asarray(data.ratings.user_ids, dtype=np.int64)
        self.cold_start = features.cold_start
        self.user_x = np.asarray(features.user_x)
        self.item_x = np.asarray(features.item_x)
        shape = (self.user_ids.shape[0], self.anime_ids.shape[0])
        # Evaluation ranks the test anime, so it may exclude only what the model trained on;
        # recommendations must leave out everything the user rated, test split included.
        if split.train.indptr is not None and split.valid.indptr is not None:
            # Loaded ratings are a CSR matrix: the trained-on set is it without the test part.
            self.seen = (split.train.indptr + split.valid.indptr,
                         data.ratings.items[split.part != 2].astype(np.int64))
        else:
            seen = [split.train, split.valid]
            self.seen = _csr_from_pairs(np.concatenate([s.users for s in seen]),
                                        np.concatenate([s.items for s in seen]), shape)
        self.rated = _csr_from_pairs(np.asarray(data.ratings.users, np.int64),
                                     np.asarray(data.ratings.items, np.int64), shape)
        self.test = split.test
        self._split = split  # kept for split_frames(); a loaded model has the test split only
        self.summary = data.summary.as_dict() if hasattr(data.summary, "as_dict") else {}
        self.baselines = self._fit_baselines(train, features.item_bayes)
        self._prepare()
        self.fitted = True
        return self

    def _split_of(self, data):
        """The per-user train / validation / test split ``fit`` makes of ``data``."""
        from anirec.data import split_ratings

        options = self.options
        return split_ratings(data.ratings, valid=options["valid"], test=options["test"],
                             min_ratings=options["min_ratings"], seed=options["seed"])

    def _features(self, data, train, outside, scales=None):
        """The features of ``train`` (training ratings only), as this recommender builds them;
        ``scales``: with the constants of an earlier build instead of fitted ones."""
        from anirec.data import build_features

        return build_features(data.catalogue, train, data.ratings.n_users,
                              weighting=self.options["weighting"],
                              item_attributes=self.options["item_attributes"],
                              outside=outside, scales=scales)

    def _train_model(self, data, train, valid, outside):
        """Features from ``train`` only, then the model (early stopping on ``valid``)."""
        features = self._features(data, train, outside)
        loo = self.options["leave_one_out"]
        self.model.fit(train, features.user_x, features.item_x,
                       validation=valid if valid is not None and len(valid) else None,
                       loo=features.user_stats if loo else None,
                       item_loo=features.item_stats if loo else None)
        return features

    def _outside(self, data):
        """What the catalogue knows beyond the loaded ratings (every split of them)."""
        from anirec.data import outside_statistics

        n_items = data.catalogue.n_items
        items = np.asarray(data.ratings.items)
        file_sum = np.bincount(items, weights=np.asarray(data.ratings.ratings, np.float64),
                               minlength=n_items)
        file_count = np.bincount(items, minlength=n_items).astype(np.float64)
        return outside_statistics(data.catalogue, file_sum, file_count,
                                  counts_ratings=self.options["catalogue_counts_ratings"],
                                  scale=self.model.rating_range)

    def _refit(self, data, train, outside):
        """Train again on ``train`` (training + validation ratings) for the chosen number of
        epochs."""
        chosen = self.model
        config = chosen.get_config()
        config.update(epochs=chosen.best_epoch_, patience=None, validation_fraction=0.0,
                      verbose=chosen.verbose)
        self.model = TwoTower(**config)
        if chosen.verbose:
            from tqdm.auto import tqdm

            tqdm.write(f"refit: training again on training + validation ratings for "
                       f"{chosen.best_epoch_} epoch{'' if chosen.best_epoch_ == 1 else 's'} "
                       "(the best of early stopping)",
                       file=sys.stderr)
        features = self._train_model(data, train, None, outside)
        self.model.history_, self.model.best_epoch_ = chosen.history_, chosen.best_epoch_
        return features

    def _fit_baselines(self, train, bayes_rating) -> list:
        n_users, n_items = self.user_ids.shape[0], self.anime_ids.shape[0]
        args = (train.users, train.items, train.ratings, n_users, n_items)
        return [GlobalMean.fit(*args), BayesianAverage(np.asarray(bayes_rating, np.float64)),
                BiasModel.fit(*args), Popularity.fit(*args)]

    def _prepare(self) -> None:
        """Embed the catalogue and the known users once; every query reuses them."""
        self.item_vectors = self.model.item_embeddings(self.item_x,
                                                       np.arange(self.item_x.shape[0]))
        self.user_vectors = self.model.user_embeddings(self.user_x,
                                                       np.arange(self.user_x.shape[0]))
        # Retrieval scores are dot products with these item rows (the embeddings themselves,
        # or with the popularity prior of a ranking model appended: TwoTower.retrieval_items,
        # and then the item's rating bias when the model has biases).
        items = self.model.retrieval_items(self.item_vectors)
        if self._ranks_by_quality:
            bias = (self._quality_unit * self.model.biases_.item)[:, None].astype(items.dtype)
            items = np.ascontiguousarray(np.hstack([items, bias]))
        self.retrieval_items = items

    @property
    def _quality_unit(self) -> float:
        """What one rating unit of an item bias weighs in the retrieval score: one point of
        the 1..10 scale, whatever the scale (``9 / (hi - lo)``), so that the ranking does not
        depend on the units of the ratings (0.5..5 and 1000..10000 rank as 1..10 does)."""
        lo, hi = self.model.rating_range
        return (RATING_RANGE[1] - RATING_RANGE[0]) / (hi - lo)

    @property
    def _ranks_by_quality(self) -> bool:
        """Whether retrieval scores carry the item-bias column (a prior and biases)."""
        return self.model.item_log_prior_ is not None and self.model.biases_ is not None

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError("this Recommender is not fitted: call fit() or load() first")

    # -----------------------------------------------------------------------------------------
    # Queries

    @property
    def _users(self) -> _unknown.IdSpace:
        return _unknown.IdSpace(self.user_ids, "user id", "the model")

    @property
    def _anime(self) -> _unknown.IdSpace:
        genres = ", ".join(self.excluded_genres)
        return _unknown.IdSpace(self.anime_ids, "anime id", "the catalogue",
                                getattr(self, "excluded_anime_ids", np.zeros(0, np.int64)),
                                f"an excluded genre ({genres})")

    def user_rows(self, user_ids) -> np.ndarray:
        """Row indices (1-D) of MAL user ids (one id or a 1-D sequence); raises
        :class:`~anirec.errors.UnknownIdError`."""
        self._check_fitted()
        return self._users.rows(user_ids)

    def anime_rows(self, anime_ids) -> np.ndarray:
        """Row indices (1-D) of MAL anime ids (one id or a 1-D sequence); raises
        :class:`~anirec.errors.UnknownIdError` saying whether the anime is not in the
        catalogue or was dropped for an excluded genre."""
        self._check_fitted()
        return self._anime.rows(anime_ids)

    def anime_genres(self, anime_ids) -> list[str]:
        """The genres of each anime, joined with ``", "`` as in the MAL files."""
        return self._genre_names(self.anime_rows(anime_ids))

    def _genre_names(self, rows) -> list[str]:
        names = np.asarray(self.genres, dtype=object)
        return [", ".join(names[self.genre_matrix[row] > 0]) for row in rows]

    def locate(self, user_ids, anime_ids, *, strict: bool = False,
               where=None) -> _unknown.Located:
        """The rows of (user, anime) pairs, the unknown ones skipped and counted per reason
        (unknown user, anime not in the catalogue, anime of an excluded genre), or with
        ``strict`` refused: the rule of every function that takes pairs
        (:mod:`anirec._unknown`; ``where(k)`` says where pair ``k`` is, for a refusal).

        Raises
        ------
        UnknownIdError
            With ``strict``, naming the first unknown id and why it is unknown; and for an
            id that is no integer (:mod:`anirec.data._ids`).
        """
        self._check_fitted()
        return _unknown.locate_pairs(self._users, self._anime, user_ids, anime_ids,
                                     strict=strict, where=where)

    def predict(self, user_ids, anime_ids, *, strict: bool = False) -> np.ndarray:
        """Predicted ratings, on the model's rating scale, for pairs of MAL user and anime ids.

        A pair naming a user or an anime the model does not know gets NaN, and an
        :class:`~anirec.errors.AnirecWarning` counts such pairs by reason; ``strict=True``
        refuses them (as ``anirec predict`` does, with ``--strict``).

        Raises
        ------
        UnknownIdError
            With ``strict``, naming the first unknown id and why it is unknown.

        >>> rec.predict([1, 1, 4], [20, 5114, 20])  # doctest: +SKIP
        array([7.9, 8.6, 6.2])
        """
        located = self.locate(user_ids, anime_ids, strict=strict)
        predicted = np.full(located.known.shape[0], np.nan)
        predicted[located.known] = self._predicted_ratings(located.users, located.items)
        if located.n_skipped:
            warnings.warn(f"{located.describe()}: their prediction is NaN (strict=True "
                          "refuses them)", AnirecWarning, stacklevel=2)
        return predicted

    def _predicted_ratings(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Ratings of (user row, anime row) pairs from the precomputed embeddings."""
        scores = np.einsum("ij,ij->i", self.user_vectors[users], self.item_vectors[items])
        return self.model.score_to_rating(scores, users, items)

    def _top(self, queries: np.ndarray, n: int, exclude=None, *, items=None):
        """Top-``n`` items by retrieval score for user embeddings ``queries`` (or by dot
        product with ``items`` when given)."""
        # Strict (n=1.9 or "3" are refused); a huge n is capped at the catalogue by topk.
        n = _validate.integer("n", n, 1)
        if items is None:
            queries = self._retrieval_queries(queries)
            items = self.retrieval_items
        return kernels.topk(np.ascontiguousarray(queries), items, n, exclude=exclude)

    def _cosines(self, score, index):
        """The tower cosine behind retrieval scores of items ``index``."""
        prior = self.model.item_log_prior_
        if prior is None:
            return score
        score = score - self.popularity_weight * prior[index]
        if self._ranks_by_quality:
            score = score - self.quality_weight * self._quality_unit * \
                self.model.biases_.item[index]
        return score * self.model.temperature

    def _exclusions(self, rows: np.ndarray, exclude_rated: bool, exclude, filters=None,
                    also=None):
        """CSR exclusions for the user ``rows``: what each rated (any split), plus, for every
        user, ``exclude`` (MAL anime ids; unknown ids are ignored), the anime the ``filters``
        (``(genres, types, min_year)``, :mod:`anirec._filters`) leave out, and the anime rows
        ``also``: the one way anything is kept out of a recommendation list."""
        extra = [np.zeros(0, np.int64)]
        if exclude is not None:
            # An integer beyond int64 is in no catalogue: nothing to leave out.
            values = [value for value in np.asarray(exclude, dtype=object).ravel()
                      if not (isinstance(value, numbers.Integral) and
                              not -2**63 <= int(value) < 2**63)]
            ids = np.unique(lookup_ids(values, "exclude"))
            if ids.size:
                extra.append(self.anime_rows(ids[np.isin(ids, self.anime_ids)]))
        if filters is not None:
            extra.append(self._filter_catalogue.left_out(*filters))
        if also is not None:
            extra.append(np.asarray(also, dtype=np.int64))
        extra = np.unique(np.concatenate(extra))
        if exclude_rated:
            indptr, indices = _csr_take(*self.rated, rows)
        else:
            indptr, indices = np.zeros(rows.shape[0] + 1, np.int64), np.zeros(0, np.int64)
        if not exclude_rated and extra.shape[0] == 0:
            return None
        return _csr_add_columns(indptr, indices, extra.astype(np.int64))

    @property
    def _filter_catalogue(self) -> _filters.Catalogue:
        return _filters.Catalogue(self.genre_matrix, self.genres, self.excluded_genres,
                                  self.anime_types, self.start_years)

    def _top_for_users(self, user_ids, n: int, exclude_rated: bool, exclude=None,
                       filters=None):
        """Catalogue rows and retrieval scores of the top-``n`` anime of each user."""
        rows = self.user_rows(user_ids)
        return self._top(self.user_vectors[rows], n,
                         self._exclusions(rows, exclude_rated, exclude, filters))

    def recommend_arrays(self, user_ids, n: int = 10, *, exclude_rated: bool = True,
                         exclude=None, genres=None, types=None, min_year=None):
        """Top-``n`` anime for each user as arrays: ``(anime_ids, scores)``, each
        ``(len(user_ids), n)``; rows are padded with anime id ``-1`` and score ``-inf`` when
        fewer than ``n`` anime are left. The other arguments as in :meth:`recommend`."""
        index, scores = self._top_for_users(user_ids, n, exclude_rated, exclude,
                                            _filter_args(genres, types, min_year))
        return np.where(index >= 0, self.anime_ids[index], -1), scores

    def _frame(self, query_ids, index, scores, id_column: str, cosines=None,
               user_rows=None, user_bias: float = 0.0,
               cosine_weight: float = 1.0) -> pd.DataFrame:
        """One row per (query, rank); ``cosines`` (like ``scores``) are the tower cosines
        when ``scores`` are not plain retrieval scores; ``user_rows`` are the queries' user
        rows (for the predicted ratings' user biases; ``None``: a new user, whose rating bias
        is ``user_bias`` and cosine weight ``cosine_weight``)."""
        rank = np.tile(np.arange(1, index.shape[1] + 1), index.shape[0])
        flat_index, flat_scores = index.ravel(), scores.ravel().astype(np.float64)
        keep = flat_index >= 0
        cosine = self._cosines(flat_scores[keep], flat_index[keep]) if cosines is None else \
            np.asarray(cosines, np.float64).ravel()[keep]
        users = None if user_rows is None else np.repeat(user_rows, index.shape[1])[keep]
        frame = pd.DataFrame({
            id_column: np.repeat(query_ids, index.shape[1])[keep],
            "rank": rank[keep],
            # What ranks the list comes first, the predicted rating beside it.
            "score": flat_scores[keep],
            "predicted_rating": self.model.score_to_rating(cosine_weight * cosine, users,
                                                           flat_index[keep],
                                                           user_bias=user_bias),
            "anime_id": self.anime_ids[flat_index[keep]],
            "name": self.anime_names[flat_index[keep]],
            "genres": self._genre_names(flat_index[keep]),
        })
        return frame

    def recommend(self, user_id, n: int = 10, *, exclude_rated: bool = True,
                  exclude=None, genres=None, types=None, min_year=None) -> pd.DataFrame:
        """Top-``n`` anime for one MAL user id or a list of them.

        Every anime the user rated in the data the model was given (the training, validation
        and test splits alike) is left out unless ``exclude_rated=False``; the anime ids in
        ``exclude`` are left out for every user, and so are those the filters ``genres``,
        ``types`` and ``min_year`` leave out. Batch results equal one-at-a-time results.

        Parameters
        ----------
        user_id : int or sequence of int
            MAL user id(s) known to the model.
        n : int
            Anime per user.
        exclude_rated : bool
            Leave out what each user rated.
        exclude : sequence of int, optional
            MAL anime ids never to recommend (ids not in the catalogue are ignored).
        genres : str or sequence of str, optional
            Genre names (any case): keep only anime carrying at least one of them; a name
            prefixed with ``-`` leaves out every anime carrying it
            (``genres=["Action", "-Romance"]``).
        types : str or sequence of str, optional
            The same for the anime's type: ``types="TV"`` only TV series,
            ``types=["-Music"]`` no music videos.
        min_year : int, optional
            Only anime first aired in this year or later (an anime of unknown year is left
            out too).

        Returns
        -------
        DataFrame
            Columns ``user_id, rank, score, predicted_rating, anime_id, name, genres``
            (joined with ``", "``; empty without a catalogue), sorted by
            ``score`` (highest first), which is what ranks the list: the retrieval score, the
            cosine of the two towers (for a ranking or hybrid model, ``cosine / temperature +
            popularity_weight * log q + quality_weight * b_item``: a popularity prior and,
            with rating biases, the anime's bias added). ``predicted_rating`` is the model's
            rating of the pair on the rating scale; it need not decrease down the list, because
            the list ranks what the user is likely to rate *and* like, not the rating alone.

        Fewer than ``n`` rows are returned when the exclusions and filters leave fewer anime.

        Raises
        ------
        UnknownIdError
            If a user id is not known to the model.
        DataError
            If a filter names a genre or type the catalogue does not know, or filters on
            types or years a catalogue does not record.

        >>> rec.recommend(user_id=1, n=5)            # doctest: +SKIP
        >>> rec.recommend(user_id=[1, 4, 9], n=5, exclude=[5114])    # doctest: +SKIP
        >>> rec.recommend(1, types="TV", genres="-Romance", min_year=2010)  # doctest: +SKIP
        """
        user_ids = np.atleast_1d(np.asarray(user_id))
        index, scores = self._top_for_users(user_ids, n, exclude_rated, exclude,
                                            _filter_args(genres, types, min_year))
        return self._frame(user_ids, index, scores, "user_id",
                           user_rows=self.user_rows(user_ids))

    def iter_recommend_all(self, n: int = 10, *, block: int = _USER_BLOCK, exclude=None):
        """Yield recommendation frames (as :meth:`recommend`) for every known user, ``block``
        users at a time."""
        self._check_fitted()
        block = _validate.integer("block", block, 1)
        for start in range(0, self.user_ids.shape[0], block):
            yield self.recommend(self.user_ids[start:start + block], n, exclude=exclude)

    def genre_scale(self, scale=None) -> RatingScale:
        """The scale of a new user's genre ratings: ``scale``, by default the model's."""
        return self.rating_scale if scale is None else RatingScale.of(scale, "scale")

    def _genre_ratings(self, genre_ratings: Mapping[str, float]) -> dict[str, float]:
        """``genre_ratings`` checked, under the model's genre names matched case-insensitively
        (as excluded genres are)."""
        genre_ratings = _validate.number_mapping("genre_ratings", genre_ratings, "genre names")
        names = {genre.casefold(): genre for genre in self.genres}
        canonical = {}
        for genre, value in genre_ratings.items():
            name = names.get(str(genre).strip().casefold(), genre)
            if name in canonical:
                raise DataError(f"genre {name!r} is rated twice")
            canonical[name] = value
        return canonical

    def new_user_features(self, genre_ratings: Mapping[str, float], *,
                          scale: tuple[float, float] | None = None) -> np.ndarray:
        """The scaled feature row of a new user who rated genres on ``scale`` (by default the
        model's rating scale)."""
        self._check_fitted()
        return self.cold_start.row(self._genre_ratings(genre_ratings),
                                   scale=self.genre_scale(scale),
                                   rating_range=self.rating_scale)

    def recommend_for_genres(self, genre_ratings: Mapping[str, float], n: int = 10, *,
                             scale: tuple[float, float] | None = None,
                             exclude=None, genres=None, types=None,
                             min_year=None) -> pd.DataFrame:
        """Cold start: top-``n`` anime for a new user who rated genres, with no retraining.

        The genre ratings go through the saved scalers and the user tower.

        Parameters
        ----------
        genre_ratings : mapping of str to float
            Genre name (any case) -> rating on ``scale``; unrated genres are neutral.
        n : int
            Anime to return.
        scale : (low, high), optional
            The scale of the genre ratings; by default the model's rating scale
            (:attr:`rating_scale`: 1..10 for MyAnimeList, 1..5 for a star model).
        exclude : sequence of int, optional
            MAL anime ids never to recommend (e.g. what the new user has already seen).
        genres, types, min_year : optional
            Filters, as in :meth:`recommend`.

        Returns
        -------
        DataFrame
            Columns ``rank, score, predicted_rating, anime_id, name, genres`` (see
            :meth:`recommend`).

        >>> rec.recommend_for_genres({"Action": 9, "Romance": 3}, n=5)  # doctest: +SKIP
        """
        self._check_fitted()
        n = _validate.integer("n", n, 1)
        genre_ratings = self._genre_ratings(genre_ratings)
        scale = self.genre_scale(scale)
        if not self.genres:
            raise DataError("this model knows no genres (it was trained without an anime "
                            "file): recommend_for_genres needs one")
        row = self.cold_start.row(genre_ratings, scale=scale, rating_range=self.rating_scale)
        vector = self.model.user_embeddings(np.atleast_2d(row))
        queries = self._retrieval_queries(vector).astype(np.float64)
        model_scores = self.retrieval_items.astype(np.float64) @ queries[0]
        # The user tower has only seen users who rated anime, and a ranking model's popularity
        # prior favours what most people like: on their own they under-weight a stated dislike
        # (a popular anime of a genre rated 1 still comes first). The stated tastes therefore
        # also enter the score directly: each rated genre of an anime moves it by its signed
        # strength (-1..1) times the spread of this user's scores over the catalogue.
        strength = self.cold_start.strengths(genre_ratings, scale=scale)
        affinity = self.genre_matrix.astype(np.float64) @ strength
        spread = float(np.std(model_scores)) or 1.0
        scores = model_scores + GENRE_WEIGHT * spread * affinity
        index, top_scores = kernels.topk(
            np.ones((1, 1)), np.ascontiguousarray(scores[:, None]), n,
            exclude=self._exclusions(np.zeros(1, np.int64), False, exclude,
                                     _filter_args(genres, types, min_year)))
        cosines = self._cosines(model_scores[np.maximum(index, 0)], np.maximum(index, 0))
        return self._frame(np.array([-1]), index, top_scores, "user_id",
                           cosines=cosines).drop(columns="user_id")

    def recommend_for_ratings(self, ratings, n: int = 10, *, exclude=None,
                              explain: bool = False, genres=None, types=None, min_year=None,
                              item: str = COLUMNS.item,
                              rating: str = COLUMNS.rating) -> pd.DataFrame:
        """Top-``n`` anime for a person the model was not trained on, from their own ratings or
        MyAnimeList list, with no retraining (fold-in: :mod:`anirec.foldin`).

        Their user row is built from their ratings as training builds a user's row, with the
        statistics saved with the model; their rating bias is solved as training solves it;
        a model's ID embedding reads its unknown row. Every anime on their list, rated or not
        (Plan to Watch included), is left out. Anime of the list the model does not know are
        left out of the fold-in, counted and named in an
        :class:`~anirec.errors.AnirecWarning` and in the result's ``attrs``.

        Parameters
        ----------
        ratings : mapping, DataFrame, path-like or PersonRatings
            ``{anime_id: rating}``; a table or CSV file with the columns ``item`` and
            ``rating``; a MyAnimeList list export (``animelist_*.xml.gz``, gzipped or not);
            or what :func:`anirec.read_person_ratings` returns. Ratings on the model's scale.
        n : int
            Anime to return.
        exclude : sequence of int, optional
            MAL anime ids never to recommend, besides those of the list.
        explain : bool
            Add a ``because`` column: the anime of the list that support each recommendation
            most, with the person's ratings, and the genres that push it, e.g.
            ``"Cowboy Bebop (10), Trigun (9); Sci-Fi"``. Faithful: removing the first anime
            named from the ratings and folding in again lowers that recommendation's score
            (:mod:`anirec.foldin`, "Reasons"). Empty when nothing on the list raises the
            score: the anime ranks by its popularity and rating bias.
        genres, types, min_year : optional
            Filters, as in :meth:`recommend`.
        item, rating : str
            The columns of a table or CSV file.

        Returns
        -------
        DataFrame
            Columns ``rank, score, predicted_rating, anime_id, name, genres`` (see
            :meth:`recommend`), and ``because`` with ``explain``. ``attrs`` holds ``rated``
            and ``listed`` (the anime of the list the model knows), ``unknown`` and
            ``unknown_anime`` (the ids it does not know, by reason), ``rating_bias``, and
            with ``explain`` ``because`` (the reasons by catalogue row).

        Raises
        ------
        DataError
            For ratings that cannot be read or are off the model's scale, or a bad filter.

        >>> rec.recommend_for_ratings("animelist.xml.gz", explain=True)  # doctest: +SKIP
        >>> rec.recommend_for_ratings({1: 10, 6: 9, 30: 7}, types="TV")   # doctest: +SKIP
        """
        from anirec import foldin

        return foldin.recommend(self, ratings, n, exclude=exclude, explain=explain,
                                genres=genres, types=types, min_year=min_year, item=item,
                                rating=rating)

    def predict_for_ratings(self, ratings, anime_ids, *, strict: bool = False,
                            item: str = COLUMNS.item, rating: str = COLUMNS.rating
                            ) -> np.ndarray:
        """Predicted ratings of ``anime_ids`` (MAL ids) for a person folded in from their
        ``ratings`` (as :meth:`recommend_for_ratings` takes them), on the model's scale.

        An anime id the model does not know gets NaN, with an
        :class:`~anirec.errors.AnirecWarning` counting them by reason; ``strict=True`` refuses
        it (:class:`~anirec.errors.UnknownIdError`).

        >>> rec.predict_for_ratings({1: 10, 6: 9}, [30, 5114])  # doctest: +SKIP
        array([8.1, 8.9])
        """
        from anirec import foldin

        return foldin.predict(self, ratings, anime_ids, strict=strict, item=item,
                              rating=rating)

    def similar(self, anime_id, n: int = 10) -> pd.DataFrame:
        """The ``n`` anime nearest to ``anime_id`` in the item embedding space (cosine).

        >>> rec.similar(anime_id=1, n=5)  # doctest: +SKIP
        """
        anime_ids = np.atleast_1d(np.asarray(anime_id))
        rows = self.anime_rows(anime_ids)
        itself = (np.arange(rows.shape[0] + 1, dtype=np.int64), rows.astype(np.int64))
        index, scores = self._top(self.item_vectors[rows], n, itself, items=self.item_vectors)
        frame = self._frame(anime_ids, index, scores, "query_anime_id")
        return frame.drop(columns="predicted_rating").rename(columns={"score": "similarity"})

    # -----------------------------------------------------------------------------------------
    # Evaluation

    @property
    def popularity_weight(self) -> float:
        """Weight of the popularity prior ``log q`` in the retrieval score."""
        return float(self.options.get("popularity_weight", 1.0))

    @popularity_weight.setter
    def popularity_weight(self, value: float) -> None:
        self.options["popularity_weight"] = RECOMMENDER["popularity_weight"].check(value)

    @property
    def quality_weight(self) -> float:
        """Weight of the item's rating bias in the retrieval score."""
        return float(self.options.get("quality_weight", 0.0))

    @quality_weight.setter
    def quality_weight(self, value: float) -> None:
        self.options["quality_weight"] = RECOMMENDER["quality_weight"].check(value)

    def _retrieval_queries(self, vectors: np.ndarray) -> np.ndarray:
        """Query rows of the retrieval score: the prior's and the item bias' columns weighted."""
        queries = self.model.retrieval_queries(vectors)
        if self.model.item_log_prior_ is not None:
            queries = queries.copy()
            queries[:, -1] = self.popularity_weight
        if self._ranks_by_quality:
            weight = np.full((queries.shape[0], 1), self.quality_weight, dtype=queries.dtype)
            queries = np.ascontiguousarray(np.hstack([queries, weight]))
        return queries

    @property
    def rating_scale(self) -> RatingScale:
        """The rating scale of the data the model was trained on (saved with the model):
        predictions, relevance thresholds and, by default, genre ratings are on it."""
        return RatingScale(*(float(v) for v in self.model.rating_range))

    def evaluate(self, heldout=None, *, k: int = 10, threshold: float | None = None,
                 baselines: bool = True, user: str = COLUMNS.user, item: str = COLUMNS.item,
                 rating: str = COLUMNS.rating, strict: bool = False) -> Evaluation:
        """Score the model, next to the baselines, on held-out ratings.

        Parameters
        ----------
        heldout : DataFrame or path-like, optional
            Held-out ratings in MAL ids, with the columns ``user``, ``item`` and ``rating``
            (a path is read as CSV; ids by :mod:`anirec.data._ids`); by default the test
            split of ``fit``. Rows of unknown users or anime are skipped and counted by reason
            (:mod:`anirec._unknown`), or refused with ``strict=True``; a rating missing or not
            on the model's scale is refused (:class:`DataError`).
        k : int
            Length of the ranked lists.
        threshold : float, optional
            Held-out ratings at least this high are relevant for ranking; by default
            :meth:`RatingScale.relevance_threshold` of the model's scale, "4 of 5 stars and
            up": 4 on 1..5 and 0.5..5 (3.875), 8 on 1..10 (7.75).
        baselines : bool
            Score the baselines too.
        user, item, rating : str
            The column names of ``heldout`` (as for :func:`anirec.load_ratings`).
        strict : bool
            Refuse a row naming an unknown user or anime instead of skipping it.

        The two-tower row ranks with the model's retrieval score (the cosine; for a ranking
        or hybrid model, cosine / temperature + the weighted popularity prior and item bias,
        as :meth:`recommend` ranks) and predicts with
        :meth:`TwoTower.score_to_rating`. Ranked lists leave out what the model was trained
        on, so held-out ratings of trained-on pairs cannot be relevant: they are left out of
        the ranking metrics, with an :class:`~anirec.errors.AnirecWarning` (their RMSE is a
        training error).

        Returns
        -------
        Evaluation
            A DataFrame, one row per method (``two-tower`` first), columns ``rmse``, ``mae``,
            ``precision@k``, ``recall@k``, ``ndcg@k``, ``coverage@k`` (the share of the
            catalogue recommended to anyone) and ``popularity_rank@k`` (the mean popularity
            rank of the recommended anime, 1 = most rated in training: higher is less
            popularity-biased); NaN where a metric does not apply. ``attrs`` holds
            ``ratings`` (scored), ``ranked_users``, ``skipped`` and ``skipped_by`` (per
            reason), ``trained_on``, ``k``, ``threshold`` and ``rating_scale``. It prints
            whole (:func:`anirec.metrics.format_evaluation`).
        """
        self._check_fitted()
        k = _validate.integer("k", k, 1)
        scale = self.rating_scale
        threshold = scale.relevance_threshold() if threshold is None else \
            _validate.real("threshold", threshold)
        users, items, ratings, skipped = self._heldout_rows(heldout, (user, item, rating),
                                                            strict)
        trained_on = self._trained_on(users, items) if heldout is not None else \
            np.zeros(users.shape[0], dtype=bool)
        if trained_on.any():
            rest = "computed without them" if not trained_on.all() else "undefined (NaN)"
            warnings.warn(f"{int(trained_on.sum())} of {users.shape[0]} held-out ratings are "
                          "of pairs the model was trained on: ranked lists leave those anime "
                          f"out, so the ranking metrics are {rest}, and RMSE and MAE are "
                          "training errors; evaluate on held-out ratings (the test split)",
                          AnirecWarning, stacklevel=2)
        rel_users, rel_indptr, rel_items = relevant_sets(
            users[~trained_on], items[~trained_on], ratings[~trained_on], threshold)
        exclude = _csr_take(*self.seen, rel_users)
        methods = [("two-tower", self._predicted_ratings(users, items),
                    self._top(self.user_vectors[rel_users], k, exclude)[0])]
        for baseline in self.baselines if baselines else []:
            ranked = None
            if baseline.item_scores is not None:
                scores = np.ascontiguousarray(baseline.item_scores, dtype=np.float64)[:, None]
                ranked = kernels.topk(np.ones((rel_users.shape[0], 1)), scores, k,
                                      exclude=exclude)[0]
            methods.append((baseline.name, baseline.predict(users, items), ranked))
        # Popularity bias: the mean popularity rank (1 = the anime with the most training
        # ratings) of what is recommended; higher means less of the head of the catalogue.
        popularity = np.asarray(self.baselines[3].item_scores, dtype=np.float64)
        popularity_rank = np.empty(popularity.shape[0])
        popularity_rank[np.argsort(-popularity, kind="stable")] = \
            np.arange(1, popularity.shape[0] + 1)
        table = []
        for name, predicted, ranked in methods:
            row = {"method": name}
            if predicted is not None:
                row.update(rmse=rmse(predicted, ratings), mae=mae(predicted, ratings))
            if ranked is not None:
                metrics = ranking_metrics(ranked, rel_indptr, rel_items, self.anime_ids.shape[0])
                row.update({f"{key}@{k}": metrics[key]
                            for key in ("precision", "recall", "ndcg", "coverage")})
                listed = ranked[ranked >= 0]
                row[f"popularity_rank@{k}"] = float(popularity_rank[listed].mean()) \
                    if listed.size else float("nan")
            table.append(row)
        frame = Evaluation(pd.DataFrame(table).set_index("method"))
        frame.attrs.update(ratings=int(ratings.shape[0]), ranked_users=int(rel_users.shape[0]),
                           skipped=int(sum(skipped.values())), skipped_by=skipped,
                           trained_on=int(trained_on.sum()), k=int(k),
                           threshold=float(threshold), rating_scale=list(scale))
        return frame

    def _heldout_rows(self, heldout, columns, strict: bool):
        """``(users, items, ratings, skipped)`` of held-out ratings: rows and ratings of the
        pairs scored, and the rows skipped per reason."""
        if heldout is None:
            test = self.test
            return (np.asarray(test.users, np.int64), np.asarray(test.items, np.int64),
                    np.asarray(test.ratings, np.float64), {})
        from anirec.data.ratings import read_table

        table = heldout if isinstance(heldout, (str, os.PathLike)) else pd.DataFrame(heldout)
        source, (user_ids, anime_ids), raw, _ = read_table(table, columns, "heldout")
        ratings = pd.to_numeric(raw, errors="coerce").to_numpy(np.float64)
        on_scale = self.rating_scale.contains(ratings)
        if not on_scale.all():  # NaN included: a garbage rating would score garbage
            row = int(np.flatnonzero(~on_scale)[0])
            raise DataError(f"{source}, column {columns[2]!r}, row {row + 1}: "
                            f"{raw.iloc[row]!r:.40} is not a rating on the model's scale "
                            f"{self.rating_scale}")
        located = self.locate(user_ids, anime_ids, strict=strict)
        return located.users, located.items, ratings[located.known], dict(located.skipped)

    def _trained_on(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (user row, anime row) pair is one the model was trained on."""
        indptr, indices = self.seen
        n_items = np.int64(self.anime_ids.shape[0])
        owners = np.repeat(np.arange(indptr.shape[0] - 1, dtype=np.int64), np.diff(indptr))
        return np.isin(users * n_items + items, owners * n_items + indices)

    def split_frames(self) -> dict[str, pd.DataFrame]:
        """The ratings of each split ``fit`` made, in MAL ids and on the rating scale.

        Returns
        -------
        dict of str to DataFrame
            ``"train"``, ``"validation"`` and ``"test"`` (a loaded model keeps the test split
            only), each with columns ``user_id, anime_id, rating``: the scores-file columns
            that ``load_mal``, :meth:`evaluate` and ``anirec evaluate`` read.
        """
        self._check_fitted()
        split = getattr(self, "_split", None)
        parts = {"test": self.test} if split is None else \
            {"train": split.train, "validation": split.valid, "test": split.test}
        return {name: pd.DataFrame({
            "user_id": self.user_ids[np.asarray(part.users, np.int64)],
            "anime_id": self.anime_ids[np.asarray(part.items, np.int64)],
            "rating": np.asarray(part.ratings)}) for name, part in parts.items()}

    # -----------------------------------------------------------------------------------------
    # Persistence

    def save(self, path) -> None:
        """Save everything needed to recommend, predict and evaluate to one file (``.npz``
        arrays + JSON header, no pickle), atomically. Each part (the model, the cold-start
        recipe, each baseline by name) is saved from its own state under its own prefix."""
        self._check_fitted()
        header, arrays = self.to_state()
        write_model_file(path, {"kind": "Recommender", **header}, arrays)

    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The recommender as a JSON-friendly header and a flat dict of arrays."""
        self._check_fitted()
        parts = {"model": self.model.to_state(), "cold": self.cold_start.to_state()}
        for baseline in self.baselines:
            parts[f"baseline.{type(baseline).__name__}"] = ({}, baseline_to_state(baseline))
        arrays = {f"{prefix}.{key}": value for prefix, (_, part) in parts.items()
                  for key, value in part.items()}
        from anirec import _saved_recommender as saved

        arrays.update({
            "anime_ids": self.anime_ids, "anime_names": saved.file_names(self.anime_names),
            "genre_matrix": self.genre_matrix, "user_ids": self.user_ids,
            "anime_types": saved.file_names(self.anime_types), "start_years": self.start_years,
            "item_weight": self.item_weight,
            "excluded_anime_ids": self.excluded_anime_ids,
            "user_x": self.user_x, "item_x": self.item_x,
            "seen_indptr": self.seen[0], "seen_indices": self.seen[1],
            "rated_indptr": self.rated[0], "rated_indices": self.rated[1],
            "test_users": np.asarray(self.test.users), "test_items": np.asarray(self.test.items),
            "test_ratings": np.asarray(self.test.ratings),
        })
        header = {"options": self.options, "model": parts["model"][0],
                  "cold_start": parts["cold"][0],
                  "baselines": [type(b).__name__ for b in self.baselines],
                  "genres": list(self.genres), "excluded_genres": list(self.excluded_genres),
                  "summary": self.summary, "dims": saved.dims_of(arrays, self.genres)}
        return header, arrays

    @classmethod
    def load(cls, path) -> "Recommender":
        """Load a recommender saved by :meth:`save`.

        Raises
        ------
        ModelFormatError
            If the file is truncated, corrupted, foreign, newer or inconsistent.
        """
        from anirec import _saved_recommender as saved

        header, arrays = read_model_file(path, kind="Recommender", members=saved.MEMBERS,
                                         dims=saved.file_dims)
        return cls.from_state(header, arrays, source=repr(str(path)))

    @classmethod
    def from_state(cls, header: dict, arrays: dict[str, np.ndarray],
                   source: str = "state") -> "Recommender":
        """Rebuild a recommender from :meth:`to_state` output, part by part, checking every
        header field and the arrays that index others (:mod:`anirec._saved_recommender`)."""
        from anirec import _saved_recommender as saved
        from anirec.data import ColdStart, Triplets

        def part(prefix: str) -> dict[str, np.ndarray]:
            return {key[len(prefix) + 1:]: value for key, value in arrays.items()
                    if key.startswith(prefix + ".")}

        saved.check_header(header, source)
        model = TwoTower.from_state(header["model"], part("model"), source=source,
                                    where="model")
        saved.check_arrays(header, arrays, model, source)
        arrays = dict(arrays)
        for name in ("anime_ids", "user_ids", "seen_indptr", "seen_indices", "rated_indptr",
                     "rated_indices", "test_users", "test_items", "start_years"):
            arrays[name] = arrays[name].astype(np.int64, copy=False)
        try:
            rec = cls(**header["options"])
        except (TypeError, ValueError) as error:
            raise ModelFormatError(f"{source}: header field 'options' is invalid: {error}") \
                from None
        rec.model = model
        rec.cold_start = ColdStart.from_state(header["cold_start"], part("cold"))
        rec.baselines = [baseline_from_state(name, part(f"baseline.{name}"))
                         for name in header["baselines"]]
        rec.genres = tuple(header["genres"])
        rec.excluded_genres = tuple(header["excluded_genres"])
        rec.summary = header.get("summary", {})
        for name in ("anime_ids", "anime_names", "genre_matrix", "user_ids", "user_x",
                     "item_x", "anime_types", "start_years", "item_weight"):
            setattr(rec, name, arrays[name])
        # Absent from files written before queries said why an anime is unknown.
        rec.excluded_anime_ids = arrays.get("excluded_anime_ids",
                                            np.zeros(0, np.int64)).astype(np.int64)
        rec.seen = (arrays["seen_indptr"], arrays["seen_indices"])
        rec.test = Triplets(arrays["test_users"], arrays["test_items"], arrays["test_ratings"])
        rec.rated = (arrays["rated_indptr"], arrays["rated_indices"])
        saved.check_usable(rec, source)
        return rec

    def info(self) -> dict:
        """Configuration, data summary and training history, as JSON-friendly values."""
        self._check_fitted()
        return {"options": self.options, "model": self.model.get_config(),
                "rating_scale": list(self.rating_scale),
                "users": int(self.user_ids.shape[0]), "anime": int(self.anime_ids.shape[0]),
                "genres": list(self.genres), "excluded_genres": list(self.excluded_genres),
                "summary": self.summary,
                "best_epoch": self.model.best_epoch_, "history": self.model.history_}


# What help() and inspect show: every option with its default (anirec.options.RECOMMENDER).
Recommender.__init__.__signature__ = RECOMMENDER.signature()
