"""Which kernel implementation is active: the compiled Cython one or its pure-NumPy twin.

The choice is made once, when a kernel is first needed, from ``ANIREC_BACKEND`` (``cython``,
the default, or ``numpy``) and can be changed with :func:`set_backend` or, for a block of code,
:func:`use_backend`. An unknown ``ANIREC_BACKEND`` is a ``ValueError`` naming the variable
there, not at import: ``import anirec`` (and the ``anirec`` command's one-line errors) never
fail on it. If the compiled extension cannot be imported, anirec warns once and falls
back to NumPy; ``ANIREC_REQUIRE_EXTENSIONS=1`` turns that fallback into an ``ImportError``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import warnings
from pathlib import Path
from types import ModuleType
from typing import Iterator

BACKENDS = ("cython", "numpy")

_modules: dict[str, ModuleType] = {}
_import_error: Exception | None = None
_active: str = ""


def _source_tree() -> Path | None:
    """The checkout anirec is imported from (Python started there puts it first on the path),
    or ``None`` for an installed anirec."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "setup.py").is_file() and (root / "pyproject.toml").is_file() \
        else None


def _check_tree_build(root: Path) -> None:
    """Refuse compiled modules in a checkout that are older than a Cython source there: they
    were built from other sources (``pip install .`` builds them into the tree too)."""
    folder = root / "anirec" / "_kernels"
    built = [path for path in folder.iterdir() if path.suffix in (".so", ".pyd")]
    sources = [path for path in folder.iterdir() if path.suffix in (".pyx", ".pxd")]
    if built and sources:
        oldest = min(built, key=lambda path: path.stat().st_mtime)
        newest = max(sources, key=lambda path: path.stat().st_mtime)
        if oldest.stat().st_mtime < newest.stat().st_mtime:
            raise ImportError(f"{oldest.name} in the source tree is older than {newest.name}")


def _load(name: str) -> ModuleType:
    if name not in _modules:
        if name == "cython" and _source_tree() is not None:
            _check_tree_build(_source_tree())
        module_name = {"cython": "anirec._kernels._cython", "numpy": "anirec._kernels._numpy"}[name]
        _modules[name] = importlib.import_module(module_name)
    return _modules[name]


def cython_available() -> bool:
    """Whether the compiled kernels can be imported."""
    global _import_error
    try:
        _load("cython")
    except ImportError as error:
        _import_error = error
        return False
    return True


def _check_name(name: str) -> str:
    name = str(name).strip().lower()
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    return name


def set_backend(name: str) -> None:
    """Make ``name`` (``"cython"`` or ``"numpy"``) the active kernel backend.

    Raises
    ------
    ValueError
        If ``name`` is not a known backend.
    ImportError
        If ``"cython"`` is asked for and the compiled extension cannot be imported.
    """
    global _active
    name = _check_name(name)
    if name == "cython" and not cython_available():
        raise ImportError(f"the compiled anirec kernels cannot be imported: {_import_error}")
    _load(name)
    _active = name


def get_backend() -> str:
    """The name of the active backend, ``"cython"`` or ``"numpy"``.

    Raises
    ------
    ValueError
        If ``ANIREC_BACKEND`` names no backend (and none was set since).
    """
    if not _active:
        _initialise()
    return _active


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run a block of code with another backend active, restoring the previous one after."""
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def training_threads(requested: int | None = None) -> int:
    """The threads a training epoch runs on: ``requested`` (by default every core this
    process may use), at most what the active backend's epoch can run on (one for the NumPy
    twin, OpenMP's thread limit for the compiled epoch)."""
    wanted = available_cores() if requested is None else int(requested)
    return max(1, min(wanted, implementation().epoch_threads()))


def implementation() -> ModuleType:
    """The module holding the raw kernels of the active backend."""
    return _modules[_active or get_backend()]


def _initialise() -> None:
    global _active
    requested = os.environ.get("ANIREC_BACKEND", "cython") or "cython"
    if str(requested).strip().lower() not in BACKENDS:
        raise ValueError(f"the environment variable ANIREC_BACKEND is {requested!r}: it must "
                         f"be one of {', '.join(BACKENDS)} (or unset)")
    requested = _check_name(requested)
    required = os.environ.get("ANIREC_REQUIRE_EXTENSIONS", "") not in ("", "0")
    if requested == "numpy":
        _active = "numpy"
        _load("numpy")
        return
    if cython_available():
        _active = "cython"
        return
    if required:
        raise ImportError(
            "ANIREC_REQUIRE_EXTENSIONS is set but the compiled anirec kernels cannot be "
            f"imported ({_import_error}); reinstall anirec with 'pip install .'"
        )
    root = _source_tree()
    hint = "Reinstall with 'pip install .' to build them." if root is None else (
        f"Python imported anirec from the source tree {root} (the folder it was started in "
        "comes first on the path), where they are not built or out of date: run "
        "'pip install .' there, which builds them into the tree too, or start Python in "
        "another folder to use the installed anirec.")
    warnings.warn(
        f"the compiled anirec kernels cannot be imported ({_import_error}); "
        f"using the slower NumPy backend. {hint}",
        RuntimeWarning,
        stacklevel=4,
    )
    _active = "numpy"
    _load("numpy")
