"""Records/s through the pipeline on Prism + Kafka vs. the same functions in a plain loop, in
the same run.

Without ``--tagging``: the spine as it was before tagging: ReadFromKafka(news.raw) →
ParseRaw → Normalize → Dedupe → WriteToKafka(news.tagged, news.dlq) → CommitOffsets.
With ``--tagging``: the whole pipeline as `newsradar pipeline` runs it
(:func:`pipelines.run.attach_kafka`: build() with TagArticles and RaiseAlerts, the shipped
watchlist, writes to news.tagged, news.alerts and news.dlq, CommitOffsets). The plain loop
calls the same functions (parse_article, normalize, judge_repeat, assign_story, encode; with
``--tagging`` also Tagger.tag and the novelty rules) on the same payloads, one after the
other, with no Beam and no Kafka: the bare limit.

    .venv/bin/python benchmarks/pipeline_spine.py [--records 20000] [--tagging] [--bootstrap-servers H:P]

Without --bootstrap-servers a broker is started with `newsradar kafka start` in a temporary
directory and stopped at the end. The input is generated: en/ru/uk articles of 150-450
words built from the fixture vocabulary, 10 % rewritten copies of earlier ones (near
duplicates), 1 % malformed payloads.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.broker import local_broker  # noqa: E402
from newsradar.records import RawArticle, format_time, utc_now  # noqa: E402

FIXTURE = REPO / "tests" / "fixtures" / "pipeline" / "stories.jsonl"
WATCHLIST = REPO / "config" / "watchlist.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def generate(n: int, seed: int = 7) -> list[tuple[bytes | None, bytes]]:
    rng = random.Random(seed)
    vocab: dict[str, list[str]] = {}
    for line in FIXTURE.read_text("utf-8").splitlines():
        row = json.loads(line)
        vocab.setdefault(row["lang"], []).extend(row["text"].replace(".", " ").replace(",", " ").split())
    now = format_time(utc_now())
    texts: list[tuple[str, str]] = []
    messages = []
    for i in range(n):
        if i % 100 == 99:
            messages.append((None, f"not a record {i}".encode()))
            continue
        if texts and rng.random() < 0.10:
            lang, base = texts[rng.randrange(len(texts))]
            words = base.split()
            for _ in range(max(1, len(words) // 20)):  # rewrite ~5 % of the words
                words[rng.randrange(len(words))] = rng.choice(vocab[lang])
            text = " ".join(words)
        else:
            lang = rng.choice(("en", "ru", "uk"))
            text = " ".join(rng.choice(vocab[lang]) for _ in range(rng.randint(150, 450))) + "."
            texts.append((lang, text))
        article = RawArticle(
            article_id=f"rss:bench:{i}", source_id="bench", source_kind="rss", url=f"https://bench.example/{i}",
            title=" ".join(text.split()[:8]), text=text, published_at=now, fetched_at=now,
        )
        messages.append((article.article_id.encode(), article.encode()))
    return messages


def plain_loop(messages, tagging: bool = False) -> float:
    """The spine's functions over the payloads, no Beam, no Kafka; returns records/s."""
    from newsradar.config import load_watchlist
    from newsradar.records import DeadLetter
    from transforms.alert_rules import AlertRules, OrgState, events_of
    from transforms.dedupe import NEW, UPDATE, DedupeSettings, StoryIndex, assign_story, judge_repeat, version_of
    from transforms.normalize import normalize, shared_detector
    from transforms.parse import parse_article
    from transforms.tagging import Tagger

    detector = shared_detector()
    first = normalize(parse_article(messages[0][1]), detector)  # load the language models first
    tagger = rules = None
    states: dict[str, OrgState] = {}
    if tagging:
        watchlist = load_watchlist(WATCHLIST)
        tagger, rules = Tagger(watchlist), AlertRules(lambda: watchlist)
        tagger.tag(first)  # and the lemmatizers
    settings = DedupeSettings()
    seen: dict[str, object] = {}
    indexes: dict[str, StoryIndex] = {}
    t0 = time.perf_counter()
    for ts, (_key, payload) in enumerate(messages):
        parsed = parse_article(payload)
        if isinstance(parsed, DeadLetter):
            parsed.encode()
            continue
        tagged = normalize(parsed, detector)
        version = version_of(tagged)
        if judge_repeat(seen.get(tagged.article.article_id), version) not in (NEW, UPDATE):
            continue
        seen[tagged.article.article_id] = version
        if tagged.lang not in indexes:
            indexes[tagged.lang] = StoryIndex(settings)
        index = indexes[tagged.lang]
        tagged, entry = assign_story(index, tagged, ts, settings)
        if entry is not None:
            index.add(entry)
        if tagger is not None:
            tagged = tagger.tag(tagged)
            for org_id, event in events_of(tagged):
                for alert in rules.apply(states.setdefault(org_id, OrgState()), event):
                    alert.encode()
        tagged.encode()
    return len(messages) / (time.perf_counter() - t0)


