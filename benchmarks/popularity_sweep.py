"""NDCG@10 against catalogue coverage and popularity bias, over the popularity weight (and
the quality weight).

    python benchmarks/popularity_sweep.py DATA/ml100k 0 0.25 0.5 0.75 1
    python benchmarks/popularity_sweep.py DATA/mal2020 0.75 --quality 0 0.5 1 2

``DATA`` is a folder of sets made by ``benchmarks/make_sets.py``. Trains the installed
``anirec`` once through its command line as ``benchmarks/accuracy.py`` does
(SET/split/train.csv, ``--test 0``, seed 0, all genres), then
ranks every user's top 10 with each popularity weight (a query-time setting: no retraining) and
scores it with accuracy.py's formulas: NDCG@10 and Recall@10 over users with a relevant held-out
rating (>= 4 stars on MovieLens, >= 8 on MyAnimeList), ranking every item the user has no
training rating for; coverage@10 (share of the catalogue's rated items recommended to anyone)
and the mean popularity rank of recommended items (1 = most training ratings). ``--quality``
lists quality weights (the anime's rating bias in the score; default: the recommender's). One
JSON line per pair of weights.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    args = sys.argv[1:]
    qualities = [None]
    if "--quality" in args:
        at = args.index("--quality")
        args, qualities = args[:at], [float(w) for w in args[at + 1:]]
    folder, weights = Path(args[0]), [float(w) for w in args[1:]] or [0, 0.5, 1]
    threshold = 4.0 if folder.name == "ml100k" else 8.0
    mult = 0.5 if folder.name == "ml100k" else 1.0
    tmp = Path(tempfile.mkdtemp(prefix="anirec-sweep-"))
    model = tmp / "model.anirec"
    subprocess.run(["anirec", "train", "--anime", folder / "anime-dataset-2023.csv",
                    "--scores", folder / "split" / "train.csv", "--test", "0", "--seed", "0",
                    "--exclude-genres", "", "--out", model, "--quiet"], check=True,
                   capture_output=True)
    from anirec import Recommender

    rec = Recommender.load(model)
    train = pd.read_csv(folder / "split" / "train.csv", usecols=["user_id", "anime_id"])
    test = pd.read_csv(folder / "split" / "test.csv", usecols=["user_id", "anime_id", "rating"])
    relevant = test[test["rating"] * mult >= threshold].groupby("user_id")["anime_id"].apply(set)
    seen = train.groupby("user_id")["anime_id"].apply(set)
    counts = train["anime_id"].value_counts()
    pop_rank = {anime: rank for rank, anime in enumerate(counts.index, start=1)}
    discount = 1.0 / np.log2(np.arange(2, 12))
    for weight, quality in ((w, q) for w in weights for q in qualities):
        rec.popularity_weight = weight
        if quality is not None:
            rec.quality_weight = quality
        recs = pd.concat(rec.iter_recommend_all(n=10))
        top = recs.sort_values(["user_id", "rank"]).groupby("user_id")["anime_id"].apply(list)
        ndcgs, recalls, already = [], [], 0
        for user, items in relevant.items():
            ranked = top.get(user, [])[:10]
            already += len(set(ranked) & seen.get(user, set()))
            hits = np.array([item in items for item in ranked], dtype=float)
            recalls.append(hits.sum() / len(items))
            ideal = discount[:min(10, len(items))].sum()
            ndcgs.append((hits * discount[:len(hits)]).sum() / ideal if len(hits) else 0.0)
        print(json.dumps({
            "set": folder.name, "popularity_weight": weight,
            "quality_weight": rec.quality_weight,
            "ndcg@10": round(float(np.mean(ndcgs)), 4),
            "recall@10": round(float(np.mean(recalls)), 4),
            "coverage@10": round(recs["anime_id"].nunique() / len(counts), 4),
            "distinct_recommended": int(recs["anime_id"].nunique()),
            "mean_popularity_rank": round(float(recs["anime_id"].map(pop_rank).mean()), 1),
            "recommended_already_rated": already}), flush=True)


if __name__ == "__main__":
    main()
