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
with the model and bent into ``rating_range`` (:meth:`TwoTower.score_to_rating`).

Training visits the examples as (user row, item row, rating) triplets; each mini-batch gathers
its feature rows by index, so no per-rating copy of the features is ever built. With the Cython
backend a whole epoch runs in one compiled call (:func:`anirec.kernels.train_epoch`).
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np

from anirec import kernels
from anirec.errors import DataError, DivergenceError, ModelFormatError, NotFittedError
from anirec.model import _chunked, bounds
from anirec.model.biases import Biases, fit_biases, leave_one_out_chunks
from anirec.model.schedules import make_schedule
from anirec.options import MAX_WIDTH as _MAX_WIDTH
from anirec.options import MODEL

_CALIBRATION_SAMPLE = 200_000  # training pairs used to fit the rating calibration of "ranking"
_VALIDATION_USERS = 2048  # users whose validation pairs score the ranking loss every epoch
_CHUNK = 16384  # rows embedded at a time at inference: bounds the workspace
_RATINGS = (np.dtype(np.float32), np.dtype(np.float64))  # rating dtypes fit uses as given
_MAX_PARAMETERS = 2**31 - 1  # parameters of both towers; checked before anything is allocated
#: Training diverged when its best validation RMSE is at least this multiple of the RMSE of
#: predicting the mean training rating for every pair, or with biases of the biases alone (a
#: model whose towers never add anything;
#: for ``objective="ranking"``: its best validation ranking loss at least this multiple of a
#: constant cosine's, which ranks by the popularity prior alone)
#: while its weights grew by more than :data:`_EXPLOSION` times their initial scale (the
#: optimizer's steps dwarf the weights). A model merely undertrained (worse than the constant
#: after an epoch or two with unchanged weight scale) is not called diverged, nor one whose
#: weights grew but that predicts better than the constant. On the planted problem of
#: ``tests/hostile/test_api.py`` (towers (32, 16), three epochs, Adam), ``lr=1e6`` ends at 1.07
#: times the RMSE of the biases alone (1.761 against 1.653) with weights 3.7e6 times their
#: initial scale, and ``lr=1e-3`` at 0.90 of it (1.490). Ranking (towers (16, 8), positives
#: rated 7 and up): ``lr=1e6`` ends 10% above the constant cosine's loss (5.498 against 4.994)
#: with weights 3.3e6 times their initial scale; ``lr=100`` grows them 1,500 times while it
#: improves every epoch and ends below the constant (4.966); ``lr=1e-2`` ends 15% below it
#: after five epochs (4.248).
DIVERGENCE_RATIO = 1.0
_EXPLOSION = 1e3
#: Fewer validation (or training) pairs than this make the comparison with the mean noise.
_DIVERGENCE_MIN_PAIRS = 50


def _as_triplets(data, name: str):
    """``(users, items, ratings)`` arrays from a tuple or an object with ``users``, ``items``
    and ``ratings`` attributes: the rows int32 or int64, the ratings float32 or float64, each
    as given when it is one of those and contiguous (the data layer's 24M-row int32 and float32
    arrays are not copied); ratings of a smaller type are made float32, others float64."""
    if all(hasattr(data, attr) for attr in ("users", "items", "ratings")):
        users, items, ratings = data.users, data.items, data.ratings
    else:
        try:
            users, items, ratings = data
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be (users, items, ratings) or have those attributes") \
                from None
    users = _row_index(f"{name} users", users)
    items = _row_index(f"{name} items", items)
    ratings = np.asarray(ratings)
    exact = ratings.dtype if ratings.dtype in _RATINGS else \
        np.float32 if np.can_cast(ratings.dtype, np.float32) else np.float64
    ratings = np.ascontiguousarray(ratings, dtype=exact)
    if not (users.ndim == items.ndim == ratings.ndim == 1) or not (
        users.shape == items.shape == ratings.shape
    ):
        raise ValueError(f"{name}: users, items and ratings must be 1-D arrays of one length, "
                         f"got shapes {users.shape}, {items.shape}, {ratings.shape}")
    return users, items, ratings