def beam_on_prism(bootstrap: str, messages, prefix: str, tagging: bool = False) -> dict:
    """The spine (or, with ``tagging``, the whole pipeline) on Prism (streaming, LOOPBACK)
    reading and writing Kafka."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from newsradar.kafka import ensure_topics
    from pipelines.run import PrismServer, attach_kafka, prism_binary, with_prism_experiments
    from tests.pipelines.support import end_offsets, produce
    from transforms.dedupe import Dedupe
    from transforms.kafkaio import LOCAL_PROGRESS, CommitOffsets, ReadFromKafka, ReadSettings, WriteToKafka
    from transforms.normalize import Normalize
    from transforms.parse import ParseRaw
    from transforms.reload import WatchlistSource

    raw, tagged_topic, dlq_topic = f"{prefix}news.raw", f"{prefix}news.tagged", f"{prefix}news.dlq"
    ensure_topics(bootstrap, partitions=2, topics=[raw, tagged_topic, dlq_topic, f"{prefix}news.alerts"])
    produce(bootstrap, raw, messages)
    group = f"{prefix}bench"
    settings = ReadSettings(bootstrap, group_id=group)

    def outputs() -> int:
        return sum(end_offsets(bootstrap, tagged_topic).values()) + sum(end_offsets(bootstrap, dlq_topic).values())

    with PrismServer(prism_binary()) as server:
        options = with_prism_experiments(PipelineOptions([
            "--runner=PrismRunner", f"--job_endpoint={server.endpoint}", "--environment_type=LOOPBACK", "--streaming",
            f"--topic_prefix={prefix}", f"--group_id={group}",
        ]))
        pipeline = beam.Pipeline(options=options)
        if tagging:
            attach_kafka(pipeline, WatchlistSource.from_file(WATCHLIST), bootstrap, options)
        else:
            read = pipeline | "ReadRaw" >> ReadFromKafka(raw, settings)
            parsed = read.records | "ParseRaw" >> ParseRaw()
            normalized = parsed.articles | "Normalize" >> Normalize()
            deduped = normalized.articles | "Dedupe" >> Dedupe()
            dlq = (parsed.dlq, normalized.dlq, deduped.dlq) | "MergeDeadLetters" >> beam.Flatten()
            written = [
                deduped.articles | "WriteTagged" >> WriteToKafka(tagged_topic, bootstrap),
                dlq | "WriteDeadLetters" >> WriteToKafka(dlq_topic, bootstrap),
            ]
            read.progress | "CommitOffsets" >> CommitOffsets(settings, written)
        t_start = time.perf_counter()
        result = pipeline.run()
        t_first = None
        n_first = 0
        expected = len(messages)
        while True:
            done = outputs()
            now = time.perf_counter()
            if done and t_first is None:
                t_first, n_first = now, done
            if done >= expected:
                break
            if now - t_start > 1800:
                raise SystemExit(f"only {done} of {expected} outputs after 30 minutes")
            time.sleep(0.2)
        t_done = time.perf_counter()
        LOCAL_PROGRESS.request_stop()
        result.cancel()
    return {
        "end_to_end": expected / (t_done - t_start),
        "steady": (expected - n_first) / (t_done - t_first) if t_done > t_first else float("nan"),
        "wall": t_done - t_start,
        "first_output_after": t_first - t_start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--bootstrap-servers")
    parser.add_argument("--tagging", action="store_true",
                        help="the whole pipeline (build() with tagging and alerts, shipped watchlist), not just the spine")
    opts = parser.parse_args()
    messages = generate(opts.records)
    size = sum(len(v) for _, v in messages) / len(messages)
    print(f"input: {len(messages)} records, mean {size / 1024:.1f} KiB; {'with' if opts.tagging else 'without'} tagging")
    loop_rate = plain_loop(messages, opts.tagging)
    print(f"plain loop: {loop_rate:,.0f} records/s")
    with tempfile.TemporaryDirectory(prefix="nr-spine-") as tmp:
        with local_broker(Path(tmp), opts.bootstrap_servers) as bootstrap:
            prism = beam_on_prism(bootstrap, messages, f"b{uuid.uuid4().hex[:8]}.", opts.tagging)
    print(
        f"Prism + Kafka: {prism['steady']:,.0f} records/s steady (first output to last), "
        f"{prism['end_to_end']:,.0f} records/s end to end ({prism['wall']:.1f} s, first output after "
        f"{prism['first_output_after']:.1f} s)"
    )
    print(f"ratio Prism steady / plain loop: {prism['steady'] / loop_rate:.2f}")


if __name__ == "__main__":
    main()
