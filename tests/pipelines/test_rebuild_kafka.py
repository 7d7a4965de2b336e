"""The state rebuild's Kafka side (pipelines/rebuild.py) against the real broker: what it reads
(the memory, the uncommitted tail of news.raw), what it leaves out, and records of the version
before ``arrived_at``."""

from __future__ import annotations

import dataclasses
import time

import pytest

from newsradar.config import load_watchlist
from newsradar.kafka import ensure_topics, make_consumer
from newsradar.records import Alert, format_time, utc_now
from pipelines.rebuild import rebuild_state
from tests.conftest import REPO
from tests.pipelines.support import produce
from tests.transforms.test_rebuild import tagged
from transforms.dedupe import DedupeSettings

pytestmark = [pytest.mark.kafka]

DAY = 86400.0


def _commit(bootstrap: str, topic: str, group: str, offset: int) -> None:
    from kafka import TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = make_consumer(bootstrap, group_id=group, enable_auto_commit=False)
    try:
        consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(offset, "", -1)})
    finally:
        consumer.close()


def _send(bootstrap: str, topic: str, records) -> None:
    from newsradar.kafka import make_producer

    producer = make_producer(bootstrap, client_id="newsradar-test")
    try:
        for key, value, ts_ms in records:
            producer.send(topic, key=key, value=value, partition=0, timestamp_ms=ts_ms).get(timeout=30)
    finally:
        producer.close()


def test_rebuild_reads_the_memory_and_leaves_the_uncommitted_tail_to_the_replay(kafka, topic_prefix):
    bs = kafka.bootstrap
    p = f"{topic_prefix}."
    raw, tagged_t, alerts_t, group = p + "news.raw", p + "news.tagged", p + "news.alerts", p + "group"
    ensure_topics(bs, partitions=1, topics=[raw, tagged_t, alerts_t])
    now = time.time()
    ms = lambda t: int(t * 1000)  # noqa: E731
    old = tagged(1, now - 30 * DAY, "a1")           # outside the 14-day memory: not read
    done = tagged(2, now - 2 * DAY, "a2")           # committed
    legacy = tagged(3, now - DAY, "a3")             # written before arrived_at existed
    replayed = tagged(4, now - 3600, "a4")          # its news.raw record is past the committed offset
    stamped = [dataclasses.replace(t, arrived_at=t.article.fetched_at) for t in (old, done, replayed)]
    _send(bs, tagged_t, [
        (b"a1", stamped[0].encode(), ms(now - 30 * DAY)),
        (b"a2", stamped[1].encode(), ms(now - 2 * DAY)),
        (b"a3", legacy.encode(), ms(now - DAY)),
        (b"a4", stamped[2].encode(), ms(now - 3600)),
        (b"bad", b"not a record", ms(now - 60)),
    ])
    alert = Alert(alert_id="new_mention:council-of-mothers-and-wives:x", kind="new_mention", severity="info",
                  article_id="a2", story_id="a2", url="https://example.org/2", title="Item 2", snippet="s",
                  why="w.", created_at=format_time(utc_now()), org_id="council-of-mothers-and-wives")
    _send(bs, alerts_t, [(alert.alert_id.encode(), alert.encode(), ms(now - 2 * DAY))])
    produce(bs, raw, [(t.article.article_id.encode(), t.article.encode()) for t in (done, legacy, replayed)])
    _commit(bs, raw, group, 2)  # done and legacy are committed; replayed is read again

    watchlist = load_watchlist(REPO / "config" / "watchlist.yaml")
    lines = []
    report = rebuild_state(bs, raw_topic=raw, tagged_topic=tagged_t, alerts_topic=alerts_t, group_id=group,
                           watchlist=watchlist, dedupe=DedupeSettings(), memory_seconds=14 * DAY,
                           echo=lines.append, now=lambda: now)
    assert (report.tagged_read, report.folded, report.left_pending, report.pending) == (3, 2, 1, 1)
    assert report.undecodable == 1 and report.alerts == 1
    seed = report.seed
    assert set(seed.repeats) == {"a2", "a3"}  # a1 too old to be read, a4 left to its replay
    # The record without arrived_at is folded at its Kafka time.
    entries = {e.article_id: e.ts_micros for e in seed.stories["en"]}
    assert set(entries) == {"a2", "a3"} and entries["a3"] == ms(now - DAY) * 1000
    assert seed.raised("council-of-mothers-and-wives", alert.alert_id)
    assert any("1 uncommitted records" in line for line in lines), lines
    assert "1 records did not decode" in report.summary()


def test_a_group_that_never_committed_rebuilds_nothing(kafka, topic_prefix):
    bs = kafka.bootstrap
    p = f"{topic_prefix}."
    ensure_topics(bs, partitions=1, topics=[p + "news.raw", p + "news.tagged", p + "news.alerts"])
    t = tagged(1, time.time() - 3600, "a1")
    _send(bs, p + "news.tagged", [(b"a1", t.encode(), int(time.time() * 1000))])
    lines = []
    report = rebuild_state(bs, raw_topic=p + "news.raw", tagged_topic=p + "news.tagged", alerts_topic=p + "news.alerts",
                           group_id=p + "group", watchlist=load_watchlist(REPO / "config" / "watchlist.yaml"),
                           dedupe=DedupeSettings(), memory_seconds=14 * DAY, echo=lines.append)
    assert report.folded == 0 and not report.seed.repeats
    assert "nothing committed" in lines[0]
