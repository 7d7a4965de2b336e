"""Bot API updates (``channel_post``, ``edited_channel_post``) -> records.

Pure mapping shared by the ``getUpdates`` poller (:mod:`connectors.telegram.bot`) and the
webhook receiver (:mod:`connectors.telegram.webhook`). Guarantees:

* :func:`map_update` never raises on update content: an update it cannot use comes back
  with ``record=None`` and a ``skip`` reason from :data:`SKIP_REASONS` (counted by callers).
* An edited post maps to a record with the same ``article_id`` as the original and
  ``edited_at`` from the post's ``edit_date``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from newsradar.records import RawArticle, RecordError

from .mapping import build_record, channel_key, from_unix, join_parts

POST_KINDS = ("channel_post", "edited_channel_post")
SKIP_REASONS = ("not_a_channel_post", "other_channel", "service", "no_text", "malformed")
# Keys that mark a service message ("channel photo changed", "message pinned" ...).
_SERVICE_KEYS = frozenset(
    {
        "new_chat_title", "new_chat_photo", "delete_chat_photo", "channel_chat_created", "pinned_message",
        "migrate_to_chat_id", "migrate_from_chat_id", "message_auto_delete_timer_changed", "video_chat_scheduled",
        "video_chat_started", "video_chat_ended", "video_chat_participants_invited", "forum_topic_created",
        "boost_added", "chat_background_set", "giveaway_created", "paid_message_price_changed",
    }
)


@dataclass(frozen=True)
class Mapped:
    """The outcome for one update: a record, or why there is none."""

    update_id: int | None
    record: RawArticle | None = None
    skip: str | None = None
    detail: str | None = None


def map_update(
    update: Any,
    *,
    source_id: str,
    fetched_at: datetime,
    channels: frozenset[str] = frozenset(),
    lang_hint: str | None = None,
) -> Mapped:
    """Map one update object. ``channels`` (lower-case usernames) keeps only those channels."""
    if not isinstance(update, dict):
        return Mapped(None, skip="malformed", detail=f"update is a {type(update).__name__}, not an object")
    update_id = update.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        return Mapped(None, skip="malformed", detail="update without an integer update_id")
    kind = next((k for k in POST_KINDS if k in update), None)
    if kind is None:
        return Mapped(update_id, skip="not_a_channel_post")
    post = update[kind]
    try:
        return _map_post(update_id, post, kind == "edited_channel_post", source_id, fetched_at, channels, lang_hint)
    except (KeyError, TypeError, ValueError, OverflowError, RecordError) as exc:
        return Mapped(update_id, skip="malformed", detail=f"{kind}: {exc}")


def _map_post(update_id, post, edited, source_id, fetched_at, channels, lang_hint) -> Mapped:
    if not isinstance(post, dict):
        raise TypeError("post is not an object")
    chat = post["chat"]
    channel = channel_key(chat.get("username"), int(chat["id"]))
    if channels and channel not in channels:
        return Mapped(update_id, skip="other_channel", detail=channel)
    message_id = int(post["message_id"])
    body = post.get("text") if isinstance(post.get("text"), str) else post.get("caption")
    parts = [body if isinstance(body, str) else None]
    poll = post.get("poll")
    if isinstance(poll, dict):
        parts.append(_poll_text(poll.get("question")))
        parts.extend(_poll_text(o.get("text")) for o in poll.get("options") or () if isinstance(o, dict))
    text = join_parts(parts)
    if not text:
        reason = "service" if _SERVICE_KEYS.intersection(post) else "no_text"
        return Mapped(update_id, skip=reason, detail=f"{channel}/{message_id}")
    edit_date = post.get("edit_date")
    record = build_record(
        source_id=source_id,
        channel=channel,
        message_id=message_id,
        text=text,
        published_at=from_unix(post["date"]),
        fetched_at=fetched_at,
        author=_str(post.get("author_signature")),
        edited_at=from_unix(edit_date) if edit_date else (fetched_at if edited else None),
        forwarded_from=_forwarded_from(post),
        lang_hint=lang_hint,
        flags=("edit_date_missing",) if edited and not edit_date else (),
        reply_to=_reply_to(post, chat),
    )
    return Mapped(update_id, record=record)


def _reply_to(post: dict, chat: dict) -> int | None:
    """The id of the post this one answers, when it is in the same channel."""
    reply = post.get("reply_to_message")
    if not isinstance(reply, dict):
        return None
    other = reply.get("chat")
    if isinstance(other, dict) and other.get("id") != chat.get("id"):
        return None
    message_id = reply.get("message_id")
    return message_id if isinstance(message_id, int) and not isinstance(message_id, bool) else None


def _poll_text(value) -> str | None:
    # Bot API 7.x: a plain string; newer: may come with entities but the text stays a string.
    return value if isinstance(value, str) else None


def _str(value) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _forwarded_from(post: dict) -> str | None:
    origin = post.get("forward_origin")
    if isinstance(origin, dict):
        kind = origin.get("type")
        if kind == "channel" and isinstance(origin.get("chat"), dict):
            chat = origin["chat"]
            return _str(chat.get("username")) or _str(chat.get("title"))
        if kind == "chat" and isinstance(origin.get("sender_chat"), dict):
            chat = origin["sender_chat"]
            return _str(chat.get("username")) or _str(chat.get("title"))
        if kind == "user" and isinstance(origin.get("sender_user"), dict):
            user = origin["sender_user"]
            return _str(user.get("username")) or _str(user.get("first_name"))
        if kind == "hidden_user":
            return _str(origin.get("sender_user_name"))
    # Before Bot API 7.0 the same facts came as forward_from_chat / forward_sender_name.
    legacy = post.get("forward_from_chat")
    if isinstance(legacy, dict):
        return _str(legacy.get("username")) or _str(legacy.get("title"))
    return _str(post.get("forward_sender_name"))
