"""``mode: mtproto`` (optional, ``pip install newsradar[telegram]``): a channel read as a user
through Telethon.

Same record mapping as the other modes. Guarantees:

* FLOOD_WAIT is never slept through inside a poll: Telethon's automatic sleep is off
  (``flood_sleep_threshold=0``), the poll returns ``rate_limited`` with the wait in
  ``rate_limited_for`` (the loop counts it in ``newsradar_rate_limit_waits`` /
  ``newsradar_rate_limit_wait_seconds``) and asks to come back after it.
* The channel's username is resolved once: its id and access hash are kept in the cursor
  (and in memory), so restarts do not resolve it again; ``resolves`` counts the times it was.
* The first run reads the newest ``page`` posts (older history is what exports are for);
  after that, new posts are read oldest first from the cursor's ``last_id``; the newest ``recheck``
  posts are read again each poll and one whose ``edit_date`` moved is emitted again
  (same article id, ``edited_at`` = ``edit_date``).
* No network at import; Telethon is imported only when a client is built.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from connectors.base import PollResult
from newsradar.records import RawArticle, RecordError

from .mapping import build_record, channel_key, join_parts

log = logging.getLogger(__name__)

PAGE = 100
RECHECK = 30


class MtprotoSetupError(RuntimeError):
    """Telethon missing, credentials missing, or the session is not logged in."""


def _text_of(value: Any) -> str | None:
    # Poll questions/answers are TextWithEntities since layer 181, plain strings before.
    if isinstance(value, str):
        return value
    text = getattr(value, "text", None)
    return text if isinstance(text, str) else None


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _forwarded_from(fwd: Any) -> str | None:
    if fwd is None:
        return None
    name = getattr(fwd, "from_name", None)
    if isinstance(name, str) and name.strip():
        return name
    peer = getattr(fwd, "from_id", None)
    channel_id = getattr(peer, "channel_id", None)
    if isinstance(channel_id, int):
        return channel_key(None, channel_id)
    user_id = getattr(peer, "user_id", None)
    return f"user{user_id}" if isinstance(user_id, int) else None


def _reply_to(header: Any) -> int | None:
    """``MessageReplyHeader.reply_to_msg_id``, unless it names a message of another peer."""
    if header is None or getattr(header, "reply_to_peer_id", None) is not None:
        return None
    message_id = getattr(header, "reply_to_msg_id", None)
    return message_id if isinstance(message_id, int) else None


def map_message(
    msg: Any, *, channel: str, source_id: str, fetched_at: datetime, lang_hint: str | None = None
) -> tuple[RawArticle | None, str | None]:
    """A Telethon ``Message`` -> (record, None) or (None, skip reason). Never raises on content."""
    message_id = getattr(msg, "id", None)
    if not isinstance(message_id, int):
        return None, "malformed"
    if type(msg).__name__ == "MessageService" or getattr(msg, "action", None) is not None:
        return None, "service"
    parts = [msg.message if isinstance(getattr(msg, "message", None), str) else None]
    poll = getattr(getattr(msg, "media", None), "poll", None)
    if poll is not None:
        parts.append(_text_of(getattr(poll, "question", None)))
        parts.extend(_text_of(getattr(a, "text", None)) for a in getattr(poll, "answers", None) or ())
    text = join_parts(parts)
    if not text:
        return None, "no_text"
    published_at = _utc(getattr(msg, "date", None))
    if published_at is None:
        return None, "malformed"
    edit_date = None if getattr(msg, "edit_hide", False) else _utc(getattr(msg, "edit_date", None))
    views = getattr(msg, "views", None)
    try:
        record = build_record(
            source_id=source_id,
            channel=channel,
            message_id=message_id,
            text=text,
            published_at=published_at,
            fetched_at=fetched_at,
            author=getattr(msg, "post_author", None),
            edited_at=edit_date,
            forwarded_from=_forwarded_from(getattr(msg, "fwd_from", None)),
            views=views if isinstance(views, int) else None,
            lang_hint=lang_hint,
            reply_to=_reply_to(getattr(msg, "reply_to", None)),
        )
    except (RecordError, ValueError, TypeError) as exc:
        log.warning("source %s: message %s refused: %s", source_id, message_id, exc)
        return None, "malformed"
    return record, None


def credentials(source) -> tuple[int, str]:
    """(api_id, api_hash) from the source's environment variables, with Telethon importable."""
    try:
        import telethon  # noqa: F401
    except ImportError:
        raise MtprotoSetupError("mode: mtproto needs Telethon: pip install 'newsradar[telegram]'") from None
    api_id = os.environ.get(source.api_id_env, "").strip()
    api_hash = os.environ.get(source.api_hash_env, "").strip()
    if not api_id.isdigit() or not api_hash:
        raise MtprotoSetupError(f"mode: mtproto needs ${source.api_id_env} (a number) and ${source.api_hash_env}")
    return int(api_id), api_hash


