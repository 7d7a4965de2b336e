"""Parse a public channel preview page (``https://t.me/s/<channel>``) into messages.

Pure: bytes or text in, a :class:`ChannelPage` out, no I/O. The markup followed is the one
t.me serves today: every post is ``div.tgme_widget_message[data-post="<channel>/<id>"]``
inside ``section.tgme_channel_history``; older pages are linked by
``a.tme_messages_more[data-before=<id>]`` (exclusive).

Guarantees:

* Never raises on page content. A block that cannot be read (no ``data-post``, a broken id)
  is counted in ``unparsed`` with a one-line reason in ``problems``; service messages
  ("channel created", "pinned ...") are counted in ``service`` and listed in
  ``service_ids`` (they still advance a cursor); parts of a post whose type is unknown are
  counted in ``unknown_blocks`` and the rest of the post is kept.
* The text of a post is its own text or media caption, once (links kept as their text, emoji
  kept, line breaks kept; an album's caption, which t.me nests in a copy of itself, is read
  once), plus a poll's question and options. Quoted text of the message it
  replies to and link-preview cards are not part of it.
* Dates are UTC; a post without a readable date has ``published_at=None``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from newsradar.records import parse_time
from newsradar.text import html_to_text, normalize_text

_DATA_POST = re.compile(r"^([A-Za-z][A-Za-z0-9_]{2,63})/(\d{1,12})$")
_T_ME_POST = re.compile(r"^/(?:s/)?([A-Za-z][A-Za-z0-9_]{2,63})(?:/(\d{1,12}))?/?$")
_COUNT = re.compile(r"^\s*(\d+(?:[.,]\d+)?)\s*([KkMmBb]?)\s*$")
_MULTIPLIER = {"": 1, "k": 1_000, "m": 1_000_000, "b": 1_000_000_000}

# Parts of a message bubble this parser understands; anything else is counted as unknown.
_KNOWN_PARTS = frozenset(
    {
        "tgme_widget_message_bubble_tail", "tgme_widget_message_author", "tgme_widget_message_forwarded_from",
        "tgme_widget_message_reply", "tgme_widget_message_text", "tgme_widget_message_footer",
        "tgme_widget_message_photo_wrap", "tgme_widget_message_video_player", "tgme_widget_message_grouped_wrap",
        "tgme_widget_message_document_wrap", "tgme_widget_message_poll", "tgme_widget_message_link_preview",
        "tgme_widget_message_voice_player", "tgme_widget_message_reactions", "tgme_widget_message_inline_keyboard",
        "tgme_widget_message_sticker_wrap", "tgme_widget_message_location_wrap", "tgme_widget_message_contact_wrap",
        "tgme_widget_message_roundvideo_player", "tgme_widget_message_service_photo", "message_media_not_supported_wrap",
        "media_supported_cont", "tgme_widget_message_via_bot", "tgme_widget_message_signature",
    }
)
# Media kinds by the class that marks them.
_MEDIA = (
    ("tgme_widget_message_photo_wrap", "photo"),
    ("tgme_widget_message_video_player", "video"),
    ("tgme_widget_message_roundvideo_player", "round_video"),
    ("tgme_widget_message_document_wrap", "document"),
    ("tgme_widget_message_poll", "poll"),
    ("tgme_widget_message_voice", "voice"),
    ("tgme_widget_message_sticker", "sticker"),
    ("tgme_widget_message_tgsticker", "sticker"),
    ("tgme_widget_message_videosticker", "sticker"),
    ("tgme_widget_message_location_wrap", "location"),
    ("message_media_not_supported", "unsupported"),
)
# Sub-trees that quote other content with the same class names as the post itself.
_FOREIGN = ("tgme_widget_message_reply", "tgme_widget_message_link_preview")
_TEXT = "tgme_widget_message_text"
MAX_PROBLEMS = 20


@dataclass(frozen=True)
class WebMessage:
    """One post as shown on the preview page."""

    channel: str
    message_id: int
    published_at: datetime | None
    text: str
    html: str | None = None
    author: str | None = None
    views: int | None = None
    forwarded_from: str | None = None
    reply_to: int | None = None
    media: tuple[str, ...] = ()
    edited: bool = False
    poll_question: str | None = None
    document_titles: tuple[str, ...] = ()


@dataclass
class ChannelPage:
    """Everything one page says. ``messages`` are sorted by id, oldest first."""

    messages: list[WebMessage] = field(default_factory=list)
    # data-before of the "older messages" link: request ``?before=<this>`` for the page below.
    before: int | None = None
    after: int | None = None
    service_ids: list[int] = field(default_factory=list)
    unknown_blocks: int = 0
    unparsed: int = 0
    problems: list[str] = field(default_factory=list)
    # False when the page has no message history at all (no such channel, preview disabled).
    has_history: bool = False

    @property
    def service(self) -> int:
        return len(self.service_ids)

    @property
    def ids(self) -> list[int]:
        return sorted({m.message_id for m in self.messages} | set(self.service_ids))

    def note(self, problem: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)


def parse_count(text: str | None) -> int | None:
    """'2' -> 2, '1.2K' -> 1200, '10.7M' -> 10700000; None when unreadable."""
    if not text:
        return None
    m = _COUNT.match(text.replace("\u00a0", " "))
    if not m:
        return None
    try:
        number = Decimal(m.group(1).replace(",", "."))
    except InvalidOperation:
        return None
    return int(number * _MULTIPLIER[m.group(2).lower()])


def parse_page(markup: str | bytes) -> ChannelPage:
    """Parse one t.me/s page (see module docstring for guarantees)."""
    if isinstance(markup, bytes):
        markup = markup.decode("utf-8", errors="replace")
    tree = LexborHTMLParser(markup)
    page = ChannelPage()
    page.has_history = tree.css_first(".tgme_channel_history") is not None
    for link in tree.css(".tme_messages_more"):
        page.before = _int_attr(link, "data-before", page.before)
        page.after = _int_attr(link, "data-after", page.after)
    seen: set[int] = set()
    for block in tree.css(".tgme_widget_message"):
        if not _has_class(block, "tgme_widget_message") or _inside(block, _FOREIGN):
            continue
        page.has_history = True
        post = (block.attributes.get("data-post") or "").strip()
        m = _DATA_POST.match(post)
        if not m:
            page.unparsed += 1
            page.note(f"message block without a usable data-post ({post[:40]!r})")
            continue
        message_id = int(m.group(2))
        if message_id in seen:
            continue
        seen.add(message_id)
        if _has_class(block, "service_message"):
            page.service_ids.append(message_id)
            continue
        page.messages.append(_message(block, m.group(1), message_id, page))
    page.messages.sort(key=lambda msg: msg.message_id)
    page.service_ids.sort()
    return page


def _message(block: LexborNode, channel: str, message_id: int, page: ChannelPage) -> WebMessage:
    bubble = block.css_first(".tgme_widget_message_bubble") or block
    for child in _children(bubble):
        classes = (child.attributes.get("class") or "").split()
        if classes and not _KNOWN_PARTS.intersection(classes):
            page.unknown_blocks += 1
            page.note(f"{channel}/{message_id}: unknown block {classes[0]!r}")

    texts, html_parts = [], []
    for node in _own(bubble, ".tgme_widget_message_text"):
        # t.me nests the caption of an album in a second, identical text block: the outer one
        # is the caption, the inner one a copy of it.
        if "js-message_reply_text" in _classes(node) or _inside(node, (_TEXT,), stop=bubble):
            continue
        node = _unwrap(node)
        texts.append(html_to_text(node.html or ""))
        html_parts.append((node.inner_html or "").strip())

    poll_question = None
    poll = _first_own(bubble, ".tgme_widget_message_poll")
    if poll is not None:
        question = poll.css_first(".tgme_widget_message_poll_question")
        poll_question = _plain(question) or None
        texts.append(poll_question)
        texts.extend(_plain(opt) for opt in poll.css(".tgme_widget_message_poll_option_text"))

    media = []
    for cls, kind in _MEDIA:
        if kind not in media and _first_own(bubble, "." + cls) is not None:
            media.append(kind)
    documents = tuple(t for t in (_plain(n) for n in _own(bubble, ".tgme_widget_message_document_title")) if t)

    meta = _first_own(bubble, ".tgme_widget_message_meta")
    edited = meta is not None and "edited" in (meta.text(deep=False) or "").lower()

    published_at = None
    time_node = _first_own(bubble, ".tgme_widget_message_date time")
    stamp = time_node.attributes.get("datetime") if time_node is not None else None
    if stamp:
        try:
            published_at = parse_time(stamp.strip())
        except ValueError:
            page.note(f"{channel}/{message_id}: unreadable date {stamp[:40]!r}")
    else:
        page.note(f"{channel}/{message_id}: no date")

    return WebMessage(
        channel=channel,
        message_id=message_id,
        published_at=published_at,
        text=normalize_text("\n".join(t for t in texts if t)),
        html="\n".join(h for h in html_parts if h) or None,
        author=_plain(_first_own(bubble, ".tgme_widget_message_from_author")) or None,
        views=parse_count(_plain(_first_own(bubble, ".tgme_widget_message_views"))),
        forwarded_from=_forwarded_from(bubble),
        reply_to=_reply_to(bubble),
        media=tuple(media),
        edited=edited,
        poll_question=poll_question,
        document_titles=documents,
    )


def _forwarded_from(bubble: LexborNode) -> str | None:
    box = _first_own(bubble, ".tgme_widget_message_forwarded_from")
    if box is None:
        return None
    name = box.css_first(".tgme_widget_message_forwarded_from_name")
    if name is None:
        return _plain(box).removeprefix("Forwarded from").strip() or None
    href = name.attributes.get("href") or ""
    m = _T_ME_POST.match(urlsplit(href).path) if href else None
    if m:
        return m.group(1)
    return _plain(name) or None


def _reply_to(bubble: LexborNode) -> int | None:
    reply = bubble.css_first(".tgme_widget_message_reply")
    if reply is None:
        return None
    m = _T_ME_POST.match(urlsplit(reply.attributes.get("href") or "").path)
    return int(m.group(2)) if m and m.group(2) else None


def _plain(node: LexborNode | None) -> str:
    return normalize_text(node.text(separator="", strip=False)) if node is not None else ""


def _classes(node: LexborNode) -> set[str]:
    return set((node.attributes.get("class") or "").split())


def _has_class(node: LexborNode, name: str) -> bool:
    return name in _classes(node)


def _children(node: LexborNode):
    child = node.child
    while child is not None:
        if child.is_element_node:
            yield child
        child = child.next


def _inside(node: LexborNode, classes: tuple[str, ...], stop: LexborNode | None = None) -> bool:
    """Whether an ancestor of ``node`` (below ``stop``, if given) has one of ``classes``."""
    parent = node.parent
    stop_id = stop.mem_id if stop is not None else None
    while parent is not None and parent.tag not in ("body", "html") and parent.mem_id != stop_id:
        if _classes(parent) & set(classes):
            return True
        parent = parent.parent
    return False


def _unwrap(node: LexborNode) -> LexborNode:
    """The innermost of text blocks nested with nothing else around them."""
    while True:
        children = list(_children(node))
        own_text = (node.text(deep=False) or "").strip()
        if len(children) != 1 or own_text or not _has_class(children[0], _TEXT):
            return node
        node = children[0]


def _own(scope: LexborNode, selector: str) -> list[LexborNode]:
    """Matches of ``selector`` in ``scope`` that are not inside a quoted reply or link preview."""
    return [n for n in scope.css(selector) if not _inside(n, _FOREIGN)]


def _first_own(scope: LexborNode, selector: str) -> LexborNode | None:
    found = _own(scope, selector)
    return found[0] if found else None


def _int_attr(node: LexborNode, name: str, default: int | None) -> int | None:
    value = (node.attributes.get(name) or "").strip()
    return int(value) if value.isdigit() else default
