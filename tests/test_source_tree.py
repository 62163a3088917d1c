"""Python started in a checkout imports its source tree: with the kernels built into it (as
``pip install .`` does) it uses them, and otherwise, or when they are older than their
sources, it says exactly what to do instead of a misleading hint."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import anirec

INSTALLED = Path(anirec.__file__).resolve().parent
BUILT = sorted(INSTALLED.glob("_kernels/*.so")) + sorted(INSTALLED.glob("_kernels/*.pyd"))


def _checkout(tmp_path, with_build: bool) -> Path:
    """A copy of the package laid out as a checkout (its ``setup.py`` and ``pyproject.toml``
    mark it), with or without the compiled modules."""
    root = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__", *(() if with_build else ("*.so", "*.pyd")))
    shutil.copytree(INSTALLED, root / "anirec", ignore=ignore)
    (root / "setup.py").write_text("")
    (root / "pyproject.toml").write_text("")
    built = time.time() - 3600  # sources, then the build from them, an hour ago
    for path in (root / "anirec" / "_kernels").iterdir():
        stamp = built + (10 if path.suffix in (".so", ".pyd") else 0)
        os.utime(path, (stamp, stamp))
    return root


def _import_in(root: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if key not in ("ANIREC_REQUIRE_EXTENSIONS", "ANIREC_BACKEND", "PYTHONPATH")}
    return subprocess.run([sys.executable, "-c", "import anirec; print(anirec.__file__, "
                           "anirec.get_backend())"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)


def test_an_unbuilt_tree_says_what_to_do(tmp_path):
    root = _checkout(tmp_path, with_build=False)
    done = _import_in(root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(root / "anirec" / "__init__.py"), "numpy"]
    assert f"Python imported anirec from the source tree {root}" in done.stderr
    assert "run 'pip install .' there" in done.stderr and "another folder" in done.stderr


@pytest.mark.skipif(not BUILT, reason="the installed anirec has no compiled kernels")
def test_a_built_tree_uses_its_kernels_unless_out_of_date(tmp_path):
    root = _checkout(tmp_path, with_build=True)
    done = _import_in(root)
    assert done.stdout.split() == [str(root / "anirec" / "__init__.py"), "cython"], done.stderr
    assert done.stderr == ""
    # A source edited after the build: the modules were built from other sources.
    source = root / "anirec" / "_kernels" / "_ops.pxd"
    os.utime(source)
    done = _import_in(root)
    assert done.stdout.split()[-1] == "numpy"
    assert "in the source tree is older than _ops.pxd" in done.stderr
