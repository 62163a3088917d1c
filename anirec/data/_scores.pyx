"""The compiled reader of ``users-score-2023.csv`` (kept: see ``benchmarks/bench_reader.py``).

Reading. :func:`parse_block` is a strict reader of exactly the file the Kaggle export writes::

    user_id,Username,anime_id,Anime Title,rating

It keeps the three numeric columns, looks each ``anime_id`` up in the catalogue table and counts
every row as kept, unknown anime, excluded anime or invalid rating, exactly as the pyarrow path
of :func:`anirec.data.scores.read_scores` does. It accepts only what it can read without
doubt:
ids and ratings of 1 to 18 ASCII digits (no sign, space, quote or decimal point); Username and
Anime Title either unquoted (no quote, CR or LF inside) or quoted (commas, doubled quotes, CR and
LF inside); records ended by LF, CRLF or the end of the file; empty lines (which pyarrow
skips). Anything else (a ragged row, an empty or non-integer value, a lone CR, a quote inside an
unquoted field, text after a closing quote, an unterminated quote) returns ``ANOMALY`` and the
caller re-reads the file through pyarrow, whose errors name the file, column and row. The
header, the BOM and the UTF-8 validity (:func:`utf8_error`) are checked by the caller.

Blocks are cut only at record boundaries, so a caller can feed the file through a fixed buffer:
with ``final`` false a block stops before a record it cannot see the end of and reports how
many bytes it consumed.

Splitting. :func:`grouped_argsort` sorts each user's run by a key, stably (a bucket sort per
run, a merge sort for a run whose keys bunch up); :func:`split_parts` and :func:`partition3`
assign and copy out the train / validation / test parts: exactly the results of the NumPy code
of :func:`anirec.data.split.split_ratings`, which runs when the backend is ``numpy``.

The loading helpers (sorting pairs, compacting ids), the reading before the catalogue is known
and the two-thread parse are gone: against NumPy (or the plain read) each saved less than a
third of ``load_mal`` at full size.
"""

import numpy as np

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t
from libc.string cimport memchr, memcpy
from libc.stdlib cimport malloc, free

# Return codes of parse_block.
OK = 0
ANOMALY = 1

cdef enum:
    MAX_DIGITS = 18       # below 2**63 whatever the digits

# --------------------------------------------------------------------------- UTF-8


