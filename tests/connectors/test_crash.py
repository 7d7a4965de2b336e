"""SIGKILL the connector at random points while it works through many feeds; nothing is lost.

What is asserted, precisely:

1. After the final run, every item of every feed is on news.raw at least once (0 lost).
2. At every kill, the state store claims nothing Kafka does not have: each id recorded as
   delivered is on news.raw.
3. Nothing recorded as delivered at a kill is ever sent again: its count on news.raw after
   all restarts equals its count at that kill. Duplicates can therefore only be items that
   Kafka had acknowledged while the poll they belonged to was not yet recorded (the one batch
   per source in flight at the moment of the kill) — what at-least-once allows, nothing more.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter

import pytest

from newsradar.identity import rss_article_id
from newsradar.kafka import read_topic
from newsradar.records import TOPIC_RAW
from tests.conftest import newsradar_cmd, wait_for
from tests.connectors.feedserver import FeedServer
from tests.connectors.test_connect_cli import write_sources

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

FEEDS = 60
ITEMS = 25
KILLS = 4


def recorded(state_db, prefix: str) -> set[str]:
    with sqlite3.connect(state_db) as db:
        keys = [k for (k,) in db.execute("SELECT key FROM seen WHERE source_id LIKE ?", (f"{prefix}-%",))]
    return {k.rsplit("|", 1)[0] for k in keys}


def test_sigkill_at_random_points_loses_nothing_and_resends_nothing_recorded(kafka, topic_prefix, tmp_path):
    seed = int(os.environ.get("CRASH_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    server = FeedServer(gen_delay=0.05).start()
    try:
        sources = [{"id": f"{topic_prefix}-{i}", "kind": "rss", "url": server.url(f"/gen/{topic_prefix}f{i}.xml?items={ITEMS}")}
                   for i in range(FEEDS)]
        file = write_sources(tmp_path / "sources.yaml", sources, per_host_concurrency=4, max_concurrent_polls=8)
        expected = {rss_article_id(f"{topic_prefix}-{i}", guid=f"{topic_prefix}f{i}-{j}")
                    for i in range(FEEDS) for j in range(ITEMS)}
        state = tmp_path / "state"
        args = newsradar_cmd("connect", "--sources", str(file), "--state-dir", str(state), "--once",
                             "--bootstrap-servers", kafka.bootstrap)

        def on_kafka() -> Counter:
            return Counter(k for m in read_topic(kafka.bootstrap, TOPIC_RAW)
                           if (k := m.key.decode()).startswith(f"rss:{topic_prefix}-"))

        snapshots = []
        done: set[str] = set()
        for kill in range(KILLS):
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                if kill == 0:
                    # Somewhere in the first run's requests, possibly before anything was recorded.
                    target = rng.randint(1, FEEDS - 1)
                    wait_for(lambda t=target, p=proc: len(server.hits("/gen/")) >= t or p.poll() is not None, 120,
                             f"the connector to make {target} requests (seed {seed})", interval=0.01)
                else:
                    # A restarted run re-polls finished feeds first (304s); kill once it made new progress.
                    goal = len(done) + rng.randint(1, max(1, (len(expected) - len(done)) // 2))
                    wait_for(lambda g=goal, p=proc: len(recorded(state / "connectors.sqlite3", topic_prefix)) >= g
                             or p.poll() is not None, 120,
                             f"{goal} items recorded (seed {seed}, kill {kill})", interval=0.01)
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.communicate(timeout=30)
            done = recorded(state / "connectors.sqlite3", topic_prefix)
            counts = on_kafka()
            assert done <= set(counts), f"state claims ids Kafka never got (seed {seed}, kill {kill})"
            snapshots.append((done, counts))

        final_run = subprocess.run(args, capture_output=True, text=True, timeout=300)
        assert final_run.returncode == 0, final_run.stderr
        final = on_kafka()
    finally:
        server.stop()

    missing = expected - set(final)
    assert not missing, f"{len(missing)} items lost (seed {seed})"
    assert set(final) == expected
    for kill, (done, counts) in enumerate(snapshots):
        resent = {k for k in done if final[k] != counts[k]}
        assert not resent, f"{len(resent)} items recorded at kill {kill} were sent again (seed {seed})"
    # The kills did land mid-work: some items were recorded by then, but not all.
    assert any(0 < len(done) < len(expected) for done, _ in snapshots), f"seed {seed}: no kill landed mid-work"
    duplicates = sum(n - 1 for n in final.values())
    print(f"crash test seed {seed}: {len(expected)} items, {duplicates} at-least-once duplicates")
