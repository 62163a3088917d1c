"""Loading and cleaning the MAL files: hand-written oddities, counts per reason, id maps."""

from __future__ import annotations

import numpy as np
import pytest

from anirec.data import DEFAULT_EXCLUDED_GENRES, bayesian_average, load_mal
from anirec.errors import UnknownIdError


def triples(data):
    r = data.ratings
    return sorted(zip(r.user_ids[r.users].tolist(), data.catalogue.anime_ids[r.items].tolist(),
                      r.ratings.tolist()))


def test_catalogue_from_odd_file(mal_files):
    data = load_mal(*mal_files)
    cat = data.catalogue
    # Hentai (6) and Ecchi (7) anime leave; the duplicate id 10 keeps its last row.
    assert cat.anime_ids.tolist() == [1, 5, 8, 10]
    assert cat.names.tolist() == ["Cowboy Bebop", 'Kimi no, "Na" wa', "Mystery Box",
                                  "Ōkami – Zoë's tale"]
    assert cat.genres == ("Action", "Adventure", "Award Winning", "Comedy", "Drama",
                          "Romance", "Sci-Fi")
    assert cat.excluded_genres == DEFAULT_EXCLUDED_GENRES
    assert cat.genre_matrix.dtype == np.float32
    row = dict(zip(cat.genres, cat.genre_matrix[0]))
    assert row == {"Action": 1, "Adventure": 0, "Award Winning": 1, "Comedy": 0, "Drama": 0,
                   "Romance": 0, "Sci-Fi": 1}
    assert cat.genre_matrix[2].sum() == 0  # UNKNOWN genres
    a = cat.attributes
    assert a["score"].iloc[0] == 8.75 and np.isnan(a["score"].iloc[1])
    assert np.isnan(a["score"].iloc[2])  # "n/a" coerced
    assert a["type"].tolist()[:3] == ["TV", "Movie", None]
    assert a["start_year"].tolist()[0] == 1998 and a["start_year"].tolist()[3] == 1999
    assert np.isnan(a["start_year"].iloc[2]) and np.isnan(a["episodes"].iloc[3])
    assert a["members"].tolist() == [1771505, 100, 50, 3000]


def test_ratings_and_summary_count_every_row(mal_files):
    data = load_mal(*mal_files)
    assert triples(data) == sorted([(100, 1, 10), (100, 5, 7), (42, 1, 6), (42, 10, 8),
                                    (42, 5, 7), (7, 8, 3)])
    r = data.ratings
    assert r.user_ids.tolist() == [7, 42, 100]
    assert r.users.dtype == np.int32 and r.items.dtype == np.int32 and r.ratings.dtype == np.int8
    # Sorted by (user, item).
    key = r.users.astype(np.int64) * 100 + r.items
    assert np.all(np.diff(key) > 0)
    s = data.summary
    assert (s.rating_rows, s.ratings_unknown_anime, s.ratings_excluded_anime,
            s.ratings_invalid, s.ratings_duplicate, s.ratings_kept) == (11, 1, 1, 2, 1, 6)
    assert (s.anime_rows, s.anime_duplicate, s.anime_excluded, s.anime_kept) == (7, 1, 2, 4)
    assert s.anime_values_coerced == 1 and s.coerced_columns == {"Score": 1}
    d = s.as_dict()
    dropped = sum(d[k] for k in d if k.startswith("ratings_") and k != "ratings_kept")
    assert dropped + s.ratings_kept == s.rating_rows
    text = str(s)
    assert "duplicate (user, anime) pairs (last kept): 1" in text
    assert "anime not in the anime file: 1" in text


def test_no_exclusion_keeps_everything(mal_files):
    data = load_mal(*mal_files, exclude_genres=())
    assert data.catalogue.anime_ids.tolist() == [1, 5, 6, 7, 8, 10]
    assert "Hentai" in data.catalogue.genres and "Ecchi" in data.catalogue.genres
    assert data.summary.ratings_excluded_anime == 0
    # The rating of 6 now counts; the duplicate of (100, 1) still keeps the last.
    assert (100, 6, 8) in triples(data)


def test_excluded_genres_case_insensitive_and_configurable(mal_files):
    data = load_mal(*mal_files, exclude_genres=["comedy"])
    assert 7 not in data.catalogue.anime_ids and 10 not in data.catalogue.anime_ids
    assert 6 in data.catalogue.anime_ids
    assert "Comedy" not in data.catalogue.genres


def test_minimum_counts_are_applied_until_stable(mal_files):
    data = load_mal(*mal_files, min_user_ratings=2)
    assert data.ratings.user_ids.tolist() == [42, 100]
    assert data.summary.ratings_user_min == 1 and data.summary.users_dropped == 1
    data = load_mal(*mal_files, min_item_ratings=2)
    # Anime 8 and 10 have one rating each; then user 7 has none left.
    assert sorted(set(data.catalogue.anime_ids[data.ratings.items].tolist())) == [1, 5]
    assert data.summary.ratings_item_min == 2
    assert data.ratings.user_ids.tolist() == [42, 100]
    # The catalogue keeps rarely rated anime: they can still be recommended by content.
    assert 8 in data.catalogue.anime_ids
    with pytest.raises(ValueError, match="min_user_ratings"):
        load_mal(*mal_files, min_user_ratings=0)


def test_index_maps_and_unknown_ids(mal_files):
    data = load_mal(*mal_files)
    assert data.catalogue.index_of([10, 1]).tolist() == [3, 0]
    assert data.catalogue.index_of(5) == 1
    assert data.ratings.user_index_of(np.array([100, 7])).tolist() == [2, 0]
    with pytest.raises(UnknownIdError, match="anime_id 6 "):
        data.catalogue.index_of([1, 6, 999])
    with pytest.raises(UnknownIdError, match="user_id 1 "):
        data.ratings.user_index_of([1])


def test_bayesian_average_formula_and_fallback(mal_files):
    score = np.array([8.0, 6.0, np.nan, np.nan])
    scored_by = np.array([300.0, 100.0, np.nan, np.nan])
    rsum = np.array([0.0, 0.0, 18.0, 0.0])
    rcount = np.array([0.0, 0.0, 2.0, 0.0])
    b = bayesian_average(score, scored_by, rsum, rcount)
    m, c = 7.0, 200.0
    assert b[0] == pytest.approx((m * c + 8.0 * 300) / (c + 300))
    assert b[1] == pytest.approx((m * c + 6.0 * 100) / (c + 100))
    assert b[2] == pytest.approx((m * c + 9.0 * 2) / (c + 2))  # from the ratings
    assert b[3] == pytest.approx(m)
    data = load_mal(*mal_files)
    # Anime 5 has no Score: its Bayesian rating uses its two ratings (7, 7). The prior is that
    # of the ratings outside the file: Cowboy Bebop's Score counts its two loaded ratings
    # (10, 6) and the Score of anime 10 its one (8), which are taken out of them.
    m = ((8.75 * 914193 - 16) / 914191 + (7.5 * 2000 - 8) / 1999) / 2
    c = (914191 + 1999) / 2
    assert data.catalogue.bayes_rating[1] == pytest.approx((m * c + 7.0 * 2) / (c + 2))
    # Cowboy Bebop: its Score with each loaded rating counted once.
    assert data.catalogue.bayes_rating[0] == pytest.approx((m * c + 8.75 * 914193)
                                                           / (c + 914193))
    assert data.summary.anime_disagreeing == 0


def test_progress_bar_runs(mal_files, capsys):
    data = load_mal(*mal_files, progress=True)
    assert data.summary.ratings_kept == 6
