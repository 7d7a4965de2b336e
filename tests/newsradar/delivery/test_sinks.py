"""Alert sinks against real receivers on 127.0.0.1: a signed webhook, the real Alertmanager's
v2 API, a JSONL file; what each send raises (retryable or not), the internal-address policy,
and the launch check of the watchlist's sinks."""

from __future__ import annotations

import asyncio

import pytest

from newsradar.config import ConfigError
from newsradar.config.watchlist import AlertmanagerSink, FileSink, Watchlist, WebhookSink
from newsradar.delivery.notification import Notification, build
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
from tests.conftest import free_port, wait_for
from tests.newsradar.delivery.conftest import list_alerts
from tests.newsradar.delivery.receiver import SECRET, SECRET_ENV, Receiver, make_alert


@pytest.fixture()
def secret(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return SECRET_ENV


def webhook(url, secret_env, allow=True):
    return Webhook(WebhookSink(kind="webhook", url=url, secret_env=secret_env, allow_private_networks=allow,
                               timeout=5))


def notes(alerts):
    """One notification per alert (each make_alert is a story of its own)."""
    return [build([a]) for a in alerts]


def send(sink, alerts):
    """One send of the alerts' notifications on a loop of its own, the sink closed after it:
    returns None or the exception."""

    async def go():
        try:
            await sink.send(notes(alerts))
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


def test_webhook_sends_the_notification_signed(secret):
    alert = make_alert(1)
    (note,) = notes([alert])
    with Receiver() as rx:
        assert send(webhook(rx.url, secret), [alert]) is None
    assert rx.attempts == [(note.notification_id, True)]
    body = rx.notes[note.notification_id]
    assert body["why"] == [alert.why] and body["update"] == 1 and body["follows"] is None
    assert Notification.from_dict(body) == note


def test_a_webhook_update_is_a_short_follow_up_naming_the_first(secret):
    first = make_alert(1)
    later = make_alert(1, kind="topic", topic="protest", severity="critical", why="A protest story.")
    one = build([first])
    two = build([later], one)

    async def go(sink):
        try:
            await sink.send([one])
            await sink.send([two])
        finally:
            await sink.close()

    with Receiver() as rx:
        asyncio.run(go(webhook(rx.url, secret)))
    assert rx.ok == [one.notification_id, two.notification_id]
    follow = rx.notes[two.notification_id]
    assert follow["follows"] == one.notification_id and follow["update"] == 2
    assert follow["why"] == ["A protest story."] and follow["topics"] == ["protest"]
    assert follow["organizations"] == ["cmw"] and follow["severity"] == "critical"
    assert "snippet" not in follow  # short: what the update adds


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
    n1, n2 = notes([make_alert(1), make_alert(2)])

    async def go():
        await sink.send([n1, n2])
        await sink.send([n1])

    asyncio.run(go())
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [Notification.decode(line) for line in lines] == [n1, n2]


def test_file_sink_with_the_ledger_writes_a_line_once_across_restarts(tmp_path):
    """A kill after the line was written and before the ledger said so: the notification is
    sent again by the next process, which finds its line at the recorded offset."""
    from newsradar.delivery.ledger import Ledger

    path = tmp_path / "alerts.jsonl"
    cfg = FileSink(kind="file", path=str(path))
    n1, n2, n3 = notes([make_alert(1), make_alert(2), make_alert(3)])
    ledger = Ledger(tmp_path / "ledger.sqlite")
    asyncio.run(JsonlFile(cfg, journal=ledger).send([n1, n2]))
    # a new process (nothing remembered in memory), the same ledger: n2 again, and n3
    asyncio.run(JsonlFile(cfg, journal=ledger).send([n2, n3]))
    assert [Notification.decode(line) for line in path.read_text().splitlines()] == [n1, n2, n3]
    # without the journal the restart writes n2 twice: the journal is what prevents it
    asyncio.run(JsonlFile(cfg).send([n3]))
    assert len(path.read_text().splitlines()) == 4
    # a line cut by a kill mid-write is written again, whole
    with open(path, "ab") as fh:
        fh.write(notes([make_alert(4)])[0].encode()[:20])
    n4 = notes([make_alert(4)])[0]
    ledger.intend_write(str(path), [(n4.notification_id, path.stat().st_size - 20)])
    asyncio.run(JsonlFile(cfg, journal=ledger).send([n4]))
    lines = path.read_bytes().splitlines()
    assert lines[-2] == n4.encode()[:20] and Notification.decode(lines[-1]) == n4


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


@pytest.mark.slow
def test_alertmanager_holds_one_alert_per_story_and_an_update_replaces_it(alertmanager):
    a1, a2 = make_alert(1), make_alert(2, kind="first_in_window")
    n1, n2 = notes([a1, a2])

    def sink():
        return Alertmanager(AlertmanagerSink(kind="alertmanager", url=alertmanager, allow_private_networks=True))

    assert send(sink(), [a1, a2]) is None
    assert send(sink(), [a1]) is None  # a repeat of the same notification
    got = wait_for(lambda: len(list_alerts(alertmanager)) == 2 and list_alerts(alertmanager), 10,
                   "two alerts in Alertmanager")
    by_id = {a["labels"]["notification"]: a for a in got}
    assert set(by_id) == {n1.notification_id, n2.notification_id}
    one = by_id[n2.notification_id]
    assert one["labels"] == {"alertname": "NewsradarNews", "notification": n2.notification_id}
    assert one["annotations"]["kinds"] == "first_in_window" and one["annotations"]["organizations"] == "cmw"
    assert one["annotations"]["summary"] == a2.why and one["generatorURL"] == a2.url
    # story 1's update: the same labels, so the same Alertmanager alert, with the story so far
    later = make_alert(1, kind="topic", topic="protest", severity="critical", why="A protest story.")
    update = build([later], n1)

    async def go(s):
        try:
            await s.send([update])
        finally:
            await s.close()

    asyncio.run(go(sink()))

    def updated():
        alerts = list_alerts(alertmanager)
        mine = [a for a in alerts if a["labels"]["notification"] == n1.notification_id]
        return len(alerts) == 2 and len(mine) == 1 and mine[0]["annotations"]["update"] == "2" and mine[0]

    got = wait_for(updated, 10, "story 1's alert in Alertmanager updated in place")
    assert got["annotations"]["severity"] == "critical" and got["annotations"]["topics"] == "protest"
    assert got["annotations"]["summary"] == f"{a1.why} A protest story."


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
    assert err.value.path == "alerts.sinks[1].secret_env" and "NEWSRADAR_NO_SUCH_SECRET" in str(err.value)
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
