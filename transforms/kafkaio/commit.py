"""CommitOffsets: commit read positions only after every Kafka write has made them durable."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms import userstate

from .common import ReadSettings, just_after
from .progress import LOCAL_PROGRESS, LocalProgress

log = logging.getLogger(__name__)


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
        due.set(just_after(earliest))

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
            due.set(just_after(min(t for t, _ in rest)))

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
            | "CommitWhenDurable" >> beam.ParDo(_CommitWhenDurable(self._settings, self._progress)).with_input_types(
                tuple[str, int]
            )
        )
