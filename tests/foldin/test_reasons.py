"""The reasons of an explained recommendation are faithful: removing the first anime named
from the person's ratings and folding them in again (through the public method, which sums
their ratings afresh, not through the leave-one-out rows the reasons are computed from) lowers
that recommendation's score, for every recommendation that names one."""

import numpy as np
import pytest

from anirec import foldin

from .conftest import KNOWN, fit, training_ratings


def _score(rec, ratings: dict, anime_id: int) -> float:
    """The retrieval score of ``anime_id`` for the person of ``ratings``, from the whole
    ranked catalogue."""
    every = rec.recommend_for_ratings(ratings, n=rec.anime_ids.shape[0])
    return float(every.loc[every["anime_id"] == anime_id, "score"].iloc[0])


def _people(rec, count: int) -> list[dict]:
    """The training ratings of ``count`` users with at least 8 of them."""
    people = [training_ratings(rec, user) for user in rec.user_ids.tolist()]
    return [person for person in people if len(person) >= 8][:count]


@pytest.fixture(scope="module", params=["defaults", "history"])
def model(request, fan_rec, fan_data):
    """The defaults, and a model with a pooled history (whose reasons also act through it)."""
    return fan_rec if request.param == "defaults" else fit(fan_data, history_dim=8)


def test_removing_the_first_reason_lowers_the_score(model):
    named = lowered = 0
    for person in _people(model, 12):
        frame = model.recommend_for_ratings(person, n=10, explain=True)
        for k, anime_id in enumerate(frame["anime_id"].tolist()):
            rows = frame.attrs["because"][k]["anime_rows"]
            if not rows:
                continue
            first = int(model.anime_ids[rows[0]])
            # The reason text begins with that anime and the person's rating of it.
            assert frame["because"].iloc[k].startswith(
                f"{model.anime_names[rows[0]]} ({person[first]:g})")
            without = {a: r for a, r in person.items() if a != first}
            named += 1
            lowered += _score(model, without, anime_id) < frame["score"].iloc[k]
    # Nearly every recommendation has a reason, and each one is faithful.
    assert named >= 100
    assert lowered == named


def test_the_reasons_are_the_anime_whose_removal_lowers_the_score_most(fan_rec):
    person = _people(fan_rec, 1)[0]
    frame = fan_rec.recommend_for_ratings(person, n=5, explain=True)
    mean = np.mean(list(person.values()))
    above = [a for a, r in person.items() if r > mean]
    for k, anime_id in enumerate(frame["anime_id"].tolist()):
        base = frame["score"].iloc[k]
        falls = {a: base - _score(fan_rec, {b: r for b, r in person.items() if b != a},
                                  anime_id) for a in above}
        expected = sorted((a for a in above if falls[a] > 0), key=lambda a: -falls[a])[:2]
        named = [int(fan_rec.anime_ids[row]) for row in frame.attrs["because"][k]["anime_rows"]]
        assert named == expected, (falls, named)


def test_only_anime_rated_above_the_persons_mean_are_reasons(fan_rec):
    person = _people(fan_rec, 3)[2]
    mean = np.mean(list(person.values()))
    frame = fan_rec.recommend_for_ratings(person, n=10, explain=True)
    for reasons in frame.attrs["because"]:
        for row in reasons["anime_rows"]:
            assert person[int(fan_rec.anime_ids[row])] > mean


def test_the_genres_named_are_the_recommendations_own_and_push_it(fan_rec):
    """A genre named pushes the recommendation: with the person's preference for it set to
    the average user's, the recommendation's cosine falls."""
    person = _people(fan_rec, 2)[1]
    folded = foldin.fold_in(fan_rec, person)
    frame = fan_rec.recommend_for_ratings(person, n=10, explain=True)
    named = 0
    for k, anime_id in enumerate(frame["anime_id"].tolist()):
        row = fan_rec.anime_rows(anime_id)[0]
        own = fan_rec.anime_genres(anime_id)[0].split(", ")
        text = frame["because"].iloc[k]
        for column in frame.attrs["because"][k]["genres"]:
            genre = fan_rec.genres[column]
            assert genre in own and text.endswith(tuple(own)) and genre in text
            average = folded.row.copy()
            average[0, column] = 0.0
            vector = fan_rec.model.user_embeddings(average)[0].astype(np.float64)
            item = fan_rec.item_vectors[row].astype(np.float64)
            assert vector @ item < folded.vector[0].astype(np.float64) @ item
            named += 1
    assert named > 0


def test_the_reasons_of_the_fixture_list_read_as_a_fan_expects(fan_rec):
    ratings = {1: 10, 6: 9, 30: 8, 5114: 9, 20: 3}
    frame = fan_rec.recommend_for_ratings(ratings, n=10, explain=True)
    text = frame["because"].iloc[0]
    # "Cowboy Bebop (10), Trigun (9); Comedy": anime of the list with their ratings first.
    assert any(text.startswith(f"{KNOWN[a]} ({r})") for a, r in ratings.items() if r > 7.8)
    assert "Naruto" not in " ".join(frame["because"])  # rated 3: below the mean, no reason
    plain = fan_rec.recommend_for_ratings(ratings, n=10)
    assert "because" not in plain.columns
    assert plain["anime_id"].tolist() == frame["anime_id"].tolist()
