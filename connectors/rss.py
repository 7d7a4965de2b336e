"""The RSS/Atom/RDF poller: one feed, fetched politely and verified, parsed only when it changed.

Guarantees of :meth:`RssPoller.poll` (one poller per feed; it never raises for feed errors):

* Conditional GET with the saved ETag / Last-Modified. A 304 is not taken on faith: every
  ``verify_304_every``-th 304 in a row is followed by a full GET whose body hash is compared
  with the last delivered body. If the content changed behind a 304 the feed is flagged as
  lying (outcome ``lying_304``), its new items are returned, and from then on it is always
  fetched in full (the body hash still spares the parse when nothing changed).
* A 200 whose body hash equals the last delivered body returns no records and is not parsed.
* 429/503 return ``rate_limited`` with the server's Retry-After (capped at 24 h); other
  statuses, network errors, timeouts, refusals and caps are failed polls with their outcome.
* The cursor (validators, body hash, the feed's hint, and the memory of the delivered body
  that item ids and updates are decided with, :mod:`newsradar.feeditems`) is returned for
  the loop to save after Kafka acknowledged the records; on failure it is ``None``.
* ``next_poll_in`` is the feed's own hint: the longest of ttl, sy:updatePeriod and
  Cache-Control max-age (or Retry-After when rate limited).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
from concurrent.futures import Executor
from datetime import datetime
from typing import Any

from yarl import URL

from connectors.base import PollResult
from connectors.http import FetchError, HttpClient, Response
from newsradar.config.sources import Defaults, RssSource
from newsradar.feeditems import FeedMemory
from newsradar.feeds import FeedError, parse_feed
from newsradar.httpclient import parse_retry_after

log = logging.getLogger(__name__)

RATE_LIMIT_STATUSES = frozenset({429, 503})
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


def cache_control_hint(headers) -> float | None:
    """Seconds from Cache-Control max-age, if present (s-maxage is for shared caches, not us)."""
    values = [int(v) for v in _MAX_AGE.findall(headers.get("cache-control", ""))]
    return float(max(values)) if values else None


def _max_hint(*hints: float | None) -> float | None:
    present = [h for h in hints if h is not None and h > 0]
    return max(present) if present else None


class RssPoller:
    """Polls one RSS/Atom/RDF feed (see module docstring)."""

    def __init__(
        self,
        source: RssSource,
        defaults: Defaults,
        http: HttpClient,
        *,
        parse_in: Executor | None = None,
    ):
        self.source = source
        self.source_id = source.id
        self.host = URL(source.url).host
        self._defaults = defaults
        self._http = http
        self._parse_in = parse_in
        self._timeout = source.timeout if source.timeout is not None else defaults.timeout
        self._max_body = source.max_body if source.max_body is not None else defaults.max_body

    async def close(self) -> None:
        # The HTTP client is shared by every poller; the app closes it.
        return None

    async def _get(self, cursor: dict, conditional: bool) -> Response:
        return await self._http.fetch(
            self.source.url,
            etag=cursor.get("etag") if conditional else None,
            last_modified=cursor.get("last_modified") if conditional else None,
            timeout=self._timeout,
            max_body=self._max_body,
            max_redirects=self._defaults.max_redirects,
        )

    async def poll(self, cursor: dict[str, Any] | None, now: datetime) -> PollResult:
        cursor = dict(cursor or {})
        conditional = cursor.get("conditional", True) and bool(cursor.get("body_sha256"))
        seconds = 0.0
        try:
            resp = await self._get(cursor, conditional)
            seconds += resp.elapsed
            lying = False
            if resp.status == 304:
                if not conditional:
                    return PollResult(outcome="http_error", status=304, fetch_seconds=seconds,
                                      error="HTTP 304 to a request without validators")
                unverified = int(cursor.get("unverified_304", 0)) + 1
                if unverified < self._defaults.verify_304_every:
                    cursor["unverified_304"] = unverified
                    return PollResult(
                        cursor=cursor, outcome="not_modified", status=304, fetch_seconds=seconds,
                        next_poll_in=_max_hint(cursor.get("hint"), cache_control_hint(resp.headers)),
                    )
                # Time to check the 304s: fetch in full and compare with what we delivered.
                resp = await self._get(cursor, conditional=False)
                seconds += resp.elapsed
                lying = True
        except FetchError as exc:
            return PollResult(outcome=exc.outcome, status=exc.status, error=exc.message,
                              fetch_seconds=seconds + exc.elapsed)
        return await self._handle(resp, cursor, now, seconds, verifying=lying)

    async def _handle(self, resp: Response, cursor: dict, now: datetime, seconds: float, verifying: bool) -> PollResult:
        base = dict(status=resp.status, fetch_seconds=seconds, bytes_read=len(resp.body))
        if resp.status in RATE_LIMIT_STATUSES:
            wait = parse_retry_after(resp.headers.get("retry-after"), now)
            return PollResult(outcome="rate_limited", error=f"HTTP {resp.status} (rate limited)",
                              rate_limited_for=wait, next_poll_in=wait, **base)
        if resp.status == 304:
            return PollResult(outcome="http_error", error="HTTP 304 to an unconditional request", **base)
        if not resp.ok:
            return PollResult(outcome="http_error", error=f"HTTP {resp.status}", **base)
        digest = hashlib.sha256(resp.body).hexdigest()
        cursor.update(
            etag=resp.headers.get("etag"),
            last_modified=resp.headers.get("last-modified"),
            unverified_304=0,
        )
        header_hint = cache_control_hint(resp.headers)
        if digest == cursor.get("body_sha256"):
            # Unchanged content (a verified 304, or a server without validators): nothing to parse.
            return PollResult(cursor=cursor, outcome="not_modified" if verifying else "ok",
                              next_poll_in=_max_hint(cursor.get("hint"), header_hint), **base)
        lying = verifying and bool(cursor.get("body_sha256"))
        try:
            parsed = await asyncio.get_running_loop().run_in_executor(
                self._parse_in,
                functools.partial(
                    parse_feed, resp.body, resp.headers, source_id=self.source_id, fetched_at=now,
                    default_lang=self.source.lang, memory=FeedMemory.from_cursor(cursor), base_url=resp.url,
                ),
            )
        except FeedError as exc:
            return PollResult(outcome="parse_error", error=str(exc), **base)
        if parsed.skipped:
            log.warning("source %s: %d entries could not become records, e.g. %s",
                        self.source_id, parsed.skipped, parsed.skip_reasons[0])
        cursor.pop("guids_repeat", None)  # kept by the memory when a cursor from before had it
        cursor.update(body_sha256=digest, hint=parsed.hint_seconds, **parsed.memory.to_cursor())
        if lying:
            cursor["conditional"] = False
            cursor["lying_304"] = int(cursor.get("lying_304", 0)) + 1
        return PollResult(
            records=parsed.records,
            cursor=cursor,
            outcome="lying_304" if lying else "ok",
            skipped=parsed.skipped,
            next_poll_in=_max_hint(parsed.hint_seconds, header_hint),
            **base,
        )


__all__ = ["RssPoller", "cache_control_hint"]
