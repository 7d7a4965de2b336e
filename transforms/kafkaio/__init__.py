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

from .commit import CommitOffsets
from .common import KafkaRecord, ReadSettings
from .progress import LOCAL_PROGRESS, LocalProgress
from .read import PROGRESS, KafkaReadError, ReadFromKafka
from .write import KafkaWriteError, WriteToKafka, message_for

__all__ = [
    "CommitOffsets", "KafkaReadError", "KafkaRecord", "KafkaWriteError", "LOCAL_PROGRESS", "LocalProgress",
    "PROGRESS", "ReadFromKafka", "ReadSettings", "WriteToKafka", "message_for",
]
