"""Optional Bot API webhook receiver: Telegram POSTs each update to us instead of being polled.

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

import hmac
import json
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime

from aiohttp import web

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
