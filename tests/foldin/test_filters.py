"""Filters by genre, type and first year, in every recommending method: a filtered list is the
unfiltered one with the anime the filters reject taken out, order kept; which anime they
reject is computed here from the loaded catalogue, not read from the recommender."""

import numpy as np
import pandas as pd
import pytest

from anirec import DataError, Recommender

CASES = [
    {"genres": ["Action"]},
    {"genres": "-comedy"},
    {"genres": ["Action", "Sci-Fi", "-Romance"]},
    {"types": "TV"},
    {"types": ["-Music"]},
    {"types": ["tv", "MOVIE"]},
    {"min_year": 2015},
    {"genres": ["-Drama"], "types": ["-Music", "-Special"], "min_year": 2000},
]


def passes(catalogue, genres=None, types=None, min_year=None) -> dict:
    """Anime id -> whether it passes the filters, from the catalogue as loaded."""
    names = [g.casefold() for g in catalogue.genres]
    carries = catalogue.genre_matrix > 0
    kinds = catalogue.attributes["type"].to_numpy(dtype=object)
    years = catalogue.attributes["start_year"].to_numpy()
    ok = np.ones(catalogue.n_items, dtype=bool)
    for filters, test in ((genres, lambda name: carries[:, names.index(name)]),
                          (types, lambda name: np.array([str(t).casefold() == name
                                                         for t in kinds]))):
        if filters is None:
            continue
        filters = [filters] if isinstance(filters, str) else filters
        wanted = [test(f.casefold()) for f in filters if not f.startswith("-")]
        if wanted:
            ok &= np.any(wanted, axis=0)
        for f in filters:
            if f.startswith("-"):
                ok &= ~test(f[1:].casefold())
    if min_year is not None:
        ok &= np.nan_to_num(years, nan=-1) >= min_year
    return dict(zip(catalogue.anime_ids.tolist(), ok.tolist()))


def _methods(rec):
    user = int(rec.user_ids[0])
    person = {1: 10, 6: 9, 30: 8, 20: 3}
    return {
        "recommend": lambda n, **f: rec.recommend(user, n=n, **f),
        "recommend_arrays": lambda n, **f: pd.DataFrame(
            {"anime_id": [a for a in rec.recommend_arrays([user], n=n, **f)[0][0] if a >= 0]}),
        "recommend_for_genres": lambda n, **f: rec.recommend_for_genres(
            {"Action": 9, "Drama": 2}, n=n, **f),
        "recommend_for_ratings": lambda n, **f: rec.recommend_for_ratings(person, n=n, **f),
    }


@pytest.mark.parametrize("filters", CASES, ids=lambda f: ",".join(f"{k}={v}" for k, v in
                                                                    f.items()))
def test_a_filtered_list_is_the_full_list_less_what_the_filters_reject(fan_rec, fan_data,
                                                                       filters):
    ok = passes(fan_data.catalogue, **filters)
    assert 0 < sum(ok.values()) < len(ok)
    n = fan_rec.anime_ids.shape[0]
    for name, method in _methods(fan_rec).items():
        full = method(n)["anime_id"].tolist()
        kept = method(n, **filters)["anime_id"].tolist()
        assert kept == [a for a in full if ok[a]], name
        top = method(5, **filters)["anime_id"].tolist()
        assert top == kept[:5], name


def test_filters_survive_saving(fan_rec, fan_model):
    loaded = Recommender.load(fan_model)
    for filters in CASES:
        for name, method in _methods(loaded).items():
            expected = _methods(fan_rec)[name](10, **filters)
            pd.testing.assert_frame_equal(method(10, **filters), expected)


def test_fewer_anime_than_asked_for_pass(fan_rec, fan_data):
    ok = passes(fan_data.catalogue, types="Music", min_year=2020)
    frame = fan_rec.recommend_for_genres({}, n=50, types="Music", min_year=2020)
    assert sorted(frame["anime_id"]) == sorted(a for a, good in ok.items() if good)
    assert frame["rank"].tolist() == list(range(1, len(frame) + 1))


def test_bad_filters_are_refused_by_name(fan_rec):
    user = int(fan_rec.user_ids[0])
    with pytest.raises(DataError, match=r"genres: unknown genre 'Mecha'; the catalogue's genres "
                                        r"are Action, .*prefix one with '-'"):
        fan_rec.recommend(user, genres=["Action", "Mecha"])
    with pytest.raises(DataError, match="genres: the genre 'Hentai' was excluded from the "
                                        "catalogue"):
        fan_rec.recommend(user, genres="Hentai")
    fan_rec.recommend(user, genres="-Hentai")  # already out: nothing to do
    with pytest.raises(DataError, match=r"types: unknown type 'Series'; the catalogue's types "
                                        r"are Movie, Music, ONA, OVA, Special, TV"):
        fan_rec.recommend_for_ratings({1: 10}, types="Series")
    with pytest.raises(TypeError, match="genres must be a name or a sequence of names"):
        fan_rec.recommend(user, genres=5)
    with pytest.raises(TypeError, match="genres must be a name or a sequence of names"):
        fan_rec.recommend(user, genres=["Action", None])
    with pytest.raises(TypeError, match="min_year must be an integer"):
        fan_rec.recommend_for_genres({}, min_year="2000")
    with pytest.raises(ValueError, match=r"min_year must be an integer in \[1, 9999\]"):
        fan_rec.recommend_for_genres({}, min_year=0)


def test_filters_on_what_a_catalogue_does_not_record_are_refused(tmp_path):
    """A plain ratings table has no catalogue: no types, no years, no genres to filter on."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"user_id": rng.integers(0, 40, 800),
                          "anime_id": rng.integers(0, 60, 800),
                          "rating": rng.integers(1, 11, 800)}).drop_duplicates(
                              ["user_id", "anime_id"])
    rec = Recommender(layers=(8, 4), epochs=1, seed=0).fit(table)
    user = int(rec.user_ids[0])
    with pytest.raises(DataError, match="types: the catalogue records no anime types"):
        rec.recommend(user, types="TV")
    with pytest.raises(DataError, match="min_year: the catalogue records no year"):
        rec.recommend(user, min_year=2000)
    with pytest.raises(DataError, match="genres: the catalogue records no anime genres"):
        rec.recommend(user, genres="-Action")
