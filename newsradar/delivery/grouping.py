"""The grouping window: the alerts of one story that arrive within ``window`` seconds of its
first become one notification.

Guarantees: plain code with an injected ``now`` (no clock, no threads); every item added is
returned by exactly one :meth:`Grouper.due` or :meth:`Grouper.flush`; a group closes
``window`` seconds after its first item, whatever arrives meanwhile (a busy story cannot hold
its notification back for ever). Bounded by what the caller adds: a group lives ``window``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Group(Generic[T]):
    story_id: str
    opened: float
    items: list[T] = field(default_factory=list)


class Grouper(Generic[T]):
    def __init__(self, window: float):
        if window < 0:
            raise ValueError(f"the grouping window cannot be negative ({window})")
        self.window = window
        self._open: dict[str, Group[T]] = {}  # in the order the groups opened

    def add(self, story_id: str, item: T, now: float) -> None:
        group = self._open.get(story_id)
        if group is None:
            group = self._open[story_id] = Group(story_id, now)
        group.items.append(item)

    def next_due(self) -> float | None:
        """When the oldest open group closes (None: no group is open)."""
        first = next(iter(self._open.values()), None)
        return None if first is None else first.opened + self.window

    def due(self, now: float) -> list[Group[T]]:
        """The groups whose window has passed, oldest first; they are closed."""
        out = []
        for story_id, group in list(self._open.items()):
            if group.opened + self.window > now:
                break  # groups open in order: the rest are younger
            out.append(self._open.pop(story_id))
        return out

    def flush(self) -> list[Group[T]]:
        """Every open group, closed now (a stop)."""
        out = list(self._open.values())
        self._open.clear()
        return out

    def __len__(self) -> int:
        return sum(len(g.items) for g in self._open.values())
