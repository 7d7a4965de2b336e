"""The streaming path end to end: `newsradar pipeline` on PrismRunner against the real broker
tags articles, raises alerts once per story, and takes a watchlist edit without a restart
(and refuses a broken one, counting it, while the old version keeps working)."""

from __future__ import annotations

import re
import subprocess
import urllib.request
from datetime import timedelta

import pytest

from newsradar.kafka import ensure_topics, make_producer, read_topic
from newsradar.records import RawArticle, decode_alert, decode_tagged, format_time, utc_now
from tests.conftest import REPO, newsradar_cmd, wait_for
from tests.pipelines.support import stop_process

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

POETS = """
  - id: poets-union
    name: Union of Poets
    aliases:
      en: [Union of Poets]
      ru: [Союз поэтов]
      uk: [Спілка поетів]
"""


def article(n: int, title: str, text: str) -> RawArticle:
    now = utc_now()
    return RawArticle(
        article_id=f"rss:e2e:{n}", source_id="e2e", source_kind="rss", url=f"https://news.example.org/{n}",
        title=title, text=text, published_at=format_time(now - timedelta(minutes=3)), fetched_at=format_time(now),
    )


def produce(bootstrap: str, topic: str, articles: list[RawArticle]) -> None:
    producer = make_producer(bootstrap, client_id="newsradar-test")
    try:
        futures = [producer.send(topic, key=a.article_id.encode(), value=a.encode()) for a in articles]
        producer.flush()
        for f in futures:
            f.get(timeout=30)
    finally:
        producer.close()




@pytest.fixture()
def pipeline(kafka, topic_prefix, tmp_path):
    prefix = f"{topic_prefix}."
    ensure_topics(kafka.bootstrap, partitions=2,
                  topics=[prefix + t for t in ("news.raw", "news.tagged", "news.alerts", "news.dlq")])
    watchlist = tmp_path / "watchlist.yaml"
    watchlist.write_text((REPO / "config" / "watchlist.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    log_path = tmp_path / "pipeline.log"
    log = open(log_path, "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        newsradar_cmd("pipeline", "--watchlist", str(watchlist), "--bootstrap-servers", kafka.bootstrap,
                      f"--topic_prefix={prefix}", f"--group_id={topic_prefix}-e2e", "--metrics_port=0",
                      "--idle_lag=1s", "--stop_timeout=60s", "--watchlist_poll=5s"),
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    try:
        yield proc, prefix, watchlist, log_path
    finally:
        stop_process(proc)
        log.close()


def test_stream_tags_alerts_once_per_story_and_reloads_the_watchlist(kafka, pipeline):
    proc, prefix, watchlist, log_path = pipeline
    bs = kafka.bootstrap
    log = lambda: log_path.read_text("utf-8", errors="replace")  # noqa: E731
    metrics_url = wait_for(lambda: re.search(r"metrics at (http://\S+/metrics)", log()), 120, "the metrics URL").group(1)

    body = ("Жены мобилизованных вместе с Советом матерей и жён вышли на пикет у военкомата, полиция задержала "
            "двоих участниц. Повестки в городе продолжают раздавать, военкомат работает круглосуточно, "
            "а родственники мобилизованных требуют ротации.")
    def tagged_now():
        return [decode_tagged(v) for v in (r.value for r in read_topic(bs, prefix + "news.tagged"))]

    # news.raw has two partitions and keys spread over both, so Kafka orders nothing between them:
    # the copy is produced once the original has been tagged, which makes "the first" well defined.
    produce(bs, prefix + "news.raw", [
        article(1, "Пикет жён мобилизованных", body),
        article(3, "Погода", "Завтра в городе ожидается дождь и сильный ветер."),
    ])
    wait_for(lambda: len(tagged_now()) >= 2, 240, "the original and the weather article in news.tagged")
    produce(bs, prefix + "news.raw", [article(2, "Пикет жён мобилизованных", body + " Обновлено.")])  # a copy
    tagged = wait_for(lambda: len(got := tagged_now()) >= 3 and got,
                      240, "three articles in news.tagged")
    by_id = {t.article.article_id: t for t in tagged}
    first = by_id["rss:e2e:1"]
    assert {t.id for t in first.topics} == {"mobilization", "protest"}
    assert [(m.org_id, m.text, m.match) for m in first.mentions] == [
        ("council-of-mothers-and-wives", "Советом матерей и жён", "lemma")
    ]
    assert by_id["rss:e2e:2"].story_id == first.story_id and by_id["rss:e2e:3"].mentions == ()

    def alerts():
        return [decode_alert(v) for v in (r.value for r in read_topic(bs, prefix + "news.alerts"))]

    got = wait_for(lambda: len(a := alerts()) >= 3 and a, 60, "alerts for the first story")
    assert sorted((a.kind, a.topic_id) for a in got) == [
        ("new_mention", None), ("topic", "mobilization"), ("topic", "protest"),
    ]
    assert {a.article_id for a in got} == {"rss:e2e:1"}  # the copy raised nothing

    # A new organization, without a restart: articles keep flowing until a worker has polled.
    text = watchlist.read_text(encoding="utf-8")
    watchlist.write_text(text.replace("organizations:\n", "organizations:\n" + POETS.lstrip("\n"), 1), encoding="utf-8")
    n = [10]

    def poets_tagged():
        n[0] += 1
        produce(bs, prefix + "news.raw", [article(n[0], "Литература", f"Союз поэтов провёл вечер номер {n[0]}.")])
        return any(m.org_id == "poets-union" for v in (r.value for r in read_topic(bs, prefix + "news.tagged"))
                   for m in decode_tagged(v).mentions)

    # One probe article every 3 s (wait_for's interval) until a worker has polled the file.
    wait_for(poets_tagged, 150, "an article tagged with the organization added to the watchlist", interval=3)
    metrics = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    assert re.search(r'newsradar_watchlist_reloads_total\{result="ok"\} [1-9]', metrics), metrics

    # A broken edit is refused and counted; the version in force keeps tagging.
    watchlist.write_text("version: 1\norganizations: [\n", encoding="utf-8")

    def refused():
        n[0] += 1
        produce(bs, prefix + "news.raw", [article(n[0], "Литература", f"Союз поэтов, вечер {n[0]}.")])
        page = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
        return re.search(r'newsradar_watchlist_reloads_total\{result="failed"\} [1-9]', page)

    wait_for(refused, 150, "the broken watchlist to be refused", interval=3)
    last = f"rss:e2e:{n[0]}"
    wait_for(lambda: any(t.article.article_id == last and t.mentions
                         for t in map(decode_tagged, (r.value for r in read_topic(bs, prefix + "news.tagged")))),
             60, "the last article tagged by the version still in force")
    assert "watchlist reload refused" in log()
    assert proc.poll() is None, log()[-3000:]
