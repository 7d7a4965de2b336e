"""One Telegram post -> one :class:`RawArticle`, shared by every mode (web, bot, export, mtproto).

Guarantees:

* The same message gets the same ``article_id`` (``tg:<channel>:<message_id>``) in every
  mode, so a channel backfilled from an export and then followed through the Bot API or the
  web preview is deduplicated by id downstream. ``<channel>`` is the public username in
  lower case, or ``c<id>`` (the bare channel id, as in ``t.me/c/<id>/<msg>`` links) for a
  channel without one.
* A reply carries ``reply_to``: the ``article_id`` of the post it answers in the same
  channel, in every mode that sees it (web, bot, webhook, export, mtproto).
* ``published_at``/``edited_at`` are UTC; ``url`` is the public post link on t.me, never the
  mirror or API host the post was read from.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from newsradar.identity import telegram_article_id
from newsradar.records import RawArticle, format_time
from newsradar.text import normalize_text

SOURCE_KIND = "telegram"
PUBLIC_BASE = "https://t.me"

# Bot API and MTProto give channel ids with this offset ("-100" prefix); exports and
# t.me/c/ links use the bare id.
_CHANNEL_ID_OFFSET = 1_000_000_000_000
TITLE_CHARS = 140


def bare_channel_id(chat_id: int) -> int:
    """-1001234567890 (Bot API) -> 1234567890; a bare id is returned as is."""
    if chat_id <= -_CHANNEL_ID_OFFSET:
        return -chat_id - _CHANNEL_ID_OFFSET
    return abs(chat_id)


def channel_key(username: str | None, channel_id: int | None = None) -> str:
    """The ``<channel>`` part of article ids: the username, else ``c<bare id>``."""
    if username:
        return username.lstrip("@").lower()
    if channel_id is None:
        raise ValueError("a channel needs a username or an id")
    return f"c{bare_channel_id(channel_id)}"


def post_url(channel: str, message_id: int) -> str:
    if channel.startswith("c") and channel[1:].isdigit():
        return f"{PUBLIC_BASE}/c/{channel[1:]}/{message_id}"
    return f"{PUBLIC_BASE}/{channel}/{message_id}"


def make_title(text: str) -> str:
    """Telegram posts have no title: the first non-empty line, cut at a word boundary."""
    for line in text.splitlines():
        line = line.strip()
        if line:
            break
    else:
        return ""
    if len(line) <= TITLE_CHARS:
        return line
    cut = line[:TITLE_CHARS].rsplit(" ", 1)[0] or line[:TITLE_CHARS]
    return cut.rstrip(" ,;:-") + "…"


def join_parts(parts: Iterable[str | None]) -> str:
    """Text parts of one post (body, poll question and options ...) as one normalized text."""
    return normalize_text("\n".join(p for p in parts if p and p.strip()))


def from_unix(value: int | float | str) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


def build_record(
    *,
    source_id: str,
    channel: str,
    message_id: int,
    text: str,
    published_at: datetime,
    fetched_at: datetime,
    title: str | None = None,
    author: str | None = None,
    edited_at: datetime | None = None,
    forwarded_from: str | None = None,
    views: int | None = None,
    html: str | None = None,
    lang_hint: str | None = None,
    flags: Iterable[str] = (),
    reply_to: int | None = None,
) -> RawArticle:
    """Build and validate the record (raises ``RecordError`` on a value the schema refuses).

    ``reply_to`` is the id of the message this post answers in the same channel; the record
    carries it as that post's ``article_id``, so the two can be joined by id."""
    flags = tuple(flags)
    return RawArticle(
        article_id=telegram_article_id(channel, message_id),
        source_id=source_id,
        source_kind=SOURCE_KIND,
        url=post_url(channel, message_id),
        title=title if title is not None else make_title(text),
        text=text,
        published_at=format_time(published_at),
        fetched_at=format_time(fetched_at),
        html=html or None,
        author=author or None,
        lang_hint=lang_hint,
        channel=channel,
        message_id=int(message_id),
        edited_at=format_time(edited_at) if edited_at is not None else None,
        forwarded_from=forwarded_from or None,
        views=views,
        reply_to=telegram_article_id(channel, reply_to) if reply_to is not None else None,
        flags=flags or None,
    )
