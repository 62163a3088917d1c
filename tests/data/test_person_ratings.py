"""One person's ratings in every form: the hand-written MyAnimeList export (plain and gzipped),
a mapping, a DataFrame and a CSV file all give the same hand-written arrays."""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import anirec
from anirec import DataError, PersonRatings, read_mal_list, read_person_ratings

FIXTURE = Path(__file__).parent / "animelist.xml"

# tests/data/animelist.xml read by hand: ten entries, seven scored; One Piece (21, Watching),
# Gurren Lagann (2001, Completed) and Frieren (52991, Plan to Watch) have my_score 0.
RATED = {1: 10, 6: 9, 20: 3, 30: 8, 5114: 9, 9253: 6, 32281: 7}
LISTED = [1, 6, 20, 21, 30, 2001, 5114, 9253, 32281, 52991]


def check_rated(person: PersonRatings) -> None:
    np.testing.assert_array_equal(person.anime_ids, [1, 6, 20, 30, 5114, 9253, 32281])
    np.testing.assert_array_equal(person.ratings, [10.0, 9.0, 3.0, 8.0, 9.0, 6.0, 7.0])
    assert person.anime_ids.dtype == np.int64 and person.ratings.dtype == np.float64
    assert person.listed.dtype == np.int64
    assert len(person) == 7


def export(tmp_path: Path, entries: str, name: str = "list.xml") -> Path:
    """A minimal export holding ``entries`` (XML text of ``<anime>`` elements)."""
    path = tmp_path / name
    path.write_text('<?xml version="1.0" encoding="UTF-8" ?>\n<myanimelist>\n'
                    f"{entries}\n</myanimelist>\n", encoding="utf-8")
    return path


def entry(anime_id: str, score: str | None, title: str = "A Title", extra: str = "") -> str:
    score_xml = "" if score is None else f"<my_score>{score}</my_score>"
    return (f"<anime><series_animedb_id>{anime_id}</series_animedb_id>"
            f"<series_title><![CDATA[{title}]]></series_title>{score_xml}{extra}"
            "<my_status>Completed</my_status></anime>")


# --------------------------------------------------------------------------- the export


def test_the_fixture_gives_the_hand_written_arrays():
    person = read_mal_list(FIXTURE)
    check_rated(person)
    np.testing.assert_array_equal(person.listed, LISTED)
    assert person.source == str(FIXTURE)


def test_unscored_entries_are_listed_but_not_rated():
    person = read_mal_list(FIXTURE)
    for unscored in (21, 2001, 52991):   # Watching, Completed, Plan to Watch, all my_score 0
        assert unscored in person.listed and unscored not in person.anime_ids
    assert set(person.anime_ids) <= set(person.listed)


def test_gzipped_and_plain_give_the_same_whatever_the_name(tmp_path):
    body = FIXTURE.read_bytes()
    gz = tmp_path / "animelist_1700000000_1234567.xml.gz"
    gz.write_bytes(gzip.compress(body))
    # Told by content, not by name: gzip named .xml, plain XML named .xml.gz.
    gz_as_xml = tmp_path / "unpacked.xml"
    gz_as_xml.write_bytes(gzip.compress(body))
    plain_as_gz = tmp_path / "packed.xml.gz"
    plain_as_gz.write_bytes(body)
    plain = read_mal_list(FIXTURE)
    for path in (gz, gz_as_xml, plain_as_gz):
        other = read_mal_list(path)
        check_rated(other)
        np.testing.assert_array_equal(other.listed, plain.listed)
        assert other.source == str(path)


def test_a_large_gzipped_list_is_read_whole(tmp_path):
    # Over 1 MiB compressed and several MiB inflated: read and inflated in several chunks.
    rng = np.random.default_rng(0)
    n = 40_000
    ids = rng.permutation(np.arange(1, n + 1))
    scores = rng.integers(0, 11, n)
    titles = [rng.bytes(32).hex() for _ in range(n)]
    body = "".join(entry(str(a), str(s), t) for a, s, t in zip(ids, scores, titles))
    path = export(tmp_path, body)
    gz = tmp_path / "large.xml.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert gz.stat().st_size > 1 << 20
    order = np.argsort(ids)
    rated = scores[order] > 0
    for source in (path, gz):
        person = read_mal_list(source)
        np.testing.assert_array_equal(person.listed, np.arange(1, n + 1))
        np.testing.assert_array_equal(person.anime_ids, ids[order][rated])
        np.testing.assert_array_equal(person.ratings, scores[order][rated])


