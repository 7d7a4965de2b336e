"""The e-mail sink against a real SMTP server on 127.0.0.1 (aiosmtpd, tests/newsradar/delivery/
mailserver.py): STARTTLS with a self-signed certificate made by the test, AUTH LOGIN and PLAIN
checked by the server's authenticator, a message with a plain and an HTML part and the
notification id; a refused login is a counted failure with the reason, a 4xx is retried by
the worker; the password only by reference; config errors naming file, line and field."""

from __future__ import annotations

import subprocess
import time

import pytest

from newsradar.config import ConfigError, load_watchlist
from newsradar.config.watchlist import EmailSink
from newsradar.delivery.notification import build
from newsradar.delivery.sinks import Permanent, Retryable, build_sinks
from newsradar.delivery.smtp import Email, message_id
from tests.conftest import newsradar_cmd
from tests.newsradar.delivery.mailserver import MailServer
from tests.newsradar.delivery.receiver import make_alert, three_org_article
from tests.newsradar.delivery.receiver import send_each as send
from tests.newsradar.delivery.test_worker import FakeTime, job, run_worker, value

USER, PASSWORD = "newsradar", "p4ss-w0rd-for-tests"
PASSWORD_ENV = "NEWSRADAR_TEST_SMTP_PASSWORD"
FROM, TO = "alerts@newsradar.example", ("desk@newsroom.example", "editor@newsroom.example")


def email(server: MailServer, monkeypatch, password=PASSWORD, ca=True, **extra) -> Email:
    monkeypatch.setenv(PASSWORD_ENV, password)
    cfg = {"kind": "email", "host": "127.0.0.1", "port": server.port, "username": USER, "password_env": PASSWORD_ENV,
           "from": FROM, "to": list(TO), "allow_private_networks": True, "timeout": "10s", **extra}
    if ca:
        cfg["ca_file"] = str(server.cert)
    return Email(EmailSink.model_validate(cfg))


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_a_notification_arrives_over_starttls_with_a_plain_and_an_html_part(tmp_path, monkeypatch, mechanism):
    story = build(three_org_article())
    update = build([make_alert(1, org="memorial-hrc", why="Memorial <HRC> joins the story.")], story)
    other = {"LOGIN": "PLAIN", "PLAIN": "LOGIN"}[mechanism]
    # the server refuses AUTH and MAIL before STARTTLS, so a message at all means TLS came first
    with MailServer(tmp_path, users={USER: PASSWORD}, exclude=(other, "CRAM-MD5")) as server:
        assert send(email(server, monkeypatch), [story, update]) is None
    assert server.logins == [(mechanism, USER, True), (mechanism, USER, True)]
    first, second = server.messages
    assert first.mail_from == FROM and first.rcpt_tos == list(TO)
    msg = first.message
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["X-Newsradar-Notification-Id"] == story.notification_id
    assert msg["Message-ID"] == message_id(story.notification_id, "newsradar.example")
    assert msg["From"] == FROM and msg["To"] == ", ".join(TO)
    assert msg["Subject"] == "[newsradar] [CRITICAL] Title 1"
    plain = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert all(w in plain for w in story.why) and "Topics: protest" in plain and story.notification_id in plain
    assert '<a href="https://example.org/1">' in html and "<li>" in html
    # an update threads on update 1, and says only what it adds; the story's text escaped in HTML
    reply = second.message
    assert reply["In-Reply-To"] == reply["References"] == msg["Message-ID"]
    assert reply["Subject"] == "[newsradar] [CRITICAL] Update 2: Title 1"
    assert "Memorial &lt;HRC&gt; joins the story." in reply.get_body(("html",)).get_content()
    assert story.why[0] not in reply.get_body(("plain",)).get_content()


def test_implicit_tls_without_auth(tmp_path, monkeypatch):
    with MailServer(tmp_path, users=None, tls="implicit") as server:
        cfg = EmailSink.model_validate({"kind": "email", "host": "127.0.0.1", "port": server.port, "tls": "implicit",
                                        "ca_file": str(server.cert), "from": FROM, "to": [TO[0]],
                                        "allow_private_networks": True, "subject_prefix": ""})
        assert send(Email(cfg), [build([make_alert(2)])]) is None
    (got,) = server.messages
    assert got.message["Subject"] == "[WARNING] Title 2" and got.rcpt_tos == [TO[0]]


def test_a_refused_login_is_a_counted_failure_with_the_reason(tmp_path, monkeypatch):
    fake = FakeTime(time.time())
    with MailServer(tmp_path, users={USER: PASSWORD}) as server:
        sink = email(server, monkeypatch, password="wrong-password")
        j = job(1, fake.now)
        ledger, _progress, letters, registry = run_worker(sink, [j], fake, tmp_path)
    # smtplib tries each mechanism the server offers (PLAIN, then LOGIN): each one refused
    assert server.messages == [] and server.logins and not any(ok for _m, _u, ok in server.logins)
    (letter,) = letters.sent
    assert letter.step == "alerts.email" and letter.error.startswith(f"SMTP login refused for {USER}: 535")
    assert "wrong-password" not in letter.error and fake.sleeps == [], "a refused login is not retried"
    assert value(registry, "newsradar_alert_sink_deliveries_total", sink="email", outcome="failed") == 1
    assert value(registry, "newsradar_alert_notifications_total", sink="email", outcome="failed") == 1


