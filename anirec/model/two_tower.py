"""The two-tower network: a user tower and an item tower whose normalised outputs meet in a dot
product.

Model
-----
Each tower is an MLP ``x -> ReLU(x W1 + b1) -> ... -> x WL + bL`` (linear last layer) whose
output ``z`` is normalised, ``y = z / sqrt(|z|^2 + eps^2)``. The prediction for a (user, item)
pair is the cosine ``p = <y_user, y_item>`` in [-1, 1]. Ratings ``r`` in ``[lo, hi]`` are
trained as ``t = 2 (r - lo) / (hi - lo) - 1`` with the mean squared error
``L = mean((p - t)^2) (+ weight_decay/2 * |theta|^2)``, and predictions are mapped back with
``r = lo + (p + 1) (hi - lo) / 2``.

Objectives
----------
``objective="rating"`` minimises the MSE above. ``"ranking"`` trains the same towers as a
retriever: each mini-batch of positive pairs is scored user-against-every-item of the batch,
``S[j, k] = <y_user_j, y_item_k> / temperature - log q[item_k]``, and the loss is the softmax
cross-entropy of the diagonal (:func:`anirec.kernels.inbatch_softmax`), where ``q`` is the
training frequency of each item (the "logQ" correction: in-batch negatives are drawn in
proportion to popularity, and subtracting ``log q`` makes the loss estimate a softmax over the
whole catalogue). Positives are the training pairs, weighted 1, or only those rated at least
``positive_threshold``.

With ``popularity_prior`` (the default) the retrieval score of a ranking or hybrid model is
``s(u, i) = <y_u, y_i> / temperature + log q_i``: the training popularity enters the score as a
fixed prior instead of being squeezed into the cosine. Its logQ-corrected in-batch logits are
then exactly ``<y_u, y_i> / temperature``, so the towers learn the user's affinity beyond
popularity, which agrees with the rating much better than popularity does (the cosine of a
hybrid model keeps predicting ratings). Without it the score is the cosine alone and the
correction ``- log q`` is applied to the cosine logits, as in the usual two-tower retriever.
``"hybrid"`` minimises ``MSE + ranking_weight * L_rank``: one score both predicts ratings and
ranks. A ranking model still predicts ratings: after training, ``r = a + b p`` is fitted by
least squares on the training pairs (scored with the full user rows, as at inference), saved
with the model and clipped to ``rating_range`` (:meth:`TwoTower.score_to_rating`).

Training visits the examples as (user row, item row, rating) triplets; each mini-batch gathers
its feature rows by index, so no per-rating copy of the features is ever built. With the Cython
backend a whole epoch runs in one compiled call (:func:`anirec.kernels.train_epoch`).
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import numpy as np

from anirec import kernels
from anirec.errors import DataError, DivergenceError, ModelFormatError, NotFittedError
from anirec.model.schedules import make_schedule

OPTIMIZERS = ("adam", "sgd")
OBJECTIVES = ("rating", "ranking", "hybrid")
_CALIBRATION_SAMPLE = 200_000  # training pairs used to fit the rating calibration of "ranking"
_VALIDATION_USERS = 2048  # users whose validation pairs score the ranking loss every epoch
DTYPES = ("float32", "float64")
_CHUNK = 16384  # rows embedded at a time at inference: bounds the workspace


def _as_triplets(data, name: str):
    """``(users, items, ratings)`` as int64, int64, float64 arrays from a tuple or an object
    with ``users``, ``items`` and ``ratings`` attributes."""
    if all(hasattr(data, attr) for attr in ("users", "items", "ratings")):
        users, items, ratings = data.users, data.items, data.ratings
    else:
        try:
            users, items, ratings = data
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be (users, items, ratings) or have those attributes") \
                from None
    users = np.ascontiguousarray(users, dtype=np.int64)
    items = np.ascontiguousarray(items, dtype=np.int64)
    ratings = np.ascontiguousarray(ratings, dtype=np.float64)
    if not (users.ndim == items.ndim == ratings.ndim == 1) or not (
        users.shape == items.shape == ratings.shape
    ):
        raise ValueError(f"{name}: users, items and ratings must be 1-D arrays of one length, "
                         f"got shapes {users.shape}, {items.shape}, {ratings.shape}")
    return users, items, ratings


def _check_features(name: str, X, dtype) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=dtype)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got {X.ndim} dimensions")
    bad = ~np.isfinite(X)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise DataError(f"{name} holds {X[row, column]} at row {row}, column {column}: "
                        "features must be finite")
    return X


def _check_rows(name: str, index: np.ndarray, n_rows: int, what: str) -> None:
    if index.size and (index.min() < 0 or index.max() >= n_rows):
        position = int(np.flatnonzero((index < 0) | (index >= n_rows))[0])
        raise DataError(f"{name}: row {position} refers to {what} {index[position]}, but the "
                        f"feature matrix has {n_rows} rows")


class TwoTower:
    """A two-tower rating and/or retrieval model trained with mini-batch gradient descent or Adam.

    Parameters
    ----------
    layers : sequence of int
        Widths of each tower after its input; the last is the embedding size.
    optimizer : {"adam", "sgd"}
        Adam (bias-corrected) or mini-batch gradient descent (optional ``momentum``).
    lr : float
        Initial learning rate.
    lr_schedule : str or schedule
        ``"constant"``, ``"inverse_time"`` (``lr / (1 + decay_rate * epoch)``, the original
        notebook's), ``"exponential"`` or ``"step"``; options in ``lr_schedule_options``.
    batch_size, epochs : int
    momentum : float
        SGD momentum (0 disables it).
    beta1, beta2, eps : float
        Adam's parameters.
    weight_decay : float
        L2 penalty coefficient, added to the gradient of every parameter.
    patience : int or None
        Stop after this many epochs without a better validation loss (``None``: never stop
        early). The best weights are restored at the end whenever there is validation data.
    validation_fraction : float
        When ``fit`` gets no validation set, this fraction of the training triplets is held
        out (seeded) for validation; 0 trains without validation.
    rating_range : (float, float)
        The rating scale, mapped to [-1, 1] for training.
    objective : {"rating", "ranking", "hybrid"}
        What training minimises (see the module docstring): the rating MSE, the in-batch
        softmax ranking loss, or ``MSE + ranking_weight * ranking loss``.
    ranking_weight : float
        Weight of the ranking loss of ``"hybrid"`` (ignored otherwise). The default 0.03 is
        small because the two losses differ in scale (validation MSE of scaled ratings about
        0.06, ranking cross-entropy about 6.5 nats on the demo data): on the demo data it keeps
        the RMSE within 2 % of the rating model while NDCG@10 goes from 0.11 to 0.29; 0.1
        costs about 9 % RMSE for little more NDCG.
    temperature : float
        The ranking loss divides cosines by it (smaller: sharper; cosines span only [-1, 1]).
        0.2 lets the cosine spread over about 10 nats on top of the popularity prior.
    positive_threshold : float or None
        Training pairs rated at least this are the positives of the ranking loss (the others
        still serve as in-batch negatives); ``None``: every rated pair is a positive.
    popularity_prior : bool
        For ``"ranking"`` and ``"hybrid"``: add the log training frequency of each item to its
        retrieval score (see the module docstring; ``item_log_prior_``).
    dtype : {"float32", "float64"}
    seed : int
        Seeds the initial weights (He), the validation split and the shuffles.
    verbose : bool
        Show a progress bar over epochs.

    Attributes
    ----------
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss`` (the training objective, seen during the epoch:
        the mean squared error on the scaled targets for ``"rating"``), ``val_loss`` (the same
        objective on the validation pairs, which early stopping watches), ``val_rmse`` (on the
        rating scale; not for ``"ranking"``), ``val_rank`` (the softmax cross-entropy of the
        validation positives over the whole catalogue, for at most 2,048 seeded users: what the
        in-batch loss estimates; not for ``"rating"``), ``lr``, ``seconds``.
    best_epoch_ : int or None
        The epoch whose weights were kept (1-based), when there was validation data.
    calibration_ : (float, float) or None
        ``(a, b)`` of the rating calibration ``r = a + b p`` of a ``"ranking"`` model.
    item_log_prior_ : ndarray or None
        Per item row, the log of its share of the training pairs, added to the retrieval score
        (with ``popularity_prior``; ``None`` otherwise): see :meth:`retrieval_items`.
    """

    def __init__(self, layers: Sequence[int] = (256, 128, 64, 32), *, optimizer: str = "adam",
                 lr: float = 1e-3, lr_schedule="inverse_time",
                 lr_schedule_options: dict | None = None, batch_size: int = 256,
                 epochs: int = 20, momentum: float = 0.0, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0,
                 patience: int | None = 3, validation_fraction: float = 0.1,
                 rating_range: tuple[float, float] = (1.0, 10.0), dtype: str = "float32",
                 seed: int = 0, verbose: bool = False, objective: str = "rating",
                 ranking_weight: float = 0.03, temperature: float = 0.2,
                 positive_threshold: float | None = None, popularity_prior: bool = True):
        self.layers = tuple(int(width) for width in layers)
        self.optimizer = optimizer
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.lr_schedule_options = dict(lr_schedule_options or {})
        self.batch_size = batch_size
        self.epochs = epochs
        self.momentum = momentum
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.rating_range = (float(rating_range[0]), float(rating_range[1]))
        self.dtype = str(np.dtype(dtype))
        self.seed = seed
        self.verbose = verbose
        self.objective = objective
        self.ranking_weight = ranking_weight
        self.temperature = temperature
        self.positive_threshold = None if positive_threshold is None else \
            float(positive_threshold)
        self.popularity_prior = bool(popularity_prior)
        self._validate_config()
        self.params_: np.ndarray | None = None
        self.history_: list[dict] = []
        self.best_epoch_: int | None = None
        self.calibration_: tuple[float, float] | None = None
        self.item_log_prior_: np.ndarray | None = None

    # -----------------------------------------------------------------------------------------
    # Configuration

    def _validate_config(self) -> None:
        if not self.layers or any(width < 1 for width in self.layers):
            raise ValueError(f"layers must be a non-empty list of positive widths, got "
                             f"{list(self.layers)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        self.schedule_ = make_schedule(self.lr_schedule, self.lr, **self.lr_schedule_options)
        for name in ("batch_size", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name, low, high in (("momentum", 0, 1), ("beta1", 0, 1), ("beta2", 0, 1),
                                ("eps", 0, math.inf), ("weight_decay", 0, math.inf),
                                ("validation_fraction", 0, 1)):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and low <= value and (value < high or high == math.inf)):
                raise ValueError(f"{name} must be in [{low}, {high}), got {value}")
        if self.patience is not None and (int(self.patience) < 1):
            raise ValueError(f"patience must be a positive integer or None, got {self.patience}")
        lo, hi = self.rating_range
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"rating_range must be (low, high) with low < high, got "
                             f"{self.rating_range}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        for name in ("ranking_weight", "temperature"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if self.positive_threshold is not None and not math.isfinite(self.positive_threshold):
            raise ValueError(f"positive_threshold must be a finite rating or None, got "
                             f"{self.positive_threshold}")

    @property
    def loss_weights(self) -> tuple[float, float]:
        """``(rating_weight, ranking_weight)`` of the training objective."""
        if self.objective == "rating":
            return 1.0, 0.0
        if self.objective == "ranking":
            return 0.0, 1.0
        return 1.0, float(self.ranking_weight)

    def get_config(self) -> dict:
        """The constructor arguments, as JSON-friendly values."""
        return {
            "layers": list(self.layers), "optimizer": self.optimizer, "lr": self.lr,
            "lr_schedule": self.schedule_.to_dict(), "batch_size": int(self.batch_size),
            "epochs": int(self.epochs), "momentum": self.momentum, "beta1": self.beta1,
            "beta2": self.beta2, "eps": self.eps, "weight_decay": self.weight_decay,
            "patience": self.patience, "validation_fraction": self.validation_fraction,
            "rating_range": list(self.rating_range), "dtype": self.dtype, "seed": self.seed,
            "objective": self.objective, "ranking_weight": float(self.ranking_weight),
            "temperature": float(self.temperature),
            "positive_threshold": self.positive_threshold,
            "popularity_prior": self.popularity_prior,
        }

    # -----------------------------------------------------------------------------------------
    # Targets

    def to_target(self, ratings) -> np.ndarray:
        """Ratings mapped linearly from ``rating_range`` to [-1, 1]."""
        lo, hi = self.rating_range
        return (2.0 * (np.asarray(ratings, dtype=np.float64) - lo) / (hi - lo) - 1.0)

    def to_rating(self, scores) -> np.ndarray:
        """Scores in [-1, 1] mapped back to ``rating_range``."""
        lo, hi = self.rating_range
        return lo + (np.asarray(scores, dtype=np.float64) + 1.0) * (hi - lo) / 2.0

    def score_to_rating(self, scores) -> np.ndarray:
        """Predicted ratings from tower scores: :meth:`to_rating` for models trained on
        ratings; the fitted calibration ``a + b p``, clipped to ``rating_range``, for a
        ``"ranking"`` model."""
        if self.calibration_ is None:
            return self.to_rating(scores)
        a, b = self.calibration_
        return np.clip(a + b * np.asarray(scores, dtype=np.float64), *self.rating_range)

    def retrieval_queries(self, user_vectors) -> np.ndarray:
        """Query rows whose dot products with :meth:`retrieval_items` are the retrieval
        scores: ``[y_u / temperature, 1]`` for a model with an item prior, else ``y_u``."""
        if self.item_log_prior_ is None:
            return user_vectors
        dtype = user_vectors.dtype
        return np.ascontiguousarray(np.hstack([user_vectors / dtype.type(self.temperature),
                                               np.ones((user_vectors.shape[0], 1), dtype)]))

    def retrieval_items(self, item_vectors) -> np.ndarray:
        """Item rows of the retrieval scores: ``[y_i, log q_i]`` for a model with an item
        prior (one row per trained item row), else ``y_i``; with :meth:`retrieval_queries`,
        ``s(u, i) = <y_u, y_i> / temperature + log q_i``."""
        if self.item_log_prior_ is None:
            return item_vectors
        if item_vectors.shape[0] != self.item_log_prior_.shape[0]:
            raise ValueError(f"item_vectors must have one row per trained item "
                             f"({self.item_log_prior_.shape[0]}), got {item_vectors.shape[0]}")
        dtype = item_vectors.dtype
        return np.ascontiguousarray(np.hstack([item_vectors,
                                               self.item_log_prior_[:, None].astype(dtype)]))

    # -----------------------------------------------------------------------------------------
    # Parameters

    def _init_params(self, user_dim: int, item_dim: int, rng: np.random.Generator) -> None:
        self.user_sizes_ = np.array((user_dim, *self.layers), dtype=np.int64)
        self.item_sizes_ = np.array((item_dim, *self.layers), dtype=np.int64)
        pieces = []
        for sizes in (self.user_sizes_, self.item_sizes_):
            for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
                # He initialisation: keeps the variance of ReLU activations from layer to layer.
                pieces.append(rng.normal(0.0, math.sqrt(2.0 / fan_in), fan_in * fan_out))
                pieces.append(np.zeros(fan_out))
        self.params_ = np.concatenate(pieces).astype(self.dtype)

    def _towers(self):
        self._check_fitted()
        return kernels.unpack_params(self.params_, self.user_sizes_, self.item_sizes_)

    def _check_fitted(self) -> None:
        if self.params_ is None:
            raise NotFittedError("this TwoTower is not fitted yet: call fit() or load() first")

    @property
    def n_parameters(self) -> int:
        self._check_fitted()
        return int(self.params_.shape[0])

    # -----------------------------------------------------------------------------------------
    # Inference

    def _embed(self, X, tower: int, name: str) -> np.ndarray:
        layers = self._towers()[tower]
        X = _check_features(name, X, self.dtype)
        expected = int(layers[0][0].shape[0])
        if X.shape[1] != expected:
            raise ValueError(f"{name} must have {expected} columns, got {X.shape[1]}")
        out = np.empty((X.shape[0], self.layers[-1]), dtype=self.dtype)
        for start in range(0, X.shape[0], _CHUNK):
            h = X[start:start + _CHUNK]
            for index, (W, b) in enumerate(layers):
                h = kernels.dense_forward(h, W, b, relu=index < len(layers) - 1)
            kernels.l2_normalize(h, out=out[start:start + _CHUNK])
        return out

    def user_embeddings(self, user_features) -> np.ndarray:
        """Normalised user-tower outputs, one row per row of ``user_features``."""
        return self._embed(user_features, 0, "user_features")

    def item_embeddings(self, item_features) -> np.ndarray:
        """Normalised item-tower outputs, one row per row of ``item_features``."""
        return self._embed(item_features, 1, "item_features")

    def predict(self, user_features, item_features) -> np.ndarray:
        """Predicted ratings for pairs: row ``j`` of ``user_features`` with row ``j`` of
        ``item_features``, on the rating scale."""
        user_features = np.asarray(user_features)
        item_features = np.asarray(item_features)
        if user_features.shape[:1] != item_features.shape[:1]:
            raise ValueError("user_features and item_features must have one row per pair, got "
                             f"{user_features.shape[0]} and {item_features.shape[0]} rows")
        scores = np.einsum("ij,ij->i", self.user_embeddings(user_features),
                           self.item_embeddings(item_features))
        return self.score_to_rating(scores)

    def _pair_scores(self, user_x, item_vectors, users, items) -> np.ndarray:
        """Cosine scores of (users[j], items[j]), each distinct user row embedded once."""
        user_rows, user_of = np.unique(users, return_inverse=True)
        eu = self.user_embeddings(user_x[user_rows])
        return np.einsum("ij,ij->i", eu[user_of], item_vectors[items]).astype(np.float64)

    # -----------------------------------------------------------------------------------------
    # Training

    def fit(self, train, user_features, item_features, *, validation=None, loo=None,
            callback: Callable[[int, dict], bool | None] | None = None) -> "TwoTower":
        """Train on ``(users, items, ratings)`` triplets indexing rows of the feature matrices.

        Parameters
        ----------
        train : (users, items, ratings) or an object with those attributes
            Row of ``user_features``, row of ``item_features`` and rating of each example.
        user_features : (n_users, d_user) array
            User feature rows; used for training unless ``loo`` is given, and always for
            validation.
        item_features : (n_items, d_item) array
        validation : triplets, optional
            Held-out examples scored after every epoch (else ``validation_fraction`` of
            ``train`` is held out).
        loo : LeaveOneOutStats-like, optional
            Sufficient statistics from which each training example's user row is derived
            leaving its own rating out (an object with the fields of
            :class:`anirec.kernels.LeaveOneOutStats` except ``ratings``, which come from
            ``train``).
        callback : callable(epoch, logs), optional
            Called after every epoch with the 1-based epoch and its history entry; returning
            ``True`` stops training.

        Returns
        -------
        self

        Raises
        ------
        DataError
            Non-finite features, ratings outside ``rating_range`` or rows out of range.
        DivergenceError
            The loss or a weight became non-finite.
        """
        self._validate_config()
        rng = np.random.default_rng(self.seed)
        users, items, ratings = _as_triplets(train, "train")
        if users.size == 0:
            raise DataError("train has no examples")
        item_x = _check_features("item_features", item_features, self.dtype)
        user_x = _check_features("user_features", user_features, self.dtype)
        _check_rows("train users", users, user_x.shape[0], "user row")
        _check_rows("train items", items, item_x.shape[0], "item row")
        self._check_ratings("train", ratings)
        if validation is None and self.validation_fraction > 0:
            held_out = rng.random(users.shape[0]) < self.validation_fraction
            validation = (users[held_out], items[held_out], ratings[held_out])
            users, items, ratings = users[~held_out], items[~held_out], ratings[~held_out]
        if validation is not None:
            validation = _as_triplets(validation, "validation")
            _check_rows("validation users", validation[0], user_x.shape[0], "user row")
            _check_rows("validation items", validation[1], item_x.shape[0], "item row")
            self._check_ratings("validation", validation[2])
        loo_stats = self._loo_stats(loo, ratings) if loo is not None else None
        user_dim = int(loo_stats.mean.shape[0]) if loo_stats is not None else user_x.shape[1]
        if loo_stats is not None and user_dim != user_x.shape[1]:
            raise ValueError(f"loo rows have {user_dim} columns but user_features has "
                             f"{user_x.shape[1]}")
        self._init_params(user_dim, item_x.shape[1], rng)
        self.calibration_ = self.item_log_prior_ = None
        ranking = self._ranking_inputs(items, ratings, item_x.shape[0])
        if ranking is not None and self.popularity_prior:
            self.item_log_prior_ = ranking[1].astype(np.float64)
            # The prior is part of the score, so the corrected logits s - log q are cosines.
            ranking = (ranking[0], np.zeros_like(ranking[1]))
        self._train(rng, (users, items, self.to_target(ratings).astype(self.dtype)),
                    user_x, item_x, validation, loo_stats, callback, ranking)
        if self.objective == "ranking":
            self._calibrate(rng, user_x, item_x, users, items, ratings)
        return self

    def _positive_weights(self, ratings: np.ndarray) -> np.ndarray:
        if self.positive_threshold is None:
            return np.ones(ratings.shape[0], dtype=self.dtype)
        return (ratings >= self.positive_threshold).astype(self.dtype)

    def _ranking_inputs(self, items, ratings, n_items: int):
        """``(rank_weights, item_logq)`` of the training pairs, or ``None`` for "rating".

        ``item_logq`` is the log of each item's share of the training pairs: the probability
        that a uniformly shuffled mini-batch slot holds it. Items never trained on never meet
        a batch; they get the log-share of one pair to stay finite.
        """
        if self.objective == "rating":
            return None
        weights = self._positive_weights(ratings)
        if not weights.any():
            raise DataError(f"no training rating reaches positive_threshold="
                            f"{self.positive_threshold:g}: the ranking loss has no positive")
        counts = np.maximum(np.bincount(items, minlength=n_items), 1).astype(np.float64)
        logq = np.log(counts / items.shape[0]).astype(self.dtype)
        return weights, logq

    def _calibrate(self, rng, user_x, item_x, users, items, ratings) -> None:
        """Fit ``rating = a + b * score`` by least squares on (a sample of) the training pairs,
        scored with the full user rows as :meth:`predict` scores them."""
        if users.shape[0] > _CALIBRATION_SAMPLE:
            pick = rng.choice(users.shape[0], _CALIBRATION_SAMPLE, replace=False)
            users, items, ratings = users[pick], items[pick], ratings[pick]
        scores = self._pair_scores(user_x, self.item_embeddings(item_x), users, items)
        variance = float(np.var(scores))
        slope = float(np.cov(scores, ratings, bias=True)[0, 1] / variance) if variance > 0 \
            else 0.0
        self.calibration_ = (float(np.mean(ratings) - slope * np.mean(scores)), slope)

    def _check_ratings(self, name: str, ratings: np.ndarray) -> None:
        lo, hi = self.rating_range
        bad = ~((ratings >= lo) & (ratings <= hi))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{name} rating at row {row} is {ratings[row]}, outside the "
                            f"rating_range [{lo:g}, {hi:g}]")

    def _loo_stats(self, loo, ratings) -> kernels.LeaveOneOutStats:
        fields = kernels.LeaveOneOutStats._fields
        values = {}
        for name in fields[:-1]:
            if not hasattr(loo, name):
                raise TypeError(f"loo must have the attribute {name!r}")
            value = getattr(loo, name)
            values[name] = value if name in ("mode", "global_mean") else \
                np.ascontiguousarray(value, dtype=self.dtype)
        values["mode"] = int(values["mode"])
        values["global_mean"] = float(values["global_mean"])
        return kernels.LeaveOneOutStats(**values, ratings=ratings.astype(self.dtype))

    def _validation_rank_loss(self, user_x, item_vectors, pairs) -> float:
        """The full-catalogue softmax cross-entropy of the validation positives.

        ``-log softmax_i(s(u, i))`` of the retrieval score over every item, averaged over the
        (weighted) validation pairs: the quantity the logQ-corrected in-batch loss estimates,
        computed exactly instead of through a high-variance sample of negatives.
        """
        users, items, weights = pairs
        if users.size == 0 or not weights.any():
            return 0.0
        item_vectors = item_vectors.astype(np.float64)
        rows, user_of = np.unique(users, return_inverse=True)
        user_vectors = self.user_embeddings(user_x[rows]).astype(np.float64)
        prior = 0.0 if self.item_log_prior_ is None else self.item_log_prior_[None, :]
        lse = np.empty(rows.shape[0])
        for start in range(0, rows.shape[0], 512):
            logits = user_vectors[start:start + 512] @ item_vectors.T / self.temperature + prior
            top = logits.max(axis=1)
            lse[start:start + 512] = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
        positive = np.einsum("ij,ij->i", user_vectors[user_of], item_vectors[items])
        positive /= self.temperature
        if self.item_log_prior_ is not None:
            positive += self.item_log_prior_[items]
        loss = lse[user_of] - positive
        return float(np.dot(weights, loss) / weights.sum())

    def _validation_pairs(self, rng, validation):
        """The validation pairs of at most ``_VALIDATION_USERS`` users (seeded) and their
        weights as positives."""
        users, items, ratings = validation
        distinct = np.unique(users)
        if distinct.shape[0] > _VALIDATION_USERS:
            keep = np.isin(users, rng.choice(distinct, _VALIDATION_USERS, replace=False))
            users, items, ratings = users[keep], items[keep], ratings[keep]
        return users, items, self._positive_weights(ratings).astype(np.float64)

    def _train(self, rng, train, user_x, item_x, validation, loo, callback, ranking) -> None:
        from tqdm.auto import tqdm

        users, items, targets = train
        alpha, beta = self.loss_weights
        rank_weights, item_logq = ranking if ranking is not None else (None, None)
        val_pairs = None
        if ranking is not None and validation is not None:
            val_pairs = self._validation_pairs(np.random.default_rng(self.seed + 1), validation)
        n_params = self.params_.shape[0]
        grads = np.zeros(n_params, dtype=self.dtype)
        state1, state2 = np.zeros_like(grads), np.zeros_like(grads)
        self.history_, self.best_epoch_ = [], None
        best_loss, best_params, stale, step = math.inf, None, 0, 0
        half_range = (self.rating_range[1] - self.rating_range[0]) / 2.0
        # A bar counted by hand, not by iteration: an iterating bar shows one epoch short
        # when the loop breaks on early stopping.
        epochs = tqdm(total=self.epochs, desc=f"training ({self.objective} objective)",
                      unit="epoch", disable=not self.verbose)
        for epoch in range(self.epochs):
            lr = self.schedule_(epoch)
            started = time.perf_counter()
            with np.errstate(all="ignore"):  # divergence is detected and reported below
                loss_sum, step = kernels.train_epoch(
                    rng.permutation(users.shape[0]), users, items, targets,
                    None if loo is not None else user_x, item_x, self.user_sizes_,
                    self.item_sizes_, self.params_, grads, state1, state2,
                    optimizer=self.optimizer, lr=lr, beta1=self.beta1, beta2=self.beta2,
                    eps=self.eps, momentum=self.momentum, weight_decay=self.weight_decay,
                    step=step, batch_size=int(self.batch_size), loo=loo, rating_weight=alpha,
                    ranking_weight=beta, temperature=float(self.temperature),
                    rank_weights=rank_weights, item_logq=item_logq)
            logs = {"epoch": epoch + 1, "train_loss": loss_sum / users.shape[0]}
            self._check_divergence(epoch + 1, logs["train_loss"], lr)
            if validation is not None:
                val_loss = 0.0
                item_vectors = self.item_embeddings(item_x)  # shared by both validation terms
                if alpha > 0:
                    scores = self._pair_scores(user_x, item_vectors, validation[0],
                                               validation[1])
                    val_mse = float(np.mean((scores - self.to_target(validation[2])) ** 2))
                    val_loss += alpha * val_mse
                    logs.update(val_rmse=math.sqrt(val_mse) * half_range)
                if val_pairs is not None:
                    val_rank = self._validation_rank_loss(user_x, item_vectors, val_pairs)
                    val_loss += beta * val_rank
                    logs.update(val_rank=val_rank)
                logs.update(val_loss=val_loss)
            logs.update(lr=lr, seconds=time.perf_counter() - started)
            self.history_.append(logs)
            # Validation RMSE on the rating scale is what a person reads; the losses are on
            # the internal [-1, 1] scale.
            epochs.set_postfix({name: f"{logs[key]:.4f}" for key, name in
                                (("val_rmse", "val RMSE"), ("val_rank", "val ranking loss"))
                                if key in logs}, refresh=False)
            epochs.update(1)
            if validation is not None:
                if logs["val_loss"] < best_loss:
                    best_loss, best_params, stale = logs["val_loss"], self.params_.copy(), 0
                    self.best_epoch_ = epoch + 1
                else:
                    stale += 1
            if callback is not None and callback(epoch + 1, dict(logs)):
                break
            if self.patience is not None and stale >= int(self.patience):
                # The bar ends at the stopping epoch and says why.
                epochs.total = epoch + 1
                epochs.set_description(f"training ({self.objective} objective; stopped early, "
                                       f"kept epoch {self.best_epoch_})")
                break
        epochs.close()
        if best_params is not None:
            self.params_ = best_params

    def _check_divergence(self, epoch: int, loss: float, lr: float) -> None:
        what = None
        if not math.isfinite(loss):
            what = "the training loss"
        elif not np.isfinite(self.params_).all():
            what = "a weight"
        if what is not None:
            raise DivergenceError(
                f"training diverged in epoch {epoch}: {what} became non-finite (lr={lr:g}, "
                f"optimizer={self.optimizer!r}). Lower the learning rate, add weight_decay, "
                "or check that the features are scaled (z-scores)."
            )

    # -----------------------------------------------------------------------------------------
    # Persistence

    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The model as a JSON-friendly header and a dict of arrays (see :meth:`save`)."""
        self._check_fitted()
        header = {"config": self.get_config(), "history": self.history_,
                  "best_epoch": self.best_epoch_,
                  "calibration": None if self.calibration_ is None else
                  list(self.calibration_)}
        arrays = {"params": self.params_, "user_sizes": self.user_sizes_,
                  "item_sizes": self.item_sizes_}
        if self.item_log_prior_ is not None:
            arrays["item_log_prior"] = self.item_log_prior_
        return header, arrays

    @classmethod
    def from_state(cls, header: dict, arrays: dict[str, np.ndarray], source: str = "state"):
        """Rebuild a model from :meth:`to_state` output, checking every shape."""
        try:
            config = dict(header["config"])
            model = cls(**config)
            params, user_sizes, item_sizes = (arrays[key] for key in
                                              ("params", "user_sizes", "item_sizes"))
        except (KeyError, TypeError, ValueError) as error:
            raise ModelFormatError(f"{source}: the model configuration is invalid or "
                                   f"incomplete ({error})") from None
        for name, sizes in (("user_sizes", user_sizes), ("item_sizes", item_sizes)):
            if sizes.dtype != np.int64 or sizes.ndim != 1 or \
                    list(sizes[1:]) != list(model.layers):
                raise ModelFormatError(f"{source}: {name} {sizes.tolist()} does not match the "
                                       f"layers {list(model.layers)}")
        expected = kernels.n_parameters(user_sizes, item_sizes)
        if params.dtype != np.dtype(model.dtype) or params.shape != (expected,):
            raise ModelFormatError(f"{source}: params has shape {params.shape} and dtype "
                                   f"{params.dtype}, expected ({expected},) {model.dtype}")
        model.user_sizes_, model.item_sizes_ = user_sizes, item_sizes
        model.params_ = np.ascontiguousarray(params)
        model.history_ = list(header.get("history", []))
        model.best_epoch_ = header.get("best_epoch")
        calibration = header.get("calibration")  # absent from files written before objectives
        if calibration is not None:
            if len(calibration) != 2 or not all(math.isfinite(float(v)) for v in calibration):
                raise ModelFormatError(f"{source}: the rating calibration {calibration} is not "
                                       "two finite numbers")
            model.calibration_ = (float(calibration[0]), float(calibration[1]))
        prior = arrays.get("item_log_prior")
        if prior is not None:
            if prior.ndim != 1 or prior.dtype != np.float64 or not np.isfinite(prior).all():
                raise ModelFormatError(f"{source}: item_log_prior must be a finite float64 "
                                       f"vector, got {prior.dtype} of shape {prior.shape}")
            model.item_log_prior_ = prior
        return model

    def save(self, path) -> None:
        """Save to one file (``.npz`` arrays + JSON header, no pickle), atomically."""
        from anirec.model.persistence import write_model_file

        header, arrays = self.to_state()
        write_model_file(path, {"kind": "TwoTower", **header}, arrays)

    @classmethod
    def load(cls, path) -> "TwoTower":
        """Load a model saved by :meth:`save`.

        Raises
        ------
        ModelFormatError
            If the file is truncated, corrupted, foreign, of a newer format or inconsistent.
        """
        from anirec.model.persistence import read_model_file

        header, arrays = read_model_file(path, kind="TwoTower")
        return cls.from_state(header, arrays, source=repr(str(path)))
