"""The genre cold start follows the rating scale: high pulls a genre up, low pushes it down,
unrated (or the middle of the scale) is neutral."""

import numpy as np
import pytest

from anirec import Recommender
from anirec.data import load_demo
from anirec.errors import DataError


@pytest.fixture(scope="module")
def fitted():
    # The default synthetic data set; a small, short model keeps the test quick (the property
    # must hold for any trained model, since the stated tastes enter the score directly too).
    return Recommender(layers=(64, 32), epochs=4, seed=0).fit(load_demo())


def test_each_genre_follows_its_rating(fitted):
    genre_matrix = fitted.genre_matrix > 0
    counts = genre_matrix.sum(axis=0)
    checked = []
    for column, genre in enumerate(fitted.genres):
        if counts[column] < 20:
            continue
        base = counts[column] / genre_matrix.shape[0]
        share = {}
        for rating in (10, 1):
            recs = fitted.recommend_for_genres({genre: rating}, n=10)
            share[rating] = genre_matrix[fitted.anime_rows(recs["anime_id"]), column].mean()
        assert share[10] > 2 * base, (genre, base, share)
        assert share[1] < base, (genre, base, share)
        checked.append(genre)
    assert len(checked) >= 10, checked


def test_unrated_and_middle_ratings_are_neutral(fitted):
    cold = fitted.cold_start
    neutral = cold.row({})
    np.testing.assert_allclose(neutral[0, :len(cold.genres)], 0.0, atol=1e-12)
    np.testing.assert_allclose(cold.row({"Drama": 5.5}), neutral, atol=1e-12)
    np.testing.assert_allclose(cold.row({"Drama": 3}, scale=(1, 5)), neutral, atol=1e-12)
    loved, hated = cold.row({"Drama": 10}), cold.row({"Drama": 1})
    column = cold.genres.index("Drama")
    assert hated[0, column] < 0 < loved[0, column]
    others = [j for j in range(len(cold.genres)) if j != column]
    np.testing.assert_allclose(loved[0, others], 0.0, atol=1e-12)
    assert list(fitted.recommend_for_genres({}, n=10)["anime_id"]) == \
        list(fitted.recommend_for_genres({"Drama": 5.5}, n=10)["anime_id"])


def test_a_dislike_removes_the_genre(fitted):
    liked = fitted.recommend_for_genres({"Action": 10, "Comedy": 1}, n=10)
    genres = fitted.anime_genres(liked["anime_id"])
    assert sum("Comedy" in g.split(", ") for g in genres) <= 1
    assert sum("Action" in g.split(", ") for g in genres) >= 8
    assert (liked["predicted_rating"].between(1, 10)).all()


def test_bad_genre_ratings(fitted):
    with pytest.raises(DataError, match="within 1..10"):
        fitted.recommend_for_genres({"Drama": 11})
    with pytest.raises(ValueError, match="scale must be"):
        fitted.recommend_for_genres({"Drama": 3}, scale=(5, 5))
    with pytest.raises(ValueError, match="n must be"):
        fitted.recommend_for_genres({"Drama": 3}, n=0)
