"""Telegram Desktop export: text flattening, mapping, the streaming poller, bounded memory."""

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from connectors.telegram.export import ExportPoller, flatten_text
from tests.conftest import FIXTURES, REPO

EXPORT = FIXTURES / "telegram" / "export" / "result.json"
NOW = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def source(path=EXPORT, channel=None, timezone="UTC", batch_lang=None):
    return SimpleNamespace(id="tg-export", path=str(path), channel=channel, timezone=timezone, lang=batch_lang)


def drain(poller, cursor=None, limit=1000):
    """Poll until the export is done, like the loop does; returns (records, skipped, cursors)."""
    records, skipped, cursors = [], 0, []
    for _ in range(limit):
        result = asyncio.run(poller.poll(cursor, NOW))
        assert result.error is None, result.error
        records += result.records
        skipped += result.skipped
        cursor = result.cursor or cursor
        cursors.append(cursor)
        if cursor and cursor["done"]:
            return records, skipped, cursors
    raise AssertionError("export never finished")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("plain", "plain"),
        (["a ", {"type": "bold", "text": "b"}, {"type": "text_link", "text": "c", "href": "https://x"}], "a bc"),
        ([], ""),
        ([42, {"type": "bold"}, None, "ok"], "ok"),
        (None, ""),
        ({"text": "not a list"}, ""),
    ],
)
def test_flatten_text(value, expected):
    assert flatten_text(value) == expected


def test_fixture_export_maps_every_message():
    records, skipped, _ = drain(ExportPoller(source(), batch=4))
    by_id = {r.message_id: r for r in records}
    assert sorted(by_id) == [2, 3, 4, 5, 7, 9, 10, 11, 12]
    # service messages 1 and 8, media-only 6
    assert skipped == 3
    assert by_id[2].article_id == "tg:c1234567890:2"
    assert by_id[2].published_at == "2026-03-02T08:00:00Z"
    assert by_id[3].text == "Смотрите https://example.org/a и репортаж. Важно: #мобилизация"
    assert by_id[4].edited_at == "2026-03-02T08:20:00Z" and by_id[4].author == "Ольга"
    assert by_id[5].forwarded_from == "Комитет солдатских матерей"
    assert by_id[7].text == "Получили ли ваши близкие повестку?\nДа\nНет"
    assert by_id[10].text == "@ksm_news сообщает: приказ подписан\nподробности позже"
    assert by_id[11].text == "⚠️ عاجل: احتجاجات أمام مكتب التجنيد 📢\n🔥 מחאה מול לשכת הגיוס"
    assert by_id[12].text == "Только строки и сущности с текстом попадают в запись."


def test_naive_dates_use_the_configured_timezone_and_are_flagged():
    records, _, _ = drain(ExportPoller(source(channel="mothers_watch", timezone="Europe/Moscow")))
    old = next(r for r in records if r.message_id == 9)
    assert old.article_id == "tg:mothers_watch:9"
    assert old.published_at == "2026-03-02T12:30:00Z"
    assert old.flags == ("date_local_assumed",)
    assert next(r for r in records if r.message_id == 2).flags is None


def test_restart_resumes_after_the_cursor_and_done_is_remembered():
    poller = ExportPoller(source(), batch=3)
    first = asyncio.run(poller.poll(None, NOW))
    assert first.cursor["last_id"] == 3 and not first.cursor["done"]
    # A new process (new poller) with the saved cursor reads on from message 4.
    rest, _, cursors = drain(ExportPoller(source(), batch=3), cursor=first.cursor)
    assert min(r.message_id for r in rest) == 4
    idle = asyncio.run(ExportPoller(source()).poll(cursors[-1], NOW))
    assert idle.records == [] and idle.cursor is None and idle.next_poll_in > 60


def test_an_unsaved_poll_is_read_again():
    poller = ExportPoller(source(), batch=3)
    first = asyncio.run(poller.poll(None, NOW))
    # The loop could not deliver: it polls again with the old (no) cursor.
    again = asyncio.run(poller.poll(None, NOW))
    assert [r.message_id for r in again.records] == [r.message_id for r in first.records]


