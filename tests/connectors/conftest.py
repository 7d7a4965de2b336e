"""Fixtures for connector tests: the fixture-feed server, a canary server, Kafka helpers."""

from __future__ import annotations

import json

import pytest
from kafka import KafkaConsumer, TopicPartition

from newsradar.kafka import ensure_topics
from newsradar.records import rss_article_id
from tests.connectors.feedserver import FEEDS, FeedServer


@pytest.fixture()
def canary_file(tmp_path):
    path = tmp_path / "canary-secret.txt"
    path.write_text("CANARY-7f3a9c-do-not-leak\n")
    return path


@pytest.fixture()
def feed_server(canary_file):
    server = FeedServer(canary_path=canary_file).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def canary_server():
    """A second server that must never be reached (targets of refused requests)."""
    server = FeedServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def raw_topic(kafka, topic_prefix) -> str:
    """A news.raw stand-in of this test only (the broker does not auto-create topics)."""
    name = f"{topic_prefix}.news.raw"
    ensure_topics(kafka.bootstrap, partitions=2, topics=[name])
    return name


def read_topic(bootstrap: str, topic: str) -> list:
    """Every record on ``topic`` from the beginning to the end offsets at call time."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=2000)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        out = []
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            for records in consumer.poll(timeout_ms=1000).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def expected_feeds() -> dict:
    data = json.loads((FEEDS / "expected.json").read_text())
    data.pop("_comment")
    return data


def expected_id(source_id: str, feed: dict, item: dict) -> str:
    return rss_article_id(
        source_id, guid=item.get("guid"), link=item.get("link"), guid_is_repeated=feed["repeated_guids"],
    )
