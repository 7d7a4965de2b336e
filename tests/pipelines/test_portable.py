"""The portable path, as deployed: `newsradar pipeline --runner PortableRunner` submits to a
Prism job service running as its own process, and the work runs in a Beam SDK worker pool
(``worker_pool_main``) whose Python is a separate virtualenv with newsradar installed from its
sdist, not this checkout. news.raw has 4 partitions; the story and alert ids are those of a
1-partition run of the same input, and the offsets of every partition are committed.

The worker environment is built once by deploy/portable/worker-env.sh (``make portable-env``)
and cached; the first run of this test builds it if it is missing (a few minutes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from newsradar.kafka import ensure_topics, make_producer, read_topic
from newsradar.procs import port_open
from newsradar.records import decode_alert, decode_tagged
from pipelines.run import PrismServer, prism_binary
from tests.conftest import FIXTURES, REPO, free_port, newsradar_cmd, wait_for
from tests.pipelines.support import committed, end_offsets, raw_article

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

WATCHLIST = REPO / "config" / "watchlist.yaml"
STORIES = [json.loads(line) for line in (FIXTURES / "pipeline" / "stories.jsonl").read_text("utf-8").splitlines()]
# One set of Kafka timestamps for both runs, so time-based alerts (hourly surges) bucket alike.
BASE_MS = int(time.time() * 1000) - 120_000


def _waves() -> list[list[tuple[bytes | None, bytes]]]:
    """The input in two waves: the first article of every story (and some unrelated ones and
    malformed lines), then the copies. Which article is a story's original is then the same
    however the records are spread over partitions."""
    first, rest, seen = [], [], set()
    for n, row in enumerate(STORIES):
        a = raw_article(n, title=row["title"], text=row["text"], article_id=f"rss:portable:{row['id']}")
        (rest if row["story"] in seen else first).append((a.article_id.encode(), a.encode()))
        seen.add(row["story"])
    unrelated = [raw_article(n) for n in range(100, 124)]
    first += [(a.article_id.encode(), a.encode()) for a in unrelated[:12]]
    first += [(None, f"not json {i}".encode()) for i in range(3)]
    rest += [(a.article_id.encode(), a.encode()) for a in unrelated[12:]]
    rest.append(first[-4])  # an exact repeat of an unrelated article: dropped
    return [first, rest]


WAVES = _waves()


def _produce(bootstrap: str, topic: str, partitions: int, wave, offset: int) -> None:
    producer = make_producer(bootstrap, client_id="newsradar-test")
    try:
        futures = [
            producer.send(topic, key=key, value=value, partition=(offset + i) % partitions,
                          timestamp_ms=BASE_MS + 1000 * (offset + i))
            for i, (key, value) in enumerate(wave)
        ]
        producer.flush()
        for f in futures:
            f.get(timeout=30)
    finally:
        producer.close()


@pytest.fixture(scope="module")
def worker_python(tmp_path_factory) -> str:
    """The worker pool's interpreter: a separate virtualenv with newsradar from its sdist."""
    result = subprocess.run([str(REPO / "deploy" / "portable" / "worker-env.sh")], capture_output=True, text=True,
                            env=dict(os.environ, PYTHON=sys.executable), timeout=1800)
    assert result.returncode == 0, f"deploy/portable/worker-env.sh failed:\n{result.stderr[-3000:]}"
    python = result.stdout.strip().splitlines()[-1]
    where = subprocess.run([python, "-c", "import newsradar; print(newsradar.__file__)"], capture_output=True,
                           text=True, cwd=tmp_path_factory.mktemp("elsewhere"), env=_pool_env(python), timeout=60)
    assert where.returncode == 0, where.stderr
    installed = Path(where.stdout.strip())
    assert REPO not in installed.parents and "site-packages" in installed.parts, installed
    return python


def _pool_env(python: str) -> dict[str, str]:
    # worker_pool_main starts each worker as `python` from PATH: the venv's bin comes first.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{Path(python).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def job_service():
    with PrismServer(prism_binary()) as server:
        yield server.endpoint


