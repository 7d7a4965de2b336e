"""The alert sinks: a signed JSON webhook, the Alertmanager v2 API, a JSONL file, a
Slack-compatible incoming webhook, a Telegram bot (:mod:`newsradar.delivery.telegram`), and
e-mail over SMTP (:mod:`newsradar.delivery.smtp`). Plain asyncio code without Beam; ``newsradar deliver``
(:mod:`newsradar.delivery.service`) runs them.
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
* Secrets (the webhook's HMAC key, a Slack webhook URL, a Telegram bot token, an SMTP
  password) come only from an environment variable or a file the watchlist names
  (:func:`read_secret`), and never appear in a log line, an error, a dead letter or the ledger: the sinks that carry one in
  their URL name themselves without it (``key``) and scrub it from every error.
* Routing: each sink has a :class:`~newsradar.config.watchlist.Route`; :func:`routed` says
  whether a notification goes to it.

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
from newsradar.config.loader import load_yaml
from newsradar.config.watchlist import (
    AlertmanagerSink,
    EmailSink,
    FileSink,
    Route,
    SlackSink,
    TelegramSink,
    WebhookSink,
)
from newsradar.config.watchlist import Digest as DigestConfig
from newsradar.httpclient import guarded_session, parse_retry_after
from newsradar.metrics import SINK_KINDS  # noqa: F401 - re-exported: the sink kinds are metric labels too
from newsradar.netguard import AddressPolicy, ForbiddenAddress
from newsradar.records import parse_time
from newsradar.vocab import SEVERITIES

from .digest import Digest, digest_bullets, digest_title
from .notification import Notification, Part

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
SECRET_FILE_CAP = 64 * 1024


class SinkConfigError(ValueError):
    """A sink that cannot work as configured (e.g. its secret is not in the environment);
    ``field`` is the sink's key at fault."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


def read_secret(cfg, env_field: str, file_field: str) -> str | None:
    """The secret a sink's config refers to (``env_field``: an environment variable's name,
    ``file_field``: a file, relative to $NEWSRADAR_HOME), or None when it names none. The
    value is never in an error."""
    env, file = getattr(cfg, env_field), getattr(cfg, file_field)
    if env is not None:
        value = os.environ.get(env, "").strip()
        if not value:
            raise SinkConfigError(f"environment variable {env} ({env_field}) is not set", env_field)
        return value
    if file is None:
        return None
    path = Path(file).expanduser()
    path = path if path.is_absolute() else paths.home() / path
    try:
        with open(path, "rb") as fh:
            data = fh.read(SECRET_FILE_CAP + 1)
    except OSError as exc:
        raise SinkConfigError(f"cannot read {path} ({file_field}): {exc.strerror or exc}", file_field) from None
    if len(data) > SECRET_FILE_CAP:
        raise SinkConfigError(f"{path} ({file_field}) is larger than {SECRET_FILE_CAP} bytes: not a secret",
                              file_field)
    try:
        value = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SinkConfigError(f"{path} ({file_field}) is not UTF-8 text", file_field) from None
    if not value:
        raise SinkConfigError(f"{path} ({file_field}) is empty", file_field)
    return value


def passes(route: Route, part: Part) -> bool:
    """Whether one alert passes every condition of the route."""
    if route.min_severity is not None and SEVERITIES.index(part.severity) < SEVERITIES.index(route.min_severity):
        return False
    if route.kinds and part.kind not in route.kinds:
        return False
    if route.organizations and part.org_id not in route.organizations:
        return False
    return not route.topics or part.topic_id in route.topics


def routed(route: Route, n: Notification) -> bool:
    """A notification goes to a sink when one of the alerts it adds passes the sink's route."""
    return any(passes(route, p) for p in n.alerts)


