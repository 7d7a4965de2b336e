"""Kafka at the edges of the pipeline: read ``news.raw``, write the outputs, commit offsets.

Guarantees (docs/pipeline.md explains the reasoning and what was measured):

* :class:`ReadFromKafka` reads every partition of a topic with kafka-python, one Beam element
  per partition, as a splittable DoFn whose restriction is ``OffsetRange(start, ∞)``. It only
  ever checkpoints (never splits), assigns and seeks to the restriction start on every call,
  claims each offset before emitting the record, and returns after a bounded time so the
  runner can checkpoint. New partitions are picked up by a discovery loop.
* Each record is emitted at its Kafka timestamp, raised if needed to the partition's
  watermark, so no record is ever behind the watermark its reader has declared (event times
  never go backwards within a partition). The watermark follows record timestamps and is
  moved to ``now - idle_lag`` while a partition has nothing new.
* The reader never commits. After each call it emits a progress marker ``(partition, next
  offset)`` stamped with the time of the last record read. :class:`CommitOffsets` commits that
  offset only when the watermark after every Kafka write has passed that time, i.e. when every
  record before the offset has been written and flushed. A restart therefore resumes at a
  point where nothing before it is lost; records written after the last commit are read
  again (at least once).
* :class:`WriteToKafka` builds one producer per worker in ``setup()`` with
  :func:`newsradar.kafka.make_producer`, flushes it in ``finish_bundle`` and fails the bundle
  if any send failed, so the runner retries the bundle and nothing is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.metrics import Metrics
from apache_beam.transforms import userstate
from apache_beam.transforms.core import RestrictionProvider, WatermarkEstimatorProvider
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Duration, Timestamp

from newsradar.kafka import make_producer
from newsradar.metrics import pipeline_metrics
from newsradar.records import Alert, DeadLetter, TaggedArticle

log = logging.getLogger(__name__)

# The last offset an unbounded restriction can reach; Kafka offsets are signed 64-bit.
_END_OF_TIME = 2**63 - 1
# The smallest step of time in the portable model: element timestamps, watermarks and timers
# travel in milliseconds, so all our arithmetic stays in whole milliseconds. (With timers set
# one microsecond after a marker, Prism never committed anything: the timer came back
# truncated onto the marker's millisecond, never "after" it.)
_TICK = Duration(micros=1000)
PROGRESS = "progress"


class KafkaWriteError(RuntimeError):
    """A send the broker did not acknowledge; raised in finish_bundle to fail the bundle."""


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """One record read from Kafka, as it travels into the pipeline."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes

    @property
    def source(self) -> str:
        """Where the record came from, as stored in a dead letter's ``source``."""
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True)
class ReadSettings:
    """How the pipeline reads and commits. Plain values, so the DoFns stay picklable."""

    bootstrap_servers: str
    group_id: str = "newsradar-pipeline"
    # Stop at the end offsets seen at start instead of reading forever (bounded replay).
    stop_at_end: bool = False
    # A call returns after this long or this many records, whichever comes first.
    max_call_seconds: float = 1.0
    max_records_per_call: int = 2000
    # How long one poll waits for data, and how soon an idle partition is polled again.
    poll_timeout_ms: int = 200
    idle_recheck_seconds: float = 0.5
    # An idle partition's watermark advances to wall clock minus this much.
    idle_lag_seconds: float = 5.0
    partition_discovery_seconds: float = 30.0
    client_id: str = "newsradar-pipeline"
    extra_consumer_config: dict = field(default_factory=dict)

    def consumer(self, with_group: bool = False):
        from kafka import KafkaConsumer

        return KafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            group_id=self.group_id if with_group else None,
            enable_auto_commit=False,
            # Only used when a seek lands outside the log (retention removed it): take what is left.
            auto_offset_reset="earliest",
            max_poll_records=self.max_records_per_call,
            # Partition discovery relies on metadata being refreshed this often.
            metadata_max_age_ms=int(self.partition_discovery_seconds * 1000),
            **self.extra_consumer_config,
        )


# ---------------------------------------------------------------------------
# Positions seen by this process: lets a local run stop cleanly (see pipelines/run.py).


