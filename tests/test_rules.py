"""One set of rules in every function and command, on a 1..10, a 1..5 and a 0.5..5 data set:
the rating scale (saved, shown, used by thresholds, genre ratings and summaries), the column
names, the relevance threshold, unknown ids, and the evaluation's warnings and table."""

import json

import numpy as np
import pandas as pd
import pytest

import anirec
from anirec import Recommender
from anirec.cli import main
from anirec.data import write_synthetic
from anirec.errors import AnirecWarning, UnknownIdError

from .conftest import run_cli

#: The scales, and "4 of 5 stars" on each, worked out by hand: 8 of 10, 4 of 5 whole or half
#: stars.
SCALES = {"1..10": ((1.0, 10.0), 8.0), "1..5": ((1.0, 5.0), 4.0),
          "0.5..5": ((0.5, 5.0), 4.0)}
EXCLUDED = ("Ecchi", "Hentai", "Erotica")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The generated MAL files, and the same ratings as star tables under other names."""
    folder = tmp_path_factory.mktemp("rules")
    anime, scores = write_synthetic(folder, n_users=250, n_anime=160, n_ratings=9000, seed=4)
    table = pd.read_csv(scores, usecols=["user_id", "anime_id", "rating"])
    stars = table.rename(columns={"user_id": "userId", "anime_id": "itemId"})
    stars["stars"] = np.ceil(stars.pop("rating") / 2).astype(int)       # 1..5
    stars.to_csv(folder / "stars.csv", index=False)
    half = table.rename(columns={"user_id": "userId", "anime_id": "itemId"})
    half["stars"] = half.pop("rating") / 2                                # 0.5..5
    half.to_csv(folder / "half.csv", index=False)
    return {"folder": folder, "anime": anime, "1..10": scores, "1..5": folder / "stars.csv",
            "0.5..5": folder / "half.csv"}


def _columns(name):
    return ("user_id", "anime_id", "rating") if name == "1..10" else ("userId", "itemId", "stars")


def _load(files, name):
    if name == "1..10":
        return anirec.load_mal(files["anime"], files[name])
    user, item, rating = _columns(name)
    return anirec.load_ratings(files[name], user=user, item=item, rating=rating,
                               rating_scale=SCALES[name][0], catalogue=files["anime"])


@pytest.fixture(scope="module", params=list(SCALES))
def case(request, files):
    """``(name, data, fitted recommender, saved model path)`` for one scale."""
    name = request.param
    data = _load(files, name)
    rec = Recommender(layers=(16,), epochs=2, seed=0).fit(data)
    path = files["folder"] / f"{name}.anirec"
    rec.save(path)
    return name, data, rec, path



# ---------------------------------------------------------------------------------------------
# The scale


def test_the_scale_is_saved_and_shown(case, capsys):
    name, data, rec, path = case
    scale = SCALES[name][0]
    assert data.rating_scale == scale if name != "1..10" else True
    assert rec.rating_scale == scale == Recommender.load(path).rating_scale
    assert rec.info()["rating_scale"] == list(scale)
    code, out, _ = run_cli(capsys, "info", "--model", path)
    assert code == 0 and f"rating scale    {name} " in out


def test_load_summary_speaks_of_the_data_scale(case, files):
    name, data, _, _ = case
    text = str(data.summary)
    assert f"rating missing or not on the scale {name}: 0" in text
    assert name == "1..10" or "1..10" not in text
    # Ratings of anime dropped for an excluded genre are counted as such, not as unknown.
    anime = pd.read_csv(files["anime"], usecols=["anime_id", "Genres"])
    excluded = set(anime.loc[anime["Genres"].str.split(", ").apply(
        lambda genres: bool(set(genres) & set(EXCLUDED))), "anime_id"])
    scores = pd.read_csv(files["1..10"], usecols=["anime_id"])
    assert data.summary.ratings_excluded_anime == scores["anime_id"].isin(excluded).sum() > 0
    assert data.summary.ratings_unknown_anime == 0


def test_without_an_anime_file_the_summary_says_so(files):
    user, item, rating = _columns("1..5")
    data = anirec.load_ratings(files["1..5"], user=user, item=item, rating=rating)
    text = str(data.summary)
    assert text.splitlines()[0] == "no anime file: the anime are known by their ids only"
    assert "anime_id rows" not in text
    assert "not in the anime file" not in text and "scale 1..5" in text


def test_predictions_stay_inside_the_scale_and_off_its_ends(case):
    name, _, rec, _ = case
    low, high = SCALES[name][0]
    users = np.repeat(np.arange(rec.user_ids.shape[0]), rec.anime_ids.shape[0])
    items = np.tile(np.arange(rec.anime_ids.shape[0]), rec.user_ids.shape[0])
    predicted = rec._predicted_ratings(users, items)
    assert ((predicted > low) & (predicted < high)).all()


# ---------------------------------------------------------------------------------------------
# The relevance threshold


def test_default_threshold_is_four_of_five_stars(case):
    name, _, rec, _ = case
    (low, high), stars_4 = SCALES[name]
    report = rec.evaluate()
    assert report.attrs["threshold"] == low + 0.75 * (high - low)
    # On these ratings (whole, or half stars) it selects the same held-out ratings as "4 of 5
    # stars and up": the whole evaluation is the one with that threshold.
    pd.testing.assert_frame_equal(report, rec.evaluate(threshold=stars_4))
    assert f"relevant: rating >= {report.attrs['threshold']:g} on {name}" in str(report)


def test_the_threshold_option(case, files, capsys):
    name, _, rec, path = case
    user, item, rating = _columns(name)
    test = rec.split_frames()["test"].set_axis([user, item, rating], axis=1)
    test.to_csv(files["folder"] / f"test-{name}.csv", index=False)
    code, out, _ = run_cli(capsys, "evaluate", "--model", path, "--scores",
                           files["folder"] / f"test-{name}.csv", "--user-col", user, "--item-col",
                           item, "--rating-col", rating, "--threshold", "3", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["attrs"]["threshold"] == 3.0
    expected = rec.evaluate(threshold=3)
    assert report["methods"]["two-tower"]["ndcg@10"] == pytest.approx(
        expected.loc["two-tower", "ndcg@10"], rel=1e-12)


def test_star_and_doubled_scales_rank_alike(files):
    # The same ratings on 1..5 and doubled on 2..10: every rating sits at the same point of
    # its scale, so the models, their rankings and the relevant sets agree; RMSE doubles.
    user, item, rating = _columns("1..5")
    stars = pd.read_csv(files["1..5"])
    doubled = stars.assign(stars=stars["stars"] * 2)
    reports = [Recommender(layers=(16,), epochs=2, seed=0).fit(anirec.load_ratings(
        table, user=user, item=item, rating=rating, rating_scale=scale)).evaluate()
        for table, scale in ((stars, (1, 5)), (doubled, (2, 10)))]
    assert reports[0].attrs["threshold"] * 2 == reports[1].attrs["threshold"] == 8
    for column in ("precision@10", "recall@10", "ndcg@10", "coverage@10"):
        assert reports[0].loc["two-tower", column] == reports[1].loc["two-tower", column]
    assert reports[1].loc["two-tower", "rmse"] == pytest.approx(
        2 * reports[0].loc["two-tower", "rmse"], rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Genre ratings


def test_genre_ratings_are_on_the_model_scale(case, capsys):
    name, _, rec, path = case
    (low, high), _ = SCALES[name]
    genre = "Action"
    top = rec.recommend_for_genres({genre: high}, n=5)
    # The top of the model's scale is the top of any scale given explicitly.
    pd.testing.assert_frame_equal(top, rec.recommend_for_genres({genre: 10}, n=5,
                                                                scale=(1, 10)))
    np.testing.assert_array_equal(rec.new_user_features({genre: low}),
                                  rec.new_user_features({genre: 1}, scale=(1, 10)))
    # Genre names in any case, as excluded genres.
    pd.testing.assert_frame_equal(top, rec.recommend_for_genres({genre.upper(): high}, n=5))
    with pytest.raises(anirec.DataError, match=f"within {name}"):
        rec.recommend_for_genres({genre: high + 1})
    code, out, _ = run_cli(capsys, "recommend", "--model", path, "--genres", f"action={high:g}",
                           "--n", "5", "--json")
    assert code == 0
    assert [row["anime_id"] for row in json.loads(out)] == top["anime_id"].tolist()
    code, out, _ = run_cli(capsys, "recommend", "--model", path, "--genres", "Action=10",
                           "--genre-scale", "1,10", "--n", "5", "--json")
    assert [row["anime_id"] for row in json.loads(out)] == top["anime_id"].tolist()


def test_results_carry_the_genres(case):
    _, _, rec, _ = case
    for frame in (rec.recommend(rec.user_ids[:2], n=4), rec.recommend_for_genres({}, n=4),
                  rec.similar(rec.anime_ids[0], n=4)):
        assert frame.columns[-1] == "genres"
        assert frame["genres"].tolist() == rec.anime_genres(frame["anime_id"])


# ---------------------------------------------------------------------------------------------
# Columns


def test_every_reader_takes_the_same_columns(case, files, capsys):
    name, _, rec, path = case
    user, item, rating = _columns(name)
    test = rec.split_frames()["test"]
    named = test.set_axis([user, item, rating], axis=1)
    pd.testing.assert_frame_equal(rec.evaluate(named, user=user, item=item, rating=rating),
                                  rec.evaluate(test))
    pairs = files["folder"] / f"pairs-{name}.csv"
    named[[user, item]].to_csv(pairs, index=False)
    code, out, _ = run_cli(capsys, "predict", "--model", path, "--pairs", pairs, "--user-col",
                           user, "--item-col", item)
    assert code == 0
    predicted = pd.read_csv(pd.io.common.StringIO(out))
    assert list(predicted.columns) == [user, item, "predicted_rating"]
    np.testing.assert_allclose(predicted["predicted_rating"],
                               rec.predict(test["user_id"], test["anime_id"]), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Unknown ids


def _odd_pairs(rec):
    """Two known pairs, then an unknown user, an unknown anime, an anime of an excluded
    genre."""
    user, anime = int(rec.user_ids[0]), int(rec.anime_ids[0])
    excluded = int(rec.excluded_anime_ids[0])
    return ([user, user, 99_999_999, user, user],
            [anime, int(rec.anime_ids[1]), anime, 99_999_999, excluded])


def test_unknown_ids_are_skipped_and_counted_or_refused(case, files, capsys):
    name, _, rec, path = case
    users, anime = _odd_pairs(rec)
    counts = "3 of 5 pairs skipped (1 unknown user, 1 anime not in the catalogue, 1 anime of " \
             "an excluded genre)"
    with pytest.warns(AnirecWarning, match=counts.replace("(", r"\(").replace(")", r"\)")):
        predicted = rec.predict(users, anime)
    assert np.isnan(predicted[2:]).all()
    np.testing.assert_array_equal(predicted[:2], rec.predict(users[:2], anime[:2]))
    with pytest.raises(UnknownIdError, match=r"pair 2: anime id \d+ was dropped for an "
                                             r"excluded genre \(Ecchi, Hentai, Erotica\)"):
        rec.predict(users[:2] + users[4:], anime[:2] + anime[4:], strict=True)
    with pytest.raises(UnknownIdError, match=r"pair 2: unknown user id 99999999"):
        rec.predict(users, anime, strict=True)
    # The command line: the same count, the same refusal.
    pairs = files["folder"] / f"odd-{name}.csv"
    pd.DataFrame({"user_id": users, "anime_id": anime}).to_csv(pairs, index=False)
    code, out, err = run_cli(capsys, "predict", "--model", path, "--pairs", pairs)
    assert code == 0 and counts in err
    code, _, err = run_cli(capsys, "predict", "--model", path, "--pairs", pairs, "--out",
                           files["folder"] / "x.csv", "--strict")
    assert code == 2 and "line 4: unknown user id 99999999" in err
    # evaluate skips the same rows, by reason, or refuses them.
    frame = pd.DataFrame({"user_id": users, "anime_id": anime, "rating": SCALES[name][0][1]})
    report = rec.evaluate(frame)
    assert report.attrs["skipped_by"]["anime of an excluded genre"] == 1
    assert report.attrs["skipped"] == 3 and report.attrs["ratings"] == 2
    with pytest.raises(UnknownIdError, match="unknown user id"):
        rec.evaluate(frame, strict=True)


def test_evaluate_counts_every_rating_it_does_not_score(case, files, capsys):
    name, data, rec, path = case
    user, item, rating = _columns(name)
    # The whole scores file: ratings of excluded anime are dropped at loading, counted
    # with the rest (they were counted as "0 skipped").
    code, out, err = run_cli(capsys, "evaluate", "--model", path, "--anime", files["anime"],
                             "--scores", files[name], "--user-col", user, "--item-col", item,
                             "--rating-col", rating, "--json")
    assert code == 0   # the training ratings among them: one line of warning
    assert err.startswith("anirec evaluate: warning: ") and len(err.splitlines()) == 1
    assert "trained on" in err
    attrs = json.loads(out)["attrs"]
    rows = len(pd.read_csv(files[name]))
    assert attrs["ratings"] + attrs["skipped"] == rows
    assert attrs["skipped_by"]["anime of an excluded genre"] == \
        data.summary.ratings_excluded_anime > 0


# ---------------------------------------------------------------------------------------------
# Evaluation: warnings and the table


def test_evaluating_training_ratings_warns(case):
    _, _, rec, _ = case
    train = rec.split_frames()["train"]
    with pytest.warns(AnirecWarning, match="of pairs the model was trained on"):
        report = rec.evaluate(train)
    assert report.attrs["trained_on"] == len(train)
    assert report.loc["two-tower", ["precision@10", "recall@10", "ndcg@10"]].isna().all()
    # A mix: the ranking metrics are those of the held-out part alone.
    test = rec.split_frames()["test"]
    with pytest.warns(AnirecWarning, match="computed without them"):
        mixed = rec.evaluate(pd.concat([test, train]))
    held_out = rec.evaluate(test)
    for column in ("precision@10", "recall@10", "ndcg@10"):
        assert mixed.loc["two-tower", column] == held_out.loc["two-tower", column]


def test_the_evaluation_prints_whole(case):
    _, _, rec, _ = case
    report = rec.evaluate()
    with pd.option_context("display.width", 80, "display.max_columns", 0):
        text = repr(report)
    for column in report.columns:
        assert column in text
    assert "..." not in text and "NaN" not in text
    popularity = next(line for line in text.splitlines() if line.startswith("popularity "))
    assert popularity.split()[1:3] == ["-", "-"]   # it predicts no rating
    assert type(report.loc[["two-tower"]]) is pd.DataFrame  # derived frames are plain


@pytest.mark.parametrize("command", ["train", "evaluate", "demo"])
def test_each_command_that_prints_metrics_explains_them(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for column in ("rmse, mae:", "precision@k:", "recall@k:", "ndcg@k:", "coverage@k:",
                   "popularity_rank@k:", "-: does not apply"):
        assert column in text, column


# ---------------------------------------------------------------------------------------------
# One wording per kind of error


def test_errors_name_the_argument_the_caller_gave(case, files, capsys):
    name, _, rec, _ = case
    with pytest.raises(TypeError, match="n must be an integer, got 2.5"):
        rec.recommend_for_genres({"Drama": SCALES[name][0][1]}, n=2.5)
    with pytest.raises(UnknownIdError, match="user id must be integers, got '8' \\(str\\)"):
        rec.recommend(user_id="8")
    with pytest.raises(TypeError, match=r"^Recommender\(\) got an unexpected keyword argument "
                                        "'bogus'"):
        Recommender(bogus=1)
    # A missing file is "file not found" whichever loader reads it.
    missing = files["folder"] / "none.csv"
    for load in (lambda: anirec.load_ratings(missing),
                 lambda: anirec.load_mal(files["anime"], missing)):
        with pytest.raises(anirec.DataError, match=f"{missing}: file not found"):
            load()
    code, out, _ = run_cli(capsys, "train", "--scores", files["1..5"], "--user-col", "userId",
                           "--item-col", "itemId", "--rating-col", "stars", "--out",
                           files["folder"] / "one.anirec", "--epochs", "1", "--layers", "8",
                           "--test", "0", "--validation", "0")
    assert code == 0 and "trained 1 epoch in" in out
