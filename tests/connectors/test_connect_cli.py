"""`newsradar connect` as operators run it: a subprocess, real Kafka, the fixture server."""

from __future__ import annotations

import re
import signal
import subprocess
import urllib.request
from collections import Counter

import pytest
import yaml

from newsradar.kafka import read_topic
from newsradar.records import TOPIC_RAW, decode_raw
from tests.conftest import free_port, newsradar_cmd, wait_for
from tests.connectors.conftest import expected_feeds, expected_id

pytestmark = pytest.mark.kafka


def write_sources(path, sources, *, allow_private=True, port=0, **defaults):
    doc = {
        "allow_private_networks": allow_private,
        "defaults": {"interval": "0s", "min_interval": "0s", "timeout": "5s", **defaults},
        "metrics": {"host": "127.0.0.1", "port": port},
        "sources": sources,
    }
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    return path


def connect(kafka, sources_file, state_dir, *extra, timeout=120):
    return subprocess.run(
        newsradar_cmd("connect", "--sources", str(sources_file), "--state-dir", str(state_dir),
                      "--bootstrap-servers", kafka.bootstrap, *extra),
        capture_output=True, text=True, timeout=timeout,
    )


def mine(kafka, prefix):
    """Records on news.raw from this test's sources (ids are rss:<source>:...)."""
    return [m for m in read_topic(kafka.bootstrap, TOPIC_RAW) if m.key.decode().startswith(f"rss:{prefix}")]


def good_sources(server, prefix):
    feeds = expected_feeds()
    sources, ids = [], set()
    for name, feed in feeds.items():
        source_id = f"{prefix}-{name.split('.')[0]}"
        query = f"?ctype={feed['content_type']}" if "content_type" in feed else ""
        sources.append({"id": source_id, "kind": "rss", "url": server.url(f"/feeds/{name}{query}")})
        ids |= {expected_id(source_id, feed, item) for item in feed["items"]}
    return sources, ids


def test_once_delivers_every_item_exactly_once_and_a_rerun_adds_nothing(kafka, feed_server, topic_prefix, tmp_path):
    sources, expected = good_sources(feed_server, topic_prefix)
    sources += [
        {"id": f"{topic_prefix}-broken", "kind": "rss", "url": feed_server.url("/status/500")},
        {"id": f"{topic_prefix}-html", "kind": "rss", "url": feed_server.url("/feeds/html-error.html")},
    ]
    file = write_sources(tmp_path / "sources.yaml", sources)
    first = connect(kafka, file, tmp_path / "state", "--once")
    assert first.returncode == 0, first.stderr
    once = re.search(r"once \([\d.]+s\): (\d+) sources polled, (\d+) changed, \d+ not modified, (\d+) errors.*?(\d+) new items",
                     first.stderr)
    assert once and once.groups() == (str(len(sources)), str(len(sources) - 2), "2", str(len(expected))), first.stderr
    assert f"{topic_prefix}-broken: HTTP 500" in first.stderr and "an HTML page, not a feed" in first.stderr
    counts = Counter(m.key.decode() for m in mine(kafka, topic_prefix))
    assert set(counts) == expected and set(counts.values()) == {1}

    second = connect(kafka, file, tmp_path / "state", "--once")
    assert second.returncode == 0, second.stderr
    unchanged = len(sources) - 2
    assert re.search(rf"once \([\d.]+s\): \d+ sources polled, 0 changed, {unchanged} not modified, 2 errors .*, 0 new items",
                     second.stderr), second.stderr
    assert Counter(m.key.decode() for m in mine(kafka, topic_prefix)) == counts


def test_internal_addresses_need_the_flag(kafka, feed_server, topic_prefix, tmp_path):
    source_id = f"{topic_prefix}-local"
    file = write_sources(tmp_path / "sources.yaml", [{"id": source_id, "kind": "rss",
                                                     "url": feed_server.url("/feeds/rss20.xml")}], allow_private=False)
    refused = connect(kafka, file, tmp_path / "state", "--once")
    # Its only source refused: nothing could be polled, which --once says (issue 19) and exits 1 for.
    assert refused.returncode == 1 and "refusing internal address" in refused.stderr and "(refused, 1 in a row)" in refused.stderr
    assert f"connect --once: source {source_id}: refusing internal address" in refused.stderr
    assert feed_server.hits() == [] and mine(kafka, topic_prefix) == []
    allowed = connect(kafka, file, tmp_path / "state", "--once", "--allow-private-networks")
    assert allowed.returncode == 0, allowed.stderr
    assert len(mine(kafka, topic_prefix)) == 3


def test_runs_until_sigterm_serving_metrics_then_stops_cleanly(kafka, feed_server, topic_prefix, tmp_path):
    port = free_port()
    source_id = f"{topic_prefix}-live"
    file = write_sources(tmp_path / "sources.yaml", [{"id": source_id, "kind": "rss",
                                                     "url": feed_server.url("/feeds/atom10.xml")}], port=port,
                         interval="1s", min_interval="1s")
    proc = subprocess.Popen(
        newsradar_cmd("connect", "--sources", str(file), "--state-dir", str(tmp_path / "state"),
                      "--bootstrap-servers", kafka.bootstrap),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        def scraped():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                    text = resp.read().decode()
            except OSError:
                return None
            polls = re.search(rf'newsradar_fetches_total\{{outcome="not_modified",source="{source_id}"\}} (\d+)', text)
            return text if polls and float(polls.group(1)) >= 1 else None

        text = wait_for(scraped, 60, "the connector's /metrics to show a second (304) poll")
        assert f'newsradar_items_produced_total{{source="{source_id}"}} 2.0' in text
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "SIGTERM: finishing deliveries in flight" in err and f"metrics at http://127.0.0.1:{port}/metrics" in err
    assert len(mine(kafka, topic_prefix)) == 2
    assert all(decode_raw(m.value).lang_hint == "uk" for m in mine(kafka, topic_prefix))


def test_bad_config_is_exit_2_and_no_broker_exit_1(kafka, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - {id: x, kind: rss, url: 'ftp://example.org/feed'}\n")
    result = connect(kafka, bad, tmp_path / "state", "--once")
    assert result.returncode == 2 and "bad.yaml" in result.stderr and "sources[0].url" in result.stderr
    good = write_sources(tmp_path / "good.yaml", [])
    nobody = subprocess.run(
        newsradar_cmd("connect", "--sources", str(good), "--state-dir", str(tmp_path / "s2"), "--once",
                      "--bootstrap-servers", f"localhost:{free_port()}"),
        capture_output=True, text=True, timeout=60,
    )
    assert nobody.returncode == 1 and "no Kafka broker answers" in nobody.stderr



def test_once_fails_when_no_source_could_be_polled_and_says_why_per_source(kafka, topic_prefix, tmp_path):
    sources = [{"id": f"{topic_prefix}-{name}", "kind": "rss", "url": url}
               for name, url in (("metadata", "http://169.254.169.254/"), ("local", "http://localhost/feed"))]
    file = write_sources(tmp_path / "sources.yaml", sources, allow_private=False)
    run = connect(kafka, file, tmp_path / "state", "--once")
    assert run.returncode == 1, run.stderr
    assert f"connect --once: source {topic_prefix}-metadata: refusing internal address 169.254.169.254" in run.stderr
    assert f"connect --once: source {topic_prefix}-local: refusing internal address localhost" in run.stderr
    assert "connect --once: none of the 2 sources could be polled" in run.stderr
