"""What the compiled kernels were built with: OpenMP or serial."""

from anirec._kernels._openmp cimport ANIREC_OPENMP, omp_get_max_threads


def openmp_enabled():
    """Whether the kernels were compiled with OpenMP (``prange`` runs in parallel)."""
    return bool(ANIREC_OPENMP)


def max_threads():
    """Threads an OpenMP region would use now (1 when built serial)."""
    return int(omp_get_max_threads())