def full_form(route: Route, n: Notification, digest=None) -> bool:
    """Whether a channel without edits gets the whole notification rather than the short
    follow-up: for update 1, and for every update to a routed sink or one with a digest (it
    may not have had update 1, or had it only as a line of a digest)."""
    return n.update == 1 or route != Route() or digest is not None


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
    # What an error must never show (a token in the URL); replaced by "<secret>".
    _secret_text: str | None = None

    def __init__(self, url: str, timeout: float, concurrency: int, rate_limit: float | None, allow_private: bool,
                 route: Route = Route(), key: str | None = None, digest: DigestConfig | None = None):
        self.url = url
        self.key = key or f"{self.kind} {url}"
        self.route = route
        self.digest = digest
        self.timeout = timeout
        self.concurrency = concurrency
        self.rate_limit = rate_limit
        self.policy = AddressPolicy(allow_private_networks=allow_private)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = guarded_session(self.policy, user_agent=USER_AGENT, pool_size=self.concurrency)
        return self._session

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret_text, "<secret>") if self._secret_text else text

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        status, retry_after, _body = await self._exchange(url, body, headers)
        _classify(status, retry_after)

    async def _exchange(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str | None, bytes]:
        """One POST: (status, Retry-After, the first 64 KiB of the answer); network trouble
        raises Retryable, a refused address Permanent (messages scrubbed of the secret)."""
        try:
            self.policy.check_url(url)
            async with self.session().post(
                url, data=body, headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                answer = await resp.content.read(_RESPONSE_READ_CAP)
                return resp.status, resp.headers.get("Retry-After"), answer
        except ForbiddenAddress as exc:
            raise Permanent(self._scrub(str(exc))) from None
        except aiohttp.ClientConnectorError as exc:
            # aiohttp wraps the resolver's refusal; it is permanent, not a network blip.
            if isinstance(exc.os_error, ForbiddenAddress):
                raise Permanent(self._scrub(str(exc.os_error))) from None
            raise Retryable(self._scrub(f"cannot connect: {exc}")) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise Retryable(self._scrub(f"{type(exc).__name__}: {exc}")) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def webhook_body(n: Notification, full: bool | None = None) -> bytes:
    """The webhook's JSON: the whole notification for update 1 (or when ``full``), the short
    follow-up (what the update adds, and ``follows``) for the others."""
    data = n.to_dict() if (n.update == 1 if full is None else full) else n.follow_up()
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


class Webhook(_HttpSink):
    """POST each notification as JSON, signed, one request per notification."""

    kind = "webhook"
    batched = False

    def __init__(self, cfg: WebhookSink, allow_private: bool = False, clock: Callable[[], float] = time.time):
        super().__init__(cfg.url, cfg.timeout, cfg.concurrency, cfg.rate_limit,
                         allow_private or cfg.allow_private_networks, cfg.route, digest=cfg.digest)
        secret = read_secret(cfg, "secret_env", "secret_file")
        self.secret = secret.encode() if secret is not None else None
        self._clock = clock

    async def send(self, notifications: Sequence[Notification | Digest]) -> None:
        (n,) = notifications
        if isinstance(n, Digest):
            body, ident = n.encode(), n.digest_id
        else:
            body, ident = webhook_body(n, full_form(self.route, n, self.digest)), n.notification_id
        timestamp = int(self._clock())
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
                         allow_private or cfg.allow_private_networks, cfg.route)
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
    digest = None  # every notification is a line

    def __init__(self, cfg: FileSink, journal=None):
        self.route = cfg.route
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


def chat_lines(n: Notification, full: bool) -> dict[str, object]:
    """What a chat message says, as plain strings: the head line, the organizations and topics,
    the why-sentences, the snippet, the link (a follow-up: only what the update adds)."""
    if full:
        orgs, topics, why = n.organizations, n.topics, n.why
    else:
        orgs = tuple(dict.fromkeys(p.org_id for p in n.alerts if p.org_id))
        topics = tuple(dict.fromkeys(p.topic_id for p in n.alerts if p.topic_id))
        why = tuple(p.why for p in n.alerts)
    head = n.title or n.url or n.story_id
    if n.update > 1:
        head = f"Update {n.update}: {head}"
    return {"severity": n.severity.upper(), "head": head, "orgs": ", ".join(orgs), "topics": ", ".join(topics),
            "why": why, "snippet": n.snippet if full else "", "url": n.url, "id": n.notification_id}


