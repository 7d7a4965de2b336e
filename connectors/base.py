"""The contract between a source and the one delivery loop that runs every source.

A source (an RSS feed, a Telegram channel in any mode) is a small object with one job:
given its saved cursor, fetch what is new and say when to come back. It does no Kafka I/O
and saves nothing itself. The delivery loop (``connectors.runner``) owns scheduling,
retries, the Kafka producer and the state store, and saves a source's new cursor only after
Kafka acknowledged every record the poll returned (at least once, nothing lost).

Refinements since the first version (all backward compatible, defaults keep old behaviour):

* ``PollResult.fetch_seconds``: the network part of the poll, for the fetch-duration metric
  (the loop times the whole poll when it is unset).
* A poller may have a ``host`` attribute (str or None): the loop limits concurrent polls per
  host with it. Pollers without it share no per-host limit.
* The loop drops records whose ``(article_id, edited_at)`` it already delivered within the
  seen-ids window, so a poller may return everything it sees (an RSS poller cannot know what
  is new); an edit (later ``edited_at``) is never dropped as a repeat.
* ``next_poll_in <= 0`` means "more is ready now" (a backlog, an export read in batches): the
  loop polls it again at once, without the min-interval clamp. Other hints are clamped
  to the source's [interval, max_interval] (a hint may slow a source down, not speed it up).
* Telegram pollers are built by ``connectors.telegram.make_poller(source, *, sources, http)``
  where ``source`` is the validated Telegram source model, ``sources`` the whole
  :class:`newsradar.config.sources.Sources` (defaults, allow_private_networks) and ``http``
  the process's shared :class:`connectors.http.HttpClient`; it returns a :class:`Poller`.
  ``connectors.app`` calls it for every ``kind: telegram`` entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from newsradar.records import RawArticle


@dataclass
class PollResult:
    """What one poll of one source produced.

    ``records`` are new or changed items in the order they should be produced (items already
    delivered may be included; the loop drops repeats, see the module docstring).
    ``cursor`` is the JSON-serialisable state to save once all of them are acknowledged
    (validators, body hash, last message id, update offset ...); ``None`` keeps the old one.
    ``next_poll_in`` is the source's own hint in seconds (ttl, Cache-Control, Retry-After);
    the loop clamps it to the configured range. ``outcome`` is one of
    ``newsradar.metrics.FETCH_OUTCOMES``; ``error`` explains a failed poll in one line.
    A failed poll (``error`` set) delivers nothing and saves nothing: its records and cursor
    are ignored and the source backs off.
    """

    records: list[RawArticle] = field(default_factory=list)
    cursor: dict[str, Any] | None = None
    next_poll_in: float | None = None
    outcome: str = "ok"
    status: int | None = None
    error: str | None = None
    # Counted, not fatal: entries or messages that could not be turned into records.
    skipped: int = 0
    bytes_read: int = 0
    # Set by pollers that were rate limited; the loop counts the wait.
    rate_limited_for: float | None = None
    # Seconds spent on the network (all requests of this poll); None: the loop times the poll.
    fetch_seconds: float | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


class Poller(Protocol):
    """One source. Implementations: connectors.rss, connectors.telegram.*"""

    source_id: str

    async def poll(self, cursor: dict[str, Any] | None, now: datetime) -> PollResult:
        """Fetch what is new since ``cursor``. Never raises for source errors: a failed fetch
        is a PollResult with ``error`` set (and counted), so one bad source never stops the rest."""
        ...

    async def close(self) -> None:
        ...
