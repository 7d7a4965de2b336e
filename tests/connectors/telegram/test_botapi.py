"""Bot API update -> record mapping, over the updates of the JSON sequence fixtures."""

import json
from datetime import UTC, datetime

import pytest

from connectors.telegram.botapi import map_update
from newsradar.records import decode_raw
from tests.conftest import FIXTURES

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def updates(name):
    steps = json.loads((FIXTURES / "telegram" / "bot" / name).read_text("utf-8"))["steps"]
    return [u for step in steps for u in step.get("updates", ())]


@pytest.fixture(scope="module")
def mapped():
    return {
        u.get("update_id"): map_update(u, source_id="tg-bot", fetched_at=NOW, channels=frozenset({"mothers_watch", "c9876543210"}))
        for u in updates("basic.json")
    }


def test_text_post(mapped):
    rec = mapped[500001].record
    assert rec.article_id == "tg:mothers_watch:41"
    assert rec.url == "https://t.me/mothers_watch/41"
    assert rec.published_at == "2026-03-02T08:00:00Z"
    assert rec.fetched_at == "2026-03-02T12:00:00Z"
    assert rec.text == "Совет матерей и жён требует встречи с губернатором.\nСбор в 12:00 у администрации."
    assert rec.title == "Совет матерей и жён требует встречи с губернатором."
    assert rec.author == "Ольга" and rec.edited_at is None
    assert decode_raw(rec.encode()) == rec


def test_caption_poll_forward(mapped):
    assert mapped[500002].record.text == "Фото с пикета у военкомата 📷"
    assert mapped[500006].record.text == "Получили ли ваши близкие повестку?\nДа\nНет"
    assert mapped[500008].record.forwarded_from == "ksm_news"


def test_edit_is_a_later_version_of_the_same_article(mapped):
    original, edit = mapped[500001].record, mapped[500005].record
    assert edit.article_id == original.article_id
    assert edit.edited_at == "2026-03-02T08:20:00Z" and edit.published_at == original.published_at
    assert edit.text.endswith("Сбор перенесён на 14:00.")


def test_private_channel_id_and_rtl(mapped):
    rec = mapped[500010].record
    assert rec.article_id == "tg:c9876543210:12"
    assert rec.url == "https://t.me/c/9876543210/12"
    assert rec.text == "עדכון: הפגנה ליד לשכת הגיוס 📢 — протест у военкомата"


@pytest.mark.parametrize(
    "update_id, reason",
    [(500003, "not_a_channel_post"), (500004, "other_channel"), (500007, "service"), (500009, "no_text"), (500011, "malformed")],
)
def test_skips_are_named(mapped, update_id, reason):
    assert mapped[update_id].record is None and mapped[update_id].skip == reason


def test_without_channel_filter_every_channel_is_kept():
    m = map_update(updates("basic.json")[3], source_id="s", fetched_at=NOW)
    assert m.record.article_id == "tg:some_other_channel:900"


@pytest.mark.parametrize(
    "update",
    [None, [], {"update_id": "1"}, {"update_id": 1, "channel_post": "text"},
     {"update_id": 2, "channel_post": {"message_id": 1, "chat": {"id": -1001, "username": "chan_x"}, "date": "soon", "text": "x"}},
     {"update_id": 3, "channel_post": {"message_id": 1, "chat": {"id": -1001, "username": "chan_x"}, "date": 10**20, "text": "x"}}],
)
def test_garbage_never_raises(update):
    assert map_update(update, source_id="s", fetched_at=NOW).skip == "malformed"


def test_a_reply_names_the_post_it_answers():
    chat = {"id": -1001234567890, "username": "mothers_watch", "type": "channel"}
    other = {"id": -1009999999999, "username": "elsewhere", "type": "channel"}

    def post(reply):
        update = {"update_id": 9, "channel_post": {"message_id": 50, "chat": chat, "date": 1772438400, "text": "Ответ"}}
        if reply is not None:
            update["channel_post"]["reply_to_message"] = reply
        return map_update(update, source_id="tg-bot", fetched_at=datetime(2026, 3, 2, tzinfo=UTC)).record

    assert post({"message_id": 41, "chat": chat, "date": 1772438000, "text": "Вопрос"}).reply_to == "tg:mothers_watch:41"
    assert post({"message_id": 41, "chat": other, "date": 1772438000}).reply_to is None
    assert post(None).reply_to is None
    assert decode_raw(post({"message_id": 41, "chat": chat}).encode()).reply_to == "tg:mothers_watch:41"
