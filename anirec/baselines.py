"""Baselines the two-tower model is scored against, fitted on the same training ratings.

Each baseline is a small set of arrays: it predicts ratings (``predict``) and/or ranks the
catalogue the same way for every user (``item_scores``); the user-independent rankings go
through the same top-k kernel, with the same exclusions, as the model.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from anirec.model.biases import fit_biases


@dataclass
class GlobalMean:
    """Predicts the mean training rating for every pair."""

    mean: float

    name = "global mean"
    item_scores = None

    @classmethod
    def fit(cls, users, items, ratings, n_users: int, n_items: int) -> "GlobalMean":
        return cls(float(np.mean(ratings)))

    def predict(self, users, items) -> np.ndarray:
        return np.full(np.shape(users), self.mean)


@dataclass
class Popularity:
    """Ranks anime by their number of training ratings (a ranking baseline only)."""

    item_scores: np.ndarray

    name = "popularity"

    @classmethod
    def fit(cls, users, items, ratings, n_users: int, n_items: int) -> "Popularity":
        return cls(np.bincount(items, minlength=n_items).astype(np.float64))

    def predict(self, users, items):
        return None


@dataclass
class BayesianAverage:
    """Predicts, and ranks by, each anime's Bayesian-average rating."""

    item_scores: np.ndarray

    name = "Bayesian average"

    def predict(self, users, items) -> np.ndarray:
        return self.item_scores[np.asarray(items)]


@dataclass
class BiasModel:
    """``r = mu + b_user + b_item``, regularised, fitted by alternating least squares.

    Each half-step solves its biases exactly given the others:
    ``b_u = sum_i (r - mu - b_i) / (n_u + reg)`` and ``b_i = sum_u (r - mu - b_u) / (n_i + reg)``.
    It ranks every user's catalogue by ``b_item``.
    """

    mean: float
    user_bias: np.ndarray
    item_scores: np.ndarray  # the item biases

    name = "user + item bias"

    @classmethod
    def fit(cls, users, items, ratings, n_users: int, n_items: int, *, reg: float = 5.0,
            iterations: int = 10) -> "BiasModel":
        biases = fit_biases(users, items, ratings, n_users, n_items, reg=reg,
                            iterations=iterations)
        return cls(biases.mean, biases.user, biases.item)

    def predict(self, users, items) -> np.ndarray:
        return self.mean + self.user_bias[np.asarray(users)] + self.item_scores[np.asarray(items)]


#: Every baseline class by its class name, the name it is saved under.
BASELINES = {cls.__name__: cls for cls in (GlobalMean, BayesianAverage, BiasModel, Popularity)}


def baseline_to_state(baseline) -> dict[str, np.ndarray]:
    """A baseline's fields as float64 arrays (a number becomes a 1-element array)."""
    return {field.name: np.atleast_1d(np.asarray(getattr(baseline, field.name), np.float64))
            for field in fields(baseline)}


def baseline_from_state(name: str, arrays: dict[str, np.ndarray]):
    """The baseline saved by :func:`baseline_to_state` under its class ``name``.

    Raises ``KeyError`` for an unknown name or a missing field, ``ValueError`` for a number
    field that does not hold exactly one value.
    """
    cls = BASELINES[name]
    values = {}
    for field in fields(cls):
        value = np.asarray(arrays[field.name], dtype=np.float64)
        if field.type in (float, "float"):
            if value.shape != (1,):
                raise ValueError(f"{name}.{field.name} must hold one number, got {value.shape}")
            value = float(value[0])
        values[field.name] = value
    return cls(**values)
