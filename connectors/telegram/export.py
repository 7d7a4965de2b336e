"""``mode: export``: a Telegram Desktop channel export (``result.json``) as a backfill source.

The file is streamed with ijson (yajl C backend when available): memory is bounded by one
batch of messages, never by the size of the file, so a 500 MB export needs no more memory
than a small one. Guarantees:

* Every ``"type": "message"`` with text (plain string or a list of entities, flattened) or a
  poll becomes one record with the id ``tg:<channel>:<id>`` the live modes give the same
  post; service messages and media-only posts are counted in ``skipped``.
* The cursor is the last message id read. A restart resumes after it (the file is re-read
  from the start but earlier messages are skipped); a new export of the same channel picks up
  only messages newer than the cursor.
* A lone UTF-16 surrogate escaped in a message (``"\\ud83d"``) becomes U+FFFD in that
  message's record, flagged ``surrogates_replaced``; the rest of the file reads on.
* Dates: ``date_unixtime`` when the export has it (Desktop 3.x and later); otherwise the
  naive ``date`` is read in the source's ``timezone`` and the record is flagged
  ``date_local_assumed``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any
from zoneinfo import ZoneInfo

import ijson

from connectors.base import PollResult
from newsradar.escapes import SurrogateSafeReader
from newsradar.records import RawArticle, RecordError

from .mapping import build_record, channel_key, from_unix, join_parts

log = logging.getLogger(__name__)

# A finished export is looked at again this often (a newer export may replace the file).
IDLE_RECHECK = 3600.0
_HEADER_KEYS = ("name", "type", "id")


class ExportError(ValueError):
    """The file is not a single-chat Telegram Desktop export we can read."""


def flatten_text(value: Any) -> str:
    """An export's ``text``: a string, or a list of strings and ``{"type", "text"}`` entities.

    Link entities keep their visible text (the URL of a ``text_link`` is not inlined), like the
    other modes; anything that is neither a string nor an entity with a string ``text`` is
    ignored rather than guessed at.
    """
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        return ""
    out = []
    for part in value:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            out.append(part["text"])
    return "".join(out)


@dataclass(frozen=True)
class ExportItem:
    message_id: int | None
    record: RawArticle | None = None
    skip: str | None = None
    detail: str | None = None


def map_message(
    msg: Any, *, channel: str, source_id: str, fetched_at: datetime, tz: ZoneInfo, lang_hint: str | None = None
) -> ExportItem:
    """One export message -> a record or a counted skip (never raises on content)."""
    if not isinstance(msg, dict):
        return ExportItem(None, skip="malformed", detail="message is not an object")
    message_id = msg.get("id")
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        return ExportItem(None, skip="malformed", detail="message without an integer id")
    if msg.get("type") != "message":
        return ExportItem(message_id, skip="service", detail=str(msg.get("action") or msg.get("type")))
    parts = [flatten_text(msg.get("text"))]
    poll = msg.get("poll")
    if isinstance(poll, dict):
        parts.append(poll.get("question") if isinstance(poll.get("question"), str) else None)
        parts.extend(a.get("text") for a in poll.get("answers") or () if isinstance(a, dict) and isinstance(a.get("text"), str))
    text = join_parts(parts)
    if not text:
        return ExportItem(message_id, skip="no_text")
    flags = []
    try:
        published_at = _time(msg, "date", tz, flags)
        edited_at = _time(msg, "edited", tz, flags) if ("edited" in msg or "edited_unixtime" in msg) else None
        record = build_record(
            source_id=source_id,
            channel=channel,
            message_id=message_id,
            text=text,
            published_at=published_at,
            fetched_at=fetched_at,
            author=msg.get("author") if isinstance(msg.get("author"), str) else None,
            edited_at=edited_at,
            forwarded_from=msg.get("forwarded_from") if isinstance(msg.get("forwarded_from"), str) else None,
            lang_hint=lang_hint,
            flags=sorted(set(flags)),
            reply_to=_reply_to(msg),
        )
    except (ValueError, TypeError, OverflowError, RecordError) as exc:
        return ExportItem(message_id, skip="malformed", detail=f"message {message_id}: {exc}")
    return ExportItem(message_id, record=record)


def _reply_to(msg: dict) -> int | None:
    """``reply_to_message_id``, unless the message answers one in another chat (``reply_to_peer_id``)."""
    reply = msg.get("reply_to_message_id")
    if not isinstance(reply, int) or isinstance(reply, bool) or msg.get("reply_to_peer_id") is not None:
        return None
    return reply


def _time(msg: dict, key: str, tz: ZoneInfo, flags: list[str]) -> datetime:
    unix = msg.get(f"{key}_unixtime")
    if unix not in (None, ""):
        return from_unix(unix)
    local = msg.get(key)
    if not isinstance(local, str):
        raise ValueError(f"no {key} and no {key}_unixtime")
    flags.append("date_local_assumed")
    return datetime.fromisoformat(local).replace(tzinfo=tz).astimezone(UTC)


class ExportStream:
    """Messages of one export file, in file order, read lazily.

    ``header`` fills with the chat's top-level ``name``/``type``/``id`` as they are read
    (Desktop writes them before ``messages``).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.header: dict[str, Any] = {}
        self._fh: IO[bytes] | None = None

    def messages(self) -> Iterator[Any]:
        # Closed by close(): the stream outlives this call.
        self._fh = open(self.path, "rb")
        # yajl reads "\ud83d" as "?" and stops at "\ude00": lone halves are rewritten first,
        # to become U+FFFD in their record, flagged (newsradar.escapes).
        events = ijson.parse(SurrogateSafeReader(self._fh), use_float=True)
        return ijson.items(self._tap(events), "messages.item")

    def _tap(self, events):
        for prefix, event, value in events:
            if prefix in _HEADER_KEYS and event in ("string", "number"):
                self.header[prefix] = value
            elif prefix == "chats" and event == "start_map":
                raise ExportError("this is a whole-account export; export the single channel instead")
            yield prefix, event, value

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class ExportPoller:
    """One export file as a source: a batch of messages per poll until the end of the file.

    Keeps its open stream between polls while the saved cursor matches what it last returned,
    so a whole file is read once (O(size)); any mismatch (restart, a poll the loop did not
    save) reopens the file and skips to the cursor.
    """

    def __init__(self, source, *, batch: int = 500):
        self.source = source
        self.source_id = source.id
        self.batch = batch
        self.tz = ZoneInfo(getattr(source, "timezone", "UTC") or "UTC")
        self._stream: ExportStream | None = None
        self._iter: Iterator[Any] | None = None
        self._position: int | None = None  # last message id handed out by the open stream
        self._signature: list[int] | None = None

    async def poll(self, cursor: dict | None, now: datetime) -> PollResult:
        cursor = cursor or {}
        try:
            stat = os.stat(self.source.path)
        except OSError as exc:
            return PollResult(outcome="network_error", error=f"export file {self.source.path}: {exc.strerror}")
        signature = [stat.st_size, stat.st_mtime_ns]
        last_id = cursor.get("last_id")
        if cursor.get("done") and cursor.get("file") == signature:
            return PollResult(next_poll_in=IDLE_RECHECK)
        if self._iter is None or self._position != last_id or self._signature != signature:
            self._open(signature)
        try:
            return self._next_batch(last_id, signature, now)
        except (ijson.JSONError, ExportError, OSError, UnicodeDecodeError) as exc:
            self._close()
            return PollResult(outcome="parse_error", error=f"export file {self.source.path}: {exc}")

    def _next_batch(self, last_id: int | None, signature: list[int], now: datetime) -> PollResult:
        result = PollResult(cursor={"last_id": last_id, "done": False, "file": signature})
        taken = 0
        try:
            while taken < self.batch:
                msg = next(self._iter, _END)
                if msg is _END:
                    result.cursor["done"] = True
                    self._close()
                    break
                msg_id = msg.get("id") if isinstance(msg, dict) else None
                if isinstance(msg_id, int) and last_id is not None and msg_id <= last_id:
                    continue
                item = map_message(
                    msg, channel=self._channel(), source_id=self.source_id, fetched_at=now, tz=self.tz,
                    lang_hint=self.source.lang,
                )
                taken += 1
                if item.record is not None:
                    result.records.append(item.record)
                else:
                    result.skipped += 1
                    if item.skip == "malformed":
                        log.warning("source %s: skipped %s", self.source_id, item.detail)
                if item.message_id is not None:
                    last_id = item.message_id
                    result.cursor["last_id"] = last_id
        except (ijson.JSONError, ExportError, UnicodeDecodeError) as exc:
            if not taken:
                raise
            # Hand over what was read; the next poll reopens, skips to here and reports the error.
            log.warning("source %s: export stops being readable after message %s: %s", self.source_id, last_id, exc)
            self._close()
        self._position = last_id
        result.next_poll_in = IDLE_RECHECK if result.cursor["done"] else 0.0
        return result

    def _channel(self) -> str:
        if self.source.channel:
            return channel_key(self.source.channel)
        chat_id = self._stream.header.get("id") if self._stream else None
        if not isinstance(chat_id, int):
            raise ExportError("the export names no chat id before its messages; set channel: in sources.yaml")
        return channel_key(None, chat_id)

    def _open(self, signature: list[int]) -> None:
        self._close()
        self._stream = ExportStream(self.source.path)
        self._iter = self._stream.messages()
        self._signature = signature
        self._position = None

    def _close(self) -> None:
        if self._stream is not None:
            self._stream.close()
        self._stream = None
        self._iter = None

    async def close(self) -> None:
        self._close()


_END = object()
