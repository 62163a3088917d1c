"""Fold-in quality on real rating sets: people the model never saw, folded in from their own
ratings, against the baselines and against the same people trained in; and how faithful the
reasons of the explained recommendations are.

    python benchmarks/foldin.py DATA                        # ml100k and mal2020, seed 0
    python benchmarks/foldin.py DATA --sets ml100k --seeds 0 1 --option embedding_dim=0

``DATA`` is a folder of sets in the layout ``benchmarks/accuracy.py`` documents (each set a
folder holding ``anime-dataset-2023.csv`` and ``split/train.csv``, ``split/test.csv``); the
ratings of both parts of the split are pooled. Per set and seed:

* 20% of the users with at least 5 ratings are held out entirely; each held-out user's ratings
  are cut at random into 80% *known* and 20% *hidden*;
* **fold-in**: a :class:`anirec.Recommender` (defaults, ``test=0``, every genre kept) is trained
  on the other users; each held-out user is folded in from their known ratings
  (``recommend_for_ratings``, ``predict_for_ratings``) and scored on their hidden ones:
  RMSE over every hidden rating, NDCG@10 over the users with a relevant hidden rating (at
  least 4 stars, or 8 of 10), ranking every catalogue anime not in their known ratings;
* **popularity** (the training ratings' counts) and **bias, folded in** (``mu + b_u + b_i``
  of the bias baseline, ``b_u`` solved from the known ratings given the item biases) on the
  same model's data;
* **trained in**: a second recommender trained on the other users *and* the held-out users'
  known ratings, recommending (``recommend``) and predicting for them; and its bias
  baseline (**bias, trained in**).

The bar: fold-in NDCG@10 at least 1.2 x popularity's and at least 0.9 x trained-in's, and
fold-in RMSE below the bias baseline's (folded in and trained in).

Then, on the fold-in model, the reasons of each held-out user's top 10 (``explain=True``):
the share of recommendations whose first reason anime, removed from the known ratings before
folding in again, lowers the recommendation's retrieval score, for the reasons anirec gives
(the anime of largest support) and for the rule of the rated-above-mean anime nearest in the
item tower's space; and the top-10 overlap between a trained user's own recommendations and
those of the same user folded in from their training ratings (on the trained-in model).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

#: Set -> (multiplier to the reported scale, relevance threshold on the ratings' own scale).
SETS = {"ml100k": (0.5, 8.0), "mal2020": (1.0, 8.0)}
K = 10
HOLD_OUT = 0.2
HIDDEN = 0.2
MIN_RATINGS = 5


def read_set(folder: Path) -> pd.DataFrame:
    """Every rating of a set (both parts of its split), in the scores file's columns."""
    parts = [pd.read_csv(folder / "split" / name) for name in ("train.csv", "test.csv")]
    return pd.concat(parts, ignore_index=True)


def hold_out(ratings: pd.DataFrame, seed: int):
    """``(others, known, hidden)``: the ratings of the users not held out, and the known and
    hidden ratings of the held-out users."""
    rng = np.random.default_rng(seed)
    counts = ratings["user_id"].value_counts()
    eligible = np.sort(counts.index[counts >= MIN_RATINGS].to_numpy())
    held = rng.choice(eligible, size=int(round(HOLD_OUT * eligible.shape[0])), replace=False)
    mask = ratings["user_id"].isin(held).to_numpy()
    mine = ratings[mask].reset_index(drop=True)
    hidden = np.zeros(len(mine), dtype=bool)
    for _, rows in mine.groupby("user_id").indices.items():
        chosen = rng.choice(rows, size=max(1, int(round(HIDDEN * rows.shape[0]))),
                            replace=False)
        hidden[chosen] = True
    return ratings[~mask], mine[~hidden], mine[hidden]


def train(anime: Path, scores: pd.DataFrame, seed: int, options: dict):
    import anirec

    with tempfile.TemporaryDirectory(prefix="anirec-foldin-") as tmp:
        path = Path(tmp) / "users-score-2023.csv"
        scores.to_csv(path, index=False)
        data = anirec.load_mal(anime, path, exclude_genres=())
    return anirec.Recommender(seed=seed, test=0.0, **options).fit(data)


