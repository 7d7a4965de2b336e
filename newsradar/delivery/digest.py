"""Digests: a sink's low-severity notifications, held and sent as one message every N minutes.

Guarantees:

* Plain code with the time passed in: :func:`held_back` says whether a notification waits for
  the digest, :func:`period_end` when the current period ends (periods are aligned on the
  epoch, so every 15m ends at :00, :15, :30 and :45 UTC in every process).
* A digest's id is deterministic: the sink, the end of the period it closes and its part
  (:data:`DIGEST_MAX` notifications at most per message) give the same id in every process and
  on every retry; with what it holds fixed in the ledger before it is sent
  (:meth:`~newsradar.delivery.ledger.Ledger.seal_digests`), a repeat after a kill is the same
  message.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from newsradar.config.watchlist import Digest as DigestConfig
from newsradar.config.watchlist import Route
from newsradar.records import format_time, parse_time
from newsradar.vocab import SEVERITIES

from .notification import VERSION, Notification, highest

# Notifications in one digest message at most; more in one period make parts 2, 3, ...
DIGEST_MAX = 100


def held_back(digest: DigestConfig | None, route: Route, n: Notification) -> bool:
    """Whether ``n`` waits for the sink's digest: every alert it adds that passes the route
    is at or below the digest's ``max_severity`` (an update judged by what it adds, so a quiet
    update of a critical story waits too)."""
    if digest is None:
        return False
    from .sinks import passes  # sinks builds on notifications; this module is imported by it

    severities = [p.severity for p in n.alerts if passes(route, p)] or [p.severity for p in n.alerts]
    return SEVERITIES.index(highest(severities)) <= SEVERITIES.index(digest.max_severity)


def period_end(now: float, every: float) -> float:
    """The end of the period ``now`` is in (the next boundary after it)."""
    return (math.floor(now / every) + 1) * every


def period_start(now: float, every: float) -> float:
    return math.floor(now / every) * every


def digest_id(sink_key: str, until: float, part: int) -> str:
    """``digest:<digest of the sink>:<end of the period, UTC>:<part>``."""
    stamp = datetime.fromtimestamp(until, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"digest:{hashlib.sha256(sink_key.encode()).hexdigest()[:12]}:{stamp}:{part}"


@dataclass(frozen=True, slots=True)
class Digest:
    """The notifications a sink held in one period, as one message."""

    digest_id: str
    # the earliest notification held in it, and the end of the period it closes
    since: str
    until: str
    notifications: tuple[Notification, ...]

    @property
    def severity(self) -> str:
        return highest(n.severity for n in self.notifications)

    @property
    def alert_ids(self) -> tuple[str, ...]:
        return tuple(a for n in self.notifications for a in n.alert_ids)

    def to_dict(self) -> dict:
        return {"v": VERSION, "digest_id": self.digest_id, "since": self.since, "until": self.until,
                "count": len(self.notifications), "severity": self.severity,
                "notifications": [n.to_dict() for n in self.notifications]}

    def encode(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode()


def make_digest(ident: str, since: float, until: float, notifications: Sequence[Notification]) -> Digest:
    return Digest(ident, format_time(datetime.fromtimestamp(since, UTC)),
                  format_time(datetime.fromtimestamp(until, UTC)), tuple(notifications))


def digest_lines(d: Digest) -> list[dict[str, str]]:
    """One line per notification, as plain strings: severity, head (the title, with the
    update number of an update), organizations and topics, link."""
    out = []
    for n in d.notifications:
        head = n.title or n.url or n.story_id
        if n.update > 1:
            head = f"Update {n.update}: {head}"
        subjects = ", ".join([*n.organizations, *n.topics])
        out.append({"severity": n.severity.upper(), "head": head, "subjects": subjects, "url": n.url,
                    "id": n.notification_id})
    return out


def digest_title(d: Digest) -> str:
    """``Digest: 12 notifications, 09:00-09:15 UTC`` (the date too when the span crosses a day)."""
    since, until = parse_time(d.since), parse_time(d.until)
    count = len(d.notifications)
    span = (f"{since:%H:%M}-{until:%H:%M} UTC" if since.date() == until.date()
            else f"{since:%Y-%m-%d %H:%M} - {until:%Y-%m-%d %H:%M} UTC")
    return f"Digest: {count} notification{'s' if count != 1 else ''}, {span}"


def digest_bullets(d: Digest, esc: Callable[[str], str], link: Callable[[str], str]) -> list[str]:
    """A line per notification of a digest in a chat's markup: ``esc`` escapes text, ``link``
    makes the "open" link of an http(s) URL (others get none)."""
    out = []
    for x in digest_lines(d):
        line = f"• [{x['severity']}] {esc(x['head'])}"
        if x["subjects"]:
            line += f" ({esc(x['subjects'])})"
        if x["url"].startswith(("http://", "https://")):
            line += f" {link(x['url'])}"
        out.append(line)
    return out
