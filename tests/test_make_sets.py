"""``benchmarks/make_sets.py``: the public downloads become the sets ``accuracy.py`` reads.

The conversion of MovieLens 100K is checked on hand-made ``u.data``, ``u.item`` and ``u.genre``
files whose converted rows are written out below; the split rule on hand-counted users and,
when the development copies of the real sets are present in the folder beside the repository
(skipped otherwise), byte for byte against their split files.
"""

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEVELOPMENT = ROOT / "../shared/data"


@pytest.fixture(scope="module")
def make_sets():
    path = ROOT / "benchmarks" / "make_sets.py"
    if not path.is_file():
        pytest.skip("runs from a source checkout only")
    spec = importlib.util.spec_from_file_location("make_sets", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENRES = ("unknown|0\nAction|1\nAdventure|2\nAnimation|3\nChildren's|4\nComedy|5\nCrime|6\n"
          "Documentary|7\nDrama|8\nFantasy|9\nFilm-Noir|10\nHorror|11\nMusical|12\nMystery|13\n"
          "Romance|14\nSci-Fi|15\nThriller|16\nWar|17\nWestern|18\n\n")
#: Three movies: a plain one, one with a comma and an accent in its title, released after the
#: year its title says, and the "unknown" one (no date, only the unknown genre flag).
ITEMS = ("1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
         "2|Misérables, Les (1995)|14-Feb-1996||http://x|0|0|0|0|0|0|0|0|1|0|0|0|1|0|0|0|0|0|0\n"
         "3|unknown|||http://x|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n")
#: user, movie, stars, time: user 7 rates all three, user 9 two of them.
DATA = "7\t2\t4\t881250949\n9\t1\t5\t881250950\n7\t1\t3\t881250951\n9\t3\t1\t881250952\n" \
       "7\t3\t2\t881250953\n"
UNKNOWNS = ",".join(["UNKNOWN"] * 14)


def raw_movielens(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.genre").write_text(GENRES, encoding="latin-1")
    (folder / "u.item").write_text(ITEMS, encoding="latin-1")
    (folder / "u.data").write_text(DATA)
    return folder


def test_movielens_becomes_the_2023_schema(make_sets, tmp_path):
    raw = raw_movielens(tmp_path / "raw" / "ml-100k")
    make_sets.main([str(raw.parent), str(tmp_path / "sets")])
    out = tmp_path / "sets" / "ml100k"
    anime = (out / "anime-dataset-2023.csv").read_text("utf-8").splitlines()
    assert anime[0].split(",") == make_sets.ANIME_COLUMNS
    assert anime[1:] == [
        f'1,Toy Story (1995),UNKNOWN,UNKNOWN,UNKNOWN,"Animation, Children\'s, Comedy",UNKNOWN,'
        f"Movie,1.0,1995,{UNKNOWNS}",
        f'2,"Misérables, Les (1995)",UNKNOWN,UNKNOWN,UNKNOWN,"Drama, Musical",UNKNOWN,Movie,'
        f"1.0,1996,{UNKNOWNS}",
        f"3,unknown,UNKNOWN,UNKNOWN,UNKNOWN,UNKNOWN,UNKNOWN,Movie,1.0,UNKNOWN,{UNKNOWNS}"]
    assert (out / "users-score-2023.csv").read_text("utf-8").splitlines() == [
        "user_id,Username,anime_id,Anime Title,rating",
        '7,user7,2,"Misérables, Les (1995)",8', "9,user9,1,Toy Story (1995),10",
        "7,user7,1,Toy Story (1995),6", "9,user9,3,unknown,2", "7,user7,3,unknown,4"]
    # Fewer than 5 ratings each: everything trains, sorted by user and movie.
    assert (out / "split" / "train.csv").read_text("utf-8").splitlines()[1:] == [
        "7,user7,1,Toy Story (1995),6", '7,user7,2,"Misérables, Les (1995)",8',
        "7,user7,3,unknown,4", "9,user9,1,Toy Story (1995),10", "9,user9,3,unknown,2"]
    assert (out / "split" / "test.csv").read_text("utf-8").splitlines() == \
        ["user_id,Username,anime_id,Anime Title,rating"]
    scored = pd.read_csv(tmp_path / "sets" / "ml100k-scored" / "anime-dataset-2023.csv",
                         dtype=str, keep_default_na=False).set_index("anime_id")
    # Movie 1: (6 + 10) / 2 = 8, twice; movie 2: 8, once; movie 3: (4 + 2) / 2 = 3, twice.
    # Rank: by Score, then by count; Popularity: by count, ties in catalogue order.
    assert scored.loc[["1", "2", "3"], ["Score", "Scored By", "Members", "Rank",
                                        "Popularity"]].values.tolist() == [
        ["8.0", "2.0", "2", "1.0", "1"], ["8.0", "1.0", "1", "2.0", "3"],
        ["3.0", "2.0", "2", "3.0", "2"]]
    assert (tmp_path / "sets" / "ml100k-scored" / "split" / "train.csv").read_bytes() == \
        (out / "split" / "train.csv").read_bytes()


def test_the_split_rule_counted_by_hand(make_sets):
    """Users of 4, 5, 8 and 13 ratings: none, floor(1.5) = 1, floor(2.1) = 2 and
    floor(3.1) = 3 to test, the ones of the smallest hashes."""
    rows = [(user, item) for user, n in ((1, 4), (2, 5), (3, 8), (4, 13))
            for item in range(100, 100 + n)]
    scores = pd.DataFrame({"user_id": [u for u, _ in rows], "Username": "u",
                           "anime_id": [i for _, i in rows], "Anime Title": "",
                           "rating": 5})
    train, test = make_sets.split(scores.sample(frac=1.0, random_state=3))
    assert test.groupby("user_id").size().to_dict() == {2: 1, 3: 2, 4: 3}
    assert len(train) + len(test) == len(rows)
    for user, n_test in ((2, 1), (3, 2), (4, 3)):
        items = [i for u, i in rows if u == user]
        digests = sorted((hashlib.sha256(f"0:{user}:{i}".encode()).hexdigest(), i)
                         for i in items)
        assert sorted(test.loc[test["user_id"] == user, "anime_id"]) == \
            sorted(i for _, i in digests[:n_test])
    for part in (train, test):
        keys = list(zip(part["user_id"], part["anime_id"]))
        assert keys == sorted(keys)


@pytest.mark.skipif(not (DEVELOPMENT / "ml100k").is_dir(),
                    reason="the development copies of the real sets are not present")
@pytest.mark.parametrize("name", ["ml100k", "mal2020"])
def test_the_split_reproduces_the_development_split(make_sets, name):
    folder = DEVELOPMENT / name
    scores = pd.read_csv(folder / "users-score-2023.csv", keep_default_na=False)
    catalogue = pd.read_csv(folder / "anime-dataset-2023.csv", usecols=["anime_id"])
    scores = scores[scores["anime_id"].isin(catalogue["anime_id"])]
    train, test = make_sets.split(scores)
    assert train.to_csv(index=False) == (folder / "split" / "train.csv").read_text("utf-8")
    assert test.to_csv(index=False) == (folder / "split" / "test.csv").read_text("utf-8")


@pytest.mark.skipif(not (DEVELOPMENT / "ml100k").is_dir(),
                    reason="the development copies of the real sets are not present")
def test_movielens_files_rebuilt_from_the_development_copy_give_it_back(make_sets, tmp_path):
    """``u.data``, ``u.item`` and ``u.genre`` written back from the development copy of ml100k
    (release dates to the year) convert to the same bytes, ``ml100k-scored`` included."""
    source = DEVELOPMENT / "ml100k"
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "u.genre").write_text(GENRES, encoding="latin-1")
    genres = [line.split("|")[0] for line in GENRES.split()]
    anime = pd.read_csv(source / "anime-dataset-2023.csv", dtype=str, keep_default_na=False)
    lines = []
    for movie, name, listed, year in anime[["anime_id", "Name", "Genres", "Aired"]].values:
        listed = set() if listed == "UNKNOWN" else set(listed.split(", "))
        flags = ["1" if genre in listed or (genre == "unknown" and not listed) else "0"
                 for genre in genres]
        date = "" if year == "UNKNOWN" else f"01-Jan-{year}"
        lines.append("|".join([movie, name, date, "", "http://x", *flags]))
    (raw / "u.item").write_text("\n".join(lines) + "\n", encoding="latin-1")
    scores = pd.read_csv(source / "users-score-2023.csv")
    pd.DataFrame({"user": scores["user_id"], "item": scores["anime_id"],
                  "stars": scores["rating"] // 2, "time": np.int64(881250949)}).to_csv(
        raw / "u.data", sep="\t", header=False, index=False)
    make_sets.main([str(raw), str(tmp_path / "sets")])
    for name in ("ml100k/anime-dataset-2023.csv", "ml100k/users-score-2023.csv",
                 "ml100k/split/train.csv", "ml100k/split/test.csv",
                 "ml100k-scored/anime-dataset-2023.csv"):
        assert (tmp_path / "sets" / name).read_bytes() == (DEVELOPMENT / name).read_bytes(), \
            name


def test_a_folder_without_any_download_makes_nothing(make_sets, tmp_path, capsys):
    with pytest.raises(SystemExit, match="nothing to make"):
        make_sets.main([str(tmp_path), str(tmp_path / "sets")])
    assert "skipping ml100k" in capsys.readouterr().err
