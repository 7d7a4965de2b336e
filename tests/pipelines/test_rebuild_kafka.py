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


def test_a_group_that_never_committed_rebuilds_only_the_alerts_already_raised(kafka, topic_prefix):
    bs = kafka.bootstrap
    p = f"{topic_prefix}."
    ensure_topics(bs, partitions=1, topics=[p + "news.raw", p + "news.tagged", p + "news.alerts"])
    t = tagged(1, time.time() - 3600, "a1")
    _send(bs, p + "news.tagged", [(b"a1", t.encode(), int(time.time() * 1000))])
    # An alert of 20 days ago: older than the memory, but news.raw is read again from its start,
    # so the replay would raise it again.
    alert = Alert(alert_id="new_mention:council-of-mothers-and-wives:old", kind="new_mention", severity="info",
                  article_id="a0", story_id="a0", url="https://example.org/0", title="Item 0", snippet="s",
                  why="w.", created_at=format_time(utc_now()), org_id="council-of-mothers-and-wives")
    _send(bs, p + "news.alerts", [(alert.alert_id.encode(), alert.encode(), int((time.time() - 20 * DAY) * 1000))])
    lines = []
    report = rebuild_state(bs, raw_topic=p + "news.raw", tagged_topic=p + "news.tagged", alerts_topic=p + "news.alerts",
                           group_id=p + "group", watchlist=load_watchlist(REPO / "config" / "watchlist.yaml"),
                           dedupe=DedupeSettings(), memory_seconds=14 * DAY, echo=lines.append)
    assert report.folded == 0 and not report.seed.repeats and not report.seed.orgs
    assert report.seed.raised("council-of-mothers-and-wives", alert.alert_id)
    assert "nothing committed" in lines[0] and "1 alerts already raised" in lines[0]


def test_first_and_last_mentions_older_than_the_memory_come_from_news_novelty_and_go_back_to_it(kafka, topic_prefix):
    from kafka.admin import ConfigResource, ConfigResourceType

    from newsradar.kafka import _topic_config_entries, make_admin
    from newsradar.records import NoveltySummary, decode_novelty
    from tests.transforms.test_alert_rules import WATCHLIST

    bs = kafka.bootstrap
    p = f"{topic_prefix}."
    raw, tagged_t, alerts_t, novelty_t, group = (p + "news.raw", p + "news.tagged", p + "news.alerts",
                                                 p + "news.novelty", p + "group")
    ensure_topics(bs, partitions=1, topics=[raw, tagged_t, alerts_t, novelty_t])
    admin = make_admin(bs)
    try:
        found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t, configs={"cleanup.policy": None})
                                        for t in (novelty_t, tagged_t)], config_filter="all")
    finally:
        admin.close()
    policies = {name: entries["cleanup.policy"] for name, entries in _topic_config_entries(found).items()}
    assert policies == {novelty_t: "compact", tagged_t: "delete"}, policies

    now = time.time()
    ms = lambda t: int(t * 1000)  # noqa: E731
    # cmw: last seen 40 days ago, long past news.tagged; known only from news.novelty.
    known = NoveltySummary("cmw", now - 90 * DAY, now - 40 * DAY, format_time(utc_now()))
    _send(bs, novelty_t, [(b"cmw", b"not a summary", ms(now - 50 * DAY)), (b"cmw", known.encode(), ms(now - 26 * DAY))])
    # ur: mentioned 18 days ago, before the 14-day memory but within news.tagged's week beyond it.
    before = dataclasses.replace(tagged(1, now - 18 * DAY, "s1", org="ur"), arrived_at=format_time(utc_now()))
    _send(bs, tagged_t, [(b"a1", before.encode(), ms(now - 18 * DAY))])
    current = tagged(2, now - 3600, "s2")
    produce(bs, raw, [(b"a2", current.article.encode())])
    _commit(bs, raw, group, 1)

    def rebuild():
        return rebuild_state(bs, raw_topic=raw, tagged_topic=tagged_t, alerts_topic=alerts_t, group_id=group,
                             watchlist=WATCHLIST, dedupe=DedupeSettings(), memory_seconds=14 * DAY,
                             novelty_topic=novelty_t, lifetime_seconds=7 * DAY, echo=lambda _l: None, now=lambda: now)

    report = rebuild()
    orgs = report.seed.orgs
    assert (orgs["cmw"].first_seen, orgs["cmw"].last_seen, orgs["cmw"].stories) == (now - 90 * DAY, now - 40 * DAY, {})
    assert abs(orgs["ur"].last_seen - (now - 18 * DAY)) < 0.001 and orgs["ur"].stories == {}
    assert (report.folded, report.lifetime_read, report.summaries_read, report.undecodable) == (0, 1, 1, 1)
    # What news.novelty lacked (ur) was written back; cmw was already there as it is.
    assert report.summaries_written == 1
    consumer = make_consumer(bs, auto_offset_reset="earliest", consumer_timeout_ms=5000, enable_auto_commit=False)
    try:
        consumer.subscribe([novelty_t])
        written = [r for r in consumer if r.value != b"not a summary"]
    finally:
        consumer.close()
    assert [(r.key, decode_novelty(r.value).org_id) for r in written] == [(b"cmw", "cmw"), (b"ur", "ur")]
    # A second start finds both there and writes nothing; the seed is the same.
    again = rebuild()
    assert again.summaries_written == 0 and again.seed.orgs == orgs
