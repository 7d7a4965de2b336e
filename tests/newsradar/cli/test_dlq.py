"""`newsradar dlq list/show/replay` against the real broker: once per dead letter, cut ones kept."""

from __future__ import annotations

import json
import subprocess

import pytest

from newsradar import kafka as nk
from newsradar.records import ALL_TOPICS, MAX_DLQ_ORIGINAL_BYTES, DeadLetter, decode_raw
from tests.conftest import newsradar_cmd

pytestmark = pytest.mark.kafka


def _raw(i: int) -> bytes:
    return json.dumps({
        "v": 1, "article_id": f"rss:src-{i}:g:{i}", "source_id": f"src-{i}", "source_kind": "rss",
        "url": f"https://example.org/{i}", "title": f"Title {i}", "text": "Body",
        "published_at": "2026-11-20T10:00:00Z", "fetched_at": "2026-11-20T10:01:00Z",
    }).encode()


def _dlq(kafka, prefix: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(newsradar_cmd("dlq", *args, "--bootstrap-servers", kafka.bootstrap, "--topic-prefix", prefix),
                          capture_output=True, text=True, timeout=120)


@pytest.fixture()
def letters(kafka, topic_prefix):
    prefix = f"{topic_prefix}."
    nk.ensure_topics(kafka.bootstrap, partitions=1, topics=[prefix + t for t in ALL_TOPICS])
    letters = [
        DeadLetter.wrap(_raw(1), error="normalize: UnicodeEncodeError: surrogates", step="normalize",
                        source=f"{prefix}news.raw/0/7"),
        DeadLetter.wrap(_raw(2), error="RecordError: title: expected a string", step="parse"),
        DeadLetter.wrap(b"x" * (MAX_DLQ_ORIGINAL_BYTES + 10), error="too big", step="parse",
                        source=f"{prefix}news.raw/0/9"),
    ]
    producer = nk.make_producer(kafka.bootstrap)
    try:
        for letter in letters:
            producer.send(prefix + "news.dlq", value=letter.encode()).get(timeout=60)
        producer.send(prefix + "news.dlq", value=b"not a dead letter").get(timeout=60)
        event = DeadLetter.wrap(json.dumps({"org_id": "x", "article_id": "rss:src-3:g:3"}).encode(),
                                error="RuntimeError: rules", step="novelty.event")
        producer.send(prefix + "news.dlq", value=event.encode()).get(timeout=60)
    finally:
        producer.close(10)
    return prefix


def test_list_filters_and_show(kafka, letters):
    listed = _dlq(kafka, letters, "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["0:0", "0:1", "0:2", "0:3", "0:4"]
    assert "\tnormalize\t" in lines[0] and "src-1" in lines[0]
    assert "(cut)" in lines[2] and "not a dead letter" in lines[3]
    only = _dlq(kafka, letters, "list", "--step", "parse")
    assert [line.split("\t")[0] for line in only.stdout.splitlines()] == ["0:1", "0:2"]
    by_source = _dlq(kafka, letters, "list", "--source", "src-2")
    assert [line.split("\t")[0] for line in by_source.stdout.splitlines()] == ["0:1"]
    shown = _dlq(kafka, letters, "show", "0:0")
    body = json.loads(shown.stdout)
    assert body["original"]["article_id"] == "rss:src-1:g:1" and body["replay_to"] == "news.raw"
    missing = _dlq(kafka, letters, "show", "0:99")
    assert missing.returncode == 2 and "no dead letter 0:99" in missing.stderr


def test_replay_sends_each_original_back_once(kafka, letters):
    dry = _dlq(kafka, letters, "replay", "--dry-run")
    assert dry.returncode == 0 and "would replay 2" in dry.stdout, dry.stdout + dry.stderr
    assert nk.read_topic(kafka.bootstrap, letters + "news.raw") == []
    first = _dlq(kafka, letters, "replay")
    assert first.returncode == 0, first.stderr
    assert "replayed 2" in first.stdout and "1 cut (not replayable)" in first.stdout and "1 unreadable" in first.stdout
    assert "1 of a step never replayed" in first.stdout and "0:4: skipped, step novelty.event" in first.stdout
    assert "whole payload is at" in first.stdout
    again = _dlq(kafka, letters, "replay")
    assert "replayed 0; 2 already replayed before" in again.stdout
    sent = nk.read_topic(kafka.bootstrap, letters + "news.raw")
    assert sorted(decode_raw(r.value).article_id for r in sent) == ["rss:src-1:g:1", "rss:src-2:g:2"]
    assert sorted(r.key for r in sent) == [b"rss:src-1:g:1", b"rss:src-2:g:2"]
