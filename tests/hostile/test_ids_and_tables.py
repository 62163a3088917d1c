"""One id rule for every reader (integers within int64, never through float64, no bools) and
own tables read strictly: a ragged row, invalid UTF-8 or an unterminated quote named by file
and line, a FIFO, a folder or a device named as such, a scale that is not a finite pair
refused; the held-out ratings an evaluation scores are checked the same way."""

import json
import os

import numpy as np
import pandas as pd
import pytest

import anirec
from anirec import DataError

from ..conftest import run_cli

BIG = 2**53  # float64 holds every integer up to here, and no further


def _table(tmp_path, text: str, name="ratings.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


# ---------------------------------------------------------------------------------------------
# Ids


def test_ids_never_go_through_float64(tmp_path):
    # One whole-looking float id made the column float64 and merged 2**53 and 2**53 + 1.
    path = _table(tmp_path, f"user_id,anime_id,rating\n{BIG + 1},1,5\n{BIG},1,7\n"
                            f"{BIG + 1},2,3\n5.0,2,9\n")
    with pytest.raises(DataError, match=r"ratings.csv, column 'user_id', line 5: '5.0' is not "
                                        r"an integer id"):
        anirec.load_ratings(path)
    frame = pd.DataFrame({"user_id": [float(BIG + 2), float(BIG)], "anime_id": [1, 1],
                          "rating": [5, 7]})
    with pytest.raises(DataError, match=r"column 'user_id', row 1: 9007199254740994.0 is not "
                                        r"an integer id"):
        anirec.load_ratings(frame)
    exact = pd.DataFrame({"user_id": np.array([BIG + 1, BIG, BIG + 1], np.int64),
                          "anime_id": [1, 1, 2], "rating": [5, 7, 3]})
    data = anirec.load_ratings(exact)
    assert data.ratings.user_ids.tolist() == [BIG, BIG + 1] and len(data.ratings) == 3


def test_bool_ids_are_refused():
    frame = pd.DataFrame({"user_id": [True, False] * 8, "anime_id": range(16),
                          "rating": [5] * 15 + [6]})
    with pytest.raises(DataError, match="holds booleans, not ids"):
        anirec.load_ratings(frame)


@pytest.mark.parametrize("value", [str(2**63), "1e20", "inf", "-3", "0x10"])
def test_predict_refuses_ids_outside_int64_naming_the_line(models, tmp_path, capsys, value):
    rec, model = models["hybrid"]
    pairs = _table(tmp_path, f"user_id,anime_id\n{rec.user_ids[0]},{rec.anime_ids[0]}\n"
                             f"{value},{rec.anime_ids[0]}\n", "pairs.csv")
    status, out, err = run_cli(capsys, "predict", "--model", model, "--pairs", pairs,
                               "--out", tmp_path / "out.csv")
    assert status == 2 and "pairs.csv, column 'user_id', line 3" in err, err
    assert not (tmp_path / "out.csv").exists()


def test_predict_names_the_physical_line(models, tmp_path, capsys):
    rec, model = models["hybrid"]
    u, a = rec.user_ids[0], rec.anime_ids[0]
    # A blank line and a quoted field over two lines come before the bad row (line 7).
    pairs = _table(tmp_path, f'user_id,anime_id,note\n{u},{a},x\n\n{u},{a},"two\nlines"\n'
                             f'{u},{a},y\n{u}.5,{a},z\n', "pairs.csv")
    status, _, err = run_cli(capsys, "predict", "--model", model, "--pairs", pairs)
    assert status == 2 and "line 7" in err, err


def test_predict_keeps_the_other_columns(models, tmp_path, capsys):
    rec, model = models["hybrid"]
    u, a = rec.user_ids[:2], rec.anime_ids[:2]
    pairs = _table(tmp_path, f"note,user_id,anime_id,extra\nfirst,{u[0]},{a[0]},007\n"
                             f'"a, b",{u[1]},{a[1]},\n', "pairs.csv")
    out = tmp_path / "out.csv"
    status, _, err = run_cli(capsys, "predict", "--model", model, "--pairs", pairs,
                             "--out", out)
    assert status == 0, err
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(written.columns) == ["note", "user_id", "anime_id", "extra", "predicted_rating"]
    assert written["note"].tolist() == ["first", "a, b"]
    assert written["extra"].tolist() == ["007", ""]  # kept as written


def test_exclude_above_int64_is_no_traceback(models, capsys):
    rec, model = models["hybrid"]
    status, out, err = run_cli(capsys, "recommend", "--model", model, "--user-id",
                               rec.user_ids[0], "--exclude", str(2**70),
                               str(rec.anime_ids[0]), "--json", "--n", "1000")
    assert status == 0, err
    listed = [row["anime_id"] for row in json.loads(out)]
    assert listed and rec.anime_ids[0] not in listed


# ---------------------------------------------------------------------------------------------
# Own tables read strictly


@pytest.mark.parametrize("text,message", [
    ("user_id,anime_id,rating\n1,3,5\n1,3,5,7\n2,4,6\n", "line 3: 4 fields, but the header "
                                                       "has 3 columns"),
    ("user_id,anime_id,rating\n1,3,5\n2,4\n", "line 3: 2 fields, but the header has 3"),
    ('user_id,anime_id,rating\n1,3,5\n"2,4,6\n3,4,5\n', 'line 3: a quoted field opened there '
                                                       'is never closed'),
    (b"user_id,anime_id,rating\n1,3,5\n2,4,6\n3,4,\xff\n", r"line 4, column 'rating': invalid "
                                                          r"UTF-8 byte 0xff"),
])
def test_malformed_own_tables_name_file_and_line(tmp_path, capsys, text, message):
    path = _table(tmp_path, text)
    with pytest.raises(DataError, match=rf"ratings.csv, {message}"):
        anirec.load_ratings(path)
    status, _, err = run_cli(capsys, "train", "--scores", path, "--out",
                             tmp_path / "m.anirec")
    assert status == 2 and message.split(":")[0] in err, err


@pytest.mark.parametrize("kind,message", [("fifo", "is a FIFO or pipe"),
                                          ("folder", "is a directory"),
                                          ("device", "is a device")])
def test_not_a_regular_file_is_named_as_such(tmp_path, capsys, kind, message):
    path = tmp_path / "ratings.csv"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        path = "/dev/zero"
    with pytest.raises(DataError, match=message):
        anirec.load_ratings(path)
    status, _, err = run_cli(capsys, "train", "--scores", path, "--out",
                             tmp_path / "m.anirec")
    assert status == 2 and message in err, err


@pytest.mark.parametrize("scale,message", [((1, 5, 10), "a pair"),
                                           ((-1e308, 1e308), "finite width"),
                                           ((7, 7), "low < high")])
def test_a_rating_scale_must_be_a_finite_pair(scale, message):
    frame = pd.DataFrame({"user_id": [1, 2], "anime_id": [1, 2], "rating": [3, 7]})
    with pytest.raises(DataError, match=message):
        anirec.load_ratings(frame, rating_scale=scale)


@pytest.mark.parametrize("option,named", [("--rating-scale=-1e308,1e308", "--rating-scale"),
                                          ("--popularity-weight=1e300", "--popularity-weight")])
def test_options_are_checked_before_loading(tmp_path, capsys, option, named):
    status, _, err = run_cli(capsys, "train", "--scores", tmp_path / "missing.csv", "--out",
                             tmp_path / "m", option)
    assert status == 2 and named in err and "missing.csv" not in err, err


def test_a_mixed_column_takes_each_value_by_its_rule():
    frame = pd.DataFrame({"user_id": pd.Series(["12", 13, " 14 ", 15.0], dtype=object),
                          "anime_id": [1, 2, 3, 4], "rating": [5, 6, 7, 8]})
    assert anirec.load_ratings(frame).ratings.user_ids.tolist() == [12, 13, 14, 15]
    frame.loc[2, "user_id"] = "1e3"
    with pytest.raises(DataError, match="row 3: '1e3' is not an integer id"):
        anirec.load_ratings(frame)


def test_equal_ratings_say_to_give_the_scale():
    frame = pd.DataFrame({"user_id": [1, 2, 3], "anime_id": [1, 2, 2], "rating": [7, 7, 7]})
    with pytest.raises(DataError, match=r"every rating in column 'rating' is 7.*give it "
                                        r"\(rating_scale="):
        anirec.load_ratings(frame)


# ---------------------------------------------------------------------------------------------
# Held-out ratings


@pytest.mark.parametrize("column,value,message", [
    ("user_id", 1.5, "column 'user_id', row 2: 1.5 is not an integer id"),
    ("user_id", np.nan, "column 'user_id', row 2: nan is not an integer id"),
    ("anime_id", "x", "column 'anime_id', row 2: 'x' is not an integer id"),
    ("rating", np.nan, r"column 'rating', row 2: nan is not a rating on the model's scale"),
    ("rating", 99, r"column 'rating', row 2: 99 is not a rating on the model's scale "
                   r"1\.\.10"),
])
def test_evaluate_refuses_garbage_held_out_rows(models, column, value, message):
    rec, _ = models["hybrid"]
    frame = pd.DataFrame({"user_id": rec.user_ids[:3], "anime_id": rec.anime_ids[:3],
                          "rating": [5.0, 6.0, 7.0]}).astype(object)
    frame.loc[1, column] = value
    with pytest.raises(DataError, match=message):
        rec.evaluate(frame)


def test_the_evaluate_command_says_what_it_dropped(models, tmp_path, capsys):
    rec, model = models["hybrid"]
    heldout = _table(tmp_path, f"user_id,anime_id,rating\n{rec.user_ids[0]},{rec.anime_ids[0]},"
                               f"7\n{rec.user_ids[1]},{rec.anime_ids[1]},99\n", "test.csv")
    status, out, err = run_cli(capsys, "evaluate", "--model", model, "--scores", heldout)
    assert status == 0, err
    assert out.startswith("1 held-out ratings scored, 1 skipped (1 rating missing or not on "
                          "the scale 1..10)")