class LocalProgress:
    """Read and committed positions of the readers running in this process.

    Only meaningful when the workers run inside the launching process (LOOPBACK on Prism):
    the launcher asks the readers to stop taking new records, then waits until everything
    read has been committed before it cancels the job. On a cluster runner, use the runner's
    own stop (Flink: stop with a savepoint).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.read: dict[tuple[str, int], int] = {}
        self.committed: dict[tuple[str, int], int] = {}
        self.paused: set[tuple[str, int]] = set()

    def request_stop(self) -> None:
        self._stop.set()

    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def note_read(self, tp: tuple[str, int], next_offset: int) -> None:
        with self._lock:
            self.read[tp] = max(next_offset, self.read.get(tp, next_offset))

    def note_paused(self, tp: tuple[str, int]) -> None:
        with self._lock:
            self.paused.add(tp)

    def note_committed(self, tp: tuple[str, int], offset: int) -> None:
        with self._lock:
            self.committed[tp] = max(offset, self.committed.get(tp, offset))

    def settled(self) -> bool:
        """True when every reader has paused and everything read has been committed."""
        with self._lock:
            return all(tp in self.paused for tp in self.read) and all(
                self.committed.get(tp, -1) >= offset for tp, offset in self.read.items()
            )

    def uncommitted(self) -> dict[str, int]:
        with self._lock:
            return {
                f"{t}/{p}": offset - self.committed.get((t, p), 0)
                for (t, p), offset in self.read.items()
                if self.committed.get((t, p), -1) < offset
            }


LOCAL_PROGRESS = LocalProgress()


# ---------------------------------------------------------------------------
# read


class _CheckpointOnlyTracker(OffsetRestrictionTracker):
    """An offset tracker that agrees to checkpoints (split at 0) and refuses every other split:
    one partition is read in order by one reader, never in parallel pieces."""

    def __init__(self, restriction: OffsetRange, bounded: bool):
        super().__init__(restriction)
        self._bounded = bounded

    def try_split(self, fraction_of_remainder):
        if fraction_of_remainder != 0:
            return None
        return super().try_split(0)

    def is_bounded(self):
        return self._bounded


class _PartitionRestrictions(RestrictionProvider):
    """Where a partition's reading starts: the group's committed offset, else the beginning."""

    def __init__(self, settings: ReadSettings):
        self._settings = settings

    def initial_restriction(self, element):
        from kafka import TopicPartition

        topic, partition = element
        tp = TopicPartition(topic, partition)
        consumer = self._settings.consumer(with_group=True)
        try:
            committed = consumer.committed(tp)
            start = committed if committed is not None else consumer.beginning_offsets([tp])[tp]
            stop = consumer.end_offsets([tp])[tp] if self._settings.stop_at_end else _END_OF_TIME
        finally:
            consumer.close()
        log.info("reading %s/%d from offset %d (%s)", topic, partition, start,
                 "committed" if committed is not None else "beginning, nothing committed")
        return OffsetRange(start, max(start, stop))

    def create_tracker(self, restriction):
        return _CheckpointOnlyTracker(restriction, bounded=self._settings.stop_at_end)

    def split(self, element, restriction):
        yield restriction

    def restriction_size(self, element, restriction):
        # Unbounded work has no meaningful size; the runner only needs a positive number.
        return 1.0 if restriction.stop == _END_OF_TIME else float(restriction.size())

    def truncate(self, element, restriction):
        # On drain, stop reading: what was not read stays uncommitted and is read next time.
        return None


class _WatermarkFromRecords(WatermarkEstimatorProvider):
    """A manual watermark that starts at the beginning of time, so nothing the reader emits
    is late until the reader itself has seen a record."""

    def initial_estimator_state(self, element, restriction):
        return MIN_TIMESTAMP

    def create_watermark_estimator(self, estimator_state):
        return ManualWatermarkEstimator(estimator_state)


def _now_ms() -> Timestamp:
    return Timestamp(micros=int(time.time() * 1000) * 1000)


def _just_after(micros: int) -> Timestamp:
    """The first whole millisecond after ``micros``."""
    return Timestamp(micros=(micros // 1000 + 1) * 1000)


class _ReadPartition(beam.DoFn, RestrictionProvider):
    """Read one partition for a bounded time, then checkpoint (see module docstring).

    The DoFn is its own restriction provider (delegating to :class:`_PartitionRestrictions`)
    because the provider needs the settings, which a class-level default cannot carry.
    """

    def __init__(self, settings: ReadSettings, progress: LocalProgress | None = None):
        super().__init__()
        self._settings = settings
        self._restrictions = _PartitionRestrictions(settings)
        self._progress = progress
        self._records = Metrics.counter("ReadFromKafka", "records")

    # restriction provider

    def initial_restriction(self, element):
        return self._restrictions.initial_restriction(element)

    def create_tracker(self, restriction):
        return self._restrictions.create_tracker(restriction)

    def split(self, element, restriction):
        return self._restrictions.split(element, restriction)

    def restriction_size(self, element, restriction):
        return self._restrictions.restriction_size(element, restriction)

    def truncate(self, element, restriction):
        return self._restrictions.truncate(element, restriction)

    # DoFn

    def setup(self):
        self._consumer = self._settings.consumer()
        self._lag = {}

    def teardown(self):
        consumer = getattr(self, "_consumer", None)
        if consumer is not None:
            consumer.close()

    def _lag_gauge(self, topic: str, partition: int):
        key = (topic, partition)
        if key not in self._lag:
            self._lag[key] = pipeline_metrics().consumer_lag.labels(topic, str(partition))
        return self._lag[key]

    def read(self, element, tracker, watermark):
        from kafka import TopicPartition

        topic, partition = element
        tp = TopicPartition(topic, partition)
        progress = self._progress or LOCAL_PROGRESS
        restriction = tracker.current_restriction()
        position = restriction.start
        if progress.stop_requested():
            # Asked to stop: take nothing new, and let the watermark pass what was emitted so
            # the commit of everything already read can complete.
            progress.note_paused((topic, partition))
            watermark.set_watermark(max(watermark.current_watermark() + _TICK, _now_ms()))
            tracker.defer_remainder(Duration(self._settings.idle_recheck_seconds))
            return
        consumer = self._consumer
        if consumer.assignment() != {tp}:
            consumer.assign([tp])
        # Seek on every call: the restriction, not the client, says where this call starts.
        consumer.seek(tp, position)
        deadline = time.monotonic() + self._settings.max_call_seconds
        emitted = 0
        last_ts = None
        exhausted = False
        while not exhausted and emitted < self._settings.max_records_per_call and time.monotonic() < deadline:
            batch = consumer.poll(
                timeout_ms=self._settings.poll_timeout_ms,
                max_records=self._settings.max_records_per_call - emitted,
            ).get(tp, [])
            if not batch:
                break
            for record in batch:
                if not tracker.try_claim(record.offset):
                    # The restriction ends here (a bounded replay reached its end offset).
                    exhausted = True
                    break
                ts = max(Timestamp(micros=record.timestamp * 1000), watermark.current_watermark())
                watermark.set_watermark(ts)
                last_ts = ts
                position = record.offset + 1
                emitted += 1
                yield TimestampedValue(
                    KafkaRecord(topic, partition, record.offset, record.timestamp, record.key, record.value), ts
                )
            if progress.stop_requested():
                break
        self._records.inc(emitted)
        if last_ts is not None:
            # Later records are stamped at least this (see above), so the watermark can pass
            # the last one now and its commit need not wait for the next record.
            watermark.set_watermark(last_ts + _TICK)
            progress.note_read((topic, partition), position)
            yield beam.pvalue.TaggedOutput(PROGRESS, TimestampedValue((f"{topic}:{partition}", position), last_ts))
        if exhausted:
            return
        end = consumer.highwater(tp)
        if end is None or (emitted == 0 and position >= end):
            end = consumer.end_offsets([tp])[tp]
        self._lag_gauge(topic, partition).set(max(0, end - position))
        if self._settings.stop_at_end and position >= min(end, restriction.stop):
            # Nothing left below the bounded end: claiming the end finishes the restriction.
            tracker.try_claim(restriction.stop)
            return
        if position >= end:
            # Caught up: records that arrive later carry (at least) about the current time.
            idle = _now_ms() - Duration(micros=int(self._settings.idle_lag_seconds * 1000) * 1000)
            if idle > watermark.current_watermark():
                watermark.set_watermark(idle)
            tracker.defer_remainder(Duration(self._settings.idle_recheck_seconds))
        else:
            tracker.defer_remainder(Duration(0))


class _ReadPartitionBounded(_ReadPartition):
    def process(
        self,
        element,
        tracker=beam.DoFn.RestrictionParam(),
        watermark=beam.DoFn.WatermarkEstimatorParam(_WatermarkFromRecords()),
    ):
        yield from self.read(element, tracker, watermark)


class _ReadPartitionUnbounded(_ReadPartition):
    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        element,
        tracker=beam.DoFn.RestrictionParam(),
        watermark=beam.DoFn.WatermarkEstimatorParam(_WatermarkFromRecords()),
    ):
        yield from self.read(element, tracker, watermark)


class _PartitionNumbers(RestrictionProvider):
    """Discovery's restriction: partition numbers not emitted yet, ``[next, ∞)``."""

    def initial_restriction(self, element):
        return OffsetRange(0, _END_OF_TIME)

    def create_tracker(self, restriction):
        return _CheckpointOnlyTracker(restriction, bounded=False)

    def split(self, element, restriction):
        yield restriction

    def restriction_size(self, element, restriction):
        return 1.0

    def truncate(self, element, restriction):
        return None


