"""`newsradar pipeline` on PrismRunner, streaming, against the real broker.

Every valid record reaches news.tagged exactly once and every malformed one news.dlq, across
a clean stop (SIGTERM) in the middle of a stream and a restart; after a hard crash (the
pipeline and Prism killed with SIGKILL) nothing is lost.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from newsradar.kafka import ensure_topics, read_topic
from newsradar.records import decode_dead_letter, decode_tagged
from tests.conftest import FIXTURES, newsradar_cmd, wait_for
from tests.pipelines.support import committed, end_offsets, produce, raw_article

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

WATCHLIST = FIXTURES / "pipeline" / "watchlist.yaml"


class PipelineProcess:
    """One `newsradar pipeline` process; its output goes to a log file read by the test."""

    def __init__(self, bootstrap: str, prefix: str, group: str, log_path: Path):
        self.args = newsradar_cmd(
            "pipeline", "--watchlist", str(WATCHLIST), "--bootstrap-servers", bootstrap,
            f"--topic_prefix={prefix}", f"--group_id={group}", "--metrics_port=0", "--idle_lag=1s",
            "--stop_timeout=60s", "--partition_discovery=2s",
        )
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> PipelineProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        return self

    def log(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace")

    def metrics_url(self) -> str:
        found = wait_for(lambda: re.search(r"metrics at (http://\S+/metrics)", self.log()), 60, "the metrics URL")
        return found.group(1)

    def children(self) -> list[int]:
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                pids.append(int(stat.parent.name))
        return pids

    def stop(self, sig=signal.SIGTERM, timeout: float = 120) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._log.close()

    def crash(self) -> None:
        """kill -9 the pipeline; its Prism must not outlive it."""
        children = self.children()
        assert children, "the pipeline has no Prism child"
        self.process.kill()
        self.process.wait(timeout=30)
        self._log.close()
        try:
            wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in children), 30,
                     "Prism to exit after its parent was killed")
        finally:
            for pid in children:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def ensure_dead(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.crash()


@pytest.fixture()
def pipelines(kafka, topic_prefix, tmp_path):
    started: list[PipelineProcess] = []
    prefix = f"{topic_prefix}."
    ensure_topics(kafka.bootstrap, partitions=2, topics=[prefix + t for t in ("news.raw", "news.tagged",
                                                                              "news.alerts", "news.dlq")])

    def start() -> PipelineProcess:
        p = PipelineProcess(kafka.bootstrap, prefix, f"{topic_prefix}-pipeline", tmp_path / f"run{len(started)}.log")
        started.append(p.start())
        return p

    try:
        yield start
    finally:
        for p in started:
            p.ensure_dead()


def _valid(start: int, count: int) -> list[tuple[bytes, bytes]]:
    return [(f"rss:test:{i}".encode(), raw_article(i).encode()) for i in range(start, start + count)]


def _malformed(tag: str, count: int) -> list[tuple[bytes | None, bytes]]:
    return [(None, f"not json {tag} {i}".encode()) for i in range(count)]


def _interleave(valid, bad):
    out, step = [], max(1, len(valid) // max(1, len(bad)))
    for i, message in enumerate(valid):
        out.append(message)
        if i % step == 0 and bad:
            out.append(bad.pop())
    return out + bad


class _PacedProducer:
    """Produces in small acknowledged batches, each one only once the pipeline has written out
    all but ``ahead`` of what was sent before it. So the stream is still flowing whenever the
    test stops or crashes the pipeline, however fast or slow the machine; ``release()`` sends
    the rest at once. A pipeline that stops making progress for ``stall`` seconds is an error
    (kept in ``error``, checked by the test)."""

    def __init__(self, bootstrap, topic, messages, written, per_batch=10, ahead=20, stall=120.0):
        self._bootstrap, self._topic, self._messages, self._written = bootstrap, topic, messages, written
        self._per_batch, self._ahead, self._stall = per_batch, ahead, stall
        self._released = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._released.set()

    def finish(self, timeout: float = 120) -> None:
        self.release()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the producer did not finish"
        assert self.error is None, f"the producer failed: {self.error!r}"

    def _run(self) -> None:
        from newsradar.kafka import make_producer

        producer = make_producer(self._bootstrap, client_id="newsradar-test")
        try:
            for sent in range(0, len(self._messages), self._per_batch):
                deadline = time.monotonic() + self._stall
                while not self._released.is_set() and self._written() < sent - self._ahead:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the pipeline wrote nothing new for {self._stall:.0f}s")
                    self._released.wait(0.2)  # a bounded wait that release() cuts short
                for key, value in self._messages[sent:sent + self._per_batch]:
                    producer.send(self._topic, key=key, value=value)
                producer.flush()
        except (TimeoutError, OSError) as exc:
            self.error = exc
        finally:
            producer.close()


def _add_partition(bootstrap, topic, total):
    from kafka import KafkaAdminClient
    from kafka.admin import NewPartitions

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_partitions({topic: NewPartitions(total_count=total)})
    finally:
        admin.close()


def produce_to(bootstrap, topic, partition, messages):
    from newsradar.kafka import make_producer

    producer = make_producer(bootstrap, client_id="newsradar-test")
    try:
        futures = [producer.send(topic, key=k, value=v, partition=partition) for k, v in messages]
        producer.flush()
        for f in futures:
            assert f.get(timeout=30).partition == partition
    finally:
        producer.close()


def _tagged_ids(bootstrap, prefix) -> list[str]:
    return [decode_tagged(r.value).article.article_id for r in read_topic(bootstrap, prefix + "news.tagged")]


def _dead_letters(bootstrap, prefix) -> list:
    return [decode_dead_letter(r.value) for r in read_topic(bootstrap, prefix + "news.dlq")]


def _all_committed(bootstrap, group, topic) -> bool:
    return committed(bootstrap, group, topic) == end_offsets(bootstrap, topic)


def test_every_record_once_across_a_clean_stop_and_restart(kafka, topic_prefix, pipelines):
    prefix, group, bs = f"{topic_prefix}.", f"{topic_prefix}-pipeline", kafka.bootstrap
    raw = prefix + "news.raw"
    first = pipelines()
    metrics_url = first.metrics_url()

    # Warm up (the first articles also load the language models), then stream the rest.
    produce(bs, raw, _valid(0, 10))
    wait_for(lambda: len(_tagged_ids(bs, prefix)) >= 10, 120, "the first articles in news.tagged")
    producer = _PacedProducer(bs, raw, _interleave(_valid(10, 290), _malformed("a", 10)),
                              written=lambda: len(_tagged_ids(bs, prefix)) + len(_dead_letters(bs, prefix)) - 10)
    wait_for(lambda: len(_tagged_ids(bs, prefix)) >= 60, 120, "more articles in news.tagged")
    metrics = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    assert re.search(r'newsradar_articles_total\{lang="\w+"\} [1-9]', metrics), metrics
    assert "newsradar_kafka_consumer_lag{" in metrics

    assert first.stop(signal.SIGTERM) == 0, first.log()[-3000:]
    assert "everything read was written and committed" in first.log()
    producer.finish()
    seen_at_stop = len(_tagged_ids(bs, prefix))
    assert seen_at_stop < 300, "the stream ended before the stop: the scenario did not happen"
    # The clean stop committed exactly what was written: nothing behind, nothing ahead.
    assert sum(v or 0 for v in committed(bs, group, raw).values()) == seen_at_stop + len(
        [d for d in _dead_letters(bs, prefix)]
    )

    produce(bs, raw, _interleave(_valid(300, 100), _malformed("b", 5)))
    second = pipelines()
    wait_for(lambda: len(set(_tagged_ids(bs, prefix))) == 400 and len(_dead_letters(bs, prefix)) >= 15, 180,
             "all 400 articles in news.tagged and 15 dead letters")
    wait_for(lambda: _all_committed(bs, group, raw), 60, "the commit to reach the end of news.raw")
    assert second.stop(signal.SIGTERM) == 0, second.log()[-3000:]

    ids = collections.Counter(_tagged_ids(bs, prefix))
    assert set(ids) == {f"rss:test:{i}" for i in range(400)}
    assert [i for i, n in ids.items() if n > 1] == []
    letters = _dead_letters(bs, prefix)
    assert sorted(d.original for d in letters) == sorted(
        [f"not json a {i}" for i in range(10)] + [f"not json b {i}" for i in range(5)]
    )
    assert all(d.step == "parse" and d.source.startswith(raw + "/") for d in letters)


def test_a_crash_loses_nothing(kafka, topic_prefix, pipelines):
    prefix, group, bs = f"{topic_prefix}.", f"{topic_prefix}-pipeline", kafka.bootstrap
    raw = prefix + "news.raw"
    first = pipelines()
    produce(bs, raw, _valid(0, 10))
    wait_for(lambda: len(_tagged_ids(bs, prefix)) >= 10, 120, "the first articles in news.tagged")
    producer = _PacedProducer(bs, raw, _valid(10, 190), written=lambda: len(_tagged_ids(bs, prefix)) - 10)
    wait_for(lambda: len(_tagged_ids(bs, prefix)) >= 40, 120, "more articles in news.tagged")
    first.crash()
    producer.finish()
    before_restart = collections.Counter(_tagged_ids(bs, prefix))
    assert sum(before_restart.values()) < 200, "the stream ended before the crash: the scenario did not happen"

    produce(bs, raw, _valid(200, 50))
    second = pipelines()
    wait_for(lambda: len(set(_tagged_ids(bs, prefix))) == 250, 180, "all 250 articles in news.tagged")

    # A partition added while the pipeline runs is found and read.
    _add_partition(bs, raw, total=3)
    produce_to(bs, raw, 2, _valid(250, 20))
    wait_for(lambda: len(set(_tagged_ids(bs, prefix))) == 270, 120, "the articles of the new partition")
    wait_for(lambda: _all_committed(bs, group, raw), 60, "the commit to reach the end of news.raw")
    assert second.stop(signal.SIGTERM) == 0, second.log()[-3000:]
    assert "discovered partition " + raw + "/2" in second.log()

    ids = collections.Counter(_tagged_ids(bs, prefix))
    assert set(ids) == {f"rss:test:{i}" for i in range(270)}
    # At least once: only what was written after the last commit before the crash can repeat.
    repeated = sum(n - 1 for n in ids.values())
    assert repeated <= sum(before_restart.values())
    print(f"crash: {sum(before_restart.values())} written before the crash, {repeated} written twice")
