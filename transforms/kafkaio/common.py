"""What the Kafka IO steps share: the record type, the settings, Beam time in milliseconds."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from apache_beam.utils.timestamp import Duration, Timestamp

# The smallest step of time in the portable model: element timestamps, watermarks and timers
# travel in milliseconds, so all our arithmetic stays in whole milliseconds. (With timers set
# one microsecond after a marker, Prism never committed anything: the timer came back
# truncated onto the marker's millisecond, never "after" it.)
TICK = Duration(micros=1000)


def now_ms() -> Timestamp:
    return Timestamp(micros=int(time.time() * 1000) * 1000)


def just_after(micros: int) -> Timestamp:
    """The first whole millisecond after ``micros``."""
    return Timestamp(micros=(micros // 1000 + 1) * 1000)


def millis(seconds: float) -> Duration:
    return Duration(micros=int(seconds * 1000) * 1000)


def event_time(record_ms: int, floor: Timestamp, now: Timestamp, skew: Duration) -> tuple[Timestamp, bool]:
    """The time a record is emitted at, and whether its Kafka timestamp was moved back.

    A producer with a fast clock must not carry the watermark ahead of real time (that fires
    every timer and prunes dedupe and novelty state at once), so a timestamp later than
    ``now + skew`` counts as ``now + skew``. The result is never below ``floor`` (the partition's
    watermark), so event times never go backwards within a partition.
    """
    ts = Timestamp(micros=record_ms * 1000)
    ceiling = now + skew
    clamped = ts > ceiling
    return max(ceiling if clamped else ts, floor), clamped


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
        from newsradar.kafka import make_consumer

        return make_consumer(
            self.bootstrap_servers,
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
