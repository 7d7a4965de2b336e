"""End to end: ``newsradar connect`` runs web, bot and export sources into a real Kafka broker.

The web source reads fixture pages from a real HTTP server on 127.0.0.1, the bot source a
fake Bot API driven by a JSON sequence file; records are read back from ``news.raw``.
"""

import os
import signal
import sqlite3
import subprocess
from collections import Counter

import pytest
import yaml

from newsradar.kafka import ensure_topics, read_topic
from newsradar.records import TOPIC_RAW, decode_raw
from tests.conftest import FIXTURES, newsradar_cmd, wait_for
from tests.connectors.telegram.conftest import CHANNEL

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

TOKEN = "123456:TEST-token_abc"
WEB_IDS = list(range(101, 115)) + list(range(116, 128)) + [129, 130, 131, 132, 134]
EXPORT_IDS = [2, 3, 4, 5, 7, 9, 10, 11, 12]


@pytest.fixture()
def raw(kafka):
    ensure_topics(kafka.bootstrap, topics=[TOPIC_RAW])

    def read(*source_ids):
        """(article_id, edited_at) -> record, and the count of each pair, for these sources."""
        records = [decode_raw(r.value) for r in read_topic(kafka.bootstrap, TOPIC_RAW)]
        mine = [r for r in records if r.source_id in source_ids]
        return mine, Counter((r.article_id, r.edited_at) for r in mine)

    return read


def write_sources(path, sources):
    path.write_text(yaml.safe_dump({
        "allow_private_networks": True,
        # Every source is due again at once, so each --once run polls all of them.
        "defaults": {"interval": "0s", "min_interval": "0s", "timeout": "10s"},
        "metrics": {"port": 0},
        "telegram": {"web_request_gap": "0s"},
        "sources": sources,
    }, allow_unicode=True))
    return path


def connect(kafka, sources_file, state_dir, *extra, env=None, **kw):
    return subprocess.run(
        newsradar_cmd("connect", "--sources", str(sources_file), "--state-dir", str(state_dir),
                      "--bootstrap-servers", kafka.bootstrap, *extra),
        capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})}, **kw,
    )


def test_every_mode_delivers_each_message_once_and_edits_as_later_versions(
    kafka, raw, channel_site, bot_api_factory, topic_prefix, tmp_path
):
    api = bot_api_factory("basic.json", TOKEN)
    web_id, bot_id, export_id = (f"{kind}-{topic_prefix}" for kind in ("web", "bot", "export"))
    sources = write_sources(tmp_path / "sources.yaml", [
        {"id": web_id, "kind": "telegram", "mode": "web", "channel": CHANNEL, "base_url": channel_site.base_url},
        {"id": bot_id, "kind": "telegram", "mode": "bot", "api_base": api.base_url, "long_poll": "1s",
         "token_env": "TEST_BOT_TOKEN", "channels": ["mothers_watch", "c9876543210"]},
        {"id": export_id, "kind": "telegram", "mode": "export", "path": str(FIXTURES / "telegram/export/result.json"),
         "channel": "mothers_watch"},
    ])
    env = {"TEST_BOT_TOKEN": TOKEN}
    state = tmp_path / "state"

    first = connect(kafka, sources, state, "--once", env=env)
    assert first.returncode == 0, first.stderr
    records, counts = raw(web_id, bot_id, export_id)
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]
    web = {r.message_id: r for r in records if r.source_id == web_id}
    assert sorted(web) == WEB_IDS
    assert web[121].article_id == f"tg:{CHANNEL}:121" and web[121].published_at == "2026-03-02T06:15:00Z"
    assert web[121].text.startswith("Военкомат Центрального района начал раздавать повестки прямо на проходных")
    assert web[123].published_at == "2026-03-02T05:30:00Z"
    bot = sorted(r.article_id for r in records if r.source_id == bot_id)
    assert bot == ["tg:mothers_watch:41", "tg:mothers_watch:42"]
    export = {r.message_id: r for r in records if r.source_id == export_id}
    assert sorted(export) == EXPORT_IDS
    # The same post has the same id whichever mode read it.
    assert export[2].article_id == "tg:mothers_watch:2" and export[2].published_at == "2026-03-02T08:00:00Z"

    channel_site.pages[None] = "latest-v2.html"
    second = connect(kafka, sources, state, "--once", env=env)
    assert second.returncode == 0, second.stderr
    records, counts = raw(web_id, bot_id, export_id)
    assert max(counts.values()) == 1
    edits = sorted((r.article_id, r.text) for r in records if r.edited_at)
    assert edits == [
        ("tg:mothers_watch:4", "Сбор перенесён на 14:00 (исправлено)."),  # edited before the export was made
        ("tg:mothers_watch:41", "Совет матерей и жён требует встречи с губернатором.\nСбор перенесён на 14:00."),
        (f"tg:{CHANNEL}:122", "Пикет у здания администрации, около шестидесяти человек (уточнено)."),
    ]
    assert sorted(r.message_id for r in records if r.source_id == web_id) == sorted(WEB_IDS + [122, 137, 138])
    assert sorted(r.message_id for r in records if r.source_id == bot_id) == [41, 41, 42, 43, 45]
    assert len([r for r in records if r.source_id == export_id]) == len(EXPORT_IDS)
    # The bot confirmed to Telegram exactly what had been delivered, one call later.
    assert [c["offset"] for c in api.calls] == [None, 500005]