def test_a_temporary_refusal_is_retried_by_the_worker_then_delivered(tmp_path, monkeypatch):
    fake = FakeTime(time.time())
    with MailServer(tmp_path, users={USER: PASSWORD}, answers=("451 4.3.0 try again later",)) as server:
        j = job(1, fake.now)
        _ledger, progress, letters, registry = run_worker(email(server, monkeypatch), [j], fake, tmp_path)
    assert letters.sent == [] and len(server.messages) == 1 and fake.sleeps == [0.5]
    assert server.messages[0].message["X-Newsradar-Notification-Id"] == build([j.alert]).notification_id
    assert value(registry, "newsradar_alert_sink_deliveries_total", sink="email", outcome="retried") == 1
    assert value(registry, "newsradar_alert_sink_deliveries_total", sink="email", outcome="ok") == 1
    assert progress.committable() == {0: 2}


def test_tls_is_never_given_up_silently(tmp_path, monkeypatch):
    note = build([make_alert(3)])
    # a server that does not offer STARTTLS: nothing is sent in clear, and it will not change
    with MailServer(tmp_path, users=None, tls="none") as server:
        error = send(email(server, monkeypatch, username=None, password_env=None), [note])
    assert isinstance(error, Permanent) and "does not offer STARTTLS" in str(error) and server.messages == []
    # a certificate the sink does not trust (no ca_file: the system's CAs): retried, named
    with MailServer(tmp_path, users={USER: PASSWORD}) as server:
        error = send(email(server, monkeypatch, ca=False), [note])
    assert isinstance(error, Retryable) and "certificate" in str(error) and server.messages == []
    assert server.logins == [], "the password must not be sent over a connection that failed its TLS check"


def test_an_internal_address_is_refused_unless_allowed(tmp_path, monkeypatch):
    with MailServer(tmp_path, users={USER: PASSWORD}) as server:
        error = send(email(server, monkeypatch, allow_private_networks=False), [build([make_alert(4)])])
    assert isinstance(error, Permanent) and "refusing internal address" in str(error) and server.messages == []


# ---------------------------------------------------------------------------
# config: the password by reference, errors naming file, line and field


def watchlist(tmp_path, sink: str):
    path = tmp_path / "watchlist.yaml"
    path.write_text(f"alerts:\n  sinks:\n    - {{kind: file, path: a.jsonl}}\n    - {sink}\n")
    return path


BASE = "kind: email, host: smtp.example.org, from: alerts@example.org, to: [desk@example.org]"


@pytest.mark.parametrize("extra, field, words", [
    ("username: u, password_env: NEWSRADAR_NO_SUCH_PASSWORD", "alerts.sinks[1].password_env",
     "NEWSRADAR_NO_SUCH_PASSWORD"),
    ("username: u, password_file: missing.secret", "alerts.sinks[1].password_file", "cannot read"),
    ("ca_file: missing-ca.pem", "alerts.sinks[1].ca_file", "CA bundle"),
])
def test_a_secret_or_ca_that_cannot_be_read_names_file_line_and_field(tmp_path, monkeypatch, extra, field, words):
    monkeypatch.setenv("NEWSRADAR_HOME", str(tmp_path))
    monkeypatch.delenv("NEWSRADAR_NO_SUCH_PASSWORD", raising=False)
    path = watchlist(tmp_path, f"{{{BASE}, {extra}}}")
    with pytest.raises(ConfigError) as err:
        build_sinks(load_watchlist(path), str(path))
    assert (err.value.file, err.value.line, err.value.path) == (str(path), 4, field)
    assert words in str(err.value)


def test_a_password_from_a_file_logs_in(tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSRADAR_HOME", str(tmp_path))
    (tmp_path / "smtp.secret").write_text(PASSWORD + "\n")
    with MailServer(tmp_path, users={USER: PASSWORD}) as server:
        cfg = EmailSink.model_validate({"kind": "email", "host": "127.0.0.1", "port": server.port, "username": USER,
                                        "password_file": "smtp.secret", "ca_file": str(server.cert), "from": FROM,
                                        "to": [TO[0]], "allow_private_networks": True})
        sink = Email(cfg)
        assert PASSWORD not in sink.key and send(sink, [build([make_alert(5)])]) is None
    assert [ok for _m, _u, ok in server.logins] == [True] and len(server.messages) == 1


@pytest.mark.parametrize("extra, field, words", [
    ("password: hunter2", "alerts.sinks[1].password", "unknown key"),
    ("username: u", "alerts.sinks[1].password_file", "expected password_env"),
    ("password_env: P", "alerts.sinks[1].password_file", "without a username"),
    ("username: u, password_env: P, tls: none", "alerts.sinks[1].password_file", "clear text"),
    ("username: u, password_env: P, password_file: p", "alerts.sinks[1].password_file", "not both"),
    ("tls: ssl", "alerts.sinks[1].tls", "starttls"),
    ("port: 0", "alerts.sinks[1].port", "expected a number >= 1"),
])
def test_deliver_exits_2_naming_file_line_and_field(tmp_path, extra, field, words):
    path = watchlist(tmp_path, f"{{{BASE}, {extra}}}")
    proc = subprocess.run(newsradar_cmd("deliver", "--watchlist", str(path), "--bootstrap-servers", "127.0.0.1:9"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert f"{path}:4: {field}: " in proc.stderr and words in proc.stderr, proc.stderr
    assert "hunter2" not in proc.stderr


@pytest.mark.parametrize("sink, field", [
    ("{kind: email, host: smtp.example.org, from: 'Alerts <a@example.org>', to: [d@example.org]}", "from"),
    ("{kind: email, host: smtp.example.org, from: a@example.org, to: []}", "to"),
    ("{kind: email, host: smtp.example.org, from: a@example.org}", "to"),
    ("{kind: email, host: 'smtp example', from: a@example.org, to: [d@example.org]}", "host"),
])
def test_a_bad_address_names_its_field(tmp_path, sink, field):
    path = watchlist(tmp_path, sink)
    with pytest.raises(ConfigError) as err:
        load_watchlist(path)
    assert (err.value.line, err.value.path) == (4, f"alerts.sinks[1].{field}"), str(err.value)
