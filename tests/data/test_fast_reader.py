"""The compiled scores reader against the pyarrow path it stands in for, and the NumPy helpers.

Parity: on every oddity the reader takes, it gives exactly the arrays and counts of the pyarrow
path, at any block size. Fallback: on every anomaly it declines (``None``) and ``load_mal``
gives exactly what the pyarrow path gives, result or error message.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import numpy as np
import pytest

from anirec.backend import use_backend
from anirec.data import Ratings, load_mal, split_ratings
from anirec.data import _csv, anime as anime_file_module, scores as sc
from anirec.data.types import LoadSummary
from anirec.errors import DataError

from .conftest import ANIME_HEADER, ANIME_ROWS, SCORES_HEADER, SCORES_ROWS

_scores = pytest.importorskip("anirec.data._scores")


# --------------------------------------------------------------------------- helpers


def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def anime_file(tmp_path: Path) -> Path:
    return write(tmp_path / "anime.csv", "\n".join([ANIME_HEADER, *ANIME_ROWS]) + "\n")


def lookup_of(anime: Path) -> sc.AnimeLookup:
    cat, excluded = anime_file_module.load_catalogue(anime)
    return sc.AnimeLookup(cat.anime_ids, excluded)


def arrow_read(path: Path, lookup: sc.AnimeLookup):
    summary = LoadSummary()
    header = _csv.read_header(path, sc.SCORES_REQUIRED)
    arrays = sc._read_arrow(path, header, lookup, summary, False)
    return arrays, [summary.rating_rows, summary.ratings_unknown_anime,
                    summary.ratings_excluded_anime, summary.ratings_invalid]


def assert_parity(path: Path, lookup: sc.AnimeLookup) -> None:
    fast = sc._read_scores_fast(path, lookup.table, False)
    assert fast is not None, "the compiled reader declined a file it should read"
    (f_arrays, f_counts), (a_arrays, a_counts) = fast, arrow_read(path, lookup)
    assert f_counts.tolist() == a_counts
    for f, a in zip(f_arrays, a_arrays):
        assert f.dtype == a.dtype
        np.testing.assert_array_equal(f, a)


def outcome(anime: Path, scores: Path):
    """What load_mal gives: its arrays and summary, or its error message."""
    try:
        d = load_mal(anime, scores)
    except DataError as exc:
        return ("error", str(exc))
    r = d.ratings
    return ("ok", r.user_ids.tolist(), r.users.tolist(), r.items.tolist(), r.ratings.tolist(),
            d.summary.as_dict(), d.catalogue.bayes_rating.tolist())


def assert_same_as_arrow(monkeypatch, anime: Path, scores: Path):
    fast = outcome(anime, scores)
    with use_backend("numpy"):     # the backend switches the compiled reader off
        slow = outcome(anime, scores)
    assert fast == slow
    return fast


ROWS = "\n".join([SCORES_HEADER, *SCORES_ROWS]) + "\n"

# Files the compiled reader must take, each with the oddity it shows.
ODDITIES = {
    "plain": ROWS,
    "crlf": ROWS.replace("\n", "\r\n"),
    "bom": "\ufeff" + ROWS,
    "bom_crlf": "\ufeff" + ROWS.replace("\n", "\r\n"),
    "no_final_newline": ROWS.rstrip("\n"),
    "no_final_newline_crlf": ROWS.replace("\n", "\r\n").rstrip("\r\n"),
    "blank_lines": ROWS.replace(SCORES_ROWS[3] + "\n", SCORES_ROWS[3] + "\n\n\r\n") + "\n\r\n",
    "newline_in_quotes": ROWS + '5,"multi\nline, ""user""",1,"Cowboy\r\nBebop",4\n',
    "empty_text_fields": ROWS + "5,,1,,4\n" + '6,"",5,"",3\n',
    "leading_zeros": ROWS + "0005,x,0001,t,04\n",
    "non_ascii": ROWS + "9,ユーザー😀,1,\"Ōkami – Zoë's\",10\n",
    "big_ids": ROWS + "999999999999999999,x,123456789012345678,t,5\n",
    "out_of_range_ratings": ROWS + "5,x,1,t,0\n5,x,5,t,11\n5,x,1,t,100\n",
    "header_crlf_rows_lf": SCORES_HEADER + "\r\n" + "\n".join(SCORES_ROWS) + "\n",
}


# --------------------------------------------------------------------------- parity


