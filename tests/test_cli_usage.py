"""The command line's contract: version, usage, help with defaults, output paths checked before
any work and written atomically, standard output, refusals with exit 2 and one line."""

import argparse
import json
import os

import numpy as np
import pandas as pd
import pytest

import anirec
from anirec import Recommender, cli
from anirec.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli_usage")
    assert main(["generate", "--out", str(folder), "--users", "200", "--anime", "120",
                 "--ratings", "6000", "--seed", "2"]) == 0
    model = folder / "model.anirec"
    assert main(["train", "--anime", str(folder / "anime-dataset-2023.csv"),
                 "--scores", str(folder / "users-score-2023.csv"), "--out", str(model),
                 "--layers", "16", "--epochs", "2", "--quiet"]) == 0
    return folder, model


def _listing(folder) -> set:
    return {os.path.relpath(os.path.join(root, name), folder)
            for root, dirs, names in os.walk(folder) for name in dirs + names}


def refused(capsys, argv, where):
    """Run ``argv``; check exit 2, one line on stderr, no traceback, nothing new in ``where``."""
    before = _listing(where)
    try:
        code = main([str(arg) for arg in argv])
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    assert code == 2, (argv, out, err)
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert _listing(where) == before, argv
    return err


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"anirec {anirec.__version__}"


def test_no_command_prints_usage_and_the_commands(capsys):
    # Asking what anirec can do is no error: the command list on standard output, status 0.
    assert main([]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("usage: anirec") and err == ""
    for name in ("demo", "generate", "train", "evaluate", "predict", "recommend", "similar",
                 "info"):
        assert f"\n    {name}" in out


def _subparsers():
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_option_has_help_and_shows_its_default():
    for name, sub in _subparsers().items():
        text = sub.format_help()
        # One option of a required group must be given: no default to show.
        chosen = {id(action) for group in sub._mutually_exclusive_groups if group.required
                  for action in group._group_actions}
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (name, action.option_strings)
            if not action.required and id(action) not in chosen:
                shown = sub._get_formatter()._get_help_string(action)
                assert "default" in shown, (name, action.option_strings)
                assert (shown % {"default": action.default}) in " ".join(text.split()) or \
                    action.help.split()[0] in text


def test_recommend_help_explains_the_columns():
    text = _subparsers()["recommend"].format_help()
    for word in ("score", "ranks the list", "predicted_rating", "never recommended"):
        assert word in " ".join(text.split()), word


def test_refusals_come_before_loading(files, capsys, tmp_path):
    folder, model = files
    data = folder / "anime-dataset-2023.csv"
    missing = tmp_path / "missing.csv"  # were it read first, the error would name it
    cases = [
        (["train", "--anime", missing, "--scores", missing, "--out", data / "x.anirec"],
         "is a file, not a folder"),
        (["train", "--anime", data, "--scores", missing, "--out", data], "also an input"),
        (["train", "--anime", missing, "--scores", data, "--out", data], "also an input"),
        (["train", "--anime", missing, "--scores", missing, "--out", "-"], "standard output"),
        (["train", "--anime", missing, "--scores", missing, "--out", tmp_path / "m.anirec",
          "--save-split", data], "is a file, not a folder"),
        (["train", "--anime", missing, "--scores", missing, "--out", tmp_path / "m",
          "--objective", "rating", "--ranking-weight", "5"], "--ranking-weight has no effect"),
        (["train", "--anime", missing, "--scores", missing, "--out", tmp_path / "m",
          "--objective", "rating", "--temperature", "0.5"], "--temperature has no effect"),
        (["train", "--anime", missing, "--scores", missing, "--out", tmp_path / "m",
          "--objective", "ranking", "--ranking-weight", "1"], "no effect"),
        (["train", "--anime", missing, "--scores", missing, "--out", tmp_path / "m",
          "--validation", "0.5", "--test", "0.5"], "no training ratings"),
        (["generate", "--out", data], "is a file, not a folder"),
        (["demo", "--out", data, "--users", "50"], "is a file, not a folder"),
        (["recommend", "--model", model, "--user-id", "1", "--out", tmp_path],
         "is a folder"),
        (["predict", "--model", model, "--pairs", missing, "--out", data / "p.csv"],
         "is a file, not a folder"),
        (["predict", "--model", model, "--pairs", missing, "--out", model], "also an input"),
        (["similar", "--model", model, "--anime-id", "1", "--out", data / "s.csv"],
         "is a file, not a folder"),
    ]
    for argv, message in cases:
        assert message in refused(capsys, argv, tmp_path), argv
    assert not missing.exists()


@pytest.mark.parametrize("argv, message", [
    (["generate", "--out", "g", "--users", str(10**12)], "--users"),
    (["generate", "--out", "g", "--ratings", str(10**12)], "--ratings"),
    (["train", "--anime", "a", "--scores", "b", "--out", "c", "--layers", str(10**10)],
     "--layers"),
    (["train", "--anime", "a", "--scores", "b", "--out", "c", "--layers", ",".join(["8"] * 99)],
     "--layers"),
    (["train", "--anime", "a", "--scores", "b", "--out", "c", "--batch-size", str(2**63)],
     "--batch-size"),
    (["train", "--anime", "a", "--scores", "b", "--out", "c", "--epochs", str(10**9)],
     "--epochs"),
    (["train", "--anime", "a", "--scores", "b", "--out", "c", "--lr", "inf"], "--lr"),
    (["train", "--anime", "a", "--scores", "b", "--out", "c", "--seed", "-1"], "--seed"),
    (["train", "--anime", "a", "--scores", "b", "--out", "c", "--validation", "x"],
     "--validation"),
    (["recommend", "--model", "m", "--user-id", "1", "--n", str(10**12)], "--n"),
    (["evaluate", "--model", "m", "--anime", "a", "--scores", "b", "--k", "0"], "--k"),
])
def test_huge_or_malformed_numbers_are_refused(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert message in refused(capsys, argv, tmp_path)


def test_failed_commands_leave_no_file(files, capsys, tmp_path, monkeypatch):
    folder, model = files
    out = tmp_path / "new" / "recs.csv"
    refused(capsys, ["recommend", "--model", model, "--user-id", "987654", "--out", out],
            tmp_path)
    refused(capsys, ["recommend", "--model", model, "--all-users"], tmp_path)
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"user_id": [987654], "anime_id": [1]}).to_csv(pairs, index=False)
    refused(capsys, ["predict", "--model", model, "--pairs", pairs, "--strict",
                     "--out", tmp_path / "p" / "pred.csv"], tmp_path)

    # A failure in the middle of a streamed --all-users write: nothing is left, not even the
    # temporary file.
    def broken(self, n=10, **kwargs):
        yield self.recommend(self.user_ids[:3], n)
        raise ValueError("disk full (simulated)")

    monkeypatch.setattr(Recommender, "iter_recommend_all", broken)
    refused(capsys, ["recommend", "--model", model, "--all-users", "--out", out], tmp_path)


