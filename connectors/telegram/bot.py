"""``mode: bot``: channel posts through the Bot API (``getUpdates`` long polling).

The bot must be an administrator of each channel (that is how bots receive channel posts).
Guarantees:

* The cursor is the highest ``update_id`` returned by a poll. Telegram forgets updates only
  when a later ``getUpdates`` asks for ``offset = that id + 1``, and this poller asks for it
  only from the cursor the delivery loop saved after Kafka acknowledged the records. A crash
  anywhere before that save means the next run asks with the old offset and Telegram sends the
  same updates again: re-read, never lost.
* ``edited_channel_post`` becomes a record with the same ``article_id`` and ``edited_at``.
* Updates that are not channel posts, posts of channels not listed in ``channels``, service
  and media-only posts are counted in ``skipped`` (their offsets still advance).
* The bot token appears in no error message or log line.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from urllib.parse import urlencode

from connectors.base import PollResult
from connectors.http import FetchError, HttpClient
from newsradar.httpclient import parse_retry_after

from .botapi import POST_KINDS, map_update
from .throttle import RequestPacer

log = logging.getLogger(__name__)

LIMIT = 100
# Extra time over the long-poll timeout for Telegram to answer and the body to arrive.
DEADLINE_MARGIN = 15.0
DEFAULT_RATE_LIMIT_WAIT = 30.0
MAX_BODY = 8 * 1024 * 1024


class BotPoller:
    def __init__(self, source, token: str, http: HttpClient, pacer: RequestPacer):
        if not token:
            raise ValueError("empty bot token")
        self.source = source
        self.source_id = source.id
        self._token = token
        self.http = http
        self.pacer = pacer
        self.channels = frozenset(c.lower() for c in source.channels)

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "<token>")

    def updates_url(self, offset: int | None) -> str:
        params = {"timeout": int(self.source.long_poll), "limit": LIMIT, "allowed_updates": json.dumps(POST_KINDS)}
        if offset is not None:
            params["offset"] = offset + 1
        return f"{self.source.api_base.rstrip('/')}/bot{self._token}/getUpdates?{urlencode(params)}"

    async def poll(self, cursor: dict | None, now: datetime) -> PollResult:
        offset = (cursor or {}).get("offset")
        await self.pacer.wait()
        try:
            resp = await self.http.fetch(
                self.updates_url(offset),
                accept="application/json",
                timeout=self.source.long_poll + DEADLINE_MARGIN,
                max_body=MAX_BODY,
            )
        except FetchError as exc:
            return PollResult(outcome=exc.outcome, status=exc.status, error=self._redact(f"getUpdates: {exc.message}"))
        result = PollResult(status=resp.status, bytes_read=len(resp.body), fetch_seconds=resp.elapsed)
        try:
            answer = json.loads(resp.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            answer = None
            problem = f"not JSON ({exc})"
        else:
            problem = None if isinstance(answer, dict) else "not a JSON object"
        if isinstance(answer, dict) and answer.get("ok") is True and resp.ok:
            return self._updates(answer.get("result"), offset, now, result)
        return self._failed(resp.status, resp.headers, answer if isinstance(answer, dict) else {}, problem, result)

    def _updates(self, updates, offset: int | None, now: datetime, result: PollResult) -> PollResult:
        if not isinstance(updates, list):
            result.outcome, result.error = "parse_error", "getUpdates: result is not a list"
            return result
        highest = offset
        for update in updates:
            mapped = map_update(
                update, source_id=self.source_id, fetched_at=now, channels=self.channels, lang_hint=self.source.lang
            )
            if mapped.update_id is not None:
                highest = mapped.update_id if highest is None else max(highest, mapped.update_id)
            if mapped.record is not None:
                result.records.append(mapped.record)
                continue
            result.skipped += 1
            if mapped.skip == "malformed":
                log.warning("source %s: update skipped: %s", self.source_id, mapped.detail)
        if highest is not None and highest != offset:
            result.cursor = {"offset": highest}
        # Long polling already waited on Telegram's side: ask again right away.
        result.next_poll_in = 0.0
        return result

    def _failed(self, status: int, headers, answer: dict, problem: str | None, result: PollResult) -> PollResult:
        code = answer.get("error_code") if isinstance(answer.get("error_code"), int) else status
        description = answer.get("description") if isinstance(answer.get("description"), str) else problem
        what = self._redact(f"getUpdates: HTTP {status}" + (f", {description}" if description else ""))
        if code == 429 or status == 429:
            params = answer.get("parameters") if isinstance(answer.get("parameters"), dict) else {}
            wait = params.get("retry_after")
            if not isinstance(wait, (int, float)) or isinstance(wait, bool):
                wait = parse_retry_after(headers.get("retry-after"))
            wait = float(DEFAULT_RATE_LIMIT_WAIT if wait is None else wait)
            self.pacer.pause(wait)
            result.outcome, result.error = "rate_limited", what
            result.rate_limited_for = result.next_poll_in = wait
            return result
        if status < 400 and problem:
            result.outcome = "parse_error"
        else:
            # 401: bad token; 409: a webhook is set or another getUpdates runs for this bot.
            result.outcome = "http_error"
        result.error = what
        return result

    async def close(self) -> None:
        """The HTTP client is shared and closed by its owner."""
