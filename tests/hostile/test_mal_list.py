"""Hostile MyAnimeList exports: each gives one named DataError, within the limits, never an
entity expanded, a file or URL opened, a hang or memory beyond the limits."""

from __future__ import annotations

import gzip
import os
import threading
import tracemalloc
import zlib
from pathlib import Path

import pytest

from anirec import DataError, read_mal_list, read_person_ratings
from anirec.data.person import (MAX_DEPTH, MAX_ENTRIES, MAX_FIELD_CHARS, MAX_FILE_BYTES,
                                MAX_XML_BYTES)

FIXTURE = Path(__file__).parent.parent / "data" / "animelist.xml"
HEAD = b'<?xml version="1.0" encoding="UTF-8" ?>\n<myanimelist>\n'
TAIL = b"\n</myanimelist>\n"
ENTRY = (b"<anime><series_animedb_id>1</series_animedb_id>"
         b"<series_title><![CDATA[Cowboy Bebop]]></series_title>"
         b"<my_score>10</my_score><my_status>Completed</my_status></anime>")


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def refused(path: Path, *parts: str) -> str:
    """read_mal_list's error for ``path``: one line holding ``parts``; the file unchanged."""
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(DataError) as caught:
        read_mal_list(path)
    msg = str(caught.value)
    assert "\n" not in msg, msg
    for part in parts:
        assert part in msg, f"{part!r} not in {msg!r}"
    if before is not None:
        assert path.read_bytes() == before
    return msg


def with_entry(tmp_path: Path, anime_id: str = "1", score: str = "10",
               title: str = "Cowboy Bebop", extra: str = "") -> Path:
    text = (f"<anime><series_animedb_id>{anime_id}</series_animedb_id>"
            f"<series_title><![CDATA[{title}]]></series_title>{extra}"
            f"<my_score>{score}</my_score></anime>")
    return write(tmp_path / "list.xml", HEAD + ENTRY + b"\n" + text.encode() + TAIL)


# --------------------------------------------------------------------------- size limits


