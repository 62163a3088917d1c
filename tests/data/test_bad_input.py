"""Every bad input raises anirec.errors.DataError naming the file, the column and the row."""

from __future__ import annotations

from pathlib import Path

import pytest

from anirec.data import load_mal
from anirec.errors import DataError

from .conftest import ANIME_HEADER, ANIME_ROWS, SCORES_HEADER, SCORES_ROWS


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


def good_anime(tmp_path: Path) -> Path:
    return write(tmp_path / "anime.csv", "\n".join([ANIME_HEADER, *ANIME_ROWS]) + "\n")


def good_scores(tmp_path: Path) -> Path:
    return write(tmp_path / "scores.csv", "\n".join([SCORES_HEADER, *SCORES_ROWS]) + "\n")


def scores_with(tmp_path: Path, rows: list[str], header: str = SCORES_HEADER) -> Path:
    return write(tmp_path / "scores.csv", "\n".join([header, *rows]) + "\n")


def check(exc: pytest.ExceptionInfo, *parts: str) -> None:
    msg = str(exc.value)
    for p in parts:
        assert p in msg, f"{p!r} not in {msg!r}"


def test_missing_files(tmp_path):
    with pytest.raises(DataError) as e:
        load_mal(tmp_path / "nope.csv", good_scores(tmp_path))
    check(e, "nope.csv", "not found")
    with pytest.raises(DataError) as e:
        load_mal(good_anime(tmp_path), tmp_path / "gone.csv")
    check(e, "gone.csv", "not found")


def test_empty_files(tmp_path):
    empty = write(tmp_path / "empty.csv", b"")
    with pytest.raises(DataError) as e:
        load_mal(empty, good_scores(tmp_path))
    check(e, "empty.csv", "empty")
    with pytest.raises(DataError) as e:
        load_mal(good_anime(tmp_path), empty)
    check(e, "empty.csv", "empty")
    header_only = write(tmp_path / "header.csv", SCORES_HEADER + "\n")
    with pytest.raises(DataError) as e:
        load_mal(good_anime(tmp_path), header_only)
    check(e, "header.csv", "no data rows")


def test_missing_required_column(tmp_path):
    bad = scores_with(tmp_path, ["1,a,1,t"], header="user_id,Username,anime_id,Anime Title")
    with pytest.raises(DataError) as e:
        load_mal(good_anime(tmp_path), bad)
    check(e, "scores.csv", "'rating'")
    anime = write(tmp_path / "a2.csv",
                  ANIME_HEADER.replace(",Genres,", ",Genre,") + "\n" + ANIME_ROWS[0] + "\n")
    with pytest.raises(DataError) as e:
        load_mal(anime, good_scores(tmp_path))
    check(e, "a2.csv", "'Genres'")


@pytest.mark.parametrize("sep", [";", "\t"])
def test_wrong_delimiter(tmp_path, sep):
    rows = [r.replace(",", sep) for r in ["1,a,1,t,5", "2,b,5,u,6"]]
    bad = scores_with(tmp_path, rows, header=SCORES_HEADER.replace(",", sep))
    with pytest.raises(DataError) as e:
        load_mal(good_anime(tmp_path), bad)
    check(e, "scores.csv", "delimiter", repr(sep))


@pytest.mark.parametrize("column,row", [("user_id", "x7,a,1,t,5"), ("anime_id", "7,a,one,t,5"),
                                        ("rating", "7,a,1,t,high"), ("user_id", "1.5,a,1,t,5"),
                                        ("anime_id", "7,a,,t,5")])
def test_non_numeric_values_in_scores(tmp_path, column, row):
    bad = scores_with(tmp_path, [SCORES_ROWS[0], SCORES_ROWS[1], row, SCORES_ROWS[7]])
    with pytest.raises(DataError) as e:
        load_mal(good_anime(tmp_path), bad)
    check(e, "scores.csv", f"column {column!r}", "row 3")


def test_non_numeric_anime_id(tmp_path):
    rows = [ANIME_ROWS[0], ANIME_ROWS[1].replace("5,", "five,", 1)]
    anime = write(tmp_path / "anime.csv", "\n".join([ANIME_HEADER, *rows]) + "\n")
    with pytest.raises(DataError) as e:
        load_mal(anime, good_scores(tmp_path))
    check(e, "anime.csv", "column 'anime_id'", "row 2", "'five'")


def test_undecodable_bytes_in_scores(tmp_path):
    body = "\n".join([SCORES_HEADER, SCORES_ROWS[0], SCORES_ROWS[7]]).encode() + \
        b'\n9,bad\xff\xfename,1,Cowboy Bebop,7\n' + SCORES_ROWS[9].encode() + b"\n"
    bad = write(tmp_path / "scores.csv", body)
    with pytest.raises(DataError) as e:
        load_mal(good_anime(tmp_path), bad)
    check(e, "scores.csv", "line 4", "column 'Username'", "UTF-8", "0xff")


def test_undecodable_bytes_in_anime(tmp_path):
    body = ("\n".join([ANIME_HEADER, ANIME_ROWS[0]]) + "\n").encode() + \
        ANIME_ROWS[5].encode().replace(b"Old Title", b"Old \xe9 Title") + b"\n"
    bad = write(tmp_path / "anime.csv", body)
    with pytest.raises(DataError) as e:
        load_mal(bad, good_scores(tmp_path))
    check(e, "anime.csv", "line 3", "column 'Name'", "0xe9")


def test_undecodable_byte_in_a_late_block(tmp_path):
    # Past the header lines, so the streaming check (not the header check) finds it.
    rows = [f"{u},user{u},1,Cowboy Bebop,{1 + u % 10}" for u in range(60_000)]
    body = ("\n".join([SCORES_HEADER, *rows]) + "\n").encode()
    body += b"60001,caf\xc3,1,Cowboy Bebop,5\n"
    bad = write(tmp_path / "scores.csv", body)
    with pytest.raises(DataError) as e:
        load_mal(good_anime(tmp_path), bad)
    check(e, "scores.csv", "line 60002", "column 'Username'")


def test_ragged_row(tmp_path):
    bad = scores_with(tmp_path, [SCORES_ROWS[0], "7,a,1,t,5,extra,fields", SCORES_ROWS[7]])
    with pytest.raises(DataError) as e:
        load_mal(good_anime(tmp_path), bad)
    check(e, "scores.csv")


def test_negative_id(tmp_path):
    bad = scores_with(tmp_path, [SCORES_ROWS[0], "-3,a,1,t,5"])
    with pytest.raises(DataError) as e:
        load_mal(good_anime(tmp_path), bad)
    check(e, "scores.csv", "column 'user_id'", "row 2")
