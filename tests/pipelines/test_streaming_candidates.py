"""The daily news.candidates output end to end: `newsradar pipeline` on PrismRunner against the
real broker writes a day's ranking of unwatched names once the watermark has passed the day
(records stamped two days ago; the reader's watermark follows the clock once caught up)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from newsradar.kafka import ensure_topics, make_producer, read_topic
from newsradar.records import RawArticle, decode_candidate, decode_tagged, format_time
from tests.conftest import REPO, newsradar_cmd, wait_for
from tests.pipelines.support import stop_process
from tests.transforms.test_candidates import STORIES

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_a_past_day_gets_its_ranking_on_news_candidates(kafka, topic_prefix, tmp_path):
    prefix = f"{topic_prefix}."
    ensure_topics(kafka.bootstrap, partitions=2, topics=[prefix + t for t in (
        "news.raw", "news.tagged", "news.alerts", "news.dlq", "news.candidates")])
    day = (datetime.now(UTC) - timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)
    producer = make_producer(kafka.bootstrap, client_id="newsradar-test")
    try:
        for i, (_lang, title, text) in enumerate(STORIES):
            when = day + timedelta(minutes=10 * i)
            raw = RawArticle(article_id=f"rss:cand:{i}", source_id="e2e", source_kind="rss",
                             url=f"https://news.example.org/{i}", title=title, text=text,
                             published_at=format_time(when), fetched_at=format_time(when))
            producer.send(prefix + "news.raw", key=raw.article_id.encode(), value=raw.encode(),
                          timestamp_ms=int(when.timestamp() * 1000)).get(timeout=30)
    finally:
        producer.close()
    log = open(tmp_path / "pipeline.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        newsradar_cmd("pipeline", "--watchlist", str(REPO / "config" / "watchlist.yaml"), "--bootstrap-servers",
                      kafka.bootstrap, f"--topic_prefix={prefix}", f"--group_id={topic_prefix}-cand",
                      "--metrics_port=0", "--idle_lag=1s", "--stop_timeout=60s"),
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(read_topic(kafka.bootstrap, prefix + "news.tagged")) >= len(STORIES), 300,
                 f"{len(STORIES)} articles on news.tagged")
        records = wait_for(lambda: (got := read_topic(kafka.bootstrap, prefix + "news.candidates")) and got, 300,
                           "a ranking on news.candidates")
        # the whole day's ranking is one output: give the last writes a moment
        records = wait_for(lambda: len(got := read_topic(kafka.bootstrap, prefix + "news.candidates")) >= 3 and got,
                           60, "three candidates")
        ranking = sorted((decode_candidate(r.value) for r in records), key=lambda c: c.rank)
        assert [(c.day, c.rank, c.name, c.stories) for c in ranking] == [
            (day.strftime("%Y-%m-%d"), 1, "Голос запаса", 4),
            (day.strftime("%Y-%m-%d"), 2, "Совет семей запасников", 2),
            (day.strftime("%Y-%m-%d"), 3, "Зелёный сад", 3),
        ]
        assert {r.key.decode() for r in records} == {c.candidate_id for c in ranking}
        assert all(decode_tagged(r.value) for r in read_topic(kafka.bootstrap, prefix + "news.tagged"))
    finally:
        stop_process(proc)
        log.close()
