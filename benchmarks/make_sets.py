"""Make the real rating sets of ``benchmarks/accuracy.py`` from the public downloads.

    python benchmarks/make_sets.py RAW OUT
    python benchmarks/accuracy.py OUT

``RAW`` holds what you downloaded (sets whose files are missing are skipped with a note):

* MovieLens 100K (GroupLens, https://grouplens.org/datasets/movielens/100k/): ``u.data``,
  ``u.item`` and ``u.genre``, in ``RAW`` or in ``RAW/ml-100k`` (the archive's folder);
* the "Anime Recommendation Database 2020" (Kaggle, hernan4444): ``rating_complete.csv``;
* the "MyAnimeList Dataset 2023" (Kaggle, dbdmobile): ``anime-dataset-2023.csv``.

``OUT`` receives one folder per set, each in the MyAnimeList 2023 file schema with a fixed
per-user split (``anime-dataset-2023.csv``, ``users-score-2023.csv``, ``split/train.csv``,
``split/test.csv``, ``split/split_meta.json``):

* ``ml100k``: MovieLens 100K. ``rating`` = 2 x stars (2..10), ``anime_id`` = movie id,
  ``Genres`` from the genre flags (``unknown`` dropped), ``Type`` Movie, ``Episodes`` 1,
  ``Aired`` the release year; Score, Scored By, Members, Rank and Popularity are left
  ``UNKNOWN``: they would be statistics of the very ratings the set is scored on.
* ``ml100k-scored``: ml100k's ratings and split, with a catalogue whose Score (mean training
  rating), Scored By and Members (training rating count), Rank (by Score) and Popularity (by
  count) come from ml100k's training split: a catalogue scored from the ratings a model trains
  on, as MyAnimeList's is.
* ``mal2020``: the first ``--mal-rows`` (99,999) rows of ``rating_complete.csv`` (real
  MyAnimeList users, ratings 1..10) with the 2023 catalogue, of which anime_id, Name, Score,
  Genres and Episodes are kept (``--full-catalogue`` keeps every column). Ratings of anime
  missing from the catalogue stay in ``users-score-2023.csv`` but not in the split.

The split (:func:`split`): per user, the ratings ordered by ``sha256("{seed}:{user}:{item}")``,
the first ``floor(0.2 n + 0.5)`` to test and the rest to train; users with fewer than 5 ratings
keep all of them in train. Both files are sorted by user and item.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

#: The columns of the MyAnimeList 2023 anime file, in order.
ANIME_COLUMNS = ["anime_id", "Name", "English name", "Other name", "Score", "Genres",
                 "Synopsis", "Type", "Episodes", "Aired", "Premiered", "Status", "Producers",
                 "Licensors", "Studios", "Source", "Duration", "Rating", "Rank", "Popularity",
                 "Favorites", "Scored By", "Members", "Image URL"]
#: The columns of its scores file (and of the split's files).
SCORE_COLUMNS = ["user_id", "Username", "anime_id", "Anime Title", "rating"]
#: The catalogue columns kept for mal2020 unless ``--full-catalogue``.
MAL_KEPT = ["anime_id", "Name", "Score", "Genres", "Episodes"]
MISSING = "UNKNOWN"
SEED, TEST_FRACTION, MIN_RATINGS = 0, 0.2, 5
RULE = ("per user: order by sha256('{seed}:{user}:{item}'), first floor(test_frac*n+0.5) to "
        "test; users with n < min_ratings all in train")


# ---------------------------------------------------------------------------------------------
# The split


def split(scores: pd.DataFrame, seed: int = SEED, test_fraction: float = TEST_FRACTION,
          min_ratings: int = MIN_RATINGS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, test)`` of a scores table (the columns of :data:`SCORE_COLUMNS`), each sorted
    by user and item: per user, the ratings ordered by ``sha256("{seed}:{user}:{item}")``, the
    first ``floor(test_fraction n + 0.5)`` to test; users with fewer than ``min_ratings``
    ratings keep all of them in train."""
    users = scores["user_id"].astype(np.int64)
    items = scores["anime_id"].astype(np.int64)
    keys = [hashlib.sha256(f"{seed}:{user}:{item}".encode()).hexdigest()
            for user, item in zip(users.tolist(), items.tolist())]
    ordered = scores.assign(_user=users, _item=items, _key=keys).sort_values(
        ["_user", "_key"], kind="mergesort")
    count = ordered.groupby("_user")["_user"].transform("size").to_numpy()
    position = ordered.groupby("_user").cumcount().to_numpy()
    to_test = np.floor(test_fraction * count + 0.5)
    test = (position < to_test) & (count >= min_ratings)
    parts = []
    for mask in (~test, test):
        part = ordered[mask].sort_values(["_user", "_item"], kind="mergesort")
        parts.append(part[SCORE_COLUMNS].reset_index(drop=True))
    return parts[0], parts[1]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_split(scores: pd.DataFrame, folder: Path, source: str) -> dict:
    """Write ``folder/split/{train,test}.csv`` and ``split_meta.json``; returns the meta."""
    train, test = split(scores)
    target = folder / "split"
    target.mkdir(parents=True, exist_ok=True)
    train.to_csv(target / "train.csv", index=False)
    test.to_csv(target / "test.csv", index=False)
    meta = {"source": source, "seed": SEED, "test_frac": TEST_FRACTION,
            "min_ratings": MIN_RATINGS, "rule": RULE, "n_ratings": len(scores),
            "n_train": len(train), "n_test": len(test),
            "n_users": int(scores["user_id"].nunique()),
            "n_test_users": int(test["user_id"].nunique()),
            "train_sha256": _digest(target / "train.csv"),
            "test_sha256": _digest(target / "test.csv")}
    (target / "split_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


# ---------------------------------------------------------------------------------------------
# MovieLens 100K


def _ml100k_files(raw: Path) -> Path | None:
    for folder in (raw, raw / "ml-100k"):
        if all((folder / name).is_file() for name in ("u.data", "u.item", "u.genre")):
            return folder
    return None


def _catalogue(columns: dict) -> pd.DataFrame:
    """An anime file of the 2023 schema: the given columns, every other one ``UNKNOWN``."""
    n = len(next(iter(columns.values())))
    return pd.DataFrame({name: columns.get(name, [MISSING] * n) for name in ANIME_COLUMNS})


def _year(release: str) -> str:
    """The year of a MovieLens release date (``01-Jan-1995``), or ``UNKNOWN``."""
    return release.rsplit("-", 1)[-1] if release.strip() else MISSING


def movielens(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(catalogue, scores)`` of MovieLens 100K in the 2023 schema (ratings doubled)."""
    genres = [line.split("|")[0] for line in
              (folder / "u.genre").read_text(encoding="latin-1").splitlines() if line.strip()]
    items = pd.read_csv(folder / "u.item", sep="|", header=None, encoding="latin-1",
                        dtype=str, keep_default_na=False,
                        names=["id", "title", "release", "video", "url", *genres])
    flags = items[genres].astype(int).to_numpy()
    names = [", ".join(g for g, on in zip(genres, row) if on and g != "unknown") or MISSING
             for row in flags]
    catalogue = _catalogue({
        "anime_id": items["id"].astype(np.int64), "Name": items["title"], "Genres": names,
        "Type": ["Movie"] * len(items), "Episodes": np.ones(len(items)),
        "Aired": [_year(date) for date in items["release"]]})
    ratings = pd.read_csv(folder / "u.data", sep="\t", header=None,
                          names=["user", "item", "stars", "time"], dtype=np.int64)
    titles = dict(zip(catalogue["anime_id"], catalogue["Name"]))
    scores = pd.DataFrame({"user_id": ratings["user"],
                           "Username": "user" + ratings["user"].astype(str),
                           "anime_id": ratings["item"],
                           "Anime Title": ratings["item"].map(titles).fillna(""),
                           "rating": 2 * ratings["stars"]})
    return catalogue, scores


def scored(catalogue: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """``catalogue`` with Score, Scored By, Members, Rank and Popularity computed from the
    training ratings ``train``: the mean rating (two decimals) and the count; Rank by the
    mean rounded to two decimals, then by count, then by id (anime without a training rating
    have none); Popularity by count, ties in catalogue order."""
    stats = train.groupby("anime_id")["rating"].agg(["mean", "size"])
    ids = catalogue["anime_id"].astype(np.int64)
    mean = ids.map(stats["mean"])
    count = ids.map(stats["size"]).fillna(0).astype(np.int64)
    rated = stats.assign(key=stats["mean"].round(2), id=stats.index).sort_values(
        ["key", "size", "id"], ascending=[False, False, True], kind="mergesort")
    rank = pd.Series(np.arange(1, len(rated) + 1, dtype=np.float64), index=rated.index)
    out = catalogue.copy()
    out["Score"] = [float(f"{value:.2f}") for value in mean]  # NaN: written UNKNOWN
    out["Scored By"] = ids.map(stats["size"].astype(np.float64))
    out["Members"] = count
    out["Rank"] = ids.map(rank)
    out["Popularity"] = count.rank(ascending=False, method="first").astype(np.int64)
    return out


def make_ml100k(raw: Path, out: Path) -> list[str]:
    folder = _ml100k_files(raw)
    if folder is None:
        return []
    catalogue, scores = movielens(folder)
    target = out / "ml100k"
    target.mkdir(parents=True, exist_ok=True)
    write_csv(catalogue, target / "anime-dataset-2023.csv")
    scores.to_csv(target / "users-score-2023.csv", index=False)
    write_split(scores, target, "ml100k/users-score-2023.csv (MovieLens 100K u.data)")
    train = pd.read_csv(target / "split" / "train.csv")
    both = out / "ml100k-scored"
    (both / "split").mkdir(parents=True, exist_ok=True)
    write_csv(scored(catalogue, train), both / "anime-dataset-2023.csv")
    for name in ("train.csv", "test.csv", "split_meta.json"):
        (both / "split" / name).write_bytes((target / "split" / name).read_bytes())
    return ["ml100k", "ml100k-scored"]


# ---------------------------------------------------------------------------------------------
# MyAnimeList 2020 ratings with the 2023 catalogue


def mal2020(ratings_csv: Path, anime_csv: Path, rows: int, full_catalogue: bool = False):
    """``(catalogue, scores, in_catalogue)``: the 2023 anime file (its :data:`MAL_KEPT`
    columns only unless ``full_catalogue``), the first ``rows`` ratings in the 2023 schema,
    and which of them name an anime of the catalogue."""
    anime = pd.read_csv(anime_csv, dtype=str, keep_default_na=False)
    missing = [name for name in ANIME_COLUMNS if name not in anime.columns]
    if missing:
        raise SystemExit(f"{anime_csv}: no column {missing[0]!r}: not the 2023 anime file")
    kept = ANIME_COLUMNS if full_catalogue else MAL_KEPT
    catalogue = _catalogue({name: anime[name] for name in kept})
    ratings = pd.read_csv(ratings_csv, nrows=rows, usecols=["user_id", "anime_id", "rating"],
                          dtype=np.int64)
    titles = dict(zip(anime["anime_id"].astype(np.int64), anime["Name"]))
    in_catalogue = ratings["anime_id"].isin(titles).to_numpy()
    scores = pd.DataFrame({"user_id": ratings["user_id"],
                           "Username": "user" + ratings["user_id"].astype(str),
                           "anime_id": ratings["anime_id"],
                           "Anime Title": ratings["anime_id"].map(titles).fillna(""),
                           "rating": ratings["rating"]})
    return catalogue, scores, in_catalogue


def make_mal2020(raw: Path, out: Path, rows: int, full_catalogue: bool) -> list[str]:
    ratings_csv, anime_csv = raw / "rating_complete.csv", raw / "anime-dataset-2023.csv"
    if not (ratings_csv.is_file() and anime_csv.is_file()):
        return []
    catalogue, scores, in_catalogue = mal2020(ratings_csv, anime_csv, rows, full_catalogue)
    target = out / "mal2020"
    target.mkdir(parents=True, exist_ok=True)
    write_csv(catalogue, target / "anime-dataset-2023.csv")
    scores.to_csv(target / "users-score-2023.csv", index=False)
    write_split(scores[in_catalogue], target,
                f"mal2020/users-score-2023.csv, ratings of anime in the catalogue only "
                f"({int(in_catalogue.sum()):,} of {len(scores):,})")
    return ["mal2020"]


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """A table as the 2023 files are written: missing values as ``UNKNOWN``."""
    frame.to_csv(path, index=False, na_rep=MISSING)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", type=Path, help="folder of the downloads (see above)")
    parser.add_argument("out", type=Path, help="folder to write the sets to")
    parser.add_argument("--mal-rows", type=int, default=99_999,
                        help="rows of rating_complete.csv to use (default: 99,999)")
    parser.add_argument("--full-catalogue", action="store_true",
                        help="keep every column of the 2023 anime file for mal2020")
    args = parser.parse_args(argv)
    if not args.raw.is_dir():
        parser.error(f"{args.raw} is not a folder")
    made = make_ml100k(args.raw, args.out)
    if not made:
        print(f"skipping ml100k: no u.data, u.item and u.genre in {args.raw} or "
              f"{args.raw / 'ml-100k'}", file=sys.stderr)
    mal = make_mal2020(args.raw, args.out, args.mal_rows, args.full_catalogue)
    if not mal:
        print(f"skipping mal2020: it needs rating_complete.csv and anime-dataset-2023.csv "
              f"in {args.raw}", file=sys.stderr)
    for name in made + mal:
        meta = json.loads((args.out / name / "split" / "split_meta.json").read_text())
        print(f"{args.out / name}: {meta['n_train']:,} training and {meta['n_test']:,} test "
              f"ratings of {meta['n_users']:,} users")
    if not made + mal:
        raise SystemExit("nothing to make")


if __name__ == "__main__":
    main()
