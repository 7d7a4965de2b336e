"""On the real broker: `newsradar candidates --since` reads news.tagged by record time (what
is older is left out; a --since before the earliest record is one line, exit 2), and
`newsradar feedback --lookup` takes the alias and terms from the alert's tagged article."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from newsradar.config import load_watchlist
from newsradar.identity import alert_id
from newsradar.kafka import make_producer
from newsradar.records import Alert, format_time
from tests.conftest import REPO, newsradar_cmd
from tests.transforms.test_candidates import STORIES, tagged
from transforms.tagging import Tagger

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

WATCHLIST = str(REPO / "config" / "watchlist.yaml")


@pytest.fixture(scope="module")
def tagger():
    return Tagger(load_watchlist(WATCHLIST))


def _create(bootstrap: str, *topics: str) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="newsradar-test")
    try:
        admin.create_topics([NewTopic(t, num_partitions=2, replication_factor=1, topic_configs={"retention.ms": "-1"})
                             for t in topics])
    finally:
        admin.close()


def _send(bootstrap: str, topic: str, records) -> None:
    producer = make_producer(bootstrap, client_id="newsradar-test")
    try:
        for key, value, when in records:
            producer.send(topic, key=key.encode(), value=value, timestamp_ms=int(when.timestamp() * 1000))
        producer.flush()
    finally:
        producer.close()


def test_since_reads_news_tagged_by_time(kafka, topic_prefix, tagger):
    prefix = f"{topic_prefix}."
    _create(kafka.bootstrap, prefix + "news.tagged")
    now = datetime.now(UTC)
    recent = [tagged(tagger, i, *s) for i, s in enumerate(STORIES)]
    # Nine days ago: the council in three more stories, which would put it first.
    old = [tagged(tagger, 100 + i, "ru", "Пикет", f"Совет семей запасников провёл пикет против мобилизации, день {i}.")
           for i in range(3)]
    _send(kafka.bootstrap, prefix + "news.tagged",
          [(t.article.article_id, t.encode(), now - timedelta(days=9) + timedelta(minutes=i)) for i, t in enumerate(old)]
          + [(t.article.article_id, t.encode(), now - timedelta(hours=20 - i)) for i, t in enumerate(recent)])

    def run(*args):
        return subprocess.run(newsradar_cmd("candidates", "--watchlist", WATCHLIST, "--bootstrap-servers",
                                            kafka.bootstrap, "--topic-prefix", prefix, "--no-ner", *args),
                              capture_output=True, text=True, timeout=300)

    proc = run("--since", "2d", "--json")
    assert proc.returncode == 0, proc.stderr
    got = [(o["name"], o["stories"]) for o in map(json.loads, proc.stdout.splitlines())]
    assert got == [("Голос запаса", 4), ("Совет семей запасников", 2), ("Зелёный сад", 3)]
    assert "candidates: 3 from 7 articles" in proc.stderr

    proc = run("--since", format_time(now - timedelta(days=9)), "--json")
    assert proc.returncode == 0, proc.stderr
    got = [(o["name"], o["stories"]) for o in map(json.loads, proc.stdout.splitlines())]
    assert got[0] == ("Совет семей запасников", 5)

    proc = run("--since", "30d")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("newsradar:")]
    assert len(errors) == 1 and "is before the earliest record on" in errors[0], proc.stderr


def test_feedback_lookup_takes_alias_and_terms_from_the_tagged_article(kafka, topic_prefix, tagger, tmp_path):
    prefix = f"{topic_prefix}."
    _create(kafka.bootstrap, prefix + "news.tagged", prefix + "news.alerts")
    article = tagged(tagger, 1, "ru", "Пикет жён", "Совет матерей и жён провёл пикет у военкомата против мобилизации.")
    mention = next(m for m in article.mentions if m.org_id == "council-of-mothers-and-wives")
    topic = next(t for t in article.topics if t.id == "protest")
    now = datetime.now(UTC)
    alert = Alert(alert_id=alert_id("topic", topic.id, f"{mention.org_id}|{article.story_id}"), kind="topic",
                  severity="warning", article_id=article.article.article_id, story_id=article.story_id,
                  url=article.article.url, title=article.article.title, snippet=article.article.text, why="test",
                  created_at=format_time(now), org_id=mention.org_id, topic_id=topic.id)
    _send(kafka.bootstrap, prefix + "news.tagged", [(article.article.article_id, article.encode(), now)])
    _send(kafka.bootstrap, prefix + "news.alerts", [(alert.alert_id, alert.encode(), now)])
    path = tmp_path / "feedback.jsonl"
    proc = subprocess.run(newsradar_cmd("feedback", alert.alert_id, "--fp", "--file", str(path), "--lookup",
                                        "--bootstrap-servers", kafka.bootstrap, "--topic-prefix", prefix),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = json.loads(path.read_text(encoding="utf-8"))
    assert line["org_id"] == mention.org_id and line["topic_id"] == "protest"
    assert line["aliases"] == [mention.text]
    assert line["terms"] == list(dict.fromkeys(e.text for e in topic.evidence)) and line["terms"]

    missing = subprocess.run(newsradar_cmd("feedback", "topic:protest:" + "0" * 20, "--tp", "--file", str(path),
                                           "--lookup", "--bootstrap-servers", kafka.bootstrap, "--topic-prefix", prefix),
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2
    assert [x for x in missing.stderr.splitlines() if x.startswith("newsradar:")] == [
        f"newsradar: feedback: alert topic:protest:{'0' * 20} is not on {prefix}news.alerts at {kafka.bootstrap}"]
