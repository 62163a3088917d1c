"""The anirec command, end to end on a small generated data set, error paths included."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from anirec.cli import main
from anirec.errors import AnirecWarning

from .conftest import run_cli



@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    assert main(["generate", "--out", str(folder), "--users", "300", "--anime", "200",
                 "--ratings", "15000", "--seed", "1"]) == 0
    model = folder / "model.anirec"
    assert main(["train", "--anime", str(folder / "anime-dataset-2023.csv"),
                 "--scores", str(folder / "users-score-2023.csv"), "--out", str(model),
                 "--layers", "32,16", "--epochs", "3", "--quiet"]) == 0
    return folder, model


def test_train_prints_the_evaluation(files, capsys):
    from anirec import Recommender

    folder, _ = files
    saved = folder / "second.anirec"
    code, out, _ = run_cli(capsys, "train", "--anime", folder / "anime-dataset-2023.csv",
                           "--scores", folder / "users-score-2023.csv", "--out", saved,
                           "--layers", "16", "--epochs", "1", "--quiet",
                           "--optimizer", "sgd", "--lr", "0.05", "--weighting", "centered",
                           "--exclude-genres", "Ecchi,Hentai", "--test", "0.2")
    assert code == 0 and "saved" in out
    rec = Recommender.load(saved)
    # Every option reached the saved model.
    config = rec.model.get_config()
    assert (config["layers"], config["optimizer"], config["lr"], config["epochs"]) == \
        ([16], "sgd", 0.05, 1)
    assert (rec.options["weighting"], rec.options["test"]) == ("centered", 0.2)
    assert rec.excluded_genres == ("Ecchi", "Hentai")
    # The printed table is the saved model's evaluation, row by row.
    report = rec.evaluate(k=10)
    lines = out.splitlines()
    for method, row in report.iterrows():
        line, = (line for line in lines if line.startswith(method + " "))
        printed = line[len(method):].split()
        expected = [f"{value:.4f}" if value == value else "-" for value in row]
        assert printed == expected, (method, printed, expected)


def test_train_with_a_ranking_objective(files, capsys):
    from anirec import Recommender

    folder, _ = files
    out_model = folder / "hybrid.anirec"
    code, out, _ = run_cli(capsys, "train", "--anime", folder / "anime-dataset-2023.csv",
                           "--scores", folder / "users-score-2023.csv", "--out", out_model,
                           "--layers", "16", "--epochs", "2", "--quiet", "--objective", "hybrid",
                           "--ranking-weight", "0.05", "--temperature", "0.3",
                           "--positive-threshold", "7")
    assert code == 0 and "two-tower" in out
    config = Recommender.load(out_model).model.get_config()
    assert (config["objective"], config["ranking_weight"], config["temperature"],
            config["positive_threshold"]) == ("hybrid", 0.05, 0.3, 7.0)


def test_evaluate_json(files, capsys):
    from anirec import Recommender
    from anirec.metrics import mae, rmse

    folder, model = files
    code, out, _ = run_cli(capsys, "evaluate", "--model", model, "--anime",
                           folder / "anime-dataset-2023.csv", "--scores",
                           folder / "users-score-2023.csv", "--k", "5", "--json")
    assert code == 0
    report = json.loads(out)
    # The held-out ratings are the file's, read here directly: the pairs the model knows.
    rec = Recommender.load(model)
    scores = pd.read_csv(folder / "users-score-2023.csv")
    known = scores["user_id"].isin(rec.user_ids) & scores["anime_id"].isin(rec.anime_ids)
    scores = scores[known]
    assert report["attrs"]["ratings"] == len(scores)
    assert (~known).sum() > 0  # ratings of excluded anime: the loader drops them
    assert report["attrs"]["k"] == 5
    predicted = rec.predict(scores["user_id"].to_numpy(), scores["anime_id"].to_numpy())
    two_tower = report["methods"]["two-tower"]
    assert two_tower["rmse"] == pytest.approx(rmse(predicted, scores["rating"]), rel=1e-9)
    assert two_tower["mae"] == pytest.approx(mae(predicted, scores["rating"]), rel=1e-9)
    mean = rec.baselines[0].mean
    assert report["methods"]["global mean"]["rmse"] == pytest.approx(
        float(np.sqrt(np.mean((scores["rating"] - mean) ** 2))), rel=1e-9)
    # The scores file holds the training ratings too: the report says so.
    with pytest.warns(AnirecWarning, match="of pairs the model was trained on"):
        expected = rec.evaluate(scores[["user_id", "anime_id", "rating"]], k=5)
    assert report["attrs"]["trained_on"] == expected.attrs["trained_on"] > 0
    for method, row in expected.iterrows():
        for column, value in row.items():
            got = report["methods"][method][column]
            assert (got is None and value != value) or got == pytest.approx(value, rel=1e-12)
    assert report["methods"]["popularity"]["rmse"] is None


def test_predict_writes_predictions(files, capsys, tmp_path):
    from anirec import Recommender

    _, model = files
    rec = Recommender.load(model)
    pairs = pd.DataFrame({"user_id": rec.user_ids[:20], "anime_id": rec.anime_ids[:20]})
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    code, _, _ = run_cli(capsys, "predict", "--model", model, "--pairs", tmp_path / "pairs.csv",
                         "--out", tmp_path / "out.csv")
    assert code == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == ["user_id", "anime_id", "predicted_rating"]
    expected = rec.predict(pairs["user_id"], pairs["anime_id"])
    assert out["predicted_rating"].to_numpy() == pytest.approx(expected, rel=1e-9)


def test_recommend_users_genres_and_all(files, capsys, tmp_path):
    folder, model = files
    user_ids = pd.read_csv(folder / "users-score-2023.csv")["user_id"].unique()[:2]
    code, out, _ = run_cli(capsys, "recommend", "--model", model, "--user-id", *user_ids,
                           "--n", "3", "--json")
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 6 and {"user_id", "rank", "anime_id", "name", "score",
                               "predicted_rating"} <= set(rows[0])
    code, out, _ = run_cli(capsys, "recommend", "--model", model, "--genres", "Action=9,Comedy=7")
    assert code == 0 and "anime_id" in out
    code, _, _ = run_cli(capsys, "recommend", "--model", model, "--all-users", "--n", "2",
                         "--out", tmp_path / "recs.csv")
    recs = pd.read_csv(tmp_path / "recs.csv")
    assert code == 0
    assert list(recs.columns) == ["user_id", "rank", "score", "predicted_rating", "anime_id",
                                  "name", "genres"]
    assert recs["user_id"].nunique() == 300 and len(recs) == 600


def test_similar_and_info(files, capsys):
    folder, model = files
    anime_id = json.loads(run_cli(capsys, "recommend", "--model", model, "--genres", "Drama=8",
                                  "--json")[1])[0]["anime_id"]
    code, out, _ = run_cli(capsys, "similar", "--model", model, "--anime-id", anime_id, "--n", "4",
                           "--json")
    assert code == 0 and len(json.loads(out)) == 4
    code, out, _ = run_cli(capsys, "info", "--model", model, "--json")
    info = json.loads(out)
    assert code == 0 and info["users"] == 300 and len(info["history"]) >= 1


@pytest.mark.parametrize("argv, message", [
    (["info", "--model", "missing.anirec"], "does not exist"),
    (["recommend", "--model", "{model}", "--user-id", "123456789"], "unknown user id"),
    (["similar", "--model", "{model}", "--anime-id", "-3"], "unknown anime id"),
    (["recommend", "--model", "{model}", "--genres", "Action=nine"], "Genre=rating"),
    (["recommend", "--model", "{model}", "--genres", "Actoin=9"], "valid genres"),
    (["recommend", "--model", "{model}", "--all-users"], "--out"),
    (["train", "--anime", "{folder}/missing.csv", "--scores", "{folder}/users-score-2023.csv",
      "--out", "{folder}/x"], "missing.csv"),
    (["train", "--anime", "{folder}/users-score-2023.csv", "--scores",
      "{folder}/users-score-2023.csv", "--out", "{folder}/x"], "column"),
    (["train", "--anime", "a", "--scores", "b", "--out", "c", "--layers", "64,x"], "integers"),
    (["predict", "--model", "{model}", "--pairs", "{folder}/anime-dataset-2023.csv",
      "--out", "{folder}/p.csv"], "user_id"),
    (["frobnicate"], "invalid choice"),
    (["train", "--anime", "a", "--scores", "b", "--out", "c", "--objective", "pairwise"],
     "invalid choice"),
    (["train", "--anime", "a", "--scores", "b", "--out", "c", "--temperature", "0"],
     "expected a number in [0.001, 1000]"),
])
def test_bad_input_exits_2_with_one_line(files, capsys, argv, message):
    folder, model = files
    argv = [arg.format(folder=folder, model=model) for arg in argv]
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    _, err = capsys.readouterr()
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_python_dash_m_runs(files, tmp_path):
    _, model = files
    # From a neutral folder: `-m` puts the working directory first on sys.path, and the source
    # tree there would shadow the installed (compiled) package.
    done = subprocess.run([sys.executable, "-m", "anirec", "info", "--model", str(model),
                           "--json"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["anime"] > 0


def test_demo_runs_end_to_end(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "demo", "--users", "300", "--anime", "200", "--ratings",
                           "15000", "--epochs", "2", "--out", tmp_path, "--quiet")
    assert code == 0
    for text in ("two-tower (rating)", "two-tower (hybrid)", "two-tower (ranking)",
                 "popularity", "planted favourite genres", "a new user", "similar to"):
        assert text in out
    assert (tmp_path / "model.anirec").exists() and (tmp_path / "loss.png").exists()
