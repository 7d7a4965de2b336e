"""Surrogate escapes rewritten before parsing: XML character references and JSON on a stream."""

from __future__ import annotations

import io
import json
import re

import ijson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsradar.escapes import SURROGATE_MARK, SurrogateSafeReader, fix_surrogate_charrefs, fix_surrogate_escapes
from newsradar.records import RawArticle


@pytest.mark.parametrize(
    "xml, expected",
    [
        (b"a &#55357;&#56832; b", b"a &#128512; b"),  # a pair is its character
        (b"&#xD83D;&#xde00;", b"&#128512;"),
        (b"a &#55357; b", b"a &#1114109; b"),  # a lone high half
        (b"a &#56832; b", b"a &#1114109; b"),  # a lone low half
        (b"&#55357;&#55357;&#56832;", b"&#1114109;&#128512;"),  # high, then a pair
        (b"&#55357; &#56832;", b"&#1114109; &#1114109;"),  # not adjacent: two lone halves
        (b"&#233; &#x2019; &amp;#55357;", b"&#233; &#x2019; &amp;#55357;"),  # nothing to do
    ],
)
def test_charrefs(xml, expected):
    assert fix_surrogate_charrefs(xml) == expected


# Pieces of JSON string bodies: escapes that look alike, with and without an escaped backslash first.
PIECES = ["a", "é", " ", "\\\\", "\\n", '\\"', "\\ud83d", "\\ude00", "\\uD83D", "\\uDE00", "\\u0041", "\\\\ud83d"]


def _expected(doc: bytes) -> list[str]:
    """What the rewrite must give: Python's reading, with each lone surrogate as the mark."""
    return [re.sub("[\ud800-\udfff]", SURROGATE_MARK, m) for m in json.loads(doc)["messages"]]


@settings(max_examples=400, derandomize=True, deadline=None)
@given(st.lists(st.lists(st.sampled_from(PIECES), max_size=30).map("".join), min_size=1, max_size=5),
       st.integers(1, 40))
def test_stream_reads_like_python_json_at_any_chunk_size(bodies, chunk):
    doc = ('{"messages":[' + ",".join(f'"{b}"' for b in bodies) + "]}").encode()
    reader = SurrogateSafeReader(io.BytesIO(doc), chunk=chunk)
    # ijson's C backend, the one the export reader uses, reads the rewritten stream.
    assert list(ijson.items(reader, "messages.item")) == _expected(doc)
    assert fix_surrogate_escapes(doc) == SurrogateSafeReader(io.BytesIO(doc), chunk=chunk).read()


def test_yajl_without_the_rewrite_loses_or_stops():
    # Why the rewrite exists: the C backend turns a lone high half into "?" and stops at a low one.
    assert list(ijson.items(io.BytesIO(b'["\\ud83d"]'), "item")) == ["?"]
    with pytest.raises(UnicodeDecodeError):
        list(ijson.items(io.BytesIO(b'["\\ude00"]'), "item"))


def test_read_honours_size():
    reader = SurrogateSafeReader(io.BytesIO(b'["' + b"x" * 100 + b'\\ud83d"]'), chunk=7)
    assert reader.read(0) == b""
    parts = iter(lambda: reader.read(5), b"")
    assert all(len(p) <= 5 for p in parts)


def test_a_record_built_from_marked_text_is_repaired_and_flagged():
    record = RawArticle(
        article_id="rss:s:g:1", source_id="s", source_kind="rss", url="https://a.example/1",
        title=f"bad {SURROGATE_MARK} half", text="fine", published_at="2026-01-01T00:00:00Z",
        fetched_at="2026-01-01T00:00:00Z",
    )
    assert record.title == "bad \ufffd half" and record.flags == ("surrogates_replaced",)
    assert SURROGATE_MARK not in record.encode().decode("utf-8")
