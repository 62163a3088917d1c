"""Build the Cython kernels in ``anirec/_kernels``.

Every ``.pyx`` there becomes an extension module. OpenMP is optional: a tiny probe program is
compiled first, and the kernels are built serial when the compiler cannot link OpenMP.
Flags are portable (``-O3``, no ``-march=native``, no ``-ffast-math``) so that a wheel runs on
any machine of its platform and NaN checks are never folded away.
"""

import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

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


def extensions():
    compile_omp, link_omp = openmp_flags()
    # -fno-math-errno lets sqrt vectorise (errno is never read; NaN/inf semantics unchanged);
    # -ffp-contract=off keeps a*b+c two roundings on FMA targets too, as NumPy computes it.
    compile_args = (["-O3", "-fno-math-errno", "-ffp-contract=off"] if sys.platform != "win32"
                    else ["/O2"])
    modules = []
    for pyx in sorted(KERNELS.glob("*.pyx")) + sorted(DATA.glob("*.pyx")):
        modules.append(
            Extension(
                ".".join(pyx.with_suffix("").parts),
                [str(pyx)],
                include_dirs=[numpy.get_include()],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                extra_compile_args=compile_args + compile_omp,
                extra_link_args=link_omp,
            )
        )
    return cythonize(
        modules,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )


setup(ext_modules=extensions())
