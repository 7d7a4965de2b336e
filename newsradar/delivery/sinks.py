"""The alert sinks: a signed JSON webhook, the Alertmanager v2 API, a JSONL file. Plain
asyncio code without Beam; ``newsradar deliver`` (:mod:`newsradar.delivery.service`) runs them.

A sink does one thing: ``await sink.send(alerts)`` delivers once or raises. It never retries
itself; the service decides when to try again. Guarantees of each send:

* Raises :class:`Retryable` for network errors, timeouts, 408, 429 and 5xx (with the
  server's Retry-After, capped, when it gave one) and :class:`Permanent` for other 4xx,
  redirects (never followed) and refused addresses.
* Idempotent by ``alert_id``: a repeat sends the same id (and the same body), so a receiver
  that remembers ids drops it; Alertmanager merges alerts with equal labels, and ``alert_id``
  is one of the labels; the file sink skips ids it has written in this process.
* Internal addresses are refused after DNS (:mod:`newsradar.netguard`) unless the sink
  says ``allow_private_networks: true``.
* A sink that cannot work as configured (e.g. its secret is not in the environment) raises
  :class:`SinkConfigError` when it is built: :func:`check_sinks` stops the launch.

Webhook signature: header ``X-Newsradar-Signature: sha256=<hex>``, the HMAC-SHA256 with the
secret from the environment variable named by ``secret_env`` over
``<alert_id>.<timestamp>.<body>``; the alert id and timestamp travel in
``X-Newsradar-Alert-Id`` and ``X-Newsradar-Timestamp``. :func:`verify_signature` is the
receiver's side.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import hmac
import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import aiohttp

from newsradar import paths
from newsradar.config import ConfigError, Watchlist
from newsradar.config.watchlist import AlertmanagerSink, FileSink, WebhookSink
from newsradar.httpclient import guarded_session, parse_retry_after
from newsradar.metrics import SINK_KINDS  # noqa: F401 - re-exported: the sink kinds are metric labels too
from newsradar.netguard import AddressPolicy, ForbiddenAddress
from newsradar.records import Alert, parse_time

SIGNATURE_HEADER = "X-Newsradar-Signature"
TIMESTAMP_HEADER = "X-Newsradar-Timestamp"
ID_HEADER = "X-Newsradar-Alert-Id"
USER_AGENT = "newsradar-alerts/1"

# Alertmanager resolves a news alert after this long unless it is sent again.
ALERTMANAGER_RESOLVE_AFTER = timedelta(hours=24)
# Ids the file sink remembers, to skip repeats within one process.
FILE_SEEN_IDS = 100_000
_RESPONSE_READ_CAP = 64 * 1024


class SinkConfigError(ValueError):
    """A sink that cannot work as configured (e.g. its secret is not in the environment)."""


class Retryable(Exception):
    """This send failed but a later one may succeed (``retry_after``: the server's wish, seconds)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Permanent(Exception):
    """Sending the same thing again cannot succeed (a 4xx, a refused address)."""


def sign(secret: bytes, alert_id: str, timestamp: int, body: bytes) -> str:
    """The ``X-Newsradar-Signature`` value for a body."""
    mac = hmac.new(secret, f"{alert_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: bytes, headers, body: bytes, now: float | None = None, tolerance: float = 300.0) -> bool:
    """A receiver's check: the signature matches and the timestamp is within ``tolerance``."""
    try:
        alert_id = headers[ID_HEADER]
        timestamp = int(headers[TIMESTAMP_HEADER])
        given = headers[SIGNATURE_HEADER]
    except (KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(given, sign(secret, alert_id, timestamp, body))


def _classify(status: int, retry_after: str | None) -> None:
    if 200 <= status < 300:
        return
    if status in (408, 429) or status >= 500:
        raise Retryable(f"HTTP {status}", parse_retry_after(retry_after))
    if 300 <= status < 400:
        raise Permanent(f"HTTP {status}: redirects are not followed for alert sinks")
    raise Permanent(f"HTTP {status}")


class _HttpSink:
    kind = "http"

    def __init__(self, url: str, timeout: float, concurrency: int, rate_limit: float | None, allow_private: bool):
        self.url = url
        self.key = f"{self.kind} {url}"
        self.timeout = timeout
        self.concurrency = concurrency
        self.rate_limit = rate_limit
        self.policy = AddressPolicy(allow_private_networks=allow_private)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = guarded_session(self.policy, user_agent=USER_AGENT, pool_size=self.concurrency)
        return self._session

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        try:
            self.policy.check_url(url)
            async with self.session().post(
                url, data=body, headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                await resp.content.read(_RESPONSE_READ_CAP)
                _classify(resp.status, resp.headers.get("Retry-After"))
        except ForbiddenAddress as exc:
            raise Permanent(str(exc)) from None
        except aiohttp.ClientConnectorError as exc:
            # aiohttp wraps the resolver's refusal; it is permanent, not a network blip.
            if isinstance(exc.os_error, ForbiddenAddress):
                raise Permanent(str(exc.os_error)) from None
            raise Retryable(f"cannot connect: {exc}") from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class Webhook(_HttpSink):
    """POST each alert as JSON, signed, one request per alert."""

    kind = "webhook"
    batched = False

    def __init__(self, cfg: WebhookSink, allow_private: bool = False, clock: Callable[[], float] = time.time):
        super().__init__(cfg.url, cfg.timeout, cfg.concurrency, cfg.rate_limit,
                         allow_private or cfg.allow_private_networks)
        self.secret: bytes | None = None
        if cfg.secret_env:
            value = os.environ.get(cfg.secret_env)
            if not value:
                raise SinkConfigError(
                    f"webhook sink {cfg.url}: environment variable {cfg.secret_env} (secret_env) is not set"
                )
            self.secret = value.encode()
        self._clock = clock

    async def send(self, alerts: Sequence[Alert]) -> None:
        (alert,) = alerts
        body = alert.encode()
        timestamp = int(self._clock())
        headers = {"Content-Type": "application/json", ID_HEADER: alert.alert_id, TIMESTAMP_HEADER: str(timestamp),
                   "Idempotency-Key": alert.alert_id}
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.secret, alert.alert_id, timestamp, body)
        await self._post(self.url, body, headers)


def alertmanager_payload(alerts: Sequence[Alert]) -> list[dict]:
    """The Alertmanager v2 ``postableAlerts`` body for news alerts."""
    out = []
    for a in alerts:
        labels = {"alertname": "NewsradarNews", "kind": a.kind, "severity": a.severity, "alert_id": a.alert_id}
        if a.org_id:
            labels["org_id"] = a.org_id
        if a.topic_id:
            labels["topic_id"] = a.topic_id
        starts = parse_time(a.created_at)
        item = {
            "labels": labels,
            "annotations": {
                "summary": a.why, "title": a.title, "snippet": a.snippet, "url": a.url,
                "article_id": a.article_id, "story_id": a.story_id,
            },
            "startsAt": a.created_at,
            "endsAt": (starts + ALERTMANAGER_RESOLVE_AFTER).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if a.url.startswith(("http://", "https://")):
            item["generatorURL"] = a.url
        out.append(item)
    return out


class Alertmanager(_HttpSink):
    """POST /api/v2/alerts with the whole batch in one request."""

    kind = "alertmanager"
    batched = True

    def __init__(self, cfg: AlertmanagerSink, allow_private: bool = False):
        super().__init__(cfg.url, cfg.timeout, cfg.concurrency, cfg.rate_limit,
                         allow_private or cfg.allow_private_networks)
        self.endpoint = cfg.url.rstrip("/") + "/api/v2/alerts"

    async def send(self, alerts: Sequence[Alert]) -> None:
        body = json.dumps(alertmanager_payload(alerts), ensure_ascii=False).encode()
        await self._post(self.endpoint, body, {"Content-Type": "application/json"})


class JsonlFile:
    """Append each alert as one JSON line; skips ids this process has already written."""

    kind = "file"
    batched = True
    # One writer: lines are appended in order, and an fsync per batch is the cost.
    concurrency = 1
    rate_limit = None

    def __init__(self, cfg: FileSink):
        path = Path(cfg.path).expanduser()
        self.path = path if path.is_absolute() else paths.home() / path
        self.key = f"{self.kind} {self.path}"
        self._seen: OrderedDict[str, None] = OrderedDict()

    async def send(self, alerts: Sequence[Alert]) -> None:
        fresh = [a for a in alerts if a.alert_id not in self._seen]
        if not fresh:
            return
        # The write and its fsync off the event loop: the other sinks keep going meanwhile.
        await asyncio.to_thread(self._append, b"".join(a.encode() + b"\n" for a in fresh))
        for a in fresh:
            self._seen[a.alert_id] = None
        while len(self._seen) > FILE_SEEN_IDS:
            self._seen.popitem(last=False)

    def _append(self, data: bytes) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as fh:
                # Several workers may share the file: one writer at a time, whole lines.
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
        except OSError as exc:
            raise Retryable(f"cannot write {self.path}: {exc.strerror or exc}") from None

    async def close(self) -> None:
        return None


def build_sink(cfg, allow_private_networks: bool = False):
    if isinstance(cfg, WebhookSink):
        return Webhook(cfg, allow_private_networks)
    if isinstance(cfg, AlertmanagerSink):
        return Alertmanager(cfg, allow_private_networks)
    if isinstance(cfg, FileSink):
        return JsonlFile(cfg)
    raise SinkConfigError(f"unknown sink {cfg!r}")


def build_sinks(watchlist: Watchlist, path: str | None, allow_private_networks: bool = False) -> list:
    """Every sink of the watchlist's ``alerts.sinks``, built; raises ConfigError naming the file
    and ``alerts.sinks[i]`` for one that cannot work (e.g. its secret is not in the environment)."""
    sinks = []
    for i, cfg in enumerate(watchlist.alerts.sinks):
        try:
            sinks.append(build_sink(cfg, allow_private_networks))
        except SinkConfigError as exc:
            raise ConfigError(path or "<watchlist>", f"alerts.sinks[{i}]", str(exc)) from None
    keys = [s.key for s in sinks]
    for i, key in enumerate(keys):
        if key in keys[:i]:
            raise ConfigError(path or "<watchlist>", f"alerts.sinks[{i}]",
                              f"the same sink as alerts.sinks[{keys.index(key)}] ({key})")
    return sinks


def check_sinks(watchlist: Watchlist, path: str | None) -> None:
    """At launch: every configured sink can be built (see :func:`build_sinks`)."""
    build_sinks(watchlist, path)


