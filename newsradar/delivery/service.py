"""``newsradar deliver``: news.alerts -> the watchlist's sinks, as a process of its own.

One consumer loop (the main thread) reads news.alerts in a consumer group, groups the alerts
of each story for ``group_window`` seconds (:mod:`.grouping`) into one notification
(:mod:`.notification`), and hands it to one worker per sink; the workers run on an asyncio
loop in a second thread, each with its own queue, concurrency and rate limit, so a slow or
dead sink holds up only its own notifications.

Guarantees:

* One notification per story and update, the same for every sink: it is written to the
  :class:`~newsradar.delivery.ledger.Ledger` with its alerts before any sink gets it; an
  alert read again (after a kill) rejoins that notification, which is sent again as it was.
* At least once per (sink, notification), idempotent by ``notification_id``: a sink's outcome
  is written to the ledger (for every alert of the notification) after the sink acknowledged
  it, and a news.alerts offset is committed only after every sink finished every record
  before it (:class:`~newsradar.delivery.progress.Progress`). A kill repeats at most the
  notifications that were in flight (sent, not yet in the ledger), with the same id and body.
* Per sink, a story's updates are sent in order: update 2 not before update 1 is finished.
* Routing: a notification none of whose new alerts passes a sink's route is finished for that
  sink without a send.
* Retried with exponential backoff (``Retry-After`` honoured, capped) until delivered or until
  the alert has been on news.alerts for ``max_age``; then, and for an answer that cannot
  change (a 4xx, a refused address) at once, a dead letter on news.dlq with the reason, step
  ``alerts.<sink kind>``, which ``newsradar dlq replay`` sends back to news.alerts.
* A new consumer group starts at the alerts written in the last ``start_window`` (by record
  timestamp, ``offsets_for_times``), never the whole retention.
* Bounded memory: when ``max_pending`` records are read and not finished by every sink,
  reading pauses until some are.
* A bug (an exception that is not a delivery failure) stops the process with exit code 1;
  nothing is committed past it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from newsradar.metrics import DeliveryMetrics
from newsradar.records import TOPIC_ALERTS, TOPIC_DLQ, Alert, DeadLetter, RecordError, decode_alert, parse_time

from . import DEFAULT_GROUP, DEFAULT_GROUP_WINDOW
from .digest import DIGEST_MAX, digest_id, held_back, make_digest, period_end, period_start
from .grouping import Group, Grouper
from .ledger import DEAD_LETTERED, DELIVERED, HeldAlert, Ledger, SealedDigest
from .notification import Notification, build
from .progress import Progress
from .sinks import Permanent, Retryable, routed

log = logging.getLogger(__name__)

BACKOFF_BASE = 0.5
BACKOFF_CAP = 60.0
# Alerts of a batched sink (Alertmanager, file) sent in one request at most.
BATCH_MAX = 100
DECODE_STEP = "alerts.decode"
# A consumer without partitions for this long, in a group the broker says has no member, is
# stuck: kafka-python 3.0.12 can drop a join whose SyncGroup answer arrives after poll() timed
# out (seen once in about a dozen starts), leaving the consumer polling forever, out of its group.
STUCK_AFTER = 30.0
POLL_MS = 1000


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str
    topic_prefix: str = ""
    group_id: str = DEFAULT_GROUP
    # A new group starts at the alerts written to news.alerts in this last period.
    start_window: float = 3600.0
    # Retried until the alert has been on news.alerts this long; then news.dlq.
    max_age: float = 6 * 3600.0
    max_pending: int = 10_000
    # The alerts of one story read within this many seconds of its first are one notification.
    group_window: float = DEFAULT_GROUP_WINDOW
    commit_interval: float = 1.0
    stop_timeout: float = 10.0
    backoff_base: float = BACKOFF_BASE
    backoff_cap: float = BACKOFF_CAP

    @property
    def alerts_topic(self) -> str:
        return self.topic_prefix + TOPIC_ALERTS

    @property
    def dlq_topic(self) -> str:
        return self.topic_prefix + TOPIC_DLQ


@dataclass(frozen=True, slots=True)
class Job:
    """One alert read from news.alerts, and where."""

    alert: Alert
    raw: bytes
    partition: int
    offset: int
    # When the record was written to news.alerts (unix seconds): its age starts there.
    written: float
    # ``<topic>/<partition>/<offset>``: the dead letter's source, the ledger's position
    source: str
    # Progress's token of this read of the record (a read again gets another)
    token: int = 0


class Delivery:
    """One notification for one sink, and the alerts read that wait for it. ``jobs`` may grow
    (an alert of the notification read again after a restart joins it) until ``sealed``."""

    __slots__ = ("notification", "jobs", "sealed", "after", "finished")

    def __init__(self, notification: Notification, jobs: list[Job]):
        self.notification = notification
        self.jobs = jobs
        self.sealed = False
        # the story's previous delivery to this sink, which this one waits for
        self.after: asyncio.Future | None = None
        self.finished: asyncio.Future | None = None


def backoff_delay(attempt: int, retry_after: float | None, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP,
                  jitter: bool = True) -> float:
    """Seconds before try ``attempt + 1`` after ``attempt`` failed: doubling from ``base``,
    at least the server's Retry-After, at most ``cap``."""
    delay = min(cap, base * 2 ** (attempt - 1))
    if retry_after is not None:
        delay = min(cap, max(delay, retry_after))
    if jitter:
        delay *= random.uniform(0.8, 1.2)
    return delay


