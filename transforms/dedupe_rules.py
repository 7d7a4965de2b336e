"""Dedupe's two rules as plain state objects, shared by every path that applies them in input
order: :class:`RepeatMemory` (each article id once) and :class:`StoryMemory` (copies of one
story under one ``story_id``, per language). No Beam here: the bounded batch path
(:mod:`pipelines.batch`) holds them in one process, and the in-order Beam variants
(:class:`transforms.dedupe.DedupeInOrder`) hold one per key group.

Guarantees:

* The verdicts and story ids are those of :mod:`transforms.dedupe`'s rules
  (:func:`transforms.dedupe.judge_repeat`, :func:`transforms.dedupe.assign_story`), looked
  up there at every call, so the stream and the replays never run two copies of a rule.
* State is bounded in event time as in the stream: an id is forgotten once event time
  (the newest timestamp seen) has passed ``repeat_window`` after the newest timestamp of
  that id, as the stream's expiry timer forgets it; story entries are pruned on the stream's
  prune schedule (when the oldest entry expires, at most every ``prune_interval``).
* A rule that raises leaves the state as it was (what was pruned on the way stays pruned:
  event time moved on whatever the record was).
"""

from __future__ import annotations

import heapq
from dataclasses import replace

from newsradar.records import TaggedArticle

from . import dedupe

_MICROS = 1_000_000


class RepeatMemory:
    """The repeat rule's state: per article id, the last version that went out and when the
    id expires. :meth:`advance` moves event time (forgetting what expired), :meth:`judge`
    applies the rule to one version."""

    def __init__(self, settings: dedupe.DedupeSettings):
        self._window = int(settings.repeat_window_seconds * _MICROS)
        self._seen: dict[str, tuple[dedupe.Version | None, int]] = {}
        self._expiries: list[tuple[int, str]] = []  # (expiry, id); stale entries skipped on pop
        self.now: int | None = None

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, article_id: str) -> bool:
        return article_id in self._seen

    def advance(self, ts_micros: int) -> list[str]:
        """Event time is at least ``ts_micros`` now; returns the ids forgotten on the way."""
        self.now = ts_micros if self.now is None else max(self.now, ts_micros)
        gone = []
        while self._expiries and self._expiries[0][0] <= self.now:
            due, article_id = heapq.heappop(self._expiries)
            held = self._seen.get(article_id)
            if held is not None and held[1] == due:
                del self._seen[article_id]
                gone.append(article_id)
        return gone

    def judge(self, tagged: TaggedArticle, ts_micros: int) -> tuple[TaggedArticle | None, str]:
        """(the article to pass on or None, verdict) for one version at ``ts_micros``: NEW and
        UPDATE pass (an update marked ``is_update``), REPEAT and STALE are dropped. Raises what
        the rule raises, with the state unchanged."""
        article_id = tagged.article.article_id
        last, expires = self._seen.get(article_id, (None, 0))
        incoming = dedupe.version_of(tagged)
        verdict = dedupe.judge_repeat(last, incoming)
        # Remembered a window past the newest timestamp seen for the id.
        due = max(ts_micros + self._window, expires)
        keep = last if verdict in (dedupe.REPEAT, dedupe.STALE) else incoming
        self._seen[article_id] = (keep, due)
        if due != expires:
            heapq.heappush(self._expiries, (due, article_id))
        if verdict in (dedupe.REPEAT, dedupe.STALE):
            return None, verdict
        return (replace(tagged, is_update=True) if verdict == dedupe.UPDATE else tagged), verdict


class StoryMemory:
    """The story rule's state for one language: a :class:`transforms.dedupe.StoryIndex` and
    the stream's prune schedule for it."""

    def __init__(self, settings: dedupe.DedupeSettings):
        self._settings = settings
        self._window = int(settings.story_window_seconds * _MICROS)
        self._interval = int(settings.prune_interval_seconds * _MICROS)
        self.index = dedupe.StoryIndex(settings)
        self.prune_at: int | None = None
        self.now: int | None = None

    def __len__(self) -> int:
        return len(self.index)

    def advance(self, ts_micros: int) -> None:
        """Event time is at least ``ts_micros``: prune as the stream's timer would have, which
        fires again and again while event time is past it."""
        self.now = ts_micros if self.now is None else max(self.now, ts_micros)
        while self.prune_at is not None and self.now >= self.prune_at:
            self.index.remove_older_than(self.prune_at - self._window)
            oldest = min((e.ts_micros for e in self.index.entries.values()), default=None)
            self.prune_at = None if oldest is None else max(oldest + self._window,
                                                            self.prune_at + max(self._interval, 1))

    def assign(self, tagged: TaggedArticle, ts_micros: int,
               keys: tuple[str, bytes] | None = None) -> tuple[TaggedArticle, bool]:
        """``tagged`` with its ``story_id`` and ``duplicate_of``, and whether it is new to the
        index (an edit of a known article keeps its story and adds nothing).
        ``keys``: its exact key and sketch when already computed elsewhere
        (:func:`transforms.dedupe.story_keys`). Raises what the rule raises, state unchanged."""
        self.advance(ts_micros)
        result, entry = dedupe.assign_story(self.index, tagged, ts_micros, self._settings, keys=keys)
        if entry is not None:
            self.index.add(entry)
            if self.prune_at is None or ts_micros + self._window < self.prune_at:
                self.prune_at = ts_micros + self._window
        return result, entry is not None
