"""Alert sinks against real receivers on 127.0.0.1: a signed webhook, the real Alertmanager's
v2 API, a JSONL file; what each send raises (retryable or not), the internal-address policy,
and the launch check of the watchlist's sinks."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import urllib.request

import pytest

from newsradar.config import ConfigError
from newsradar.config.watchlist import AlertmanagerSink, FileSink, Watchlist, WebhookSink
from newsradar.delivery.sinks import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Alertmanager,
    JsonlFile,
    Permanent,
    Retryable,
    Webhook,
    build_sinks,
    sign,
    verify_signature,
)
from newsradar.records import decode_alert
from tests.conftest import free_port, wait_for
from tests.newsradar.delivery.receiver import SECRET, SECRET_ENV, Receiver, make_alert


@pytest.fixture()
def secret(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return SECRET_ENV


def webhook(url, secret_env, allow=True):
    return Webhook(WebhookSink(kind="webhook", url=url, secret_env=secret_env, allow_private_networks=allow,
                               timeout=5))


def send(sink, alerts):
    """One send on a loop of its own, the sink closed after it: returns None or the exception."""

    async def go():
        try:
            await sink.send(alerts)
        except (Retryable, Permanent) as exc:
            return exc
        finally:
            await sink.close()
        return None

    return asyncio.run(go())


def test_signature_round_trip_and_tampering():
    body = b'{"x":1}'
    headers = {ID_HEADER: "id-1", TIMESTAMP_HEADER: "1000", SIGNATURE_HEADER: sign(b"k", "id-1", 1000, body)}
    assert verify_signature(b"k", headers, body, now=1010)
    assert not verify_signature(b"k", headers, b'{"x":2}', now=1010)
    assert not verify_signature(b"other", headers, body, now=1010)
    assert not verify_signature(b"k", {**headers, ID_HEADER: "id-2"}, body, now=1010)
    assert not verify_signature(b"k", headers, body, now=5000)  # stale timestamp
    assert not verify_signature(b"k", {}, body)


def test_webhook_sends_the_alert_signed(secret):
    alert = make_alert(1)
    with Receiver() as rx:
        assert send(webhook(rx.url, secret), [alert]) is None
    assert rx.attempts == [(alert.alert_id, True)]
    assert rx.alerts[alert.alert_id]["why"] == alert.why


@pytest.mark.parametrize("status, retryable", [(500, True), (503, True), (429, True), (408, True),
                                               (400, False), (404, False), (301, False)])
def test_webhook_says_whether_a_failure_is_worth_retrying(secret, status, retryable):
    with Receiver(statuses=[status], retry_after=3) as rx:
        error = send(webhook(rx.url, secret), [make_alert(1)])
    assert isinstance(error, Retryable if retryable else Permanent), error
    assert f"HTTP {status}" in str(error)
    if status in (429, 503):
        assert error.retry_after == 3.0


def test_webhook_wrong_secret_is_a_permanent_failure(secret, monkeypatch):
    monkeypatch.setenv(secret, "not-the-secret")
    with Receiver() as rx:
        error = send(webhook(rx.url, secret), [make_alert(1)])
    assert isinstance(error, Permanent) and str(error) == "HTTP 401"


def test_nothing_listening_is_retryable(secret):
    error = send(webhook(f"http://127.0.0.1:{free_port()}/hook", secret), [make_alert(1)])
    assert isinstance(error, Retryable) and "cannot connect" in str(error)


def test_internal_addresses_are_refused_unless_allowed(secret):
    with Receiver() as rx:
        errors = [send(webhook(rx.url, secret, allow=False), [make_alert(1)]),
                  send(webhook(rx.url.replace("127.0.0.1", "localhost"), secret, allow=False), [make_alert(1)])]
    assert rx.attempts == []  # nothing reached the receiver
    assert all(isinstance(e, Permanent) and "refusing internal address" in str(e) for e in errors), errors


def test_missing_secret_is_a_config_error(monkeypatch):
    monkeypatch.delenv("NEWSRADAR_NO_SUCH_SECRET", raising=False)
    with pytest.raises(ValueError, match="NEWSRADAR_NO_SUCH_SECRET"):
        webhook("https://hooks.example.org/x", "NEWSRADAR_NO_SUCH_SECRET")


def test_file_sink_appends_lines_once_per_id(tmp_path):
    path = tmp_path / "out" / "alerts.jsonl"
    sink = JsonlFile(FileSink(kind="file", path=str(path)))
    a1, a2 = make_alert(1), make_alert(2)

    async def go():
        await sink.send([a1, a2])
        await sink.send([a1])

    asyncio.run(go())
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [decode_alert(line).alert_id for line in lines] == [a1.alert_id, a2.alert_id]


def test_file_sink_relative_paths_live_under_newsradar_home(monkeypatch, tmp_path):
    monkeypatch.setenv("NEWSRADAR_HOME", str(tmp_path / "home"))
    sink = JsonlFile(FileSink(kind="file", path="alerts.jsonl"))
    assert sink.path == tmp_path / "home" / "alerts.jsonl"


def test_file_sink_that_cannot_write_is_retryable(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    error = send(JsonlFile(FileSink(kind="file", path=str(blocker / "alerts.jsonl"))), [make_alert(1)])
    assert isinstance(error, Retryable) and "cannot write" in str(error)


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
    alerts = [make_alert(1), make_alert(2, kind="first_in_window")]

    def sink():
        return Alertmanager(AlertmanagerSink(kind="alertmanager", url=alertmanager, allow_private_networks=True))

    assert send(sink(), alerts) is None
    assert send(sink(), alerts[:1]) is None  # a repeat of the same alert

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
    error = send(Alertmanager(AlertmanagerSink(kind="alertmanager", url="http://127.0.0.1:9/")), [make_alert(1)])
    assert isinstance(error, Permanent) and "refusing internal address" in str(error)


def test_the_launch_refuses_a_sink_whose_secret_is_missing(monkeypatch):
    monkeypatch.delenv("NEWSRADAR_NO_SUCH_SECRET", raising=False)
    wl = Watchlist.model_validate({"alerts": {"sinks": [
        {"kind": "file", "path": "a.jsonl"},
        {"kind": "webhook", "url": "https://hooks.example.org/x", "secret_env": "NEWSRADAR_NO_SUCH_SECRET"},
    ]}})
    with pytest.raises(ConfigError) as err:
        build_sinks(wl, "/etc/newsradar/watchlist.yaml")
    assert err.value.path == "alerts.sinks[1]" and "NEWSRADAR_NO_SUCH_SECRET" in str(err.value)
    monkeypatch.setenv("NEWSRADAR_NO_SUCH_SECRET", "x")
    assert [s.kind for s in build_sinks(wl, "/etc/newsradar/watchlist.yaml")] == ["file", "webhook"]


def test_the_same_sink_twice_is_a_config_error():
    wl = Watchlist.model_validate({"alerts": {"sinks": [
        {"kind": "webhook", "url": "https://hooks.example.org/x"},
        {"kind": "webhook", "url": "https://hooks.example.org/x", "timeout": "3s"},
    ]}})
    with pytest.raises(ConfigError) as err:
        build_sinks(wl, "w.yaml")
    assert err.value.path == "alerts.sinks[1]" and "the same sink as alerts.sinks[0]" in str(err.value)
