"""Fixtures for connector tests: the fixture-feed server, a canary server, Kafka helpers."""

from __future__ import annotations

import json

import pytest

from newsradar.identity import rss_article_id
from newsradar.kafka import ensure_topics
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




def expected_feeds() -> dict:
    data = json.loads((FEEDS / "expected.json").read_text())
    data.pop("_comment")
    return data


def expected_id(source_id: str, feed: dict, item: dict) -> str:
    return rss_article_id(
        source_id, guid=item.get("guid"), link=item.get("link"), guid_is_repeated=feed["repeated_guids"],
    )
