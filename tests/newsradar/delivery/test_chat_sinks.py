"""The Slack-compatible incoming-webhook and Telegram Bot API sinks against stand-ins on
127.0.0.1 that follow the documented contracts (tests/newsradar/delivery/chatservers.py),
Telegram's later updates editing the story's message (editMessageText) or falling back to a
follow-up;
secrets only by reference (an environment variable or a file), never in an error or a key;
config errors naming file, line and field (exit 2 from `newsradar deliver`); routing per sink."""

from __future__ import annotations

import subprocess
import time

import pytest

from newsradar.config import ConfigError, load_watchlist
from newsradar.config.watchlist import Route, SlackSink, TelegramSink, WebhookSink
from newsradar.delivery.ledger import Ledger
from newsradar.delivery.notification import build
from newsradar.delivery.sinks import (
    Permanent,
    Retryable,
    Slack,
    Webhook,
    build_sinks,
    passes,
    routed,
)
from newsradar.delivery.telegram import Telegram, telegram_html
from tests.conftest import free_port, newsradar_cmd
from tests.newsradar.delivery.chatservers import SlackHook, TelegramApi, telegram_text
from tests.newsradar.delivery.receiver import SECRET, Receiver, make_alert, three_org_article
from tests.newsradar.delivery.receiver import send_each as send
from tests.newsradar.delivery.test_worker import FakeTime, job, run_worker

TOKEN = "123456:AAE-secret-bot-token_xyz"
CHAT = "-1001234567890"


def telegram(api_url, monkeypatch, token=TOKEN, chat=CHAT, **extra):
    monkeypatch.setenv("NEWSRADAR_TEST_TG_TOKEN", token)
    return Telegram(TelegramSink(kind="telegram", chat_id=chat, token_env="NEWSRADAR_TEST_TG_TOKEN", api_url=api_url,
                                 allow_private_networks=True, **extra))


# ---------------------------------------------------------------------------
# Telegram


def test_telegram_sends_one_html_message_per_notification(monkeypatch):
    story = build(three_org_article())
    with TelegramApi(TOKEN) as api:
        assert send(telegram(api.url, monkeypatch), [story]) is None
    (msg,) = api.messages
    assert msg["chat_id"] == CHAT and msg["parse_mode"] == "HTML" and msg["disable_web_page_preview"] is True
    shown = msg["shown"]
    assert shown.startswith("[CRITICAL] Title 1") and "Topics: protest" in shown
    assert all(w in shown for w in story.why) and story.notification_id in shown
    assert '<a href="https://example.org/1">' in msg["text"]


def test_telegram_escapes_what_the_story_says():
    a = make_alert(7, why="A <b>bold</b> & <script>claim</script>.")
    text = telegram_html(build([a]), full=True)
    shown, error = telegram_text(text)
    assert error is None, error
    assert "A <b>bold</b> & <script>claim</script>." in shown  # shown as written, not as markup


def test_telegram_text_fits_the_message_cap():
    alerts = [make_alert(9, org=f"org-{i}", why="W" * 900) for i in range(10)]
    text = telegram_html(build(alerts), full=True)
    shown, error = telegram_text(text)
    assert error is None and len(text) <= 4096 and "Organizations: org-0" in shown


def test_telegram_429_retry_after_is_honoured(monkeypatch, tmp_path):
    fake = FakeTime(time.time())
    with TelegramApi(TOKEN, too_many=2, retry_after=7) as api:
        sink = telegram(api.url, monkeypatch)
        j = job(1, fake.now)
        ledger, _p, letters, _r = run_worker(sink, [j], fake, tmp_path)
    assert [status for _path, status in api.calls] == [429, 429, 200]
    assert fake.sleeps[:2] == [7.0, 7.0], "the Bot API's retry_after must be waited, not the shorter backoff"
    assert letters.sent == [] and len(api.messages) == 1


def test_telegram_errors_and_key_never_show_the_token(monkeypatch):
    with TelegramApi("999:other-token") as api:
        error = send(telegram(api.url, monkeypatch), [build([make_alert(1)])])
    assert isinstance(error, Permanent) and "401" in str(error) and TOKEN not in str(error)
    with TelegramApi(TOKEN, chats=("-42",)) as api:
        error = send(telegram(api.url, monkeypatch), [build([make_alert(1)])])
    assert isinstance(error, Permanent) and "chat not found" in str(error)
    sink = telegram(f"http://127.0.0.1:{free_port()}", monkeypatch)
    error = send(sink, [build([make_alert(1)])])
    assert isinstance(error, Retryable) and TOKEN not in str(error) and TOKEN not in sink.key
    assert CHAT in sink.key


def test_without_the_ledger_a_telegram_update_is_a_short_follow_up(monkeypatch):
    first = build([make_alert(1)])
    update = build([make_alert(1, org="memorial", why="Memorial joins the story.")], first)
    with TelegramApi(TOKEN) as api:
        assert send(telegram(api.url, monkeypatch), [first, update]) is None
    follow = api.messages[1]["shown"]
    assert follow.startswith("[WARNING] Update 2: Title 1") and "Memorial joins the story." in follow
    assert first.why[0] not in follow and "Organizations: memorial\n" in follow
    assert api.edits == []


