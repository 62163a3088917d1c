"""Rating and ranking accuracy on real rating sets and the synthetic demo set, mean and spread
over seeds, through the installed ``anirec`` command line, in one command.

    python benchmarks/accuracy.py DATA                       # defaults, every set, seeds 0 1 2
    python benchmarks/accuracy.py DATA --sets ml100k --seeds 0 --config "emb16=embedding_dim=16"

``DATA`` is a folder of sets in the MyAnimeList 2023 file schema, each a folder holding
``anime-dataset-2023.csv`` and ``split/train.csv``, ``split/test.csv`` (columns ``user_id,
anime_id, rating``):

* ``ml100k``: MovieLens 100K, ratings doubled to 2..10 (reported in stars), Score blank;
* ``ml100k-scored``: the same ratings and split (``ml100k/split``), with a catalogue whose
  Score, Scored By and Members are computed from the training split;
* ``mal2020``: MyAnimeList ratings of 2020 with the 2023 catalogue (Score known).

Each run trains ``anirec train`` on ``split/train.csv`` (``--test 0``, every genre kept), predicts
every pair of ``split/test.csv`` with ``anirec predict`` (RMSE on the set's reported scale) and
ranks with ``anirec recommend --all-users --n 10``: Recall@10 and NDCG@10 over the users with a
relevant held-out rating (at least 4 stars, or 8 of 10), ranking every catalogue item the user
has no training rating for; the number of distinct anime recommended and the share of lists
holding the most recommended one. ``synthetic`` fits a :class:`anirec.Recommender` on the
embedded demo data and reads its test split's evaluation. A configuration is
``NAME=key=value,key=value`` of ``anirec train`` options (``biases=false`` for ``--no-biases``);
the key ``anirec=PATH`` runs another installation's ``anirec`` executable (and the Python beside
it), e.g. an earlier release for a baseline. Sets absent from ``DATA`` are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

#: Set -> (multiplier to the reported scale, relevance threshold on it, folder of its split).
REAL = {"ml100k": (0.5, 4.0, "ml100k"), "mal2020": (1.0, 8.0, "mal2020"),
        "ml100k-scored": (0.5, 4.0, "ml100k")}
METRICS = ("rmse", "ndcg@10", "distinct", "top_share")
K = 10


def parse_value(text: str):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_config(text: str) -> tuple[str, dict]:
    name, _, options = text.partition("=")
    pairs = [item.split("=", 1) for item in options.split(",") if item]
    return name, {key: parse_value(value) for key, value in pairs}


def cli_options(options: dict) -> list[str]:
    out = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is False:
            out.append("--no-" + key.replace("_", "-"))
        else:
            out += [flag, str(value)]
    return out


def _run(command: list) -> None:
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command[:2]))} failed: "
                           f"{done.stderr.strip()[-500:]}")


def ranking(recs: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame,
            threshold: float) -> dict:
    """Recall and NDCG at ``K`` over the users with a relevant held-out rating, and how
    concentrated the lists are."""
    top = recs.sort_values(["user_id", "rank"]).groupby("user_id")["anime_id"].apply(list)
    relevant = test[test["rating"] >= threshold].groupby("user_id")["anime_id"].apply(set)
    seen = train.groupby("user_id")["anime_id"].apply(set)
    discount = 1.0 / np.log2(np.arange(2, K + 2))
    recalls, ndcgs = [], []
    for user, items in relevant.items():
        ranked = top.get(user, [])[:K]
        if set(ranked) & seen.get(user, set()):
            raise AssertionError(f"user {user} was recommended an anime rated in training")
        hits = np.array([item in items for item in ranked], dtype=float)
        recalls.append(hits.sum() / len(items))
        ideal = discount[:min(K, len(items))].sum()
        ndcgs.append((hits * discount[:hits.shape[0]]).sum() / ideal)
    counts = recs[recs["rank"] <= K]["anime_id"].value_counts()
    return {"recall@10": float(np.mean(recalls)), "ndcg@10": float(np.mean(ndcgs)),
            "distinct": int(counts.size),
            "top_share": float(counts.iloc[0]) / max(top.size, 1)}


def run_real(data: Path, name: str, options: dict, seed: int) -> dict:
    options = dict(options)
    exe = options.pop("anirec", "anirec")
    multiplier, threshold, split_of = REAL[name]
    split = data / split_of / "split"
    train = pd.read_csv(split / "train.csv", usecols=["user_id", "anime_id", "rating"])
    test = pd.read_csv(split / "test.csv", usecols=["user_id", "anime_id", "rating"])
    with tempfile.TemporaryDirectory(prefix=f"anirec-{name}-") as tmp:
        tmp = Path(tmp)
        _run([exe, "train", "--anime", data / name / "anime-dataset-2023.csv",
              "--scores", split / "train.csv", "--test", "0", "--seed", seed,
              "--exclude-genres", "", "--out", tmp / "model.anirec", "--quiet",
              *cli_options(options)])
        test[["user_id", "anime_id"]].to_csv(tmp / "pairs.csv", index=False)
        _run([exe, "predict", "--model", tmp / "model.anirec", "--pairs", tmp / "pairs.csv",
              "--out", tmp / "pred.csv"])
        _run([exe, "recommend", "--model", tmp / "model.anirec", "--all-users", "--n", K,
              "--out", tmp / "recs.csv"])
        predicted = test.merge(pd.read_csv(tmp / "pred.csv"), on=["user_id", "anime_id"],
                               how="left")["predicted_rating"]
        recs = pd.read_csv(tmp / "recs.csv")
    if predicted.isna().any():
        raise AssertionError(f"{name}: {int(predicted.isna().sum())} pairs without prediction")
    error = (predicted - test["rating"]) * multiplier
    result = {"rmse": float(np.sqrt((error ** 2).mean()))}
    test = test.assign(rating=test["rating"] * multiplier)
    return {**result, **ranking(recs, train, test, threshold)}


SYNTHETIC = """
import json, sys
import anirec
options = json.loads(sys.argv[1])
data = anirec.datasets.load_demo()
rec = anirec.Recommender(seed=int(sys.argv[2]), **options).fit(data)
row = rec.evaluate().loc["two-tower"]
recs = rec.recommend(rec.user_ids, n=10)
counts = recs["anime_id"].value_counts()
print(json.dumps({"rmse": float(row["rmse"]), "ndcg@10": float(row["ndcg@10"]),
                  "distinct": int(counts.size),
                  "top_share": float(counts.iloc[0]) / rec.user_ids.shape[0]}))
