"""The README runs as written: every Python and shell block, in order, in one empty folder.

Blocks that install the package (``pip install``) are what made this environment and are not
run again; every other block is executed exactly as printed, with the installed ``anirec``.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_blocks() -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block of the README, in order."""
    return [(language, code) for language, code in FENCE.findall(README.read_text("utf-8"))]


def test_readme_opens_with_the_two_set_up_commands():
    first = readme_blocks()[0]
    assert first == ("bash", 'pip install . && anirec demo\npip install ".[test]" && '
                             "pytest tests\n")


@pytest.mark.skipif(not README.exists(), reason="runs from a source checkout only")
def test_every_readme_block_runs_in_order(tmp_path):
    env = dict(os.environ)
    # The installed `anirec` command next to this interpreter, whatever PATH says.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.pop("ANIREC_BACKEND", None)
    ran = []
    for number, (language, code) in enumerate(readme_blocks(), start=1):
        if "pip install" in code or language not in ("python", "bash"):
            continue
        command = [sys.executable, "-c", code] if language == "python" else \
            ["bash", "-euo", "pipefail", "-c", code]
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, (f"README block {number} ({language}) failed:\n{code}\n"
                                      f"stdout:\n{done.stdout[-3000:]}\n"
                                      f"stderr:\n{done.stderr[-3000:]}")
        ran.append(language)
    assert ran.count("python") >= 1 and ran.count("bash") >= 1, ran
    for name in ("model.anirec", "predictions.csv", "recs.csv", "split/test.csv"):
        assert (tmp_path / name).exists(), name
