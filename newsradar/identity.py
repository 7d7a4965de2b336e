"""Identity, computed once at the edge: article ids, alert ids and canonical URLs.

Guarantees: every function here is pure and deterministic across processes, machines and
versions of Python (SHA-256 over UTF-8 with a separator byte, never ``hash()``), so the same
article or event always gets the same id and every downstream step and sink can drop repeats
by id alone. docs/design.md lists the id formats.
"""

from __future__ import annotations

import hashlib
import unicodedata
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from newsradar.vocab import ALERT_KINDS


def _digest(*parts: str, size: int = 16) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\x1f")  # unit separator: ("ab","c") and ("a","bc") differ
    return h.hexdigest()[:size]


# Query parameters that only track the reader; dropping them makes one article one URL.
TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid", "mc_cid",
        "mc_eid", "_hsenc", "_hsmi", "mkt_tok", "ref", "ref_src", "ref_url", "cmpid", "ito",
        "utm_referrer", "at_medium", "at_campaign", "rss", "from", "spm", "s_cid", "ncid",
    }
)


def canonical_url(url: str) -> str:
    """A stable form of an article URL: lower-case scheme and host, no fragment, no
    default port, no tracking parameters (``utm_*`` and :data:`TRACKING_PARAMS`), the
    remaining query parameters sorted."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    port = parts.port
    netloc = host
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        netloc = f"{host}:{port}"
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith("utm_") and k.lower() not in TRACKING_PARAMS
    ]
    query.sort()
    path = parts.path or "/"
    return urlunsplit((scheme, netloc, path, urlencode(query, doseq=True), ""))


def _norm_text(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split()).casefold()


def rss_article_id(
    source_id: str,
    *,
    guid: str | None = None,
    link: str | None = None,
    title: str = "",
    text: str = "",
    guid_is_repeated: bool = False,
) -> str:
    """The stable id of a feed entry, scoped by source.

    guid when the feed's guids are trustworthy; guid + canonical link when the feed
    repeats one guid across entries; else the canonical URL; else a hash of title and text.
    """
    guid = (guid or "").strip()
    link = (link or "").strip()
    if guid and not guid_is_repeated:
        return f"rss:{source_id}:g:{_digest(guid)}"
    if guid and link:
        return f"rss:{source_id}:gl:{_digest(guid, canonical_url(link))}"
    if link:
        return f"rss:{source_id}:u:{_digest(canonical_url(link))}"
    return f"rss:{source_id}:h:{_digest(_norm_text(title), _norm_text(text))}"


def telegram_article_id(channel: str, message_id: int) -> str:
    """``tg:<channel>:<message_id>``; channel usernames are case-insensitive on Telegram."""
    return f"tg:{channel.lstrip('@').lower()}:{int(message_id)}"


def alert_id(kind: str, subject: str, trigger: str) -> str:
    """Deterministic alert id: the same (kind, org or topic, trigger) always gives the same id,
    so any sink can drop repeats. ``trigger`` identifies the event, e.g. the story id for a
    new mention or the hour bucket for a surge."""
    if kind not in ALERT_KINDS:
        raise ValueError(f"unknown alert kind {kind!r}")
    return f"{kind}:{subject}:{_digest(kind, subject, trigger, size=20)}"


def notification_id(story_id: str, update: int) -> str:
    """Deterministic notification id: update ``update`` (1 for the first) of the notification
    of story ``story_id``. The same story and update always give the same id, so a
    notification sent again (after a restart) is dropped by a receiver that keeps ids."""
    if update < 1:
        raise ValueError(f"update numbers start at 1, not {update}")
    return f"story:{_digest('notification', story_id, size=20)}:{update}"


def candidate_id(day: str, lang: str, key: str) -> str:
    """``<day>:<lang>:<digest(lang, key)>``: one unwatched name (its match keys) on one UTC
    day; the same name on the same day always gets the same id (a re-emitted day replaces
    its records by key)."""
    return f"{day}:{lang}:{_digest('candidate', lang, key)}"


__all__ = ["TRACKING_PARAMS", "alert_id", "candidate_id", "canonical_url", "notification_id", "rss_article_id",
           "telegram_article_id"]
