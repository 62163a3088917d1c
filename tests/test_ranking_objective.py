"""The ranking and hybrid objectives beat popularity and the rating-only model at top-N
recommendation on held-out ratings of the planted synthetic data, under every backend, while
the hybrid model keeps the rating accuracy of the rating-only one.

In the planted model which anime a user rates depends on popularity *and* taste, and the
relevant held-out anime are those rated at least 8: popularity alone is a strong ranker there
(it beats the rating-only model, as on the real data), so a ranker must use both signals to
beat it. A model whose towers learnt nothing but ranks with the popularity prior scores exactly
the popularity baseline, so the margins below are the towers' own contribution.
"""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import anirec
from anirec.data import load_demo

OBJECTIVES = ("rating", "hybrid", "ranking")
# No refit: these tests are about the objectives (refit has its own in test_recommender_leaks).
OPTIONS = dict(seed=0, epochs=10, layers=(64, 32), refit=False)


@pytest.fixture(scope="module")
def data():
    return load_demo(n_users=1000, n_anime=700, n_ratings=80_000, seed=0)


@pytest.fixture(scope="module", params=["cython", "numpy"])
def trained(request, data):
    if request.param == "cython" and not anirec.backend.cython_available():
        pytest.skip("compiled kernels not built")
    # Small matrices: one BLAS thread is faster than several fighting over shared cores.
    with anirec.use_backend(request.param), threadpool_limits(1):
        recs = {objective: anirec.Recommender(objective=objective, **OPTIONS).fit(data)
                for objective in OBJECTIVES}
        reports = {objective: rec.evaluate(k=10) for objective, rec in recs.items()}
    return recs, reports


def _row(reports, objective):
    return reports[objective].loc["two-tower"]


def test_rating_only_ranks_below_popularity(trained):
    _, reports = trained
    popularity = reports["rating"].loc["popularity"]
    assert _row(reports, "rating")["ndcg@10"] < popularity["ndcg@10"]


@pytest.mark.parametrize("objective", ["ranking", "hybrid"])
def test_ranking_objectives_beat_popularity_and_the_rating_model(trained, objective):
    _, reports = trained
    model = _row(reports, objective)
    popularity = reports[objective].loc["popularity"]
    rating = _row(reports, "rating")
    for metric in ("ndcg@10", "recall@10"):
        assert model[metric] > 1.08 * popularity[metric], (metric, model[metric],
                                                           popularity[metric])
    assert model["ndcg@10"] > 1.8 * rating["ndcg@10"]
    assert model["recall@10"] > 1.4 * rating["recall@10"]


def test_hybrid_keeps_the_rating_accuracy(trained):
    _, reports = trained
    hybrid, rating = _row(reports, "hybrid"), _row(reports, "rating")
    assert hybrid["rmse"] <= 1.05 * rating["rmse"], (hybrid["rmse"], rating["rmse"])
    assert hybrid["rmse"] < reports["hybrid"].loc["user + item bias", "rmse"]


def test_ranking_model_still_predicts_ratings(trained):
    recs, reports = trained
    rec = recs["ranking"]
    a, b = rec.model.calibration_
    assert b > 0
    test = rec.test
    predicted = rec.predict(rec.user_ids[test.users], rec.anime_ids[test.items])
    assert predicted.min() >= 1.0 and predicted.max() <= 10.0
    # A calibrated ranking score is no rating model, but it beats the global mean.
    assert _row(reports, "ranking")["rmse"] < reports["ranking"].loc["global mean", "rmse"]


@pytest.mark.parametrize("objective", ["ranking", "hybrid"])
def test_recommend_ranks_by_the_retrieval_score(trained, objective, tmp_path):
    recs, _ = trained
    rec = recs[objective]
    model = rec.model
    user_id = rec.user_ids[3]
    row = rec.user_rows(user_id)[0]
    cosines = rec.item_vectors.astype(np.float64) @ rec.user_vectors[row].astype(np.float64)
    scores = cosines / model.temperature + rec.popularity_weight * model.item_log_prior_
    # A hybrid model has rating biases: its anime's bias adds to the score, weighted.
    assert (model.biases_ is not None) == (objective == "hybrid")
    if model.biases_ is not None:
        assert rec.quality_weight == 0.5
        scores += rec.quality_weight * model.biases_.item
    # Everything the user rated is left out, the test split included.
    seen = rec.rated[1][rec.rated[0][row]:rec.rated[0][row + 1]]
    scores[seen] = -np.inf
    expected = rec.anime_ids[np.argsort(-scores, kind="stable")[:10]]
    frame = rec.recommend(user_id, n=10)
    np.testing.assert_array_equal(frame["anime_id"].to_numpy(), expected)
    ranked_items = rec.anime_rows(frame["anime_id"].to_numpy())
    np.testing.assert_allclose(frame["predicted_rating"].to_numpy(),
                               model.score_to_rating(cosines[ranked_items], row, ranked_items),
                               rtol=1e-4)
    rec.save(tmp_path / "rec.anirec")
    loaded = anirec.Recommender.load(tmp_path / "rec.anirec")
    assert loaded.model.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.recommend(user_id, n=10)["anime_id"],
                                  frame["anime_id"])
