"""Compiled top-k retrieval: blocked GEMM scoring, CSR exclusions, heap selection per query.

For each block of at most ``block_size`` queries, one GEMM writes the (block x m) scores into a
workspace allocated once per call. Each query of the block is then independent: with OpenMP
the queries are spread over threads (``prange``), and since no query reads another's data the
result does not depend on the thread count or the schedule.

Selection keeps a heap of the ``k`` best (score, index) pairs whose root is the worst one kept
("worse" = lower score, or equal score and higher index), stored in the query's output row
itself. Items are visited in increasing index, so a newcomer replaces the root only when its
score is strictly higher: ties keep the lower index. A final in-place heap sort leaves the row
best first. Excluded items are flagged in a per-thread byte mask, cleared after the query.
"""

import numpy as np

from libc.stdint cimport int64_t, uint8_t
from cython cimport floating
from cython.parallel cimport prange

from anirec._kernels._blas cimport gemm
from anirec._kernels._openmp cimport omp_get_max_threads, omp_get_thread_num


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


cdef Py_ssize_t _select(const floating* scores, Py_ssize_t m, Py_ssize_t k,
                        const uint8_t* excluded, floating* hs, int64_t* hi) noexcept nogil:
    """Write the best ``min(k, kept)`` items of one query to ``hs``/``hi``, best first;
    return how many were written."""
    cdef Py_ssize_t j, pos, parent, size = 0, end
    cdef floating value, top_value
    cdef int64_t top_index
    for j in range(m):
        if excluded != NULL and excluded[j]:
            continue
        value = scores[j]
        if size < k:
            pos = size
            size += 1
            while pos > 0:
                parent = (pos - 1) // 2
                if _worse(value, j, hs[parent], hi[parent]):
                    hs[pos] = hs[parent]
                    hi[pos] = hi[parent]
                    pos = parent
                else:
                    break
            hs[pos] = value
            hi[pos] = j
        elif value > hs[0]:
            _sift_down(hs, hi, size, 0, value, j)
    # Heap sort: the worst goes to the end, repeatedly.
    end = size - 1
    while end > 0:
        top_value = hs[0]
        top_index = hi[0]
        _sift_down(hs, hi, end, 0, hs[end], hi[end])
        hs[end] = top_value
        hi[end] = top_index
        end -= 1
    return size


def topk(const floating[:, ::1] Q, const floating[:, ::1] V, Py_ssize_t k, exclude_indptr,
         exclude_indices, Py_ssize_t block_size, int64_t[:, ::1] out_index,
         floating[:, ::1] out_score):
    cdef Py_ssize_t n = Q.shape[0], d = Q.shape[1], m = V.shape[0]
    cdef Py_ssize_t kk = k if k < m else m
    cdef Py_ssize_t start, rows, row, query, p
    cdef int n_threads = omp_get_max_threads()
    cdef int thread
    cdef bint has_exclude = exclude_indptr is not None
    cdef const int64_t[::1] indptr
    cdef const int64_t[::1] indices
    cdef const int64_t* indptr_ptr = NULL
    cdef const int64_t* indices_ptr = NULL
    cdef uint8_t[:, ::1] masks
    cdef uint8_t* mask
    cdef floating[:, ::1] scores
    cdef floating* scores_ptr
    cdef floating* score_row
    cdef int64_t* index_row

    np.asarray(out_index).fill(-1)
    np.asarray(out_score).fill(-np.inf)
    if kk == 0 or n == 0:
        return
    block_size = min(block_size, n)
    dtype = np.float32 if floating is float else np.float64
    scores = np.empty((block_size, m), dtype=dtype)
    scores_ptr = &scores[0, 0]
    if has_exclude:
        indptr = exclude_indptr
        indices = exclude_indices
        indptr_ptr = &indptr[0]
        indices_ptr = &indices[0]
        masks = np.zeros((max(n_threads, 1), m), dtype=np.uint8)
    with nogil:
        start = 0
        while start < n:
            rows = min(block_size, n - start)
            gemm(False, True, <int> rows, <int> m, <int> d, <floating> 1, &Q[start, 0],
                 <int> max(d, 1), &V[0, 0], <int> max(d, 1), <floating> 0, scores_ptr,
                 <int> m)
            for row in prange(rows, schedule="static", num_threads=n_threads):
                query = start + row
                mask = NULL
                if has_exclude:
                    thread = omp_get_thread_num()
                    mask = &masks[thread, 0]
                    for p in range(indptr_ptr[query], indptr_ptr[query + 1]):
                        mask[indices_ptr[p]] = 1
                score_row = &out_score[query, 0]
                index_row = &out_index[query, 0]
                _select(scores_ptr + row * m, m, kk, mask, score_row, index_row)
                if has_exclude:
                    for p in range(indptr_ptr[query], indptr_ptr[query + 1]):
                        mask[indices_ptr[p]] = 0
            start += rows
