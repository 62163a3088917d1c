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

Its sorting and splitting helpers, and the reading before the catalogue is known, are gone
(issue 14): against the NumPy code (or the plain read) that replaced them each saved less
than a third of ``load_mal`` at full size.
"""

import numpy as np

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t
from libc.string cimport memchr, memcpy

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
