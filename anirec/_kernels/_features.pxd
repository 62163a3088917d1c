# The compiled dense-features block: feature rows, their statistic columns left out of each
# training example (the formulas of ``anirec.loo``, in ``_ops``).
from cython cimport floating
from libc.stdint cimport int64_t

from anirec._kernels._block cimport Run

cdef enum:
    NO_STATS = 0
    USER_STATS = 1
    ITEM_STATS = 2


cdef struct Features:
    int stats              # NO_STATS, USER_STATS (rows derived from them), ITEM_STATS
    const void* x          # (n_rows, width), or NULL with USER_STATS
    Py_ssize_t width
    bint user_side
    # USER_STATS: ``anirec.loo.user_rows``
    const void* num
    const void* den
    const void* total
    const void* count
    const void* item_genres
    const void* item_weight
    int mode
    double global_mean
    const void* mean
    const void* std
    Py_ssize_t n_genres
    # ITEM_STATS: ``anirec.loo.item_rows`` into three columns
    const void* rating_sum
    const void* rating_count
    const void* prior_num
    const void* prior_den
    const void* from_ratings
    double item_global_mean
    const int64_t* columns
    const void* item_mean
    const void* item_std


cdef void features_gather(const Features* block, Run run, Py_ssize_t rows, floating* out,
                          Py_ssize_t stride) noexcept nogil
cdef Features bind_features(object block, list keep) except *
