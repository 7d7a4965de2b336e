"""MTProto mode: the mapping over locally built Telethon objects, and the poller's handling of
FLOOD_WAIT, the entity cache and edits (a fake client: pure logic, no network)."""

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

telethon = pytest.importorskip("telethon")
from telethon.errors import FloodWaitError  # noqa: E402
from telethon.tl import types  # noqa: E402

from connectors.telegram.mtproto import MtprotoPoller, map_message  # noqa: E402

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PEER = types.PeerChannel(1234567890)
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def msg(mid, text="", **kw):
    return types.Message(id=mid, peer_id=PEER, date=kw.pop("date", T0 + timedelta(minutes=mid)), message=text, post=True, **kw)


def mapped(m):
    return map_message(m, channel="mothers_watch", source_id="tg-mt", fetched_at=NOW)


def test_text_post():
    rec, skip = mapped(msg(41, "Совет матерей и жён требует встречи.", views=1520, post_author="Ольга"))
    assert skip is None
    assert rec.article_id == "tg:mothers_watch:41"
    assert rec.published_at == "2026-03-02T08:41:00Z"
    assert rec.views == 1520 and rec.author == "Ольга" and rec.edited_at is None


def test_a_reply_names_the_post_it_answers():
    reply, _ = mapped(msg(44, "Ответ", reply_to=types.MessageReplyHeader(reply_to_msg_id=41)))
    assert reply.reply_to == "tg:mothers_watch:41"
    elsewhere = types.MessageReplyHeader(reply_to_msg_id=7, reply_to_peer_id=types.PeerChannel(42))
    assert mapped(msg(45, "Ответ в другой канал", reply_to=elsewhere))[0].reply_to is None
    assert mapped(msg(46, "Не ответ"))[0].reply_to is None


def test_edit_forward_poll_service_and_media_only():
    edited, _ = mapped(msg(42, "Исправлено", edit_date=T0 + timedelta(hours=1)))
    assert edited.edited_at == "2026-03-02T09:00:00Z"
    hidden, _ = mapped(msg(43, "Кнопки поменялись", edit_date=T0 + timedelta(hours=1), edit_hide=True))
    assert hidden.edited_at is None
    fwd, _ = mapped(msg(44, "Горячая линия", fwd_from=types.MessageFwdHeader(date=T0, from_id=types.PeerChannel(2222222222))))
    assert fwd.forwarded_from == "c2222222222"
    named, _ = mapped(msg(45, "Скрытый автор", fwd_from=types.MessageFwdHeader(date=T0, from_name="Аноним")))
    assert named.forwarded_from == "Аноним"
    poll = types.MessageMediaPoll(
        poll=types.Poll(
            id=1, hash=0, question=types.TextWithEntities("Получили повестку?", []),
            answers=[types.PollAnswer(types.TextWithEntities("Да", []), b"0"), types.PollAnswer(types.TextWithEntities("Нет", []), b"1")],
        ),
        results=types.PollResults(),
    )
    rec, _ = mapped(msg(46, "", media=poll))
    assert rec.text == "Получили повестку?\nДа\nНет"
    service = types.MessageService(id=47, peer_id=PEER, date=T0, action=types.MessageActionPinMessage())
    assert mapped(service) == (None, "service")
    assert mapped(msg(48, "", media=types.MessageMediaPhoto())) == (None, "no_text")


class FakeClient:
    """Answers like Telethon's client for the calls the poller makes (newest first unless reverse)."""

    def __init__(self, history):
        self.history = history
        self.resolved = 0
        self.flood = None
        self.connected = False

    def is_connected(self):
        return self.connected

    async def connect(self):
        self.connected = True

    async def is_user_authorized(self):
        return True

    async def get_input_entity(self, username):
        self.resolved += 1
        return types.InputPeerChannel(1234567890, 987654321)

    async def get_messages(self, peer, limit=None, min_id=0, reverse=False):
        if self.flood:
            raise FloodWaitError(request=None, capture=self.flood)
        found = sorted((m for m in self.history if m.id > min_id), key=lambda m: m.id, reverse=not reverse)
        return found[:limit]

    async def disconnect(self):
        self.connected = False


def source():
    return SimpleNamespace(id="tg-mt", channel="mothers_watch", session="s", lang=None)


def test_poller_reads_new_posts_caches_the_entity_and_sees_edits():
    client = FakeClient([msg(i, f"пост {i}") for i in range(1, 3)])
    poller = MtprotoPoller(source(), lambda: client, page=3, recheck=10)
    first = asyncio.run(poller.poll(None, NOW))
    assert [r.message_id for r in first.records] == [1, 2] and first.next_poll_in is None
    assert first.cursor["peer"] == {"channel_id": 1234567890, "access_hash": 987654321}
    client.history += [msg(i, f"пост {i}") for i in range(3, 8)]
    # Five new posts, three per page: oldest first, and "come back at once" while a page is full.
    second = asyncio.run(poller.poll(first.cursor, NOW))
    assert [r.message_id for r in second.records] == [3, 4, 5] and second.next_poll_in == 0.0
    second = asyncio.run(poller.poll(second.cursor, NOW))
    assert [r.message_id for r in second.records] == [6, 7] and second.next_poll_in is None
    client.history[1] = msg(2, "пост 2, исправлен", edit_date=T0 + timedelta(hours=2))
    third = asyncio.run(poller.poll(second.cursor, NOW))
    assert [(r.message_id, r.edited_at) for r in third.records] == [(2, "2026-03-02T10:00:00Z")]
    assert asyncio.run(poller.poll(third.cursor, NOW)).records == []
    # A new process with the saved cursor does not resolve the username again.
    again = MtprotoPoller(source(), lambda: client)
    asyncio.run(again.poll(third.cursor, NOW))
    assert client.resolved == 1 and poller.resolves == 1 and again.resolves == 0


def test_first_run_reads_only_the_newest_page():
    client = FakeClient([msg(i, f"пост {i}") for i in range(1, 11)])
    first = asyncio.run(MtprotoPoller(source(), lambda: client, page=4).poll(None, NOW))
    assert [r.message_id for r in first.records] == [7, 8, 9, 10] and first.cursor["last_id"] == 10


def test_flood_wait_is_reported_not_slept():
    client = FakeClient([msg(1, "x")])
    client.flood = 42
    result = asyncio.run(MtprotoPoller(source(), lambda: client).poll(None, NOW))
    assert result.outcome == "rate_limited" and result.rate_limited_for == 42.0 and result.next_poll_in == 42.0
    assert result.records == [] and result.cursor is None
