"""`newsradar backtest --topic`: a replay of news.raw on the real broker, bounded by record
timestamps, gives what `newsradar tag` gives on the same records; a missing topic and a
--since before the earliest record are one line and exit 2."""

from __future__ import annotations

import io
import json
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from newsradar.cli.history import read_topic
from newsradar.kafka import make_producer
from newsradar.records import decode_alert, format_time, parse_time
from pipelines import backtest
from pipelines.tag import main as tag_main
from pipelines.tag import read_items
from tests.conftest import FIXTURES, REPO, newsradar_cmd
from transforms.reload import WatchlistSource

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

WATCHLIST = str(REPO / "config" / "watchlist.yaml")


def _create(bootstrap: str, topic: str) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="newsradar-test")
    try:
        # Records days old must not be deleted by the broker's default retention mid-test.
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1,
                                      topic_configs={"retention.ms": "-1"})])
    finally:
        admin.close()


def _articles(base: datetime) -> list[dict]:
    """The tag fixture's five articles moved to ``base`` (same spacing), plus one the day
    before and one after the end: both mention the Council, so they would change the alerts."""
    rows = [json.loads(line) for line in (FIXTURES / "tag" / "articles.jsonl").read_text(encoding="utf-8").splitlines()]
    first = parse_time(rows[0]["published_at"])
    for row in rows:
        row["published_at"] = format_time(base + (parse_time(row["published_at"]) - first))
    outside = "Совет матерей и жён {} провёл пикет у военкомата."
    before = {"id": "before", "text": outside.format("снова"), "published_at": format_time(base - timedelta(days=1))}
    after = {"id": "after", "text": outside.format("опять"), "published_at": format_time(base + timedelta(days=11))}
    return [before, *rows, after]


def test_a_topic_replay_bounded_by_timestamps_equals_tag_on_those_records(kafka, topic_prefix, tmp_path):
    prefix = f"{topic_prefix}."
    topic = prefix + "news.raw"
    _create(kafka.bootstrap, topic)
    base = (datetime.now(UTC) - timedelta(days=12)).replace(microsecond=0)
    rows = _articles(base)
    now = datetime.now(UTC)
    items = read_items("\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode("utf-8"), now)
    producer = make_producer(kafka.bootstrap, client_id="newsradar-test")
    try:
        for item in items:
            ms = int(parse_time(item.article.published_at).timestamp() * 1000)
            producer.send(topic, key=item.article.article_id.encode(), value=item.article.encode(), timestamp_ms=ms)
        # a record that is not a news.raw record, in range: dead-lettered by ParseRaw, counted, the rest goes on
        bad_ms = int((base + timedelta(hours=3)).timestamp() * 1000)
        producer.send(topic, key=b"bad", value=b"{not json", timestamp_ms=bad_ms)
        producer.flush()
    finally:
        producer.close()

    since, until = base - timedelta(hours=1), base + timedelta(days=10, hours=12)
    history = read_topic(kafka.bootstrap, topic, since, until)
    assert [r.where.split("/")[0] for r in history.records] == [topic] * 6
    result = backtest.run(history, WatchlistSource.fixed(_watchlist()), WATCHLIST)
    assert result.articles == 5 and len(result.dead) == 1 and result.dead[0][1].startswith("parse: ")

    inside = tmp_path / "inside.jsonl"
    inside.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[1:-1]), encoding="utf-8")
    alerts_file = tmp_path / "alerts.jsonl"
    assert tag_main(WATCHLIST, str(inside), str(alerts_file), out=io.StringIO(), err=io.StringIO(), now=now) == 0
    tag_alerts = [decode_alert(line) for line in alerts_file.read_text(encoding="utf-8").splitlines()]
    assert [a.alert.alert_id for a in result.alerts] == [a.alert_id for a in tag_alerts]
    assert {a.alert.article_id for a in result.alerts} <= {"t1", "t2", "t3", "t4", "t5"}

    # The command itself, with the topic prefix convention and ISO bounds.
    done = subprocess.run(newsradar_cmd("backtest", "--watchlist", WATCHLIST, "--topic", "news.raw",
                                        "--topic-prefix", prefix, "--bootstrap-servers", kafka.bootstrap,
                                        "--since", format_time(since), "--until", format_time(until)),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"backtest: 6 records from {topic} at {kafka.bootstrap} from {format_time(since)}")
    assert f"{len(tag_alerts)} alerts" in done.stdout.splitlines()[1] and "1 dead-lettered" in done.stdout
    assert f"newsradar: {WATCHLIST}: {result.dead[0][0]}: dead-lettered by parse: " in done.stderr

    # --since older than the earliest record (the day-before article): said, exit 2.
    too_old = subprocess.run(newsradar_cmd("backtest", "--watchlist", WATCHLIST, "--topic", "news.raw",
                                           "--topic-prefix", prefix, "--bootstrap-servers", kafka.bootstrap,
                                           "--since", "30d"), capture_output=True, text=True, timeout=300)
    assert too_old.returncode == 2, too_old.stderr
    assert too_old.stderr.count("\n") == 1
    assert f"is before the earliest record on {topic} ({rows[0]['published_at']})" in too_old.stderr


def test_a_topic_that_does_not_exist_is_one_line_and_exit_2(kafka, topic_prefix):
    done = subprocess.run(newsradar_cmd("backtest", "--watchlist", WATCHLIST, "--topic", "news.raw",
                                        "--topic-prefix", f"{topic_prefix}.", "--bootstrap-servers", kafka.bootstrap,
                                        "--since", "1d"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr == (f"newsradar: backtest: topic {topic_prefix}.news.raw does not exist at {kafka.bootstrap}\n")


def _watchlist():
    from newsradar.config import load_watchlist

    return load_watchlist(WATCHLIST)
