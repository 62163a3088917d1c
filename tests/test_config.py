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
