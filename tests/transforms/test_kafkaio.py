"""Kafka IO against the real broker: bounded reads, resume from the commit, writes, failures."""

from __future__ import annotations

import time

import apache_beam as beam
import pytest
from apache_beam.io.restriction_trackers import OffsetRange
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import Duration, Timestamp

from newsradar.kafka import ensure_topics, make_producer, read_topic
from newsradar.records import MAX_CLOCK_SKEW, DeadLetter, TaggedArticle, decode_dead_letter, decode_tagged
from tests.pipelines.support import committed, end_offsets, produce, raw_article
from transforms.kafkaio import (
    CommitOffsets,
    KafkaWriteError,
    LocalProgress,
    ReadFromKafka,
    ReadSettings,
    WriteToKafka,
    message_for,
)
from transforms.kafkaio.common import event_time
from transforms.kafkaio.read import _CheckpointOnlyTracker

# ---------------------------------------------------------------------------
# plain logic


def test_tracker_checkpoints_but_never_splits():
    tracker = _CheckpointOnlyTracker(OffsetRange(10, 2**63 - 1), bounded=False)
    assert tracker.try_claim(10)
    assert tracker.try_split(0.5) is None  # no parallel reading of one partition
    primary, residual = tracker.try_split(0)  # a checkpoint: the rest, from the next offset
    assert (primary.start, primary.stop, residual.start) == (10, 11, 11)
    assert not tracker.is_bounded()


def test_local_progress_settles_only_when_everything_read_is_committed():
    progress = LocalProgress()
    progress.note_read(("t", 0), 5)
    progress.note_read(("t", 1), 3)
    progress.note_paused(("t", 0))
    progress.note_paused(("t", 1))
    progress.note_committed(("t", 0), 5)
    assert not progress.settled()
    assert progress.uncommitted() == {"t/1": 3}
    progress.note_committed(("t", 1), 3)
    assert progress.settled()


def test_event_time_never_runs_ahead_of_the_clock_nor_back_within_a_partition():
    now, skew = Timestamp(1_000_000), Duration(300)
    assert event_time(999_000_000, Timestamp(0), now, skew) == (Timestamp(999_000), False)
    # A producer a day ahead: held at now + skew, and said so.
    assert event_time(1_086_400_000, Timestamp(0), now, skew) == (Timestamp(1_000_300), True)
    # Never below the partition's watermark, clamped or not.
    assert event_time(5_000, Timestamp(999_500), now, skew) == (Timestamp(999_500), False)
    assert event_time(1_086_400_000, Timestamp(1_000_400), now, skew) == (Timestamp(1_000_400), True)


def test_outputs_are_keyed_by_identity():
    tagged = TaggedArticle(article=raw_article(1), lang="en", story_id="rss:test:1")
    assert message_for(tagged) == (b"rss:test:1", tagged.encode())
    letter = DeadLetter.wrap(b"x", "bad", "parse", source="news.raw/0/3")
    assert message_for(letter)[0] == b"news.raw/0/3"
    with pytest.raises(TypeError):
        message_for("a string")


# ---------------------------------------------------------------------------
# real broker, bounded runs (DirectRunner)


def _read_and_commit(settings: ReadSettings, topic: str, out_topic: str) -> None:
    """Read ``topic`` to its end, copy each record to ``out_topic`` (as a dead letter naming
    its source position) and commit."""
    pipeline = test_pipeline.TestPipeline()
    read = pipeline | ReadFromKafka(topic, settings, LocalProgress())
    letters = read.records | beam.Map(lambda r: DeadLetter.wrap(r.value, "copied", "test", source=r.source))
    written = letters | WriteToKafka(out_topic, settings.bootstrap_servers)
    read.progress | CommitOffsets(settings, [written], LocalProgress())
    pipeline.run().wait_until_finish()


def _copied_sources(bootstrap: str, out_topic: str) -> list[str]:
    return [decode_dead_letter(r.value).source for r in read_topic(bootstrap, out_topic)]


@pytest.mark.kafka
def test_bounded_read_copies_everything_then_resumes_after_the_commit(kafka, topic_prefix):
    raw, out = f"{topic_prefix}.raw", f"{topic_prefix}.out"
    ensure_topics(kafka.bootstrap, partitions=2, topics=[raw, out])
    produce(kafka.bootstrap, raw, [(f"k{i}".encode(), raw_article(i).encode()) for i in range(30)])
    settings = ReadSettings(kafka.bootstrap, group_id=f"{topic_prefix}-group", stop_at_end=True)

    _read_and_commit(settings, raw, out)
    first = _copied_sources(kafka.bootstrap, out)
    ends = end_offsets(kafka.bootstrap, raw)
    assert sorted(first) == sorted(f"{raw}/{p}/{o}" for p, end in ends.items() for o in range(end))
    assert committed(kafka.bootstrap, settings.group_id, raw) == ends

    produce(kafka.bootstrap, raw, [(f"k{i}".encode(), raw_article(i).encode()) for i in range(30, 40)])
    _read_and_commit(settings, raw, out)
    both = _copied_sources(kafka.bootstrap, out)
    # The second run read only the ten new records: every position copied exactly once.
    assert len(both) == len(set(both)) == 40
    assert committed(kafka.bootstrap, settings.group_id, raw) == end_offsets(kafka.bootstrap, raw)


