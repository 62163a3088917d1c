"""The synthetic generator: schema, determinism, round trip through CSV, planted structure."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from anirec.data import (MAL_GENRES, build_features, generate_synthetic, load_demo, load_mal,
                         split_ratings, write_synthetic)
from anirec.data.synthetic import ANIME_COLUMNS, SCORE_COLUMNS

from .conftest import SMALL


def test_schema_and_unknowns(small_synthetic, small_files):
    anime_path, scores_path = small_files
    with open(anime_path, newline="", encoding="utf-8") as fh:
        assert tuple(next(csv.reader(fh))) == ANIME_COLUMNS
    with open(scores_path, newline="", encoding="utf-8") as fh:
        assert tuple(next(csv.reader(fh))) == SCORE_COLUMNS
    a = small_synthetic.anime
    assert len(a) == SMALL["n_anime"]
    for col in ("Score", "Genres", "English name", "Episodes", "Scored By", "Rank", "Licensors"):
        assert (a[col] == "UNKNOWN").any(), col
    genres = {g for s in a["Genres"] if s != "UNKNOWN" for g in s.split(", ")}
    assert genres <= set(MAL_GENRES) and {"Action", "Comedy", "Hentai"} <= genres
    assert a["Name"].str.contains(",").any() and a["Name"].str.contains('"').any()
    assert a["Synopsis"].str.contains("\n").any()
    assert set(a["Type"]) <= {"TV", "Movie", "OVA", "ONA", "Special", "Music", "UNKNOWN"}
    assert a["Aired"].str.contains(" to ").any() and a["Aired"].str.endswith("to ?").any()
    s = small_synthetic.scores
    assert len(s) == SMALL["n_ratings"]
    assert s["rating"].between(1, 10).all()
    names = s["Username"].astype(str)
    assert names.str.contains(",").any() and (~names.map(str.isascii)).any()
    assert not s.duplicated(["user_id", "anime_id"]).any()
    pd.testing.assert_frame_equal(pd.read_csv(anime_path, keep_default_na=False, dtype=str),
                                  a.astype(str), check_dtype=False)


def test_deterministic_and_seeded():
    a = generate_synthetic(n_users=50, n_anime=40, n_ratings=400, seed=5)
    b = generate_synthetic(n_users=50, n_anime=40, n_ratings=400, seed=5)
    c = generate_synthetic(n_users=50, n_anime=40, n_ratings=400, seed=6)
    pd.testing.assert_frame_equal(a.scores, b.scores)
    pd.testing.assert_frame_equal(a.anime, b.anime)
    assert not a.scores["rating"].equals(c.scores["rating"])


def test_round_trip_reproduces_the_generator_arrays(small_synthetic, small_files):
    data = load_mal(*small_files, exclude_genres=())
    s = small_synthetic.scores
    got = pd.DataFrame({"user_id": data.ratings.user_ids[data.ratings.users],
                        "anime_id": data.catalogue.anime_ids[data.ratings.items],
                        "rating": data.ratings.ratings})
    want = s[["user_id", "anime_id", "rating"]].sort_values(["user_id", "anime_id"])
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
    np.testing.assert_array_equal(data.catalogue.anime_ids, small_synthetic.truth.anime_ids)
    np.testing.assert_array_equal(data.ratings.user_ids,
                                  np.unique(small_synthetic.scores["user_id"]))
    truth_genres = small_synthetic.truth.item_genres
    cols = [MAL_GENRES.index(g) for g in data.catalogue.genres]
    np.testing.assert_array_equal(data.catalogue.genre_matrix, truth_genres[:, cols])
    assert data.summary.ratings_kept == len(s)
    # With the default exclusion, exactly the ratings of adult anime go.
    default = load_mal(*small_files)
    adult = small_synthetic.anime["Genres"].str.contains("Hentai|Ecchi|Erotica")
    adult_ids = set(small_synthetic.anime["anime_id"][adult])
    assert default.summary.ratings_excluded_anime == int(s["anime_id"].isin(adult_ids).sum())


def test_load_demo_equals_load_mal_on_written_files(tmp_path):
    kw = dict(n_users=120, n_anime=90, n_ratings=2000, seed=11)
    demo = load_demo(**kw)
    direct = load_mal(*write_synthetic(tmp_path, **kw))
    for name in ("user_ids", "users", "items", "ratings"):
        np.testing.assert_array_equal(getattr(demo.ratings, name), getattr(direct.ratings, name))
    np.testing.assert_array_equal(demo.catalogue.genre_matrix, direct.catalogue.genre_matrix)
    np.testing.assert_array_equal(demo.catalogue.bayes_rating, direct.catalogue.bayes_rating)
    assert demo.summary.ratings_kept == direct.summary.ratings_kept


def test_ratings_follow_the_planted_model(small_synthetic):
    t = small_synthetic.truth
    s = small_synthetic.scores
    expected = t.expected_rating(s["user_id"].to_numpy(), s["anime_id"].to_numpy())
    resid = s["rating"].to_numpy() - np.clip(expected, 1, 10)
    # Rounding and clipping add a little to the planted noise.
    assert abs(resid.mean()) < 0.15 and 0.9 * t.noise < resid.std() < 1.25 * t.noise
    assert np.corrcoef(expected, s["rating"])[0, 1] > 0.6


def test_selection_depends_on_taste_and_popularity(small_synthetic):
    t = small_synthetic.truth
    s = small_synthetic.scores
    u = np.searchsorted(t.user_ids, s["user_id"].to_numpy())
    i = np.searchsorted(t.anime_ids, s["anime_id"].to_numpy())
    # Taste: the share of a user's ratings in a favourite genre beats that genre's share of
    # the catalogue.
    fav = np.array([t.genres.index(f[0]) for f in t.favourite_genres])
    in_fav = t.item_genres[i, fav[u]] > 0
    base = t.item_genres[:, fav].mean(axis=0)[u]
    assert in_fav.mean() > 1.5 * base.mean()
    # Popularity: more popular anime collect more ratings.
    counts = np.bincount(i, minlength=t.anime_ids.size)
    assert np.corrcoef(np.log(t.popularity), np.log1p(counts))[0, 1] > 0.5


@pytest.mark.parametrize("weighting,min_count,floor", [("centered", 5, 0.4),
                                                       ("bayesian", 1, 0.45)])
def test_features_recover_planted_tastes(small_data, small_synthetic, weighting, min_count,
                                         floor):
    """User genre preferences built from training ratings correlate with the planted tastes:
    per-genre average ratings where the user rated enough anime of the genre, watched-genre
    shares everywhere."""
    t = small_synthetic.truth
    s = split_ratings(small_data.ratings, seed=0)
    f = build_features(small_data.catalogue, s.train, small_data.ratings.n_users,
                       weighting=weighting)
    raw = f.user_stats.rows(np.arange(small_data.ratings.n_users), scaled=False)
    tu = np.searchsorted(t.user_ids, small_data.ratings.user_ids)
    cols = [MAL_GENRES.index(g) for g in f.genres]
    taste = t.taste[tu][:, cols]
    cells = f.user_stats.den >= min_count
    assert np.corrcoef(taste[cells], raw[:, :-2][cells])[0, 1] > floor


@pytest.mark.parametrize("kw", [dict(n_users=0), dict(noise=-1.0), dict(taste_share=2.0),
                                dict(n_users=2, n_anime=8, n_ratings=100)])
def test_bad_arguments(kw):
    with pytest.raises(ValueError):
        generate_synthetic(**kw)
