"""Own data: a ratings table with any column names and scale, the catalogue optional."""

import numpy as np
import pandas as pd
import pytest

import anirec
from anirec import Recommender
from anirec.cli import main
from anirec.data import write_synthetic
from anirec.errors import DataError


@pytest.fixture(scope="module")
def stars():
    """Half-star ratings (0.5..5) under MovieLens-like column names, with planted item
    quality so that there is something to learn."""
    rng = np.random.default_rng(7)
    n = 12_000
    frame = pd.DataFrame({"userId": rng.integers(1, 250, n) * 3,
                          "movieId": rng.integers(1, 160, n) * 7})
    quality = (frame["movieId"] // 7 % 9) / 4.0
    frame["stars"] = np.clip(np.round((rng.normal(2.2, 0.7, n) + quality) * 2) / 2, 0.5, 5)
    return frame


def test_columns_scale_duplicates_and_dropped_rows(stars):
    frame = stars.head(50).copy()
    frame.loc[len(frame)] = [999, 7, 7.5]            # outside the scale
    frame.loc[len(frame)] = [999, 14, np.nan]        # missing
    frame.loc[len(frame)] = [frame.iloc[0, 0], frame.iloc[0, 1], 0.5]  # repeated pair: last wins
    data = anirec.load_ratings(frame, user="userId", item="movieId", rating="stars",
                               rating_scale=(0.5, 5))
    assert data.rating_scale == (0.5, 5.0)
    assert data.summary.ratings_invalid == 2 and data.summary.ratings_duplicate >= 1
    ratings = data.ratings
    users = ratings.user_ids[ratings.users]
    anime = data.catalogue.anime_ids[ratings.items]
    first = (users == frame.iloc[0, 0]) & (anime == frame.iloc[0, 1])
    assert first.sum() == 1 and ratings.ratings[first][0] == 0.5
    assert set(np.asarray(ratings.ratings).tolist()) <= set(np.arange(1, 11) / 2)
    assert data.catalogue.genres == () and data.catalogue.n_items == len(set(anime))


def test_errors_name_the_column_or_row(stars, tmp_path):
    with pytest.raises(DataError, match=r"missing column\(s\) \['user_id', 'anime_id', 'rating'\] \(found \['userId'"):
        anirec.load_ratings(stars)
    bad = stars.head(5).astype(object)
    bad.iloc[3, 1] = "x12"
    with pytest.raises(DataError, match="column 'movieId', row 4"):
        anirec.load_ratings(bad, user="userId", item="movieId", rating="stars")
    with pytest.raises(DataError, match="none.csv: file not found"):
        anirec.load_ratings(tmp_path / "none.csv")
    with pytest.raises(DataError, match="low < high"):
        anirec.load_ratings(stars, user="userId", item="movieId", rating="stars",
                            rating_scale=(5, 5))


def test_fit_keeps_the_scale_everywhere(stars):
    data = anirec.load_ratings(stars, user="userId", item="movieId", rating="stars",
                               rating_scale=(0.5, 5))
    rec = Recommender(layers=(16,), epochs=3, seed=0).fit(data)
    assert rec.rating_scale == (0.5, 5.0)
    recs = rec.recommend(rec.user_ids[:20], n=5)
    assert recs["predicted_rating"].between(0.5, 5).all()
    assert recs["predicted_rating"].max() > 2.5  # not squashed to the bottom of 1..10
    test = rec.split_frames()["test"]
    assert set(test["rating"]) <= set(np.arange(1, 11) / 2) and (test["rating"] % 1 == 0.5).any()
    report = rec.evaluate()
    assert report.attrs["threshold"] == pytest.approx(3.875)  # 4 and up in half stars
    assert report.loc["two-tower", "rmse"] < report.loc["global mean", "rmse"] * 1.5


def test_fit_takes_a_plain_table():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"user_id": rng.integers(1, 100, 3000),
                          "anime_id": rng.integers(1, 60, 3000),
                          "rating": rng.integers(1, 6, 3000)})
    rec = Recommender(layers=(8,), epochs=1).fit(frame)
    assert rec.rating_scale == (1.0, 5.0)
    assert rec.predict([int(rec.user_ids[0])], [int(rec.anime_ids[0])])[0] <= 5


def test_with_a_catalogue_the_genres_come_in(tmp_path):
    anime, scores = write_synthetic(tmp_path, n_users=120, n_anime=80, n_ratings=2000, seed=5)
    table = pd.read_csv(scores, usecols=["user_id", "anime_id", "rating"]).rename(
        columns={"user_id": "who", "anime_id": "what", "rating": "score"})
    data = anirec.load_ratings(table, user="who", item="what", rating="score",
                               rating_scale=(1, 10), catalogue=anime)
    assert len(data.catalogue.genres) > 5
    assert "Ecchi" not in data.catalogue.genres
    assert data.summary.ratings_excluded_anime > 0  # ratings of excluded-genre anime


def test_command_line_without_an_anime_file(stars, tmp_path, capsys):
    path = tmp_path / "stars.csv"
    stars.to_csv(path, index=False)
    model, split = tmp_path / "m.anirec", tmp_path / "split"
    assert main(["train", "--scores", str(path), "--user-col", "userId", "--item-col",
                 "movieId", "--rating-col", "stars", "--rating-scale", "0.5,5", "--out",
                 str(model), "--layers", "16", "--epochs", "2", "--save-split", str(split),
                 "--quiet"]) == 0
    assert Recommender.load(model).rating_scale == (0.5, 5.0)
    test = pd.read_csv(split / "test.csv")
    assert (test["rating"] % 1 == 0.5).any()
    capsys.readouterr()
    assert main(["predict", "--model", str(model), "--pairs", str(split / "test.csv")]) == 0
    predicted = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    assert predicted["predicted_rating"].between(0.5, 5).all()
    assert main(["evaluate", "--model", str(model), "--scores", str(split / "test.csv")]) == 0
    assert f"{len(test)} held-out ratings" in capsys.readouterr().out
    code = main(["train", "--scores", str(path), "--out", str(tmp_path / "x.anirec")])
    err = capsys.readouterr().err
    assert code == 2 and "missing column(s) ['user_id', 'anime_id', 'rating']" in err
    assert not (tmp_path / "x.anirec").exists()
    with pytest.raises(SystemExit) as stop:
        main(["train", "--scores", str(path), "--out", str(tmp_path / "x.anirec"),
              "--rating-scale", "5,1"])
    assert stop.value.code == 2 and "LOW < HIGH" in capsys.readouterr().err