def test_missing_output_folders_are_created(files, capsys, tmp_path):
    folder, model = files
    out = tmp_path / "a" / "b" / "recs.csv"
    assert main(["recommend", "--model", str(model), "--all-users", "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 200 * 10
    assert sorted(_listing(tmp_path)) == ["a", "a/b", "a/b/recs.csv"]


def test_dash_is_standard_output(files, capsys, tmp_path, monkeypatch):
    folder, model = files
    monkeypatch.chdir(tmp_path)
    user = int(Recommender.load(model).user_ids[0])
    assert main(["recommend", "--model", str(model), "--user-id", str(user), "--out", "-"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("user_id,rank,score,predicted_rating,anime_id,name,genres\n")
    assert len(out.strip().splitlines()) == 11
    assert main(["recommend", "--model", str(model), "--all-users", "--n", "2",
                 "--out", "-"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1 + 200 * 2
    assert main(["similar", "--model", str(model), "--anime-id",
                 str(int(Recommender.load(model).anime_ids[0])), "--out", "-"]) == 0
    assert capsys.readouterr().out.startswith("query_anime_id,rank,similarity")
    assert not (tmp_path / "-").exists()


def test_predict_prints_to_stdout_and_counts_unknown_pairs(files, capsys, tmp_path):
    folder, model = files
    rec = Recommender.load(model)
    user, anime = int(rec.user_ids[0]), int(rec.anime_ids[0])
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"user_id": [user, 987654, user], "anime_id": [anime, anime, 987654]}) \
        .to_csv(pairs, index=False)
    assert main(["predict", "--model", str(model), "--pairs", str(pairs)]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert lines[0] == "user_id,anime_id,predicted_rating"
    assert float(lines[1].split(",")[2]) == pytest.approx(rec.predict([user], [anime])[0])
    assert lines[2].endswith(",") and lines[3].endswith(",")
    assert len(err.strip().splitlines()) == 1 and "2 of 3 pairs" in err
    err = refused(capsys, ["predict", "--model", model, "--pairs", pairs, "--strict"], tmp_path)
    assert "unknown user id 987654" in err and "line 3" in err
    assert _listing(tmp_path) == {"pairs.csv"}


def test_info_is_readable_by_default(files, capsys):
    _, model = files
    assert main(["info", "--model", str(model)]) == 0
    out = capsys.readouterr().out
    assert "objective       hybrid" in out and "200 users" in out and "kept epoch" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)
    assert main(["info", "--model", str(model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["users"] == 200


def test_validation_zero_means_no_validation(files, capsys, tmp_path):
    folder, _ = files
    model = tmp_path / "m.anirec"
    assert main(["train", "--anime", str(folder / "anime-dataset-2023.csv"), "--scores",
                 str(folder / "users-score-2023.csv"), "--out", str(model), "--layers", "8",
                 "--epochs", "3", "--validation", "0", "--quiet"]) == 0
    rec = Recommender.load(model)
    assert len(rec.model.history_) == 3 and rec.model.best_epoch_ is None
    assert all("val_loss" not in entry for entry in rec.model.history_)


def test_save_split_writes_the_held_out_ratings(files, capsys, tmp_path):
    folder, _ = files
    model, split = tmp_path / "m.anirec", tmp_path / "split"
    assert main(["train", "--anime", str(folder / "anime-dataset-2023.csv"), "--scores",
                 str(folder / "users-score-2023.csv"), "--out", str(model), "--layers", "8",
                 "--epochs", "1", "--save-split", str(split), "--quiet"]) == 0
    parts = {name: pd.read_csv(split / f"{name}.csv")
             for name in ("train", "validation", "test")}
    rec = Recommender.load(model)
    test = parts["test"]
    np.testing.assert_array_equal(test["user_id"], rec.user_ids[rec.test.users])
    np.testing.assert_array_equal(test["anime_id"], rec.anime_ids[rec.test.items])
    np.testing.assert_array_equal(test["rating"], rec.test.ratings)
    everything = pd.concat(parts.values())
    assert not everything.duplicated(["user_id", "anime_id"]).any()
    assert len(everything) == int(rec.rated[0][-1])
    # The test file is the held-out input of `anirec evaluate` and `anirec predict`.
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model), "--anime",
                 str(folder / "anime-dataset-2023.csv"), "--scores", str(split / "test.csv"),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["attrs"]["ratings"] == len(test) and report["attrs"]["skipped"] == 0