class DeadLetters:
    """Writes a sink's undeliverable alerts to news.dlq and waits for Kafka's acknowledgement."""

    def __init__(self, producer, topic: str):
        self._producer = producer
        self.topic = topic

    def send(self, letters: Sequence[DeadLetter]) -> None:
        futures = [self._producer.send(self.topic, key=(d.source or "").encode() or None, value=d.encode())
                   for d in letters]
        for f in futures:
            f.get(timeout=60)


class SinkWorker:
    """Delivers one sink's notifications (see the module docstring); runs on the delivery loop."""

    def __init__(self, sink, ledger: Ledger, progress: Progress, dead_letters: DeadLetters, metrics: DeliveryMetrics,
                 settings: Settings, clock: Callable[[], float] = time.time, sleep=asyncio.sleep, jitter: bool = True):
        self.sink = sink
        self._ledger = ledger
        self._progress = progress
        self._dlq = dead_letters
        self._metrics = metrics
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._queue: asyncio.Queue[Delivery] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._next_send = 0.0
        # Guards _open, _deliveries and every Delivery's jobs/sealed, across both threads.
        self._lock = threading.Lock()
        self._open: dict[tuple[int, int], float] = {}  # (partition, offset) -> written
        self._deliveries: dict[str, Delivery] = {}  # notification_id -> not yet sealed
        self._tails: dict[str, asyncio.Future] = {}  # story_id -> its newest delivery's end
        self._retrying = 0
        self._tasks: set[asyncio.Task] = set()
        self.error: BaseException | None = None
        # the sink's digest (None: every notification is sent at once), and the alerts it holds
        self._digest = getattr(sink, "digest", None)
        self._held = 0
        metrics.oldest_pending.labels(sink=sink.kind).set_function(self.oldest_age)
        metrics.digest_held.labels(sink=sink.kind).set_function(lambda: self._held)

    # -- called from the consumer thread ----------------------------------------------------

    def submit(self, loop: asyncio.AbstractEventLoop, notification: Notification, jobs: Sequence[Job]) -> None:
        """Send ``notification``; ``jobs`` (alerts read, of this notification) finish with it.
        A job whose alert the sink already has in the ledger finishes at once; one for a
        notification already on its way joins that delivery instead of sending it twice."""
        if not routed(self.sink.route, notification):
            # not for this sink (its route): finished for it without a send, nothing to remember
            for job in jobs:
                self._progress.finish(job.partition, job.offset, job.token)
            return
        fresh: Delivery | None = None
        done: list[Job] = []
        with self._lock:
            for job in jobs:
                if self._ledger.done(self.sink.key, job.alert.alert_id, job.source):
                    done.append(job)
                    continue
                self._open[(job.partition, job.offset)] = job.written
                self._metrics.pending.labels(sink=self.sink.kind).inc()
                current = self._deliveries.get(notification.notification_id)
                if current is not None:
                    current.jobs.append(job)
                elif fresh is None:
                    fresh = self._deliveries[notification.notification_id] = Delivery(notification, [job])
                else:
                    fresh.jobs.append(job)
        for job in done:
            self._progress.finish(job.partition, job.offset, job.token)
        if fresh is not None:
            loop.call_soon_threadsafe(self._enqueue, fresh)

    def oldest_age(self) -> float:
        with self._lock:
            oldest = min(self._open.values(), default=None)
        return 0.0 if oldest is None else max(0.0, self._clock() - oldest)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._open)

    # -- on the delivery loop ---------------------------------------------------------------

    def _enqueue(self, d: Delivery) -> None:
        story = d.notification.story_id
        d.after = self._tails.get(story)
        d.finished = self._tails[story] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(d)

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._slots = asyncio.Semaphore(self.sink.concurrency)
        task = asyncio.get_running_loop().create_task(self._run(), name=f"deliver-{self.sink.kind}")
        self._keep(task)
        # a digest the sink held before a restart is sent even if the watchlist no longer asks for one
        if self._digest is not None or await asyncio.to_thread(self._ledger.held_alerts, self.sink.key):
            self._keep(asyncio.get_running_loop().create_task(self._digests(), name=f"digest-{self.sink.kind}"))

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while self.sink.batched and len(batch) < BATCH_MAX and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._slots.acquire()
            task = asyncio.get_running_loop().create_task(self._deliver(batch))
            task.add_done_callback(lambda _t: self._slots.release())
            self._keep(task)

    def _keep(self, task: asyncio.Task) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self.error is None:
            self.error = task.exception()
            log.error("alert sink %s: delivery stopped by an unexpected error", self.sink.kind,
                      exc_info=self.error)

    async def _pace(self) -> None:
        if not self.sink.rate_limit:
            return
        now = self._clock()
        wait = self._next_send - now
        self._next_send = max(now, self._next_send) + 1.0 / self.sink.rate_limit
        if wait > 0:
            await self._sleep(wait)

    async def _deliver(self, batch: list[Delivery]) -> None:
        try:
            mine = {id(d.finished) for d in batch}
            for d in batch:
                if d.after is not None and id(d.after) not in mine:
                    await asyncio.shield(d.after)
            if all(held_back(self._digest, self.sink.route, d.notification) for d in batch):
                await self._hold(batch)
            else:
                await self._attempt(batch)
        finally:
            for d in batch:
                if not d.finished.done():
                    d.finished.set_result(None)
                story = d.notification.story_id
                if self._tails.get(story) is d.finished:
                    del self._tails[story]

    async def _retry(self, send: Callable[[], Awaitable[None]], oldest: Callable[[], float],
                     waiting: Callable[[], int]) -> tuple[str, str, int]:
        """Send until it succeeds, is refused, or the oldest alert in it passes the maximum
        age: (outcome, error, failed attempts). ``waiting``: the alerts it carries (metrics)."""
        kind = self.sink.kind
        attempt = 0
        while True:
            await self._pace()
            try:
                await send()
                return "ok", "", attempt
            except Permanent as exc:
                return "failed", str(exc), attempt
            except Retryable as exc:
                attempt += 1
                delay = backoff_delay(attempt, exc.retry_after, self._settings.backoff_base,
                                      self._settings.backoff_cap, self._jitter)
                first, count = oldest(), waiting()
                if self._clock() + delay - first > self._settings.max_age:
                    return "expired", (f"gave up after {attempt} attempt(s) over {self._clock() - first:.0f}s "
                                       f"(max age {self._settings.max_age:.0f}s): {exc}"), attempt
                if attempt == 1:
                    self._retrying += count
                    self._metrics.retrying.labels(sink=kind).set(self._retrying)
                self._metrics.sink_deliveries.labels(sink=kind, outcome="retried").inc(count)
                log.debug("alert sink %s: attempt %d failed (%s); next in %.1fs", kind, attempt, exc, delay)
                await self._sleep(delay)

    def _retried(self, attempt: int, count: int) -> None:
        if attempt:
            self._retrying = max(0, self._retrying - count)
            self._metrics.retrying.labels(sink=self.sink.kind).set(self._retrying)

    async def _attempt(self, batch: list[Delivery]) -> None:
        kind = self.sink.kind

        def oldest() -> float:
            with self._lock:
                return min(j.written for d in batch for j in d.jobs)

        def waiting() -> int:
            with self._lock:
                return sum(len(d.jobs) for d in batch)

        outcome, error, attempt = await self._retry(lambda: self.sink.send([d.notification for d in batch]),
                                                    oldest, waiting)
        if outcome == "ok":
            # Every alert of the notification is delivered, read again or not: written (and
            # the deliveries sealed) under the lock, so a job joining meanwhile is covered.
            def settle() -> list[Job]:
                with self._lock:
                    jobs = [j for d in batch for j in d.jobs]
                    where = {j.alert.alert_id: j.source for j in jobs}
                    items = [(a, where.get(a, "")) for d in batch for a in d.notification.alert_ids]
                    self._ledger.record(self.sink.key, DELIVERED, items)
                    self._seal(batch)
                return jobs

            jobs = await self._until_done(settle, "write the ledger")
            if attempt:
                log.info("alert sink %s: delivered %d notification(s) after %d failed attempt(s)", kind,
                         len(batch), attempt)
        else:
            # Sealed first: an alert read after this is not in these dead letters, and gets its own.
            with self._lock:
                jobs = [j for d in batch for j in d.jobs]
                self._seal(batch)
            log.warning("alert sink %s: %d alert(s) to %s: %s", kind, len(jobs), self._dlq.topic, error)
            letters = [DeadLetter.wrap(j.raw, error=error, step=f"alerts.{kind}", source=j.source) for j in jobs]
            await self._until_done(lambda: self._dlq.send(letters), "write dead letters")
            items = [(j.alert.alert_id, j.source) for j in jobs]
            await self._until_done(lambda: self._ledger.record(self.sink.key, DEAD_LETTERED, items),
                                   "write the ledger")
        now = self._clock()
        self._finish_jobs(jobs)
        if outcome == "ok":
            for j in jobs:
                self._metrics.delivery_latency.labels(sink=kind).observe(max(0.0, now - _created(j)))
        self._retried(attempt, len(jobs))
        self._metrics.sink_deliveries.labels(sink=kind, outcome=outcome).inc(len(jobs))
        self._metrics.notifications.labels(sink=kind, outcome=outcome).inc(len(batch))

    def _finish_jobs(self, jobs: list[Job]) -> None:
        for j in jobs:
            self._progress.finish(j.partition, j.offset, j.token)
            with self._lock:
                self._open.pop((j.partition, j.offset), None)
        self._metrics.pending.labels(sink=self.sink.kind).dec(len(jobs))

    # -- digests ----------------------------------------------------------------------------

    async def _hold(self, batch: list[Delivery]) -> None:
        """The notification waits for the digest: in the ledger with its alerts' records, and
        its alerts finished for this sink (their offsets may be committed: the ledger has them)."""
        with self._lock:
            jobs = [j for d in batch for j in d.jobs]
            self._seal(batch)
        held = [HeldAlert(j.alert.alert_id, j.source, j.raw.decode("utf-8"), j.written) for j in jobs]
        now = self._clock()
        for d in batch:
            mine = [h for h in held if h.alert_id in set(d.notification.alert_ids)]
            await self._until_done(lambda n=d.notification, m=mine: self._ledger.hold(self.sink.key, n, m, at=now),
                                   "write the ledger")
        self._finish_jobs(jobs)
        self._held = await self._until_done(lambda: self._ledger.held_alerts(self.sink.key), "read the ledger")

    async def _digests(self) -> None:
        """At the end of every period: seal what the sink held, send the sealed digests. A sink
        whose digest was taken out of the watchlist sends what it still holds at once, once."""
        every = self._digest.every if self._digest is not None else None
        self._held = await self._until_done(lambda: self._ledger.held_alerts(self.sink.key), "read the ledger")
        while True:
            until = period_start(self._clock(), every) if every else self._clock() + 1.0
            await self._until_done(lambda u=until: self._ledger.seal_digests(self.sink.key, u, self._digest_id,
                                                                              DIGEST_MAX), "write the ledger")
            for sealed in await self._until_done(lambda: self._ledger.sealed_digests(self.sink.key),
                                                 "read the ledger"):
                await self._send_digest(sealed)
            if every is None:
                return
            now = self._clock()
            await self._sleep(max(0.0, period_end(now, every) - now))

    def _digest_id(self, until: float, part: int) -> str:
        return digest_id(self.sink.key, until, part)

    async def _send_digest(self, sealed: SealedDigest) -> None:
        kind = self.sink.kind
        d = make_digest(sealed.digest_id, sealed.since, sealed.until, sealed.notifications)
        count = len(sealed.alerts)
        # its age counts from the end of its period: the wait before it is the digest's point
        outcome, error, attempt = await self._retry(lambda: self.sink.send([d]), lambda: sealed.until, lambda: count)
        # every alert of its notifications leaves ``held`` (its position where the record is known)
        where = {a.alert_id: a.source for a in sealed.alerts}
        items = [(a, where.get(a, "")) for n in sealed.notifications for a in n.alert_ids]
        if outcome == "ok":
            await self._until_done(lambda: self._ledger.finish_digest(self.sink.key, d.digest_id, DELIVERED, items),
                                   "write the ledger")
            now = self._clock()
            for a in sealed.alerts:
                self._metrics.delivery_latency.labels(sink=kind).observe(max(0.0, now - _held_created(a)))
        else:
            log.warning("alert sink %s: digest %s, %d alert(s) to %s: %s", kind, d.digest_id, count,
                        self._dlq.topic, error)
            letters = [DeadLetter.wrap(a.raw.encode("utf-8"), error=error, step=f"alerts.{kind}", source=a.source)
                       for a in sealed.alerts]
            await self._until_done(lambda: self._dlq.send(letters), "write dead letters")
            await self._until_done(lambda: self._ledger.finish_digest(self.sink.key, d.digest_id, DEAD_LETTERED,
                                                                      items), "write the ledger")
        self._held = await self._until_done(lambda: self._ledger.held_alerts(self.sink.key), "read the ledger")
        self._retried(attempt, count)
        self._metrics.sink_deliveries.labels(sink=kind, outcome=outcome).inc(count)
        self._metrics.notifications.labels(sink=kind, outcome=outcome).inc(len(sealed.notifications))
        self._metrics.digests.labels(sink=kind, outcome=outcome).inc()

    def _seal(self, batch: list[Delivery]) -> None:
        for d in batch:
            d.sealed = True
            if self._deliveries.get(d.notification.notification_id) is d:
                del self._deliveries[d.notification.notification_id]

    async def _until_done(self, work: Callable[[], object], what: str):
        """Kafka or the disk refusing is an outage, not the alert's fault: wait and try again,
        forever (nothing is committed meanwhile)."""
        from kafka.errors import KafkaError

        attempt = 0
        while True:
            try:
                return await asyncio.to_thread(work)
            except (KafkaError, OSError) as exc:
                attempt += 1
                delay = backoff_delay(attempt, None, 1.0, 30.0, self._jitter)
                log.error("alert sink %s: cannot %s (%s); again in %.0fs", self.sink.kind, what, exc, delay)
                await self._sleep(delay)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.sink.close()


