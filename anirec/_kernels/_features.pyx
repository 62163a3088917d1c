"""The compiled dense-features block (the twin of :class:`anirec.blocks.Features`).

Each row is the example's feature row: copied from ``x``, with three item statistic columns
rewritten without the example's rating (``ITEM_STATS``), or derived entirely from the user's
statistics without the example (``USER_STATS``). The block has no parameters: no backward pass,
no step.
"""

from libc.string cimport memcpy

from anirec._kernels._block cimport Run, data_of as _data, row_at
from anirec._kernels._ops cimport loo_item_cols, loo_row


cdef Features bind_features(object block, list keep) except *:
    """The compiled view of an :class:`anirec.blocks.Features` (checked by the plan)."""
    cdef Features f
    f.user_side = block.side == "user"
    f.width = block.width
    f.x = NULL
    f.stats = NO_STATS
    if block.user_stats is not None:
        s = block.user_stats
        f.stats = USER_STATS
        f.num, f.den = _data(s.num, keep), _data(s.den, keep)
        f.total, f.count = _data(s.total, keep), _data(s.count, keep)
        f.item_genres, f.item_weight = _data(s.item_genres, keep), _data(s.item_weight, keep)
        f.mode, f.global_mean = s.mode, s.global_mean
        f.mean, f.std = _data(s.mean, keep), _data(s.std, keep)
        f.n_genres = s.num.shape[1]
        return f
    f.x = _data(block.x, keep)
    if block.item_stats is not None:
        s = block.item_stats
        f.stats = ITEM_STATS
        f.rating_sum, f.rating_count = _data(s.rating_sum, keep), _data(s.rating_count, keep)
        f.prior_num, f.prior_den = _data(s.prior_num, keep), _data(s.prior_den, keep)
        f.from_ratings = _data(s.from_ratings, keep)
        f.item_global_mean = s.global_mean
        f.columns = <const int64_t*> _data(s.columns, keep)
        f.item_mean, f.item_std = _data(s.mean, keep), _data(s.std, keep)
    return f


cdef void features_gather(const Features* f, Run run, Py_ssize_t rows, floating* out,
                          Py_ssize_t stride) noexcept nogil:
    """The block's columns of ``rows`` input rows (``out``: row 0 at the block's first column,
    rows ``stride`` apart)."""
    cdef Py_ssize_t r
    cdef int64_t e, key
    cdef floating* row
    cdef const floating* ratings = <const floating*> run.ratings
    for r in range(rows):
        e = row_at(run.order, run.base + r)
        row = out + r * stride
        if f.stats == USER_STATS:
            loo_row(<const floating*> f.num, <const floating*> f.den,
                    <const floating*> f.total, <const floating*> f.count,
                    <const floating*> f.item_genres, <const floating*> f.item_weight, f.mode,
                    f.global_mean, <const floating*> f.mean, <const floating*> f.std,
                    f.n_genres, row_at(run.users, e), row_at(run.items, e),
                    <double> ratings[e], row)
            continue
        key = row_at(run.users, e) if f.user_side else row_at(run.items, e)
        memcpy(row, <const floating*> f.x + key * f.width, f.width * sizeof(floating))
        if f.stats == ITEM_STATS:
            loo_item_cols(<const floating*> f.rating_sum, <const floating*> f.rating_count,
                          <const floating*> f.prior_num, <const floating*> f.prior_den,
                          <const floating*> f.from_ratings, f.item_global_mean, f.columns,
                          <const floating*> f.item_mean, <const floating*> f.item_std, key,
                          <double> ratings[e], True, row)
