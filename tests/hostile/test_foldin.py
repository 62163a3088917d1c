"""Hostile input through the fold-in: bad ratings, arguments and filters are refused by name,
never met inside a kernel; a model file whose fold-in statistics no training produces is
refused at load, and one that loads folds every person in."""

import numpy as np
import pytest

from anirec import DataError, ModelFormatError, Recommender, UnknownIdError

from ..conftest import run_cli
from .conftest import edit_header, header_of, npy, rebuild

ENTITIES = (b'<?xml version="1.0"?>\n<!DOCTYPE myanimelist [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n<myanimelist><anime>'
            b"<series_animedb_id>1</series_animedb_id><my_score>&b;</my_score></anime>"
            b"</myanimelist>")


@pytest.fixture
def rec(models):
    return models["hybrid"][0]


@pytest.mark.parametrize("ratings,error,message", [
    ({"1": float("nan")}, DataError, r"rating nan is not a finite number"),
    ({True: 8}, DataError, r"key True: not an integer anime id"),
    ({1.5: 8}, DataError, r"key 1.5: not an integer anime id"),
    ({1: 8, 2: 1e300}, DataError, r"anime id 2: rating 1e\+300 is outside the rating scale "
                                  r"1..10"),
    ({}, DataError, r"the ratings mapping: no rating given"),
    ([(1, 8)], TypeError, r"source must be a mapping \{anime_id: rating\}"),
    (b"<myanimelist/>", TypeError, r"source must be a mapping"),
    ("no-such-list.xml", DataError, r"no-such-list.xml: file not found"),
])
def test_bad_ratings_are_refused_by_name(rec, ratings, error, message):
    for call in (lambda: rec.recommend_for_ratings(ratings),
                 lambda: rec.predict_for_ratings(ratings, rec.anime_ids[:2])):
        with pytest.raises(error, match=message):
            call()


def test_an_export_with_entities_is_refused_before_any_expansion(models, tmp_path, capsys):
    rec, model = models["hybrid"]
    path = tmp_path / "animelist.xml"
    path.write_bytes(ENTITIES)
    with pytest.raises(DataError, match=r"declares a DTD"):
        rec.recommend_for_ratings(path, explain=True)
    status, out, err = run_cli(capsys, "recommend", "--model", model, "--ratings", path)
    assert status == 2 and out == "" and "declares a DTD" in err and err.count("\n") == 1


@pytest.mark.parametrize("call,error,message", [
    (lambda r: r.recommend_for_ratings({1: 8}, explain="yes"), TypeError,
     r"explain must be True or False"),
    (lambda r: r.recommend_for_ratings({1: 8}, n=0), ValueError, r"n must be an integer"),
    (lambda r: r.recommend_for_ratings({1: 8}, n=2.5), TypeError, r"n must be an integer"),
    (lambda r: r.recommend_for_ratings({1: 8}, exclude=["x"]), TypeError,
     r"exclude must be integers"),
    (lambda r: r.recommend_for_ratings({1: 8}, genres={"Action": 1}), TypeError,
     r"genres must be a name or a sequence of names"),
    (lambda r: r.recommend_for_ratings({1: 8}, min_year=2e3), TypeError,
     r"min_year must be an integer"),
    (lambda r: r.predict_for_ratings({1: 8}, [[1, 2]]), ValueError,
     r"must be one id or a 1-D sequence of ids"),
    (lambda r: r.predict_for_ratings({1: 8}, ["twelve"]), UnknownIdError, r"anime id"),
    (lambda r: Recommender().recommend_for_ratings({1: 8}), Exception, r"not fitted"),
])
def test_bad_arguments_are_refused_by_name(rec, call, error, message):
    with pytest.raises(error, match=message):
        call(rec)


@pytest.mark.parametrize("name,change,message", [
    ("start_years", lambda a: a * 0 - 5, r"start_years must hold years 1..9999, or 0"),
    ("start_years", lambda a: a * 0 + 10**6, r"start_years must hold years 1..9999, or 0"),
    ("item_weight", lambda a: a * 0 + 1e6, r"item_weight holds values outside \[1, 10\]"),
    ("item_weight", lambda a: a * np.nan, r"item_weight"),
])
def test_fold_in_statistics_no_training_produces_are_refused(models, tmp_path, name, change,
                                                             message):
    _, path = models["hybrid"]
    with np.errstate(all="ignore"):
        array = change(np.load(path)[name].copy())
    target = rebuild(path, tmp_path / "bad.anirec", {f"{name}.npy": npy(array)})
    with pytest.raises(ModelFormatError, match=message):
        Recommender.load(target)


@pytest.mark.parametrize("name", ["anime_types", "start_years", "item_weight"])
def test_a_model_file_without_a_fold_in_member_is_refused(models, tmp_path, name):
    _, path = models["hybrid"]
    target = rebuild(path, tmp_path / "short.anirec", drop=(f"{name}.npy",))
    with pytest.raises(ModelFormatError, match=name):
        Recommender.load(target)


def test_a_type_longer_than_declared_is_refused(models, tmp_path):
    _, path = models["hybrid"]
    types = np.load(path)["anime_types"]
    longer = npy(np.array(["T" * 50] * types.shape[0]))
    with pytest.raises(ModelFormatError, match=r"'anime_types'"):
        Recommender.load(rebuild(path, tmp_path / "long.anirec", {"anime_types.npy": longer}))
    with pytest.raises(ModelFormatError, match=r"'dims.type length' is 5000, expected at most "
                                               r"4096"):
        Recommender.load(edit_header(path, tmp_path / "dims.anirec",
                                     lambda h: h["dims"].__setitem__("type length", 5000)))


@pytest.mark.parametrize("name", ["cold.mean", "cold.std", "model.params", "genre_matrix"])
@pytest.mark.parametrize("scale", [1e20, 1e30, 3e38])
def test_a_model_that_loads_folds_every_person_in(models, tmp_path, name, scale):
    """Huge finite numbers either overflow what a fold-in computes, and the file is refused
    at load naming the fields, or they do not, and every fold-in works."""
    _, path = models["hybrid"]
    with np.errstate(all="ignore"):
        array = np.load(path)[name].copy()
        array = (array * 0 + 1).astype(array.dtype) * array.dtype.type(scale)
    target = rebuild(path, tmp_path / "huge.anirec", {f"{name}.npy": npy(array)})
    try:
        rec = Recommender.load(target)
    except ModelFormatError as error:
        assert "overflows" in str(error)
        return
    ids = rec.anime_ids
    for person in ({int(ids[0]): 1}, {int(a): 10 for a in ids}, {int(ids[1]): 3}):
        frame = rec.recommend_for_ratings(person, n=3, explain=True)
        # Everything listed is left out: who rated every anime gets an empty list.
        assert np.isfinite(frame["score"]).all()
        assert len(frame) == min(3, ids.shape[0] - len(person))
        assert np.isfinite(rec.predict_for_ratings(person, ids[:3])).all()


def test_the_command_refuses_a_list_and_a_model_mixed_up(models, tmp_path, capsys):
    _, path = models["hybrid"]
    # The model given as the list, and the list as the output.
    status, _, err = run_cli(capsys, "recommend", "--model", path, "--ratings", path)
    assert status == 2 and err.count("\n") == 1
    listing = tmp_path / "mine.csv"
    listing.write_text("anime_id,rating\n1,8\n")
    status, _, err = run_cli(capsys, "recommend", "--model", path, "--ratings", listing,
                             "--out", listing)
    assert status == 2 and "--out" in err and listing.read_text() == "anime_id,rating\n1,8\n"
    assert header_of(path)["kind"] == "Recommender"
