"""``mode: web``: a public channel read from its preview pages (``<base_url>/s/<channel>``).

Guarantees (on top of the delivery loop's at-least-once):

* Cursor = the highest message id seen. The newest page is read every poll; on the first run
  the loop walks ``?before=<id>`` pages down ``backfill_pages`` deep, and whenever the newest
  page does not reach back to the cursor (more posts arrived between two polls than one page
  shows) it walks down until it does, at most ``backfill_pages`` pages. A gap deeper than
  that is logged with its size, never silently skipped.
* A failed request anywhere in a poll fails the whole poll: nothing is returned and the
  cursor stays, so the next poll re-reads (no half-read gap is ever marked as read).
* An edit is detected by the post's fingerprint (text and "edited" marker, not the view
  count) changing for a post already delivered, within the window of recent posts kept in
  the cursor; it is emitted again with the same ``article_id`` and ``edited_at`` = the time
  it was noticed (t.me does not show when a post was edited; the record is flagged
  ``edit_time_is_fetch_time``).
* Politeness: every request waits its turn on a :class:`RequestPacer` shared by all web
  sources; a 429/503 pauses that pacer for Retry-After (or a default) and the poll returns
  ``rate_limited`` with the wait.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from connectors.base import PollResult
from connectors.http import FetchError, HttpClient, Response
from newsradar.httpclient import parse_retry_after
from newsradar.records import RecordError

from .mapping import build_record
from .throttle import RequestPacer
from .webparse import ChannelPage, WebMessage, parse_page

log = logging.getLogger(__name__)

ACCEPT_HTML = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"
# How many recent posts keep a fingerprint for edit detection (about 15 pages).
SEEN_WINDOW = 300
DEFAULT_RATE_LIMIT_WAIT = 60.0


class _PollFailed(Exception):
    def __init__(self, result: PollResult):
        super().__init__(result.error)
        self.result = result


def fingerprint(msg: WebMessage) -> str:
    """What makes two sightings of a post the same version (views excluded: they always move)."""
    key = "\x1f".join((msg.text, "edited" if msg.edited else "", msg.author or "", msg.forwarded_from or ""))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


class WebPoller:
    """One public channel through its t.me/s preview."""

    def __init__(self, source, http: HttpClient, pacer: RequestPacer):
        self.source = source
        self.source_id = source.id
        self.http = http
        self.pacer = pacer
        self.base = source.base_url.rstrip("/")

    def page_url(self, before: int | None = None) -> str:
        url = f"{self.base}/s/{self.source.channel}"
        return f"{url}?before={before}" if before is not None else url

    async def poll(self, cursor: dict | None, now: datetime) -> PollResult:
        cursor = cursor or {}
        last_id = cursor.get("last_id")
        seen: dict[str, str] = dict(cursor.get("seen") or {})
        result = PollResult()
        try:
            pages = await self._read_pages(last_id, result)
        except _PollFailed as failed:
            failed.result.bytes_read += result.bytes_read
            failed.result.fetch_seconds = result.fetch_seconds
            return failed.result
        problems = [p for page in pages for p in page.problems]
        for problem in problems[:5]:
            log.info("source %s: %s", self.source_id, problem)

        messages: dict[int, WebMessage] = {}
        service: set[int] = set()
        for page in reversed(pages):  # oldest page first, so the newest sighting wins
            messages.update((m.message_id, m) for m in page.messages)
            service.update(page.service_ids)
        new_last = max([last_id or 0, *messages, *service]) or None

        for msg_id in sorted(messages):
            msg = messages[msg_id]
            fp = fingerprint(msg)
            is_new = last_id is None or msg_id > last_id
            previous = seen.get(str(msg_id))
            seen[str(msg_id)] = fp
            if not is_new and (previous is None or previous == fp):
                continue
            if not msg.text:
                if is_new:
                    result.skipped += 1  # media-only post: nothing to read
                continue
            try:
                result.records.append(self._record(msg, now, edit=not is_new))
            except RecordError as exc:
                result.skipped += 1
                log.warning("source %s: post %d refused: %s", self.source_id, msg_id, exc)
        if last_id is not None:
            result.skipped += sum(1 for i in service if i > last_id)
        else:
            result.skipped += len(service)
        result.skipped += sum(page.unparsed for page in pages)

        keep = sorted((int(k) for k in seen), reverse=True)[:SEEN_WINDOW]
        result.cursor = {"last_id": new_last, "seen": {str(k): seen[str(k)] for k in keep}}
        return result

    async def _read_pages(self, last_id: int | None, result: PollResult) -> list[ChannelPage]:
        page = await self._page(None, result)
        if not page.has_history:
            raise _PollFailed(
                PollResult(
                    outcome="parse_error", status=result.status,
                    error=f"no message history on {self.page_url()} (no such public channel, or its preview is off)",
                )
            )
        pages = [page]
        depth = self.source.backfill_pages
        while page.before is not None and len(pages) <= depth:
            ids = [i for p in pages for i in p.ids]
            oldest = min(ids) if ids else None
            if last_id is not None and oldest is not None and oldest <= last_id + 1:
                break
            page = await self._page(page.before, result)
            pages.append(page)
        ids = [i for p in pages for i in p.ids]
        if last_id is not None and ids and min(ids) > last_id + 1 and page.before is not None:
            log.warning(
                "source %s: %d message ids between %d and %d are deeper than backfill_pages=%d and are not read",
                self.source_id, min(ids) - last_id - 1, last_id, min(ids), depth,
            )
        return pages

    async def _page(self, before: int | None, result: PollResult) -> ChannelPage:
        url = self.page_url(before)
        await self.pacer.wait()
        try:
            resp = await self.http.fetch(url, accept=ACCEPT_HTML)
        except FetchError as exc:
            raise _PollFailed(PollResult(outcome=exc.outcome, status=exc.status, error=f"{url}: {exc.message}")) from None
        result.status = resp.status
        result.bytes_read += len(resp.body)
        # The network part only (pacer waits excluded), for the fetch-duration metric.
        result.fetch_seconds = (result.fetch_seconds or 0.0) + resp.elapsed
        if resp.status in (429, 503):
            raise _PollFailed(self._rate_limited(url, resp))
        if not resp.ok:
            raise _PollFailed(PollResult(outcome="http_error", status=resp.status, error=f"{url}: HTTP {resp.status}"))
        return parse_page(resp.body)

    def _rate_limited(self, url: str, resp: Response) -> PollResult:
        wait = parse_retry_after(resp.headers.get("retry-after"))
        wait = DEFAULT_RATE_LIMIT_WAIT if wait is None else wait
        self.pacer.pause(wait)
        return PollResult(
            outcome="rate_limited", status=resp.status, error=f"{url}: HTTP {resp.status}, waiting {wait:g}s",
            rate_limited_for=wait, next_poll_in=wait,
        )

    def _record(self, msg: WebMessage, now: datetime, *, edit: bool):
        flags = []
        published_at = msg.published_at
        if published_at is None:
            published_at, flags = now, ["date_missing"]
        if edit:
            flags.append("edit_time_is_fetch_time")
        elif msg.edited:
            flags.append("edited_before_fetch")
        return build_record(
            source_id=self.source_id,
            channel=msg.channel,
            message_id=msg.message_id,
            text=msg.text,
            published_at=published_at,
            fetched_at=now,
            author=msg.author,
            edited_at=now if edit else None,
            forwarded_from=msg.forwarded_from,
            views=msg.views,
            html=msg.html,
            lang_hint=self.source.lang,
            flags=flags,
            reply_to=msg.reply_to,
        )

    async def close(self) -> None:
        """The HTTP client is shared and closed by its owner."""
