"""The alert sinks: a signed JSON webhook, the Alertmanager v2 API, a JSONL file. Plain
asyncio code without Beam; ``newsradar deliver`` (:mod:`newsradar.delivery.service`) runs them.
What they send is a :class:`~newsradar.delivery.notification.Notification`: the alerts of
one story, grouped.

A sink does one thing: ``await sink.send(notifications)`` delivers once or raises. It never
retries itself; the service decides when to try again. Guarantees of each send:

* Raises :class:`Retryable` for network errors, timeouts, 408, 429 and 5xx (with the
  server's Retry-After, capped, when it gave one) and :class:`Permanent` for other 4xx,
  redirects (never followed) and refused addresses.
* Idempotent by ``notification_id``: a repeat sends the same id (and the same body), so a
  receiver that remembers ids drops it. Alertmanager: one alert per story, whose labels are
  the same for every update (``notification`` is the id of the story's first notification), so
  an update replaces its annotations. The file sink, given the ledger as its journal, never
  writes a notification's line twice, across restarts too.
* Internal addresses are refused after DNS (:mod:`newsradar.netguard`) unless the sink
  says ``allow_private_networks: true``.
* A sink that cannot work as configured (e.g. its secret is not in the environment) raises
  :class:`SinkConfigError` when it is built: :func:`check_sinks` stops the launch.

Webhook signature: header ``X-Newsradar-Signature: sha256=<hex>``, the HMAC-SHA256 with the
secret from the environment variable named by ``secret_env`` over
``<notification_id>.<timestamp>.<body>``; the notification id and timestamp travel in
``X-Newsradar-Notification-Id`` and ``X-Newsradar-Timestamp``. :func:`verify_signature` is
the receiver's side.
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
from newsradar.records import parse_time

from .notification import Notification

SIGNATURE_HEADER = "X-Newsradar-Signature"
TIMESTAMP_HEADER = "X-Newsradar-Timestamp"
ID_HEADER = "X-Newsradar-Notification-Id"
USER_AGENT = "newsradar-alerts/1"
# The alertname of news in Alertmanager (deploy/alertmanager/alertmanager.yml routes on it).
NEWS_ALERTNAME = "NewsradarNews"

# Alertmanager resolves a news alert after this long unless it is sent again.
ALERTMANAGER_RESOLVE_AFTER = timedelta(hours=24)
# Ids the file sink remembers, to skip repeats within one process.
FILE_SEEN_IDS = 100_000
# A line the file sink looks for at its recorded offset is at most this long.
FILE_LINE_CAP = 4 * 1024 * 1024
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


def sign(secret: bytes, ident: str, timestamp: int, body: bytes) -> str:
    """The ``X-Newsradar-Signature`` value for a body sent under id ``ident``."""
    mac = hmac.new(secret, f"{ident}.{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: bytes, headers, body: bytes, now: float | None = None, tolerance: float = 300.0) -> bool:
    """A receiver's check: the signature matches and the timestamp is within ``tolerance``."""
    try:
        ident = headers[ID_HEADER]
        timestamp = int(headers[TIMESTAMP_HEADER])
        given = headers[SIGNATURE_HEADER]
    except (KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(given, sign(secret, ident, timestamp, body))


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


def webhook_body(n: Notification) -> bytes:
    """The webhook's JSON: the whole notification for update 1, the short follow-up (what the
    update adds, and ``follows``) for the others."""
    data = n.to_dict() if n.update == 1 else n.follow_up()
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


class Webhook(_HttpSink):
    """POST each notification as JSON, signed, one request per notification."""

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

    async def send(self, notifications: Sequence[Notification]) -> None:
        (n,) = notifications
        body = webhook_body(n)
        timestamp = int(self._clock())
        ident = n.notification_id
        headers = {"Content-Type": "application/json", ID_HEADER: ident, TIMESTAMP_HEADER: str(timestamp),
                   "Idempotency-Key": ident}
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.secret, ident, timestamp, body)
        await self._post(self.url, body, headers)


