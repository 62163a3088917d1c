"""A cheap, model-free proxy for choosing the user-feature weighting.

Ridge regression of the rating on the user x item feature interactions (plus both feature
vectors and an intercept): the two-tower model scores a pair by an interaction of its two
feature vectors, so the weighting whose features predict the rating better through such an
interaction is the better input. Training examples use their leave-one-out user rows,
validation examples the full training rows, exactly as the model will.
"""

from __future__ import annotations

import numpy as np

from anirec.data import build_features


def _design(u_rows: np.ndarray, i_rows: np.ndarray) -> np.ndarray:
    inter = (u_rows[:, :, None] * i_rows[:, None, :]).reshape(u_rows.shape[0], -1)
    return np.hstack([inter, u_rows, i_rows, np.ones((u_rows.shape[0], 1))])


def ridge_rmse(data, split, weighting: str, alpha: float = 10.0) -> float:
    """Validation RMSE of the ridge proxy for one weighting."""
    f = build_features(data.catalogue, split.train, data.ratings.n_users, weighting=weighting)
    tr, va = split.train, split.valid
    xt = _design(f.user_stats.rows(tr.users, tr.items, tr.ratings), f.item_x[tr.items])
    yt = tr.ratings.astype(np.float64)
    a = xt.T @ xt
    a[np.diag_indices_from(a)] += alpha
    coef = np.linalg.solve(a, xt.T @ yt)
    xv = _design(f.user_x[va.users], f.item_x[va.items])
    pred = np.clip(xv @ coef, 1, 10)
    return float(np.sqrt(np.mean((pred - va.ratings) ** 2)))
