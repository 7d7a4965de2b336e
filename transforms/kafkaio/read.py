"""ReadFromKafka: an unbounded (or bounded-replay) read of a topic as splittable DoFns.

One element per partition; restriction ``OffsetRange(start, ∞)``, checkpoint-only; assign and
seek on every call; each offset claimed before its record is emitted; a bounded time per
call. Partitions are discovered periodically by a second splittable DoFn. See the package
docstring for the timestamp, watermark and commit guarantees.
"""

from __future__ import annotations

import logging
import time

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.metrics import Metrics
from apache_beam.transforms.core import RestrictionProvider, WatermarkEstimatorProvider
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Duration

from newsradar.metrics import pipeline_metrics
from newsradar.records import MAX_CLOCK_SKEW

from .common import TICK, KafkaRecord, ReadSettings, event_time, millis, now_ms
from .progress import LOCAL_PROGRESS, LocalProgress

log = logging.getLogger(__name__)

# The last offset an unbounded restriction can reach; Kafka offsets are signed 64-bit.
_END_OF_TIME = 2**63 - 1
PROGRESS = "progress"


class KafkaReadError(RuntimeError):
    """The topic to read cannot be read (it does not exist, or has no partitions)."""


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
        self._clamped = Metrics.counter("ReadFromKafka", "timestamps_clamped")
        self._skew = Duration(micros=int(MAX_CLOCK_SKEW.total_seconds() * 1_000_000))

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

    def _note_clamped(self) -> None:
        self._clamped.inc()
        pipeline_metrics().clamped_times.labels(field="kafka_timestamp").inc()

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
            watermark.set_watermark(max(watermark.current_watermark() + TICK, now_ms()))
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
                ts, clamped = event_time(record.timestamp, watermark.current_watermark(), now_ms(), self._skew)
                if clamped:
                    self._note_clamped()
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
            watermark.set_watermark(last_ts + TICK)
            progress.note_read((topic, partition), position)
            yield beam.pvalue.TaggedOutput(PROGRESS, TimestampedValue((f"{topic}:{partition}", position), last_ts))
        if exhausted:
            return
        end = consumer.highwater(tp)
        if end is None or (emitted == 0 and position >= end):
            end = consumer.end_offsets([tp])[tp]
        self._lag_gauge(topic, partition).set(max(0, end - position))
        # The client's fetch position skips offsets that hold no record (transaction markers).
        if self._settings.stop_at_end and max(position, consumer.position(tp)) >= restriction.stop:
            # Nothing left below the bounded end: claiming the end finishes the restriction.
            tracker.try_claim(restriction.stop)
            return
        if position >= end:
            # Caught up: records that arrive later carry (at least) about the current time.
            idle = now_ms() - millis(self._settings.idle_lag_seconds)
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
        now = now_ms()
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
        raise KafkaReadError(f"topic {topic!r} has no partitions at {settings.bootstrap_servers}")
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
