"""The compiled scores reader and sort helpers against the pyarrow / NumPy paths they replace.

Parity: on every oddity the reader takes, it gives exactly the arrays and counts of the pyarrow
path, at any block size. Fallback: on every anomaly it declines (``None``) and ``load_mal``
gives exactly what the pyarrow path gives, result or error message.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import numpy as np
import pytest

from anirec.data import Ratings, load_mal, split_ratings
from anirec.data import mal, split
from anirec.errors import DataError

from .conftest import ANIME_HEADER, ANIME_ROWS, SCORES_HEADER, SCORES_ROWS

_scores = pytest.importorskip("anirec.data._scores")


# --------------------------------------------------------------------------- helpers


def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def anime_file(tmp_path: Path) -> Path:
    return write(tmp_path / "anime.csv", "\n".join([ANIME_HEADER, *ANIME_ROWS]) + "\n")


def lookup_of(anime: Path) -> np.ndarray:
    cat, excluded = mal.load_catalogue(anime)
    top = int(max(cat.anime_ids.max(initial=0), excluded.max(initial=0)))
    lookup = np.full(top + 1, -1, dtype=np.int64)
    lookup[excluded] = -2
    lookup[cat.anime_ids] = np.arange(cat.n_items)
    return lookup


def arrow_read(path: Path, lookup: np.ndarray):
    summary = mal.LoadSummary()
    header = mal._csv.read_header(path, mal.SCORES_REQUIRED)
    arrays = mal._read_scores_arrow(path, header, lookup, summary, False)
    return arrays, [summary.rating_rows, summary.ratings_unknown_anime,
                    summary.ratings_excluded_anime, summary.ratings_invalid]


def assert_parity(path: Path, lookup: np.ndarray) -> None:
    fast = mal._read_scores_fast(path, lookup, False)
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
    with monkeypatch.context() as m:
        m.setattr(mal, "_scores", None)
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


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request, monkeypatch):
    """The reader with one thread, or two splitting even the smallest blocks."""
    monkeypatch.setattr(mal, "_FAST_THREADS", request.param)
    monkeypatch.setattr(mal, "_FAST_SPLIT", 16)
    return request.param


@pytest.mark.parametrize("block", [48, 49, 53, 64, 100, 4096])
@pytest.mark.parametrize("name", ["plain", "crlf", "bom", "newline_in_quotes", "blank_lines",
                                  "no_final_newline"])
def test_parity_at_any_block_size(tmp_path, monkeypatch, threads, name, block):
    # Tiny blocks cut records (and CRLFs, quotes, UTF-8 sequences) everywhere.
    monkeypatch.setattr(mal, "_FAST_BLOCK", block)
    anime = anime_file(tmp_path)
    scores = write(tmp_path / "scores.csv", ODDITIES[name])
    assert_parity(scores, lookup_of(anime))


def test_record_longer_than_the_block(tmp_path, monkeypatch):
    monkeypatch.setattr(mal, "_FAST_BLOCK", 64)
    anime = anime_file(tmp_path)
    long_name = '"' + "long, ""quoted"" name " * 40 + '"'
    scores = write(tmp_path / "scores.csv",
                   ROWS + f"5,{long_name},1,{long_name},7\n" + SCORES_ROWS[0] + "\n")
    assert_parity(scores, lookup_of(anime))


@pytest.mark.parametrize("block", [1 << 12, 1 << 23])
def test_parity_on_generated_files(small_files, monkeypatch, threads, block):
    monkeypatch.setattr(mal, "_FAST_BLOCK", block)
    anime, scores = small_files
    assert_parity(scores, lookup_of(anime))


@pytest.mark.parametrize("block", [1 << 10, 1 << 16])
def test_two_threads_when_the_middle_is_inside_quotes(tmp_path, monkeypatch, threads, block):
    # A quoted field of many lines: the LF a thread picks as the middle of a block is likely
    # inside it, and the guess parsed from there must be dropped.
    monkeypatch.setattr(mal, "_FAST_BLOCK", block)
    anime = anime_file(tmp_path)
    many_lines = '"' + 'line, ""q""\n' * 300 + '"'
    body = ROWS + f"5,{many_lines},1,{many_lines},7\n" + "\n".join(SCORES_ROWS * 20) + "\n"
    scores = write(tmp_path / "scores.csv", body)
    assert_parity(scores, lookup_of(anime))


def test_load_mal_same_with_and_without_the_reader(small_files, monkeypatch):
    assert assert_same_as_arrow(monkeypatch, *small_files)[0] == "ok"


def test_progress_bar_counts_every_byte(tmp_path, monkeypatch):
    monkeypatch.setattr(mal, "_FAST_BLOCK", 64)
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
        mal._csv.read_header(scores, mal.SCORES_REQUIRED)
    except DataError:
        pass
    else:
        assert mal._read_scores_fast(scores, lookup, False) is None
    assert_same_as_arrow(monkeypatch, anime, scores)


@pytest.mark.parametrize("block", [48, 64, 1 << 23])
def test_bad_value_in_a_late_block_falls_back(tmp_path, monkeypatch, threads, block):
    monkeypatch.setattr(mal, "_FAST_BLOCK", block)
    anime = anime_file(tmp_path)
    rows = [f"{u},user{u},1,Cowboy Bebop,{1 + u % 10}" for u in range(2_000)]
    scores = write(tmp_path / "scores.csv",
                   "\n".join([SCORES_HEADER, *rows, "5,x,1,t,oops", *rows]) + "\n")
    assert mal._read_scores_fast(scores, lookup_of(anime), False) is None
    kind, message = assert_same_as_arrow(monkeypatch, anime, scores)
    assert kind == "error" and "column 'rating'" in message and "row 2001" in message


def test_without_the_extension_pyarrow_reads(tmp_path, monkeypatch):
    monkeypatch.setattr(mal, "_scores", None)
    anime = anime_file(tmp_path)
    scores = write(tmp_path / "scores.csv", ROWS)
    assert mal._read_scores_fast(scores, lookup_of(anime), False) is None
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


# --------------------------------------------------------------------------- ordering and split


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


def test_counting_order_is_the_stable_argsort():
    users = np.random.default_rng(2).integers(0, 17, 3_000).astype(np.int32)
    order, bounds = _scores.counting_order(users, 20)
    np.testing.assert_array_equal(order, np.argsort(users, kind="stable"))
    np.testing.assert_array_equal(bounds, np.concatenate([[0], np.cumsum(
        np.bincount(users, minlength=20))]))
    with pytest.raises(ValueError, match="user index"):
        _scores.counting_order(np.array([0, 20], dtype=np.int32), 20)


@pytest.mark.parametrize("grouped", [True, False])
def test_pair_order_matches_numpy(monkeypatch, grouped):
    rng = np.random.default_rng(4)
    users = rng.integers(0, 30, 4_000)
    if grouped:
        users = np.sort(users)
    items = rng.integers(0, 50, 4_000)   # many repeated pairs
    fast = mal._pair_order(users, items, 30, 50)
    monkeypatch.setattr(mal, "_scores", None)
    np.testing.assert_array_equal(fast, mal._pair_order(users, items, 30, 50))


def _ratings(users: np.ndarray, seed: int = 0) -> Ratings:
    rng = np.random.default_rng(seed)
    n_users = int(users.max()) + 1
    return Ratings(user_ids=np.arange(n_users, dtype=np.int64),
                   users=users.astype(np.int32),
                   items=rng.integers(0, 100, users.size).astype(np.int32),
                   ratings=rng.integers(1, 11, users.size).astype(np.int8))


@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize("seed", [0, 3])
def test_split_same_with_and_without_the_helpers(monkeypatch, grouped, seed):
    users = np.random.default_rng(9).integers(0, 200, 20_000)
    if grouped:
        users = np.sort(users)
    r = _ratings(users)
    fast = split_ratings(r, valid=0.1, test=0.2, seed=seed)
    monkeypatch.setattr(split, "_scores", None)
    slow = split_ratings(r, valid=0.1, test=0.2, seed=seed)
    for a, b in ((fast.train, slow.train), (fast.valid, slow.valid), (fast.test, slow.test)):
        for name in ("users", "items", "ratings"):
            x, y = getattr(a, name), getattr(b, name)
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
    a, b = mal.load_catalogue(plain)[0], mal.load_catalogue(bom)[0]
    assert a.anime_ids.tolist() == b.anime_ids.tolist() and a.genres == b.genres
    np.testing.assert_array_equal(a.attributes["start_year"], b.attributes["start_year"])


@pytest.mark.parametrize("bad", [b"Old \xe9 Title", b"Old \xed\xa0\x80 Title", b"Old Title\xc3"])
def test_anime_utf8_error_same_without_the_extension(tmp_path, monkeypatch, bad):
    body = ("\n".join([ANIME_HEADER, ANIME_ROWS[0]]) + "\n").encode() + \
        ANIME_ROWS[5].encode().replace(b"Old Title", bad) + b"\n"
    anime = write(tmp_path / "anime.csv", body)
    messages = []
    for compiled in (True, False):
        with monkeypatch.context() as m:
            if not compiled:
                m.setattr(mal._csv, "_scores", None)
            with pytest.raises(DataError) as exc:
                mal.load_catalogue(anime)
            messages.append(str(exc.value))
    assert messages[0] == messages[1]
    assert "line 3" in messages[0] and "column 'Name'" in messages[0]


def test_sorted_last_matches_numpy(monkeypatch):
    rng = np.random.default_rng(8)
    users = np.sort(rng.integers(0, 30, 5_000)).astype(np.int32)
    items = rng.integers(0, 40, 5_000).astype(np.int32)     # many repeated pairs
    ratings = rng.integers(1, 11, 5_000).astype(np.int8)
    fast = mal._sorted_last(users, items, ratings, 30, 40)
    monkeypatch.setattr(mal, "_scores", None)
    slow = mal._sorted_last(users, items, ratings, 30, 40)
    assert len(fast[0]) < 5_000
    for a, b in zip(fast, slow):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("users,n_users", [([0, 0, 1, 3, 3], 5), ([], 3), ([2, 2], 3),
                                           ([1, 0], 2), ([0, 5], 5), ([-1, 0], 2)])
def test_run_bounds(users, n_users):
    u = np.array(users, dtype=np.int32)
    got = _scores.run_bounds(u, n_users)
    if u.size and (np.any(np.diff(u) < 0) or u.min() < 0 or u.max() >= n_users):
        assert got is None
    else:
        expected = np.concatenate([[0], np.cumsum(np.bincount(u, minlength=n_users))])
        np.testing.assert_array_equal(got, expected)


def test_grouped_argsort_int32_keys_equal_float_keys():
    rng = np.random.default_rng(1)
    users = np.sort(rng.integers(0, 50, 3_000)).astype(np.int32)
    items = rng.integers(-5, 200, 3_000).astype(np.int32)
    bounds = _scores.run_bounds(users, 50)
    a, b = np.arange(3_000, dtype=np.int64), np.arange(3_000, dtype=np.int64)
    _scores.grouped_argsort(bounds, items, a)
    _scores.grouped_argsort(bounds, items.astype(np.float64), b)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, np.lexsort((items, users)))


@pytest.mark.parametrize("ids", [[5, 5, 7, 9, 9, 9], [0], [3, 1, 2], [7, 7], [-4, -4, 2]])
def test_compact_ids_same_with_and_without_the_helpers(monkeypatch, ids):
    ids = np.array(ids, dtype=np.int64)
    distinct, index = mal._compact_ids(ids)
    monkeypatch.setattr(mal, "_scores", None)
    if ids.min() >= 0:
        d2, i2 = mal._compact_ids(ids)
    else:
        d2, i2 = np.unique(ids, return_inverse=True)
    np.testing.assert_array_equal(distinct, d2)
    np.testing.assert_array_equal(index, i2)
    assert distinct.dtype == np.int64


# --------------------------------------------------------------------------- early read


@pytest.mark.parametrize("name", sorted(ODDITIES))
def test_read_before_the_catalogue_gives_the_same_rows(tmp_path, monkeypatch, threads, name):
    monkeypatch.setattr(mal, "_FAST_BLOCK", 64)
    anime = anime_file(tmp_path)
    scores = write(tmp_path / "scores.csv", ODDITIES[name])
    lookup = lookup_of(anime)
    direct = mal._read_scores_fast(scores, lookup, False)
    raw = mal._read_scores_fast(scores, None, False)
    if name == "big_ids":
        assert raw is None      # an anime id past int32: pyarrow reads it after the catalogue
        return
    assert raw is not None and raw[1][1:].tolist() == [0, 0, 0]
    late = mal._finish_raw(raw, lookup)
    assert late[1].tolist() == direct[1].tolist()
    for a, b in zip(late[0], direct[0]):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("early", [True, False])
def test_load_mal_with_and_without_the_early_read(small_files, monkeypatch, early):
    if not early:
        monkeypatch.setattr(mal, "_FAST_THREADS", 1)
    assert assert_same_as_arrow(monkeypatch, *small_files)[0] == "ok"


def test_early_read_is_cancelled_when_the_anime_file_is_bad(tmp_path, small_files):
    bad = write(tmp_path / "anime.csv", "no,such,columns\n1,2,3\n")
    with pytest.raises(DataError, match="missing required column"):
        load_mal(bad, small_files[1])
    cancel = __import__("threading").Event()
    cancel.set()
    assert mal._read_scores_fast(small_files[1], None, False, cancel) is None


def test_early_read_declines_huge_anime_ids(tmp_path):
    scores = write(tmp_path / "scores.csv", ROWS + "5,x,2147483648,t,5\n")
    assert mal._read_scores_fast(scores, None, False) is None


def test_apply_lookup_rejects_odd_tables():
    uid = np.array([1, 2], dtype=np.int64)
    item = np.array([0, 1], dtype=np.int32)
    rating = np.array([5, 0], dtype=np.int8)
    counts = np.zeros(4, dtype=np.int64)
    assert _scores.apply_lookup(uid, item, rating, 2, np.array([-7, 0]), counts) == -1
    assert counts.tolist() == [0, 0, 0, 0]
    assert _scores.apply_lookup(uid, item, rating, 2, np.array([3, 0]), counts) == 1
    assert counts.tolist() == [0, 0, 0, 1] and item[0] == 3