def ndcg(rec, lists: list[np.ndarray], hidden: pd.DataFrame, users: np.ndarray,
         threshold: float) -> float:
    """Mean NDCG@10 of the ranked catalogue rows ``lists`` (one per user of ``users``) over
    the users with a relevant hidden rating."""
    from anirec.metrics import ranking_metrics, relevant_sets

    position = {user: k for k, user in enumerate(users.tolist())}
    rows, known = rec._anime.find(hidden["anime_id"].to_numpy())
    owners = np.array([position[u] for u in hidden["user_id"].tolist()])
    rel_users, indptr, items = relevant_sets(owners[known], rows[known],
                                             hidden["rating"].to_numpy()[known], threshold)
    top = np.full((rel_users.shape[0], K), -1, dtype=np.int64)
    for k, user in enumerate(rel_users.tolist()):
        top[k, :lists[user].shape[0]] = lists[user][:K]
    return float(ranking_metrics(top, indptr, items, rec.anime_ids.shape[0])["ndcg"])


def popularity_lists(rec, known_rows: list[np.ndarray]) -> list[np.ndarray]:
    order = np.argsort(-np.asarray(rec.baselines[3].item_scores), kind="stable")
    return [order[~np.isin(order, rows)][:K] for rows in known_rows]


def retrieval_score(rec, folded, row: int) -> float:
    query = rec._retrieval_queries(folded.vector).astype(np.float64)[0]
    return float(query @ rec.retrieval_items[row].astype(np.float64))


def faithfulness(rec, person: dict, frame: pd.DataFrame) -> dict:
    """For each recommendation of ``frame`` (explained): does removing the first reason (ours,
    and the nearest rated-above-mean anime in item space) lower its retrieval score?"""
    from anirec import foldin

    folded = foldin.fold_in(rec, person)
    ids = rec.anime_ids
    mean = folded.ratings.mean()
    candidates = folded.items[folded.ratings > mean]
    counts = {"recommendations": 0, "ours_named": 0, "ours_lower": 0, "nearest_lower": 0,
              "nearest_named": 0}
    for k, row in enumerate(rec.anime_rows(frame["anime_id"].to_numpy()).tolist()):
        counts["recommendations"] += 1
        base = retrieval_score(rec, folded, row)
        reasons = frame.attrs["because"][k]["anime_rows"]
        picks = {}
        if reasons:
            picks["ours"] = reasons[0]
        if candidates.size:
            near = rec.item_vectors[candidates].astype(np.float64) @ \
                rec.item_vectors[row].astype(np.float64)
            picks["nearest"] = int(candidates[np.argmax(near)])
        for rule, first in picks.items():
            without = {a: r for a, r in person.items() if a != int(ids[first])}
            after = retrieval_score(rec, foldin.fold_in(rec, without), row)
            counts[f"{rule}_named"] += 1
            counts[f"{rule}_lower"] += int(after < base)
    return counts


def run(data: Path, name: str, seed: int, options: dict) -> dict:
    from anirec.model.biases import Biases, user_bias

    multiplier, threshold = SETS[name]
    anime = data / name / "anime-dataset-2023.csv"
    others, known, hidden = hold_out(read_set(data / name), seed)
    started = time.perf_counter()
    folding = train(anime, others, seed, options)
    trained = train(anime, pd.concat([others, known]), seed, options)
    seconds = time.perf_counter() - started
    users = np.sort(known["user_id"].unique())
    by_user = {u: part for u, part in known.groupby("user_id")}
    hidden_by_user = {u: part for u, part in hidden.groupby("user_id")}
    lists = {"fold-in": [], "popularity": [], "trained in": []}
    predicted = {"fold-in": [], "bias, folded in": [], "trained in": [],
                 "bias, trained in": []}
    bias_model = folding.baselines[2]
    biases = Biases(bias_model.mean, bias_model.user_bias, bias_model.item_scores)
    trained_bias = trained.baselines[2]
    faithful = {}
    overlap = []
    known_rows = []
    for user in users.tolist():
        mine, held = by_user[user], hidden_by_user[user]
        person = dict(zip(mine["anime_id"].tolist(), mine["rating"].tolist()))
        anime_ids = held["anime_id"].to_numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = folding.recommend_for_ratings(person, n=K, explain=True)
            predicted["fold-in"].append(folding.predict_for_ratings(person, anime_ids))
            folded_trained = trained.recommend_for_ratings(person, n=K)
        for key, value in faithfulness(folding, person, frame).items():
            faithful[key] = faithful.get(key, 0) + value
        lists["fold-in"].append(folding.anime_rows(frame["anime_id"].to_numpy()))
        rows, found = folding._anime.find(mine["anime_id"].to_numpy())
        known_rows.append(rows[found])
        b = user_bias(biases, rows[found], mine["rating"].to_numpy()[found], reg=5.0)
        target, ok = folding._anime.find(anime_ids)
        bias_pred = np.full(anime_ids.shape[0], np.nan)
        bias_pred[ok] = biases.mean + b + biases.item[target[ok]]
        predicted["bias, folded in"].append(bias_pred)
        own = trained.recommend(user, n=K)
        lists["trained in"].append(trained.anime_rows(own["anime_id"].to_numpy()))
        overlap.append(len(set(own["anime_id"]) & set(folded_trained["anime_id"])))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predicted["trained in"].append(trained.predict([user] * anime_ids.shape[0],
                                                           anime_ids))
        row = trained.user_rows(user)[0]
        t_rows, t_ok = trained._anime.find(anime_ids)
        t_pred = np.full(anime_ids.shape[0], np.nan)
        t_pred[t_ok] = trained_bias.predict(np.full(int(t_ok.sum()), row), t_rows[t_ok])
        predicted["bias, trained in"].append(t_pred)
    lists["popularity"] = popularity_lists(folding, known_rows)
    truth = np.concatenate([hidden_by_user[u]["rating"].to_numpy() for u in users.tolist()])
    hidden_sorted = pd.concat([hidden_by_user[u] for u in users.tolist()])
    table = {}
    for method in ("fold-in", "trained in", "popularity", "bias, folded in",
                   "bias, trained in"):
        entry = {}
        if method in predicted:
            guess = np.concatenate(predicted[method])
            scored = np.isfinite(guess)
            entry["rmse"] = float(np.sqrt(np.mean(((guess - truth)[scored] * multiplier)
                                                  ** 2)))
            entry["scored"] = int(scored.sum())
        if method in lists:
            rec = trained if method == "trained in" else folding
            entry["ndcg@10"] = ndcg(rec, lists[method], hidden_sorted, users, threshold)
        table[method] = entry
    return {"table": table, "faithful": faithful, "overlap": np.array(overlap),
            "users": int(users.shape[0]), "hidden": int(truth.shape[0]), "seconds": seconds}


