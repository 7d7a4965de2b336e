"""Alert sinks against real receivers on 127.0.0.1: a signed webhook with idempotent
retries, the real Alertmanager's v2 API, a JSONL file; the internal-address policy, the
circuit breaker, and the Beam step that turns undelivered alerts into dead letters."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import urllib.request
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to
from prometheus_client import REGISTRY, CollectorRegistry

from newsradar.config.watchlist import AlertmanagerSink, FileSink, WebhookSink
from newsradar.identity import alert_id
from newsradar.metrics import PipelineMetrics
from newsradar.records import Alert, decode_alert, decode_dead_letter, format_time
from tests.conftest import free_port, wait_for
from transforms.deliver_alerts import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Alertmanager,
    DeliverAlerts,
    Dispatcher,
    JsonlFile,
    Webhook,
    sign,
    verify_signature,
)

SECRET = "s3cret-for-tests"


def make_alert(n: int, kind: str = "new_mention") -> Alert:
    return Alert(
        alert_id=alert_id(kind, "cmw", f"story-{n}"), kind=kind, severity="warning", article_id=f"a{n}",
        story_id=f"story-{n}", url=f"https://example.org/{n}", title=f"Title {n}", snippet="… the Council said …",
        why="Council of Mothers and Wives is mentioned in a new story.", created_at=format_time(datetime.now(UTC)),
        org_id="cmw",
    )


class Receiver:
    """A webhook receiver as a user would write one: checks the signature, answers with the
    planned status codes, and keeps each alert id once."""

    def __init__(self, statuses=(), secret=SECRET, retry_after=None):
        self.statuses = list(statuses)
        self.secret = secret.encode()
        self.retry_after = retry_after
        self.attempts: list[tuple[str, bool]] = []
        self.alerts: dict[str, dict] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                valid = verify_signature(receiver.secret, self.headers, body)
                with receiver.lock:
                    receiver.attempts.append((self.headers.get(ID_HEADER, ""), valid))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    if not valid:
                        status = 401
                    if status == 200:
                        receiver.alerts.setdefault(self.headers[ID_HEADER], json.loads(body))
                self.send_response(status)
                if receiver.retry_after is not None and status in (429, 503):
                    self.send_header("Retry-After", str(receiver.retry_after))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class FakeTime:
    """A monotonic clock that the dispatcher's sleep advances: retries without waiting."""

    def __init__(self):
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self):
        return self.now

    async def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def dispatcher(sinks, fake: FakeTime, metrics=None, deadline=30.0):
    return Dispatcher(sinks, metrics=metrics, deadline=deadline, clock=fake.clock, sleep=fake.sleep, jitter=False)


@pytest.fixture()
def secret(monkeypatch):
    monkeypatch.setenv("NEWSRADAR_TEST_WEBHOOK_SECRET", SECRET)
    return "NEWSRADAR_TEST_WEBHOOK_SECRET"


def webhook(url, secret_env, allow=True, attempts=5):
    return Webhook(WebhookSink(kind="webhook", url=url, secret_env=secret_env, allow_private_networks=allow,
                               max_attempts=attempts, timeout=5))


def test_signature_round_trip_and_tampering():
    body = b'{"x":1}'
    headers = {ID_HEADER: "id-1", TIMESTAMP_HEADER: "1000", SIGNATURE_HEADER: sign(b"k", "id-1", 1000, body)}
    assert verify_signature(b"k", headers, body, now=1010)
    assert not verify_signature(b"k", headers, b'{"x":2}', now=1010)
    assert not verify_signature(b"other", headers, body, now=1010)
    assert not verify_signature(b"k", {**headers, ID_HEADER: "id-2"}, body, now=1010)
    assert not verify_signature(b"k", headers, body, now=5000)  # stale timestamp
    assert not verify_signature(b"k", {}, body)


def test_webhook_signed_retried_with_the_same_id_and_received_once(secret):
    fake = FakeTime()
    metrics = PipelineMetrics(CollectorRegistry())
    alerts = [make_alert(1), make_alert(2)]
    with Receiver(statuses=[500, 503]) as rx:
        d = dispatcher([webhook(rx.url, secret)], fake, metrics)
        assert d.deliver(alerts) == []
        # A retried bundle delivers the same alerts again; the receiver keeps each id once.
        assert d.deliver(alerts[:1]) == []
        d.close()
    ids = [a for a, _ in rx.attempts]
    assert all(valid for _, valid in rx.attempts)
    assert sorted(ids) == sorted([alerts[0].alert_id] * 3 + [alerts[1].alert_id] * 2)
    assert set(rx.alerts) == {a.alert_id for a in alerts}
    assert rx.alerts[alerts[0].alert_id]["why"] == alerts[0].why
    assert fake.sleeps == [0.5, 0.5]  # one backoff per failed first attempt
    assert metrics.sink_deliveries.labels(sink="webhook", outcome="retried")._value.get() == 2
    assert metrics.sink_deliveries.labels(sink="webhook", outcome="ok")._value.get() == 3