class _DiscoverPartitions(beam.DoFn):
    """Emit ``(topic, partition)`` for every partition of the topic, then look again later.

    Kafka numbers partitions 0..n-1 and only adds, so the restriction position is the next
    partition number to emit: each partition is emitted exactly once, across checkpoints.
    Partitions are stamped at the beginning of time: their readers set the real watermark.
    """

    def __init__(self, settings: ReadSettings):
        self._settings = settings

    def setup(self):
        self._consumer = self._settings.consumer()

    def teardown(self):
        self._consumer.close()

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        topic,
        tracker=beam.DoFn.RestrictionParam(_PartitionNumbers()),
        watermark=beam.DoFn.WatermarkEstimatorParam(ManualWatermarkEstimator.default_provider()),
    ):
        # partitions_for_topic answers from cached metadata, refreshed every discovery period.
        partitions = self._consumer.partitions_for_topic(topic) or set()
        for partition in sorted(partitions):
            if partition < tracker.current_restriction().start:
                continue
            if not tracker.try_claim(partition):
                return
            log.info("discovered partition %s/%d", topic, partition)
            yield TimestampedValue((topic, partition), MIN_TIMESTAMP)
        now = _now_ms()
        if watermark.current_watermark() is None or now > watermark.current_watermark():
            watermark.set_watermark(now)
        tracker.defer_remainder(Duration(self._settings.partition_discovery_seconds))


