"""The behavioural suite of the Recommender, run under every backend."""

import tempfile

import numpy as np
import pandas as pd
import pytest

import anirec
from anirec import Recommender
from anirec.data import generate_synthetic, load_mal
from anirec.data.synthetic import write_tables
from anirec.errors import DataError, NotFittedError, UnknownIdError

from .conftest import BACKENDS, pairs_recommend_excludes


@pytest.fixture(scope="module")
def synthetic():
    data = generate_synthetic(600, 400, 45_000, seed=3)
    with tempfile.TemporaryDirectory() as tmp:
        return data, load_mal(*write_tables(data, tmp))


@pytest.fixture(scope="module", params=BACKENDS)
def fitted(request, synthetic):
    with anirec.use_backend(request.param):
        # The rating objective: its behaviour is the subject here (the ranking objectives have
        # their own suite in test_ranking_objective.py).
        rec = Recommender(layers=(64, 32), epochs=12, batch_size=256, lr=2e-3, seed=0,
                          objective="rating", refit=False)
        yield rec.fit(synthetic[1])


def test_beats_the_rating_baselines(fitted):
    report = fitted.evaluate()
    model = report.loc["two-tower", "rmse"]
    for baseline in ("global mean", "Bayesian average", "user + item bias"):
        assert model < report.loc[baseline, "rmse"], report
    assert model < 0.9 * report.loc["global mean", "rmse"], report
    assert report.attrs["ratings"] == len(fitted.test)
    assert set(report.columns) == {"rmse", "mae", "precision@10", "recall@10", "ndcg@10",
                                   "coverage@10", "popularity_rank@10"}


def test_recommendations_follow_planted_favourite_genres(fitted, synthetic):
    truth = synthetic[0].truth
    favourites = dict(zip(truth.user_ids.tolist(), truth.favourite_genres))
    genre_sets = [set(g.split(", ")) for g in fitted.anime_genres(fitted.anime_ids)]
    users = fitted.user_ids[:200]
    recs = fitted.recommend(users, n=10)
    hit, base = [], []
    for user_id, group in recs.groupby("user_id"):
        liked = set(favourites[user_id]) & set(fitted.genres)
        if not liked:
            continue
        rows = fitted.anime_rows(group["anime_id"])
        hit.append(np.mean([bool(genre_sets[row] & liked) for row in rows]))
        base.append(np.mean([bool(genres & liked) for genres in genre_sets]))
    assert np.mean(hit) > 0.6
    assert np.mean(hit) > 1.5 * np.mean(base)


def test_cold_start_returns_the_genre_rated_high(fitted):
    for genre in ("Action", "Comedy"):
        others = {g: 2 for g in ("Romance", "Drama", "Sports") if g != genre}
        recs = fitted.recommend_for_genres({genre: 10, **others}, n=10)
        carrying = [genre in genres.split(", ") for genres in fitted.anime_genres(recs["anime_id"])]
        assert np.mean(carrying) >= 0.7, (genre, recs)
        assert list(recs["rank"]) == list(range(1, 11))


def test_cold_start_scale_and_errors(fitted):
    on_ten = fitted.recommend_for_genres({"Action": 10, "Romance": 1}, n=5)
    on_five = fitted.recommend_for_genres({"Action": 5, "Romance": 1}, n=5, scale=(1, 5))
    pd.testing.assert_frame_equal(on_ten, on_five)
    with pytest.raises(DataError, match="valid genres are .*Action"):
        fitted.recommend_for_genres({"Actoin": 9})


def test_batch_equals_single(fitted):
    users = fitted.user_ids[[5, 17, 3]]
    batch = fitted.recommend(users, n=7)
    singles = pd.concat([fitted.recommend(int(u), n=7) for u in users], ignore_index=True)
    pd.testing.assert_frame_equal(batch.reset_index(drop=True), singles)
    ids, scores = fitted.recommend_arrays(users, n=7)
    np.testing.assert_array_equal(ids.ravel(), batch["anime_id"])
    np.testing.assert_allclose(scores.ravel(), batch["score"], rtol=1e-6)


def test_rated_anime_are_excluded(fitted, synthetic):
    # The pairs to leave out come from the data given to fit, not from the fitted ``seen``.
    excluded = pairs_recommend_excludes(synthetic[1], fitted.options)
    by_user = {}
    for user, anime in excluded:
        by_user.setdefault(user, set()).add(anime)
    users = fitted.user_ids[:50]
    n_anime = fitted.anime_ids.shape[0]
    recs = fitted.recommend(users, n=n_anime)
    catalogue = set(fitted.anime_ids.tolist())
    for user_id in users.tolist():
        got = set(recs.loc[recs["user_id"] == user_id, "anime_id"].tolist())
        rated = by_user.get(user_id, set())
        assert rated and got == catalogue - rated, user_id
    unfiltered = fitted.recommend(users, n=20, exclude_rated=False)
    assert len(unfiltered) == 50 * 20
    assert (np.diff(unfiltered["score"].to_numpy().reshape(50, 20), axis=1) <= 0).all()


