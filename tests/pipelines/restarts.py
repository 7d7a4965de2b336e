"""The restart fault harness, shared by tests/pipelines/test_restarts.py (CI size) and
benchmarks/restarts.py (full size): a generated stream over simulated weeks, run by
`newsradar pipeline` once without interruption (the reference) and once with clean stops and
SIGKILLs at seeded random points, restarting each time; then the two runs' topics compared.

The stream: stories that mention organizations of config/watchlist.yaml (each story's
original and up to two copies, rewritten or reposted, 4 to 20 simulated hours later),
unrelated articles, organizations that go quiet for longer than their window and come back,
one burst of stories in one hour. Event times and Kafka times lie in the past (the watchlist
copy sets ``novelty.max_alert_age`` past them: the backfill guard would otherwise withhold
every alert). Copies come within the story window and different stories never share text, so
no verdict depends on when a prune timer fires.

The stream is produced in waves, each once both runs have committed the one before. Within a
bundle Beam keeps no order between keys, so which of two articles judged together is a story's
original, or which mention ends a silence, is not defined (for any run, interrupted or not);
a wave never holds a copy together with its original, and a returning organization's mention
is a wave of its own, so every verdict is defined and the two runs can be compared exactly.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from newsradar.kafka import ensure_topics, make_producer, read_topic
from newsradar.records import RawArticle, decode_alert, decode_tagged, format_time
from tests.conftest import wait_for

REPO = Path(__file__).resolve().parents[2]
HOUR = 3600.0
DAY = 86400.0

ORGS = {
    "council-of-mothers-and-wives": "Council of Mothers and Wives",
    "russian-ministry-of-defence": "Russian Ministry of Defence",
    "ovd-info": "OVD-Info",
    "memorial": "Memorial Human Rights Centre",
}
WORDS = ("city council budget river bridge school hospital road train station market museum library park "
         "weather storm harvest farmers workers teachers doctors students drivers police court judge mayor "
         "governor region village town street winter summer spring autumn morning evening report plan price "
         "water power plant factory port airport flight ticket bank loan rent house family children festival "
         "concert theatre football match team coach season record opening closing repair delay cost").split()


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


@dataclass
class Stream:
    records: list[tuple[int, bytes, bytes]]  # (Kafka time in ms, key, value), in arrival order
    waves: list[int]  # how many records each wave holds, in order
    stories: int
    copies: int
    quiet_returns: int = 0
    notes: dict = field(default_factory=dict)


def generate(n_articles: int, seed: int, weeks: float = 3.0, end: datetime | None = None,
             wave_size: int = 20) -> Stream:
    """About ``n_articles`` articles over ``weeks`` simulated weeks ending a day before ``end``."""
    rng = random.Random(seed)
    end = end or datetime.now(UTC) - timedelta(days=1)
    start = end - timedelta(weeks=weeks)
    span = (end - start).total_seconds()
    orgs = list(ORGS)
    # One organization per third of the span goes quiet (8-10 days) and comes back.
    quiet = {org: (rng.uniform(0.15, 0.3) * span, rng.uniform(8, 10) * DAY) for org in orgs[:2]}
    items: list[tuple[float, RawArticle]] = []
    stories = copies = 0
    n = 0

    def article(at: float, title: str, text: str) -> RawArticle:
        nonlocal n
        n += 1
        when = start + timedelta(seconds=at)
        return RawArticle(
            article_id=f"rss:restarts:{seed}:{n}", source_id=f"feed-{n % 17}", source_kind="rss",
            url=f"https://news.example.org/{seed}/{n}", title=title, text=text,
            published_at=format_time(when), fetched_at=format_time(when + timedelta(seconds=30)))

    def silent(org: str, at: float) -> bool:
        if org not in quiet:
            return False
        begin, length = quiet[org]
        return begin <= at < begin + length

    # A burst: six stories about one organization within one UTC hour, two thirds into the span.
    burst_at = 0.66 * span
    burst_at += HOUR - (start.timestamp() + burst_at) % HOUR + 60
    while len(items) < n_articles:
        at = rng.uniform(0, span - 21 * HOUR)
        if stories == 10:
            at = burst_at
        mentioned = rng.choice(orgs) if rng.random() < 0.6 else None
        if stories == 10:
            mentioned = orgs[2]
        if mentioned is not None and silent(mentioned, at):
            mentioned = None
        body = _sentence(rng, 30)
        text = (f"{body[:60]} the {ORGS[mentioned]} said {body[60:]}." if mentioned else body + ".")
        title = _sentence(rng, 5).capitalize()
        count = 6 if stories == 10 else 1
        for k in range(count):
            t = at + k * 300.0
            if k:
                body = _sentence(rng, 30)
                text = f"{body[:60]} the {ORGS[mentioned]} said {body[60:]}."
            original = article(t, title, text)
            items.append((t, original, None, False))
            stories += 1
            for c in range(rng.choice((0, 0, 1, 2)) if count == 1 else 0):
                later = t + rng.uniform(4, 20) * HOUR
                copy_text = text if c == 1 else text.rstrip(".") + " " + _sentence(rng, 3) + ", officials said."
                items.append((later, article(later, title, copy_text), original.article_id, False))
                copies += 1
    # Quiet organizations come back after their silence (first_in_window).
    returns = 0
    for org, (begin, length) in quiet.items():
        t = begin + length + HOUR
        body = _sentence(rng, 30)
        items.append((t, article(t, "Back in the news", f"{body[:60]} the {ORGS[org]} said {body[60:]}."),
                      None, True))
        returns += 1
    items.sort(key=lambda it: it[0])
    records, waves, current = [], [], set()
    for t, art, origin, alone in items:
        if current and (len(current) >= wave_size or origin in current or alone):
            waves.append(len(current))
            current = set()
        ms = int((start + timedelta(seconds=t + 30)).timestamp() * 1000)
        records.append((ms, art.article_id.encode(), art.encode()))
        current.add(art.article_id)
        if alone:
            waves.append(1)
            current = set()
    if current:
        waves.append(len(current))
    return Stream(records, waves, stories, copies, returns)


def watchlist_copy(path: Path, max_alert_age_days: int = 400) -> Path:
    text = (REPO / "config" / "watchlist.yaml").read_text(encoding="utf-8")
    assert "  max_alert_age: 2d\n" in text
    path.write_text(text.replace("  max_alert_age: 2d\n", f"  max_alert_age: {max_alert_age_days}d\n"),
                    encoding="utf-8")
    return path


def produce(runs: list[Pipeline], stream: Stream, timeout: float) -> None:
    """Send the stream to every run's news.raw wave by wave, each wave once every run has
    committed all before it (see the module docstring)."""
    producer = make_producer(runs[0].bootstrap, client_id="newsradar-restarts")
    try:
        sent = 0
        for size in stream.waves:
            for p in runs:
                wait(lambda p=p: committed_all(p.bootstrap, p.prefix), timeout, f"the wave before record {sent}")
            for ms, k, v in stream.records[sent:sent + size]:
                for p in runs:
                    producer.send(p.prefix + "news.raw", key=k, value=v, partition=0, timestamp_ms=ms)
            producer.flush()
            sent += size
    finally:
        producer.close()


def make_topics(bootstrap: str, prefix: str) -> None:
    # news.raw with one partition: which article of a story is "the first" is then the same in
    # every run; the outputs with two.
    ensure_topics(bootstrap, partitions=1, topics=[prefix + "news.raw"])
    ensure_topics(bootstrap, partitions=2, topics=[prefix + t for t in ("news.tagged", "news.alerts", "news.dlq")])


class Pipeline:
    """One `newsradar pipeline` process on a topic prefix and group, logging to a file."""

    def __init__(self, bootstrap: str, prefix: str, watchlist: Path, log_path: Path, home: Path, cmd_prefix):
        self.bootstrap, self.prefix, self.watchlist, self.log_path = bootstrap, prefix, watchlist, log_path
        self.home = home
        self._cmd = cmd_prefix
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        import os

        self.starts += 1
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child holds it; closed with the run
        log.write(f"\n--- start {self.starts} at {datetime.now(UTC).isoformat()}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [*self._cmd, "pipeline", "--watchlist", str(self.watchlist), "--bootstrap-servers", self.bootstrap,
             f"--topic_prefix={self.prefix}", f"--group_id={self.prefix}group", "--metrics_port=0",
             # Event time is simulated weeks ago: an idle reader must not move the watermark to
             # the wall clock (that would prune every story at once, at a moment no run shares).
             "--idle_lag=3650d", "--stop_timeout=60s"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(os.environ, NEWSRADAR_HOME=str(self.home)),
        )
        log.close()

    def stop(self, how: str, timeout: float = 120) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM if how == "term" else signal.SIGKILL)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=30)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace") if self.log_path.exists() else ""


def tagged_count(bootstrap: str, topic: str) -> int:
    from kafka import TopicPartition

    from newsradar.kafka import make_consumer

    consumer = make_consumer(bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def committed_all(bootstrap: str, prefix: str) -> bool:
    from tests.pipelines.support import committed, end_offsets

    ends = end_offsets(bootstrap, prefix + "news.raw")
    got = committed(bootstrap, prefix + "group", prefix + "news.raw")
    return all((got.get(p) or 0) >= end for p, end in ends.items())


def wait(predicate, timeout: float, what: str, proc: Pipeline | None = None, interval: float = 0.5):
    """:func:`tests.conftest.wait_for`, failing at once, with the pipeline's log, if ``proc``
    exits before ``predicate`` holds."""

    def done() -> bool:
        if predicate():
            return True
        if proc is not None and proc.proc is not None and not proc.alive():
            raise AssertionError(f"the pipeline exited ({proc.proc.returncode}) before {what}:\n{proc.log()[-4000:]}")
        return False

    wait_for(done, timeout, what, interval, detail=(lambda: proc.log()[-4000:]) if proc is not None else None)


def interruptions(rng: random.Random, n_records: int, stops: int, kills: int) -> list[tuple[str, int]]:
    """(how, after this many records on news.tagged) for each interruption, in order."""
    hows = ["term"] * stops + ["kill"] * kills
    rng.shuffle(hows)
    k = len(hows)
    points = sorted(int(n_records * rng.uniform((i + 0.25) / (k + 1), (i + 0.95) / (k + 1))) for i in range(k))
    return list(zip(hows, points, strict=True))


def run_to_end(p: Pipeline, timeout: float, total: int) -> None:
    """Run until all ``total`` records of news.raw are there and committed."""
    p.start()
    wait(lambda: raw_count(p) >= total and committed_all(p.bootstrap, p.prefix), timeout,
         "every news.raw offset committed", p)


def produce_once_running(runs: list[Pipeline], stream: Stream, timeout: float) -> None:
    """Wait until every run's job is running, then produce the stream to all of them in waves."""
    for p in runs:
        wait(lambda p=p: p.alive() and p.log().count("pipeline: running") >= p.starts, timeout, "the job running", p)
    produce(runs, stream, timeout)