def report(name: str, seed: int, result: dict) -> str:
    table = result["table"]
    lines = [f"\n{name}, seed {seed}: {result['users']} held-out users, {result['hidden']} "
             f"hidden ratings (two fits: {result['seconds']:.0f} s)", "",
             "| method | RMSE | NDCG@10 |", "| --- | --- | --- |"]
    for method, entry in table.items():
        cells = [f"{entry[key]:.4f}" if key in entry else "-" for key in ("rmse", "ndcg@10")]
        lines.append(f"| {method} | {' | '.join(cells)} |")
    fold = table["fold-in"]
    checks = [
        ("NDCG@10 >= 1.2 x popularity",
         fold["ndcg@10"] / table["popularity"]["ndcg@10"], 1.2),
        ("NDCG@10 >= 0.9 x trained in", fold["ndcg@10"] / table["trained in"]["ndcg@10"], 0.9),
    ]
    lines.append("")
    for label, ratio, bar in checks:
        lines.append(f"{label}: ratio {ratio:.3f} ({'met' if ratio >= bar else 'NOT met'})")
    for other in ("bias, folded in", "bias, trained in"):
        ok = fold["rmse"] < table[other]["rmse"]
        lines.append(f"RMSE below {other}: {fold['rmse']:.4f} vs {table[other]['rmse']:.4f} "
                     f"({'met' if ok else 'NOT met'})")
    f = result["faithful"]
    lines.append(
        f"reasons, first anime removed lowers the score: anirec's "
        f"{f['ours_lower']}/{f['ours_named']} = {f['ours_lower'] / max(f['ours_named'], 1):.3f} "
        f"(named for {f['ours_named']}/{f['recommendations']} recommendations); nearest in "
        f"item space {f['nearest_lower']}/{f['nearest_named']} = "
        f"{f['nearest_lower'] / max(f['nearest_named'], 1):.3f}")
    overlap = result["overlap"]
    lines.append(f"top-10 overlap, trained user vs the same ratings folded in: mean "
                 f"{overlap.mean():.2f}, min {overlap.min()}, 10th percentile "
                 f"{np.percentile(overlap, 10):.1f}")
    return "\n".join(lines)


def parse_option(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    for kind in (int, float):
        try:
            return key, kind(value)
        except ValueError:
            pass
    return key, {"true": True, "false": False}.get(value.lower(), value)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder of the real sets (see the docstring)")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a Recommender option for both models, e.g. embedding_dim=0 "
                             "(repeatable; default: the defaults)")
    args = parser.parse_args(argv)
    options = dict(parse_option(text) for text in args.option)
    for name in args.sets:
        if not (args.data / name / "split").is_dir():
            print(f"{name}: not in {args.data}, skipped", file=sys.stderr)
            continue
        for seed in args.seeds:
            print(report(name, seed, run(args.data, name, seed, options)), flush=True)


if __name__ == "__main__":
    main()
