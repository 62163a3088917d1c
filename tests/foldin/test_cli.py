"""``anirec recommend --ratings`` and ``anirec predict --ratings``, end to end with the
hand-written list export, against the Python API on the same saved model."""

import gzip
import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from anirec import Recommender

from ..conftest import run_cli
from .conftest import EXPORT, KNOWN, MISSING



@pytest.fixture(scope="module")
def gzipped(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "animelist_1700000000_fixture_fan.xml.gz"
    path.write_bytes(gzip.compress(EXPORT.read_bytes()))
    return path


def test_recommend_for_a_list_export_with_reasons(fan_model, gzipped, tmp_path, capsys):
    code, out, err = run_cli(capsys, "recommend", "--model", fan_model, "--ratings", gzipped,
                             "--explain", "--n", 7, "--out", tmp_path / "recs.csv")
    assert code == 0 and out == ""
    # The one anime of the list the catalogue lacks is reported, in one line.
    assert err.count("\n") == 1 and "warning: 1 of 10 anime of" in err and str(MISSING) in err
    written = pd.read_csv(tmp_path / "recs.csv", keep_default_na=False)
    rec = Recommender.load(fan_model)
    with pytest.warns(Warning):
        expected = rec.recommend_for_ratings(gzipped, n=7, explain=True)
    assert written.columns.tolist() == ["rank", "score", "predicted_rating", "anime_id", "name",
                                        "genres", "because"]
    assert written["anime_id"].tolist() == expected["anime_id"].tolist()
    assert written["because"].tolist() == expected["because"].tolist()
    assert not set(written["anime_id"]) & set(KNOWN)
    # As a table (the default) and as JSON.
    code, out, _ = run_cli(capsys, "recommend", "--model", fan_model, "--ratings", EXPORT,
                           "--explain", "--n", 3)
    assert code == 0 and "because" in out.splitlines()[0]
    code, out, _ = run_cli(capsys, "recommend", "--model", fan_model, "--ratings", EXPORT,
                           "--n", 3, "--json")
    assert code == 0 and [r["anime_id"] for r in json.loads(out)] == \
        expected["anime_id"].tolist()[:3]


def test_recommend_for_ratings_with_filters(fan_model, tmp_path, capsys):
    table = pd.DataFrame({"anime_id": [1, 6, 30, 20], "rating": [10, 9, 8, 3]})
    table.to_csv(tmp_path / "mine.csv", index=False)
    rec = Recommender.load(fan_model)
    expected = rec.recommend_for_ratings(tmp_path / "mine.csv", n=6, types=["TV", "Movie"],
                                         genres=["-Comedy"], min_year=2005)
    code, out, err = run_cli(capsys, "recommend", "--model", fan_model, "--ratings",
                             tmp_path / "mine.csv", "--n", 6, "--only-types", "TV,Movie",
                             "--without-genres", "Comedy", "--min-year", 2005, "--out", "-")
    assert code == 0 and err == ""
    assert pd.read_csv(io.StringIO(out))["anime_id"].tolist() == \
        expected["anime_id"].tolist()
    # The same filters for a known user and a genre taste.
    user = int(rec.user_ids[0])
    code, out, _ = run_cli(capsys, "recommend", "--model", fan_model, "--user-id", user, "--n", 5,
                           "--only-genres", "Action,Sci-Fi", "--without-types", "Music",
                           "--json")
    assert [r["anime_id"] for r in json.loads(out)] == rec.recommend(
        user, n=5, genres=["Action", "Sci-Fi"], types=["-Music"])["anime_id"].tolist()
    code, out, _ = run_cli(capsys, "recommend", "--model", fan_model, "--genres", "Drama=9",
                           "--n", 5, "--min-year", 2010, "--json")
    assert [r["anime_id"] for r in json.loads(out)] == rec.recommend_for_genres(
        {"Drama": 9}, n=5, min_year=2010)["anime_id"].tolist()


def test_predict_for_a_list(fan_model, tmp_path, capsys):
    pairs = pd.DataFrame({"anime_id": [30, 999_999_999, 5114, 101], "note": ["a", "b", "c", ""]})
    pairs.to_csv(tmp_path / "anime.csv", index=False)
    rec = Recommender.load(fan_model)
    code, out, err = run_cli(capsys, "predict", "--model", fan_model, "--ratings", EXPORT,
                             "--pairs", tmp_path / "anime.csv", "--out", tmp_path / "pred.csv")
    assert code == 0 and "wrote 4 predictions" in out
    assert "2 of 4 anime skipped (2 anime not in the catalogue)" in err
    written = pd.read_csv(tmp_path / "pred.csv", keep_default_na=False)
    assert written["note"].tolist() == ["a", "b", "c", ""]
    with pytest.warns(Warning):
        expected = rec.predict_for_ratings(EXPORT, [30, 5114])
    np.testing.assert_allclose(written["predicted_rating"].iloc[[0, 2]].astype(float), expected)
    assert written["predicted_rating"].iloc[1] == "" and written["predicted_rating"].iloc[3] == ""
    code, _, err = run_cli(capsys, "predict", "--model", fan_model, "--ratings", EXPORT, "--pairs",
                           tmp_path / "anime.csv", "--strict", "--out", tmp_path / "strict.csv")
    assert code == 2 and "anime.csv, line 3: unknown anime id 999999999" in err
    assert not (tmp_path / "strict.csv").exists()


@pytest.mark.parametrize("argv,message", [
    (["--all-users", "--out", "x.csv", "--min-year", "2000"],
     "the filters (--only-genres, --without-genres, --only-types, --without-types, "
     "--min-year) apply to --user-id, --genres and --ratings"),
    (["--user-id", "1", "--explain"], "--explain gives the reasons of recommendations for "
                                      "--ratings"),
    (["--ratings", "missing.xml"], "missing.xml: file not found"),
    (["--ratings", "{export}", "--only-types", "Series"], "types: unknown type 'Series'"),
    (["--ratings", "{export}", "--min-year", "0"], "expected an integer within 1..9999"),
    (["--ratings", "{export}", "--user-id", "1"], "not allowed with argument"),
])
def test_bad_requests_are_one_line(fan_model, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    argv = [part.replace("{export}", str(EXPORT)) for part in argv]
    code, out, err = run_cli(capsys, "recommend", "--model", fan_model, *argv)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.csv").exists()


def test_a_bad_export_is_one_line_from_a_process(fan_model, tmp_path):
    bad = tmp_path / "animelist.xml"
    bad.write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><myanimelist/>')
    done = subprocess.run([sys.executable, "-m", "anirec", "recommend", "--model",
                           str(fan_model), "--ratings", str(bad)], capture_output=True,
                          text=True, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "declares a DTD" in done.stderr
