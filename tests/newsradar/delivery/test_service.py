"""`newsradar deliver` as a process, against the real broker and webhook receivers on 127.0.0.1:
SIGKILLed mid-stream and restarted, every alert still reaches the receiver, nothing goes to the
DLQ, and repeats are bounded by what was in flight; a dead sink does not hold up a healthy one;
a new group starts at the last hour; an alert a sink never took goes to news.dlq with the
reason, and `newsradar dlq replay` brings it back to be delivered."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from newsradar.delivery import DEFAULT_GROUP_WINDOW
from newsradar.kafka import ensure_topics, make_producer, read_topic
from newsradar.records import Alert, decode_dead_letter
from tests.conftest import free_port, newsradar_cmd, wait_for
from tests.newsradar.delivery.receiver import SECRET, SECRET_ENV, Receiver, make_alert

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CONCURRENCY = 4


class Deliver:
    """`newsradar deliver` in the background, its output appended to one log across restarts."""

    def __init__(self, tmp_path: Path, bootstrap: str, prefix: str, watchlist: Path, *extra: str):
        self.log_path = tmp_path / "deliver.log"
        self.metrics_port = free_port()
        self.args = newsradar_cmd(
            "deliver", "--watchlist", str(watchlist), "--bootstrap-servers", bootstrap, "--topic-prefix", prefix,
            "--group-id", f"{prefix}deliver", "--metrics-port", str(self.metrics_port), *extra)
        self.env = {**os.environ, SECRET_ENV: SECRET, "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen | None = None

    def start(self) -> Deliver:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                         start_new_session=True)
        return self

    def check(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"deliver exited with {self.proc.returncode}:\n{self.log()}")

    def log(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def metric(self, name: str, **labels) -> float | None:
        want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            series, _, value = line.rpartition(" ")
            if series == want:
                return float(value)
        return None


@pytest.fixture()
def topics(kafka, topic_prefix):
    prefix = f"{topic_prefix}."
    ensure_topics(kafka.bootstrap, partitions=2, topics=[prefix + t for t in ("news.alerts", "news.dlq")])
    return prefix


def write_watchlist(path: Path, sinks: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"alerts": {"sinks": sinks}}, sort_keys=False))
    return path


def hook(url: str, **extra) -> dict:
    return {"kind": "webhook", "url": url, "secret_env": SECRET_ENV, "allow_private_networks": True,
            "concurrency": CONCURRENCY, **extra}


def produce(bootstrap: str, topic: str, alerts: list[Alert], timestamp_ms: int | None = None) -> dict[str, float]:
    """Send the alerts keyed by id; returns when each was acknowledged."""
    producer = make_producer(bootstrap, client_id="newsradar-test")
    acked = {}
    try:
        for a in alerts:
            producer.send(topic, key=a.alert_id.encode(), value=a.encode(), timestamp_ms=timestamp_ms).get(timeout=30)
            acked[a.alert_id] = time.time()
    finally:
        producer.close()
    return acked


def test_killed_twice_mid_stream_every_alert_arrives_once_or_in_flight_again(kafka, topics, tmp_path):
    old = [make_alert(10_000 + n, created=datetime.now(UTC) - timedelta(hours=2)) for n in range(5)]
    fresh = [make_alert(n) for n in range(240)]
    two_hours_ago = int((time.time() - 7200) * 1000)
    produce(kafka.bootstrap, topics + "news.alerts", old, timestamp_ms=two_hours_ago)
    produce(kafka.bootstrap, topics + "news.alerts", fresh)
    want = {a.alert_id for a in fresh}
    kills = 0
    with Receiver(delay=0.2) as rx:
        deliver = Deliver(tmp_path, kafka.bootstrap, topics, write_watchlist(tmp_path / "w.yaml", [hook(rx.url)]))
        deliver.start()
        try:
            for share in (80, 160):
                def got_share(share=share):
                    deliver.check()
                    return len(rx.alerts) >= share

                wait_for(got_share, 120, f"{share} alerts at the receiver")
                deliver.kill()
                kills += 1
                deliver.start()

            def all_arrived():
                deliver.check()
                return len(rx.alerts) >= len(want)

            wait_for(all_arrived, 180, f"all {len(want)} alerts at the receiver")
            # committed: a clean stop finds nothing unfinished
            assert deliver.stop() == 0, deliver.log()
            assert "everything read was delivered or dead-lettered, and committed" in deliver.log_path.read_text()
        finally:
            deliver.stop()
    assert set(rx.alerts) == want, "the alerts older than the start window must not be delivered"
    assert read_topic(kafka.bootstrap, topics + "news.dlq") == []
    repeats = len(rx.ok) - len(set(rx.ok))
    # at each kill at most the requests in flight (the sink's concurrency) were not yet in the ledger
    assert repeats <= kills * CONCURRENCY, f"{repeats} repeats after {kills} kills"
    assert all(len(bodies) == 1 for bodies in rx.bodies.values()), "a repeat must be the same alert, same id"
    assert all(valid for _id, valid in rx.attempts)


def blackhole() -> socket.socket:
    """A port that takes connections and never answers: a receiver that hangs."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1024)
    return s