def raw_count(p: Pipeline) -> int:
    return tagged_count(p.bootstrap, p.prefix + "news.raw")


def run_interrupted(p: Pipeline, plan: list[tuple[str, int]], timeout: float, total: int,
                    out=sys.stderr) -> list[dict]:
    """Start, interrupt as planned (each time once the run has written something), restart;
    then run to the end."""
    done = []
    topic = p.prefix + "news.tagged"
    for how, after in plan:
        before = tagged_count(p.bootstrap, topic)
        p.start()
        wait(lambda after=after, before=before: (n := tagged_count(p.bootstrap, topic)) >= after and n > before,
             timeout, f"{after} records on news.tagged before a {how}", p)
        t0 = time.monotonic()
        code = p.stop(how)
        done.append({"how": how, "at_tagged": tagged_count(p.bootstrap, topic), "exit": code,
                     "stop_seconds": round(time.monotonic() - t0, 1)})
        print(f"restarts: {how} at {done[-1]['at_tagged']} tagged records (exit {code})", file=out, flush=True)
    run_to_end(p, timeout, total)
    return done


@dataclass
class Outcome:
    alert_ids: list[str]
    alerts_by_kind: Counter
    story_of: dict[str, set[str]]  # article id -> story ids it was written with
    tagged_records: int


