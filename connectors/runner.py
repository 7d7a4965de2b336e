"""The one delivery loop every source runs in: schedule, poll, produce, wait for acks, save.

Guarantees (for any :class:`connectors.base.Poller`: RSS, Telegram web/bot/webhook/export):

* **At least once, nothing lost.** A poll's records are sent to Kafka and the loop waits for
  every acknowledgement before it saves the source's cursor and the delivered ids in one
  state-store transaction. A crash before that commit re-reads (duplicates of that one poll
  at most); a crash after it re-sends nothing that was recorded. A send Kafka did not
  acknowledge leaves the cursor where it was, so the next poll brings the record back.
* **No item can poison a source.** Every record is cut to fit the record cap with
  :func:`newsradar.records.fit_to_size` before it is sent (html dropped, then text cut,
  flagged), whatever poller produced it; a record that cannot be made to fit is counted as
  skipped and logged, and the rest of the poll is delivered. A send error is the record's
  own: a record that cannot be encoded or that Kafka refuses as such (too large, invalid) is
  skipped the same way and the cursor still advances; only a send Kafka may yet accept
  (timeouts, an unreachable broker) keeps the cursor for a retry.
* **Memory does not grow with the sources' cursors.** A poll reads its source's cursor from
  the state store; the loop keeps no cursor between polls (an RSS cursor grows with its feed).
* **Repeats dropped by id.** Records whose ``(article_id, edited_at)`` was delivered within
  ``seen_ttl`` are not sent again (an edit with a new ``edited_at`` is).
* **One producer per process**, built by :func:`newsradar.kafka.make_producer` (acks=all,
  idempotence on). Sends run on one dedicated thread so per-source order is kept and the
  event loop never blocks on Kafka metadata.
* **Each source on its own schedule.** :meth:`Runner.run` keeps one task per source: it
  waits until the source is due, polls, delivers, and computes the next due time. A slow
  source (a 20 s deadline, a 25 s Bot API long poll, paced t.me requests) delays nobody
  else, and a webhook batch is answered as soon as it is saved, not at the next round.
* **Polite scheduling.** At most ``max_concurrent_polls`` polls at once and
  ``per_host_concurrency`` per host (a poll takes its host's turn before a global one, so
  sources queued on one busy host never hold the global slots other hosts need), and at most
  ``max_polls_in_flight`` polls holding records, from fetch until Kafka acknowledged them and
  the state is saved: a first start against thousands of full feeds (every item new) keeps
  at most that many polls' records in memory, not one poll per source. After a
  success the next poll is the source's hint clamped to ``[max(interval, min_interval),
  max_interval]``; after a failure, linear backoff ``backoff_step * errors`` capped at
  ``backoff_max``; after 429/503, the server's Retry-After (at most 24 h). A source is never
  dropped: it keeps being polled, its errors counted.
* **A poller bug is contained**: an unexpected exception becomes an ``internal_error`` poll
  for that source (logged with its traceback), the other sources carry on.
* One progress log line per ``progress_every`` seconds (30 s by default) while running, and
  one for a ``--once`` run: sources polled, changed, not modified (304 or same body), errors,
  new items, skipped entries.
* ``run(once=True)`` polls every source one time, concurrently within the limits,
  regardless of schedule and backoff, except sources holding a server-requested wait
  (Retry-After), which even a one-shot run respects; :attr:`Runner.progress` then says what
  it did, with the reason of every source that failed.
* **Stopping**: when ``stop`` is set, polls still fetching are cancelled; deliveries already
  under way finish (acks and state commit) before :meth:`Runner.run` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.base import Poller, PollResult
from connectors.state import StateStore
from newsradar.config.sources import Defaults
from newsradar.httpclient import RETRY_AFTER_CAP
from newsradar.metrics import ConnectorMetrics
from newsradar.records import MAX_RECORD_BYTES, TOPIC_RAW, RawArticle, RecordError, fit_to_size

log = logging.getLogger(__name__)

# How often expired seen ids are purged (seconds of the injected clock).
EXPIRE_EVERY = 3600.0
# Seconds between two progress log lines while running.
PROGRESS_EVERY = 30.0
# A waiting source looks at the clock at least this often (a wall-clock jump costs no more).
RECHECK_AT_MOST = 60.0


@dataclass(frozen=True)
class Schedule:
    """When a source is polled next (seconds)."""

    interval: float = 600.0
    min_interval: float = 60.0
    max_interval: float = 6 * 3600.0
    backoff_step: float = 300.0
    backoff_max: float = 6 * 3600.0

    @classmethod
    def from_config(cls, defaults: Defaults, interval: float | None = None) -> Schedule:
        return cls(
            interval=defaults.interval if interval is None else interval,
            min_interval=defaults.min_interval,
            max_interval=defaults.max_interval,
            backoff_step=defaults.backoff_step,
            backoff_max=defaults.backoff_max,
        )

    def after_success(self, hint: float | None) -> float:
        if hint is not None and hint <= 0:
            return 0.0  # the source has more ready now (a backlog)
        floor = max(self.interval, self.min_interval)
        return min(max(hint or 0.0, floor), max(self.max_interval, self.min_interval))

    def after_error(self, errors: int) -> float:
        return min(self.backoff_step * max(errors, 1), self.backoff_max)

    def after_rate_limit(self, wait: float | None, errors: int) -> float:
        if wait is None:
            return self.after_error(errors)
        return min(max(wait, 0.0), RETRY_AFTER_CAP)


def seen_key(record: RawArticle) -> str:
    return f"{record.article_id}|{record.edited_at or ''}"


@dataclass
class Slot:
    """One source inside the loop: its poller, schedule and the state the loop keeps for it."""

    poller: Poller
    schedule: Schedule
    next_due: float = 0.0
    # Set while the source asked us to wait (Retry-After): not polled before, not even by --once.
    hold_until: float = 0.0
    errors: int = 0
    last_new_at: float | None = None
    # What the slot was built from (the source's config and interval): a reload that brings a
    # different value rebuilds the poller and keeps the state.
    config: Any = None
    # Polling or delivering right now; retired: removed by a reload, stops after this poll.
    busy: bool = False
    retired: bool = False
    # Pollers replaced by a reload while they were polling, closed once the poll is over.
    replaced: list = field(default_factory=list)

    @property
    def source_id(self) -> str:
        return self.poller.source_id

    @property
    def host(self) -> str | None:
        return getattr(self.poller, "host", None)


@dataclass
class Progress:
    """What the loop did over one progress interval (or one ``--once`` run)."""

    polled: int = 0
    changed: int = 0
    not_modified: int = 0
    errors: int = 0
    rate_limited: int = 0
    new_items: int = 0
    skipped_items: int = 0
    seconds: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    # Why each source that failed did (its last failure in the interval), by source id.
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def succeeded(self) -> int:
        return self.changed + self.not_modified

    def line(self, what: str) -> str:
        return (
            f"{what}: {self.polled} sources polled, {self.changed} changed, {self.not_modified} not modified, "
            f"{self.errors} errors ({self.rate_limited} rate limited), {self.new_items} new items, "
            f"{self.skipped_items} skipped entries"
        )


class DeliveryFailed(Exception):
    """Kafka did not acknowledge some records of a poll."""


class Runner:
    """Runs pollers on their schedules and delivers their records (see module docstring)."""

    def __init__(
        self,
        slots: Sequence[Slot],
        *,
        producer,
        store: StateStore,
        metrics: ConnectorMetrics,
        topic: str = TOPIC_RAW,
        clock: Callable[[], float] = time.time,
        max_concurrent_polls: int = 32,
        per_host_concurrency: int = 2,
        max_polls_in_flight: int = 128,
        seen_ttl: float = 30 * 86400.0,
        seen_max_per_source: int = 20_000,
        progress_every: float = PROGRESS_EVERY,
    ):
        self.slots = list(slots)
        self._producer = producer
        self._store = store
        self._metrics = metrics
        self._topic = topic
        self._clock = clock
        self._global = asyncio.Semaphore(max_concurrent_polls)
        # Polls holding their records (fetching, parsing or waiting for Kafka's acks): what
        # bounds the start-up burst, when every source's first poll returns its whole feed.
        self._in_flight = asyncio.Semaphore(max_polls_in_flight)
        self._per_host_limit = per_host_concurrency
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._seen_ttl = seen_ttl
        self._seen_max = seen_max_per_source
        self._send_pool = ThreadPoolExecutor(1, thread_name_prefix="kafka-send")
        self._inflight: set[asyncio.Task] = set()
        self._progress_every = progress_every
        self._progress = Progress()
        self._progress_started = time.monotonic()
        self._last_expire = 0.0
        # While run() runs: one task per source, and the first error no source can contain.
        self._tasks: dict[str, asyncio.Task] = {}
        self._fatal: asyncio.Future | None = None
        for slot in self.slots:
            self._restore(slot)

    def _restore(self, slot: Slot) -> None:
        state = self._store.load(slot.source_id)
        slot.next_due = state.next_due or 0.0
        slot.hold_until = state.hold_until or 0.0
        slot.errors = state.errors
        slot.last_new_at = state.last_new_at
        self._metrics.init_source(slot.source_id)
        self._metrics.consecutive_errors.labels(source=slot.source_id).set(slot.errors)
        if slot.last_new_at:
            self._metrics.last_new_item.labels(source=slot.source_id).set(slot.last_new_at)

    @property
    def progress(self) -> Progress:
        """What the current progress interval (or the ``--once`` run, once it is over) did."""
        return self._progress

    # -- scheduling

    def due(self, now: float | None = None, *, every: bool = False) -> list[Slot]:
        """Sources to poll now; ``every`` ignores the schedule but not a source's own Retry-After."""
        now = self._clock() if now is None else now
        return [s for s in self.slots if (every or s.next_due <= now) and s.hold_until <= now]

    async def poll_due(self, *, every: bool = False) -> Progress:
        """Poll every due source once (``every``: all sources not on hold), concurrently within
        the limits, and deliver what they return. ``--once`` runs this; tests step an injected
        clock with it. Returns what was done, also logged as one progress line."""
        started = time.monotonic()
        now = self._clock()
        self._progress = progress = Progress()
        due = self.due(now, every=every)
        if due:
            await asyncio.gather(*(self._run_source(slot) for slot in due))
        self._expire_seen(now)
        progress.seconds = time.monotonic() - started
        self._metrics.poll_cycles.inc()
        log.info("%s", progress.line(f"{'once' if every else 'due'} ({progress.seconds:.1f}s)"))
        return progress

    async def run(self, stop: asyncio.Event, *, once: bool = False) -> None:
        """Poll every source on its own schedule until ``stop`` is set (``once``: each source
        not on hold one time, then return). On stop, polls still fetching are cancelled;
        deliveries already under way finish and are saved before this returns. An error the
        loop itself cannot contain (the state store failing) stops every source and is raised."""
        stopper = asyncio.ensure_future(stop.wait())
        if once:
            work = {asyncio.ensure_future(self.poll_due(every=True))}
        else:
            self._progress, self._progress_started = Progress(), time.monotonic()
            self._fatal = asyncio.get_running_loop().create_future()
            for slot in self.slots:
                self._start(slot)
            work = {asyncio.ensure_future(self._report_progress()), self._fatal}
        try:
            await asyncio.wait(work | {stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            followers = set(self._tasks.values())
            for task in (*work, *followers, stopper):
                task.cancel()
            await asyncio.wait(work | followers | {stopper})
            self._tasks.clear()
            await self.drain()
        if not once:
            self._log_progress()
        for task in work:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()

    def _start(self, slot: Slot) -> None:
        task = asyncio.ensure_future(self._follow(slot))
        self._tasks[slot.source_id] = task

        def done(t: asyncio.Task, source_id: str = slot.source_id) -> None:
            if self._tasks.get(source_id) is t:
                del self._tasks[source_id]
            if not t.cancelled() and t.exception() is not None and self._fatal and not self._fatal.done():
                self._fatal.set_exception(t.exception())

        task.add_done_callback(done)

    async def _follow(self, slot: Slot) -> None:
        """One source's life while running: wait until due, poll, deliver, again (until a
        reload removes the source)."""
        try:
            while not slot.retired:
                while (wait := max(slot.next_due, slot.hold_until) - self._clock()) > 0:
                    await asyncio.sleep(min(wait, RECHECK_AT_MOST))
                await self._run_source(slot)
                # A source due again at once (a backlog, a zero interval) still lets others run.
                await asyncio.sleep(0)
        finally:
            if slot.retired:  # no longer in self.slots, so nobody else closes its poller
                await slot.poller.close()

    async def replace_sources(self, slots: Sequence[Slot]) -> tuple[list[str], list[str], list[str]]:
        """Take a reloaded configuration: ``slots`` as :func:`connectors.app.build_slots` built
        them. Added sources start (from their saved state, if any); removed ones stop after
        the poll they are in, if any, and their state stays in the store; a source whose
        ``config`` changed gets the new poller and schedule and keeps its cursor, backoff and
        seen ids. Returns the ids (added, removed, changed)."""
        current = {slot.source_id: slot for slot in self.slots}
        wanted = {slot.source_id: slot for slot in slots}
        added = [sid for sid in wanted if sid not in current]
        removed = [sid for sid in current if sid not in wanted]
        changed = [sid for sid in wanted if sid in current and wanted[sid].config != current[sid].config]
        for sid in removed:
            slot = current[sid]
            slot.retired = True
            task = self._tasks.get(sid)
            if task is None:
                await slot.poller.close()
            elif not slot.busy:
                # Between polls: nothing is in flight, stop it now (it closes its poller).
                task.cancel()
                await asyncio.wait({task})
        for sid in changed:
            old, new = current[sid], wanted[sid]
            previous = old.poller
            old.poller, old.schedule, old.config = new.poller, new.schedule, new.config
            if old.busy:
                old.replaced.append(previous)
            else:
                await previous.close()
            # The new schedule applies from now: a shorter interval must not wait out the old one.
            old.next_due = min(old.next_due, self._clock() + old.schedule.after_success(None))
        self.slots = [slot for slot in self.slots if slot.source_id not in removed]
        for sid in added:
            slot = wanted[sid]
            self._restore(slot)
            self.slots.append(slot)
            if self._fatal is not None and not self._fatal.done():
                self._start(slot)
        for sid in (*added, *removed, *changed):
            log.info("sources: %s %s", sid, "added" if sid in added else "removed" if sid in removed else "changed")
        return added, removed, changed

    async def _report_progress(self) -> None:
        while True:
            await asyncio.sleep(max(self._progress_started + self._progress_every - time.monotonic(), 0.0))
            self._log_progress()
            self._expire_seen(self._clock())

    def _log_progress(self) -> None:
        now = time.monotonic()
        progress, self._progress = self._progress, Progress()
        progress.seconds, self._progress_started = now - self._progress_started, now
        self._metrics.poll_cycles.inc()
        log.info("%s", progress.line(f"last {progress.seconds:.0f}s"))

    def _expire_seen(self, now: float) -> None:
        if now - self._last_expire >= EXPIRE_EVERY:
            self._store.expire(older_than=now - self._seen_ttl, max_per_source=self._seen_max)
            self._last_expire = now

    async def drain(self) -> None:
        """Wait for deliveries in flight (acks and state commits) to finish."""
        while self._inflight:
            await asyncio.wait(set(self._inflight))

    def close(self) -> None:
        self._send_pool.shutdown(wait=True)

    # -- one source

    def _host_limit(self, host: str | None) -> asyncio.Semaphore | None:
        if not host:
            return None
        if host not in self._hosts:
            self._hosts[host] = asyncio.Semaphore(self._per_host_limit)
        return self._hosts[host]

    async def _run_source(self, slot: Slot) -> None:
        slot.busy = True
        try:
            # The host's turn first, then a global one: a source waiting for a busy host must
            # not sit on a global slot that a source of another host could use.
            # The in-flight turn after the host's (a source queued on a busy host holds none)
            # and until its delivery is committed, so records waiting for acks are bounded too.
            host_limit = self._host_limit(slot.host)
            async with host_limit if host_limit is not None else contextlib.nullcontext():
                await self._in_flight.acquire()
                try:
                    async with self._global:
                        result, seconds = await self._poll(slot)
                except BaseException:
                    self._in_flight.release()
                    raise
            # Delivery is shielded: a shutdown does not interrupt a batch between send and commit.
            task = asyncio.ensure_future(self._deliver(slot, result, seconds))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            task.add_done_callback(lambda _task: self._in_flight.release())
            await asyncio.shield(task)
        finally:
            slot.busy = False
            while slot.replaced:
                await slot.replaced.pop().close()

    async def _poll(self, slot: Slot) -> tuple[PollResult, float]:
        started = time.monotonic()
        now = datetime.fromtimestamp(self._clock(), UTC)
        # Read from the store for this poll only: held for every source between polls, cursors
        # grow with their feeds (an RSS cursor keeps ~340 bytes per item of the last body).
        cursor = self._store.cursor(slot.source_id)
        task = asyncio.ensure_future(slot.poller.poll(cursor, now))
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            raise
        error = task.exception()
        if error is not None:
            # A bug in a poller: contained to its source, visible in logs and metrics.
            log.error("source %s: poller failed", slot.source_id, exc_info=error)
            result = PollResult(outcome="internal_error", error=f"{type(error).__name__}: {error}")
        else:
            result = task.result()
        return result, time.monotonic() - started

    async def _deliver(self, slot: Slot, result: PollResult, seconds: float) -> None:
        m, source, report = self._metrics, slot.source_id, self._progress
        now = self._clock()
        report.polled += 1
        m.fetches.labels(source=source, outcome=result.outcome).inc()
        if result.status:
            m.http_responses.labels(source=source, status_class=f"{min(max(result.status // 100, 1), 5)}xx").inc()
        m.fetch_duration.labels(source=source).observe(result.fetch_seconds if result.fetch_seconds is not None else seconds)
        if result.bytes_read:
            m.fetch_bytes.labels(source=source).inc(result.bytes_read)
        if result.skipped:
            m.items_skipped.labels(source=source).inc(result.skipped)
            report.skipped_items += result.skipped
        report.outcomes[result.outcome] = report.outcomes.get(result.outcome, 0) + 1

        if result.failed:
            self._after_failure(slot, result, now, report)
            return

        records = _unique(result.records)
        keys = [seen_key(r) for r in records]
        unseen = self._store.unseen(source, keys)
        new, unfit = _fit(source, [r for r, k in zip(records, keys, strict=True) if k in unseen])
        if unfit:
            m.items_skipped.labels(source=source).inc(unfit)
            report.skipped_items += unfit
        acked, refused, failures = await self._send(new)
        # The progress interval may have rolled over while Kafka acknowledged.
        report = self._progress
        if refused:
            # Bad items, not a bad source: counted and logged, the rest of the poll goes on.
            m.items_skipped.labels(source=source).inc(len(refused))
            report.skipped_items += len(refused)
            for record, why in refused:
                log.warning("source %s: item %s skipped, it cannot be sent: %s", source, record.article_id, why)
        if acked:
            m.items_produced.labels(source=source).inc(len(acked))
            m.last_new_item.labels(source=source).set(now)
            slot.last_new_at = now
            report.new_items += len(acked)
        if failures:
            m.produce_errors.labels(source=source).inc(len(failures))
            slot.errors += 1
            slot.next_due = now + slot.schedule.after_error(slot.errors)
            # Only what Kafka acknowledged is remembered; the cursor stays, so the rest comes back.
            self._store.commit_delivery(
                source, cursor=None, seen=[seen_key(r) for r in acked], now=now, next_due=slot.next_due,
                errors=slot.errors, last_new_at=slot.last_new_at,
            )
            m.consecutive_errors.labels(source=source).set(slot.errors)
            report.errors += 1
            report.failures[source] = f"Kafka did not acknowledge {len(failures)} of {len(new)} records ({failures[0]})"
            log.error("source %s: Kafka did not acknowledge %d of %d records (%s); will retry",
                      source, len(failures), len(new), failures[0])
            return

        slot.errors = 0
        slot.hold_until = 0.0
        slot.next_due = now + slot.schedule.after_success(result.next_poll_in)
        # Every id of the poll is refreshed, old ones too: an item still listed never expires.
        self._store.commit_delivery(
            source, cursor=result.cursor, seen=keys, now=now, next_due=slot.next_due,
            errors=0, last_new_at=slot.last_new_at,
        )
        m.consecutive_errors.labels(source=source).set(0)
        if result.outcome == "not_modified":
            report.not_modified += 1
        else:
            report.changed += 1
        if result.outcome == "lying_304":
            log.warning("source %s: content changed behind a 304; the feed is fetched in full from now on", source)

    def _after_failure(self, slot: Slot, result: PollResult, now: float, report: Progress) -> None:
        m, source = self._metrics, slot.source_id
        slot.errors += 1
        slot.hold_until = 0.0
        if result.outcome == "rate_limited":
            wait = result.rate_limited_for
            delay = slot.schedule.after_rate_limit(wait, slot.errors)
            if wait is not None:
                slot.hold_until = now + delay
            m.rate_limit_waits.labels(source=source).inc()
            m.rate_limit_wait_seconds.labels(source=source).inc(delay)
            report.rate_limited += 1
        else:
            delay = slot.schedule.after_error(slot.errors)
        if result.outcome == "parse_error":
            m.parse_errors.labels(source=source).inc()
        slot.next_due = now + delay
        self._store.schedule(source, now=now, next_due=slot.next_due, errors=slot.errors,
                             hold_until=slot.hold_until or None)
        m.consecutive_errors.labels(source=source).set(slot.errors)
        report.errors += 1
        report.failures[source] = f"{result.error} ({result.outcome})"
        log.warning("source %s: %s (%s, %d in a row); next try in %.0fs",
                    source, result.error, result.outcome, slot.errors, delay)

    async def _send(
        self, records: list[RawArticle]
    ) -> tuple[list[RawArticle], list[tuple[RawArticle, str]], list[str]]:
        """Send and wait for every acknowledgement.

        Returns (acknowledged, refused, failures): ``refused`` are records that can never be
        sent (they do not encode, Kafka refuses the record itself), each with the reason;
        ``failures`` describe sends Kafka did not acknowledge and that may succeed later."""
        if not records:
            return [], [], []
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in records]
        await loop.run_in_executor(self._send_pool, self._send_batch, loop, records, futures)
        outcomes = await asyncio.gather(*futures)
        acked = [r for r, out in zip(records, outcomes, strict=True) if out is None]
        refused = [(r, out[1]) for r, out in zip(records, outcomes, strict=True) if out and out[0] == _REFUSED]
        failures = [out[1] for out in outcomes if out and out[0] == _FAILED]
        return acked, refused, failures

    def _send_batch(self, loop: asyncio.AbstractEventLoop, records: list[RawArticle], futures: list[asyncio.Future]) -> None:
        """Runs on the send thread; settles each future (None or an outcome) on the loop thread.

        One record's error settles that record only: the others are still sent."""
        from kafka.errors import KafkaError

        for record, done in zip(records, futures, strict=True):
            try:
                key, value = _encode(record)
                sent = self._producer.send(self._topic, key=key, value=value)
            except _RECORD_ERRORS as exc:
                loop.call_soon_threadsafe(_settle, done, (_REFUSED, _describe(exc)))
                continue
            except KafkaError as exc:
                loop.call_soon_threadsafe(_settle, done, _send_outcome(exc))
                continue
            sent.add_callback(lambda _meta, f=done: loop.call_soon_threadsafe(_settle, f, None))
            sent.add_errback(lambda exc, f=done: loop.call_soon_threadsafe(_settle, f, _send_outcome(exc)))


# What a record's own content raises while it is encoded (a value a check did not foresee).
_RECORD_ERRORS = (UnicodeError, ValueError, TypeError, OverflowError, RecursionError)
_REFUSED, _FAILED = "refused", "failed"


def _encode(record: RawArticle) -> tuple[bytes, bytes]:
    return record.article_id.encode("utf-8"), record.encode()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _send_outcome(exc: BaseException) -> tuple[str, str]:
    """A send error as an outcome: refused when Kafka rejects the record itself (no retry
    can change that), failed otherwise (the cursor stays and the poll is retried)."""
    from kafka.errors import InvalidRecordError, MessageSizeTooLargeError

    if isinstance(exc, (MessageSizeTooLargeError, InvalidRecordError)):
        return _REFUSED, _describe(exc)
    return _FAILED, _describe(exc)


def _settle(future: asyncio.Future, outcome: tuple[str, str] | None) -> None:
    if not future.done():
        future.set_result(outcome)


def _fit(source: str, records: list[RawArticle]) -> tuple[list[RawArticle], int]:
    """The records cut to fit the record cap, and how many could not be made to fit."""
    out, unfit = [], 0
    for record in records:
        try:
            fitted = fit_to_size(record, MAX_RECORD_BYTES)
        except RecordError as exc:
            unfit += 1
            log.warning("source %s: item %s skipped: %s", source, record.article_id, exc)
            continue
        if fitted is not record:
            added = sorted(set(fitted.flags or ()) - set(record.flags or ()))
            log.warning("source %s: item %s cut to fit the %d-byte record cap (%s)",
                        source, record.article_id, MAX_RECORD_BYTES, ", ".join(added))
        out.append(fitted)
    return out, unfit


def _unique(records: list[RawArticle]) -> list[RawArticle]:
    seen: set[str] = set()
    out = []
    for record in records:
        key = seen_key(record)
        if key not in seen:
            seen.add(key)
            out.append(record)
    return out


__all__ = ["Progress", "Runner", "Schedule", "Slot", "seen_key"]
