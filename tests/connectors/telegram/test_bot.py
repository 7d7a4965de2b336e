"""The Bot API poller against a fake Bot API (real HTTP on 127.0.0.1) driven by sequence files."""

import asyncio
import json
from datetime import UTC, datetime

from connectors.http import FetchLimits, HttpClient
from connectors.telegram.bot import BotPoller
from connectors.telegram.throttle import RequestPacer
from newsradar.config.sources import TelegramBotSource
from newsradar.netguard import AddressPolicy

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TOKEN = "123456:TEST-token_abc"


def make_source(api, **kw):
    return TelegramBotSource(kind="telegram", mode="bot", id="tg-bot", api_base=api.base_url, long_poll=1, **kw)


def polls(source, cursors, token=TOKEN, pacer=None):
    """One poll per cursor in ``cursors`` (a callable may derive it from the previous result)."""

    async def go():
        async with HttpClient(FetchLimits(timeout=10), AddressPolicy(allow_private_networks=True)) as http:
            poller = BotPoller(source, token, http, pacer or RequestPacer(0))
            out = []
            for cursor in cursors:
                out.append(await poller.poll(cursor(out) if callable(cursor) else cursor, NOW))
            return out

    return asyncio.run(go())


def saved(results):
    """The cursor the loop would have saved after the previous poll was acknowledged."""
    return results[-1].cursor if results[-1].cursor is not None else saved(results[:-1]) if results[:-1] else None


def test_posts_edits_and_skips_over_three_calls(bot_api_factory):
    api = bot_api_factory("basic.json")
    source = make_source(api, channels=("mothers_watch", "c9876543210"))
    first, second, third = polls(source, [None, saved, saved])
    assert [r.article_id for r in first.records] == ["tg:mothers_watch:41", "tg:mothers_watch:42"]
    assert first.skipped == 2 and first.cursor == {"offset": 500004} and first.next_poll_in == 0.0
    assert [(r.article_id, r.edited_at) for r in second.records] == [
        ("tg:mothers_watch:41", "2026-03-02T08:20:00Z"), ("tg:mothers_watch:43", None), ("tg:mothers_watch:45", None),
    ]
    assert second.skipped == 1
    assert [r.article_id for r in third.records] == ["tg:c9876543210:12"]
    assert third.skipped == 2 and third.cursor == {"offset": 500011}
    # Each call confirmed exactly what the loop had saved before it, never more.
    assert [c["offset"] for c in api.calls] == [None, 500005, 500009]
    assert json.loads(api.calls[0]["allowed_updates"]) == ["channel_post", "edited_channel_post"]


def test_an_unsaved_poll_is_read_again(bot_api_factory):
    api = bot_api_factory("basic.json")
    source = make_source(api, channels=("mothers_watch",))
    first, again = polls(source, [None, None])
    # The loop never saved first.cursor (a crash before the commit): Telegram sends it all again.
    assert [r.article_id for r in again.records][:2] == [r.article_id for r in first.records]
    assert api.confirmed_below == 0


def test_rate_limit_pauses_every_bot_source(bot_api_factory):
    api = bot_api_factory("rate-limited.json")
    clock = [50.0]

    async def sleep(seconds):
        clock[0] += seconds

    pacer = RequestPacer(0, clock=lambda: clock[0], sleep=sleep)
    limited, delivered = polls(make_source(api), [None, None], pacer=pacer)
    assert limited.outcome == "rate_limited" and limited.rate_limited_for == 3.0 and limited.cursor is None
    assert clock[0] == 53.0  # the second call waited out retry_after
    assert [r.article_id for r in delivered.records] == ["tg:mothers_watch:50"]


def test_a_rejected_token_is_an_error_that_does_not_leak_it(bot_api_factory):
    api = bot_api_factory("basic.json")
    (result,) = polls(make_source(api), [None], token="999:WRONG-secret-token")
    assert result.outcome == "http_error" and result.status == 401
    assert "WRONG-secret-token" not in result.error and "Unauthorized" in result.error


def test_unreachable_api_is_a_network_error(bot_api_factory):
    api = bot_api_factory("basic.json")
    api.stop()
    (result,) = polls(make_source(api), [None])
    assert result.outcome in ("network_error", "timeout") and TOKEN not in (result.error or "")