def test_webhook_wrong_secret_is_a_permanent_failure(secret, monkeypatch):
    monkeypatch.setenv(secret, "not-the-secret")
    fake = FakeTime()
    with Receiver() as rx:
        d = dispatcher([webhook(rx.url, secret)], fake)
        failures = d.deliver([make_alert(1)])
        d.close()
    assert [f.error for f in failures] == ["HTTP 401"]
    assert len(rx.attempts) == 1 and fake.sleeps == []


def test_webhook_honours_retry_after_and_gives_up_at_max_attempts(secret):
    fake = FakeTime()
    with Receiver(statuses=[429] * 10, retry_after=3) as rx:
        d = dispatcher([webhook(rx.url, secret, attempts=3)], fake)
        failures = d.deliver([make_alert(1)])
        d.close()
    assert len(rx.attempts) == 3
    assert fake.sleeps == [3.0, 3.0]
    assert failures[0].sink == "webhook" and "HTTP 429" in failures[0].error


def test_retries_stop_at_the_batch_deadline(secret):
    fake = FakeTime()
    with Receiver(statuses=[503] * 10) as rx:
        d = dispatcher([webhook(rx.url, secret, attempts=10)], fake, deadline=2.0)
        failures = d.deliver([make_alert(1)])
        d.close()
    assert len(failures) == 1 and sum(fake.sleeps) <= 2.0 and len(rx.attempts) < 10


def test_internal_addresses_are_refused_unless_allowed(secret):
    fake = FakeTime()
    with Receiver() as rx:
        d = dispatcher([webhook(rx.url, secret, allow=False),
                        webhook(rx.url.replace("127.0.0.1", "localhost"), secret, allow=False)], fake)
        failures = d.deliver([make_alert(1)])
        d.close()
    assert rx.attempts == []  # nothing reached the receiver
    assert len(failures) == 2
    assert all("refusing internal address" in f.error for f in failures), failures
    assert fake.sleeps == []  # a refusal is not retried


def test_missing_secret_is_a_config_error(monkeypatch):
    monkeypatch.delenv("NEWSRADAR_NO_SUCH_SECRET", raising=False)
    with pytest.raises(ValueError, match="NEWSRADAR_NO_SUCH_SECRET"):
        webhook("https://hooks.example.org/x", "NEWSRADAR_NO_SUCH_SECRET")


def test_circuit_opens_after_repeated_failures_and_skips_the_sink(secret):
    fake = FakeTime()
    metrics = PipelineMetrics(CollectorRegistry())
    with Receiver(statuses=[400] * 100) as rx:
        d = dispatcher([webhook(rx.url, secret)], fake, metrics)
        for i in range(5):
            assert len(d.deliver([make_alert(i)])) == 1
        tried = len(rx.attempts)
        failures = d.deliver([make_alert(9)])
        assert len(rx.attempts) == tried  # not even tried
        assert "circuit open" in failures[0].error
        fake.now += 61  # after the cooldown it is tried again
        rx.statuses.clear()
        assert d.deliver([make_alert(10)]) == []
        d.close()
    assert metrics.sink_deliveries.labels(sink="webhook", outcome="circuit_open")._value.get() == 1


def test_file_sink_appends_lines_once_per_id(tmp_path):
    path = tmp_path / "out" / "alerts.jsonl"
    fake = FakeTime()
    d = dispatcher([JsonlFile(FileSink(kind="file", path=str(path)))], fake)
    a1, a2 = make_alert(1), make_alert(2)
    assert d.deliver([a1, a2]) == []
    assert d.deliver([a1]) == []
    d.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [decode_alert(line).alert_id for line in lines] == [a1.alert_id, a2.alert_id]


def test_file_sink_relative_paths_live_under_newsradar_home(monkeypatch, tmp_path):
    monkeypatch.setenv("NEWSRADAR_HOME", str(tmp_path / "home"))
    sink = JsonlFile(FileSink(kind="file", path="alerts.jsonl"))
    assert sink.path == tmp_path / "home" / "alerts.jsonl"


# ---------------------------------------------------------------------------
# the real Alertmanager


