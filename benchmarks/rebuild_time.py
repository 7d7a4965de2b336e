"""How long the state rebuild at start takes for a month of a large deployment (issue 13).

Generates the topics a deployment of ``--feeds`` feeds at ``--items`` items per feed per day
leaves after ``--days`` days: news.tagged (English texts of ~120 words, 10 % copies of an
earlier story, ~30 % mentioning one of four watched organizations of config/watchlist.yaml, each record
with its Kafka time and ``arrived_at`` spread over the days up to now) and news.alerts (a
``new_mention`` for each story's first mention), plus a committed news.raw offset. Then it
runs :func:`pipelines.rebuild.rebuild_state` as `newsradar pipeline` does at start, with the
shipped watchlist and dedupe settings (it reads the last ``memory_seconds()`` of the topics),
and reports the time (wall and CPU), the records folded, the seed's size and the process's
peak memory.

    .venv/bin/python benchmarks/rebuild_time.py [--feeds 5000] [--items 5] [--days 30] [--bootstrap-servers H:P]

Without --bootstrap-servers a broker is started with `newsradar kafka start` in a temporary
directory and stopped at the end. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from newsradar.config import load_watchlist  # noqa: E402
from newsradar.identity import alert_id  # noqa: E402
from newsradar.kafka import ensure_topics, make_consumer, make_producer  # noqa: E402
from newsradar.records import Alert, Mention, RawArticle, TaggedArticle, format_time  # noqa: E402
from pipelines.rebuild import rebuild_state  # noqa: E402
from pipelines.run import memory_seconds  # noqa: E402
from tests.conftest import REPO, LocalKafka, free_port  # noqa: E402
from tests.pipelines.restarts import ORGS, WORDS  # noqa: E402
from transforms.dedupe import DedupeSettings  # noqa: E402
from transforms.nlp import analysis_text  # noqa: E402
from transforms.rebuild import SeedBlob  # noqa: E402

DAY = 86400.0


def generate(producer, prefix: str, feeds: int, items: int, days: int, orgs: dict[str, str], seed: int) -> dict:
    rng = random.Random(seed)
    total = feeds * items * days
    now = time.time()
    begin = now - days * DAY
    stories: list[tuple[str, str, str | None]] = []  # (story id, text, org) of recent stories
    n_alerts = 0
    for i in range(total):
        at = begin + (i + rng.random()) * (days * DAY / total)
        when = format_time(datetime.fromtimestamp(at, UTC))
        if stories and rng.random() < 0.1:
            story_id, text, org = rng.choice(stories[-2000:])
            text = text + " " + " ".join(rng.choice(WORDS) for _ in range(3))
            duplicate_of = story_id
        else:
            org = rng.choice(list(orgs)) if rng.random() < 0.3 else None
            body = " ".join(rng.choice(WORDS) for _ in range(120))
            text = f"{body[:300]} the {orgs[org]} said {body[300:]}." if org else body + "."
            story_id, duplicate_of = f"rss:bench:{i}", None
            stories.append((story_id, text, org))
        raw = RawArticle(article_id=f"rss:bench:{i}", source_id=f"feed-{i % feeds}", source_kind="rss",
                         url=f"https://news.example.org/{i}", title=f"Item {i}", text=text, published_at=when,
                         fetched_at=when)
        mentions = ()
        if org:
            full = analysis_text(raw.title, raw.text)
            start = full.index(orgs[org])
            mentions = (Mention(org, orgs[org], start, start + len(orgs[org]), "exact"),)
        tagged = TaggedArticle(article=raw, lang="en", story_id=story_id, duplicate_of=duplicate_of,
                               mentions=mentions, arrived_at=when)
        ms = int(at * 1000)
        producer.send(prefix + "news.tagged", key=raw.article_id.encode(), value=tagged.encode(), timestamp_ms=ms)
        if org and duplicate_of is None:
            alert = Alert(alert_id=alert_id("new_mention", org, story_id), kind="new_mention", severity="info",
                          article_id=raw.article_id, story_id=story_id, url=raw.url, title=raw.title,
                          snippet=orgs[org], why=f"{orgs[org]} is mentioned in a new story.", created_at=when,
                          org_id=org)
            producer.send(prefix + "news.alerts", key=alert.alert_id.encode(), value=alert.encode(), timestamp_ms=ms)
            n_alerts += 1
        if i % 100_000 == 0:
            print(f"rebuild_time: generated {i} of {total}", file=sys.stderr, flush=True)
    producer.flush()
    return {"tagged": total, "alerts": n_alerts}


def _cpu_seconds() -> float:
    """User + system CPU time of this process (the rebuild runs in it, its broker does not)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def commit_raw(bootstrap: str, prefix: str, group: str) -> None:
    from kafka import TopicPartition
    from kafka.structs import OffsetAndMetadata

    producer = make_producer(bootstrap, client_id="newsradar-bench")
    raw = RawArticle(article_id="rss:bench:raw", source_id="bench", source_kind="rss", url="https://example.org/",
                     title="t", text="x", published_at=format_time(datetime.now(UTC)),
                     fetched_at=format_time(datetime.now(UTC)))
    producer.send(prefix + "news.raw", key=b"raw", value=raw.encode(), partition=0).get(timeout=30)
    producer.close()
    consumer = make_consumer(bootstrap, group_id=group, enable_auto_commit=False)
    try:
        consumer.commit({TopicPartition(prefix + "news.raw", 0): OffsetAndMetadata(1, "", -1)})
    finally:
        consumer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=5000)
    parser.add_argument("--items", type=int, default=5, help="items per feed per day")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--bootstrap-servers")
    args = parser.parse_args()
    watchlist = load_watchlist(REPO / "config" / "watchlist.yaml")
    orgs = dict(ORGS)
    with tempfile.TemporaryDirectory(prefix="newsradar-rebuild-") as tmp:
        broker = None
        if args.bootstrap_servers is None:
            broker = LocalKafka(free_port(), Path(tmp) / "kafka")
            broker.start()
        bootstrap = args.bootstrap_servers or broker.bootstrap
        try:
            prefix = f"rb{random.Random().randrange(16**6):06x}."
            ensure_topics(bootstrap, partitions=args.partitions,
                          topics=[prefix + t for t in ("news.tagged", "news.alerts")])
            ensure_topics(bootstrap, partitions=1, topics=[prefix + "news.raw"])
            t0 = time.monotonic()
            producer = make_producer(bootstrap, client_id="newsradar-bench", compression_type="zstd",
                                     linger_ms=50, batch_size=512 * 1024)
            made = generate(producer, prefix, args.feeds, args.items, args.days, orgs, args.seed)
            producer.close()
            generated_s = time.monotonic() - t0
            commit_raw(bootstrap, prefix, prefix + "group")
            dedupe = DedupeSettings()
            memory = memory_seconds(watchlist, dedupe)
            cpu0 = _cpu_seconds()
            report = rebuild_state(bootstrap, raw_topic=prefix + "news.raw", tagged_topic=prefix + "news.tagged",
                                   alerts_topic=prefix + "news.alerts", group_id=prefix + "group",
                                   watchlist=watchlist, dedupe=dedupe, memory_seconds=memory,
                                   echo=lambda m: print(m, file=sys.stderr, flush=True))
            rebuild_cpu = _cpu_seconds() - cpu0
            t1 = time.monotonic()
            blob = SeedBlob.of(report.seed)
            encode_s = time.monotonic() - t1
        finally:
            if broker is not None:
                broker.stop()
    print(json.dumps({
        "feeds": args.feeds, "items_per_feed_per_day": args.items, "days": args.days,
        "generated": made, "generate_seconds": round(generated_s, 1), "memory_days": memory / DAY,
        "rebuild_seconds": round(report.seconds, 1), "rebuild_cpu_seconds": round(rebuild_cpu, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()], "tagged_read": report.tagged_read, "folded": report.folded,
        "alerts_read": report.alerts, "seed": report.seed.counts(), "seed_blob_bytes": len(blob.blob),
        "seed_encode_seconds": round(encode_s, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "summary": report.summary(),
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