def test_myinfo_is_optional_and_unknown_elements_are_ignored(tmp_path):
    future = ("<my_new_field kind='x'><nested><deeper>7</deeper></nested></my_new_field>"
              "<my_score_history>11</my_score_history>")
    path = export(tmp_path, entry("5", "8", extra=future) + "<future_block><anime_like/>"
                  "</future_block>" + entry("7", "0"))
    person = read_mal_list(path)
    np.testing.assert_array_equal(person.anime_ids, [5])
    np.testing.assert_array_equal(person.ratings, [8.0])
    np.testing.assert_array_equal(person.listed, [5, 7])


def test_a_missing_or_empty_score_is_not_scored_and_spaces_are_allowed(tmp_path):
    path = export(tmp_path, entry("3", None) + entry("4", "") + entry(" 9 ", " 6 "))
    person = read_mal_list(path)
    np.testing.assert_array_equal(person.anime_ids, [9])
    np.testing.assert_array_equal(person.ratings, [6.0])
    np.testing.assert_array_equal(person.listed, [3, 4, 9])


def test_a_list_of_plan_to_watch_only_has_no_rating_but_a_list(tmp_path):
    person = read_mal_list(export(tmp_path, entry("52991", "0") + entry("21", "0")))
    assert len(person) == 0 and person.ratings.dtype == np.float64
    np.testing.assert_array_equal(person.listed, [21, 52991])


def test_the_same_anime_twice_with_the_same_score_counts_once(tmp_path):
    person = read_mal_list(export(tmp_path, entry("6", "9") + entry("1", "7") + entry("6", "9")))
    np.testing.assert_array_equal(person.anime_ids, [1, 6])
    np.testing.assert_array_equal(person.ratings, [7.0, 9.0])


def test_the_same_anime_twice_with_different_scores_names_both_entries(tmp_path):
    path = export(tmp_path, entry("6", "9", "Trigun") + entry("1", "7")
                  + entry("6", "4", "Trigun again"))
    with pytest.raises(DataError) as caught:
        read_mal_list(path)
    msg = str(caught.value)
    assert msg.startswith(f"{path}, entry 3 (line ")
    assert "'Trigun again'" in msg and "anime id 6 is listed again with score 4" in msg
    assert "but 9 in entry 1 (line " in msg and "'Trigun')" in msg


def test_rating_scale_is_checked_and_names_the_entry(tmp_path):
    check_rated(read_mal_list(FIXTURE, rating_scale=(1, 10)))
    with pytest.raises(DataError, match=r"entry 1 \(line \d+, anime id '1', 'Cowboy Bebop'\): "
                                        r"rating 10 is outside the rating scale 0.5..5"):
        read_mal_list(FIXTURE, rating_scale=(0.5, 5))
    with pytest.raises(ValueError, match="rating_scale"):
        read_mal_list(FIXTURE, rating_scale=(10, 1))