def story_updates():
    first = build([make_alert(1)])
    second = build([make_alert(1, org="memorial", why="Memorial joins the story.")], first)
    third = build([make_alert(1, org="ovd-info", why="OVD-Info joins the story.")], second)
    return first, second, third


def test_a_later_update_edits_the_storys_message(monkeypatch, tmp_path):
    first, second, third = story_updates()
    ledger = Ledger(tmp_path / "ledger.sqlite")
    with TelegramApi(TOKEN) as api:
        sink = telegram(api.url, monkeypatch)
        sink.journal = ledger
        assert send(sink, [first, second]) is None
        assert ledger.story_message(sink.key, "story-1") == 1
        # sent again (a kill before the ledger had it): the same edit, "not modified", a success
        assert send(sink, [second]) is None
        assert send(sink, [third]) is None
    assert len(api.messages) == 1, "one message per story in the chat"
    assert [e["message_id"] for e in api.edits] == [1, 1] and all(e["chat_id"] == CHAT for e in api.edits)
    shown = api.chat[1]["text"]
    assert shown.startswith("[WARNING] Update 3: Title 1") and "Organizations: cmw, memorial, ovd-info" in shown
    assert all(w in shown for w in third.why) and third.snippet in shown, "the edit shows the whole story"
    assert [status for path, status in api.calls if path.endswith("editMessageText")] == [200, 400, 200]
    ledger.close()


@pytest.mark.parametrize("gone", ["deleted", "frozen"])
def test_an_edit_refused_falls_back_to_a_follow_up_which_the_next_update_edits(monkeypatch, tmp_path, gone):
    first, second, third = story_updates()
    ledger = Ledger(tmp_path / "ledger.sqlite")
    with TelegramApi(TOKEN) as api:
        sink = telegram(api.url, monkeypatch)
        sink.journal = ledger
        assert send(sink, [first]) is None
        if gone == "deleted":
            api.delete(1)  # "message to edit not found"
        else:
            api.frozen.add(1)  # "message can't be edited"
        assert send(sink, [second]) is None
        assert len(api.messages) == 2 and api.edits == []
        assert api.messages[1]["shown"].startswith("[WARNING] Update 2: Title 1")
        assert ledger.story_message(sink.key, "story-1") == 2
        assert send(sink, [third]) is None
    assert [e["message_id"] for e in api.edits] == [2] and len(api.messages) == 2
    assert "OVD-Info joins the story." in api.chat[2]["text"]
    ledger.close()


def test_an_edit_answered_429_is_retried_after_retry_after(monkeypatch, tmp_path):
    first, second, _third = story_updates()
    ledger = Ledger(tmp_path / "ledger.sqlite")
    with TelegramApi(TOKEN, retry_after=7) as api:
        sink = telegram(api.url, monkeypatch)
        sink.journal = ledger
        assert send(sink, [first]) is None
        api.too_many = 1
        error = send(sink, [second])
        assert isinstance(error, Retryable) and error.retry_after == 7.0 and TOKEN not in str(error)
        assert send(sink, [second]) is None
    assert len(api.messages) == 1 and [e["message_id"] for e in api.edits] == [1]
    ledger.close()


# ---------------------------------------------------------------------------
# Slack-compatible incoming webhooks


def slack(url, monkeypatch, **extra):
    monkeypatch.setenv("NEWSRADAR_TEST_SLACK_URL", url)
    return Slack(SlackSink(kind="slack", url_env="NEWSRADAR_TEST_SLACK_URL", allow_private_networks=True, **extra))


def test_slack_posts_mrkdwn_text_escaped(monkeypatch):
    a = make_alert(3, why="A <b>claim</b> & more.")
    with SlackHook() as hook:
        assert send(slack(hook.url, monkeypatch), [build([a])]) is None
    (msg,) = hook.messages
    text = msg["text"]
    assert text.startswith("*[WARNING] Title 3*") and "• A &lt;b&gt;claim&lt;/b&gt; &amp; more." in text
    assert "<https://example.org/3|Open the article>" in text and msg["unfurl_links"] is False


def test_slack_429_is_retryable_with_retry_after_and_the_url_is_never_shown(monkeypatch):
    with SlackHook(statuses=[429], retry_after=4) as hook:
        sink = slack(hook.url, monkeypatch)
        error = send(sink, [build([make_alert(1)])])
    assert isinstance(error, Retryable) and error.retry_after == 4.0
    assert "XXXXSECRETXXXX" not in sink.key and sink.key.startswith("slack ")
    sink = slack(f"http://127.0.0.1:{free_port()}/services/T000/B000/XXXXSECRETXXXX", monkeypatch)
    error = send(sink, [build([make_alert(1)])])
    assert isinstance(error, Retryable) and "XXXXSECRETXXXX" not in str(error)
    with SlackHook() as hook:
        error = send(slack(hook.url.replace("SECRET", "WRONG"), monkeypatch), [build([make_alert(1)])])
    assert isinstance(error, Permanent) and str(error) == "HTTP 404"