def test_a_crash_between_kafka_ack_and_offset_confirmation_loses_nothing(
    kafka, raw, bot_api_factory, topic_prefix, tmp_path
):
    api = bot_api_factory("basic.json", TOKEN)
    bot_id = f"bot-{topic_prefix}"
    sources = write_sources(tmp_path / "sources.yaml", [
        {"id": bot_id, "kind": "telegram", "mode": "bot", "api_base": api.base_url, "long_poll": "1s",
         "token_env": "TEST_BOT_TOKEN", "channels": ["mothers_watch"]},
    ])
    state = tmp_path / "state"
    env = {**os.environ, "TEST_BOT_TOKEN": TOKEN}
    db_path = state / "connectors.sqlite3"
    holder = {}

    def hold_state_store():
        # A disk that stalls: the loop's cursor commit after the Kafka acks cannot happen.
        db = sqlite3.connect(db_path, timeout=0, check_same_thread=False, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        holder["db"] = db

    api.before_first_answer = hold_state_store
    proc = subprocess.Popen(
        newsradar_cmd("connect", "--sources", str(sources), "--state-dir", str(state), "--bootstrap-servers",
                      kafka.bootstrap),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
    )
    try:
        wait_for(lambda: len(raw(bot_id)[0]) >= 2, 60, "the first two posts acknowledged on news.raw")
        proc.send_signal(signal.SIGKILL)
        # Killed while its cursor commit waits on the stalled store. On a very slow machine the
        # store's 5 s busy timeout may end the process first (exit 1): a crash at the same point.
        assert proc.wait(30) in (-signal.SIGKILL, 1), proc.stdout.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        if "db" in holder:
            holder["db"].execute("ROLLBACK")
            holder["db"].close()
    with sqlite3.connect(db_path) as db:
        row = db.execute("SELECT cursor FROM sources WHERE source_id = ?", (bot_id,)).fetchone()
    assert row is None or row[0] is None, f"the cursor was saved before the kill: {row}"
    assert api.confirmed_below == 0

    # Restart: the offset was never confirmed, so Telegram sends the same updates again.
    again = connect(kafka, sources, state, "--once", env=env)
    assert again.returncode == 0, again.stderr
    assert [c["offset"] for c in api.calls] == [None, None]
    records, counts = raw(bot_id)
    assert counts[("tg:mothers_watch:41", None)] == 2 and counts[("tg:mothers_watch:42", None)] == 2
    assert {a for a, _ in counts} == {"tg:mothers_watch:41", "tg:mothers_watch:42", "tg:mothers_watch:43",
                                      "tg:mothers_watch:45"}
    # And the next run confirms what the restarted run saved.
    third = connect(kafka, sources, state, "--once", env=env)
    assert third.returncode == 0, third.stderr
    assert api.calls[-1]["offset"] == 500009 and api.confirmed_below == 500009
