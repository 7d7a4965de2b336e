"""Telegram sources for ``newsradar connect``: public channel previews (``mode: web``), the Bot
API (``bot``), Telegram Desktop exports (``export``) and, optionally, MTProto (``mtproto``).

:func:`make_poller` is the factory the connect command calls for every ``kind: telegram``
entry (contract in :mod:`connectors.base`). Every mode maps posts through
:mod:`connectors.telegram.mapping`, so one post has one ``article_id`` whichever way it came.

Sources of one process that talk to the same Telegram service share one
:class:`~connectors.telegram.throttle.RequestPacer` (``telegram.web_request_gap`` /
``bot_request_gap`` in sources.yaml), so adding channels never multiplies the request rate
t.me sees.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from urllib.parse import urlsplit

from connectors.base import PollResult
from newsradar import paths

from .throttle import RequestPacer

log = logging.getLogger(__name__)

# (id of the HttpClient, service) -> (client kept alive, pacer). One connect process has one
# client; tests that build several get separate pacers.
_PACERS: dict[tuple[int, str], tuple[object, RequestPacer]] = {}


def shared_pacer(http, service: str, gap: float) -> RequestPacer:
    key = (id(http), service)
    if key not in _PACERS:
        _PACERS[key] = (http, RequestPacer(gap))
    return _PACERS[key][1]


class UnavailablePoller:
    """A configured source that cannot run here (no credentials, Telethon missing).

    Every poll fails with ``outcome="unavailable"`` and the reason, so it is counted and
    backed off like any failing source while the other sources run."""

    def __init__(self, source, reason: str):
        self.source_id = source.id
        self.reason = reason

    async def poll(self, cursor: dict | None, now: datetime) -> PollResult:
        return PollResult(outcome="unavailable", error=self.reason)

    async def close(self) -> None:
        return None


def make_poller(source, *, sources, http):
    """The poller for one validated Telegram source (``sources``: the whole Sources config,
    ``http``: the process's shared HttpClient)."""
    settings = sources.telegram
    if source.mode == "web":
        from .web import WebPoller

        poller = WebPoller(source, http, shared_pacer(http, "web", settings.web_request_gap))
        poller.host = urlsplit(source.base_url).hostname
        return poller
    if source.mode == "bot" and source.webhook is not None:
        from .webhook import WebhookPoller

        try:
            return WebhookPoller.from_env(source)
        except ValueError as exc:
            return _unavailable(source, f"webhook secret ${source.webhook.secret_env}: {exc}")
    if source.mode == "bot":
        from .bot import BotPoller

        token = os.environ.get(source.token_env, "").strip()
        if not token:
            return _unavailable(source, f"bot token missing: set ${source.token_env}")
        # No per-host limit for the Bot API: each long poll holds its slot for up to long_poll
        # seconds by design; the shared pacer spaces the calls instead.
        return BotPoller(source, token, http, shared_pacer(http, "bot", settings.bot_request_gap))
    if source.mode == "export":
        from .export import ExportPoller

        return ExportPoller(source)
    if source.mode == "mtproto":
        from .mtproto import MtprotoPoller, MtprotoSetupError, credentials, telethon_client

        # Session files are credentials: kept beside, not inside, the connector state.
        session_dir = str(paths.home() / "telegram")
        try:
            creds = credentials(source)
        except MtprotoSetupError as exc:
            return _unavailable(source, str(exc))
        return MtprotoPoller(source, lambda: telethon_client(source, session_dir, creds))
    raise ValueError(f"unknown telegram mode {source.mode!r}")


def _unavailable(source, reason: str) -> UnavailablePoller:
    log.warning("source %s (telegram/%s) cannot run: %s", source.id, source.mode, reason)
    return UnavailablePoller(source, reason)


__all__ = ["UnavailablePoller", "make_poller", "shared_pacer"]