def test_broken_and_missing_files_are_errors(tmp_path):
    truncated = tmp_path / "result.json"
    data = EXPORT.read_bytes()
    truncated.write_bytes(data[: data.index(b'"id": 5,')])
    poller = ExportPoller(source(truncated), batch=100)
    got = asyncio.run(poller.poll(None, NOW))
    # What was readable is delivered; the next poll reports the rest as a parse error.
    assert [r.message_id for r in got.records] == [2, 3, 4] and got.error is None
    stuck = asyncio.run(poller.poll(got.cursor, NOW))
    assert stuck.outcome == "parse_error" and stuck.records == []
    missing = asyncio.run(ExportPoller(source(tmp_path / "nope.json")).poll(None, NOW))
    assert missing.error and "nope.json" in missing.error
    account = tmp_path / "account.json"
    account.write_text(json.dumps({"about": "x", "chats": {"list": [{"id": 1, "messages": []}]}}))
    whole = asyncio.run(ExportPoller(source(account)).poll(None, NOW))
    assert whole.outcome == "parse_error" and "whole-account" in whole.error


def write_big_export(path, messages: int) -> int:
    """A realistic export of ``messages`` posts (mixed text kinds, service messages)."""
    body = "Мобилизация: сводка за день, военкоматы, повестки, пикеты у администрации. " * 24
    with open(path, "w", encoding="utf-8") as f:
        f.write('{\n "name": "Большой канал",\n "type": "public_channel",\n "id": 1555000111,\n "messages": [\n')
        for i in range(1, messages + 1):
            if i % 50 == 0:
                msg = {"id": i, "type": "service", "date": "2026-01-01T00:00:00", "date_unixtime": "1767225600",
                       "action": "pin_message", "message_id": i - 1, "text": "", "text_entities": []}
            elif i % 2:
                msg = {"id": i, "type": "message", "date": "2026-01-01T00:00:00", "date_unixtime": str(1767225600 + i),
                       "from": "Большой канал", "from_id": "channel1555000111", "text": f"{i}: {body}",
                       "text_entities": [{"type": "plain", "text": f"{i}: {body}"}]}
            else:
                msg = {"id": i, "type": "message", "date": "2026-01-01T00:00:00", "date_unixtime": str(1767225600 + i),
                       "from": "Большой канал", "from_id": "channel1555000111",
                       "text": [f"{i}: ", {"type": "bold", "text": "Срочно"}, " ", body],
                       "text_entities": [{"type": "plain", "text": f"{i}: "}, {"type": "bold", "text": "Срочно"}]}
            f.write(("  " if i == 1 else ",\n  ") + json.dumps(msg, ensure_ascii=False))
        f.write("\n ]\n}\n")
    return path.stat().st_size


# Runs in a fresh interpreter so its peak RSS is the export's, not the test session's.
_MEASURE = """
import asyncio, json, resource, sys
from datetime import UTC, datetime
from types import SimpleNamespace
from connectors.telegram.export import ExportPoller
src = SimpleNamespace(id="big", path=sys.argv[1], channel=None, timezone="UTC", lang=None)
poller = ExportPoller(src, batch=500)
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cursor, records, skipped, ids = None, 0, 0, set()
while True:
    result = asyncio.run(poller.poll(cursor, datetime.now(UTC)))
    assert result.error is None, result.error
    records += len(result.records); skipped += result.skipped
    ids.update(r.message_id for r in result.records)
    cursor = result.cursor
    if cursor["done"]:
        break
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"baseline_kb": baseline, "peak_kb": peak, "records": records, "skipped": skipped, "unique": len(ids)}))
"""


@pytest.mark.slow
def test_large_export_is_streamed_with_bounded_memory(tmp_path):
    path = tmp_path / "result.json"
    count = 15_000
    size = write_big_export(path, count)
    assert size > 60 * 1024 * 1024
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True, cwd=REPO, timeout=300, check=True
    )
    stats = json.loads(out.stdout)
    assert stats["records"] == stats["unique"] == count - count // 50
    assert stats["skipped"] == count // 50
    grown_mb = (stats["peak_kb"] - stats["baseline_kb"]) / 1024
    # Reading a 60+ MB file whole would need more than its size; streaming needs one batch.
    assert grown_mb < 40, f"peak RSS grew {grown_mb:.0f} MB while reading a {size / 2**20:.0f} MB export"


def test_a_reply_names_the_post_it_answers():
    from zoneinfo import ZoneInfo

    from connectors.telegram.export import map_message

    def mapped(**extra):
        msg = {"id": 8, "type": "message", "date_unixtime": "1772438400", "text": "Ответ", **extra}
        return map_message(msg, channel="chan", source_id="tg-export", fetched_at=NOW, tz=ZoneInfo("UTC")).record

    assert mapped(reply_to_message_id=5).reply_to == "tg:chan:5"
    assert mapped(reply_to_message_id=5, reply_to_peer_id="channel1234").reply_to is None  # another chat
    assert mapped().reply_to is None
