"""Compiled top-k retrieval: tiled GEMM scoring, CSR exclusions, heap selection per query.

Queries are cut into tiles of at most ``min(block_size, 512)`` rows and items into tiles of
256, so one tile of scores (at most 512 KiB in float32) stays in the core's cache between the
GEMM that writes it and the selection that reads it. Tall query tiles matter because BLAS
repacks (transposes) the item tile on every call: with 512 x 256 rather than 256 x 512 tiles
it does so half as often, for the same tile size. With OpenMP the query tiles are spread
over threads (``prange``), each with its own score tile and a single-threaded BLAS call (the
BLAS thread count is set to 1 for the call and restored after it); without OpenMP the tiles run
in order and BLAS keeps its threads. A query's result depends only on its own row of scores,
and tiles have the same shape whatever the thread count, so results do not depend on the
number of threads or the schedule.

Selection keeps a heap of the ``k`` best (score, index) pairs whose root is the worst one kept
("worse" = lower score, or equal score and higher index), stored in the query's output row
itself, across item tiles. Items are visited in increasing index, so a newcomer replaces the
root only when its score is strictly higher: ties keep the lower index. Once the heap is full,
scores are tested against the root 64 at a time by a small C function that returns one bit per
score strictly above it (``anirec_above_f32`` / ``_f64``); only those bits are visited, lowest
first, each checked again against the root (which only rises) and the exclusions. With GCC on
x86-64 glibc that function alone is compiled for AVX2 as well as the baseline and the CPU picks
one at load time (``target_clones``); the build flags stay portable. A final in-place heap sort
leaves the row best first. Excluded items are bucketed by item tile once per query tile (a
counting sort of the query tile's CSR entries) and flagged in a per-thread byte mask of the
score tile while it is scanned.
"""

import numpy as np

from libc.stdint cimport int64_t, uint8_t, uint64_t
from cython cimport floating
from cython.parallel cimport prange

from anirec._kernels._blas cimport blas_set_num_threads, gemm
from anirec._kernels._openmp cimport omp_get_max_threads, omp_get_thread_num
from anirec._kernels._simd cimport ANIREC_HAS_CLONES  # noqa: F401 (its C: ANIREC_CLONES)

cdef extern from *:
    """
    #include <stdint.h>
    /* The threshold test is compiled for AVX2 and the baseline (ANIREC_CLONES, _simd.pxd).
       An AVX-512F clone measured no faster. */

    /* The bits of 64 flags (0 or 1), flag t as bit t. */
    static uint64_t anirec_flag_bits(const uint8_t* flags) {
        uint64_t bits = 0, x;
        int i;
        for (i = 0; i < 8; i++) {
            const uint8_t* b = flags + 8 * i;
            x = (uint64_t) b[0] | (uint64_t) b[1] << 8 | (uint64_t) b[2] << 16
                | (uint64_t) b[3] << 24 | (uint64_t) b[4] << 32 | (uint64_t) b[5] << 40
                | (uint64_t) b[6] << 48 | (uint64_t) b[7] << 56;
            /* Gathers the low bit of each byte into the top byte, byte i as bit i. */
            bits |= (x * 0x0102040810204080ull >> 56) << (8 * i);
        }
        return bits;
    }

    #define ANIREC_ABOVE(name, type)                                                   \
    ANIREC_CLONES static uint64_t name(const type* scores, type threshold) {           \
        uint8_t flags[64];                                                              \
        int t, hit = 0;                                                                 \
        for (t = 0; t < 64; t++) hit |= scores[t] > threshold;                          \
        if (!hit) return 0;                                                             \
        for (t = 0; t < 64; t++) flags[t] = scores[t] > threshold;                      \
        return anirec_flag_bits(flags);                                                 \
    }
    /* Bit t set when scores[t] > threshold, for t < 64 = CHUNK (no bit for NaN). */
    ANIREC_ABOVE(anirec_above_f32, float)
    ANIREC_ABOVE(anirec_above_f64, double)

    #if defined(__GNUC__) || defined(__clang__)
    #define anirec_lowest_bit(x) __builtin_ctzll(x)
    #else
    static int anirec_lowest_bit(uint64_t x) {
        int n = 0;
        while (!(x & 1)) { x >>= 1; n++; }
        return n;
    }
    #endif
    """
    uint64_t anirec_above_f32(const float* scores, float threshold) noexcept nogil
    uint64_t anirec_above_f64(const double* scores, double threshold) noexcept nogil
    int anirec_lowest_bit(uint64_t bits) noexcept nogil

