"""The state rebuild at start, the Kafka side: read news.tagged and news.alerts back over the
pipeline's memory, news.novelty whole, and the uncommitted tail of news.raw, and fold them
(:class:`transforms.rebuild.SeedBuilder`) into the seed the job is submitted with.

Guarantees:

* Runs before the job is submitted, while this launcher holds its consumer group's claim, so
  no other pipeline commits on the group meanwhile. Nothing is committed; the only write is
  news.novelty's summaries of what the seed knows (:meth:`SeedBuilder.summaries`), so an
  organization the new job never sees again is still known at the start after it.
* Reads each partition from the first record whose Kafka time is within ``memory`` of now to
  the end offset seen at start; news.tagged from ``lifetime`` further back, whose records only
  give each organization's first and last mention. A record that does not decode is counted
  and left out (it is the pipeline's own output; the message says how many).
* Tagged records are folded in arrival order (``arrived_at``, else the record's Kafka time),
  leaving out those whose news.raw record is past the group's committed offset: the pipeline
  reads that tail again. With nothing committed the pipeline reads all of news.raw again: the
  seed then holds only the alert ids already on news.alerts (all of it), so none is raised
  twice.
* A read that gets no record for ``timeout`` seconds of polling stops the start with an error;
  time spent folding does not count.
* Progress goes to ``echo`` (stderr from the command line): counts and seconds.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from newsradar.config import Watchlist
from newsradar.kafka import make_consumer, make_producer
from newsradar.records import (
    NoveltySummary,
    RecordError,
    decode_alert,
    decode_novelty,
    decode_raw,
    decode_tagged,
    parse_time,
)
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
    lifetime_read: int = 0
    summaries_read: int = 0
    summaries_written: int = 0

    def summary(self) -> str:
        counts = ", ".join(f"{n} {what}" for what, n in self.seed.counts().items())
        bad = f"; {self.undecodable} records did not decode and were left out" if self.undecodable else ""
        return (f"state rebuilt in {self.seconds:.1f}s from {self.tagged_read} tagged records ({self.folded} folded, "
                f"{self.lifetime_read} from before the memory for first and last mentions, "
                f"{self.left_pending} left to the replay of {self.pending} uncommitted news.raw records), "
                f"{self.alerts} alerts and {self.summaries_read} organization summaries "
                f"({self.summaries_written} written): {counts}{bad}")


def _partitions(consumer, topic: str):
    from kafka import TopicPartition

    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


def _read(consumer, tp, start: int, end: int, timeout: float) -> Iterator:
    """Records of one partition from ``start`` to ``end`` (exclusive)."""
    if start >= end:
        return
    consumer.assign([tp])
    consumer.seek(tp, start)
    # A bound on waiting for the broker, not on the whole read: only polls that return nothing
    # count, not the time the fold spends between records (it consumes this lazily).
    waited = 0.0
    while consumer.position(tp) < end:
        if waited > timeout:
            raise TimeoutError(f"no progress reading {tp.topic}/{tp.partition} towards offset {end} "
                               f"for {timeout:.0f}s")
        polled = time.monotonic()
        batches = consumer.poll(timeout_ms=_POLL_MS)
        if not any(batches.values()):
            waited += time.monotonic() - polled
            continue
        waited = 0.0
        for records in batches.values():
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
        yield _arrived_micros(tagged, record), tp.partition, record.offset, record.timestamp, tagged


def _read_alerts(reader, topic: str, since_ms: int, builder: SeedBuilder, timeout: float) -> int:
    """The alert ids on ``topic`` from ``since_ms`` into ``builder``; the count that did not decode."""
    bad = 0
    tps = _partitions(reader, topic)
    starts, ends = _since(reader, tps, since_ms)
    for tp in tps:
        for record in _read(reader, tp, starts[tp], ends[tp], timeout):
            try:
                builder.add_alert(decode_alert(record.value))
            except RecordError:
                bad += 1
    return bad


def _read_novelty(reader, topic: str, timeout: float) -> tuple[dict[str, NoveltySummary], int]:
    """Every record of the compacted ``topic``, newest per organization; and the undecodable count."""
    newest: dict[str, NoveltySummary] = {}
    bad = 0
    tps = _partitions(reader, topic)
    if not tps:
        return newest, bad
    starts, ends = reader.beginning_offsets(tps), reader.end_offsets(tps)
    for tp in tps:
        for record in _read(reader, tp, starts[tp], ends[tp], timeout):
            try:
                summary = decode_novelty(record.value)
            except RecordError:
                bad += 1
                continue
            newest[summary.org_id] = summary
    return newest, bad


def rebuild_state(bootstrap_servers: str, *, raw_topic: str, tagged_topic: str, alerts_topic: str, group_id: str,
                  watchlist: Watchlist, dedupe: DedupeSettings, memory_seconds: float,
                  novelty_topic: str | None = None, lifetime_seconds: float = 7 * 86400.0,
                  echo: Callable[[str], None] = print, timeout: float = 600.0,
                  now: Callable[[], float] = time.time) -> RebuildReport:
    """Read the topics and fold them (see the module docstring). ``novelty_topic``: news.novelty,
    read whole and written back; ``lifetime_seconds``: how much further back than the memory
    news.tagged is read for first and last mentions (what its retention keeps beyond it)."""
    started = time.monotonic()
    since_ms = int((now() - memory_seconds) * 1000)
    undecodable = 0
    consumers: list = []
    # "earliest": a committed offset that retention has passed starts at the oldest record
    # kept, as the pipeline's own reader does, not silently at the end.
    reader = make_consumer(bootstrap_servers, enable_auto_commit=False, client_id="newsradar-rebuild",
                           auto_offset_reset="earliest")
    group = make_consumer(bootstrap_servers, group_id=group_id, enable_auto_commit=False,
                          client_id="newsradar-rebuild")
    try:
        # 1. The uncommitted tail of news.raw: read again by the pipeline, so left out of the fold.
        raw_tps = _partitions(reader, raw_topic)
        raw_ends = reader.end_offsets(raw_tps)
        committed = {tp: group.committed(tp) for tp in raw_tps}
        pending: set[tuple[str, str, str]] = set()
        n_pending = 0
        if not any(c is not None for c in committed.values()):
            # Nothing committed: the pipeline reads news.raw from its beginning, all of it again,
            # and rebuilds its state from it; only the alerts already raised are needed.
            # All of news.alerts: the replay reaches as far back as news.raw keeps.
            builder = SeedBuilder(watchlist, dedupe)
            undecodable += _read_alerts(reader, alerts_topic, 0, builder, timeout)
            echo(f"pipeline: nothing committed on {raw_topic} for group {group_id}: all of it is read again; "
                 f"{builder.alerts} alerts already raised will not be raised twice")
            return RebuildReport(Seed(alert_ids=builder.seed().alert_ids),
                                 time.monotonic() - started, 0, 0, 0, builder.alerts, 0, undecodable)
        beginnings = reader.beginning_offsets(raw_tps)
        for tp in raw_tps:
            start = max(committed[tp], beginnings[tp]) if committed[tp] is not None else beginnings[tp]
            for record in _read(reader, tp, start, raw_ends[tp], timeout):
                n_pending += 1
                try:
                    raw = decode_raw(record.value)
                except RecordError:
                    continue  # a dead letter when the pipeline reads it; nothing to leave out
                pending.add(pending_key(raw.article_id, raw.edited_at, raw.fetched_at))
        echo(f"pipeline: rebuilding state: {n_pending} uncommitted records on {raw_topic} "
             f"({time.monotonic() - started:.1f}s)")
        builder = SeedBuilder(watchlist, dedupe, pending)

        # 2. news.novelty, whole: what is known of organizations from before news.tagged.
        known: dict[str, NoveltySummary] = {}
        if novelty_topic:
            known, bad_novelty = _read_novelty(reader, novelty_topic, timeout)
            undecodable += bad_novelty
            for summary in known.values():
                builder.add_summary(summary)

        # 3. news.alerts over the memory: the ids already raised.
        undecodable += _read_alerts(reader, alerts_topic, since_ms, builder, timeout)
        echo(f"pipeline: rebuilding state: {builder.alerts} alerts, {len(known)} organization summaries read "
             f"({time.monotonic() - started:.1f}s)")

        # 4. news.tagged over the memory (and before it, for first and last mentions only): each
        # partition in the order it was written (the order the pipeline emitted), the partitions
        # merged by arrival time, streamed (a month of a large deployment does not fit in memory
        # at once).
        tagged_tps = _partitions(reader, tagged_topic)
        starts, ends = _since(reader, tagged_tps, since_ms - int(lifetime_seconds * 1000))
        bad = [0]
        streams = []
        for tp in tagged_tps:
            consumer = make_consumer(bootstrap_servers, enable_auto_commit=False, client_id="newsradar-rebuild",
                                     auto_offset_reset="earliest")
            consumers.append(consumer)
            streams.append(_tagged_rows(consumer, tp, starts[tp], ends[tp], timeout, bad))
        read = 0
        for _arrived, _p, _o, kafka_ms, tagged in heapq.merge(*streams, key=lambda r: r[:3]):
            if kafka_ms < since_ms:
                builder.add_lifetime(tagged)
            else:
                builder.add_tagged(tagged, _arrived)
            read += 1
            if read % 50_000 == 0:
                echo(f"pipeline: rebuilding state: {read} tagged records folded ({time.monotonic() - started:.1f}s)")
        undecodable += bad[0]
        seed = builder.seed()
        written = 0
        if novelty_topic:
            written = _write_summaries(bootstrap_servers, novelty_topic,
                                       builder.summaries(seed, known, datetime.fromtimestamp(now(), UTC)))
    finally:
        for consumer in (reader, group, *consumers):
            consumer.close()
    return RebuildReport(seed, time.monotonic() - started, read, builder.folded, builder.left_pending,
                         builder.alerts, n_pending, undecodable, builder.lifetime_read, len(known), written)


def _write_summaries(bootstrap_servers: str, topic: str, summaries: list[NoveltySummary]) -> int:
    """Send ``summaries`` to ``topic`` keyed by organization; every send acknowledged or raise."""
    if not summaries:
        return 0
    producer = make_producer(bootstrap_servers, client_id="newsradar-rebuild")
    try:
        futures = [producer.send(topic, key=s.org_id.encode("utf-8"), value=s.encode()) for s in summaries]
        producer.flush()
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close()
    return len(summaries)
