"""The popularity control: a weight on the popularity prior trades ranking for coverage."""

import numpy as np
import pytest

from anirec import Recommender
from anirec.cli import main
from anirec.data import generate_synthetic, load_mal
from anirec.data.synthetic import write_tables


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("popularity")
    data = load_mal(*write_tables(generate_synthetic(400, 300, 20_000, seed=6), folder))
    return Recommender(layers=(32,), epochs=3, seed=0).fit(data)


def test_a_lower_weight_spreads_the_recommendations(fitted):
    reports = {}
    for weight in (1.0, 0.0):
        fitted.popularity_weight = weight
        reports[weight] = fitted.evaluate().loc["two-tower"]
    fitted.popularity_weight = 1.0
    assert reports[0.0]["coverage@10"] > reports[1.0]["coverage@10"]
    assert reports[0.0]["popularity_rank@10"] > reports[1.0]["popularity_rank@10"]


def test_the_weight_changes_the_order_not_the_predicted_ratings(fitted, tmp_path):
    user = int(fitted.user_ids[0])
    fitted.popularity_weight = 0.3
    try:
        recs = fitted.recommend(user, n=10)
        model = fitted.model
        row = fitted.user_rows(user)[0]
        cosines = fitted.item_vectors.astype(np.float64) @ \
            fitted.user_vectors[row].astype(np.float64)
        scores = cosines / model.temperature + 0.3 * model.item_log_prior_ + \
            fitted.quality_weight * model.biases_.item
        rated = fitted.rated[1][fitted.rated[0][row]:fitted.rated[0][row + 1]]
        scores[rated] = -np.inf
        np.testing.assert_array_equal(recs["anime_id"],
                                      fitted.anime_ids[np.argsort(-scores, kind="stable")[:10]])
        np.testing.assert_allclose(recs["predicted_rating"],
                                   fitted.predict(np.full(10, user), recs["anime_id"]),
                                   rtol=1e-5)
        fitted.save(tmp_path / "m.anirec")
        assert Recommender.load(tmp_path / "m.anirec").popularity_weight == 0.3
    finally:
        fitted.popularity_weight = 1.0


def test_bad_weights_are_refused(fitted, capsys):
    with pytest.raises(ValueError, match="popularity_weight"):
        fitted.popularity_weight = -1
    with pytest.raises(ValueError, match="popularity_weight"):
        Recommender(popularity_weight=float("nan"))
    with pytest.raises(ValueError, match="quality_weight"):
        fitted.quality_weight = -0.5
    with pytest.raises(TypeError, match="quality_weight"):
        Recommender(quality_weight="0.5")
    for argv in (["--popularity-weight", "-1"], ["--popularity-weight", "0.5", "--objective",
                                                 "rating"]):
        try:
            code = main(["train", "--anime", "a.csv", "--scores", "b.csv", "--out",
                         "never.anirec", *argv])
        except SystemExit as stop:
            code = stop.code
        err = capsys.readouterr().err
        assert code == 2 and "--popularity-weight" in err and len(err.splitlines()) == 1
