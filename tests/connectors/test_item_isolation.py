"""One bad item stops nothing but itself (issue 12): through the delivery loop, on the real broker.

A lone UTF-16 surrogate from the Bot API, an export or an RSS character reference is cleaned
when its record is built (U+FFFD, flagged); a record that cannot be sent is counted and skipped.
Either way the other items of the same poll are produced and the cursor advances.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from connectors.base import PollResult
from connectors.runner import Schedule, Slot
from connectors.state import StateStore
from connectors.telegram.bot import BotPoller
from connectors.telegram.export import ExportPoller
from connectors.telegram.throttle import RequestPacer
from newsradar.config.sources import TelegramBotSource, TelegramExportSource
from newsradar.kafka import read_topic
from newsradar.records import decode_raw
from tests.connectors.telegram.servers import FakeBotApi
from tests.connectors.test_runner import Harness, ScriptedPoller, post, rss_slot

pytestmark = pytest.mark.kafka

TOKEN = "123456:TEST-token_abc"


def on_kafka(kafka, topic) -> dict:
    records = [decode_raw(m.value) for m in read_topic(kafka.bootstrap, topic)]
    return {r.article_id: r for r in records}


def saved_cursor(state, source_id):
    with StateStore(state) as store:
        return store.load(source_id).cursor


def channel_post(update_id: int, message_id: int, text: str) -> dict:
    chat = {"id": -1001234567890, "username": "chan", "type": "channel"}
    return {"update_id": update_id,
            "channel_post": {"message_id": message_id, "chat": chat, "date": 1772438400, "text": text}}


def test_a_bot_api_post_with_a_lone_surrogate(kafka, raw_topic, tmp_path):
    sequence = tmp_path / "surrogate.json"
    sequence.write_text(json.dumps({"steps": [{"updates": [
        channel_post(700, 1, "first post"),
        channel_post(701, 2, "half an emoji \ud83d and a whole one \ud83d\ude00"),
        channel_post(702, 3, "third post"),
    ]}]}))  # json.dumps escapes the lone half as "\ud83d", as Telegram does
    api = FakeBotApi(sequence, TOKEN).start()
    try:
        source = TelegramBotSource(kind="telegram", mode="bot", id="tg-bot", api_base=api.base_url, long_poll=1)
        h = Harness(kafka, raw_topic, tmp_path / "state")
        [report] = h.run(lambda http: [Slot(BotPoller(source, TOKEN, http, RequestPacer(0)), Schedule())], 1)
    finally:
        api.stop()
    assert (report.errors, report.new_items) == (0, 3)
    got = on_kafka(kafka, raw_topic)
    assert sorted(got) == ["tg:chan:1", "tg:chan:2", "tg:chan:3"]
    assert got["tg:chan:2"].text == "half an emoji \ufffd and a whole one \U0001f600"
    assert got["tg:chan:2"].flags == ("surrogates_replaced",) and got["tg:chan:1"].flags is None
    assert saved_cursor(tmp_path / "state", "tg-bot") == {"offset": 702}


def test_an_export_message_with_lone_surrogates(kafka, raw_topic, tmp_path):
    # Escaped by hand: a lone high half (yajl made it "?"), a lone low half (yajl stopped the file).
    messages = [
        '{"id": 1, "type": "message", "date_unixtime": "1772438400", "text": "first"}',
        '{"id": 2, "type": "message", "date_unixtime": "1772438460", "text": "high \\ud83d low \\ude00 pair \\ud83d\\ude00"}',
        '{"id": 3, "type": "message", "date_unixtime": "1772438520", "text": ["third ", {"type": "bold", "text": "\\ude00"}]}',
        '{"id": 4, "type": "message", "date_unixtime": "1772438580", "text": "fourth"}',
    ]
    path = tmp_path / "result.json"
    path.write_bytes(('{"name": "Chan", "type": "public_channel", "id": 1234567890, "messages": [\n'
                      + ",\n".join(messages) + "\n]}\n").encode("ascii"))
    source = TelegramExportSource(kind="telegram", mode="export", id="tg-export", path=str(path), channel="chan")
    h = Harness(kafka, raw_topic, tmp_path / "state")
    [report] = h.run(lambda http: [Slot(ExportPoller(source), Schedule())], 1)
    assert (report.errors, report.new_items, report.skipped_items) == (0, 4, 0)
    got = on_kafka(kafka, raw_topic)
    assert sorted(got) == ["tg:chan:1", "tg:chan:2", "tg:chan:3", "tg:chan:4"]
    assert got["tg:chan:2"].text == "high \ufffd low \ufffd pair \U0001f600"
    assert got["tg:chan:3"].text == "third \ufffd"
    assert [got[f"tg:chan:{n}"].flags for n in (1, 2, 3, 4)] == [
        None, ("surrogates_replaced",), ("surrogates_replaced",), None]
    cursor = saved_cursor(tmp_path / "state", "tg-export")
    assert cursor["last_id"] == 4 and cursor["done"] is True


def test_an_rss_item_with_surrogate_character_references(kafka, raw_topic, feed_server, tmp_path):
    items = [("1", "first item"), ("2", "emoji &#55357;&#56832; and half of one &#xD83D;"), ("3", "third item")]
    feed_server.set_body("surrogates", (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        + "".join(f"<item><title>{title}</title><link>https://s.example.org/{guid}</link><guid>{guid}</guid>"
                  f"<description>{title}</description></item>" for guid, title in items)
        + "</channel></rss>").encode())
    h = Harness(kafka, raw_topic, tmp_path / "state")
    [report] = h.run(lambda http: [rss_slot(http, feed_server.url("/mutable/surrogates"), "rss-s")], 1)
    assert (report.errors, report.new_items) == (0, 3)
    by_guid = {r.guid: r for r in on_kafka(kafka, raw_topic).values()}
    assert sorted(by_guid) == ["1", "2", "3"]
    assert by_guid["2"].title == by_guid["2"].text == "emoji \U0001f600 and half of one \ufffd"
    assert "surrogates_replaced" in by_guid["2"].flags
    assert "surrogates_replaced" not in (by_guid["1"].flags or ())
    assert saved_cursor(tmp_path / "state", "rss-s")["body_sha256"]


def unencodable(n: int):
    """A record that does not encode: what a check nobody foresaw would let through."""
    record = post(n)
    object.__setattr__(record, "views", {n})  # past RawArticle's validation; JSON has no sets
    return record


def test_a_record_that_cannot_be_encoded_is_skipped_and_the_cursor_advances(kafka, raw_topic, tmp_path):
    poller = ScriptedPoller("tg", [PollResult(records=[post(1), unencodable(2), post(3)], cursor={"offset": 3})])
    h = Harness(kafka, raw_topic, tmp_path / "state")
    [report] = h.run(lambda http: [Slot(poller, Schedule())], 1)
    assert (report.errors, report.new_items, report.skipped_items) == (0, 2, 1)
    assert h.sample("newsradar_items_skipped_total", source="tg") == 1
    assert h.sample("newsradar_produce_errors_total", source="tg") == 0
    assert sorted(on_kafka(kafka, raw_topic)) == ["tg:chan:1", "tg:chan:3"]
    assert saved_cursor(tmp_path / "state", "tg") == {"offset": 3}


def test_a_record_kafka_refuses_is_skipped_and_the_cursor_advances(kafka, raw_topic, tmp_path):
    # The producer refuses requests over 4 KB: one record is too large for it, whatever the retries.
    big = dataclasses.replace(post(2), text="x" * 8000)
    poller = ScriptedPoller("tg", [PollResult(records=[post(1), big, post(3)], cursor={"offset": 3})])
    h = Harness(kafka, raw_topic, tmp_path / "state", producer_kwargs={"max_request_size": 4096})
    [report] = h.run(lambda http: [Slot(poller, Schedule())], 1)
    assert (report.errors, report.new_items, report.skipped_items) == (0, 2, 1)
    assert sorted(on_kafka(kafka, raw_topic)) == ["tg:chan:1", "tg:chan:3"]
    assert saved_cursor(tmp_path / "state", "tg") == {"offset": 3}