def outcome(bootstrap: str, prefix: str) -> Outcome:
    alerts = [decode_alert(r.value) for r in read_topic(bootstrap, prefix + "news.alerts", timeout=120)]
    story_of: dict[str, set[str]] = {}
    tagged = read_topic(bootstrap, prefix + "news.tagged", timeout=120)
    for r in tagged:
        t = decode_tagged(r.value)
        story_of.setdefault(t.article.article_id, set()).add(t.story_id)
    return Outcome([a.alert_id for a in alerts], Counter(a.kind for a in alerts), story_of, len(tagged))


def compare(reference: Outcome, restarted: Outcome) -> list[str]:
    """What differs, as sentences (empty: the restarts were invisible)."""
    problems = []
    ref_ids, got_ids = set(reference.alert_ids), set(restarted.alert_ids)
    if ref_ids != got_ids:
        problems.append(f"alert ids differ: {len(ref_ids - got_ids)} only in the reference "
                        f"{sorted(ref_ids - got_ids)[:5]}, {len(got_ids - ref_ids)} only after restarts "
                        f"{sorted(got_ids - ref_ids)[:5]}")
    repeated = [i for i, c in Counter(restarted.alert_ids).items() if c > 1]
    if repeated:
        problems.append(f"{len(repeated)} alert ids raised more than once after restarts: {repeated[:5]}")
    fiw = lambda ids: {i for i in ids if i.startswith("first_in_window:")}  # noqa: E731
    if fiw(ref_ids) != fiw(got_ids):
        problems.append(f"first_in_window differs: reference {sorted(fiw(ref_ids))}, after restarts {sorted(fiw(got_ids))}")
    lost = set(reference.story_of) - set(restarted.story_of)
    if lost:
        problems.append(f"{len(lost)} tagged articles lost: {sorted(lost)[:5]}")
    moved = {a: (reference.story_of[a], s) for a, s in restarted.story_of.items()
             if a in reference.story_of and s != reference.story_of[a]}
    if moved:
        problems.append(f"{len(moved)} articles got another story id: {list(moved.items())[:5]}")
    return problems