@pytest.mark.parametrize("name", sorted(ODDITIES))
def test_parity_on_oddities(tmp_path, monkeypatch, name):
    anime = anime_file(tmp_path)
    scores = write(tmp_path / "scores.csv", ODDITIES[name])
    assert_parity(scores, lookup_of(anime))
    assert assert_same_as_arrow(monkeypatch, anime, scores)[0] == "ok"


@pytest.mark.parametrize("block", [48, 49, 53, 64, 100, 4096])
@pytest.mark.parametrize("name", ["plain", "crlf", "bom", "newline_in_quotes", "blank_lines",
                                  "no_final_newline"])
def test_parity_at_any_block_size(tmp_path, monkeypatch, name, block):
    # Tiny blocks cut records (and CRLFs, quotes, UTF-8 sequences) everywhere.
    monkeypatch.setattr(sc, "_FAST_BLOCK", block)
    anime = anime_file(tmp_path)
    scores = write(tmp_path / "scores.csv", ODDITIES[name])
    assert_parity(scores, lookup_of(anime))


def test_record_longer_than_the_block(tmp_path, monkeypatch):
    monkeypatch.setattr(sc, "_FAST_BLOCK", 64)
    anime = anime_file(tmp_path)
    long_name = '"' + "long, ""quoted"" name " * 40 + '"'
    scores = write(tmp_path / "scores.csv",
                   ROWS + f"5,{long_name},1,{long_name},7\n" + SCORES_ROWS[0] + "\n")
    assert_parity(scores, lookup_of(anime))


@pytest.mark.parametrize("block", [1 << 12, 1 << 23])
def test_parity_on_generated_files(small_files, monkeypatch, block):
    monkeypatch.setattr(sc, "_FAST_BLOCK", block)
    anime, scores = small_files
    assert_parity(scores, lookup_of(anime))


def test_load_mal_same_with_and_without_the_reader(small_files, monkeypatch):
    assert assert_same_as_arrow(monkeypatch, *small_files)[0] == "ok"


def test_progress_bar_counts_every_byte(tmp_path, monkeypatch):
    monkeypatch.setattr(sc, "_FAST_BLOCK", 64)
    seen = []

    class Bar:
        def __init__(self, total, **kw):
            self.total, self.n = total, 0

        def update(self, n):
            self.n += n

        def close(self):
            seen.append((self.total, self.n))

    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    anime = anime_file(tmp_path)
    scores = write(tmp_path / "scores.csv", ROWS)
    data = load_mal(anime, scores, progress=True)
    assert data.summary.ratings_kept == 6
    assert seen == [(scores.stat().st_size, scores.stat().st_size)]


# --------------------------------------------------------------------------- fallbacks


def _rows(*extra: str) -> str:
    return "\n".join([SCORES_HEADER, SCORES_ROWS[0], SCORES_ROWS[1], *extra,
                      SCORES_ROWS[7]]) + "\n"


# Each is declined by the compiled reader; pyarrow then reads it or raises its precise error.
ANOMALIES: dict[str, str | bytes] = {
    "column_order": "anime_id,Username,user_id,Anime Title,rating\n1,a,100,t,5\n",
    "extra_column": SCORES_HEADER + ",extra\n100,a,1,t,5,x\n",
    "non_integer_user": _rows("x7,a,1,t,5"),
    "non_integer_anime": _rows("7,a,one,t,5"),
    "decimal_user": _rows("1.5,a,1,t,5"),
    "plus_sign": _rows("+7,a,1,t,5"),
    "negative_id": _rows("-3,a,1,t,5"),
    "space_padded": _rows(" 7,a,1 ,t, 5"),
    "quoted_number": _rows('"7",a,"1",t,"5"'),
    "too_many_digits": _rows("1234567890123456789,a,1,t,5"),
    "empty_anime": _rows("7,a,,t,5"),
    "empty_rating": _rows("7,a,1,t,"),
    "decimal_rating": _rows("7,a,1,t,7.0"),
    "text_rating": _rows("7,a,1,t,high"),
    "ragged_long": _rows("7,a,1,t,5,extra,fields"),
    "ragged_short": _rows("7,a,1"),
    "unterminated_quote": _rows('7,"a,1,t,5'),
    "quote_inside_unquoted": _rows('7,ab"c,1,t,5'),
    "text_after_quote": _rows('7,"ab"c,1,t,5'),
    "lone_cr": _rows("7,a,1,t,5\r8,b,1,t,6"),
    "cr_at_end": ROWS.rstrip("\n") + "\r",
    "bad_utf8": (_rows().encode() + b"9,bad\xff\xfename,1,Cowboy Bebop,7\n"),
    "truncated_utf8_at_end": (_rows().encode() + b"9,caf\xc3"),
    "overlong_utf8": (_rows().encode() + b"9,\xc0\x80,1,t,7\n"),
    "surrogate_utf8": (_rows().encode() + b"9,\xed\xa0\x80,1,t,7\n"),
    "utf8_in_header": "user_id,Username,anime_id,Anime Title,rating,Zoë\n1,a,1,t,5,x\n",
    "only_blank_rows": SCORES_HEADER + "\n\n\n",
}