def telethon_client(source, session_dir: str, creds: tuple[int, str]) -> Any:
    """Build (not connect) a Telethon client whose session file lives in ``session_dir``."""
    from telethon import TelegramClient

    os.makedirs(session_dir, mode=0o700, exist_ok=True)
    return TelegramClient(
        os.path.join(session_dir, source.session),
        creds[0],
        creds[1],
        flood_sleep_threshold=0,
        receive_updates=False,
    )


class MtprotoPoller:
    """One channel read through an MTProto user session."""

    def __init__(self, source, client_factory: Callable[[], Any], *, page: int = PAGE, recheck: int = RECHECK):
        self.source = source
        self.source_id = source.id
        self.channel = channel_key(source.channel)
        self._client_factory = client_factory
        self._client = None
        self._peer = None
        self.page = page
        self.recheck = recheck
        self.resolves = 0

    async def poll(self, cursor: dict | None, now: datetime) -> PollResult:
        from telethon.errors import FloodWaitError, RPCError

        cursor = dict(cursor or {})
        try:
            client = await self._connected()
            peer = await self._peer_of(client, cursor)
            return await self._read(client, peer, cursor, now)
        except FloodWaitError as exc:
            wait = float(exc.seconds)
            return PollResult(
                outcome="rate_limited", status=420, error=f"FLOOD_WAIT {exc.seconds}s", rate_limited_for=wait,
                next_poll_in=wait,
            )
        except MtprotoSetupError as exc:
            return PollResult(outcome="refused", error=str(exc))
        except (RPCError, ConnectionError, OSError, TimeoutError) as exc:
            return PollResult(outcome="network_error", error=f"{type(exc).__name__}: {exc}")

    async def _connected(self):
        if self._client is None:
            self._client = self._client_factory()
        if not self._client.is_connected():
            await self._client.connect()
            if not await self._client.is_user_authorized():
                raise MtprotoSetupError(
                    f"MTProto session {self.source.session!r} is not logged in; log in once interactively"
                )
        return self._client

    async def _peer_of(self, client, cursor: dict):
        if self._peer is None:
            cached = cursor.get("peer")
            if isinstance(cached, dict) and {"channel_id", "access_hash"} <= cached.keys():
                from telethon.tl.types import InputPeerChannel

                self._peer = InputPeerChannel(int(cached["channel_id"]), int(cached["access_hash"]))
            else:
                self._peer = await client.get_input_entity(self.source.channel)
                self.resolves += 1
        cursor["peer"] = {"channel_id": self._peer.channel_id, "access_hash": self._peer.access_hash}
        return self._peer

    async def _read(self, client, peer, cursor: dict, now: datetime) -> PollResult:
        last_id = int(cursor.get("last_id") or 0)
        edits: dict[str, int] = dict(cursor.get("edits") or {})
        result = PollResult()
        resumed = last_id > 0
        if resumed:
            # Oldest first from the cursor, so a partial read still advances it without a hole.
            fresh = await client.get_messages(peer, limit=self.page, min_id=last_id, reverse=True)
        else:
            # First run: the newest page only, not the channel's whole history (exports do that).
            fresh = await client.get_messages(peer, limit=self.page)
        recent = await client.get_messages(peer, limit=self.recheck) if last_id else []
        for msg in recent:
            edited = getattr(msg, "edit_date", None)
            if msg.id > last_id or edited is None or getattr(msg, "edit_hide", False):
                continue
            stamp = int(_utc(edited).timestamp())
            if edits.get(str(msg.id)) == stamp:
                continue
            self._take(msg, now, result)
            edits[str(msg.id)] = stamp
        for msg in sorted(fresh, key=lambda m: m.id):
            self._take(msg, now, result)
            last_id = max(last_id, msg.id)
            if getattr(msg, "edit_date", None) is not None:
                edits[str(msg.id)] = int(_utc(msg.edit_date).timestamp())
        # Remember edit stamps only for the window that is rechecked.
        keep = sorted((int(k) for k in edits), reverse=True)[: max(self.recheck * 2, 1)]
        cursor.update(last_id=last_id, edits={str(k): edits[str(k)] for k in keep})
        result.cursor = cursor
        # A full page after a cursor means more may be waiting: come back at once.
        result.next_poll_in = 0.0 if resumed and len(fresh) >= self.page else None
        return result

    def _take(self, msg, now: datetime, result: PollResult) -> None:
        record, skip = map_message(
            msg, channel=self.channel, source_id=self.source_id, fetched_at=now, lang_hint=self.source.lang
        )
        if record is not None:
            result.records.append(record)
        else:
            result.skipped += 1

    async def close(self) -> None:
        if self._client is not None and self._client.is_connected():
            await self._client.disconnect()