cdef enum:
    ITEM_TILE = 256
    QUERY_TILE = 512
    CHUNK = 64


cdef inline bint _worse(floating s1, int64_t i1, floating s2, int64_t i2) noexcept nogil:
    return s1 < s2 or (s1 == s2 and i1 > i2)


cdef inline void _sift_down(floating* hs, int64_t* hi, Py_ssize_t size, Py_ssize_t pos,
                            floating value, int64_t index) noexcept nogil:
    """Place (value, index) at ``pos`` and move it down until its children are not worse."""
    cdef Py_ssize_t child
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and _worse(hs[child + 1], hi[child + 1], hs[child], hi[child]):
            child += 1
        if _worse(hs[child], hi[child], value, index):
            hs[pos] = hs[child]
            hi[pos] = hi[child]
            pos = child
        else:
            break
    hs[pos] = value
    hi[pos] = index


cdef inline void _push(floating* hs, int64_t* hi, Py_ssize_t pos, floating value,
                       int64_t index) noexcept nogil:
    """Insert (value, index) at the free slot ``pos`` and move it up past better parents."""
    cdef Py_ssize_t parent
    while pos > 0:
        parent = (pos - 1) // 2
        if _worse(value, index, hs[parent], hi[parent]):
            hs[pos] = hs[parent]
            hi[pos] = hi[parent]
            pos = parent
        else:
            break
    hs[pos] = value
    hi[pos] = index


cdef Py_ssize_t _scan(const floating* scores, Py_ssize_t width, int64_t item0, Py_ssize_t k,
                      const uint8_t* excluded, floating* hs, int64_t* hi,
                      Py_ssize_t size) noexcept nogil:
    """Offer items ``item0 .. item0 + width - 1`` (scores ``scores``) to a heap holding
    ``size`` entries; return its new size. ``excluded`` (or NULL) flags items of the tile."""
    cdef Py_ssize_t j = 0, t
    cdef floating value
    cdef uint64_t bits
    while size < k and j < width:
        if excluded == NULL or not excluded[j]:
            _push(hs, hi, size, scores[j], item0 + j)
            size += 1
        j += 1
    if size < k:
        return size
    while j + CHUNK <= width:
        if floating is float:
            bits = anirec_above_f32(scores + j, hs[0])
        else:
            bits = anirec_above_f64(scores + j, hs[0])
        while bits:
            t = j + anirec_lowest_bit(bits)
            bits &= bits - 1
            # The root only rises within the chunk, so every later winner has a bit.
            value = scores[t]
            if value > hs[0] and (excluded == NULL or not excluded[t]):
                _sift_down(hs, hi, size, 0, value, item0 + t)
        j += CHUNK
    while j < width:
        value = scores[j]
        if value > hs[0] and (excluded == NULL or not excluded[j]):
            _sift_down(hs, hi, size, 0, value, item0 + j)
        j += 1
    return size


cdef void _heap_sort(floating* hs, int64_t* hi, Py_ssize_t size) noexcept nogil:
    """Sort a heap in place, best first: the worst goes to the end, repeatedly."""
    cdef Py_ssize_t end = size - 1
    cdef floating top_value
    cdef int64_t top_index
    while end > 0:
        top_value = hs[0]
        top_index = hi[0]
        _sift_down(hs, hi, end, 0, hs[end], hi[end])
        hs[end] = top_value
        hi[end] = top_index
        end -= 1


