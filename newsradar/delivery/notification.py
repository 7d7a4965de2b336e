"""One notification per story: the alerts of one story, grouped, as people receive them.

Guarantees:

* :func:`build` is pure and deterministic: the same alerts (in any order) and the same
  previous notification give the same notification, field for field.
* The id is :func:`newsradar.identity.notification_id` of (story id, update number): the
  story's first notification is update 1; alerts of the story that arrive after it was sent
  make update 2, 3, ..., each carrying ``follows``, the id of update 1, so a channel that can
  edit (Alertmanager: the same labels) shows one notification and one that cannot gets a short
  follow-up that names the first.
* Cumulative: a notification's ``organizations``, ``topics``, ``kinds``, ``why`` and
  ``severity`` (the highest) cover every alert of the story so far; ``alerts`` are only the
  ones this update adds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from newsradar.identity import notification_id
from newsradar.records import Alert, parse_time
from newsradar.vocab import ALERT_KINDS, SEVERITIES

VERSION = 1


@dataclass(frozen=True, slots=True)
class Part:
    """One alert of a notification, as much of it as a reader needs."""

    alert_id: str
    kind: str
    severity: str
    why: str
    org_id: str | None = None
    topic_id: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    notification_id: str
    story_id: str
    update: int
    # The id of the story's first notification (update 1); None for update 1 itself.
    follows: str | None
    severity: str
    kinds: tuple[str, ...]
    organizations: tuple[str, ...]
    topics: tuple[str, ...]
    why: tuple[str, ...]
    article_id: str
    url: str
    title: str
    snippet: str
    # created_at of the story's earliest alert
    created_at: str
    alerts: tuple[Part, ...]

    @property
    def first_id(self) -> str:
        return self.follows or self.notification_id

    @property
    def alert_ids(self) -> tuple[str, ...]:
        return tuple(p.alert_id for p in self.alerts)

    def to_dict(self) -> dict:
        out = {"v": VERSION, **asdict(self)}
        for name in ("kinds", "organizations", "topics", "why"):
            out[name] = list(out[name])
        out["alerts"] = [{k: v for k, v in p.items() if v is not None} for p in out["alerts"]]
        return out

    def encode(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode()

    def follow_up(self) -> dict:
        """The short form of an update for a channel that cannot edit: what this update adds."""
        return {
            "v": VERSION, "notification_id": self.notification_id, "follows": self.follows, "update": self.update,
            "story_id": self.story_id, "severity": self.severity, "url": self.url, "title": self.title,
            "organizations": _unique(p.org_id for p in self.alerts if p.org_id),
            "topics": _unique(p.topic_id for p in self.alerts if p.topic_id),
            "why": [p.why for p in self.alerts],
            "alert_ids": list(self.alert_ids),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Notification:
        data = {k: v for k, v in data.items() if k != "v"}
        for name in ("kinds", "organizations", "topics", "why"):
            data[name] = tuple(data[name])
        data["alerts"] = tuple(Part(**p) for p in data["alerts"])
        return cls(**data)

    @classmethod
    def decode(cls, payload: bytes | str) -> Notification:
        return cls.from_dict(json.loads(payload))


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _order(a: Alert) -> tuple:
    return (ALERT_KINDS.index(a.kind), a.org_id or "", a.topic_id or "", a.alert_id)


def highest(severities: Iterable[str]) -> str:
    return max(severities, key=SEVERITIES.index)


def build(alerts: Sequence[Alert], previous: Notification | None = None) -> Notification:
    """The notification of ``alerts`` (one story, distinct ids), after ``previous`` (the
    story's last notification) when there was one."""
    if not alerts:
        raise ValueError("a notification needs at least one alert")
    stories = {a.story_id for a in alerts}
    if len(stories) != 1 or (previous is not None and previous.story_id not in stories):
        raise ValueError(f"alerts of more than one story: {sorted(stories)}")
    ordered = sorted(alerts, key=_order)
    story = ordered[0].story_id
    parts = tuple(Part(a.alert_id, a.kind, a.severity, a.why, a.org_id, a.topic_id) for a in ordered)
    update = 1 if previous is None else previous.update + 1
    top = highest(a.severity for a in ordered)
    # The snippet, title and link of the story come from its first notification: they
    # do not change under the reader's eyes. The first: the most severe alert's.
    lead = next(a for a in ordered if a.severity == top)
    return Notification(
        notification_id=notification_id(story, update),
        story_id=story,
        update=update,
        follows=None if previous is None else previous.first_id,
        severity=top if previous is None else highest((top, previous.severity)),
        kinds=tuple(_unique([*(previous.kinds if previous else ()), *(a.kind for a in ordered)])),
        organizations=tuple(_unique([*(previous.organizations if previous else ()),
                                     *(a.org_id for a in ordered if a.org_id)])),
        topics=tuple(_unique([*(previous.topics if previous else ()), *(a.topic_id for a in ordered if a.topic_id)])),
        why=tuple(_unique([*(previous.why if previous else ()), *(a.why for a in ordered)])),
        article_id=previous.article_id if previous else lead.article_id,
        url=previous.url if previous else lead.url,
        title=previous.title if previous else lead.title,
        snippet=previous.snippet if previous else lead.snippet,
        created_at=previous.created_at if previous else min((a.created_at for a in ordered), key=parse_time),
        alerts=parts,
    )