@pytest.fixture()
def alertmanager(tmp_path):
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.fail("prometheus-alertmanager is not installed: run deploy/prometheus/install.sh (`make deps` does)")
    port, cluster = free_port(), free_port()
    config = tmp_path / "am.yml"
    config.write_text("route: {receiver: blackhole}\nreceivers: [{name: blackhole}]\n", encoding="utf-8")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", f"--cluster.listen-address=127.0.0.1:{cluster}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        def ready():
            if proc.poll() is not None:
                pytest.fail(f"alertmanager exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(ready, 30, "alertmanager to be ready")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_alertmanager_receives_news_alerts_once_per_id(alertmanager):
    fake = FakeTime()
    sink = Alertmanager(AlertmanagerSink(kind="alertmanager", url=alertmanager, allow_private_networks=True))
    d = dispatcher([sink], fake)
    alerts = [make_alert(1), make_alert(2, kind="first_in_window")]
    assert d.deliver(alerts) == []
    assert d.deliver(alerts[:1]) == []  # a retry of the same alert
    d.close()

    def listed():
        with urllib.request.urlopen(f"{alertmanager}/api/v2/alerts", timeout=5) as r:
            return json.loads(r.read())

    got = wait_for(lambda: len(listed()) == 2 and listed(), 10, "two alerts in Alertmanager")
    by_id = {a["labels"]["alert_id"]: a for a in got}
    assert set(by_id) == {a.alert_id for a in alerts}
    one = by_id[alerts[1].alert_id]
    assert one["labels"]["kind"] == "first_in_window" and one["labels"]["org_id"] == "cmw"
    assert one["annotations"]["summary"] == alerts[1].why
    assert one["generatorURL"] == alerts[1].url


def test_alertmanager_refused_on_loopback_by_default():
    fake = FakeTime()
    d = dispatcher([Alertmanager(AlertmanagerSink(kind="alertmanager", url="http://127.0.0.1:9/"))], fake)
    failures = d.deliver([make_alert(1)])
    d.close()
    assert "refusing internal address" in failures[0].error


# ---------------------------------------------------------------------------
# the Beam step


def test_deliver_alerts_step_dead_letters_what_a_sink_cannot_take(secret, tmp_path):
    alerts = [make_alert(1), make_alert(2)]
    path = tmp_path / "alerts.jsonl"
    dead_before = REGISTRY.get_sample_value("newsradar_dlq_records_total", {"step": "alerts.webhook"}) or 0.0
    with Receiver(statuses=[500] * 10) as rx:
        sinks = (
            WebhookSink(kind="webhook", url=rx.url, secret_env=secret, allow_private_networks=True, max_attempts=2),
            FileSink(kind="file", path=str(path)),
        )
        with beam.Pipeline(runner="BundleBasedDirectRunner", options=PipelineOptions(flags=[])) as p:
            letters = p | beam.Create(alerts) | DeliverAlerts(sinks)
            summary = letters | beam.Map(lambda d: (d.step, decode_alert(d.original_bytes()).alert_id, d.error))
            assert_that(summary, equal_to([("alerts.webhook", a.alert_id, "HTTP 500") for a in alerts]))
    assert {decode_alert(line).alert_id for line in Path(path).read_text().splitlines()} == {a.alert_id for a in alerts}
    assert len(rx.attempts) == 4
    # Counted with the pipeline's other dead letters.
    assert REGISTRY.get_sample_value("newsradar_dlq_records_total", {"step": "alerts.webhook"}) - dead_before == 2


def test_dead_letter_keeps_the_alert_bytes():
    a = make_alert(3)
    from newsradar.records import DeadLetter

    letter = decode_dead_letter(DeadLetter.wrap(a.encode(), error="HTTP 500", step="alerts.webhook").encode())
    assert decode_alert(letter.original_bytes()) == a


def test_pipeline_launch_refuses_a_sink_whose_secret_is_missing(monkeypatch):
    from newsradar.config import ConfigError
    from newsradar.config.watchlist import Watchlist
    from transforms.deliver_alerts import check_sinks
    from transforms.reload import WatchlistSource

    monkeypatch.delenv("NEWSRADAR_NO_SUCH_SECRET", raising=False)
    wl = Watchlist.model_validate({"alerts": {"sinks": [
        {"kind": "file", "path": "a.jsonl"},
        {"kind": "webhook", "url": "https://hooks.example.org/x", "secret_env": "NEWSRADAR_NO_SUCH_SECRET"},
    ]}})
    with pytest.raises(ConfigError) as err:
        check_sinks(WatchlistSource(wl, "/etc/newsradar/watchlist.yaml"))
    assert err.value.path == "alerts.sinks[1]" and "NEWSRADAR_NO_SUCH_SECRET" in str(err.value)
    monkeypatch.setenv("NEWSRADAR_NO_SUCH_SECRET", "x")
    check_sinks(WatchlistSource(wl, "/etc/newsradar/watchlist.yaml"))