def list_partitions(settings: ReadSettings, topic: str) -> list[tuple[str, int]]:
    consumer = settings.consumer()
    try:
        partitions = consumer.partitions_for_topic(topic)
    finally:
        consumer.close()
    if not partitions:
        raise KafkaWriteError(f"topic {topic!r} has no partitions at {settings.bootstrap_servers}")
    return [(topic, p) for p in sorted(partitions)]


class ReadFromKafka(beam.PTransform):
    """Read a topic: returns a tagged result with ``records`` (:class:`KafkaRecord`, stamped
    with their Kafka time) and ``progress`` (markers for :class:`CommitOffsets`).

    Unbounded (streaming) unless ``settings.stop_at_end``: then it reads each partition from
    the committed offset to the end offset seen at start, and finishes.
    """

    def __init__(self, topic: str, settings: ReadSettings, progress: LocalProgress | None = None):
        super().__init__()
        self._topic = topic
        self._settings = settings
        self._progress = progress

    def expand(self, pbegin):
        if self._settings.stop_at_end:
            partitions = pbegin | "ListPartitions" >> beam.Create(list_partitions(self._settings, self._topic))
            reader = _ReadPartitionBounded(self._settings, self._progress)
        else:
            partitions = (
                pbegin
                | "Topic" >> beam.Create([self._topic])
                | "DiscoverPartitions" >> beam.ParDo(_DiscoverPartitions(self._settings))
            )
            reader = _ReadPartitionUnbounded(self._settings, self._progress)
        return partitions | "ReadPartitions" >> beam.ParDo(reader).with_outputs(PROGRESS, main="records")


# ---------------------------------------------------------------------------
# commit


class _CommitWhenDurable(beam.DoFn):
    """Keyed by ``topic:partition``. Holds progress markers until the watermark passes their
    time, then commits the highest offset among them.

    The watermark here is the minimum over the progress markers and the outputs of every
    Kafka write (they are flattened into this step's input), and a write's output watermark
    passes a time only after the bundles holding older records have been flushed. So when the
    timer for a marker fires, every record before its offset has been written.
    """

    PENDING = userstate.BagStateSpec("pending", beam.coders.TupleCoder((beam.coders.VarIntCoder(), beam.coders.VarIntCoder())))
    DUE = userstate.TimerSpec("due", userstate.TimeDomain.WATERMARK)

    def __init__(self, settings: ReadSettings, progress: LocalProgress | None = None):
        self._settings = settings
        self._progress = progress
        self._commits = Metrics.counter("CommitOffsets", "commits")

    def setup(self):
        self._consumer = self._settings.consumer(with_group=True)

    def teardown(self):
        self._consumer.close()

    def process(
        self,
        marker,
        ts=beam.DoFn.TimestampParam,
        pending=beam.DoFn.StateParam(PENDING),
        due=beam.DoFn.TimerParam(DUE),
    ):
        _key, next_offset = marker
        pending.add((ts.micros, next_offset))
        earliest = min(t for t, _ in pending.read())
        # Just after the marker: records stamped at the marker's time must be behind the
        # watermark when the timer fires.
        due.set(_just_after(earliest))

    @userstate.on_timer(DUE)
    def on_due(
        self,
        key=beam.DoFn.KeyParam,
        fired=beam.DoFn.TimestampParam,
        pending=beam.DoFn.StateParam(PENDING),
        due=beam.DoFn.TimerParam(DUE),
    ):
        markers = list(pending.read())
        ready = [m for m in markers if m[0] < fired.micros]
        rest = [m for m in markers if m[0] >= fired.micros]
        if ready:
            self._commit(key, max(offset for _, offset in ready))
        pending.clear()
        for m in rest:
            pending.add(m)
        if rest:
            due.set(_just_after(min(t for t, _ in rest)))

    def _commit(self, key: str, offset: int) -> None:
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        topic, _, partition = key.rpartition(":")
        tp = TopicPartition(topic, int(partition))
        # Blocks until the broker accepted the commit; a non-retriable error fails the bundle
        # and the markers stay in state for the retry.
        self._consumer.commit({tp: OffsetAndMetadata(offset, "", -1)}, timeout_ms=30_000)
        self._commits.inc()
        (self._progress or LOCAL_PROGRESS).note_committed((topic, int(partition)), offset)
        log.debug("committed %s at %d", key, offset)


