"""Conformance on real captures: ``../shared/realworld/`` (feeds, t.me pages, exports), read in place.

The files are other projects' test data, copied byte for byte (``SOURCES.md`` there says from
where); they are never copied into this repository. Each check compares what our connectors
make of a file with what the file itself says, read by feedparser, the standard library or
plain JSON, not by our own code.
"""

from __future__ import annotations

import asyncio
import calendar
import html
import io
import json
import os
import re
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import feedparser
import pytest

from connectors.telegram.export import ExportPoller, flatten_text
from connectors.telegram.webparse import parse_page
from newsradar.feeds import parse_feed
from newsradar.records import format_time, parse_time
from tests.conftest import REPO

REALWORLD = Path(os.environ.get("NEWSRADAR_REALWORLD") or REPO.parent / "shared" / "realworld")
if not (REALWORLD / "SOURCES.md").is_file():
    pytest.skip(f"the real-world corpus is not at {REALWORLD} (set NEWSRADAR_REALWORLD to its folder); "
                "these conformance tests need it", allow_module_level=True)

FEEDS = sorted((REALWORLD / "feeds").iterdir())
PAGES = sorted((REALWORLD / "telegram-web").glob("*.html"))
EXPORTS = sorted((REALWORLD / "telegram-export").glob("*.json"))
FETCHED = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
_DECLARED = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=", re.IGNORECASE)


def names(paths):
    return [p.name for p in paths]


def test_the_corpus_is_all_there():
    # SOURCES.md lists 40 feeds, 4 pages and 2 exports; a partial copy would pass vacuously.
    assert (len(FEEDS), len(PAGES), len(EXPORTS)) == (40, 4, 2)


# ---------------------------------------------------------------------------
# feeds


def _reference(markup: str) -> str:
    """feedparser's title as a reader sees it: tags out, entities decoded, spaces collapsed."""
    text = html.unescape(re.sub(r"<[^>]*>", "", markup or ""))
    return " ".join(unicodedata.normalize("NFC", text).split())


def _kept(entries) -> list:
    """Entries with a link, guid or title, less what docs/connectors.md says is dropped: an
    entry with nothing but a guid, and the same guid and link twice in one body."""
    kept, seen = [], set()
    for e in entries:
        link = e.get("link") or ""
        has_text = bool(e.get("title") or e.get("summary") or e.get("content"))
        if not (link or e.get("id") or e.get("title")):
            continue
        if not (has_text or link.startswith(("http://", "https://"))):
            continue
        key = (e.get("id"), link) if e.get("id") else (None, link or e.get("title"))
        if key in seen:
            continue
        seen.add(key)
        kept.append(e)
    return kept


# What a wrong 8-bit reading mixes up; CJK next to Latin ("A股") is how Chinese is written.
_ALPHABETS = {"LATIN", "CYRILLIC", "GREEK"}


def _scripts(word: str) -> set[str]:
    return {unicodedata.name(ch, "?").split(" ", 1)[0] for ch in word if ch.isalpha()} & _ALPHABETS


# A word mixing alphabets ("simulaзхes"), or UTF-8 read as Latin-1 ("Ã©").
_MOJIBAKE_LATIN = re.compile("[\u00c2\u00c3][\u0080-\u00bf]")


def _garbled(text: str) -> set[str]:
    words = re.findall(r"[^\W\d_]+", text)
    return {w for w in words if len(_scripts(w)) > 1} | set(_MOJIBAKE_LATIN.findall(text))


@pytest.fixture(scope="module", params=FEEDS, ids=names(FEEDS))
def feed(request):
    body = request.param.read_bytes()
    ours = parse_feed(body, {}, source_id="rw", fetched_at=FETCHED)
    theirs = feedparser.parse(io.BytesIO(body))
    return SimpleNamespace(path=request.param, body=body, ours=ours, theirs=theirs)


def test_feed_records_are_the_entries_feedparser_finds(feed):
    assert len(feed.ours.records) == len(_kept(feed.theirs.entries))


def test_feed_titles_are_feedparsers_where_the_encoding_is_declared(feed):
    if not _DECLARED.match(feed.body[:200]):
        pytest.skip("no encoding declared: the title check is the garbling check")
    titles = [_reference(e.get("title")) for e in _kept(feed.theirs.entries)]
    assert [r.title for r in feed.ours.records] == titles


def test_feed_text_has_no_garbled_words(feed):
    # Only words the feed itself writes that way ("поcле" with a Latin "c", as published), in
    # feedparser's reading where the feed declares its encoding.
    as_published = set()
    if _DECLARED.match(feed.body[:200]):
        for entry in feed.theirs.entries:
            for value in (entry.get("title"), entry.get("summary"), *(c.get("value") for c in entry.get("content") or ())):
                as_published |= _garbled(html.unescape(value or ""))
    for record in feed.ours.records:
        assert _garbled(record.title) - as_published == set(), record.title
        assert sorted(_garbled(record.text) - as_published)[:5] == [], record.title


# feedparser warns when "updated_parsed" is asked of an entry that has none.
@pytest.mark.filterwarnings("ignore:To avoid breaking existing software:DeprecationWarning")
def test_feed_dates_are_utc_and_read_whenever_the_feed_gives_one(feed):
    ours = {(r.guid or r.url): r for r in feed.ours.records}
    checked = 0
    for entry in feed.theirs.entries:
        record = ours.get(str(entry.get("id") or "").strip() or entry.get("link"))
        if record is None:
            continue
        checked += 1
        assert parse_time(record.published_at).utcoffset().total_seconds() == 0
        assert record.published_at.endswith("Z")
        parsed = entry.get("published_parsed") or entry.get("updated_parsed")
        if parsed:
            when = datetime.fromtimestamp(calendar.timegm(parsed), UTC)
            if "date_absurd" not in (record.flags or ()):
                assert record.published_at == format_time(when)
        # A date the feed gives is read, in English or not ("mer, 16 nov 2022", "Seg, 24 Set 2018").
        assert "date_malformed" not in (record.flags or ()), (entry.get("published"), entry.get("updated"))
    assert checked, "no record matched to its entry"


@pytest.mark.parametrize("name, title", [
    ("rssparser-uol-noticias.rss", "Ibope: Bolsonaro perde de Haddad, Ciro e Alckmin em simulações de 2º turno"),
    ("miniflux-cerclepsy-undeclared-iso-8859-1.xml", None),
])
def test_undeclared_latin1_feeds_read_as_latin(name, title):
    body = (REALWORLD / "feeds" / name).read_bytes()
    parsed = parse_feed(body, {}, source_id="rw", fetched_at=FETCHED)
    assert parsed.encoding != "windows-1251"
    if title:
        assert parsed.records[0].title == title
    # Every accented letter survives: the same text read as Latin-1 by hand.
    latin = html.unescape(body.decode("latin-1"))
    for record in parsed.records:
        for word in re.findall(r"[^\W\d_]*[^\x00-\x7f][^\W\d_]*", record.title):
            assert word in latin, word


def test_localized_dates_are_read():
    uol = parse_feed((REALWORLD / "feeds" / "rssparser-uol-noticias.rss").read_bytes(), {}, source_id="rw",
                     fetched_at=FETCHED)
    assert uol.records[0].published_at == "2018-09-24T22:42:40Z"  # Seg, 24 Set 2018 19:42:40 -0300
    messaggero = parse_feed((REALWORLD / "feeds" / "feedrs-ilmessaggero.xml").read_bytes(), {}, source_id="rw",
                            fetched_at=FETCHED)
    assert messaggero.records[0].published_at == "2022-11-15T23:38:15Z"  # mer, 16 nov 2022 00:38:15 +0100


# ---------------------------------------------------------------------------
# t.me pages


@pytest.fixture(scope="module", params=PAGES, ids=names(PAGES))
def page(request):
    return parse_page(request.param.read_bytes())


def test_page_posts_have_their_text_exactly_once(page):
    assert page.messages, "no posts read"
    for msg in page.messages:
        if not msg.text:
            continue
        lines = [line for line in msg.text.split("\n") if len(line) > 20]
        for line in lines:
            assert msg.text.count(line) == 1, f"{msg.message_id}: {line!r} appears {msg.text.count(line)} times"
        if msg.html:
            first = next((line for line in lines), None)
            if first and first in msg.html:
                assert msg.html.count(first) == 1, f"{msg.message_id}: html repeats {first!r}"


def test_page_dates_are_utc(page):
    for msg in page.messages:
        assert msg.published_at is not None and msg.published_at.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("name, message_id", [
    ("topwar_official.html", 70992), ("topwar_official.html", 71000), ("lifemodel_test_channel_anonymized.html", 1010),
])
def test_album_captions_once(name, message_id):
    [msg] = [m for m in parse_page((REALWORLD / "telegram-web" / name).read_bytes()).messages
             if m.message_id == message_id]
    head = msg.text[:40]
    assert head and msg.text.count(head) == 1 and msg.html.count(head.split("\n")[0]) == 1


def test_a_reply_on_a_real_page_names_its_post():
    page = parse_page((REALWORLD / "telegram-web" / "infoscape_test.html").read_bytes())
    assert {m.message_id: m.reply_to for m in page.messages}[7] == 2


# ---------------------------------------------------------------------------
# exports


@pytest.mark.parametrize("path", EXPORTS, ids=names(EXPORTS))
def test_export_messages_are_mapped(path):
    data = json.loads(path.read_text("utf-8"))
    messages = data["messages"]
    with_text = {m["id"] for m in messages if m.get("type") == "message" and flatten_text(m.get("text")).strip()}
    source = SimpleNamespace(id="rw-export", path=str(path), channel="rw", timezone="UTC", lang=None)
    poller = ExportPoller(source, batch=3)
    records, skipped, cursor = [], 0, None
    for _ in range(100):
        result = asyncio.run(poller.poll(cursor, FETCHED))
        assert result.error is None, result.error
        records += result.records
        skipped += result.skipped
        cursor = result.cursor or cursor
        if cursor["done"]:
            break
    assert {r.message_id for r in records} == with_text
    assert len(records) + skipped == len(messages)
    assert cursor["last_id"] == messages[-1]["id"]
    for record in records:
        assert record.article_id == f"tg:rw:{record.message_id}" and record.published_at.endswith("Z")
        if "date_unixtime" not in next(m for m in messages if m["id"] == record.message_id):
            assert "date_local_assumed" in record.flags