def test_a_person_is_frozen_with_read_only_arrays():
    person = read_mal_list(FIXTURE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        person.source = "elsewhere"
    for array in (person.anime_ids, person.ratings, person.listed):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0


def test_the_names_are_public():
    assert anirec.read_mal_list is anirec.data.read_mal_list is read_mal_list
    assert anirec.read_person_ratings is anirec.data.read_person_ratings
    assert anirec.PersonRatings is anirec.data.PersonRatings
    for name in ("read_mal_list", "read_person_ratings", "PersonRatings"):
        assert name in anirec.__all__ and name in anirec.data.__all__


# --------------------------------------------------------------------------- every form


def test_every_form_gives_the_same_ratings(tmp_path):
    frame = pd.DataFrame({"anime_id": list(RATED), "rating": list(RATED.values())})
    csv = tmp_path / "mine.csv"
    frame.to_csv(csv, index=False)
    gz = tmp_path / "mine.xml.gz"
    gz.write_bytes(gzip.compress(FIXTURE.read_bytes()))
    forms = {"mapping": RATED, "frame": frame, "csv": csv, "csv as str": str(csv),
             "xml": FIXTURE, "gz": gz}
    for form, source in forms.items():
        person = read_person_ratings(source)
        check_rated(person)
        expected_listed = LISTED if form in ("xml", "gz") else sorted(RATED)
        np.testing.assert_array_equal(person.listed, expected_listed, err_msg=form)
    assert read_person_ratings(RATED).source == "the ratings mapping"
    assert read_person_ratings(frame).source == "the ratings table"
    assert read_person_ratings(csv).source == str(csv)


def test_ids_and_ratings_of_every_numeric_kind_and_text():
    person = read_person_ratings({np.int64(30): np.float32(8.5), 1.0: "10", "6": 9,
                                  np.uint16(20): np.int8(3)})
    np.testing.assert_array_equal(person.anime_ids, [1, 6, 20, 30])
    np.testing.assert_array_equal(person.ratings, [10.0, 9.0, 3.0, 8.5])


def test_a_table_with_other_column_names(tmp_path):
    frame = pd.DataFrame({"movieId": [30, 1, 6], "stars": [4.5, 5.0, 0.5], "other": 1})
    person = read_person_ratings(frame, item="movieId", rating="stars", rating_scale=(0.5, 5))
    np.testing.assert_array_equal(person.anime_ids, [1, 6, 30])
    np.testing.assert_array_equal(person.ratings, [5.0, 0.5, 4.5])
    csv = tmp_path / "stars.csv"
    frame.to_csv(csv, index=False)
    again = read_person_ratings(csv, item="movieId", rating="stars")
    np.testing.assert_array_equal(again.ratings, person.ratings)
    with pytest.raises(DataError, match=r"the ratings table: missing column\(s\) \['anime_id', "
                                        r"'rating'\] \(found \['movieId', 'stars', 'other'\]\)"):
        read_person_ratings(frame)
    with pytest.raises(DataError, match="missing required column.*'anime_id'"):
        read_person_ratings(csv)


def test_an_export_is_told_from_a_csv_by_content(tmp_path):
    # A byte order mark, or blank lines before the root when there is no XML declaration,
    # still make an export.
    body = FIXTURE.read_bytes()
    with_bom = tmp_path / "mine.txt"
    with_bom.write_bytes(b"\xef\xbb\xbf" + body)
    check_rated(read_person_ratings(with_bom))
    no_declaration = tmp_path / "mine.dat"
    no_declaration.write_bytes(b"\n  \n" + body[body.index(b"?>") + 2:])
    check_rated(read_person_ratings(no_declaration))
    csv = tmp_path / "mine.xml"   # a CSV file named .xml is still a CSV file
    csv.write_text("anime_id,rating\n6,9\n1,10\n")
    np.testing.assert_array_equal(read_person_ratings(csv).anime_ids, [1, 6])


def test_a_repeated_anime_with_the_same_rating_counts_once_in_a_table():
    frame = pd.DataFrame({"anime_id": [6, 1, 6], "rating": [9, 7, 9.0]})
    person = read_person_ratings(frame)
    np.testing.assert_array_equal(person.anime_ids, [1, 6])
    np.testing.assert_array_equal(person.ratings, [7.0, 9.0])
    np.testing.assert_array_equal(person.listed, [1, 6])


@pytest.mark.parametrize("mapping,message", [
    ({True: 9}, "the ratings mapping, key True: not an integer anime id"),
    ({1.5: 9}, "key 1.5: not an integer anime id"),
    ({-3: 9}, "key -3: not an integer anime id"),
    ({2**70: 9}, f"key {2**70}: not an integer anime id"),
    ({"1e3": 9}, "key '1e3': not an integer anime id"),
    ({float("nan"): 9}, "key nan: not an integer anime id"),
    ({None: 9}, "key None: not an integer anime id"),
    ({5: float("nan")}, "the ratings mapping, anime id 5: rating nan is not a finite number"),
    ({5: float("inf")}, "anime id 5: rating inf is not a finite number"),
    ({5: True}, "anime id 5: rating True is not a finite number"),
    ({5: None}, "anime id 5: rating None is not a finite number"),
    ({5: "nine"}, "anime id 5: rating 'nine' is not a finite number"),
    ({1: 9, "1": 7}, "the ratings mapping, key '1': anime id 1 again with rating 7, but 9 at "
                     "key 1"),
    ({1: 9, 2: 11}, "the ratings mapping, anime id 2: rating 11 is outside the rating scale "
                    "1..10"),
    ({}, "the ratings mapping: no rating given"),
])
def test_bad_mappings_name_the_key(mapping, message):
    with pytest.raises(DataError) as caught:
        read_person_ratings(mapping, rating_scale=(1, 10))
    assert message in str(caught.value)


@pytest.mark.parametrize("ids,ratings,message", [
    ([1, True], [9, 8], "column 'anime_id', row 2: 'True' is not an integer id"),
    ([1.0, 2.5], [9, 8], "column 'anime_id', row 2: '2.5' is not an integer id"),
    ([1, np.nan], [9, 8], "column 'anime_id', row 2: 'nan' is not an integer id"),
    ([1, -4], [9, 8], "column 'anime_id', row 2: '-4' is not an integer id"),
    ([1, 2], [9, np.inf], "column 'rating', row 2: 'inf' is not a finite number"),
    ([1, 2], [np.nan, 8], "column 'rating', row 1: 'nan' is not a finite number"),
    ([1, 2], [9, False], "column 'rating', row 2: 'False' is not a finite number"),
    ([7, 3, 7], [9, 8, 6], "the ratings table, column 'anime_id', row 3: anime id 7 again "
                           "with rating 6, but 9 at column 'anime_id', row 1"),
    ([], [], "the ratings table: no rating given"),
])
def test_bad_tables_name_the_row_and_column(ids, ratings, message):
    frame = pd.DataFrame({"anime_id": pd.Series(ids, dtype=object),
                          "rating": pd.Series(ratings, dtype=object)})
    with pytest.raises(DataError) as caught:
        read_person_ratings(frame)
    assert message in str(caught.value)


@pytest.mark.parametrize("row,message", [
    ("-5,9", "column 'anime_id', row 2: '-5' is not an integer id"),
    ("1.5,9", "column 'anime_id', row 2: '1.5' is not an integer id"),
    ("1e3,9", "column 'anime_id', row 2: '1e3' is not an integer id"),
    (f"{2**70},9", f"column 'anime_id', row 2: '{2**70}' is not an integer id"),
    (",9", "column 'anime_id', row 2: (empty) is not an integer id"),
    ("abc,9", "column 'anime_id', row 2: 'abc' is not an integer id"),
    ("5,", "column 'rating', row 2: (empty) is not a finite number"),
    ("5,nan", "column 'rating', row 2: 'nan' is not a finite number"),
    ("5,high", "column 'rating', row 2: 'high' is not a finite number"),
    ("5,0x9", "column 'rating', row 2: '0x9' is not a finite number"),
])
def test_bad_csv_rows_name_the_file_row_and_column(tmp_path, row, message):
    path = tmp_path / "mine.csv"
    path.write_text(f"anime_id,rating\n1,10\n{row}\n")
    with pytest.raises(DataError) as caught:
        read_person_ratings(path)
    assert str(caught.value).startswith(f"{path}, ") and message in str(caught.value)


def test_what_is_not_ratings_is_a_type_error():
    with pytest.raises(TypeError, match="source must be a mapping.*got list"):
        read_person_ratings([(1, 9)])


def test_a_person_compares_by_identity_not_by_array_truth():
    person = read_mal_list(FIXTURE)
    assert person == person and person != read_mal_list(FIXTURE)
    assert len({person}) == 1
