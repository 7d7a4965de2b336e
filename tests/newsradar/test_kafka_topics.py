"""Topic policy and the one-pipeline-per-group claim, against the real local broker."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from newsradar import kafka as nk

pytestmark = pytest.mark.kafka


def test_topics_are_created_with_retention_compression_and_cluster_replication(kafka, topic_prefix):
    raw, tagged = f"{topic_prefix}news.raw", f"{topic_prefix}news.tagged"
    assert nk.ensure_topics(kafka.bootstrap, topics=[raw, tagged]) == [raw, tagged]
    kept = nk.topic_retention(kafka.bootstrap, [raw, tagged, f"{topic_prefix}absent"])
    assert kept == {raw: nk.DEFAULT_RETENTION["news.raw"], tagged: nk.DEFAULT_RETENTION["news.tagged"]}
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, raw, {"compression.type": None})])
        (meta,) = admin.describe_topics([raw])
    finally:
        admin.close()
    assert found["topic"][raw]["compression.type"]["value"] == "zstd"
    assert all(len(p["replica_nodes"]) == 1 for p in meta["partitions"]), meta  # the broker's default, 1 here


def test_a_topic_that_keeps_less_than_the_memory_is_named(kafka, topic_prefix):
    short, forever = f"{topic_prefix}news.alerts", f"{topic_prefix}news.dlq"
    policy = nk.TopicPolicy(retention_seconds={"news.alerts": 3600.0, "news.dlq": -0.001})
    nk.ensure_topics(kafka.bootstrap, topics=[short, forever], policy=policy)
    problems = nk.check_retention(kafka.bootstrap, {short: 14 * nk.DAY, forever: 14 * nk.DAY})
    assert len(problems) == 1 and short in problems[0] and "1h" in problems[0] and "14d" in problems[0]
    assert nk.check_retention(kafka.bootstrap, {short: 1800.0}) == []


def test_base_topic_strips_any_prefix():
    assert nk.base_topic("t0123news.raw") == "news.raw"
    assert nk.base_topic("news.alerts") == "news.alerts"
    assert nk.base_topic("other") == "other"


# Holds the claim until its stdin closes (the test ends it) or it is killed.
HOLD = """
import sys
from newsradar.kafka import GroupClaim
with GroupClaim(sys.argv[1], sys.argv[2], sys.argv[3], session_timeout_ms=6000):
    print("claimed", flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def claim_held(kafka, topic_prefix):
    """(topic, group, the process holding the group's claim in a subprocess)."""
    topic = f"{topic_prefix}news.dlq"
    nk.ensure_topics(kafka.bootstrap, topics=[topic])
    group = f"{topic_prefix}group"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, kafka.bootstrap, group, topic],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        assert holder.stdout.readline().strip() == "claimed"
        yield topic, group, holder
    finally:
        holder.kill()
        holder.wait(10)


def test_a_second_pipeline_on_the_group_is_refused_and_a_killed_ones_claim_waited_out(kafka, topic_prefix):
    with claim_held(kafka, topic_prefix) as (topic, group, holder):
        with pytest.raises(nk.GroupClaimed, match="another pipeline is running"):
            with nk.GroupClaim(kafka.bootstrap, group, topic, wait=2.0):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        started = time.monotonic()
        # the dead member stays until its 6 s session expires: waited out, not refused
        with nk.GroupClaim(kafka.bootstrap, group, topic, wait=30.0):
            waited = time.monotonic() - started
        assert waited < 30.0
    # a clean exit leaves the group at once
    with nk.GroupClaim(kafka.bootstrap, group, topic, wait=0.5):
        pass


def test_two_pipelines_that_looked_at_the_same_moment_do_not_both_run(kafka, topic_prefix, monkeypatch):
    with claim_held(kafka, topic_prefix) as (topic, group, holder):
        # This one looked before the holder had joined (it saw nobody), then joined too.
        real = nk.GroupClaim.members
        looks = []

        def first_look_saw_nobody(self, timeout=30.0):
            looks.append(1)
            return 0 if len(looks) == 1 else real(self, timeout)

        monkeypatch.setattr(nk.GroupClaim, "members", first_look_saw_nobody)
        with pytest.raises(nk.GroupClaimed, match="at the same moment"):
            with nk.GroupClaim(kafka.bootstrap, group, topic, wait=2.0):
                pass
        assert len(looks) == 2
        assert holder.poll() is None  # the one that was there keeps running


def test_a_group_error_is_not_read_as_nobody_there():
    busy = {"g": {"error": "[Error 14] CoordinatorLoadInProgressError: ", "group_state": "", "members": []}}
    with pytest.raises(nk._GroupBusy):
        nk._live_members(busy, "g")
    denied = {"g": {"error": "[Error 30] GroupAuthorizationFailedError: ", "members": []}}
    with pytest.raises(RuntimeError, match="GroupAuthorizationFailed"):
        nk._live_members(denied, "g")
    assert nk._live_members({"g": {"error": None, "group_state": "Empty", "members": [{"member_id": "x"}]}}, "g") == 0
    assert nk._live_members({"g": {"error": "[Error 69] GroupIdNotFoundError: Group g not found.", "members": []}},
                            "g") == 0
    assert nk._live_members({"g": {"error": None, "group_state": "Stable", "members": [{}, {}]}}, "g") == 2