@pytest.mark.parametrize("name", sorted(ANOMALIES))
def test_anomalies_fall_back_to_pyarrow(tmp_path, monkeypatch, name):
    anime = anime_file(tmp_path)
    scores = write(tmp_path / "scores.csv", ANOMALIES[name])
    try:
        lookup = lookup_of(anime)
        _csv.read_header(scores, sc.SCORES_REQUIRED)
    except DataError:
        pass
    else:
        assert sc._read_scores_fast(scores, lookup.table, False) is None
    assert_same_as_arrow(monkeypatch, anime, scores)


@pytest.mark.parametrize("block", [48, 64, 1 << 23])
def test_bad_value_in_a_late_block_falls_back(tmp_path, monkeypatch, block):
    monkeypatch.setattr(sc, "_FAST_BLOCK", block)
    anime = anime_file(tmp_path)
    rows = [f"{u},user{u},1,Cowboy Bebop,{1 + u % 10}" for u in range(2_000)]
    scores = write(tmp_path / "scores.csv",
                   "\n".join([SCORES_HEADER, *rows, "5,x,1,t,oops", *rows]) + "\n")
    assert sc._read_scores_fast(scores, lookup_of(anime).table, False) is None
    kind, message = assert_same_as_arrow(monkeypatch, anime, scores)
    assert kind == "error" and "column 'rating'" in message and "row 2001" in message


def test_the_numpy_backend_reads_with_pyarrow(tmp_path):
    anime = anime_file(tmp_path)
    scores = write(tmp_path / "scores.csv", ROWS)
    assert sc.reader_name() == "compiled"
    with use_backend("numpy"):
        assert sc.reader_name() == "pyarrow"
        assert sc._read_scores_fast(scores, lookup_of(anime).table, False) is None
        assert load_mal(anime, scores).summary.ratings_kept == 6


# --------------------------------------------------------------------------- UTF-8


UTF8_CASES = [b"", b"plain ascii" * 3, "Zoë ナルト 😀".encode(), b"\xc2\x80", b"\xdf\xbf",
              b"\xe0\xa0\x80", b"\xef\xbf\xbf", b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf",
              b"\x80", b"\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xc2", b"\xc2\x41", b"\xe0\x80\x80",
              b"\xe0\x9f\xbf", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xee\x80", b"\xf0\x8f\xbf\xbf",
              b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xff", b"\xfe", b"12345678\xe2\x82",
              b"1234567\xe2\x82\xac9", b"abcdefgh" * 4 + b"\xc3\xa9" + b"ijklmnop" * 2 + b"\x80"]


def _python_error(data: bytes) -> int:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return -1


@pytest.mark.parametrize("data", UTF8_CASES)
def test_utf8_check_agrees_with_python(data):
    assert _scores.utf8_error(data, 0, len(data)) == _python_error(data)


def test_utf8_check_on_random_bytes():
    rng = np.random.default_rng(5)
    alphabet = np.frombuffer(b"ab,\n" + bytes(range(0x80, 0x100)), dtype=np.uint8)
    for _ in range(2_000):
        data = bytes(rng.choice(alphabet, rng.integers(0, 24)).tolist())
        assert _scores.utf8_error(data, 0, len(data)) == _python_error(data), data
    text = "".join(chr(c) for c in rng.integers(0x20, 0x2FFFF, 500) if not 0xD800 <= c < 0xE000)
    data = text.encode()
    assert _scores.utf8_error(data, 0, len(data)) == -1
    assert _scores.utf8_error(data, 3, len(data)) == _python_error(data[3:])
    codecs.lookup("utf-8")


# --------------------------------------------------------------------------- split helpers


