"""Alert delivery besides ``news.alerts``: the sinks (a signed JSON webhook, the Alertmanager
v2 API, a JSONL file), :class:`Dispatcher`, which delivers a batch of alerts to all of them
concurrently, :class:`DeliverAlerts`, the Beam step around it, and :func:`check_sinks`, the
launch check. ``news.alerts`` itself is written by the pipeline's Kafka sink; the alerts are
raised by :mod:`transforms.raise_alerts`.

Guarantees, per sink and alert:

* At least once, idempotent by ``alert_id``: a retry sends the same id (and the same body),
  so a receiver that remembers ids drops repeats; Alertmanager merges alerts with equal
  labels, and ``alert_id`` is one of the labels; the file sink skips ids it has written.
* Retried on network errors, timeouts, 408, 429 and 5xx, with exponential backoff
  (honouring Retry-After, capped) for at most ``max_attempts`` tries and at most
  ``deadline`` seconds per batch; other 4xx and redirects are not retried. Every attempt
  is counted in ``newsradar_alert_sink_deliveries{sink, outcome}``.
* A sink that failed :data:`BREAKER_THRESHOLD` deliveries in a row is skipped for
  :data:`BREAKER_COOLDOWN` seconds (outcome ``circuit_open``): a dead receiver costs the
  pipeline nothing while it is down. Undelivered alerts are returned as
  :class:`Failure` s; the caller turns them into dead letters, so nothing is lost.
* Internal addresses are refused after DNS (:mod:`newsradar.netguard`) unless the sink
  says ``allow_private_networks: true``; redirects are never followed.
* :class:`DeliverAlerts` never fails for a sink: each delivery that failed after its
  retries comes out as a DeadLetter (step ``alerts.<sink>``) for ``news.dlq``.
* A sink that cannot work as configured (e.g. its secret is not in the environment) stops
  the launch (:func:`check_sinks`), never a running pipeline.

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
import logging
import os
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiohttp
import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.windowed_value import WindowedValue

from newsradar import paths
from newsradar.config import ConfigError
from newsradar.config.watchlist import AlertmanagerSink, FileSink, WebhookSink
from newsradar.httpclient import guarded_session, parse_retry_after
from newsradar.metrics import pipeline_metrics
from newsradar.netguard import AddressPolicy, ForbiddenAddress
from newsradar.records import Alert, DeadLetter, parse_time

from .reload import WatchlistSource

log = logging.getLogger(__name__)

SINK_KINDS = ("webhook", "alertmanager", "file")
OUTCOMES = ("ok", "retried", "failed", "circuit_open")

SIGNATURE_HEADER = "X-Newsradar-Signature"
TIMESTAMP_HEADER = "X-Newsradar-Timestamp"
ID_HEADER = "X-Newsradar-Alert-Id"
USER_AGENT = "newsradar-alerts/1"

BREAKER_THRESHOLD = 5
BREAKER_COOLDOWN = 60.0
# Every batch is done (delivered or given up) within this many seconds.
DEFAULT_DEADLINE = 30.0
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
# Alertmanager resolves a news alert after this long unless it is sent again.
ALERTMANAGER_RESOLVE_AFTER = timedelta(hours=24)
# Ids the file sink remembers, to skip repeats from retried bundles.
FILE_SEEN_IDS = 100_000
_RESPONSE_READ_CAP = 64 * 1024


class SinkConfigError(ValueError):
    """A sink that cannot work as configured (e.g. its secret is not in the environment)."""


@dataclass(frozen=True, slots=True)
class Failure:
    alert: Alert
    sink: str
    error: str


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class _Permanent(Exception):
    pass


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
        raise _Retryable(f"HTTP {status}", parse_retry_after(retry_after))
    if 300 <= status < 400:
        raise _Permanent(f"HTTP {status}: redirects are not followed for alert sinks")
    raise _Permanent(f"HTTP {status}")


class _HttpSink:
    kind = "http"

    def __init__(self, url: str, timeout: float, max_attempts: int, allow_private: bool):
        self.url = url
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.policy = AddressPolicy(allow_private_networks=allow_private)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = guarded_session(self.policy, user_agent=USER_AGENT, pool_size=8)
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
            raise _Permanent(str(exc)) from None
        except aiohttp.ClientConnectorError as exc:
            # aiohttp wraps the resolver's refusal; it is permanent, not a network blip.
            if isinstance(exc.os_error, ForbiddenAddress):
                raise _Permanent(str(exc.os_error)) from None
            raise _Retryable(f"cannot connect: {exc}") from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class Webhook(_HttpSink):
    """POST each alert as JSON, signed, one request per alert."""

    kind = "webhook"
    batched = False

    def __init__(self, cfg: WebhookSink, allow_private: bool = False, clock: Callable[[], float] = time.time):
        super().__init__(cfg.url, cfg.timeout, cfg.max_attempts, allow_private or cfg.allow_private_networks)
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
        super().__init__(cfg.url, cfg.timeout, cfg.max_attempts, allow_private or cfg.allow_private_networks)
        self.endpoint = cfg.url.rstrip("/") + "/api/v2/alerts"

    async def send(self, alerts: Sequence[Alert]) -> None:
        body = json.dumps(alertmanager_payload(alerts), ensure_ascii=False).encode()
        await self._post(self.endpoint, body, {"Content-Type": "application/json"})


class JsonlFile:
    """Append each alert as one JSON line; skips ids this process has already written."""

    kind = "file"
    batched = True
    max_attempts = 3

    def __init__(self, cfg: FileSink):
        path = Path(cfg.path).expanduser()
        self.path = path if path.is_absolute() else paths.home() / path
        self._seen: OrderedDict[str, None] = OrderedDict()

    async def send(self, alerts: Sequence[Alert]) -> None:
        fresh = [a for a in alerts if a.alert_id not in self._seen]
        if not fresh:
            return
        data = b"".join(a.encode() + b"\n" for a in fresh)
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
            raise _Retryable(f"cannot write {self.path}: {exc.strerror or exc}") from None
        for a in fresh:
            self._seen[a.alert_id] = None
        while len(self._seen) > FILE_SEEN_IDS:
            self._seen.popitem(last=False)

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


class _Breaker:
    def __init__(self) -> None:
        self.failures = 0
        self.open_until = 0.0


class Dispatcher:
    """Delivers batches of alerts to every sink (see module docstring for guarantees).

    Owns an event loop of its own, so it can be used from plain (non-async) code such as a
    Beam DoFn; ``sleep`` and ``clock`` are injectable for tests.
    """

    def __init__(self, sinks, metrics=None, deadline: float = DEFAULT_DEADLINE,
                 clock: Callable[[], float] = time.monotonic, sleep=asyncio.sleep, jitter: bool = True):
        self.sinks = list(sinks)
        self._metrics = metrics
        self.deadline = deadline
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._breakers = {id(s): _Breaker() for s in self.sinks}
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_config(cls, sink_configs, metrics=None, allow_private_networks: bool = False, **kwargs) -> Dispatcher:
        """Raises SinkConfigError for a sink that cannot work (checked at pipeline launch)."""
        return cls([build_sink(c, allow_private_networks) for c in sink_configs], metrics=metrics, **kwargs)

    def _count(self, sink: str, outcome: str, n: int = 1) -> None:
        if self._metrics is not None and n:
            self._metrics.sink_deliveries.labels(sink=sink, outcome=outcome).inc(n)

    def deliver(self, alerts: Sequence[Alert]) -> list[Failure]:
        """Deliver to every sink; returns the (alert, sink) pairs that could not be delivered."""
        if not alerts or not self.sinks:
            return []
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(self.deliver_async(alerts))

    async def deliver_async(self, alerts: Sequence[Alert]) -> list[Failure]:
        stop_at = self._clock() + self.deadline
        jobs = []
        for sink in self.sinks:
            batches = [list(alerts)] if sink.batched else [[a] for a in alerts]
            jobs.extend(self._deliver(sink, batch, stop_at) for batch in batches)
        results = await asyncio.gather(*jobs)
        return [f for failures in results for f in failures]

    async def _deliver(self, sink, batch: list[Alert], stop_at: float) -> list[Failure]:
        breaker = self._breakers[id(sink)]
        if breaker.open_until > self._clock():
            self._count(sink.kind, "circuit_open", len(batch))
            return [Failure(a, sink.kind, "circuit open: the sink failed repeatedly, not tried") for a in batch]
        error = ""
        for attempt in range(1, sink.max_attempts + 1):
            try:
                await sink.send(batch)
            except _Permanent as exc:
                error = str(exc)
                break
            except _Retryable as exc:
                error = str(exc)
                delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
                if exc.retry_after is not None:
                    delay = min(BACKOFF_CAP, max(delay, exc.retry_after))
                if self._jitter:
                    delay *= random.uniform(0.8, 1.2)
                if attempt == sink.max_attempts or self._clock() + delay > stop_at:
                    break
                self._count(sink.kind, "retried", len(batch))
                await self._sleep(delay)
                continue
            breaker.failures = 0
            self._count(sink.kind, "ok", len(batch))
            return []
        breaker.failures += 1
        if breaker.failures >= BREAKER_THRESHOLD:
            breaker.open_until = self._clock() + BREAKER_COOLDOWN
            log.error("alert sink %s failed %d times in a row; skipping it for %.0fs", sink.kind,
                      breaker.failures, BREAKER_COOLDOWN)
        self._count(sink.kind, "failed", len(batch))
        log.warning("alert sink %s: %d alert(s) not delivered: %s", sink.kind, len(batch), error)
        return [Failure(a, sink.kind, error) for a in batch]

    def close(self) -> None:
        if self._loop is None or self._loop.is_closed():
            return
        self._loop.run_until_complete(self._close_sinks())
        self._loop.close()

    async def _close_sinks(self) -> None:
        await asyncio.gather(*(s.close() for s in self.sinks))


# ---------------------------------------------------------------------------
# Beam


class _DeliverFn(beam.DoFn):
    """Collects a bundle's alerts and delivers them concurrently in finish_bundle, so a slow
    sink costs a bundle at most the dispatcher's deadline, once, never per alert."""

    def __init__(self, sinks, allow_private_networks: bool):
        self._sinks = sinks
        self._allow_private = allow_private_networks

    def setup(self) -> None:
        self._dispatcher = Dispatcher.from_config(
            self._sinks, metrics=pipeline_metrics(), allow_private_networks=self._allow_private
        )
        self._failed = Metrics.counter("alerts", "sink_deliveries_failed")
        self._dlq = pipeline_metrics().dlq

    def start_bundle(self) -> None:
        self._pending: list[tuple[Alert, object, object]] = []

    def process(self, alert: Alert, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam):
        self._pending.append((alert, timestamp, window))

    def finish_bundle(self):
        pending, self._pending = self._pending, []
        if not pending:
            return
        where = {a.alert_id: (t, w) for a, t, w in pending}
        for failure in self._dispatcher.deliver([a for a, _t, _w in pending]):
            self._failed.inc()
            step = f"alerts.{failure.sink}"  # bounded: one label value per sink kind
            self._dlq.labels(step).inc()
            timestamp, window = where[failure.alert.alert_id]
            letter = DeadLetter.wrap(failure.alert.encode(), error=failure.error, step=step)
            yield WindowedValue(letter, timestamp, [window])

    def teardown(self) -> None:
        dispatcher = getattr(self, "_dispatcher", None)
        if dispatcher is not None:
            dispatcher.close()


