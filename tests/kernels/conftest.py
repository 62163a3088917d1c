"""Make ``kernel_helpers`` importable by the kernel tests.

The suite runs with ``--import-mode=importlib``, under which test modules cannot import their
neighbours; this directory is put on ``sys.path`` once, before the tests are collected.
"""

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