def test_a_dead_sink_does_not_delay_a_healthy_one(kafka, topics, tmp_path):
    dead = blackhole()
    with Receiver() as rx:
        sinks = [hook(f"http://127.0.0.1:{dead.getsockname()[1]}/hook", timeout="2s"), hook(rx.url)]
        deliver = Deliver(tmp_path, kafka.bootstrap, topics, write_watchlist(tmp_path / "w.yaml", sinks)).start()
        try:
            wait_for(lambda: deliver.check() or deliver.metric("newsradar_alert_sink_pending", sink="webhook")
                     is not None, 60, "deliver's /metrics")
            wait_for(lambda: deliver.check() or "deliver: reading" in deliver.log_path.read_text(), 60,
                     "deliver to start reading")
            alerts = [make_alert(n) for n in range(120)]
            acked = {}
            for i in range(0, len(alerts), 10):  # a steady stream, 10 alerts every 0.25 s
                acked.update(produce(kafka.bootstrap, topics + "news.alerts", alerts[i:i + 10]))
                time.sleep(0.25)

            def healthy_has_all():
                deliver.check()
                return len(rx.alerts) >= len(alerts)

            wait_for(healthy_has_all, 60, "the healthy sink to receive every alert")
            latencies = sorted(rx.first_ok_at[a.alert_id] - acked[a.alert_id] for a in alerts)
            p95 = latencies[int(0.95 * len(latencies)) - 1]
            # the default grouping window (5 s) is part of every alert's way to a sink
            assert p95 <= DEFAULT_GROUP_WINDOW + 2.0, \
                f"healthy sink's alert -> delivered p95 {p95:.2f}s next to a dead one"
            # the dead sink's alerts wait (retried), they are neither delivered nor dropped
            assert (deliver.metric("newsradar_alert_sink_pending", sink="webhook") or 0) >= len(alerts)
            assert (deliver.metric("newsradar_alert_sink_deliveries_total", sink="webhook", outcome="ok")
                    == len(alerts))
            assert read_topic(kafka.bootstrap, topics + "news.dlq") == []
        finally:
            deliver.kill()
            dead.close()


def test_what_a_sink_never_took_goes_to_the_dlq_and_replay_delivers_it(kafka, topics, tmp_path):
    port = free_port()  # nothing listens yet: connection refused, retried until --max-age
    alerts = [make_alert(n) for n in range(3)]
    watchlist = write_watchlist(tmp_path / "w.yaml", [hook(f"http://127.0.0.1:{port}/hook")])
    deliver = Deliver(tmp_path, kafka.bootstrap, topics, watchlist, "--max-age", "3s", "--group-window", "0s").start()
    try:
        producer = make_producer(kafka.bootstrap, client_id="newsradar-test")
        producer.send(topics + "news.alerts", key=b"junk", value=b"{not an alert").get(timeout=30)
        producer.close()
        produce(kafka.bootstrap, topics + "news.alerts", alerts)

        def dead_lettered():
            deliver.check()
            return len(read_topic(kafka.bootstrap, topics + "news.dlq")) >= len(alerts) + 1

        wait_for(dead_lettered, 90, "the undeliverable alerts on news.dlq")
        letters = [decode_dead_letter(r.value) for r in read_topic(kafka.bootstrap, topics + "news.dlq")]
        assert sorted(d.step for d in letters) == ["alerts.decode"] + ["alerts.webhook"] * 3
        hooks = [d for d in letters if d.step == "alerts.webhook"]
        assert all("gave up after" in d.error and "cannot connect" in d.error for d in hooks), hooks
        assert all(d.source.startswith(topics + "news.alerts/") for d in letters)
        with Receiver(port=port) as rx:
            replay = subprocess.run(newsradar_cmd("dlq", "replay", "--bootstrap-servers", kafka.bootstrap,
                                                  "--topic-prefix", topics),
                                    capture_output=True, text=True, timeout=120)
            assert replay.returncode == 0, replay.stderr
            wait_for(lambda: deliver.check() or len(rx.alerts) == len(alerts), 60,
                     "the replayed alerts at the receiver")
        assert set(rx.alerts) == {a.alert_id for a in alerts}
        assert "1 of a step never replayed" in replay.stdout, replay.stdout  # the junk record stays
        assert len(read_topic(kafka.bootstrap, topics + "news.dlq")) == len(alerts) + 1  # none dead-lettered again
    finally:
        deliver.stop()