def _created(job: Job) -> float:
    try:
        return parse_time(job.alert.created_at).timestamp()
    except ValueError:
        return job.written


def _held_created(a: HeldAlert) -> float:
    try:
        return parse_time(decode_alert(a.raw).created_at).timestamp()
    except (RecordError, ValueError):
        return a.written


class DeliveryLoop:
    """The asyncio loop of the sink workers, in a thread of its own."""

    def __init__(self, workers: Sequence[SinkWorker]):
        self.workers = list(workers)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="newsradar-deliver", daemon=True)

    def start(self) -> None:
        self._thread.start()
        for w in self.workers:
            asyncio.run_coroutine_threadsafe(w.start(), self.loop).result(timeout=10)

    def error(self) -> BaseException | None:
        return next((w.error for w in self.workers if w.error is not None), None)

    def stop(self) -> None:
        async def close_all():
            await asyncio.gather(*(w.close() for w in self.workers))

        asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


def start_new_partitions(consumer_factory, settings: Settings, now: float | None = None) -> dict[int, int]:
    """For each partition of news.alerts the group has no committed offset for: commit the
    first offset written in the last ``start_window`` (the end when there is none). Returns
    what was committed, by partition."""
    from kafka import TopicPartition
    from kafka.errors import CommitFailedError
    from kafka.structs import OffsetAndMetadata

    now = time.time() if now is None else now
    topic = settings.alerts_topic
    consumer = consumer_factory(group_id=settings.group_id, client_id="newsradar-deliver-start")
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not parts:
            raise LookupError(f"topic {topic} does not exist at {settings.bootstrap_servers}")
        fresh = [tp for tp in parts if consumer.committed(tp) is None]
        if not fresh:
            return {}
        since_ms = int((now - settings.start_window) * 1000)
        found = consumer.offsets_for_times({tp: since_ms for tp in fresh})
        ends = consumer.end_offsets(fresh)
        offsets = {tp: found[tp].offset if found.get(tp) is not None else ends[tp] for tp in fresh}
        consumer.assign(fresh)
        try:
            consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
        except CommitFailedError as exc:
            # another member of the group is running and owns them: it decides where they start
            log.info("not setting start offsets for %s: %s", topic, exc)
            return {}
        return {tp.partition: o for tp, o in offsets.items()}
    finally:
        consumer.close()


