"""`newsradar deliver` as a process for the end-to-end tests and benchmarks/delivery.py: the
process (started, SIGKILLed, stopped, its /metrics read), watchlists of sinks, alerts in stories
produced to news.alerts, and the fault run (a slow signed webhook, kills mid-stream) with what
it measured."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from newsradar.kafka import make_producer, read_topic
from newsradar.records import Alert
from tests.conftest import free_port, newsradar_cmd, wait_for
from tests.newsradar.delivery.receiver import SECRET, SECRET_ENV, Receiver, make_alert

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


def write_watchlist(path: Path, sinks: list[dict], **alerts) -> Path:
    path.write_text(yaml.safe_dump({"alerts": {"sinks": sinks, **alerts}}, sort_keys=False))
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


def stories(alerts: int, first: int = 0, sizes=(1, 2, 3, 4)) -> list[Alert]:
    """``alerts`` alerts in stories of 1, 2, 3, 4, 1, ... alerts (one per organization, as an
    article naming several watched organizations raises them)."""
    out: list[Alert] = []
    story = first
    while len(out) < alerts:
        size = sizes[(story - first) % len(sizes)]
        out.extend(make_alert(story, org=f"org-{j}") for j in range(min(size, alerts - len(out))))
        story += 1
    return out


def file_notes(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


@dataclass
class FaultRun:
    alerts: int
    kills: int
    notifications: int = 0
    repeats: int = 0
    in_flight_at_kills: list[int] = field(default_factory=list)
    elapsed: float = 0.0
    dlq: int = 0
    file_lines: int = 0


def fault_run(bootstrap: str, prefix: str, tmp: Path, alerts: int, kills: int = 3, delay: float = 0.3) -> FaultRun:
    """``alerts`` alerts (in stories, produced up front) through `deliver` to a signed webhook
    taking ``delay`` s per request and a file sink, `deliver` SIGKILLed ``kills`` times at even
    shares of the alerts received and restarted; checks every guarantee (pytest.fail naming
    the broken one) and returns what it measured."""
    batch = stories(alerts)
    want = {a.alert_id for a in batch}
    produce(bootstrap, prefix + "news.alerts", batch)
    run = FaultRun(alerts=alerts, kills=kills)
    out = tmp / "notifications.jsonl"
    with Receiver(delay=delay) as rx:
        watchlist = write_watchlist(tmp / "w.yaml", [hook(rx.url), {"kind": "file", "path": str(out)}])
        deliver = Deliver(tmp, bootstrap, prefix, watchlist).start()
        started = time.monotonic()
        try:
            for k in range(1, kills + 1):
                share = len(want) * k // (kills + 1)

                def got_share(share=share):
                    deliver.check()
                    return len(rx.alerts) >= share

                wait_for(got_share, 300, f"{share} alerts at the receiver")
                with rx.lock:
                    run.in_flight_at_kills.append(rx.active)
                deliver.kill()
                deliver.start()

            def all_arrived():
                deliver.check()
                return len(rx.alerts) >= len(want) and len(file_notes(out)) >= len(set(rx.ok))

            try:
                wait_for(all_arrived, 600, f"all {len(want)} alerts at the receiver and in the file")
            except pytest.fail.Exception as exc:
                missing = sorted(want - set(rx.alerts))
                raise pytest.fail.Exception(
                    f"{exc}: {len(rx.alerts)} alerts and {len(set(rx.ok))} notifications at the receiver, "
                    f"{len(file_notes(out))} file lines; missing e.g. {missing[:5]}; log:\n{deliver.log()}") from None
            run.elapsed = time.monotonic() - started
            if deliver.stop() != 0:
                pytest.fail(f"deliver did not stop cleanly:\n{deliver.log()}")
            if "everything read was delivered or dead-lettered, and committed" not in deliver.log_path.read_text():
                pytest.fail(f"deliver stopped with alerts unfinished:\n{deliver.log()}")
        finally:
            deliver.stop()
    run.notifications = len(set(rx.ok))
    run.repeats = len(rx.ok) - run.notifications
    run.dlq = len(read_topic(bootstrap, prefix + "news.dlq"))
    lines = file_notes(out)
    run.file_lines = len(lines)
    if set(rx.alerts) != want:
        pytest.fail(f"{len(want - set(rx.alerts))} alert(s) never delivered, {len(set(rx.alerts) - want)} unknown")
    if run.dlq:
        pytest.fail(f"{run.dlq} dead letter(s) on news.dlq")
    if not all(valid for _id, valid in rx.attempts):
        pytest.fail("a request with a bad signature")
    if any(len(bodies) != 1 for bodies in rx.bodies.values()):
        pytest.fail("a notification sent again with another body")
    owner: dict[str, str] = {}
    for ident, note in rx.notes.items():
        for alert in note["alerts"] if "alerts" in note else note["alert_ids"]:
            alert = alert["alert_id"] if isinstance(alert, dict) else alert
            if owner.setdefault(alert, ident) != ident:
                pytest.fail(f"alert {alert} in two notifications, {owner[alert]} and {ident}: regrouped after a kill")
    ids = [line["notification_id"] for line in lines]
    if len(ids) != len(set(ids)):
        pytest.fail(f"{len(ids) - len(set(ids))} notification(s) written twice to the file sink")
    if set(ids) != set(rx.notes):
        pytest.fail("the file sink and the webhook got different notifications")
    return run
