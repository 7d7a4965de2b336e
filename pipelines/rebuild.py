"""The state rebuild at start, the Kafka side: read news.tagged and news.alerts back over the
pipeline's memory and the uncommitted tail of news.raw, and fold them
(:class:`transforms.rebuild.SeedBuilder`) into the seed the job is submitted with.

Guarantees:

* Runs before the job is submitted, while this launcher holds its consumer group's claim, so
  no other pipeline commits on the group meanwhile; nothing is committed or written here.
* Reads each partition from the first record whose Kafka time is within ``memory`` of now to
  the end offset seen at start. A record that does not decode is counted and left out (it is
  the pipeline's own output; the message says how many).
* Tagged records are folded in arrival order (``arrived_at``, else the record's Kafka time),
  leaving out those whose news.raw record is past the group's committed offset: the pipeline
  reads that tail again.
* Progress goes to ``echo`` (stderr from the command line): counts and seconds.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from newsradar.config import Watchlist
from newsradar.kafka import make_consumer
from newsradar.records import RecordError, decode_alert, decode_raw, decode_tagged, parse_time
from transforms.dedupe import DedupeSettings
from transforms.rebuild import Seed, SeedBuilder, pending_key

_POLL_MS = 500


@dataclass(frozen=True)
class RebuildReport:
    seed: Seed
    seconds: float
    tagged_read: int
    folded: int
    left_pending: int
    alerts: int
    pending: int
    undecodable: int

    def summary(self) -> str:
        counts = ", ".join(f"{n} {what}" for what, n in self.seed.counts().items())
        bad = f"; {self.undecodable} records did not decode and were left out" if self.undecodable else ""
        return (f"state rebuilt in {self.seconds:.1f}s from {self.tagged_read} tagged records ({self.folded} folded, "
                f"{self.left_pending} left to the replay of {self.pending} uncommitted news.raw records) and "
                f"{self.alerts} alerts: {counts}{bad}")


def _partitions(consumer, topic: str):
    from kafka import TopicPartition

    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


def _read(consumer, tp, start: int, end: int, timeout: float) -> Iterator:
    """Records of one partition from ``start`` to ``end`` (exclusive)."""
    if start >= end:
        return
    consumer.assign([tp])
    consumer.seek(tp, start)
    # A bound on waiting for the broker, not on the whole read: the fold consumes this lazily.
    deadline = time.monotonic() + timeout
    while consumer.position(tp) < end:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no progress reading {tp.topic}/{tp.partition} towards offset {end} "
                               f"for {timeout:.0f}s")
        for records in consumer.poll(timeout_ms=_POLL_MS).values():
            deadline = time.monotonic() + timeout
            for record in records:
                if record.offset >= end:
                    return
                yield record


def _since(consumer, tps, since_ms: int) -> dict:
    """Per partition, the first offset whose Kafka time is at least ``since_ms`` (else the end)."""
    ends = consumer.end_offsets(tps)
    found = consumer.offsets_for_times({tp: since_ms for tp in tps}) if tps else {}
    return {tp: (found[tp].offset if found.get(tp) is not None else ends[tp]) for tp in tps}, ends


def _arrived_micros(tagged, record) -> int:
    if tagged.arrived_at is not None:
        return int(parse_time(tagged.arrived_at).timestamp() * 1000) * 1000
    return record.timestamp * 1000


def _tagged_rows(consumer, tp, start: int, end: int, timeout: float, bad: list[int]) -> Iterator[tuple]:
    for record in _read(consumer, tp, start, end, timeout):
        try:
            tagged = decode_tagged(record.value)
        except RecordError:
            bad[0] += 1
            continue
        yield _arrived_micros(tagged, record), tp.partition, record.offset, tagged


def rebuild_state(bootstrap_servers: str, *, raw_topic: str, tagged_topic: str, alerts_topic: str, group_id: str,
                  watchlist: Watchlist, dedupe: DedupeSettings, memory_seconds: float,
                  echo: Callable[[str], None] = print, timeout: float = 600.0,
                  now: Callable[[], float] = time.time) -> RebuildReport:
    """Read the topics and fold them (see the module docstring)."""
    started = time.monotonic()
    since_ms = int((now() - memory_seconds) * 1000)
    undecodable = 0
    consumers: list = []
    reader = make_consumer(bootstrap_servers, enable_auto_commit=False, client_id="newsradar-rebuild")
    group = make_consumer(bootstrap_servers, group_id=group_id, enable_auto_commit=False,
                          client_id="newsradar-rebuild")
    try:
        # 1. The uncommitted tail of news.raw: read again by the pipeline, so left out of the fold.
        raw_tps = _partitions(reader, raw_topic)
        raw_ends = reader.end_offsets(raw_tps)
        committed = {tp: group.committed(tp) for tp in raw_tps}
        pending: set[tuple[str, str, str]] = set()
        n_pending = 0
        if any(c is not None for c in committed.values()):
            beginnings = reader.beginning_offsets(raw_tps)
            for tp in raw_tps:
                start = committed[tp] if committed[tp] is not None else beginnings[tp]
                for record in _read(reader, tp, start, raw_ends[tp], timeout):
                    n_pending += 1
                    try:
                        raw = decode_raw(record.value)
                    except RecordError:
                        continue  # a dead letter when the pipeline reads it; nothing to leave out
                    pending.add(pending_key(raw.article_id, raw.edited_at, raw.fetched_at))
        else:
            # Nothing committed: the pipeline reads news.raw from its beginning, all of it again.
            echo(f"pipeline: nothing committed on {raw_topic} for group {group_id}: no state to rebuild")
            return RebuildReport(Seed(), time.monotonic() - started, 0, 0, 0, 0, 0, 0)
        echo(f"pipeline: rebuilding state: {n_pending} uncommitted records on {raw_topic} "
             f"({time.monotonic() - started:.1f}s)")
        builder = SeedBuilder(watchlist, dedupe, pending)

        # 2. news.alerts over the memory: the ids already raised.
        alert_tps = _partitions(reader, alerts_topic)
        starts, ends = _since(reader, alert_tps, since_ms)
        for tp in alert_tps:
            for record in _read(reader, tp, starts[tp], ends[tp], timeout):
                try:
                    builder.add_alert(decode_alert(record.value))
                except RecordError:
                    undecodable += 1
        echo(f"pipeline: rebuilding state: {builder.alerts} alerts read ({time.monotonic() - started:.1f}s)")

        # 3. news.tagged over the memory: each partition in the order it was written (the order
        # the pipeline emitted), the partitions merged by arrival time, streamed (a month of a
        # large deployment does not fit in memory at once).
        tagged_tps = _partitions(reader, tagged_topic)
        starts, ends = _since(reader, tagged_tps, since_ms)
        bad = [0]
        streams = []
        for tp in tagged_tps:
            consumer = make_consumer(bootstrap_servers, enable_auto_commit=False, client_id="newsradar-rebuild")
            consumers.append(consumer)
            streams.append(_tagged_rows(consumer, tp, starts[tp], ends[tp], timeout, bad))
        read = 0
        for arrived, _p, _o, tagged in heapq.merge(*streams, key=lambda r: r[:3]):
            builder.add_tagged(tagged, arrived)
            read += 1
            if read % 50_000 == 0:
                echo(f"pipeline: rebuilding state: {read} tagged records folded ({time.monotonic() - started:.1f}s)")
        undecodable += bad[0]
        seed = builder.seed()
    finally:
        for consumer in (reader, group, *consumers):
            consumer.close()
    return RebuildReport(seed, time.monotonic() - started, read, builder.folded, builder.left_pending,
                         builder.alerts, n_pending, undecodable)