@pytest.mark.parametrize("kind", ["random", "ties", "clustered", "constant", "negative"])
def test_grouped_argsort_is_the_stable_argsort(kind):
    rng = np.random.default_rng(11)
    n_users, n = 40, 5_000
    users = np.sort(rng.integers(0, n_users, n))
    if kind == "random":
        key = rng.random(n)
    elif kind == "ties":
        key = rng.integers(0, 4, n).astype(np.float64)
    elif kind == "clustered":
        key = np.where(rng.random(n) < 0.95, 1.0 + rng.integers(0, 2, n) * 1e-9, 1e12)
    elif kind == "constant":
        key = np.full(n, 3.0)
    else:
        key = -rng.random(n) * 1e6
    bounds = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=bounds[1:])
    order = np.arange(n, dtype=np.int64)
    rank = np.full(n, -1, dtype=np.int64)
    _scores.grouped_argsort(bounds, key, order, rank)
    expected = np.lexsort((key, users))   # stable: ties keep index order
    np.testing.assert_array_equal(order, expected)
    np.testing.assert_array_equal(rank[expected], np.arange(n) - bounds[users[expected]])


def _ratings(users: np.ndarray, seed: int = 0) -> Ratings:
    rng = np.random.default_rng(seed)
    n_users = int(users.max()) + 1
    return Ratings(user_ids=np.arange(n_users, dtype=np.int64),
                   users=users.astype(np.int32),
                   items=rng.integers(0, 100, users.size).astype(np.int32),
                   ratings=rng.integers(1, 11, users.size).astype(np.int8))


@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize("seed", [0, 3])
def test_split_same_on_both_backends(grouped, seed):
    users = np.random.default_rng(9).integers(0, 200, 20_000)
    if grouped:
        users = np.sort(users)
    r = _ratings(users)
    fast = split_ratings(r, valid=0.1, test=0.2, seed=seed)
    with use_backend("numpy"):
        slow = split_ratings(r, valid=0.1, test=0.2, seed=seed)
    np.testing.assert_array_equal(fast.part, slow.part)
    for a, b in ((fast.train, slow.train), (fast.valid, slow.valid), (fast.test, slow.test)):
        for name in ("users", "items", "ratings", "indptr"):
            x, y = getattr(a, name), getattr(b, name)
            if x is None or y is None:
                assert x is None and y is None and not grouped
                continue
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)


def test_partition3_checks_sizes():
    part = np.array([0, 2, 1, 0], dtype=np.int8)
    u = np.arange(4, dtype=np.int32)
    r = np.array([1, 2, 3, 4], dtype=np.int8)
    (u0, i0, r0), (u1, _, _), (u2, _, r2) = _scores.partition3(part, u, u, r, 2, 1, 1)
    assert u0.tolist() == [0, 3] and u1.tolist() == [2] and u2.tolist() == [1]
    assert r0.dtype == np.float32 and r2.tolist() == [2.0]
    with pytest.raises(ValueError, match="part sizes"):
        _scores.partition3(part, u, u, r, 1, 1, 1)


# --------------------------------------------------------------------------- anime file


def test_anime_file_with_bom_reads_the_same(tmp_path):
    plain = anime_file(tmp_path)
    bom = write(tmp_path / "anime-bom.csv", b"\xef\xbb\xbf" + plain.read_bytes())
    a, b = anime_file_module.load_catalogue(plain)[0], anime_file_module.load_catalogue(bom)[0]
    assert a.anime_ids.tolist() == b.anime_ids.tolist() and a.genres == b.genres
    np.testing.assert_array_equal(a.attributes["start_year"], b.attributes["start_year"])


@pytest.mark.parametrize("ids", [[5, 5, 7, 9, 9, 9], [0], [3, 1, 2], [7, 7], [2, 10**15, 2]])
def test_compact_ids_is_numpy_unique(ids):
    ids = np.array(ids, dtype=np.int64)
    distinct, index = sc.compact_ids(ids)
    d2, i2 = np.unique(ids, return_inverse=True)
    np.testing.assert_array_equal(distinct, d2)
    np.testing.assert_array_equal(index, i2)
    assert distinct.dtype == np.int64 and index.dtype == np.int64


def test_sorted_last_keeps_the_last_of_a_repeated_pair():
    rng = np.random.default_rng(8)
    users = np.sort(rng.integers(0, 30, 5_000)).astype(np.int32)
    items = rng.integers(0, 40, 5_000).astype(np.int32)     # many repeated pairs
    ratings = rng.integers(1, 11, 5_000).astype(np.int8)
    u, i, r = sc.sorted_last(users, items, ratings, 40)
    last = {}
    for k in range(5_000):
        last[(users[k], items[k])] = ratings[k]
    assert list(zip(u.tolist(), i.tolist())) == sorted(last)
    assert r.tolist() == [last[k] for k in sorted(last)]
