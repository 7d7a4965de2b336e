"""The web poller against a real HTTP server on 127.0.0.1 serving the fixture pages."""

import asyncio
from datetime import UTC, datetime

import pytest

from connectors.http import FetchLimits, HttpClient
from connectors.telegram.throttle import RequestPacer
from connectors.telegram.web import WebPoller
from newsradar.config.sources import TelegramWebSource
from newsradar.netguard import AddressPolicy

NOW = datetime(2026, 3, 2, 18, 45, tzinfo=UTC)


def make_source(site, **kw):
    return TelegramWebSource(kind="telegram", mode="web", id="tg-web", channel="newsradar_test", base_url=site.base_url, **kw)


def poll(source, cursor, pacer=None, now=NOW):
    async def go():
        async with HttpClient(FetchLimits(timeout=10), AddressPolicy(allow_private_networks=True)) as http:
            return await WebPoller(source, http, pacer or RequestPacer(0)).poll(cursor, now)

    return asyncio.run(go())


def ids(result):
    return [r.message_id for r in result.records]


def test_first_run_backfills_down_the_before_chain(channel_site):
    result = poll(make_source(channel_site), None)
    assert result.error is None
    assert channel_site.requests == ["/s/newsradar_test", "/s/newsradar_test?before=121", "/s/newsradar_test?before=111"]
    expected = list(range(101, 115)) + list(range(116, 128)) + [129, 130, 131, 132, 134]
    assert ids(result) == expected
    assert len({r.article_id for r in result.records}) == len(expected)
    # 100 and 128 are service messages, 133 is a photo without caption, one block has no data-post
    assert result.skipped == 4
    assert result.cursor["last_id"] == 134
    first = result.records[0]
    assert first.article_id == "tg:newsradar_test:101"
    assert first.published_at == "2026-03-01T01:30:00Z" and first.text == "Первые новости канала, сообщение 101."
    assert first.url == "https://t.me/newsradar_test/101" and first.source_kind == "telegram"
    by_id = {r.message_id: r for r in result.records}
    assert by_id[123].published_at == "2026-03-02T05:30:00Z"
    assert by_id[126].forwarded_from == "soldiers_mothers_news"
    assert by_id[129].edited_at is None and by_id[129].flags == ("edited_before_fetch",)
    assert by_id[121].views == 12300 and by_id[121].author == "Анна Петрова"
    assert by_id[127].reply_to == "tg:newsradar_test:121" and by_id[121].reply_to is None


def test_depth_is_bounded_by_backfill_pages(channel_site):
    result = poll(make_source(channel_site, backfill_pages=1), None)
    assert len(channel_site.requests) == 2
    assert min(ids(result)) == 111


def test_later_polls_bring_new_posts_and_edits_once(channel_site):
    source = make_source(channel_site)
    first = poll(source, None)
    again = poll(source, first.cursor)
    # Only the block without data-post is counted again: it is on the page again.
    assert again.records == [] and again.skipped == 1
    assert channel_site.requests[-1] == "/s/newsradar_test"  # the newest page reaches back to the cursor

    channel_site.pages[None] = "latest-v2.html"
    later = datetime(2026, 3, 2, 19, 0, tzinfo=UTC)
    second = poll(source, again.cursor, now=later)
    assert ids(second) == [122, 137, 138]
    edit = second.records[0]
    assert edit.article_id == "tg:newsradar_test:122"
    assert edit.edited_at == "2026-03-02T19:00:00Z" and edit.flags == ("edit_time_is_fetch_time",)
    assert edit.text == "Пикет у здания администрации, около шестидесяти человек (уточнено)."
    assert edit.published_at == "2026-03-02T07:00:00Z"
    # Views moved on every post of v2: not an edit.
    assert poll(source, second.cursor).records == []


def test_a_burst_larger_than_a_page_is_backfilled(channel_site):
    source = make_source(channel_site)
    channel_site.pages = {None: "latest-v2.html", 121: "before-121.html", 111: "before-111.html"}
    cursor = poll(source, None).cursor
    assert cursor["last_id"] == 138
    channel_site.pages = {None: "latest-v3.html", 150: "before-150.html"}
    channel_site.requests.clear()
    result = poll(source, cursor)
    assert channel_site.requests == ["/s/newsradar_test", "/s/newsradar_test?before=150"]
    assert ids(result) == list(range(139, 170))


def test_rate_limit_is_honoured_and_shared(channel_site):
    channel_site.forced.append((429, {"Retry-After": "7"}))
    clock = [100.0]
    slept = []

    async def sleep(seconds):
        slept.append(seconds)
        clock[0] += seconds

    pacer = RequestPacer(0, clock=lambda: clock[0], sleep=sleep)
    result = poll(make_source(channel_site), None, pacer=pacer)
    assert result.outcome == "rate_limited" and result.status == 429
    assert result.rate_limited_for == 7.0 and result.next_poll_in == 7.0
    assert result.records == [] and result.cursor is None
    # Any other channel on the same pacer waits out the same 7 seconds before its request.
    assert pacer.paused_for == pytest.approx(7.0)
    again = poll(make_source(channel_site), None, pacer=pacer)
    assert slept == [pytest.approx(7.0)] and again.error is None


def test_a_failed_backfill_page_fails_the_whole_poll(channel_site):
    del channel_site.pages[111]
    result = poll(make_source(channel_site), None)
    assert result.outcome == "http_error" and result.status == 404
    assert result.records == [] and result.cursor is None


def test_a_page_without_history_is_a_parse_error(channel_site):
    channel_site.pages[None] = "../not-a-channel.html"
    result = poll(make_source(channel_site), None)
    assert result.outcome == "parse_error" and "no message history" in result.error


def test_internal_addresses_are_refused_without_the_test_switch(channel_site):
    async def go():
        async with HttpClient(FetchLimits(timeout=5), AddressPolicy()) as http:
            return await WebPoller(make_source(channel_site), http, RequestPacer(0)).poll(None, NOW)

    result = asyncio.run(go())
    assert result.outcome == "refused" and channel_site.requests == []