cdef void _query_tile(const floating* Q, const floating* V, Py_ssize_t d, Py_ssize_t m,
                      Py_ssize_t q0, Py_ssize_t rows, Py_ssize_t k, Py_ssize_t kk,
                      floating* scores, uint8_t* mask, int64_t* bucket_start,
                      int64_t* bucket_fill, int64_t* entries, const int64_t* indptr,
                      const int64_t* indices, int64_t* out_index,
                      floating* out_score) noexcept nogil:
    """Top ``kk`` of queries ``q0 .. q0 + rows - 1`` into their output rows (stride ``k``)."""
    cdef Py_ssize_t n_tiles = (m + ITEM_TILE - 1) // ITEM_TILE
    cdef Py_ssize_t r, t, p, width, item0
    cdef int64_t item, tile, e
    cdef Py_ssize_t sizes[QUERY_TILE]
    cdef int ld = <int> (d if d > 0 else 1)
    for r in range(rows):
        sizes[r] = 0
    if mask != NULL:
        # Counting sort of this tile's exclusions by item tile: entry = row * ITEM_TILE + offset.
        for t in range(n_tiles + 1):
            bucket_start[t] = 0
        for p in range(indptr[q0], indptr[q0 + rows]):
            bucket_start[indices[p] // ITEM_TILE + 1] += 1
        for t in range(n_tiles):
            bucket_start[t + 1] += bucket_start[t]
            bucket_fill[t] = bucket_start[t]
        for r in range(rows):
            for p in range(indptr[q0 + r], indptr[q0 + r + 1]):
                item = indices[p]
                tile = item // ITEM_TILE
                entries[bucket_fill[tile]] = r * ITEM_TILE + (item - tile * ITEM_TILE)
                bucket_fill[tile] += 1
    for t in range(n_tiles):
        item0 = t * ITEM_TILE
        width = min(<Py_ssize_t> ITEM_TILE, m - item0)
        gemm(False, True, <int> rows, <int> width, <int> d, <floating> 1, Q + q0 * d, ld,
             V + item0 * d, ld, <floating> 0, scores, <int> width)
        if mask != NULL:
            for e in range(bucket_start[t], bucket_start[t + 1]):
                mask[entries[e]] = 1
        for r in range(rows):
            sizes[r] = _scan(scores + r * width, width, item0, kk,
                             mask + r * ITEM_TILE if mask != NULL else NULL,
                             out_score + (q0 + r) * k, out_index + (q0 + r) * k, sizes[r])
        if mask != NULL:
            for e in range(bucket_start[t], bucket_start[t + 1]):
                mask[entries[e]] = 0
    for r in range(rows):
        _heap_sort(out_score + (q0 + r) * k, out_index + (q0 + r) * k, sizes[r])


def topk(const floating[:, ::1] Q, const floating[:, ::1] V, Py_ssize_t k, exclude_indptr,
         exclude_indices, Py_ssize_t block_size, int64_t[:, ::1] out_index,
         floating[:, ::1] out_score):
    cdef Py_ssize_t n = Q.shape[0], d = Q.shape[1], m = V.shape[0]
    cdef Py_ssize_t kk = k if k < m else m
    cdef Py_ssize_t rows, n_query_tiles, n_item_tiles, tile, max_entries = 1
    cdef int n_threads, thread, previous = -1
    cdef bint has_exclude = exclude_indptr is not None
    cdef const int64_t[::1] indptr
    cdef const int64_t[::1] indices
    cdef const int64_t* indptr_ptr = NULL
    cdef const int64_t* indices_ptr = NULL
    cdef uint8_t[:, ::1] masks
    cdef int64_t[:, ::1] buckets
    cdef int64_t[:, ::1] entries
    cdef floating[:, ::1] scores

    np.asarray(out_index).fill(-1)
    np.asarray(out_score).fill(-np.inf)
    if kk == 0 or n == 0:
        return
    rows = min(block_size, <Py_ssize_t> QUERY_TILE, n)
    n_query_tiles = (n + rows - 1) // rows
    n_item_tiles = (m + ITEM_TILE - 1) // ITEM_TILE
    n_threads = max(1, min(omp_get_max_threads(), n_query_tiles))
    dtype = np.float32 if floating is float else np.float64
    scores = np.empty((n_threads, rows * min(m, <Py_ssize_t> ITEM_TILE)), dtype=dtype)
    masks = np.zeros((n_threads, rows * ITEM_TILE if has_exclude else 1), dtype=np.uint8)
    buckets = np.zeros((n_threads, 2 * (n_item_tiles + 1)), dtype=np.int64)
    if has_exclude:
        indptr = exclude_indptr
        indices = exclude_indices
        indptr_ptr = &indptr[0]
        if indices.shape[0] > 0:
            indices_ptr = &indices[0]
        starts = np.asarray(indptr)[::rows]
        ends = np.asarray(indptr)[np.minimum(np.arange(n_query_tiles) * rows + rows, n)]
        max_entries = max(1, int((ends - starts[:n_query_tiles]).max()))
    entries = np.zeros((n_threads, max_entries), dtype=np.int64)
    with nogil:
        if n_threads > 1:
            previous = blas_set_num_threads(1)
        for tile in prange(n_query_tiles, schedule="dynamic", num_threads=n_threads):
            thread = omp_get_thread_num()
            _query_tile(&Q[0, 0], &V[0, 0], d, m, tile * rows, min(rows, n - tile * rows), k,
                        kk, &scores[thread, 0], &masks[thread, 0] if has_exclude else NULL,
                        &buckets[thread, 0], &buckets[thread, n_item_tiles + 1],
                        &entries[thread, 0], indptr_ptr, indices_ptr, &out_index[0, 0],
                        &out_score[0, 0])
        if previous > 1:
            blas_set_num_threads(previous)
