"""Rating-accuracy and ranking metrics.

Ranking follows the usual protocol: each evaluated user gets a top-``k`` list from which the
items they interacted with in training are excluded; the relevant items are the held-out items
they rated at least ``threshold``; users with no relevant item are not evaluated.
"""

from __future__ import annotations

import numpy as np


def rmse(predicted, actual) -> float:
    """Root mean squared error."""
    diff = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    return float(np.sqrt(np.mean(diff * diff))) if diff.size else float("nan")


def mae(predicted, actual) -> float:
    """Mean absolute error."""
    diff = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    return float(np.mean(np.abs(diff))) if diff.size else float("nan")


def relevant_sets(users, items, ratings, threshold: float):
    """The held-out relevant items of each user, as ``(user rows, CSR indptr, item rows)``.

    Only users with at least one rating ``>= threshold`` appear.
    """
    users = np.asarray(users, dtype=np.int64)
    keep = np.asarray(ratings) >= threshold
    users, items = users[keep], np.asarray(items, dtype=np.int64)[keep]
    order = np.lexsort((items, users))
    users, items = users[order], items[order]
    rows, counts = np.unique(users, return_counts=True)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return rows, indptr, items


def ranking_metrics(top_items: np.ndarray, relevant_indptr: np.ndarray,
                    relevant_items: np.ndarray, n_items: int) -> dict:
    """Precision@k, Recall@k, NDCG@k (binary relevance) and catalogue coverage.

    Parameters
    ----------
    top_items : (n_users, k) int array
        Each evaluated user's ranked list (``-1`` pads short lists).
    relevant_indptr, relevant_items : CSR arrays
        Each user's relevant items, in the same user order as ``top_items``.
    n_items : int
        Catalogue size, for coverage.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``ndcg`` (means over users), ``coverage`` (share of the
        catalogue recommended to anyone) and ``users`` (how many were evaluated).
    """
    n_users, k = top_items.shape
    if n_users == 0:
        return {"precision": float("nan"), "recall": float("nan"), "ndcg": float("nan"),
                "coverage": 0.0, "users": 0}
    sizes = np.diff(relevant_indptr)
    owner = np.repeat(np.arange(n_users), sizes)
    # hits[u, j]: is the j-th recommendation of user u relevant?  Pair keys make it one lookup.
    relevant_keys = owner * (n_items + 1) + relevant_items
    top_keys = np.arange(n_users)[:, None] * (n_items + 1) + top_items
    hits = np.isin(top_keys, relevant_keys) & (top_items >= 0)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits @ discounts
    ideal = np.cumsum(discounts)[np.minimum(sizes, k) - 1]
    n_hits = hits.sum(axis=1)
    recommended = np.unique(top_items[top_items >= 0])
    return {
        "precision": float(np.mean(n_hits / k)),
        "recall": float(np.mean(n_hits / sizes)),
        "ndcg": float(np.mean(dcg / ideal)),
        "coverage": float(recommended.shape[0] / n_items),
        "users": int(n_users),
    }
