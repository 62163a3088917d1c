import json
import os

import pytest

import anirec


def test_show_config_prints_and_returns_the_report(capsys):
    config = anirec.show_config()
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(config))
    assert config["anirec"] == anirec.__version__
    assert config["backend"] == anirec.get_backend()
    assert config["blas"] and config["blas"][0]["num_threads"] >= 1


@pytest.mark.skipif(not os.environ.get("ANIREC_REQUIRE_EXTENSIONS"),
                    reason="ANIREC_REQUIRE_EXTENSIONS is not set")
def test_every_compiled_part_was_built():
    config = anirec.show_config(print_out=False)
    assert config["compiled_extensions"] and config["compiled_scores_reader"]


def test_the_backend_chooses_the_scores_reader():
    # One switch: the compiled reader follows the kernel backend, and the report says so.
    expected = "compiled" if anirec.show_config(print_out=False)["compiled_scores_reader"] \
        else "pyarrow"
    with anirec.use_backend("cython" if anirec.backend.cython_available() else "numpy"):
        config = anirec.show_config(print_out=False)
        assert config["scores_reader"] == (expected if config["backend"] == "cython"
                                           else "pyarrow")
    with anirec.use_backend("numpy"):
        assert anirec.show_config(print_out=False)["scores_reader"] == "pyarrow"


def test_the_report_says_how_many_threads_training_runs_on(monkeypatch):
    from anirec import backend

    with anirec.use_backend("numpy"):  # the NumPy twin trains on one thread
        assert anirec.show_config(print_out=False)["training_threads"] == 1
    if not backend.cython_available():
        return
    with anirec.use_backend("cython"):
        limit = backend.implementation().epoch_threads()
        monkeypatch.setattr(backend, "available_cores", lambda: 3)
        assert anirec.show_config(print_out=False)["training_threads"] == min(3, limit)
        assert anirec.TwoTower().threads == 3  # a fit asks for every core
        assert anirec.TwoTower(n_threads=5).threads == 5
        assert backend.training_threads(5) == min(5, limit)