def _row_index(name: str, values) -> np.ndarray:
    """Row indices as int32 or int64 (int32 kept, smaller integers made int32, the rest
    int64); floats only when whole (``users + 0.999`` is not ``users``)."""
    array = np.asarray(values)
    if array.dtype.kind == "f":
        fractional = ~np.isfinite(array) | (array != np.floor(array))
        if fractional.any():
            row = int(np.flatnonzero(fractional.ravel())[0])
            raise DataError(f"{name} holds {array.ravel()[row]} at row {row}: row indices "
                            "must be whole numbers")
    elif array.size and array.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer row indices, got dtype {array.dtype}")
    narrow = array.dtype.kind in "iu" and np.can_cast(array.dtype, np.int32)
    return np.ascontiguousarray(array, dtype=np.int32 if narrow else np.int64)


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

    Every option's default and bounds are declared once, in :data:`anirec.options.MODEL`.

    Parameters
    ----------
    layers : sequence of int
        Widths of each tower after its input; the last is the embedding size.
    optimizer : {"adam", "sgd"}
        Adam (bias-corrected) or mini-batch gradient descent (optional ``momentum``).
    lr : float
        Initial learning rate.
    lr_schedule : str or schedule
        ``"constant"``, ``"inverse_time"`` (``lr / (1 + decay_rate * epoch)``),
        ``"exponential"`` or ``"step"``; options in ``lr_schedule_options``.
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
        0.06, ranking cross-entropy about 6.5 nats on the demo data). On the demo data (``anirec
        demo``, seed 0) the hybrid model's test RMSE is 1.087 against the rating model's 1.094
        while NDCG@10 goes from 0.057 to 0.284; 0.1 gives 1.102 and 0.295.
    temperature : float
        The ranking loss divides cosines by it (smaller: sharper; cosines span only [-1, 1]).
        0.2 lets the cosine spread over about 10 nats on top of the popularity prior.
    positive_threshold : float or None
        Training pairs rated at least this are the positives of the ranking loss (the others
        still serve as in-batch negatives); ``None``: every rated pair is a positive.
    popularity_prior : bool
        For ``"ranking"`` and ``"hybrid"``: add the log training frequency of each item to its
        retrieval score (see the module docstring; ``item_log_prior_``).
    biases : bool
        For ``"rating"`` and ``"hybrid"``: predict ``mu + b_user + b_item + cosine * (hi - lo) / 2``
        (clipped to ``rating_range``), where the regularised user and item biases are fitted
        on the training ratings first (:func:`anirec.model.biases.fit_biases`) and the
        towers learn the rest. Each training example's target is measured from its biases
        without its own rating (:func:`anirec.model.biases.leave_one_out_base`). The biases
        change predicted ratings, not the ranking.
    bias_reg : float
        The L2 penalty of the biases (in ratings: an id's bias is shrunk as if it had
        ``bias_reg`` more ratings at the mean).
    embedding_dim : int
        Width of the learned ID embeddings appended to each tower's input (0: none). Each
        user row and item row with at least ``min_id_count`` training ratings gets its own
        table row; the rarer ones, and every id never seen in training (a new user, a cold
        start), share one "unknown" row. Training updates only the rows a batch touched
        (:class:`anirec.kernels.Embedding`); after training the unknown row becomes the mean
        row of the ids trained on, the average user or anime, unless ``id_dropout`` trained
        it.
    min_id_count : int
        Training ratings an id needs for its own embedding row.
    embedding_decay : float
        L2 penalty of an embedding row (and of a history vector), applied at each update of
        the row.
    id_dropout : float
        The probability that a training example reads its side's unknown embedding row instead
        of its own (:class:`anirec.kernels.Embedding`): the unknown row then learns what an id
        known by its features alone looks like (a person folded in, a new anime).
    history_dim : int
        Width of the user tower's pooled history (0: none): the mean of learned item vectors
        over the anime the user rated in training (:class:`anirec.kernels.History`; a
        training example leaves its own anime out), appended to the user tower's input.
    n_threads : int or None
        The most threads training runs on (``None``: the cores this process may use). Every
        count gives the same weights, bit for bit; only the speed changes.
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
    biases_ : Biases or None
        The fitted rating biases (with ``biases``; ``None`` otherwise).
    pooled_history_ : (indptr, indices, table) or None
        With ``history_dim``: the item rows each user row rated in training and the learned
        item vectors of the pooled history.
    tables_ : dict
        ``{"user": (index, table), "item": (index, table)}`` of the ID embeddings (empty
        without them): ``table[index[r]]`` is appended to the input of feature row ``r``, the
        last table row is the unknown one.
    """

    def __init__(self, *args, **kwargs):
        # The signature, the defaults and each value's check: anirec.options.MODEL.
        for name, value in MODEL.bind(args, kwargs).items():
            setattr(self, name, value)
        self._validate_config()
        self.params_: np.ndarray | None = None
        self.diverged_: str | None = None  # why the last fit diverged (its weights are gone)
        self.history_: list[dict] = []
        self.best_epoch_: int | None = None
        self.calibration_: tuple[float, float] | None = None
        self.knees_: tuple[float, float] = (0.0, 0.0)
        self.item_log_prior_: np.ndarray | None = None
        self.biases_: Biases | None = None
        self.tables_: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.pooled_history_: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    # -----------------------------------------------------------------------------------------
    # Configuration

    def _validate_config(self) -> None:
        """Check every option (:data:`anirec.options.MODEL`, strictly: no silent ``int('3')``
        or ``int(1.9)``; an attribute may have been set since), then the rules that tie
        options together."""
        for name, option in MODEL.items():
            setattr(self, name, option.check(getattr(self, name)))
        self.schedule_ = make_schedule(self.lr_schedule, self.lr, **self.lr_schedule_options)
        if self.objective != "rating" and self.batch_size < 2:
            raise ValueError(f"batch_size={self.batch_size} leaves the in-batch ranking loss of "
                             f"objective={self.objective!r} no negatives: use at least 2")
        if self.objective == "rating" and self.ranking_weight != MODEL["ranking_weight"].default:
            raise ValueError(f"ranking_weight={self.ranking_weight:g} contradicts "
                             "objective='rating', which has no ranking loss: use "
                             "objective='hybrid'")

    @property
    def loss_weights(self) -> tuple[float, float]:
        """``(rating_weight, ranking_weight)`` of the training objective."""
        if self.objective == "rating":
            return 1.0, 0.0
        if self.objective == "ranking":
            return 0.0, 1.0
        return 1.0, float(self.ranking_weight)

    def get_config(self) -> dict:
        """The constructor arguments, as JSON-friendly values (the schedule as its
        ``to_dict()``, which holds its options)."""
        config = {name: option.kind.to_json(getattr(self, name))
                  for name, option in MODEL.items() if option.saved}
        config["lr_schedule"] = self.schedule_.to_dict()
        return config

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

    def score_to_rating(self, scores, users=None, items=None, *,
                        user_bias: float = 0.0) -> np.ndarray:
        """Predicted ratings from tower scores: :meth:`to_rating` for models trained on
        ratings; with biases, ``mu + b_user + b_item + score * (hi - lo) / 2`` for the user and
        item rows ``users`` and ``items`` (``None``: an unknown user or item, bias 0), plus
        ``user_bias`` (that of a user folded in, whose ``users`` is ``None``); the
        fitted calibration ``a + b p`` for a ``"ranking"`` model. These two are brought into
        ``rating_range`` by :func:`anirec.model.bounds.bend` with the knees ``knees_``
        fitted on the training pairs (a clip until then)."""
        if self.biases_ is None and self.calibration_ is None:
            return self.to_rating(scores)
        return bounds.bend(self._unbounded_rating(scores, users, items, user_bias),
                           *self.rating_range, self.knees_)

    def _unbounded_rating(self, scores, users=None, items=None,
                          user_bias: float = 0.0) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        if self.biases_ is not None:
            lo, hi = self.rating_range
            return self.biases_.predict(users, items) + user_bias + scores * (hi - lo) / 2
        a, b = self.calibration_
        return a + b * scores

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
        total = sum(a * b + b for sizes in ((user_dim, *self.layers), (item_dim, *self.layers))
                    for a, b in zip(sizes[:-1], sizes[1:]))  # Python ints: no overflow
        if total > _MAX_PARAMETERS:
            raise ValueError(f"layers {list(self.layers)} on {user_dim} user and {item_dim} "
                             f"item features make {total:,} parameters, more than "
                             f"{_MAX_PARAMETERS:,}")
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
            diverged = getattr(self, "diverged_", None)
            if diverged:  # its weights were dropped: neither usable nor saveable
                raise DivergenceError(f"this TwoTower diverged in its last fit and cannot be "
                                      f"used or saved ({diverged})")
            raise NotFittedError("this TwoTower is not fitted yet: call fit() or load() first")

    @property
    def threads(self) -> int:
        """The most threads training runs on: ``n_threads``, or the cores this process may
        use."""
        from anirec.backend import available_cores

        return available_cores() if self.n_threads is None else int(self.n_threads)

    @property
    def n_parameters(self) -> int:
        self._check_fitted()
        return int(self.params_.shape[0])

    # -----------------------------------------------------------------------------------------
    # Inference

    def _with_blocks(self, X, side: str, rows, name: str, history=None) -> np.ndarray:
        """``X`` with the columns of the tower's learned blocks appended: the ID embedding rows
        of feature rows ``rows`` (the unknown row for ``None``), then for the user tower the
        pooled history of those rows (their training history, or ``history``: one array of
        item rows per row of ``X``, for users the model has not seen)."""
        if rows is not None:
            rows = np.asarray(rows, dtype=np.int64).reshape(-1)
            if rows.shape[0] != X.shape[0]:
                raise ValueError(f"{name}: {X.shape[0]} rows but {rows.shape[0]} row ids")
        parts = [X]
        if side in self.tables_:
            index, table = self.tables_[side]
            if rows is None:
                at = np.full(X.shape[0], table.shape[0] - 1)
            else:
                _check_rows(f"{name} rows", rows, index.shape[0], f"{side} row")
                at = index[rows]
            parts.append(table[at])
        if side == "user" and self.pooled_history_ is not None:
            parts.append(self._pooled(X.shape[0], rows, history, name))
        return np.hstack(parts) if len(parts) > 1 else X

    def _pooled(self, n: int, rows, history, name: str) -> np.ndarray:
        """The pooled history of ``n`` users: of their training history when ``rows`` are
        given and ``history`` is not, else of ``history`` (zeros for a user without one)."""
        indptr, indices, table = self.pooled_history_
        if history is None and rows is not None:
            _check_rows(f"{name} rows", rows, indptr.shape[0] - 1, "user row")
            block = kernels.History(indptr, indices, table)
            return block.pooled(rows)
        lists = [np.zeros(0, np.int64)] * n if history is None else \
            [np.asarray(h, dtype=np.int64).reshape(-1) for h in history]
        if len(lists) != n:
            raise ValueError(f"{name}: {n} rows but {len(lists)} histories")
        for k, items in enumerate(lists):
            _check_rows(f"history {k}", items, table.shape[0], "item row")
        lengths = np.array([items.shape[0] for items in lists], dtype=np.int64)
        pointer = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        block = kernels.History(pointer, np.concatenate([np.zeros(0, np.int64), *lists]), table)
        return block.pooled(np.arange(n))

    def _embed(self, X, tower: int, name: str, rows=None, history=None) -> np.ndarray:
        layers = self._towers()[tower]
        X = _check_features(name, X, self.dtype)
        expected = self.feature_width(("user", "item")[tower])
        if X.shape[1] != expected:
            raise ValueError(f"{name} must have {expected} columns, got {X.shape[1]}")
        X = self._with_blocks(X, ("user", "item")[tower], rows, name, history)
        out = np.empty((X.shape[0], self.layers[-1]), dtype=self.dtype)
        for start in range(0, X.shape[0], _CHUNK):
            h = X[start:start + _CHUNK]
            for index, (W, b) in enumerate(layers):
                h = kernels.dense_forward(h, W, b, relu=index < len(layers) - 1)
            kernels.l2_normalize(h, out=out[start:start + _CHUNK])
        return out

    def feature_width(self, side: str) -> int:
        """Feature columns the ``"user"`` or ``"item"`` tower takes: its input width less the
        ID embedding and pooled history appended to it."""
        self._check_fitted()
        sizes = self.user_sizes_ if side == "user" else self.item_sizes_
        width = int(self.tables_[side][1].shape[1]) if side in self.tables_ else 0
        if side == "user" and self.pooled_history_ is not None:
            width += int(self.pooled_history_[2].shape[1])
        return int(sizes[0]) - width

    def user_embeddings(self, user_features, rows=None, history=None) -> np.ndarray:
        """Normalised user-tower outputs, one row per row of ``user_features``; ``rows`` are
        their user rows of the training triplets, for the ID embeddings and the pooled
        history (``None``: new users, who get the unknown row); ``history``, with a pooled
        history, gives each user's rated anime (item rows) instead of their training ones."""
        return self._embed(user_features, 0, "user_features", rows, history)

    def item_embeddings(self, item_features, rows=None) -> np.ndarray:
        """Normalised item-tower outputs, one row per row of ``item_features``; ``rows`` as
        for :meth:`user_embeddings` (``None``: unknown items)."""
        return self._embed(item_features, 1, "item_features", rows)

    def predict(self, user_features, item_features, users=None, items=None) -> np.ndarray:
        """Predicted ratings for pairs: row ``j`` of ``user_features`` with row ``j`` of
        ``item_features``, on the rating scale; ``users`` and ``items`` are the pairs' rows of
        the training triplets, for the biases (``None``: unknown, bias 0)."""
        user_features = np.asarray(user_features)
        item_features = np.asarray(item_features)
        if user_features.shape[:1] != item_features.shape[:1]:
            raise ValueError("user_features and item_features must have one row per pair, got "
                             f"{user_features.shape[0]} and {item_features.shape[0]} rows")
        scores = np.einsum("ij,ij->i", self.user_embeddings(user_features, users),
                           self.item_embeddings(item_features, items))
        return self.score_to_rating(scores, users, items)

    def _all_items(self, item_x) -> np.ndarray:
        """Item-tower outputs of every training item row."""
        return self.item_embeddings(item_x, np.arange(item_x.shape[0]))

    def _pair_scores(self, user_x, item_vectors, users, items) -> np.ndarray:
        """Cosine scores of (users[j], items[j]), each distinct user row embedded once; the
        pairs' embedding rows are gathered ``_CHUNK`` pairs at a time, not two per pair at
        once (256 bytes a validation pair with 32 outputs in float32)."""
        user_rows, user_of = np.unique(users, return_inverse=True)
        eu = self.user_embeddings(user_x[user_rows], user_rows)
        scores = np.empty(users.shape[0])
        for start in range(0, users.shape[0], _CHUNK):
            stop = start + _CHUNK
            scores[start:stop] = np.einsum("ij,ij->i", eu[user_of[start:stop]],
                                           item_vectors[items[start:stop]])
        return scores

    # -----------------------------------------------------------------------------------------
    # Training

    def fit(self, train, user_features, item_features, *, validation=None, loo=None,
            item_loo=None,
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
            :class:`anirec.kernels.LeaveOneOutStats`; the ratings left out are ``train``'s).
        item_loo : ItemLeaveOneOutStats-like, optional
            Sufficient statistics from which the statistic columns of each training example's
            item row are derived leaving its own rating out (the fields of
            :class:`anirec.kernels.ItemLeaveOneOutStats`).
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
            The loss or a weight became non-finite, or the weights exploded while the best
            validation loss stayed no better than a constant's (the mean rating; for
            ``"ranking"``, a constant cosine): see :data:`DIVERGENCE_RATIO`.
        """
        self._validate_config()
        rng = np.random.default_rng(self.seed)
        users, items, ratings = _as_triplets(train, "train")
        if users.size == 0:
            raise DataError("train has no examples")
        item_x = _check_features("item_features", item_features, self.dtype)
        user_x = _check_features("user_features", user_features, self.dtype)
        for name, x in (("user_features", user_x), ("item_features", item_x)):
            if x.shape[1] == 0 and self.embedding_dim == 0:
                raise ValueError(f"{name} has no columns and embedding_dim=0: that tower would "
                                 "have no input (give features or an ID embedding)")
        _check_rows("train users", users, user_x.shape[0], "user row")
        _check_rows("train items", items, item_x.shape[0], "item row")
        self._check_ratings("train", ratings)
        if validation is None and self.validation_fraction > 0:
            # The draws of rng.random(n), a chunk at a time (no n float64 values at once).
            held_out = np.empty(users.shape[0], dtype=bool)
            for start, stop in _chunked.spans(users.shape[0]):
                held_out[start:stop] = rng.random(stop - start) < self.validation_fraction
            if held_out.all():
                raise DataError(f"validation_fraction={self.validation_fraction:g} held out all "
                                f"{users.shape[0]} training examples: none is left to train on")
            validation = (users[held_out], items[held_out], ratings[held_out])
            users, items, ratings = users[~held_out], items[~held_out], ratings[~held_out]
        if validation is not None:
            validation = _as_triplets(validation, "validation")
        if validation is not None and validation[0].size == 0:
            validation = None  # nothing to score: the history would hold NaN losses
        if validation is not None:
            _check_rows("validation users", validation[0], user_x.shape[0], "user row")
            _check_rows("validation items", validation[1], item_x.shape[0], "item row")
            self._check_ratings("validation", validation[2])
        examples, user, item = self._training_problem(users, items, ratings, user_x, item_x,
                                                      loo, item_loo, rng)
        try:
            self._train(rng, self._plan(examples, user, item), user_x, item_x, validation,
                        callback)
        except DivergenceError as error:
            # Drop the diverged weights, so the model can be neither used nor saved.
            self.params_, self.tables_, self.diverged_ = None, {}, str(error)
            self.pooled_history_ = None
            raise
        self._average_unknown_rows(users, items, user_x.shape[0], item_x.shape[0])
        if self.objective == "ranking":
            self._calibrate(rng, user_x, item_x, users, items, ratings)
        self._fit_knees(user_x, item_x, users, items, ratings)
        return self

    def epoch_plan(self, train, user_features, item_features, *, loo=None,
                   item_loo=None) -> kernels.EpochPlan:
        """The epoch plan :meth:`fit` would train on (tables and weights initialised from the
        seed), without training: what each epoch reads, e.g. the input rows an example's
        towers get (:meth:`anirec.kernels.EpochPlan.inputs`). Arguments as for :meth:`fit`;
        no validation pairs are held out of ``train``."""
        self._validate_config()
        rng = np.random.default_rng(self.seed)
        users, items, ratings = _as_triplets(train, "train")
        user_x = _check_features("user_features", user_features, self.dtype)
        item_x = _check_features("item_features", item_features, self.dtype)
        return self._plan(*self._training_problem(users, items, ratings, user_x, item_x, loo,
                                                  item_loo, rng))

    def _training_problem(self, users, items, ratings, user_x, item_x, loo, item_loo, rng):
        """``(examples, user tower, item tower)`` of the training triplets: the tables, the
        weights, the biases and the targets initialised (kept on the model)."""
        loo_stats = self._loo_stats(loo) if loo is not None else None
        item_loo_stats = self._item_loo_stats(item_loo) if item_loo is not None else None
        if loo_stats is not None and loo_stats.mean.shape[0] != user_x.shape[1]:
            raise ValueError(f"loo rows have {loo_stats.mean.shape[0]} columns but "
                             f"user_features has {user_x.shape[1]}")
        self.tables_, self.pooled_history_, self.diverged_ = {}, None, None
        tables = {side: self._init_table(side, rows, n, rng) for side, rows, n in
                  (("user", users, user_x.shape[0]), ("item", items, item_x.shape[0]))
                  if self.embedding_dim > 0}
        k, h = int(self.embedding_dim), int(self.history_dim)
        self._init_params(user_x.shape[1] + k + h, item_x.shape[1] + k, rng)
        history = self._init_history(users, items, user_x.shape[0], item_x.shape[0], rng) \
            if h else None
        self.calibration_ = self.item_log_prior_ = self.biases_ = None
        self.knees_ = (0.0, 0.0)  # validation during training scores with the clip
        if self.biases and self.loss_weights[0] > 0:
            self.biases_ = fit_biases(users, items, ratings, user_x.shape[0], item_x.shape[0],
                                      reg=float(self.bias_reg))
            # Float64 arithmetic a chunk at a time, straight into the model's dtype.
            targets = np.empty(ratings.shape[0], dtype=self.dtype)
            for start, stop, base in leave_one_out_chunks(self.biases_, users, items, ratings,
                                                          reg=float(self.bias_reg)):
                targets[start:stop] = self._residual_targets(base, ratings[start:stop])
        else:
            targets = np.empty(ratings.shape[0], dtype=self.dtype)
            for start, stop in _chunked.spans(ratings.shape[0]):
                targets[start:stop] = self.to_target(ratings[start:stop])
        ranking = self._ranking_inputs(items, ratings, item_x.shape[0])
        if ranking is not None and self.popularity_prior:
            self.item_log_prior_ = ranking[1].astype(np.float64)
            # The prior is part of the score, so the corrected logits s - log q are cosines.
            ranking = (ranking[0], np.zeros_like(ranking[1]))
        rank_weights, item_logq = ranking if ranking is not None else (None, None)
        # The rows as given (int32 or int64); the ratings copied only to another float type.
        examples = kernels.Examples(users, items, targets,
                                    np.asarray(ratings, dtype=self.dtype), rank_weights,
                                    item_logq)
        user_blocks = [kernels.Features("user", None if loo_stats is not None else user_x,
                                        user_stats=loo_stats),
                       tables.get("user"), history]
        item_blocks = [kernels.Features("item", item_x, item_stats=item_loo_stats),
                       tables.get("item")]
        user = kernels.Tower(self.user_sizes_, tuple(b for b in user_blocks if b is not None))
        item = kernels.Tower(self.item_sizes_, tuple(b for b in item_blocks if b is not None))
        return examples, user, item

    def _plan(self, examples, user, item) -> kernels.EpochPlan:
        """The checked plan every epoch of a fit runs, on the model's weights in place."""
        alpha, beta = self.loss_weights
        config = kernels.EpochConfig(
            optimizer=self.optimizer, batch_size=int(self.batch_size), beta1=self.beta1,
            beta2=self.beta2, eps=self.eps, momentum=self.momentum,
            weight_decay=self.weight_decay, embedding_decay=float(self.embedding_decay),
            rating_weight=alpha, ranking_weight=beta, temperature=float(self.temperature))
        grads = np.zeros_like(self.params_)
        return kernels.EpochPlan(examples, user, item,
                                 kernels.Params(self.params_, grads, np.zeros_like(grads),
                                                np.zeros_like(grads)), config,
                                 threads=self.threads)

    def _fit_knees(self, user_x, item_x, users, items, ratings) -> None:
        """:attr:`knees_` of the predictions of (an even sample of) the training pairs,
        scored with the full user rows as :meth:`predict` scores them."""
        self.knees_ = (0.0, 0.0)
        if self.biases_ is None and self.calibration_ is None:
            return
        pick = np.unique(np.linspace(0, users.shape[0] - 1, min(users.shape[0], bounds.SAMPLE))
                         .astype(np.int64))
        users, items = users[pick], items[pick]
        scores = self._pair_scores(user_x, self._all_items(item_x), users, items)
        self.knees_ = bounds.fit_knees(self._unbounded_rating(scores, users, items),
                                       ratings[pick], *self.rating_range)

    def _init_table(self, side: str, rows, n_rows: int, rng) -> kernels.Embedding:
        """A new ID embedding table of one side (kept in :attr:`tables_`), as a training
        embedding: the rows with at least ``min_id_count`` training ratings in order, then
        the unknown row; small random values (so no two ids start alike)."""
        known = _chunked.counts(rows, n_rows) >= int(self.min_id_count)
        index = np.where(known, np.cumsum(known) - 1, int(known.sum())).astype(np.int64)
        shape = (int(known.sum()) + 1, int(self.embedding_dim))
        table = rng.normal(0.0, 0.1, shape).astype(self.dtype)
        self.tables_[side] = (index, table)
        return kernels.Embedding(side, index, table, dropout=float(self.id_dropout))

    def _average_unknown_rows(self, users, items, n_users: int, n_items: int) -> None:
        """Make each side's unknown row the mean row over the ids trained on (a rare id counted
        with the row it shared): the model's average user and anime, which a person folded in
        and a new anime read. As trained it is the few rare ids' row, or, where every id owned
        a row, its random start. With ID dropout it was trained to stand for any id: kept."""
        for side, rows, n_rows in (("user", users, n_users), ("item", items, n_items)):
            if side not in self.tables_ or self.id_dropout > 0:
                continue
            index, table = self.tables_[side]
            unknown = table.shape[0] - 1
            if unknown == 0:
                continue  # no id owns a row: the unknown row is the only one learned
            rare = int(((_chunked.counts(rows, n_rows) > 0) & (index == unknown)).sum())
            total = table[:unknown].sum(axis=0, dtype=np.float64) + rare * table[unknown]
            table[unknown] = total / (unknown + rare)

    def _init_history(self, users, items, n_users: int, n_items: int, rng) -> kernels.History:
        """A new pooled history block (kept in :attr:`pooled_history_`): the item rows each user row
        rated in training, and one learned vector per item row, small random values."""
        order = np.argsort(users, kind="stable")
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(_chunked.counts(users, n_users), out=indptr[1:])
        indices = np.ascontiguousarray(items[order], dtype=np.int64)
        table = rng.normal(0.0, 0.1, (n_items, int(self.history_dim))).astype(self.dtype)
        self.pooled_history_ = (indptr, indices, table)
        return kernels.History(indptr, indices, table)

    def _residual_targets(self, base, ratings) -> np.ndarray:
        """What the scaled cosine learns with biases: the rating's distance from ``base``."""
        lo, hi = self.rating_range
        return (np.asarray(ratings, dtype=np.float64) - base) / ((hi - lo) / 2)

    def _positive_weights(self, ratings: np.ndarray) -> np.ndarray:
        if self.positive_threshold is None:
            return np.ones(ratings.shape[0], dtype=self.dtype)
        # A float64 threshold: float32 ratings are compared as their float64 values.
        return (ratings >= np.float64(self.positive_threshold)).astype(self.dtype)

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
        counts = np.maximum(_chunked.counts(items, n_items), 1).astype(np.float64)
        logq = np.log(counts / items.shape[0]).astype(self.dtype)
        return weights, logq

    def _calibrate(self, rng, user_x, item_x, users, items, ratings) -> None:
        """Fit ``rating = a + b * score`` by least squares on (a sample of) the training pairs,
        scored with the full user rows as :meth:`predict` scores them."""
        if users.shape[0] > _CALIBRATION_SAMPLE:
            pick = rng.choice(users.shape[0], _CALIBRATION_SAMPLE, replace=False)
            users, items, ratings = users[pick], items[pick], ratings[pick]
        scores = self._pair_scores(user_x, self._all_items(item_x), users, items)
        variance = float(np.var(scores))
        slope = float(np.cov(scores, ratings, bias=True)[0, 1] / variance) if variance > 0 \
            else 0.0
        self.calibration_ = (float(np.mean(ratings, dtype=np.float64) - slope * np.mean(scores)),
                             slope)

    def _check_ratings(self, name: str, ratings: np.ndarray) -> None:
        lo, hi = self.rating_range
        # Against float64 bounds, as float64 ratings: float32 ratings are compared exactly.
        bad = ~((ratings >= np.float64(lo)) & (ratings <= np.float64(hi)))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{name} rating at row {row} is {ratings[row]}, outside the "
                            f"rating_range [{lo:g}, {hi:g}]")

    def _loo_stats(self, loo) -> kernels.LeaveOneOutStats:
        values = {}
        for name in kernels.LeaveOneOutStats._fields:
            if not hasattr(loo, name):
                raise TypeError(f"loo must have the attribute {name!r}")
            value = getattr(loo, name)
            values[name] = value if name in ("mode", "global_mean") else \
                np.ascontiguousarray(value, dtype=self.dtype)
        values["mode"] = int(values["mode"])
        values["global_mean"] = float(values["global_mean"])
        return kernels.LeaveOneOutStats(**values)

    def _item_loo_stats(self, stats) -> kernels.ItemLeaveOneOutStats:
        values = {}
        for name in kernels.ItemLeaveOneOutStats._fields:
            if not hasattr(stats, name):
                raise TypeError(f"item_loo must have the attribute {name!r}")
            values[name] = getattr(stats, name)
        for name in ("rating_sum", "rating_count", "prior_num", "prior_den", "from_ratings",
                     "mean", "std"):
            values[name] = np.ascontiguousarray(values[name], dtype=self.dtype)
        values["columns"] = np.ascontiguousarray(values["columns"], dtype=np.int64)
        values["global_mean"] = float(values["global_mean"])
        return kernels.ItemLeaveOneOutStats(**values)

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
        user_vectors = self.user_embeddings(user_x[rows], rows).astype(np.float64)
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

    def _train(self, rng, run: kernels.EpochPlan, user_x, item_x, validation,
               callback) -> None:
        from tqdm.auto import tqdm

        alpha, beta = self.loss_weights
        examples = run.examples
        val_pairs = None
        if beta > 0 and validation is not None:
            val_pairs = self._validation_pairs(
                np.random.default_rng(None if self.seed is None else self.seed + 1), validation)
        n = examples.targets.shape[0]
        self.history_, self.best_epoch_ = [], None
        best_loss, best, stale, step = math.inf, None, 0, 0
        initial_scale = float(np.abs(self.params_).max())
        half_range = (self.rating_range[1] - self.rating_range[0]) / 2.0
        # A bar counted by hand, not by iteration: an iterating bar shows one epoch short
        # when the loop breaks on early stopping.
        epochs = tqdm(total=self.epochs, desc=f"training ({self.objective} objective)",
                      unit="epoch", disable=not self.verbose)
        for epoch in range(self.epochs):
            lr = self.schedule_(epoch)
            started = time.perf_counter()
            with np.errstate(all="ignore"):  # divergence is detected and reported below
                loss_sum, step = run.run(self._permutation(rng, n), lr=lr, step=step)
            logs = {"epoch": epoch + 1, "train_loss": loss_sum / n}
            self._check_divergence(epoch + 1, logs["train_loss"], lr)
            if validation is not None:
                val_loss = 0.0
                item_vectors = self._all_items(item_x)  # shared by both validation terms
                if alpha > 0:
                    scores = self._pair_scores(user_x, item_vectors, validation[0],
                                               validation[1])
                    # On the predictions themselves (biases, clipping), in scaled units.
                    errors = self.score_to_rating(scores, *validation[:2]) - validation[2]
                    val_mse = float(np.mean(errors ** 2)) / half_range ** 2
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
                    best_loss, best, stale = logs["val_loss"], self._weights(copy=True), 0
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
        self._check_against_mean(examples.ratings, validation, initial_scale,
                                 self._constant_rank_loss(val_pairs, item_x.shape[0]))
        if best is not None:
            self._set_weights(best)

    @staticmethod
    def _permutation(rng, n: int) -> np.ndarray:
        """``rng.permutation(n)``, the same draws and order, as int32 when ``n`` allows: an
        epoch visits the examples by int32 or int64 index alike, and at full size the int64
        order would be 190 MB."""
        order = np.arange(n, dtype=np.int32 if n <= 2**31 else np.int64)
        rng.shuffle(order)
        return order

    def _weights(self, copy: bool = False) -> list[np.ndarray]:
        """Everything training changes: the dense parameters, the embedding tables and the
        history vectors."""
        arrays = [self.params_, *(table for _, table in self.tables_.values())]
        if self.pooled_history_ is not None:
            arrays.append(self.pooled_history_[2])
        return [a.copy() for a in arrays] if copy else arrays

    def _set_weights(self, arrays: list[np.ndarray]) -> None:
        self.params_ = arrays[0]
        for side, table in zip(list(self.tables_), arrays[1:]):
            self.tables_[side] = (self.tables_[side][0], table)
        if self.pooled_history_ is not None:
            self.pooled_history_ = (*self.pooled_history_[:2], arrays[-1])

    def _check_against_mean(self, ratings: np.ndarray, validation, initial_scale: float,
                            rank_baseline: float | None = None) -> None:
        """Raise :class:`DivergenceError` when training never beat a constant predictor and
        the weights exploded (see :data:`DIVERGENCE_RATIO`).

        Finite weights are not enough: a learning rate far too high (``lr=1e6``) saturates the
        towers into extreme predictions whose RMSE stays above that of the constant mean
        training rating. Compared on the validation pairs (the best epoch) when there are
        any, else on the training loss of the last epoch (``objective="rating"`` only).

        ``objective="ranking"`` has no rating to compare: its best validation ranking loss is
        compared with ``rank_baseline``, that of a constant cosine (:meth:`_constant_rank_loss`):
        the retriever that ranks by the popularity prior alone (by nothing without the prior).
        A model whose weights exploded and that never ranks better than ignoring its towers
        diverged. Without validation pairs only a non-finite loss or weight is caught.
        """
        if not self.history_ or not np.abs(self.params_).max() > _EXPLOSION * initial_scale:
            return
        if self.loss_weights[0] == 0:
            baseline, what = rank_baseline, "validation ranking loss"
            achieved = min(entry.get("val_rank", math.inf) for entry in self.history_)
            constant = ("ranking every item by its training popularity alone" if
                        self.item_log_prior_ is not None else "scoring every item alike")
        else:
            baseline, achieved, what = self._rating_against_mean(ratings, validation)
            constant = ("the rating biases alone" if self.biases_ is not None and
                        validation is not None else
                        "predicting the mean training rating for every pair")
        if baseline is not None and baseline > 0 and achieved >= DIVERGENCE_RATIO * baseline:
            raise DivergenceError(
                f"training diverged: its best {what}, {achieved:.4g}, is no better than "
                f"{constant} ({baseline:.4g}; lr={self.lr:g}, optimizer={self.optimizer!r}). "
                "Lower the learning rate, add weight_decay, or check that the features are "
                "scaled (z-scores)."
            )

    def _rating_against_mean(self, ratings: np.ndarray, validation):
        """``(baseline, achieved, what)`` of the rating rule; ``baseline`` ``None``: no rule.
        ``ratings`` are the training ratings (scaled here: only a diverged fit gets here)."""
        targets = self.to_target(ratings)
        mean = float(np.mean(targets, dtype=np.float64))
        if validation is not None:
            if validation[2].shape[0] < _DIVERGENCE_MIN_PAIRS:
                return None, None, None
            achieved = min(entry["val_rmse"] for entry in self.history_)
            if self.biases_ is not None:  # what the model predicts when its towers add nothing
                alone = self.score_to_rating(np.zeros(validation[2].shape[0]), *validation[:2])
                return float(np.sqrt(np.mean((alone - validation[2]) ** 2))), achieved, \
                    "validation RMSE"
            half_range = (self.rating_range[1] - self.rating_range[0]) / 2.0
            baseline = math.sqrt(float(np.mean((self.to_target(validation[2]) - mean) ** 2)))
            return baseline * half_range, achieved, "validation RMSE"
        if self.objective == "rating" and targets.shape[0] >= _DIVERGENCE_MIN_PAIRS:
            baseline = float(np.mean((targets.astype(np.float64) - mean) ** 2))
            return baseline, self.history_[-1]["train_loss"], "training MSE (scaled ratings)"
        return None, None, None

    def _constant_rank_loss(self, pairs, n_items: int) -> float | None:
        """The validation ranking loss (:meth:`_validation_rank_loss`) of a constant cosine:
        ``logsumexp(prior) - prior[item]`` with the popularity prior, ``log(n_items)``
        without it (every item then scores alike). ``None`` for fewer than
        ``_DIVERGENCE_MIN_PAIRS`` positives (too few to tell)."""
        if pairs is None or np.count_nonzero(pairs[2]) < _DIVERGENCE_MIN_PAIRS:
            return None
        _, items, weights = pairs
        if self.item_log_prior_ is None:
            return math.log(n_items)
        prior = self.item_log_prior_
        top = float(prior.max())
        lse = top + math.log(float(np.exp(prior - top).sum()))
        return float(np.dot(weights, lse - prior[items]) / weights.sum())

    def _check_divergence(self, epoch: int, loss: float, lr: float) -> None:
        what = None
        if not math.isfinite(loss):
            what = "the training loss"
        elif not all(np.isfinite(weights).all() for weights in self._weights()):
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
        """The model as a JSON-friendly header and a dict of arrays (see :meth:`save`).

        The header's ``dims`` declares the size of every dimension of the arrays (the tower
        inputs, the user and item rows, the ID table rows), so that a loader checks each array
        against it before reading (:meth:`file_dims`)."""
        self._check_fitted()
        dims = {"user inputs": int(self.user_sizes_[0]), "item inputs": int(self.item_sizes_[0])}
        header = {"config": self.get_config(), "history": self.history_,
                  "best_epoch": self.best_epoch_,
                  "calibration": None if self.calibration_ is None else
                  list(self.calibration_), "dims": dims, "knees": list(self.knees_)}
        arrays = {"params": self.params_, "user_sizes": self.user_sizes_,
                  "item_sizes": self.item_sizes_}
        if self.item_log_prior_ is not None:
            arrays["item_log_prior"] = self.item_log_prior_
            dims["items"] = int(self.item_log_prior_.shape[0])
        if self.biases_ is not None:
            header["bias_mean"] = self.biases_.mean
            arrays["bias_user"], arrays["bias_item"] = self.biases_.user, self.biases_.item
            dims["users"], dims["items"] = (int(self.biases_.user.shape[0]),
                                            int(self.biases_.item.shape[0]))
        for side, (index, table) in self.tables_.items():
            arrays[f"{side}_index"], arrays[f"{side}_table"] = index, table
            dims[f"{side}s"], dims[f"{side} table"] = int(index.shape[0]), int(table.shape[0])
        if self.pooled_history_ is not None:
            for name, array in zip(("indptr", "indices", "table"), self.pooled_history_):
                arrays[f"history_{name}"] = array
            dims["users"] = int(self.pooled_history_[0].shape[0]) - 1
            dims["items"] = int(self.pooled_history_[2].shape[0])
            dims["history pairs"] = int(self.pooled_history_[1].shape[0])
        return header, arrays

    @staticmethod
    def file_members(prefix: str = "") -> dict:
        """The arrays of a saved model (names under ``prefix``) and what each must look like
        (:class:`anirec.model.persistence.Member`), every dimension named for :meth:`file_dims`:
        a loader reads these and nothing else."""
        from anirec.model.persistence import Member

        return {f"{prefix}params": Member("f", ("parameters",)),
                f"{prefix}user_sizes": Member("i", ("tower depth",)),
                f"{prefix}item_sizes": Member("i", ("tower depth",)),
                f"{prefix}item_log_prior": Member("f", ("items",), required=False),
                f"{prefix}bias_user": Member("f", ("users",), required=False),
                f"{prefix}bias_item": Member("f", ("items",), required=False),
                f"{prefix}user_index": Member("i", ("users",), required=False),
                f"{prefix}user_table": Member("f", ("user table", "embedding"),
                                              required=False),
                f"{prefix}item_index": Member("i", ("items",), required=False),
                f"{prefix}item_table": Member("f", ("item table", "embedding"),
                                              required=False),
                f"{prefix}history_indptr": Member("i", ("history pointer",), required=False),
                f"{prefix}history_indices": Member("i", ("history pairs",), required=False),
                f"{prefix}history_table": Member("f", ("items", "history"), required=False)}

    @classmethod
    def _from_config(cls, header: dict, source: str, where: str = "") -> "TwoTower":
        """An unfitted model of the header's ``config``: every key a constructor argument,
        every value checked by the constructor (strict types: ``"yes"`` is no boolean)."""
        from anirec.model.persistence import header_field, known_fields

        label = f"{where}." if where else ""
        config = header_field(header, "config", dict, source, where=where)
        known_fields(config, set(MODEL), source,
                     where=f"{label}config")
        try:
            return cls(**config)
        except (TypeError, ValueError) as error:
            raise ModelFormatError(f"{source}: header field '{label}config' is invalid: "
                                   f"{error}") from None

    @classmethod
    def file_dims(cls, header: dict, source: str, where: str = "") -> dict[str, int]:
        """The size of every dimension of :meth:`file_members`, from the header: the
        ``config`` (layers, ``embedding_dim``) and ``dims`` (tower inputs, user and item rows,
        ID table rows), checked to agree with each other.

        Raises
        ------
        ModelFormatError
            Naming ``source`` and the header field (under ``where``).
        """
        from anirec.model.persistence import declared_dims

        label = f"{where}.dims" if where else "dims"
        model = cls._from_config(header, source, where)
        dims = declared_dims(header, ("user inputs", "item inputs", "users", "items",
                                      "user table", "item table", "history pairs"), source,
                             where=where)
        width = int(model.embedding_dim)
        for side in ("user", "item"):
            inputs = dims.get(f"{side} inputs")
            if inputs is None or not width < inputs <= _MAX_WIDTH:
                raise ModelFormatError(f"{source}: header field '{label}.{side} inputs' is "
                                       f"{inputs}, expected more than the {width} columns of "
                                       f"the ID embedding, at most {_MAX_WIDTH}")
            rows, table = dims.get(f"{side}s"), dims.get(f"{side} table")
            if (table is not None) != (width > 0) or (
                    table is not None and (rows is None or not 1 <= table <= rows + 1)):
                raise ModelFormatError(f"{source}: header field '{label}.{side} table' is "
                                       f"{table}: a model with embedding_dim={width} has "
                                       f"{'an' if width else 'no'} ID table, of at most one "
                                       f"row per {side} row plus one ({rows})")
        history = int(model.history_dim)
        pairs, users, items = dims.get("history pairs"), dims.get("users"), dims.get("items")
        if (pairs is not None) != (history > 0) or (pairs is not None and (
                users is None or items is None or pairs > users * items
                or dims["user inputs"] <= width + history)):
            raise ModelFormatError(f"{source}: header field '{label}.history pairs' is {pairs}: "
                                   f"a model with history_dim={history} has "
                                   f"{'a' if history else 'no'} pooled history, of at most "
                                   f"one pair per user and anime ({users} x {items})")
        sizes = [[dims[f"{side} inputs"], *model.layers] for side in ("user", "item")]
        parameters = kernels.n_parameters(*sizes)
        if parameters > _MAX_PARAMETERS:
            raise ModelFormatError(f"{source}: the header declares towers of {parameters:,} "
                                   f"parameters (field '{label}'), more than "
                                   f"{_MAX_PARAMETERS:,}")
        extra = {"history pointer": users + 1, "history": history} if pairs is not None else {}
        return {**dims, **extra, "parameters": parameters,
                "tower depth": len(model.layers) + 1, "embedding": width}

    @classmethod
    def from_state(cls, header: dict, arrays: dict[str, np.ndarray], source: str = "state",
                   where: str = ""):
        """Rebuild a model from :meth:`to_state` output, checking every field and shape.

        Every part the configuration implies must be there and nothing else: the rating
        biases (``bias_mean`` and both bias arrays) exactly with ``biases`` and a rating loss,
        the popularity prior exactly with ``popularity_prior`` and a ranking loss, the
        calibration exactly with ``objective="ranking"``, the ID tables exactly with
        ``embedding_dim``. Values are those training can produce: finite, the bias mean within
        the rating range, the biases within 100 times its width, log shares in
        ``[-log 2**63, 0]``, a calibration line that meets the rating range.

        Raises
        ------
        ModelFormatError
            Naming ``source`` and the header field (under ``where``) or array at fault.
        """
        from anirec.model.persistence import header_field, known_fields, number_list

        label = f"{where}." if where else ""
        model = cls._from_config(header, source, where)
        known_fields(header, _STATE_FIELDS | (set() if where else _FILE_FIELDS), source,
                     where=where)
        missing = [key for key in ("params", "user_sizes", "item_sizes") if key not in arrays]
        if missing:
            raise ModelFormatError(f"{source} lacks the array {where and where + '.'}"
                                   f"{missing[0]}")
        params, user_sizes, item_sizes = (arrays[key] for key in
                                          ("params", "user_sizes", "item_sizes"))
        for name, sizes in (("user_sizes", user_sizes), ("item_sizes", item_sizes)):
            if sizes.dtype != np.int64 or sizes.ndim != 1 or sizes.shape[0] < 2 or \
                    list(sizes[1:]) != list(model.layers) or not 1 <= sizes[0] <= _MAX_WIDTH:
                raise ModelFormatError(f"{source}: {label}{name} {sizes.tolist()[:10]} does "
                                       f"not match the layers {list(model.layers)}")
        expected = kernels.n_parameters(user_sizes, item_sizes)
        if params.dtype != np.dtype(model.dtype) or params.shape != (expected,):
            raise ModelFormatError(f"{source}: {label}params has shape {params.shape} and dtype "
                                   f"{params.dtype}, expected ({expected},) {model.dtype}")
        if not np.isfinite(params).all():
            raise ModelFormatError(f"{source}: {label}params holds NaN or inf (a diverged "
                                   "model)")
        model.user_sizes_, model.item_sizes_ = user_sizes, item_sizes
        model.params_ = np.ascontiguousarray(params)
        history = header_field(header, "history", list, source, where=where, required=False,
                               default=[])
        for entry in history:
            if not isinstance(entry, dict) or not all(
                    isinstance(value, (int, float)) and not isinstance(value, bool)
                    for value in entry.values()):
                raise ModelFormatError(f"{source}: header field '{label}history' must be a "
                                       "list of mappings of numbers")
        model.history_ = list(history)
        best = header_field(header, "best_epoch", (int, type(None)), source, where=where,
                            required=False)
        if best is not None and not 1 <= best <= max(len(history), 1):
            raise ModelFormatError(f"{source}: header field '{label}best_epoch' is {best}, "
                                   f"outside the {len(history)} epochs of the history")
        model.best_epoch_ = best
        ranking, rating_loss = model.objective != "rating", model.objective != "ranking"
        calibration = number_list(header, "calibration", source, where=where, length=2,
                                  required=False)
        _expect_part(calibration is not None, model.objective == "ranking",
                     f"header field '{label}calibration'", "objective='ranking'", source)
        if calibration is not None:
            model.calibration_ = _checked_calibration(calibration, model, source, label)
        knees = number_list(header, "knees", source, where=where, length=2, required=False)
        if knees is not None:  # absent from files written before: the clip
            model.knees_ = bounds.check_knees(knees, *model.rating_range, source,
                                              f"{label}knees")
        prior = arrays.get("item_log_prior")
        _expect_part(prior is not None, ranking and model.popularity_prior,
                     f"{label}item_log_prior", "popularity_prior and a ranking loss", source)
        if prior is not None:
            if prior.ndim != 1 or prior.dtype != np.float64 or not np.isfinite(prior).all() \
                    or (prior > 0).any() or (prior < _MIN_LOG_SHARE).any():
                raise ModelFormatError(f"{source}: {label}item_log_prior must be a finite "
                                       f"float64 vector of log shares in [{_MIN_LOG_SHARE:.4g}, "
                                       f"0], got {prior.dtype} of shape {prior.shape}")
            model.item_log_prior_ = prior
        has_biases = "bias_mean" in header or "bias_user" in arrays or "bias_item" in arrays
        _expect_part(has_biases, model.biases and rating_loss,
                     f"header field '{label}bias_mean' (and the bias arrays)",
                     "biases and a rating loss", source)
        if has_biases:
            model.biases_ = _load_biases(header, arrays, model, source, label)
        for side, sizes in (("user", user_sizes), ("item", item_sizes)):
            present = f"{side}_index" in arrays or f"{side}_table" in arrays
            _expect_part(present, model.embedding_dim > 0, f"{label}{side}_table",
                         "embedding_dim > 0", source)
            if present:
                model.tables_[side] = _load_table(arrays, side, model, sizes, source)
        present = any(f"history_{name}" in arrays for name in ("indptr", "indices", "table"))
        _expect_part(present, model.history_dim > 0, f"{label}history_table",
                     "history_dim > 0", source)
        if present:
            model.pooled_history_ = _load_history(arrays, model, user_sizes, source)
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

        header, arrays = read_model_file(path, kind="TwoTower", members=cls.file_members(),
                                         dims=cls.file_dims)
        return cls.from_state(header, arrays, source=repr(str(path)))