@pytest.mark.kafka
def test_records_carry_their_kafka_timestamp(kafka, topic_prefix):
    raw = f"{topic_prefix}.raw"
    ensure_topics(kafka.bootstrap, partitions=1, topics=[raw])
    produce(kafka.bootstrap, raw, [(b"k", raw_article(1).encode())])
    settings = ReadSettings(kafka.bootstrap, group_id=f"{topic_prefix}-group", stop_at_end=True)
    expected = read_topic(kafka.bootstrap, raw)[0].timestamp
    pipeline = test_pipeline.TestPipeline()
    read = pipeline | ReadFromKafka(raw, settings, LocalProgress())

    class Stamp(beam.DoFn):
        def process(self, record, ts=beam.DoFn.TimestampParam):
            yield (record.timestamp_ms, ts.micros // 1000)

    assert_that(read.records | beam.ParDo(Stamp()), equal_to([(expected, expected)]))
    pipeline.run().wait_until_finish()


@pytest.mark.kafka
def test_a_timestamp_from_a_fast_clock_is_held_at_now_plus_the_skew(kafka, topic_prefix):
    raw = f"{topic_prefix}.raw"
    ensure_topics(kafka.bootstrap, partitions=1, topics=[raw])
    # A producer clock 50 minutes fast (the broker itself refuses timestamps over an hour ahead,
    # Kafka's message.timestamp.after.max.ms default; our skew allowance is 5 minutes).
    ahead_ms = int((time.time() + 50 * 60) * 1000)
    producer = make_producer(kafka.bootstrap, client_id="newsradar-test")
    try:
        producer.send(raw, key=b"k", value=raw_article(1).encode(), timestamp_ms=ahead_ms).get(timeout=30)
    finally:
        producer.close()
    settings = ReadSettings(kafka.bootstrap, group_id=f"{topic_prefix}-group", stop_at_end=True)
    pipeline = test_pipeline.TestPipeline()
    read = pipeline | ReadFromKafka(raw, settings, LocalProgress())
    started_ms = int(time.time() * 1000)

    class Stamp(beam.DoFn):
        def process(self, record, ts=beam.DoFn.TimestampParam):
            yield (record.timestamp_ms, ts.micros // 1000)

    def check(got):
        [(kafka_ms, emitted_ms)] = got
        assert kafka_ms == ahead_ms  # the record keeps what the producer said
        skew_ms = MAX_CLOCK_SKEW.total_seconds() * 1000
        assert started_ms + skew_ms <= emitted_ms <= time.time() * 1000 + skew_ms, (started_ms, emitted_ms)

    assert_that(read.records | beam.ParDo(Stamp()), check)
    pipeline.run().wait_until_finish()


@pytest.mark.kafka
def test_a_record_too_large_for_its_topic_is_dead_lettered_not_a_failed_write(kafka, topic_prefix):
    out, dlq = f"{topic_prefix}.tagged", f"{topic_prefix}.dlq"
    ensure_topics(kafka.bootstrap, partitions=1, topics=[out, dlq])
    small = TaggedArticle(article=raw_article(1), lang="en", story_id="rss:test:1")
    large = TaggedArticle(article=raw_article(2, text="x " * 5_000), lang="en", story_id="rss:test:2")
    limit = len(large.encode()) - 1
    pipeline = test_pipeline.TestPipeline()
    pipeline | beam.Create([small, large]) | WriteToKafka(out, kafka.bootstrap, dlq_topic=dlq, max_bytes=limit)
    pipeline.run().wait_until_finish()
    assert [decode_tagged(r.value).article.article_id for r in read_topic(kafka.bootstrap, out)] == ["rss:test:1"]
    [record] = read_topic(kafka.bootstrap, dlq)
    letter = decode_dead_letter(record.value)
    assert letter.step == "write" and letter.error.startswith("RecordTooLarge:") and out in letter.error
    assert letter.original_bytes() == large.encode() and record.key == b"rss:test:2"


@pytest.mark.kafka
def test_a_send_the_broker_refuses_fails_the_bundle(kafka, topic_prefix):
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    small = f"{topic_prefix}.small"
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        admin.create_topics([NewTopic(small, 1, 1, topic_configs={"max.message.bytes": "2000"})])
    finally:
        admin.close()
    letters = [DeadLetter.wrap(b"fits", "e", "test"), DeadLetter.wrap(b"x" * 20_000, "e", "test")]
    pipeline = test_pipeline.TestPipeline()
    pipeline | beam.Create(letters) | WriteToKafka(small, kafka.bootstrap)
    with pytest.raises(Exception, match="not acknowledged") as failure:
        pipeline.run().wait_until_finish()
    assert "KafkaWriteError" in repr(failure.value) or isinstance(failure.value, KafkaWriteError)
