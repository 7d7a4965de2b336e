"""Optional Bot API webhook receiver: Telegram POSTs each update to us instead of being polled.

:class:`WebhookReceiver` checks and maps requests and hands records to a ``deliver``
callable; :class:`WebhookPoller` runs it as a source of the one delivery loop (a bot source
with ``webhook:`` in sources.yaml), answering each request only once the loop has delivered.

Guarantees:

* A request is accepted only with the exact ``X-Telegram-Bot-Api-Secret-Token`` header set
  when the webhook was registered (``setWebhook(secret_token=...)``); the comparison is
  constant-time. Anything else gets 401 and is counted, and its body is not read.
* The answer is 200 only after ``deliver`` returned, i.e. after Kafka acknowledged the
  record; if delivery fails the answer is 503 and Telegram sends the update again (at least
  once, like the polling mode). Updates that carry no post (or another channel's) are
  answered 200 and counted, so Telegram does not retry them forever.
* Bodies above ``max_body`` are refused with 413 before they are parsed.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime

from aiohttp import web

from connectors.base import PollResult
from newsradar.records import RawArticle, utc_now

from .botapi import map_update

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# What Telegram allows in a secret token (setWebhook): 1-256 characters A-Z, a-z, 0-9, _ and -.
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
MAX_BODY = 1024 * 1024

Deliver = Callable[[list[RawArticle]], Awaitable[None]]


class DeliveryFailed(Exception):
    """Raised by a ``deliver`` callable when Kafka did not acknowledge the records.

    Any other exception from ``deliver`` also ends in a non-2xx answer (aiohttp's 500), so
    Telegram retries either way; this one is expected and answered 503 with a log line."""


class WebhookReceiver:
    def __init__(
        self,
        *,
        secret: str,
        deliver: Deliver,
        source_id: str,
        channels: frozenset[str] = frozenset(),
        path: str = "/telegram/webhook",
        lang_hint: str | None = None,
        max_body: int = MAX_BODY,
        clock: Callable[[], datetime] = utc_now,
    ):
        if not _SECRET.match(secret or ""):
            raise ValueError("webhook secret must be 1-256 characters of A-Z, a-z, 0-9, '_' or '-'")
        self._secret = secret.encode("ascii")
        self.deliver = deliver
        self.source_id = source_id
        self.channels = frozenset(c.lower() for c in channels)
        self.path = path
        self.lang_hint = lang_hint
        self.max_body = max_body
        self.clock = clock
        # accepted | rejected | skipped | failed | bad_request
        self.counts: Counter[str] = Counter()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body)
        app.router.add_post(self.path, self.handle)
        return app

    def authorized(self, request: web.Request) -> bool:
        given = request.headers.get(SECRET_HEADER)
        if given is None:
            return False
        # compare_digest on bytes: constant time for equal lengths, no early exit on content.
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self._secret)

    async def handle(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            self.counts["rejected"] += 1
            return web.Response(status=401, text="unauthorized\n")
        if request.content_length is not None and request.content_length > self.max_body:
            self.counts["bad_request"] += 1
            return web.Response(status=413, text="too large\n")
        try:
            update = json.loads(await request.read())
        except web.HTTPRequestEntityTooLarge:
            self.counts["bad_request"] += 1
            return web.Response(status=413, text="too large\n")
        except (UnicodeDecodeError, json.JSONDecodeError):
            self.counts["bad_request"] += 1
            return web.Response(status=400, text="not JSON\n")
        mapped = map_update(
            update, source_id=self.source_id, fetched_at=self.clock(), channels=self.channels, lang_hint=self.lang_hint
        )
        if mapped.record is None:
            self.counts["skipped"] += 1
            if mapped.skip == "malformed":
                log.warning("source %s: webhook update skipped: %s", self.source_id, mapped.detail)
            return web.Response(status=200, text="skipped\n")
        try:
            await self.deliver([mapped.record])
        except (DeliveryFailed, TimeoutError, OSError) as exc:
            self.counts["failed"] += 1
            log.error("source %s: webhook update %s not delivered, Telegram will retry: %s",
                      self.source_id, mapped.update_id, exc)
            return web.Response(status=503, text="retry later\n")
        self.counts["accepted"] += 1
        return web.Response(status=200, text="ok\n")


async def serve(receiver: WebhookReceiver, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, int]:
    """Start the receiver; returns the runner (``await runner.cleanup()`` to stop) and the port."""
    runner = web.AppRunner(receiver.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses
    return runner, bound[0][1] if bound else port


# How long a webhook request waits for its delivery before it is answered 503 (Telegram
# retries); well under Telegram's own request timeout.
ANSWER_TIMEOUT = 50.0


class WebhookPoller:
    """A bot source fed by webhook requests, run by the delivery loop like any poller.

    Each poll waits (up to the source's ``long_poll``) for requests, returns their records and
    a new cursor ``{"batch": n}``. The loop saves that cursor only after Kafka acknowledged the
    records, so at the next poll the cursor it passes in tells whether the batch was delivered:
    the waiting requests are then answered 200, otherwise 503 (Telegram sends them again).
    """

    def __init__(self, source, secret: str, *, answer_timeout: float = ANSWER_TIMEOUT):
        self.source = source
        self.source_id = source.id
        self.settings = source.webhook
        self.answer_timeout = answer_timeout
        self.receiver = WebhookReceiver(
            secret=secret, deliver=self._enqueue, source_id=source.id, channels=frozenset(source.channels),
            path=self.settings.path, lang_hint=source.lang,
        )
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._queue: list[tuple[RawArticle, asyncio.Future]] = []
        self._arrived: asyncio.Event | None = None
        self._waiting: list[asyncio.Future] = []
        self._handed: dict | None = None
        self._batch = 0

    @classmethod
    def from_env(cls, source) -> WebhookPoller:
        secret = os.environ.get(source.webhook.secret_env, "").strip()
        return cls(source, secret)

    async def start(self) -> int:
        if self._runner is None:
            self._arrived = asyncio.Event()
            self._runner, self.port = await serve(self.receiver, self.settings.listen, self.settings.port)
            log.info("source %s: webhook listening on http://%s:%d%s", self.source_id, self.settings.listen,
                     self.port, self.settings.path)
        return self.port

    async def _enqueue(self, records: list[RawArticle]) -> None:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in records]
        self._queue.extend(zip(records, futures, strict=True))
        self._arrived.set()
        try:
            done = await asyncio.wait_for(asyncio.gather(*futures), self.answer_timeout)
        except TimeoutError:
            raise DeliveryFailed(f"not delivered within {self.answer_timeout:g}s") from None
        if not all(done):
            raise DeliveryFailed("Kafka did not acknowledge the record")

    async def poll(self, cursor: dict | None, now: datetime) -> PollResult:
        try:
            await self.start()
        except OSError as exc:
            return PollResult(outcome="network_error", error=f"webhook listener {self.settings.listen}:"
                                                             f"{self.settings.port}: {exc.strerror or exc}")
        self._settle(delivered=self._handed is not None and cursor == self._handed)
        if isinstance(cursor, dict) and isinstance(cursor.get("batch"), int):
            self._batch = max(self._batch, cursor["batch"])
        if not self._queue:
            # Like getUpdates long polling: hold the poll until a request arrives or time is up.
            self._arrived.clear()
            arrival = asyncio.ensure_future(self._arrived.wait())
            await asyncio.wait({arrival}, timeout=self.source.long_poll)
            arrival.cancel()
        taken, self._queue = self._queue, []
        self._waiting = [f for _, f in taken]
        if not taken:
            self._handed = None
            return PollResult(next_poll_in=0.0)
        self._batch += 1
        self._handed = {"batch": self._batch}
        return PollResult(records=[r for r, _ in taken], cursor=dict(self._handed), next_poll_in=0.0)

    def _settle(self, delivered: bool) -> None:
        # On shutdown the loop does not tell us whether the last batch was saved: its requests
        # are answered 503, Telegram re-sends them and the loop drops them as repeats.
        for future in self._waiting:
            if not future.done():
                future.set_result(delivered)
        self._waiting = []
        self._handed = None

    async def close(self) -> None:
        self._settle(delivered=False)
        for _, future in self._queue:
            if not future.done():
                future.set_result(False)
        self._queue = []
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