def test_rated_set_is_the_ratings_csr_without_the_test_split(fitted, synthetic):
    # Built from the loaded row pointer; the same as building a CSR from the pairs.
    from anirec.recommender import _csr_from_pairs

    t = fitted.test
    r = synthetic[1].ratings
    keep = np.ones(r.n_ratings, dtype=bool)
    pos = r.indptr[t.users] + np.array([np.searchsorted(r.items[r.indptr[u]:r.indptr[u + 1]], i)
                                        for u, i in zip(t.users, t.items)], dtype=np.int64)
    keep[pos] = False
    want = _csr_from_pairs(r.users[keep], r.items[keep], (r.n_users, fitted.anime_ids.shape[0]))
    for got, expected in zip(fitted.seen, want):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_excluded_genres_are_never_recommended(fitted, synthetic):
    anime = synthetic[0].anime
    excluded = anime["Genres"].str.contains("Ecchi|Hentai|Erotica")
    assert excluded.any()
    bad_ids = set(anime.loc[excluded, "anime_id"].astype(int))
    assert not bad_ids & set(fitted.anime_ids)
    recs = fitted.recommend(fitted.user_ids, n=10)
    assert not bad_ids & set(recs["anime_id"])


def test_similar_anime(fitted):
    anime_id = int(fitted.anime_ids[0])
    similar = fitted.similar(anime_id, n=10)
    assert anime_id not in set(similar["anime_id"])
    assert list(similar.columns) == ["query_anime_id", "rank", "similarity", "anime_id", "name",
                                     "genres"]
    # The genres column is each anime's genres, as anime_genres gives them.
    assert list(similar["genres"]) == fitted.anime_genres(similar["anime_id"])
    assert (np.diff(similar["similarity"]) <= 0).all()
    vectors = fitted.item_vectors.astype(np.float64)
    expected = vectors @ vectors[0]
    expected[0] = -np.inf
    np.testing.assert_array_equal(fitted.anime_rows(similar["anime_id"]),
                                  np.argsort(-expected, kind="stable")[:10])


def test_predict_agrees_with_recommend(fitted):
    user_id = int(fitted.user_ids[9])
    recs = fitted.recommend(user_id, n=5)
    predicted = fitted.predict(np.full(5, user_id), recs["anime_id"])
    np.testing.assert_allclose(predicted, recs["predicted_rating"], rtol=1e-6)
    assert ((predicted >= 1) & (predicted <= 10)).all()


def test_unknown_ids_raise(fitted):
    with pytest.raises(UnknownIdError, match="unknown user id 987654321"):
        fitted.recommend(987654321)
    with pytest.raises(KeyError, match="unknown anime id -5"):
        fitted.similar(-5)
    with pytest.raises(UnknownIdError, match=r"pair 0: unknown anime id 123456789 \(not in "):
        fitted.predict([int(fitted.user_ids[0])], [123456789], strict=True)


def test_save_load_round_trip(fitted, tmp_path):
    path = tmp_path / "model.anirec"
    fitted.save(path)
    loaded = Recommender.load(path)
    users = fitted.user_ids[:20]
    pd.testing.assert_frame_equal(loaded.recommend(users), fitted.recommend(users))
    pd.testing.assert_frame_equal(loaded.recommend_for_genres({"Drama": 9}),
                                  fitted.recommend_for_genres({"Drama": 9}))
    pd.testing.assert_frame_equal(loaded.similar(int(fitted.anime_ids[3])),
                                  fitted.similar(int(fitted.anime_ids[3])))
    pd.testing.assert_frame_equal(loaded.evaluate(), fitted.evaluate())
    assert loaded.info()["history"] == fitted.info()["history"]


def test_evaluate_on_heldout_frame_matches_the_test_split(fitted):
    test = fitted.test
    heldout = pd.DataFrame({"user_id": fitted.user_ids[test.users],
                            "anime_id": fitted.anime_ids[test.items], "rating": test.ratings})
    heldout.loc[len(heldout)] = [999_999_999, int(fitted.anime_ids[0]), 7]
    report = fitted.evaluate(heldout)
    assert report.attrs["skipped"] == 1
    pd.testing.assert_frame_equal(report, fitted.evaluate(), check_like=True)


def test_unfitted_recommender_raises():
    with pytest.raises(NotFittedError):
        Recommender().recommend(1)
