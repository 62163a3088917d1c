"""Rating-accuracy and ranking metrics.

Ranking follows the usual protocol: each evaluated user gets a top-``k`` list from which the
items they interacted with in training are excluded; the relevant items are the held-out items
they rated at least ``threshold``; users with no relevant item are not evaluated. An
evaluation table prints one way everywhere (:func:`format_evaluation`), and
:func:`explain_metrics` says what each column means.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from anirec.data.scale import RatingScale

#: What each column of an evaluation means: the text of ``--help`` of the commands that print
#: one (``train``, ``evaluate``, ``demo``) and of :func:`explain_metrics`.
METRICS = {
    "rmse, mae": "root mean squared and mean absolute error of the predicted ratings, on the "
                 "rating scale",
    "precision@k": "share of each user's top k that is relevant (a held-out rating at least "
                   "the threshold), averaged over the users with a relevant rating",
    "recall@k": "share of each user's relevant anime that is in their top k",
    "ndcg@k": "normalised discounted cumulative gain of the top k (1: the relevant anime "
              "first)",
    "coverage@k": "share of the catalogue recommended to anyone",
    "popularity_rank@k": "mean popularity rank of the recommended anime (1 = the most rated "
                         "in training; higher: less biased towards popular anime)",
    "-": "does not apply (a baseline that only ranks or only predicts)",
}


def explain_metrics() -> str:
    """The columns of an evaluation, one line each."""
    return "\n".join(f"{name}: {meaning}" for name, meaning in METRICS.items())


def format_evaluation(frame: pd.DataFrame) -> str:
    """An evaluation table as text, whole at any width: a line saying what was scored (from
    ``frame.attrs`` when :meth:`anirec.Recommender.evaluate` made it), then every column with
    four decimals, ``-`` where a metric does not apply. The command line, the demo and
    ``print(rec.evaluate())`` all print it so."""
    attrs = frame.attrs
    lines = []
    if "ratings" in attrs:
        skipped = attrs.get("skipped", 0)
        reasons = ", ".join(f"{count} {reason}" for reason, count in
                            attrs.get("skipped_by", {}).items() if count)
        scale = attrs.get("rating_scale")
        lines.append(
            f"{attrs['ratings']} held-out ratings scored"
            + (f", {skipped} skipped ({reasons})" if skipped else "")
            + f"; {attrs['ranked_users']} users ranked, relevant: rating >= "
            f"{attrs['threshold']:g}" + (f" on {RatingScale(*scale)}" if scale else ""))
    lines.append(frame.to_string(float_format=lambda value: f"{value:.4f}", na_rep="-",
                                 line_width=None))
    return "\n".join(lines)


class Evaluation(pd.DataFrame):
    """The table :meth:`anirec.Recommender.evaluate` returns: a DataFrame that prints whole
    (:func:`format_evaluation`) instead of hiding columns behind ``...``. Anything derived
    from it is a plain DataFrame."""

    @property
    def _constructor(self):
        return pd.DataFrame

    def __repr__(self) -> str:
        return format_evaluation(self)


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
