# ANIREC_CLONES: compile a C function twice, for AVX2 and for the baseline, and let the CPU pick
# one when the module loads (GCC ``target_clones``, an ifunc: x86-64 glibc only; musl and other
# compilers get plain C). The build flags stay portable (no -march): only the functions marked
# with it may use AVX2. Element-wise arithmetic gives the same bits either way: -ffp-contract=off
# keeps FMA out, and vector sqrt and division round like scalar ones. ANIREC_NO_TRAPS lets
# GCC turn a comparison inside a loop into a vector mask: it only gives up on floating-point
# exception flags, which anirec never reads; every result keeps its bits.
cdef extern from *:
    """
    #ifndef ANIREC_CLONES
    #if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 6 && defined(__x86_64__) \
        && defined(__linux__) && defined(__GLIBC__)
    #define ANIREC_CLONES __attribute__((target_clones("avx2", "default")))
    #define ANIREC_HAS_CLONES 1
    #else
    #define ANIREC_CLONES
    #define ANIREC_HAS_CLONES 0
    #endif
    #if defined(__GNUC__) && !defined(__clang__)
    #define ANIREC_NO_TRAPS __attribute__((optimize("no-trapping-math")))
    #else
    #define ANIREC_NO_TRAPS
    #endif
    #endif
    """
    const int ANIREC_HAS_CLONES