# What help() and inspect show: every option with its default (anirec.options.MODEL).
TwoTower.__init__.__signature__ = MODEL.signature()

#: Header fields of a saved model (:meth:`TwoTower.to_state`), and those of its file.
_STATE_FIELDS = frozenset({"config", "history", "best_epoch", "calibration", "bias_mean", "dims",
                           "knees"})
_FILE_FIELDS = frozenset({"format", "format_version", "kind"})
#: The least log share of training pairs an item can have: one pair of at most 2**63.
_MIN_LOG_SHARE = -math.log(2.0**63)
#: Biases larger than this many widths of the rating range are no fit's (a fit stays within
#: about two: each is a regularised mean of rating deviations).
_MAX_BIAS_WIDTHS = 100.0


def _expect_part(present: bool, expected: bool, what: str, condition: str, source: str):
    """Refuse a part of a saved model that its configuration rules out, or a missing one it
    implies: either way the model would silently compute something else."""
    if present and not expected:
        raise ModelFormatError(f"{source}: {what} is present, but the model's configuration "
                               f"has no such part (it needs {condition})")
    if expected and not present:
        raise ModelFormatError(f"{source}: {what} is missing, but the model's configuration "
                               f"({condition}) needs it")


def _checked_calibration(calibration, model: "TwoTower", source: str, label: str):
    """``(a, b)`` of a ranking model's calibration ``r = a + b p``: a least-squares line
    through the mean score (in [-1, 1]) and the mean rating, so over ``p`` in [-1, 1] it
    meets the rating range, with finite ends."""
    a, b = calibration
    lo, hi = model.rating_range
    ends = (a - abs(b), a + abs(b))
    if not (math.isfinite(ends[0]) and math.isfinite(ends[1]) and ends[0] <= hi and
            ends[1] >= lo):
        raise ModelFormatError(f"{source}: header field '{label}calibration' {[a, b]!r:.80} "
                               f"is no calibration of ratings in [{lo:g}, {hi:g}]: over scores "
                               "in [-1, 1] it never meets the rating range")
    return a, b


