# OpenMP when the extension was built with it, a serial stand-in otherwise (one source).
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define ANIREC_OPENMP 1
    /* An orphaned barrier: every thread of the enclosing parallel region must reach it. */
    static inline void anirec_omp_barrier(void) {
    _Pragma("omp barrier")
    }
    #else
    #define ANIREC_OPENMP 0
    static inline int omp_get_max_threads(void) { return 1; }
    static inline int omp_get_thread_limit(void) { return 1; }
    static inline int omp_get_thread_num(void) { return 0; }
    static inline int omp_get_num_threads(void) { return 1; }
    static inline void anirec_omp_barrier(void) { }
    #endif
    """
    const int ANIREC_OPENMP
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_limit() noexcept nogil
    int omp_get_thread_num() noexcept nogil
    int omp_get_num_threads() noexcept nogil
    void anirec_omp_barrier() noexcept nogil