@pytest.fixture(scope="module")
def worker_pool(worker_python, tmp_path_factory):
    port = free_port()
    workdir = tmp_path_factory.mktemp("worker-pool")
    log = open(workdir / "pool.log", "ab")  # noqa: SIM115 - closed below
    pool = subprocess.Popen(
        [worker_python, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={port}"],
        cwd=workdir, env=_pool_env(worker_python), stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_for(lambda: port_open(port) or pool.poll() is not None, 120, "the worker pool to listen")
        assert pool.poll() is None, (workdir / "pool.log").read_text()
        yield f"localhost:{port}", workdir / "pool.log"
    finally:
        os.killpg(pool.pid, signal.SIGTERM)  # the pool and the workers it started
        try:
            pool.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pool.pid, signal.SIGKILL)
            pool.wait(timeout=30)
        log.close()


def _run(kafka, prefix: str, partitions: int, runner_args: list[str], log_path: Path, stopped: str):
    """One `newsradar pipeline` over both waves, stopped with SIGTERM once all is committed."""
    topics = {t: prefix + t for t in ("news.raw", "news.tagged", "news.alerts", "news.dlq")}
    ensure_topics(kafka.bootstrap, partitions=partitions, topics=list(topics.values()))
    group = f"{prefix}pipeline"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            newsradar_cmd("pipeline", "--watchlist", str(WATCHLIST), "--bootstrap-servers", kafka.bootstrap,
                          *runner_args, f"--topic_prefix={prefix}", f"--group_id={group}", "--metrics_port=0",
                          "--idle_lag=1s", "--stop_timeout=60s"),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        try:
            sent = 0
            for n, wave in enumerate(WAVES):
                _produce(kafka.bootstrap, topics["news.raw"], partitions, wave, sent)
                sent += len(wave)
                wait_for(lambda: proc.poll() is None and committed(kafka.bootstrap, group, topics["news.raw"])
                         == end_offsets(kafka.bootstrap, topics["news.raw"]), 300,
                         f"wave {n + 1} to be committed on every partition ({log_path.read_text()[-2000:]})")
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = log_path.read_text("utf-8", errors="replace")
    assert code == 0, output
    assert stopped in output, output
    return (
        {r.article.article_id: r.story_id for r in map(decode_tagged, _values(kafka, topics["news.tagged"]))},
        sorted(decode_alert(v).alert_id for v in _values(kafka, topics["news.alerts"])),
        len(_values(kafka, topics["news.dlq"])),
        committed(kafka.bootstrap, group, topics["news.raw"]),
        output,
    )


def _values(kafka, topic: str) -> list[bytes]:
    return [r.value for r in read_topic(kafka.bootstrap, topic)]


def test_portable_job_service_and_worker_pool_match_a_one_partition_run(kafka, topic_prefix, tmp_path,
                                                                        job_service, worker_pool):
    pool_address, pool_log = worker_pool
    portable = _run(kafka, f"{topic_prefix}.p4.", 4, [
        "--runner", "PortableRunner", "--job_endpoint", job_service,
        "--environment_type", "EXTERNAL", "--environment_config", pool_address,
    ], tmp_path / "portable.log",
        # the launcher saw the committed offsets reach the end (it cannot see the readers)
        stopped="stopped; everything in the topic was written and committed")
    reference = _run(kafka, f"{topic_prefix}.p1.", 1, [], tmp_path / "reference.log",
                     stopped="stopped; everything read was written and committed")

    stories, alerts, dead, offsets, output = portable
    # the work ran in the pool's workers, not in the launching process
    assert "Starting worker with command" in pool_log.read_text(), pool_log.read_text()[-2000:]
    total = sum(len(w) for w in WAVES)
    assert offsets == {p: sum(1 for i in range(total) if i % 4 == p) for p in range(4)}, offsets
    assert len(stories) == total - 3 - 1 and dead == 3, (len(stories), dead)
    # copies of one story share one id, and the ids are the 1-partition run's
    by_story: dict[str, set[str]] = {}
    for row in STORIES:
        by_story.setdefault(row["story"], set()).add(stories[f"rss:portable:{row['id']}"])
    assert all(len(ids) == 1 for ids in by_story.values()), by_story
    assert len(by_story) == len({next(iter(ids)) for ids in by_story.values()})
    assert alerts, f"no alerts raised:\n{output[-2000:]}"
    assert (stories, alerts, dead) == reference[:3]
    assert reference[3] == {0: total}