def _load_biases(header: dict, arrays: dict, model: "TwoTower", source: str,
                 label: str) -> Biases:
    """The saved rating biases, checked: a mean rating within the rating range and two
    float64 vectors of biases within :data:`_MAX_BIAS_WIDTHS` widths of it."""
    from anirec.model.persistence import header_field

    lo, hi = model.rating_range
    mean = header_field(header, "bias_mean", (int, float), source, where=label.rstrip("."),
                        low=lo, high=hi)
    limit = _MAX_BIAS_WIDTHS * (hi - lo)
    for name in ("bias_user", "bias_item"):
        values = arrays.get(name)
        if values is None or values.ndim != 1 or values.dtype != np.float64 or \
                not np.isfinite(values).all() or (values.size and np.abs(values).max() > limit):
            raise ModelFormatError(f"{source}: {label}{name} must be a finite float64 vector "
                                   f"of biases within +-{limit:g} ({_MAX_BIAS_WIDTHS:g} widths "
                                   "of the rating range)")
    return Biases(float(mean), arrays["bias_user"], arrays["bias_item"])


def _load_history(arrays: dict, model: TwoTower, user_sizes, source: str):
    """The saved pooled history (each user row's item rows and the item vectors), checked."""
    indptr, indices, table = (arrays.get(f"history_{name}")
                              for name in ("indptr", "indices", "table"))
    if indptr is None or indices is None or table is None:
        raise ModelFormatError(f"{source}: the pooled history is missing")
    width = int(model.history_dim)
    if table.dtype != np.dtype(model.dtype) or table.ndim != 2 or table.shape[1] != width \
            or table.shape[0] < 1 or not np.isfinite(table).all() or user_sizes[0] <= width:
        raise ModelFormatError(f"{source}: history_table must be a finite {model.dtype} matrix "
                               f"of {width} columns, got {table.dtype} {table.shape}")
    if indptr.dtype != np.int64 or indptr.ndim != 1 or indptr.shape[0] < 1 or indptr[0] != 0 \
            or np.any(np.diff(indptr) < 0) or indices.dtype != np.int64 or indices.ndim != 1 \
            or indices.shape[0] != indptr[-1] or (indices.size and (
                indices.min() < 0 or indices.max() >= table.shape[0])):
        raise ModelFormatError(f"{source}: history_indptr and history_indices must be the "
                               "int64 rows of a CSR matrix of users by history_table's rows")
    return indptr, indices, table


def _load_table(arrays: dict, side: str, model: TwoTower, sizes, source: str):
    """One saved ID embedding table and its index, checked against the model."""
    index, table = arrays.get(f"{side}_index"), arrays.get(f"{side}_table")
    if index is None or table is None:
        raise ModelFormatError(f"{source}: the {side} embedding table is missing")
    width = int(model.embedding_dim)
    if table.dtype != np.dtype(model.dtype) or table.ndim != 2 or table.shape[1] != width \
            or table.shape[0] < 1 or not np.isfinite(table).all() or sizes[0] <= width:
        raise ModelFormatError(f"{source}: {side}_table must be a finite {model.dtype} matrix "
                               f"of {width} columns, got {table.dtype} {table.shape}")
    if index.dtype != np.int64 or index.ndim != 1 or (
            index.size and (index.min() < 0 or index.max() >= table.shape[0])):
        raise ModelFormatError(f"{source}: {side}_index must be int64 rows of {side}_table")
    return index, table
