"""Build the Cython kernels in ``anirec/_kernels``.

Every ``.pyx`` there becomes an extension module. OpenMP is optional: a tiny probe program is
compiled first, and the kernels are built serial when the compiler cannot link OpenMP.
Flags are portable (``-O3``, no ``-march=native``, no ``-ffast-math``) so that a wheel runs on
any machine of its platform and NaN checks are never folded away.

A build is reused: pip builds in the source tree, and a C file Cython generated there is kept
while it is newer than every source and this file and comes from the same Cython (Cython's
own check would regenerate it, because pip's fresh build environment makes its ``.pxd`` files
look new); the modules compiled from the C files in ``build/`` are kept as setuptools keeps
them, while the last build compiled with the same NumPy, Python and flags (:data:`STAMP`). So
a second ``pip install`` (the test extras after the first install) compiles nothing. The
modules built are also copied next to their sources, so that Python started in the checkout,
which imports the source tree first, finds them (as ``build_ext --inplace`` does).
"""

import json
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import Cython
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNELS = Path("anirec") / "_kernels"
# The data layer's compiled CSV reader (optional at run time: pyarrow stands in for it).
DATA = Path("anirec") / "data"
OPENMP_PROBE = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 ? 0 : 1;
}
"""


def openmp_flags():
    """Return (compile, link) flags for OpenMP, or ([], []) when it cannot be used."""
    if os.environ.get("ANIREC_DISABLE_OPENMP"):
        return [], []
    if sys.platform == "win32":
        return ["/openmp"], []
    compiler = sysconfig.get_config_var("CC") or "cc"
    flags = ["-fopenmp"]
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "probe.c"
        source.write_text(OPENMP_PROBE)
        command = compiler.split() + flags + [str(source), "-o", str(Path(tmp) / "probe")]
        try:
            ok = subprocess.run(command, capture_output=True).returncode == 0
        except OSError:
            ok = False
    if not ok:
        print("anirec: OpenMP not available, building the kernels serial", file=sys.stderr)
        return [], []
    return flags, flags


#: How the last successful build here compiled (see the module docstring).
STAMP = Path("build") / "anirec-build.json"
DIRECTIVES = {"language_level": 3, "boundscheck": False, "wraparound": False,
              "cdivision": True, "initializedcheck": False}


def sources():
    """The ``.pyx`` files, one extension module each."""
    return sorted(KERNELS.glob("*.pyx")) + sorted(DATA.glob("*.pyx"))


def newest_input():
    """The modification time of the newest hand-written input of Cython (every file of the
    two source folders but the C files it generates, and this file, which holds the
    directives)."""
    generated = {pyx.with_suffix(".c") for pyx in sources()}
    inputs = [path for folder in (KERNELS, DATA) for path in folder.iterdir()
              if path.suffix in (".pyx", ".pxd", ".pxi", ".h", ".c") and path not in generated]
    return max(path.stat().st_mtime for path in inputs + [Path(__file__)])


def generated_is_current(pyx, newest):
    """Whether the C file Cython generated from ``pyx`` is newer than every input and comes
    from this Cython."""
    c_file = pyx.with_suffix(".c")
    try:
        with open(c_file, encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
        return c_file.stat().st_mtime > newest and f"Cython {Cython.__version__} " in first
    except OSError:
        return False


def extensions():
    """The extension modules, and whether the last build compiled them the same way."""
    compile_omp, link_omp = openmp_flags()
    # -fno-math-errno lets sqrt vectorise (errno is never read; NaN/inf semantics unchanged);
    # -ffp-contract=off keeps a*b+c two roundings on FMA targets too, as NumPy computes it.
    compile_args = (["-O3", "-fno-math-errno", "-ffp-contract=off"] if sys.platform != "win32"
                    else ["/O2"])
    newest = newest_input()
    current, stale = [], []
    for pyx in sources():
        reuse = generated_is_current(pyx, newest)
        (current if reuse else stale).append(Extension(
            ".".join(pyx.with_suffix("").parts),
            [str(pyx.with_suffix(".c") if reuse else pyx)],
            include_dirs=[numpy.get_include()],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=compile_args + compile_omp,
            extra_link_args=link_omp,
        ))
    if stale:
        stale = cythonize(stale, compiler_directives=DIRECTIVES, force=True)
    build = {"numpy": numpy.__version__, "python": sys.version,
             "compile": compile_args + compile_omp, "link": link_omp}
    try:
        same = json.loads(STAMP.read_text()) == build
    except (OSError, ValueError):
        same = False
    return current + stale, build, same


MODULES, BUILD, SAME_BUILD = extensions()


class BuildExt(build_ext):
    """Compiles only what changed when the last build compiled the same way (else all), then
    records how it compiled and copies the modules next to their sources."""

    def run(self):
        self.force = self.force or not SAME_BUILD
        super().run()
        STAMP.parent.mkdir(exist_ok=True)
        STAMP.write_text(json.dumps(BUILD))
        self.copy_extensions_to_source()


setup(ext_modules=MODULES, cmdclass={"build_ext": BuildExt})