def alertmanager_payload(notifications: Sequence[Notification]) -> list[dict]:
    """The Alertmanager v2 ``postableAlerts`` body: one alert per story. Its labels are the
    same for every update of the story, so Alertmanager replaces the annotations of the alert
    it has (the whole story so far) instead of adding one."""
    out = []
    for n in notifications:
        starts = parse_time(n.created_at)
        item = {
            "labels": {"alertname": NEWS_ALERTNAME, "notification": n.first_id},
            "annotations": {
                "summary": " ".join(n.why), "title": n.title, "snippet": n.snippet, "url": n.url,
                "severity": n.severity, "kinds": ",".join(n.kinds), "organizations": ",".join(n.organizations),
                "topics": ",".join(n.topics), "article_id": n.article_id, "story_id": n.story_id,
                "notification_id": n.notification_id, "update": str(n.update),
            },
            "startsAt": n.created_at,
            "endsAt": (starts + ALERTMANAGER_RESOLVE_AFTER).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if n.url.startswith(("http://", "https://")):
            item["generatorURL"] = n.url
        out.append(item)
    return out


class Alertmanager(_HttpSink):
    """POST /api/v2/alerts with the whole batch of notifications in one request."""

    kind = "alertmanager"
    batched = True

    def __init__(self, cfg: AlertmanagerSink, allow_private: bool = False):
        super().__init__(cfg.url, cfg.timeout, cfg.concurrency, cfg.rate_limit,
                         allow_private or cfg.allow_private_networks)
        self.endpoint = cfg.url.rstrip("/") + "/api/v2/alerts"

    async def send(self, notifications: Sequence[Notification]) -> None:
        body = json.dumps(alertmanager_payload(notifications), ensure_ascii=False).encode()
        await self._post(self.endpoint, body, {"Content-Type": "application/json"})


class JsonlFile:
    """Append each notification as one JSON line (:meth:`Notification.to_dict`).

    With a ``journal`` (the service's ledger), exactly once across restarts: the offset of each
    line is written to the journal before the line, and a notification sent again whose line is
    found at its recorded offset is not written again. Without one, repeats are skipped within
    this process only."""

    kind = "file"
    batched = True
    # One writer: lines are appended in order, and an fsync per batch is the cost.
    concurrency = 1
    rate_limit = None

    def __init__(self, cfg: FileSink, journal=None):
        path = Path(cfg.path).expanduser()
        self.path = path if path.is_absolute() else paths.home() / path
        self.key = f"{self.kind} {self.path}"
        self.journal = journal
        self._seen: OrderedDict[str, None] = OrderedDict()

    async def send(self, notifications: Sequence[Notification]) -> None:
        fresh = list({n.notification_id: n for n in notifications if n.notification_id not in self._seen}.values())
        if not fresh:
            return
        # The write and its fsync off the event loop: the other sinks keep going meanwhile.
        await asyncio.to_thread(self._append, fresh)
        for n in fresh:
            self._seen[n.notification_id] = None
        while len(self._seen) > FILE_SEEN_IDS:
            self._seen.popitem(last=False)

    def _written(self, fh, notification_id: str) -> bool:
        """Whether the journal says this notification's line was started, and it is in the file."""
        if self.journal is None:
            return False
        offset = self.journal.intended_offset(str(self.path), notification_id)
        if offset is None:
            return False
        fh.seek(offset)
        line = fh.readline(FILE_LINE_CAP)
        try:
            return line.endswith(b"\n") and json.loads(line).get("notification_id") == notification_id
        except ValueError:
            return False  # a line cut by a kill (or overwritten by hand): write it again

    def _append(self, notifications: list[Notification]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+b") as fh:
                # Several workers may share the file: one writer at a time, whole lines.
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    todo = [n for n in notifications if not self._written(fh, n.notification_id)]
                    if not todo:
                        return
                    end = fh.seek(0, os.SEEK_END)
                    lines, offsets = [], []
                    if end and (fh.seek(end - 1), fh.read(1))[1] != b"\n":
                        lines.append(b"\n")  # end a line a kill cut short: the next one starts whole
                    for n in todo:
                        offsets.append((n.notification_id, end + sum(len(x) for x in lines)))
                        lines.append(n.encode() + b"\n")
                    if self.journal is not None:
                        self.journal.intend_write(str(self.path), offsets)
                    fh.write(b"".join(lines))
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


