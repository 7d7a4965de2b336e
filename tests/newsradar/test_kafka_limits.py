"""Size limits agree from the record cap out to the broker: a record within the cap always fits."""

from __future__ import annotations

import re

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from newsradar import kafka as nk
from newsradar import records as r
from tests.conftest import REPO

pytestmark = pytest.mark.kafka

# A record just under the cap, in the script that needs the most bytes per character.
BIG = r.RawArticle(
    article_id="rss:limits:g:1", source_id="limits", source_kind="rss", url="https://x.example/1", title="big",
    text="士" * ((r.MAX_RECORD_BYTES - 1024) // 3), published_at="2026-11-20T10:00:00Z",
    fetched_at="2026-11-20T10:00:01Z",
)


def test_the_limits_nest():
    assert len(BIG.encode()) <= r.MAX_RECORD_BYTES
    assert r.MAX_RECORD_BYTES + 64 * 1024 <= nk.producer_config("x")["max_request_size"] < nk.MAX_MESSAGE_BYTES
    template = (REPO / "deploy" / "kafka" / "server.properties.in").read_text()
    assert re.findall(r"^message\.max\.bytes=(\d+)$", template, re.MULTILINE) == [str(nk.MAX_MESSAGE_BYTES)]


def test_a_record_at_the_cap_fits_a_topic_made_with_the_broker_default(kafka, topic_prefix):
    # Created without any topic setting: only the broker's message.max.bytes lets it in.
    name = f"{topic_prefix}.plain"
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        admin.create_topics({name: {"num_partitions": 1, "replication_factor": 1}}, wait_for_metadata=True)
    finally:
        admin.close()
    producer = nk.make_producer(kafka.bootstrap)
    try:
        producer.send(name, key=b"k", value=BIG.encode()).get(timeout=60)
    finally:
        producer.close(10)
    [got] = nk.read_topic(kafka.bootstrap, name)
    assert r.decode_raw(got.value) == BIG


def test_ensure_topics_sets_the_message_limit_on_what_it_creates(kafka, topic_prefix):
    name = f"{topic_prefix}.ensured"
    assert nk.ensure_topics(kafka.bootstrap, topics=[name]) == [name]
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name, {"max.message.bytes": None})])
    finally:
        admin.close()
    setting = described["topic"][name]["max.message.bytes"]
    assert setting["value"] == str(nk.MAX_MESSAGE_BYTES) and setting["config_source"] == "DYNAMIC_TOPIC_CONFIG"