def slack_text(n: Notification, full: bool) -> str:
    """Slack mrkdwn (Mattermost and Rocket.Chat read it too): &, < and > escaped, the link as <url|text>."""
    def esc(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    c = chat_lines(n, full)
    lines = [f"*[{c['severity']}] {esc(c['head'])}*"]
    if c["orgs"] or c["topics"]:
        lines.append(" · ".join(x for x in (c["orgs"] and f"Organizations: {esc(c['orgs'])}",
                                           c["topics"] and f"Topics: {esc(c['topics'])}") if x))
    lines.extend(f"• {esc(w)}" for w in c["why"])
    if c["snippet"]:
        lines.append(f"> {esc(c['snippet'])}")
    if c["url"].startswith(("http://", "https://")):
        lines.append(f"<{c['url'].replace('|', '%7C').replace('>', '%3E')}|Open the article>")
    lines.append(f"_{esc(c['id'])}_")
    return "\n".join(lines)


def slack_digest_text(d: Digest) -> str:
    """A digest in Slack mrkdwn: the title, then a line per notification."""
    def esc(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    lines = [f"*{esc(digest_title(d))}*",
             *digest_bullets(d, esc, lambda url: f"<{url.replace('|', '%7C').replace('>', '%3E')}|open>"),
             f"_{esc(d.digest_id)}_"]
    return "\n".join(lines)



class Slack(_HttpSink):
    """An incoming webhook of Slack, Mattermost or Rocket.Chat: ``{"text": ...}`` per
    notification; an update is a short follow-up message (incoming webhooks cannot edit)."""

    kind = "slack"
    batched = False

    def __init__(self, cfg: SlackSink, allow_private: bool = False):
        url = read_secret(cfg, "url_env", "url_file")
        if not url.startswith(("http://", "https://")):
            raise SinkConfigError(f"the URL in {cfg.url_env or cfg.url_file} is not an http:// or https:// URL",
                                  "url_env" if cfg.url_env else "url_file")
        # The URL is the secret: the sink is named by a digest of it, never by the URL.
        digest = hashlib.sha256(url.encode()).hexdigest()[:12]
        super().__init__(url, cfg.timeout, cfg.concurrency, cfg.rate_limit,
                         allow_private or cfg.allow_private_networks, cfg.route, key=f"slack {digest}",
                         digest=cfg.digest)
        self._secret_text = url

    async def send(self, notifications: Sequence[Notification]) -> None:
        (n,) = notifications
        text = slack_digest_text(n) if isinstance(n, Digest) else slack_text(n, full_form(self.route, n, self.digest))
        body = json.dumps({"text": text, "unfurl_links": False}, ensure_ascii=False).encode()
        await self._post(self.url, body, {"Content-Type": "application/json"})


def build_sink(cfg, allow_private_networks: bool = False):
    if isinstance(cfg, WebhookSink):
        return Webhook(cfg, allow_private_networks)
    if isinstance(cfg, AlertmanagerSink):
        return Alertmanager(cfg, allow_private_networks)
    if isinstance(cfg, FileSink):
        return JsonlFile(cfg)
    if isinstance(cfg, SlackSink):
        return Slack(cfg, allow_private_networks)
    if isinstance(cfg, TelegramSink):
        from .telegram import Telegram  # it builds on this module's helpers

        return Telegram(cfg, allow_private_networks)
    if isinstance(cfg, EmailSink):
        from .smtp import Email  # it builds on this module's helpers

        return Email(cfg, allow_private_networks)
    raise SinkConfigError(f"unknown sink {type(cfg).__name__}")


def _config_error(path: str | None, field: str, message: str) -> ConfigError:
    """A ConfigError naming the file, the line of ``field`` in it (when it can be read) and the field."""
    if path:
        try:
            return load_yaml(path).error(field, message)
        except ConfigError:
            pass  # the file changed or vanished since it was loaded: no line, the same message
    return ConfigError(path or "<watchlist>", field, message)


def build_sinks(watchlist: Watchlist, path: str | None, allow_private_networks: bool = False) -> list:
    """Every sink of the watchlist's ``alerts.sinks``, built; raises ConfigError naming the file,
    the line and ``alerts.sinks[i].<field>`` for one that cannot work (e.g. its secret is not in
    the environment, or its secret file cannot be read)."""
    sinks = []
    for i, cfg in enumerate(watchlist.alerts.sinks):
        try:
            sinks.append(build_sink(cfg, allow_private_networks))
        except SinkConfigError as exc:
            field = f"alerts.sinks[{i}]" + (f".{exc.field}" if exc.field else "")
            raise _config_error(path, field, str(exc)) from None
    keys = [s.key for s in sinks]
    for i, key in enumerate(keys):
        if key in keys[:i]:
            raise _config_error(path, f"alerts.sinks[{i}]",
                                f"the same sink as alerts.sinks[{keys.index(key)}] ({key})")
    return sinks


def check_sinks(watchlist: Watchlist, path: str | None) -> None:
    """At launch: every configured sink can be built (see :func:`build_sinks`)."""
    build_sinks(watchlist, path)