class CommitOffsets(beam.PTransform):
    """Commit read positions once every write listed in ``after`` has made them durable.

    Apply to the ``progress`` output of :class:`ReadFromKafka`; ``after`` are the outputs of
    the :class:`WriteToKafka` steps (they carry no elements, only their watermark).
    """

    def __init__(self, settings: ReadSettings, after: Iterable, progress: LocalProgress | None = None):
        super().__init__()
        self._settings = settings
        self._after = list(after)
        self._progress = progress

    def expand(self, markers):
        return (
            (markers, *self._after)
            | "AfterWrites" >> beam.Flatten()
            | "CommitWhenDurable" >> beam.ParDo(_CommitWhenDurable(self._settings, self._progress))
        )


# ---------------------------------------------------------------------------
# write


def message_for(record) -> tuple[bytes | None, bytes]:
    """The Kafka key and value of an output record: keyed by its identity, so that repeats
    land on one partition and any consumer can drop them by key."""
    if isinstance(record, TaggedArticle):
        return record.article.article_id.encode("utf-8"), record.encode()
    if isinstance(record, Alert):
        return record.alert_id.encode("utf-8"), record.encode()
    if isinstance(record, DeadLetter):
        return (record.source.encode("utf-8") if record.source else None), record.encode()
    raise TypeError(f"no Kafka encoding for {type(record).__name__}")


class _SendToKafka(beam.DoFn):
    """One producer per worker; a bundle succeeds only if every send in it was acknowledged."""

    def __init__(self, topic: str, bootstrap_servers: str, client_id: str):
        self._topic = topic
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self._sent = Metrics.counter("WriteToKafka", f"sent_{topic}")
        self._failed = Metrics.counter("WriteToKafka", f"failed_{topic}")

    def setup(self):
        self._producer = make_producer(self._bootstrap, client_id=self._client_id)

    def start_bundle(self):
        self._futures = []

    def process(self, record):
        key, value = message_for(record)
        self._futures.append(self._producer.send(self._topic, key=key, value=value))
        return ()

    def finish_bundle(self):
        futures, self._futures = self._futures, []
        if not futures:
            return
        self._producer.flush()
        errors = [f.exception for f in futures if f.failed()]
        undone = sum(1 for f in futures if not f.is_done)
        self._sent.inc(len(futures) - len(errors) - undone)
        if errors or undone:
            self._failed.inc(len(errors) + undone)
            raise KafkaWriteError(
                f"{len(errors) + undone} of {len(futures)} sends to {self._topic} were not acknowledged "
                f"(first error: {errors[0] if errors else 'still pending after flush'}); failing the bundle so it is retried"
            )

    def teardown(self):
        producer = getattr(self, "_producer", None)
        if producer is not None:
            producer.close()


class WriteToKafka(beam.PTransform):
    """Write output records (TaggedArticle, Alert, DeadLetter) to a topic.

    Returns an empty PCollection whose watermark says how far the writes are durable; pass
    it to :class:`CommitOffsets`.
    """

    def __init__(self, topic: str, bootstrap_servers: str, client_id: str = "newsradar-pipeline"):
        super().__init__()
        self._topic = topic
        self._bootstrap = bootstrap_servers
        self._client_id = client_id

    def expand(self, records):
        return records | "Send" >> beam.ParDo(_SendToKafka(self._topic, self._bootstrap, self._client_id))