# ---------------------------------------------------------------------------
# secrets by reference, config errors with file, line and field


def test_a_webhook_secret_from_a_file_signs_the_request(tmp_path):
    secret_file = tmp_path / "hook.secret"
    secret_file.write_text(SECRET + "\n")
    with Receiver() as rx:
        sink = Webhook(WebhookSink(kind="webhook", url=rx.url, secret_file=str(secret_file),
                                   allow_private_networks=True))
        assert send(sink, [build([make_alert(1)])]) is None
    assert [valid for _id, valid in rx.attempts] == [True]


def watchlist(tmp_path, text: str):
    path = tmp_path / "watchlist.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("sink, field, line, words", [
    ("{kind: webhook, url: 'https://h.example/x', secret_file: missing.secret}", "alerts.sinks[1].secret_file", 5,
     "cannot read"),
    ("{kind: telegram, chat_id: '-100', token_env: NEWSRADAR_NO_SUCH_TOKEN}", "alerts.sinks[1].token_env", 5,
     "NEWSRADAR_NO_SUCH_TOKEN"),
    ("{kind: slack, url_file: empty.secret}", "alerts.sinks[1].url_file", 5, "is empty"),
])
def test_a_secret_that_cannot_be_read_names_file_line_and_field(tmp_path, monkeypatch, sink, field, line, words):
    monkeypatch.setenv("NEWSRADAR_HOME", str(tmp_path))
    monkeypatch.delenv("NEWSRADAR_NO_SUCH_TOKEN", raising=False)
    (tmp_path / "empty.secret").write_text("\n")
    path = watchlist(tmp_path, f"alerts:\n  sinks:\n    - {{kind: file, path: a.jsonl}}\n\n    - {sink}\n")
    with pytest.raises(ConfigError) as err:
        build_sinks(load_watchlist(path), str(path))
    assert (err.value.file, err.value.line, err.value.path) == (str(path), line, field)
    assert words in str(err.value)


@pytest.mark.parametrize("sink, field, words", [
    ("{kind: pager, url: 'https://h.example'}", "alerts.sinks[0].kind", "pager"),
    ("{kind: webhook, url: 'ftp://h.example/x'}", "alerts.sinks[0].url", "http:// or https:// URL"),
    ("{kind: webhook, url: 'https://h.example/x', secret: s3cret}", "alerts.sinks[0].secret", "unknown key"),
    ("{kind: webhook, url: 'https://h.example/x', secret_env: A, secret_file: b}", "alerts.sinks[0].secret_file",
     "not both"),
    ("{kind: telegram, chat_id: '-100'}", "alerts.sinks[0].token_file", "expected token_env"),
    ("{kind: telegram, chat_id: 'my chat', token_env: T}", "alerts.sinks[0].chat_id", "chat id"),
    ("{kind: file, path: a.jsonl, route: {organizations: [nobody]}}", "alerts.sinks[0].route.organizations[0]",
     "unknown organization id 'nobody'"),
])
def test_deliver_exits_2_naming_file_line_and_field(tmp_path, sink, field, words):
    path = watchlist(tmp_path, f"alerts:\n  sinks:\n    - {sink}\n")
    proc = subprocess.run(newsradar_cmd("deliver", "--watchlist", str(path), "--bootstrap-servers", "127.0.0.1:9"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert f"{path}:3: {field}: " in proc.stderr and words in proc.stderr, proc.stderr
    assert "s3cret" not in proc.stderr


# ---------------------------------------------------------------------------
# routing


def test_a_route_passes_an_alert_on_every_condition():
    n = build(three_org_article())
    by = {(p.kind, p.org_id): p for p in n.alerts}
    crit = by[("topic", "ovd-info")]
    assert passes(Route(), crit) and passes(Route(min_severity="critical"), crit)
    assert not passes(Route(min_severity="critical"), by[("new_mention", "cmw")])
    assert passes(Route(kinds=("topic",), topics=("protest",)), crit)
    assert not passes(Route(kinds=("new_mention",)), crit)
    assert not passes(Route(organizations=("cmw",)), crit) and passes(Route(organizations=("ovd-info",)), crit)
    assert not passes(Route(topics=("elections",)), by[("new_mention", "cmw")])
    assert routed(Route(min_severity="critical"), n) and not routed(Route(topics=("elections",)), n)


def test_a_routed_sink_gets_only_its_notifications_and_finishes_the_rest(tmp_path):
    from tests.newsradar.delivery.test_worker import ScriptedSink

    fake = FakeTime(time.time())
    sink = ScriptedSink()
    sink.route = Route(min_severity="critical")
    jobs = [job(1, fake.now), job(2, fake.now)]
    jobs[1] = type(jobs[1])(make_alert(2, severity="critical"), jobs[1].raw, 0, 2, fake.now, jobs[1].source)
    _ledger, progress, _letters, _r = run_worker(sink, jobs, fake, tmp_path)
    assert sink.sent == [jobs[1].alert.alert_id]
    assert progress.pending() == 0 and progress.committable() == {0: 3}