def test_a_file_beyond_the_byte_limit_is_refused(tmp_path):
    # A valid list padded past the limit with spaces between entries, which would parse. The
    # bytes are counted as read (not taken from the size at the open, as a file may grow).
    path = tmp_path / "huge.xml"
    with open(path, "wb") as fh:
        fh.write(HEAD + ENTRY)
        block = b" " * (1 << 20)
        for _ in range(MAX_FILE_BYTES // len(block)):
            fh.write(block)
        fh.write(TAIL)
    assert path.stat().st_size > MAX_FILE_BYTES
    refused(path, str(path), f"larger than {MAX_FILE_BYTES >> 20} MiB", "MAX_FILE_BYTES")
    with pytest.raises(DataError, match="MAX_FILE_BYTES"):
        read_person_ratings(path)
    path.unlink()


def bomb(extra_mib: int) -> bytes:
    """One gzip member: a list whose root holds ``MAX_XML_BYTES`` plus ``extra_mib`` MiB of
    spaces, then a valid entry (so that without the limit it would parse)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [compressor.compress(HEAD)]
    block = b" " * (1 << 20)
    for _ in range((MAX_XML_BYTES >> 20) + extra_mib):
        parts.append(compressor.compress(block))
    parts.append(compressor.compress(ENTRY + TAIL))
    parts.append(compressor.flush())
    return b"".join(parts)


def test_a_gzip_bomb_stops_at_the_limit_with_bounded_memory(tmp_path):
    path = write(tmp_path / "bomb.xml.gz", bomb(extra_mib=64))
    assert path.stat().st_size < MAX_XML_BYTES // 100   # compressed more than 100-fold
    tracemalloc.start()
    try:
        refused(path, str(path), f"more than {MAX_XML_BYTES >> 20} MiB of XML",
                "MAX_XML_BYTES")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Decompressed in 1 MiB chunks, never whole: far below the decompressed size.
    assert peak < 16 << 20, f"peak {peak >> 20} MiB"


def test_a_second_gzip_stream_is_refused(tmp_path):
    # Several gzip members make a valid .gz file, but an export is one: refusing the rest
    # also stops a file padded with millions of empty members (which inflate to nothing but
    # take long to walk through).
    body = FIXTURE.read_bytes()
    half = body.index(b"<anime>", len(body) // 2)
    two = write(tmp_path / "two.xml.gz", gzip.compress(body[:half]) + gzip.compress(body[half:]))
    refused(two, "data after the end of the gzip stream")
    padded = write(tmp_path / "padded.xml.gz",
                   gzip.compress(HEAD + ENTRY + TAIL) + gzip.compress(b"") * 100_000)
    refused(padded, "data after the end of the gzip stream")
    trailing = write(tmp_path / "trailing.xml.gz", gzip.compress(body) + b"\0")
    refused(trailing, "data after the end of the gzip stream")


def test_nesting_beyond_the_depth_limit_names_the_entry(tmp_path):
    # Inside an entry: the root is at depth 1, <anime> at 2, so MAX_DEPTH - 1 nested elements
    # go one deeper than the limit.
    depth = MAX_DEPTH - 1
    nested = "<x>" * depth + "</x>" * depth
    refused(with_entry(tmp_path, extra=nested, title="Deep"), "entry 2 (line 4, anime id '1', "
            f"'Deep'): elements nested deeper than {MAX_DEPTH} (MAX_DEPTH)")
    # Exactly at the limit is fine.
    ok = with_entry(tmp_path, extra="<x>" * (depth - 1) + "</x>" * (depth - 1))
    assert read_mal_list(ok).listed.tolist() == [1]


def test_very_deep_nesting_stops_at_the_depth_limit(tmp_path):
    # 10**5 open elements: stopped at the limit, long before any stack could run out.
    path = write(tmp_path / "deep.xml", HEAD + b"<a>" * 100_000)
    refused(path, f"line 3: elements nested deeper than {MAX_DEPTH}")


def test_more_entries_than_the_limit_are_refused(tmp_path):
    entry = b"<anime><series_animedb_id>%d</series_animedb_id></anime>\n"
    body = b"".join(entry % (k + 1) for k in range(MAX_ENTRIES))
    at_limit = write(tmp_path / "at_limit.xml", HEAD + body + TAIL)
    assert read_mal_list(at_limit).listed.shape == (MAX_ENTRIES,)
    beyond = write(tmp_path / "beyond.xml", HEAD + body + entry % (MAX_ENTRIES + 1) + TAIL)
    refused(beyond, f"more than {MAX_ENTRIES} entries", "MAX_ENTRIES")


@pytest.mark.parametrize("where", ["series_title", "my_comments", "myinfo"])
def test_a_field_beyond_the_length_limit_names_it(tmp_path, where):
    long = "x" * (MAX_FIELD_CHARS + 1)
    if where == "series_title":
        path = with_entry(tmp_path, title=long)
        message = ["entry 2 (line 4, anime id '1'):", "field 'series_title' is longer than"]
    elif where == "my_comments":
        path = with_entry(tmp_path, extra=f"<my_comments><![CDATA[{long}]]></my_comments>")
        message = ["entry 2 (line 4, anime id '1', 'Cowboy Bebop'):", "field 'my_comments'"]
    else:
        path = write(tmp_path / "list.xml", HEAD + b"<myinfo><user_name>" + long.encode()
                     + b"</user_name></myinfo>" + ENTRY + TAIL)
        message = ["list.xml, line 3: field 'user_name'"]
    refused(path, *message, f"longer than {MAX_FIELD_CHARS} characters", "MAX_FIELD_CHARS")
    # One character less is read.
    ok = with_entry(tmp_path, title="y" * MAX_FIELD_CHARS)
    assert read_mal_list(ok).listed.tolist() == [1]


# --------------------------------------------------------------------------- entities


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE myanimelist [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<myanimelist><anime><series_animedb_id>1</series_animedb_id>
<series_title>&lol9;</series_title><my_score>10</my_score></anime></myanimelist>
"""


@pytest.mark.parametrize("gzipped", [False, True])
def test_billion_laughs_is_refused_at_its_declaration(tmp_path, gzipped):
    data = gzip.compress(BILLION_LAUGHS) if gzipped else BILLION_LAUGHS
    path = write(tmp_path / "laughs.xml", data)
    # Refused by the DTD handler (or, failing that, the entity handler), not by expat's own
    # amplification limit: nothing is expanded at all.
    msg = refused(path, str(path), "line 2: declares ", "refused, as a list export has none")
    assert "DTD" in msg or "entity" in msg


def test_a_doctype_alone_is_refused(tmp_path):
    path = write(tmp_path / "doctype.xml", b'<?xml version="1.0"?>\n<!DOCTYPE myanimelist>\n'
                 + b"<myanimelist>" + ENTRY + TAIL)
    refused(path, "line 2: declares a DTD (<!DOCTYPE myanimelist>)")


@pytest.mark.parametrize("declaration", [
    '<!DOCTYPE myanimelist [<!ENTITY secret SYSTEM "file://{secret}">]>',
    '<!DOCTYPE myanimelist SYSTEM "file://{secret}">',
    '<!DOCTYPE myanimelist [<!ENTITY % p SYSTEM "file://{secret}"> %p;]>',
    '<!DOCTYPE myanimelist [<!ENTITY secret SYSTEM "http://127.0.0.1:9/list.dtd">]>',
])
def test_an_external_entity_is_never_read(tmp_path, declaration):
    secret = write(tmp_path / "secret.txt", b"TOP-SECRET-CONTENT")
    # A FIFO as the target as well: opening it would block, so a reader that followed the
    # entity would hang here instead of raising.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target in (secret, fifo):
        text = (f'<?xml version="1.0"?>\n{declaration.format(secret=target)}\n<myanimelist>'
                "<anime><series_animedb_id>1</series_animedb_id><series_title>&secret;"
                "</series_title><my_score>10</my_score></anime></myanimelist>\n")
        path = write(tmp_path / "xxe.xml", text.encode())
        out: dict = {}

        def run():
            try:
                out["value"] = read_mal_list(path)
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                out["error"] = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(20)
        assert not thread.is_alive(), "blocked: the reader opened the external entity"
        assert isinstance(out.get("error"), DataError), out
        msg = str(out["error"])
        assert "line 2: declares a DTD" in msg and "TOP-SECRET" not in msg, msg


def test_an_undeclared_entity_is_malformed_xml(tmp_path):
    path = write(tmp_path / "undeclared.xml", HEAD + b"<anime><series_animedb_id>&one;"
                 b"</series_animedb_id></anime>" + TAIL)
    refused(path, "malformed XML at line 3, column 27: undefined entity")   # 1-based column


# --------------------------------------------------------------------------- structure


@pytest.mark.parametrize("body,message", [
    (b"<html><body>not a list</body></html>", "the root element is <html>, expected "
                                               "<myanimelist>"),
    (b"<animelist>" + ENTRY + b"</animelist>", "the root element is <animelist>"),
    (b"<myanimelist><myinfo><user_export_type>2</user_export_type></myinfo><manga>"
     b"<manga_mangadb_id>2</manga_mangadb_id></manga></myanimelist>",
     "a manga list export; expected the anime list"),
    (b"<myanimelist><myinfo><user_name>x</user_name></myinfo></myanimelist>",
     "the list has no <anime> entry"),
    (b"<myanimelist/>", "the list has no <anime> entry"),
    (b"", "malformed XML at line 1, column 1: no element found"),
    (b"<?xml version='1.0'?>", "malformed XML at line 1, column 22: no element found"),
    (HEAD + ENTRY + TAIL + b"<myanimelist/>", "malformed XML at line 5, column 1: junk after "
                                             "document element"),
    (HEAD + b"<anime><series_title>Orphan</series_title><my_score>9</my_score></anime>" + TAIL,
     "entry 1 (line 3, 'Orphan'): no <series_animedb_id>"),
    (HEAD + ENTRY.replace(b"<my_score>10</my_score>", b"<my_score>9</my_score>" * 2) + TAIL,
     "entry 1 (line 3, anime id '1', 'Cowboy Bebop'): field 'my_score' given twice"),
])
def test_wrong_structure_is_named(tmp_path, body, message):
    refused(write(tmp_path / "list.xml", body), message)


@pytest.mark.parametrize("value", ["-5", "1.5", "1e3", str(2**70), "", "abc", "0", "+5", "0x1F",
                                   "1 2", "１２"])
def test_a_bad_anime_id_names_the_entry_and_field(tmp_path, value):
    path = with_entry(tmp_path, anime_id=value, title="Trigun")
    shown = "(empty)" if not value else repr(value if len(value) <= 20 else value[:20] + "...")
    where = f"entry 2 (line 4, anime id {shown}, 'Trigun')" if value else \
        "entry 2 (line 4, 'Trigun')"
    refused(path, f"{path}, {where}, field 'series_animedb_id': ",
            "is not a positive integer id")


def test_the_largest_id_is_18_digits(tmp_path):
    largest = "9" * 18
    assert read_mal_list(with_entry(tmp_path, anime_id=largest)).listed[-1] == int(largest)
    refused(with_entry(tmp_path, anime_id="1" + "0" * 18), "is not a positive integer id")


@pytest.mark.parametrize("value", ["11", "-1", "7.5", "seven", "1e1", "010", "+7", "١"])
def test_a_bad_score_names_the_entry_and_field(tmp_path, value):
    path = with_entry(tmp_path, anime_id="6", score=value, title="Trigun")
    refused(path, f"{path}, entry 2 (line 4, anime id '6', 'Trigun'), field 'my_score': "
                  f"{value!r} is not an integer 0..10")


def test_truncated_xml_names_the_line(tmp_path):
    body = FIXTURE.read_bytes()
    cut = body[: body.index(b"<my_score>9</my_score>")]
    lines = cut.count(b"\n") + 1
    refused(write(tmp_path / "cut.xml", cut), f"malformed XML at line {lines}")
    refused(write(tmp_path / "cut.xml.gz", gzip.compress(cut)), f"malformed XML at line {lines}")


def test_a_truncated_or_corrupt_gzip_file_is_named(tmp_path):
    packed = gzip.compress(FIXTURE.read_bytes())
    refused(write(tmp_path / "cut.xml.gz", packed[: len(packed) // 2]), "not a valid gzip file")
    corrupt = bytearray(packed)
    corrupt[len(corrupt) // 2: len(corrupt) // 2 + 8] = b"\xff" * 8
    refused(write(tmp_path / "bad.xml.gz", bytes(corrupt)), "not a valid gzip file")
    refused(write(tmp_path / "magic.xml.gz", b"\x1f\x8b" + b"\x00" * 30), "not a valid gzip")


def test_bytes_that_are_not_utf8_name_the_line_and_column(tmp_path):
    body = FIXTURE.read_bytes().replace(b"Trigun]]", b"Tri\xffgun]]")
    line = body[: body.index(b"\xff")].count(b"\n") + 1
    column = body.index(b"\xff") - body.rindex(b"\n", 0, body.index(b"\xff"))
    refused(write(tmp_path / "latin.xml", body),
            f"malformed XML at line {line}, column {column}: not well-formed (invalid token)")


# --------------------------------------------------------------------------- the path


def test_a_folder_a_missing_path_and_a_device_are_named(tmp_path):
    refused(tmp_path, str(tmp_path), "is a directory, expected a file")
    refused(tmp_path / "nope.xml.gz", "nope.xml.gz: file not found")
    if os.path.exists("/dev/zero"):
        refused(Path("/dev/zero"), "/dev/zero: is a device or socket, not a regular file")
    with pytest.raises(DataError, match="is a directory"):
        read_person_ratings(tmp_path)


@pytest.mark.parametrize("reader", [read_mal_list, read_person_ratings])
def test_a_fifo_is_refused_without_blocking(tmp_path, reader):
    fifo = tmp_path / "list.xml"
    os.mkfifo(fifo)
    out: dict = {}

    def run():
        try:
            out["value"] = reader(fifo)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "blocked: the reader waited on the FIFO"
    assert isinstance(out.get("error"), DataError), out
    assert "FIFO" in str(out["error"]) and "regular file" in str(out["error"])
