# OpenMP when the extension was built with it, a serial stand-in otherwise (one source).
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define ANIREC_OPENMP 1
    #else
    #define ANIREC_OPENMP 0
    static inline int omp_get_max_threads(void) { return 1; }
    static inline int omp_get_thread_num(void) { return 0; }
    #endif
    """
    const int ANIREC_OPENMP
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil
