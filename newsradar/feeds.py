"""Feed parsing, shared by the RSS connector and ``newsradar tag``: bytes + headers -> ``news.raw`` records.

No network and no file access: feedparser only ever sees a byte stream we fetched, never a
URL or a path. Guarantees of :func:`parse_feed`:

* Entity and internal-DTD declarations are refused **before** any XML parser runs, in
  whatever encoding the document is in, so nothing is ever expanded (billion laughs) or
  fetched (XXE). The check looks at every byte: no comment, CDATA or processing-instruction
  exemption, because deciding what is "inside a comment" is itself parsing and can be fooled
  (a ``<!--`` inside a processing instruction hid a real DOCTYPE). A feed that merely quotes
  ``<!ENTITY`` in its text is refused too: a counted ``parse_error`` that says why. An
  external DOCTYPE without an internal subset (the Netscape RSS 0.91 one) is harmless and
  allowed.
* An empty body, an HTML page or anything else that is not a feed is a :class:`FeedError`,
  never a healthy feed with no entries. Errors inside feedparser become :class:`FeedError`.
* An entry that cannot be turned into a valid record is skipped and counted, never fatal.
  A character reference to a UTF-16 surrogate (``&#55357;&#56832;``) spoils nothing but its
  own text: a pair is read as the character it encodes, a lone half becomes U+FFFD and its
  record is flagged ``surrogates_replaced`` (:mod:`newsradar.escapes`).
* Each record follows docs/design.md, "Records on Kafka": a stable ``article_id`` (:func:`newsradar.identity.rss_article_id`),
  ``text`` with no markup, ``published_at`` in UTC (month names in other languages are read,
  :mod:`newsradar.feeddates`; a missing, unreadable, absurd or more-than-a-day-ahead date
  falls back to the fetch time and is flagged), ``lang_hint``,
  ``author`` and an http(s) ``url``. Sizes are not capped here: the delivery loop cuts every
  record, from any source, to the record cap (:func:`newsradar.records.fit_to_size`).
"""

from __future__ import annotations

import calendar
import codecs
import io
import re
import unicodedata
import xml.sax
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin

import feedparser
from feedparser.encodings import convert_to_utf8

from newsradar.escapes import fix_surrogate_charrefs
from newsradar.feeddates import parse_localized_date
from newsradar.feeditems import UPDATE_FLAG, Candidate, FeedMemory, identify
from newsradar.records import RawArticle, RecordError, format_time
from newsradar.text import html_to_text, normalize_text

# Dates before this are placeholders ("0001-01-01", epoch zero), not publication times.
EARLIEST_PLAUSIBLE = datetime(1990, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(days=1)

_SY_PERIODS = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400, "monthly": 30 * 86400, "yearly": 365 * 86400}


class FeedError(ValueError):
    """The body is not a feed we can read (the poll's outcome is ``parse_error``)."""


@dataclass
class ParsedFeed:
    """What one body yielded. ``records`` are every entry of the feed, old and new, in feed order."""

    records: list[RawArticle] = field(default_factory=list)
    skipped: int = 0
    skip_reasons: list[str] = field(default_factory=list)
    # The feed's own "come back in" hint in seconds (ttl, sy:updatePeriod), if it gave one.
    hint_seconds: float | None = None
    # Some record's id is guid + link: its guid names more than one item (newsradar.feeditems).
    guids_repeat: bool = False
    # What the source's cursor keeps for the next body (ids and content of these records).
    memory: FeedMemory = field(default_factory=FeedMemory)
    version: str = ""
    encoding: str = ""
    # feedparser accepted the document only with its forgiving parser (not well-formed XML).
    bozo: bool = False


# ---------------------------------------------------------------------------
# refusing declarations before parsing

# Anywhere in the document: an entity declaration, or a DOCTYPE whose internal subset opens
# ("[") before the next "<". Entity declarations are what expansion needs; the subset check is
# the second line. Stopping at "<" keeps the scan linear (no DOCTYPE's scan can run into the
# next one) and loses nothing real: before the root element only markup can follow a DOCTYPE.
_DECLARATIONS = re.compile(rb"<!\s*ENTITY|<!\s*DOCTYPE[^\[<]*\[", re.IGNORECASE)


def refuse_declarations(utf8: bytes) -> None:
    """Raise :class:`FeedError` when the document declares entities or an internal DTD subset.

    ``utf8`` is the document already converted to UTF-8. Every byte counts, comments, CDATA
    sections and processing instructions included: skipping "comments" first would mean
    parsing before the check, and a ``<!--`` inside a processing instruction would then hide
    a real DOCTYPE from it. The price is a false positive on a feed that quotes ``<!ENTITY``
    in an article, which becomes a ``parse_error`` naming the reason and the byte offset.
    """
    if b"<!" not in utf8:
        return
    match = _DECLARATIONS.search(utf8)
    if match:
        what = "entity declaration" if b"ENTITY" in match.group(0).upper() else "internal DTD subset"
        raise FeedError(
            f"refusing a feed with an {what} at byte {match.start()} (entities are never expanded; "
            "declarations are refused anywhere, even inside comments or CDATA)"
        )


# ---------------------------------------------------------------------------
# encodings

_XML_ENCODING = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=", re.IGNORECASE)
# A run of letters (any script); digits and underscores split words.
_WORD = re.compile(r"[^\W\d_]+")
# The two readings an undeclared 8-bit feed gets: feedparser's own fallback, and the one
# Russian and Ukrainian sites still serve without saying so.
_DEFAULT_8BIT, _CYRILLIC_8BIT = "windows-1252", "windows-1251"


def _script(ch: str) -> str:
    """The script of a letter, coarsely: what mojibake mixes up is Latin and Cyrillic."""
    if ch.isascii():
        return "latin"
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0].lower() if name else "unknown"


def plausible_share(text: str) -> float | None:
    """Of the words in ``text`` holding a non-ASCII letter, the share that look like real words.

    A real word is written in one script; and a Latin word is not mostly accented (a Latin
    reading of Cyrillic bytes makes "Ñîâåò" of "Совет", a Cyrillic reading of Latin-1 makes
    "simulaзхes" of "simulações"). One-letter words tell nothing ("é" and "й" are both words)
    and are not counted. ``None`` when no word has a non-ASCII letter."""
    scored = plausible = 0
    for word in _WORD.findall(text):
        if len(word) < 2 or word.isascii():
            continue
        scored += 1
        scripts = {_script(ch) for ch in word}
        if len(scripts) != 1:
            continue
        if scripts == {"latin"} and sum(1 for ch in word if not ch.isascii()) * 2 > len(word):
            continue
        plausible += 1
    return plausible / scored if scored else None


def _guess_undeclared(body: bytes, headers: dict[str, str]) -> dict[str, str]:
    """Headers to parse with: adds charset=windows-1251 for undeclared Cyrillic bodies.

    Russian and Ukrainian sites still serve windows-1251 without saying so; feedparser would
    then fall back to windows-1252 and produce mojibake. We only step in when nothing declares
    an encoding (no charset, no XML declaration, no BOM) and the body is not UTF-8: then the
    body is read both ways and windows-1251 is chosen when its words are the plausible ones
    (:func:`plausible_share`). Counting Cyrillic letters instead would always pick it: every
    accented Latin-1 letter is a Cyrillic letter in windows-1251.
    """
    content_type = headers.get("content-type", "")
    if "charset" in content_type.lower() or _XML_ENCODING.match(body[:200]):
        return headers
    if body[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) or body[:3] == codecs.BOM_UTF8:
        return headers
    try:
        body.decode("utf-8")
        return headers
    except UnicodeDecodeError:
        pass
    sample = body[:65536]
    cyrillic = plausible_share(sample.decode(_CYRILLIC_8BIT, errors="replace"))
    latin = plausible_share(sample.decode(_DEFAULT_8BIT, errors="replace"))
    if cyrillic is not None and cyrillic > (latin or 0.0):
        media = content_type.split(";", 1)[0].strip() or "application/xml"
        return {**headers, "content-type": f"{media}; charset={_CYRILLIC_8BIT}"}
    return headers


def to_utf8(body: bytes, headers: Mapping[str, str]) -> tuple[bytes, dict[str, str], str]:
    """The document as UTF-8 the way feedparser would read it, plus the headers to parse it with.

    Returns ``(utf8, headers, encoding)``; the headers say ``charset=utf-8`` so feedparser
    does not convert a second time.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    lowered = _guess_undeclared(body, lowered)
    info: dict = {}
    utf8 = convert_to_utf8(lowered, body, info)
    media = (lowered.get("content-type") or "application/xml").split(";", 1)[0].strip()
    if not media.endswith("xml"):
        # Served as text/html or text/plain: still parse it, but as UTF-8 XML (we converted it).
        media = "application/xml"
    return utf8, {**lowered, "content-type": f"{media}; charset=utf-8"}, info.get("encoding") or "unknown"


# ---------------------------------------------------------------------------
# the parse

_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*(<!doctype\s+html|<html)", re.IGNORECASE | re.DOTALL)
# What feedparser (or the XML machinery under it) raises on input it cannot cope with.
_FEEDPARSER_ERRORS = (
    xml.sax.SAXException, ValueError, TypeError, KeyError, IndexError, AttributeError, UnicodeError,
    AssertionError, RecursionError, LookupError, OverflowError,
)


def parse_feed(
    body: bytes,
    headers: Mapping[str, str],
    *,
    source_id: str,
    fetched_at: datetime,
    default_lang: str | None = None,
    memory: FeedMemory | None = None,
    base_url: str | None = None,
) -> ParsedFeed:
    """Parse one fetched body (see module docstring for guarantees). Raises :class:`FeedError`.

    ``memory`` is what the source's cursor kept of the last delivered body
    (:class:`newsradar.feeditems.FeedMemory`): ids are assigned and updates found with it by
    the rules of :mod:`newsradar.feeditems`; ``ParsedFeed.memory`` is the one to save.
    """
    if not body.strip():
        raise FeedError("empty body")
    utf8, parse_headers, encoding = to_utf8(body, headers)
    # "&#55357;&#56832;" (an emoji in UTF-16 halves) would make feedparser raise on the whole
    # feed; the pair becomes its character, a lone half U+FFFD in its record, flagged.
    utf8 = fix_surrogate_charrefs(utf8)
    if _is_html_page(utf8):
        raise FeedError("an HTML page, not a feed")
    refuse_declarations(utf8)
    # No Content-Location for feedparser: it would resolve relative *guids* against it too, and
    # ids must not change when a feed moves. Relative links are resolved below instead.
    parse_headers.pop("content-location", None)
    try:
        parsed = feedparser.parse(io.BytesIO(utf8), response_headers=parse_headers)
    except _FEEDPARSER_ERRORS as exc:
        raise FeedError(f"feedparser failed: {type(exc).__name__}: {exc}") from None
    entries = parsed.get("entries") or []
    version = parsed.get("version") or ""
    if not version and not entries:
        exc = parsed.get("bozo_exception")
        reason = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
        raise FeedError(f"not an RSS/Atom/RDF feed{reason}"[:300])
    feed_info = parsed.get("feed") or {}
    out = ParsedFeed(
        hint_seconds=feed_hint(feed_info),
        version=version,
        encoding=encoding,
        bozo=bool(parsed.get("bozo")),
    )
    feed_lang = _lang(feed_info.get("language")) or _lang(parse_headers.get("content-language")) or default_lang
    fields: list[dict] = []
    for index, entry in enumerate(entries):
        try:
            values = entry_fields(entry, fetched_at=fetched_at, lang=feed_lang, base_url=base_url)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, OSError) as exc:
            out.skipped += 1
            out.skip_reasons.append(f"entry {index}: {type(exc).__name__}: {exc}"[:200])
            continue
        if values is None:
            out.skipped += 1
            out.skip_reasons.append(f"entry {index}: no title, text or link")
            continue
        fields.append(values)
    memory = memory or FeedMemory()
    candidates = [Candidate(v["guid"], v["url"], v["title"], v["text"]) for v in fields]
    identities, out.memory = identify(source_id, candidates, memory)
    out.guids_repeat = any(i is not None and ":gl:" in i.article_id for i in identities)
    for values, identity in zip(fields, identities, strict=True):
        if identity is None:
            continue  # the same item twice in one body (same guid and link): one record
        if identity.updated:
            values = {**values, "edited_at": format_time(fetched_at),
                      "flags": (*(values["flags"] or ()), UPDATE_FLAG)}
        try:
            out.records.append(RawArticle(article_id=identity.article_id, source_id=source_id, source_kind="rss",
                                          **values))
        except RecordError as exc:
            out.skipped += 1
            out.skip_reasons.append(f"entry {identity.article_id}: {exc}"[:200])
    return out


def _is_html_page(utf8: bytes) -> bool:
    # to_utf8 always puts an XML declaration first; look at what follows it.
    start = utf8.find(b"?>") + 2 if utf8.startswith(b"<?xml") else 0
    return bool(_HTML_START.match(utf8[start:start + 4096]))


def feed_hint(feed_info: Mapping) -> float | None:
    """The feed's requested polling period in seconds: the longer of ttl and sy:updatePeriod."""
    hints = []
    ttl = str(feed_info.get("ttl") or "").strip()
    if ttl.isdigit() and int(ttl) > 0:
        hints.append(int(ttl) * 60.0)
    period = str(feed_info.get("sy_updateperiod") or "").strip().lower()
    if period in _SY_PERIODS:
        frequency = str(feed_info.get("sy_updatefrequency") or "1").strip()
        freq = int(frequency) if frequency.isdigit() and int(frequency) > 0 else 1
        hints.append(_SY_PERIODS[period] / freq)
    return max(hints) if hints else None


_LANG = re.compile(r"^([a-zA-Z]{2,3})([-_].*)?$")


def _lang(value) -> str | None:
    m = _LANG.match(str(value or "").strip())
    return m.group(1).lower() if m else None


def _detail_text(detail: Mapping | None, fallback: str) -> str:
    if detail and str(detail.get("type", "")).lower() == "text/plain":
        return normalize_text(detail.get("value") or "")
    return html_to_text(fallback or "")


def _http_url(value, base_url: str | None = None) -> str:
    text = str(value or "").strip()
    if base_url and text and not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", text):
        text = urljoin(base_url, text)
    return text if re.match(r"^https?://[^\s/]+", text, re.IGNORECASE) else ""


def _body(entry: Mapping) -> tuple[str, str | None]:
    """(text, html) of an entry: the richest content block, else the summary."""
    blocks = [c for c in (entry.get("content") or []) if c.get("value")]
    if blocks:
        block = max(blocks, key=lambda c: len(c.get("value") or ""))
    elif entry.get("summary"):
        block = entry.get("summary_detail") or {"type": "text/html", "value": entry.get("summary")}
    else:
        return "", None
    value = block.get("value") or ""
    if str(block.get("type", "")).lower() == "text/plain":
        return normalize_text(value), None
    return html_to_text(value), value


def _published(entry: Mapping, fetched_at: datetime) -> tuple[datetime, str | None]:
    for key in ("published", "updated", "created"):
        raw = entry.get(key)
        parsed = entry.get(f"{key}_parsed")
        flag = None
        if parsed:
            when = datetime.fromtimestamp(calendar.timegm(parsed), UTC)
        elif raw:
            # Month names in the site's language ("mer, 16 nov 2022"), which feedparser does not know.
            localized = parse_localized_date(str(raw))
            if localized is None:
                return fetched_at, "date_malformed"
            when, assumed = localized
            flag = "date_zone_assumed" if assumed else None
        else:
            continue
        if when < EARLIEST_PLAUSIBLE:
            return fetched_at, "date_absurd"
        if when > fetched_at + FUTURE_TOLERANCE:
            return fetched_at, "date_future"
        return when, flag
    return fetched_at, "date_missing"


def entry_fields(
    entry: Mapping, *, fetched_at: datetime, lang: str | None, base_url: str | None = None,
) -> dict | None:
    """One feed entry as ``news.raw`` fields (all but the ids, which depend on the whole body
    and the feed's memory, :mod:`newsradar.feeditems`), or None when it carries nothing at all.

    A relative link is resolved against ``base_url`` (the feed's URL), unless the link is
    only the guid standing in for one (then it is kept only if it is already absolute)."""
    title = _detail_text(entry.get("title_detail"), entry.get("title") or "")
    text, html = _body(entry)
    raw_link = entry.get("link")
    # feedparser copies a permalink guid into "link"; such a guid is not a path to resolve.
    link = _http_url(raw_link, None if raw_link and raw_link == entry.get("id") else base_url)
    guid = str(entry.get("id") or "").strip() or None
    if not (title or text or link):
        return None
    published, flag = _published(entry, fetched_at)
    author = html_to_text(entry.get("author") or "") or None
    entry_lang = None
    for block in entry.get("content") or []:
        entry_lang = entry_lang or _lang(block.get("language"))
    return dict(
        url=link,
        title=title,
        text=text,
        published_at=format_time(published),
        fetched_at=format_time(fetched_at),
        html=html or None,
        author=author,
        lang_hint=entry_lang or lang,
        guid=guid,
        flags=(flag,) if flag else None,
    )


__all__ = ["FeedError", "ParsedFeed", "entry_fields", "feed_hint", "parse_feed", "refuse_declarations", "to_utf8"]