"""


def run_synthetic(options: dict, seed: int) -> dict:
    options = dict(options)
    python = str(Path(options.pop("anirec")).with_name("python")) if "anirec" in options \
        else sys.executable
    done = subprocess.run([python, "-c", SYNTHETIC, json.dumps(options), str(seed)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"synthetic run failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(data: Path, job) -> tuple:
    config, options, name, seed = job
    result = run_real(data, name, options, seed) if name in REAL else \
        run_synthetic(options, seed)
    shown = {key: round(value, 4) for key, value in result.items()}
    print(f"{config:>20} {name:>13} seed {seed}: {shown}", file=sys.stderr, flush=True)
    return config, name, seed, result


def table(results: list, configs: list[str], sets: list[str]) -> str:
    """One row per configuration and set: the mean and spread (population std) over seeds."""
    lines = ["| configuration | set | RMSE | NDCG@10 | distinct anime | top anime's share |",
             "| --- | --- | --- | --- | --- | --- |"]
    for config in configs:
        for name in sets:
            rows = [r for c, n, _, r in results if c == config and n == name]
            cells = []
            for metric in METRICS:
                values = np.array([r[metric] for r in rows], dtype=float)
                digits = 0 if metric == "distinct" else 3 if metric == "top_share" else 4
                cells.append(f"{values.mean():.{digits}f} ± {values.std():.{digits}f}")
            lines.append(f"| {config} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder of the real sets (see the docstring)")
    parser.add_argument("--sets", nargs="+", default=[*REAL, "synthetic"],
                        choices=[*REAL, "synthetic"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--config", action="append", default=None,
                        help="NAME=key=value,... (repeatable; default: the defaults)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    args = parser.parse_args(argv)
    configs = dict(map(parse_config, args.config)) if args.config else {"defaults": {}}
    sets = []
    for name in args.sets:
        present = name not in REAL or (args.data / name / "anime-dataset-2023.csv").is_file()
        if present:
            sets.append(name)
        else:
            print(f"skipping {name}: {args.data / name} holds no anime-dataset-2023.csv",
                  file=sys.stderr)
    jobs = [(config, options, name, seed) for config, options in configs.items()
            for name in sets for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda job: run(args.data, job), jobs))
    print(table(results, list(configs), sets))


if __name__ == "__main__":
    main()