cdef Py_ssize_t _utf8_error(const uint8_t* s, Py_ssize_t n) noexcept nogil:
    """Offset of the first byte of the first invalid sequence, or -1 (Unicode table 3-7)."""
    cdef Py_ssize_t i = 0
    cdef uint8_t c, c1
    cdef uint64_t w
    while i < n:
        # ASCII runs eight bytes at a time.
        while i + 8 <= n:
            memcpy(&w, s + i, 8)
            if w & <uint64_t>0x8080808080808080ULL:
                break
            i += 8
        if i >= n:
            break
        c = s[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            if i + 1 >= n or (s[i + 1] & 0xC0) != 0x80:
                return i
            i += 2
        elif 0xE0 <= c <= 0xEF:
            if i + 2 >= n:
                return i
            c1 = s[i + 1]
            if c == 0xE0:
                if c1 < 0xA0 or c1 > 0xBF:
                    return i
            elif c == 0xED:
                if c1 < 0x80 or c1 > 0x9F:
                    return i
            elif (c1 & 0xC0) != 0x80:
                return i
            if (s[i + 2] & 0xC0) != 0x80:
                return i
            i += 3
        elif 0xF0 <= c <= 0xF4:
            if i + 3 >= n:
                return i
            c1 = s[i + 1]
            if c == 0xF0:
                if c1 < 0x90 or c1 > 0xBF:
                    return i
            elif c == 0xF4:
                if c1 < 0x80 or c1 > 0x8F:
                    return i
            elif (c1 & 0xC0) != 0x80:
                return i
            if (s[i + 2] & 0xC0) != 0x80 or (s[i + 3] & 0xC0) != 0x80:
                return i
            i += 4
        else:
            return i
    return -1


def utf8_error(const uint8_t[::1] buf, Py_ssize_t start, Py_ssize_t end):
    """Offset (from ``start``) of the first invalid UTF-8 sequence in ``buf[start:end]``, or -1.

    Agrees with Python's strict ``bytes.decode("utf-8")`` on validity; a sequence cut by
    ``end`` is invalid, so only call it on a slice that ends at a character boundary.
    """
    if not 0 <= start <= end <= buf.shape[0]:
        raise ValueError(f"bad slice [{start}:{end}] of a buffer of {buf.shape[0]} bytes")
    cdef Py_ssize_t r
    with nogil:
        r = _utf8_error(&buf[0] + start if buf.shape[0] else NULL, end - start)
    return r


# --------------------------------------------------------------------------- parsing


# Bytes that end or break an unquoted text field: comma, quote, LF, CR.
cdef uint8_t _SPECIAL[256]


cdef void _init_special() noexcept:
    cdef int c
    for c in range(256):
        _SPECIAL[c] = c == 44 or c == 34 or c == 10 or c == 13


_init_special()

# Results of the per-field helpers besides a position: an anomaly, or the end of the block
# came first (more bytes may complete the record; at the end of the file it is an anomaly).
cdef enum:
    BAD = -1
    CUT = -2


cdef inline Py_ssize_t _number(const uint8_t* s, Py_ssize_t p, Py_ssize_t end,
                               int64_t* out) noexcept nogil:
    """Position after 1 to MAX_DIGITS digits at ``p`` (value in ``out``), or BAD."""
    cdef Py_ssize_t q = p
    cdef int64_t v = 0
    cdef uint8_t d
    while p < end:
        d = s[p] - 48
        if d >= 10:
            break
        v = v * 10 + d
        p += 1
    if p == q or p - q > MAX_DIGITS:
        return BAD
    out[0] = v
    return p


cdef inline Py_ssize_t _text(const uint8_t* s, Py_ssize_t p, Py_ssize_t end) noexcept nogil:
    """Position of the comma ending the text field at ``p``, or BAD / CUT."""
    cdef const uint8_t* hit
    if p >= end:
        return CUT
    if s[p] == 34:
        p += 1
        while True:
            hit = <const uint8_t*>memchr(s + p, 34, end - p)
            if hit == NULL:
                return CUT
            p = (hit - s) + 1
            if p >= end:
                return CUT
            if s[p] != 34:
                break
            p += 1          # a doubled quote
        return p if s[p] == 44 else BAD
    while p < end:
        if _SPECIAL[s[p]]:
            return p if s[p] == 44 else BAD
        p += 1
    return CUT


cdef inline Py_ssize_t _id_and_name(const uint8_t* s, Py_ssize_t p, Py_ssize_t end,
                                    int64_t* out) noexcept nogil:
    """Position after the number at ``p`` (value in ``out``), its comma, the text field after
    it and that field's comma, or BAD / CUT."""
    if p >= end:
        return CUT
    p = _number(s, p, end, out)
    if p < 0:
        return BAD
    if p >= end:
        return CUT
    if s[p] != 44:
        return BAD
    p = _text(s, p + 1, end)
    if p < 0:
        return p
    if p + 1 >= end:
        return CUT
    return p + 1


cdef inline Py_ssize_t _record(const uint8_t* s, Py_ssize_t p, Py_ssize_t end, bint final,
                               int64_t* uid, int64_t* aid, int64_t* rating) noexcept nogil:
    """Position after the record at ``p`` (user_id, Username, anime_id, Anime Title, rating;
    its three numbers stored), or BAD / CUT."""
    p = _id_and_name(s, p, end, uid)
    if p < 0:
        return p
    p = _id_and_name(s, p, end, aid)
    if p < 0:
        return p
    p = _number(s, p, end, rating)
    if p < 0:
        return BAD
    if p >= end:
        return end if final else CUT
    if s[p] == 10:
        return p + 1
    if s[p] == 13:
        if p + 1 >= end:
            return CUT
        return p + 2 if s[p + 1] == 10 else BAD
    return BAD


def parse_block(const uint8_t[::1] buf, Py_ssize_t start, Py_ssize_t end, bint final,
                const int64_t[::1] lookup, int64_t[::1] uid_out, int32_t[::1] item_out,
                int8_t[::1] rating_out, int64_t[::1] counts):
    """Parse the records of ``buf[start:end]`` (which starts at a record boundary).

    Kept rows (known, not excluded anime; rating 1..10) go to ``uid_out``/``item_out``/
    ``rating_out``; a block of ``m`` bytes has at most ``m // 8 + 1`` records (the shortest
    is ``0,,0,,0`` and its LF). ``counts`` (int64[4]) is incremented by: rows, unknown anime,
    excluded anime, invalid rating. ``lookup[anime_id]`` is the item index, -1 unknown, -2
    excluded; ids past its end are unknown.

    Returns
    -------
    (status, consumed, n_kept)
        ``status`` is ``OK`` or ``ANOMALY`` (then nothing else is meaningful). ``consumed`` is
        the offset just past the last whole record read; with ``final`` true it is ``end``.
    """
    if not 0 <= start <= end <= buf.shape[0]:
        raise ValueError(f"bad slice [{start}:{end}] of a buffer of {buf.shape[0]} bytes")
    if counts.shape[0] < 4:
        raise ValueError("counts must hold 4 entries")
    cdef Py_ssize_t cap = min(uid_out.shape[0], item_out.shape[0], rating_out.shape[0])
    cdef Py_ssize_t n_lookup = lookup.shape[0]
    cdef const uint8_t* s = &buf[0] if buf.shape[0] else NULL
    cdef Py_ssize_t p = start, r, kept = 0
    cdef int64_t rows = 0, n_unknown = 0, n_excluded = 0, n_invalid = 0
    cdef int64_t uid = 0, aid = 0, rating = 0, item
    cdef int status = 0    # 0 ok, 1 anomaly
    with nogil:
        while p < end:
            # Empty lines (LF or CRLF alone) are skipped, as pyarrow does.
            if s[p] == 10:
                p += 1
                continue
            if s[p] == 13:
                if p + 1 < end and s[p + 1] == 10:
                    p += 2
                    continue
                r = BAD if p + 1 < end else CUT
            else:
                r = _record(s, p, end, final, &uid, &aid, &rating)
            if r < 0:
                if r == BAD or final:
                    status = 1
                break
            p = r
            rows += 1
            item = lookup[aid] if aid < n_lookup else -1
            if item == -1:
                n_unknown += 1
            elif item == -2:
                n_excluded += 1
            elif rating < 1 or rating > 10:
                n_invalid += 1
            elif item < 0 or kept >= cap:
                status = 1
                break
            else:
                uid_out[kept] = uid
                item_out[kept] = <int32_t>item
                rating_out[kept] = <int8_t>rating
                kept += 1
    if status == 1:
        return ANOMALY, start, 0
    counts[0] += rows
    counts[1] += n_unknown
    counts[2] += n_excluded
    counts[3] += n_invalid
    return OK, p, kept


# --------------------------------------------------------------------------- splitting
# The per-user split's compiled helpers (kept: they split in less than half the time of the
# NumPy code, saving more than a third of load_mal's time; benchmarks/README.md): each user's
# ratings ranked by a random key with a bucket sort per run, then each rating's part and the
# copies of the parts.


cdef void _merge_sort(double* key, int64_t* pos, double* key_tmp, int64_t* pos_tmp,
                      Py_ssize_t n) noexcept nogil:
    """Stable sort of the pairs (key[i], pos[i]), i < n, by key; the result is in key/pos.

    Bottom-up merge sort whose merge step picks its source with a conditional move instead of
    a branch: random keys would mispredict half of the branches.
    """
    cdef Py_ssize_t i, j, k, lo, mid, hi, width = 1, src_at
    cdef double* ks = key
    cdef double* kd = key_tmp
    cdef int64_t* ps = pos
    cdef int64_t* pd = pos_tmp
    cdef double* kswap
    cdef int64_t* pswap
    cdef bint right
    while width < n:
        lo = 0
        while lo < n:
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                # Take the right entry only when strictly smaller: ties keep their order.
                right = ks[j] < ks[i]
                src_at = i ^ ((i ^ j) & -(<Py_ssize_t>right))
                kd[k] = ks[src_at]
                pd[k] = ps[src_at]
                j += right
                i += 1 - right
                k += 1
            while i < mid:
                kd[k] = ks[i]
                pd[k] = ps[i]
                i += 1
                k += 1
            while j < hi:
                kd[k] = ks[j]
                pd[k] = ps[j]
                j += 1
                k += 1
            lo = hi
        kswap, ks, kd = ks, kd, ks
        pswap, ps, pd = ps, pd, ps
        width *= 2
    if ps != pos:
        memcpy(pos, ps, n * sizeof(int64_t))
        memcpy(key, ks, n * sizeof(double))


cdef enum:
    # A bucket holding more entries than this (clustered or repeated keys) sends its run to
    # the merge sort, so the insertion sorts stay short whatever the keys.
    BUCKET_MAX = 48


cdef bint _bucket_sort(double* key, int64_t* pos, double* key_tmp, int64_t* pos_tmp,
                       int64_t* slot, Py_ssize_t n) noexcept nogil:
    """Stable sort of the pairs (key[i], pos[i]) by key into key_tmp/pos_tmp, or False.

    ``n`` buckets over [min, max] of the keys (a non-decreasing map of the key, so buckets
    come in key order), a stable counting scatter, then an insertion sort of each bucket.
    Linear for spread-out keys; returns False (nothing usable written) when a bucket is too
    full. ``slot`` needs n + 1 entries.
    """
    cdef Py_ssize_t i, j, b, start, stop
    cdef double lo = key[0], hi = key[0], scale, kv
    cdef int64_t pv
    for i in range(1, n):
        if key[i] < lo:
            lo = key[i]
        if key[i] > hi:
            hi = key[i]
    if not hi > lo:          # all equal (or NaN): the order is already sorted and stable
        memcpy(key_tmp, key, n * sizeof(double))
        memcpy(pos_tmp, pos, n * sizeof(int64_t))
        return True
    scale = n / (hi - lo)
    for i in range(n + 1):
        slot[i] = 0
    for i in range(n):
        b = <Py_ssize_t>((key[i] - lo) * scale)
        b = min(max(b, 0), n - 1)
        slot[b + 1] += 1
    for i in range(n):
        if slot[i + 1] > BUCKET_MAX:
            return False
        slot[i + 1] += slot[i]
    for i in range(n):
        b = <Py_ssize_t>((key[i] - lo) * scale)
        b = min(max(b, 0), n - 1)
        j = slot[b]
        slot[b] = j + 1
        key_tmp[j] = key[i]
        pos_tmp[j] = pos[i]
    # slot[b] is now the end of bucket b; bucket b starts where bucket b - 1 ends.
    start = 0
    for b in range(n):
        stop = slot[b]
        for i in range(start + 1, stop):
            kv = key_tmp[i]
            pv = pos_tmp[i]
            j = i - 1
            while j >= start and key_tmp[j] > kv:
                key_tmp[j + 1] = key_tmp[j]
                pos_tmp[j + 1] = pos_tmp[j]
                j -= 1
            key_tmp[j + 1] = kv
            pos_tmp[j + 1] = pv
        start = stop
    return True


def grouped_argsort(const int64_t[::1] bounds, const double[::1] key, int64_t[::1] order,
                    int64_t[::1] rank=None):
    """Sort each run ``order[bounds[g]:bounds[g+1]]`` stably by ``key`` of its entries.

    ``order`` holds positions into ``key``; on return each run is ordered by increasing key,
    equal keys keeping their previous order. With ``order`` = the stable order by user and
    ``bounds`` the user boundaries, this is the stable argsort of (user, key). When ``rank``
    is given, ``rank[order[bounds[g] + j]] = j``: each position's rank within its run.
    Keys must not be NaN.
    """
    cdef Py_ssize_t g, j, b, n_groups = bounds.shape[0] - 1, size, longest = 0
    cdef Py_ssize_t n = order.shape[0]
    cdef double* keys
    cdef double* keys_tmp
    cdef int64_t* pos_tmp
    cdef int64_t* slot
    if rank is not None and rank.shape[0] != key.shape[0]:
        raise ValueError("rank must have the length of key")
    if n_groups < 1:
        return
    if bounds[0] < 0 or bounds[n_groups] > n:
        raise ValueError("bounds outside the order array")
    for g in range(n_groups):
        if bounds[g + 1] < bounds[g]:
            raise ValueError("bounds must be non-decreasing")
        longest = max(longest, bounds[g + 1] - bounds[g])
    for j in range(n):
        if order[j] < 0 or order[j] >= key.shape[0]:
            raise ValueError("order holds a position outside key")
    longest = max(longest, 1)
    keys = <double*>malloc(longest * sizeof(double))
    keys_tmp = <double*>malloc(longest * sizeof(double))
    pos_tmp = <int64_t*>malloc(longest * sizeof(int64_t))
    slot = <int64_t*>malloc((longest + 1) * sizeof(int64_t))
    if keys == NULL or keys_tmp == NULL or pos_tmp == NULL or slot == NULL:
        free(keys)
        free(keys_tmp)
        free(pos_tmp)
        free(slot)
        raise MemoryError()
    with nogil:
        for g in range(n_groups):
            b = bounds[g]
            size = bounds[g + 1] - b
            if size > 1:
                for j in range(size):
                    keys[j] = key[order[b + j]]
                if _bucket_sort(keys, &order[b], keys_tmp, pos_tmp, slot, size):
                    memcpy(&order[b], pos_tmp, size * sizeof(int64_t))
                else:
                    _merge_sort(keys, &order[b], keys_tmp, pos_tmp, size)
            if rank is not None:
                for j in range(size):
                    rank[order[b + j]] = j
    free(keys)
    free(keys_tmp)
    free(pos_tmp)
    free(slot)


def split_parts(const int32_t[::1] users, const int64_t[::1] rank, const int64_t[::1] n_test,
                const int64_t[::1] n_valid):
    """Part of each rating from its rank within its user: 2 (test) for the ``n_test[user]``
    first, 1 (validation) for the ``n_valid[user]`` next, 0 (train) for the rest.
    """
    cdef Py_ssize_t i, n = users.shape[0], n_users = n_test.shape[0]
    cdef int32_t u
    if rank.shape[0] != n or n_valid.shape[0] != n_users:
        raise ValueError("users and rank, n_test and n_valid must have one length")
    for i in range(n):
        if users[i] < 0 or users[i] >= n_users:
            raise ValueError(f"user index {users[i]} outside [0, {n_users})")
    part_a = np.empty(n, dtype=np.int8)
    cdef int8_t[::1] part = part_a
    with nogil:
        for i in range(n):
            u = users[i]
            part[i] = 2 if rank[i] < n_test[u] else (1 if rank[i] < n_test[u] + n_valid[u]
                                                     else 0)
    return part_a


def partition3(const int8_t[::1] part, const int32_t[::1] users, const int32_t[::1] items,
               const int8_t[::1] ratings, Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t n2):
    """Copy the entries of each part (0, 1, 2) out, in order, as (users, items, float32 rating).

    ``n0``, ``n1``, ``n2`` are the sizes of the parts (the counts of 0, 1, 2 in ``part``).
    """
    cdef Py_ssize_t i, n = part.shape[0], k0 = 0, k1 = 0, k2 = 0
    if users.shape[0] != n or items.shape[0] != n or ratings.shape[0] != n:
        raise ValueError("part, users, items and ratings must have one length")
    out = []
    for size in (n0, n1, n2):
        out.append((np.empty(size, np.int32), np.empty(size, np.int32),
                    np.empty(size, np.float32)))
    cdef int32_t[::1] u0 = out[0][0], u1 = out[1][0], u2 = out[2][0]
    cdef int32_t[::1] i0 = out[0][1], i1 = out[1][1], i2 = out[2][1]
    cdef float[::1] r0 = out[0][2], r1 = out[1][2], r2 = out[2][2]
    cdef int8_t p
    cdef bint bad = False
    with nogil:
        for i in range(n):
            p = part[i]
            if p == 0 and k0 < n0:
                u0[k0] = users[i]
                i0[k0] = items[i]
                r0[k0] = ratings[i]
                k0 += 1
            elif p == 1 and k1 < n1:
                u1[k1] = users[i]
                i1[k1] = items[i]
                r1[k1] = ratings[i]
                k1 += 1
            elif p == 2 and k2 < n2:
                u2[k2] = users[i]
                i2[k2] = items[i]
                r2[k2] = ratings[i]
                k2 += 1
            else:
                bad = True
                break
    if bad or k0 != n0 or k1 != n1 or k2 != n2:
        raise ValueError("part sizes do not match n0, n1, n2")
    return out