def check_sinks(source: WatchlistSource) -> None:
    """At launch: every configured sink can be built (e.g. its secret is in the
    environment); raises ConfigError naming the file and the sink otherwise."""
    for i, sink in enumerate(source.initial.alerts.sinks):
        try:
            build_sink(sink)
        except SinkConfigError as exc:
            raise ConfigError(source.path or "<watchlist>", f"alerts.sinks[{i}]", str(exc)) from None


class DeliverAlerts(beam.PTransform):
    """Alert -> the watchlist's sinks (webhook, Alertmanager, file). Never fails for a sink;
    its output is a DeadLetter (step ``alerts.<sink>``, counted in
    ``newsradar_dlq_records_total``) per delivery that failed after its retries, for
    ``news.dlq``. Apply it beside, not before, the write to ``news.alerts``.

    Sinks are taken from the watchlist at launch (a reload does not change them: a sink
    holds connections and secrets, which belong to a deployment, not an edit)."""

    def __init__(self, sinks, allow_private_networks: bool = False, label: str | None = None):
        super().__init__(label)
        self._sinks = tuple(sinks)
        self._allow_private = allow_private_networks

    def expand(self, alerts):
        return alerts | "DeliverToSinks" >> beam.ParDo(_DeliverFn(self._sinks, self._allow_private))
