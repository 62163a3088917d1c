"""The loss curves of the demo and the training progress bar."""

import pytest

from anirec import Recommender
from anirec.data import generate_synthetic, load_mal
from anirec.data.synthetic import write_tables
from anirec.model import plot_validation


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("progress")
    return load_mal(*write_tables(generate_synthetic(300, 200, 12_000, seed=8), folder))


def test_progress_bar_names_the_objective_and_ends_where_training_stopped(data, capsys):
    rec = Recommender(layers=(16,), epochs=40, patience=1, lr=1e-2, seed=0, verbose=True,
                      refit=False)  # the bar of the run that stops early is the last one
    rec.fit(data)
    trained = len(rec.model.history_)
    assert trained < 40, "the fixture must stop early"
    err = capsys.readouterr().err
    final = err.replace("\r", "\n").strip().splitlines()[-1]
    assert "hybrid objective" in final and "stopped early" in final, final
    assert f"kept epoch {rec.model.best_epoch_}" in final
    assert f"{trained}/{trained}" in final, final
    assert "val RMSE" in final and "val ranking loss" in final
    rmse = float(final.split("val RMSE=")[1].split(",")[0].rstrip("]"))
    assert rmse == pytest.approx(rec.model.history_[-1]["val_rmse"], abs=1e-4)
    assert 0.3 < rmse < 5  # on the 1..10 rating scale, not the internal [-1, 1] one


def test_silent_by_default(data, capsys):
    Recommender(layers=(8,), epochs=1, seed=0).fit(data)
    assert capsys.readouterr().err == ""


def test_validation_plot_marks_every_objective(data, tmp_path):
    histories, best = {}, {}
    for objective in ("rating", "hybrid", "ranking"):
        rec = Recommender(layers=(8,), epochs=2, seed=0, objective=objective).fit(data)
        histories[objective], best[objective] = rec.model.history_, rec.model.best_epoch_
    path = plot_validation(histories, tmp_path / "loss.png", best_epochs=best)
    assert path.stat().st_size > 10_000 and path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="no validation"):
        plot_validation({"rating": [{"epoch": 1, "train_loss": 0.3}]}, tmp_path / "x.png")