class Rebalances:
    """What a rebalance does to :class:`Progress`: a partition revoked and not assigned back
    is another member's now, and forgotten; one assigned back is kept as it was, reads in
    flight included. kafka-python (3.0.12) keeps the fetch position of a partition that stays
    (``assign_from_subscribed``), so its records are not read again: forgetting them would let
    the commit pass records still in flight, and a kill then loses them. (A partition whose
    position is reset is read again from the committed offset; each read is its own entry.)"""

    def __init__(self, progress: Progress, echo: Callable[[str], None]):
        self._progress = progress
        self._echo = echo
        self._revoked: set[int] = set()

    def revoked(self, partitions) -> None:
        self._revoked |= set(partitions)

    def assigned(self, partitions) -> None:
        kept = set(partitions)
        gone = self._revoked - kept
        self._revoked = set()
        if gone:
            self._progress.forget(gone)
        self._echo(f"deliver: assigned partitions {sorted(kept)}"
                   + (f"; {sorted(gone)} went to another member" if gone else ""))


class Deliverer:
    """The consumer loop (see the module docstring). ``run()`` returns the exit code."""

    def __init__(self, settings: Settings, sinks, ledger: Ledger | None = None, metrics: DeliveryMetrics | None = None,
                 echo: Callable[[str], None] = print):
        self.settings = settings
        self.sinks = list(sinks)
        self.ledger = ledger or Ledger()
        self.metrics = metrics or DeliveryMetrics()
        self.echo = echo
        self.progress = Progress()
        self.grouper: Grouper[tuple[Job, list[SinkWorker]]] = Grouper(settings.group_window)
        self.stop_requested = threading.Event()
        self.decode_errors = 0
        self._read_again_seen = 0
        for sink in self.sinks:
            if hasattr(sink, "journal"):
                # the file sink: exactly once across restarts; Telegram: the message each story edits
                sink.journal = self.ledger

    def _consumer(self, **extra):
        from newsradar.kafka import make_consumer

        return make_consumer(self.settings.bootstrap_servers, enable_auto_commit=False, **extra)

    def run(self) -> int:
        from kafka import ConsumerRebalanceListener

        from newsradar.kafka import make_producer

        s = self.settings
        started = start_new_partitions(self._consumer, s)
        if started:
            self.echo(f"deliver: new group {s.group_id}: starting at the alerts of the last {s.start_window:.0f}s "
                      f"(offsets {started})")
        producer = make_producer(s.bootstrap_servers, client_id="newsradar-deliver")
        dead_letters = DeadLetters(producer, s.dlq_topic)
        workers = [SinkWorker(sink, self.ledger, self.progress, dead_letters, self.metrics, s) for sink in self.sinks]
        loop = DeliveryLoop(workers)
        progress = self.progress

        tracker = Rebalances(progress, self.echo)

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                tracker.revoked(tp.partition for tp in revoked)

            def on_partitions_assigned(self, assigned):
                tracker.assigned(tp.partition for tp in assigned)

        listener = Listener()
        consumer = self._join(listener)
        loop.start()
        self.echo(f"deliver: reading {s.alerts_topic} at {s.bootstrap_servers} as group {s.group_id}; "
                  f"sinks: {', '.join(w.sink.key for w in workers) or 'none'}")
        code = 0
        last_commit = last_prune = time.monotonic()
        unassigned_since: float | None = None
        try:
            while not self.stop_requested.is_set():
                error = loop.error()
                if error is not None:
                    self.echo(f"deliver: stopping: {type(error).__name__}: {error}")
                    code = 1
                    break
                assigned = consumer.assignment()
                if self.progress.pending() >= s.max_pending:
                    consumer.pause(*assigned)
                elif consumer.paused():
                    consumer.resume(*consumer.paused())
                if assigned:
                    unassigned_since = None
                elif unassigned_since is None:
                    unassigned_since = time.monotonic()
                elif time.monotonic() - unassigned_since > STUCK_AFTER and self._group_is_empty():
                    log.warning("the consumer has no partitions and group %s no member after %.0fs: joining again "
                                "with a new consumer", s.group_id, STUCK_AFTER)
                    consumer.close(autocommit=False)
                    self.progress.forget_all()
                    consumer = self._join(listener)
                    unassigned_since = None
                for records in consumer.poll(timeout_ms=self._poll_ms()).values():
                    for rec in records:
                        self._take(rec, workers, loop.loop, dead_letters)
                self._close_groups(self.grouper.due(time.monotonic()), loop.loop)
                if time.monotonic() - last_commit >= s.commit_interval:
                    self._commit(consumer)
                    last_commit = time.monotonic()
                if time.monotonic() - last_prune >= 3600:
                    self.ledger.prune()
                    last_prune = time.monotonic()
            if code == 0:
                self._close_groups(self.grouper.flush(), loop.loop)
                self._drain(consumer)
        finally:
            loop.stop()
            consumer.close(autocommit=False)
            producer.close(10)
            self.ledger.close()
        return code

    def _join(self, listener):
        s = self.settings
        # A killed member holds its partitions until its session expires: keep that short.
        consumer = self._consumer(group_id=s.group_id, client_id="newsradar-deliver", auto_offset_reset="earliest",
                                  max_poll_records=500, session_timeout_ms=10_000, heartbeat_interval_ms=2_000)
        # The topic's metadata before the join: a leader without it assigns nothing, and the
        # group has to rebalance again at once.
        consumer.partitions_for_topic(s.alerts_topic)
        consumer.subscribe([s.alerts_topic], listener=listener)
        return consumer

    def _group_is_empty(self) -> bool:
        from kafka.errors import KafkaError

        from newsradar.kafka import make_admin

        admin = make_admin(self.settings.bootstrap_servers, client_id="newsradar-deliver-check")
        try:
            info = admin.describe_groups([self.settings.group_id]).get(self.settings.group_id) or {}
        except KafkaError as exc:
            log.info("cannot describe group %s: %s", self.settings.group_id, exc)
            return False
        finally:
            admin.close()
        return not info.get("members")

    def _take(self, rec, workers: list[SinkWorker], loop, dead_letters: DeadLetters) -> None:
        source = f"{rec.topic}/{rec.partition}/{rec.offset}"
        try:
            alert = decode_alert(rec.value)
        except RecordError as exc:
            # Not an alert the pipeline writes; nothing to deliver. Kept, with the reason.
            self.decode_errors += 1
            log.warning("%s is not an alert (%s): to %s", source, exc, dead_letters.topic)
            dead_letters.send([DeadLetter.wrap(rec.value or b"", error=f"RecordError: {exc}", step=DECODE_STEP,
                                               source=source)])
            self.progress.add(rec.partition, rec.offset, 0)
            return
        written = rec.timestamp / 1000.0 if rec.timestamp and rec.timestamp > 0 else time.time()
        needed = [w for w in workers if not self.ledger.done(w.sink.key, alert.alert_id, source)]
        token = self.progress.add(rec.partition, rec.offset, len(needed))
        if not needed:
            return
        job = Job(alert, bytes(rec.value), rec.partition, rec.offset, written, source, token)
        grouped = self.ledger.notification_of(alert.alert_id)
        if grouped is not None:
            # read again (a restart, a replay): it belongs to the notification it was grouped into
            for w in needed:
                w.submit(loop, grouped, [job])
            return
        self.grouper.add(alert.story_id, (job, needed), time.monotonic())

    def _poll_ms(self) -> int:
        due = self.grouper.next_due()
        if due is None:
            return POLL_MS
        return max(0, min(POLL_MS, int((due - time.monotonic()) * 1000) + 1))

    def _close_groups(self, groups: list[Group[tuple[Job, list[SinkWorker]]]], loop) -> None:
        """Each closed group becomes the story's next notification: written to the ledger
        with its alerts, then handed to the sinks that need its alerts."""
        for group in groups:
            alerts = list({job.alert.alert_id: job.alert for job, _ in group.items}.values())
            notification = build(alerts, self.ledger.last_notification(group.story_id))
            self.ledger.add_notification(notification)
            by_worker: dict[int, tuple[SinkWorker, list[Job]]] = {}
            for job, needed in group.items:
                for w in needed:
                    by_worker.setdefault(id(w), (w, []))[1].append(job)
            for w, jobs in by_worker.values():
                w.submit(loop, notification, jobs)

    def _commit(self, consumer) -> None:
        from kafka import TopicPartition
        from kafka.errors import CommitFailedError, KafkaError
        from kafka.structs import OffsetAndMetadata

        if self.progress.read_again > self._read_again_seen:
            log.warning("%d record(s) of %s read again at offsets read before (a rebalance or a position reset); "
                        "their earlier reads no longer count", self.progress.read_again - self._read_again_seen,
                        self.settings.alerts_topic)
            self._read_again_seen = self.progress.read_again
        offsets = self.progress.committable()
        if not offsets:
            return
        topic = self.settings.alerts_topic
        try:
            consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})
        except CommitFailedError as exc:
            # a rebalance took partitions away: their records are the new owner's now
            log.info("commit refused (%s); the group rebalanced", exc)
            return
        except KafkaError as exc:
            log.warning("commit failed (%s); trying again", exc)
            return
        self.progress.committed(offsets)

    def _drain(self, consumer) -> None:
        """On a stop: give the sinks up to ``stop_timeout`` to finish what was read, commit."""
        deadline = time.monotonic() + self.settings.stop_timeout
        consumer.pause(*consumer.assignment())
        while self.progress.pending() and time.monotonic() < deadline:
            consumer.poll(timeout_ms=100)
        self._commit(consumer)
        left = self.progress.pending()
        if left:
            self.echo(f"deliver: stopped with {left} alert(s) not finished by every sink; they are read again "
                      "on restart (the ledger skips the sinks that took them)")
        else:
            self.echo("deliver: stopped; everything read was delivered or dead-lettered, and committed")
