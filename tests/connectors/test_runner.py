"""The delivery loop with the real Kafka broker, the real fixture server and an injected clock."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from collections import Counter
from datetime import datetime

import pytest
from prometheus_client import CollectorRegistry

from connectors.base import PollResult
from connectors.http import FetchLimits, HttpClient
from connectors.rss import RssPoller
from connectors.runner import Runner, Schedule, Slot
from connectors.state import StateStore
from newsradar.config.sources import Defaults, RssSource
from newsradar.kafka import make_producer, read_topic
from newsradar.metrics import ConnectorMetrics
from newsradar.netguard import AddressPolicy
from newsradar.records import MAX_RECORD_BYTES, RawArticle, decode_raw, format_time
from tests.conftest import wait_for
from tests.connectors.conftest import expected_feeds, expected_id
from tests.connectors.feedserver import generated_feed

pytestmark = pytest.mark.kafka

T0 = 1_764_000_000.0


class Clock:
    def __init__(self, t: float = T0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Harness:
    """A runner over given slots, with its own registry, state dir, producer and clock."""

    def __init__(self, kafka, topic, state_dir, **runner_kwargs):
        self.kafka, self.topic, self.state_dir = kafka, topic, state_dir
        self.clock = Clock()
        self.registry = CollectorRegistry()
        self.metrics = ConnectorMetrics(self.registry)
        self.runner_kwargs = runner_kwargs
        self.producer_kwargs = runner_kwargs.pop("producer_kwargs", {})

    def run(self, make_slots, cycles, between=None):
        """Build the runner inside a loop, poll the due sources ``cycles`` times (``between(i, runner)``
        first), close."""

        async def go():
            http = HttpClient(FetchLimits(timeout=5), AddressPolicy(allow_private_networks=True))
            producer = make_producer(self.kafka.bootstrap, **self.producer_kwargs)
            store = StateStore(self.state_dir)
            runner = Runner(make_slots(http), producer=producer, store=store, metrics=self.metrics, topic=self.topic,
                            clock=self.clock, **self.runner_kwargs)
            reports = []
            try:
                for i in range(cycles):
                    if between:
                        between(i, runner)
                    reports.append(await runner.poll_due())
            finally:
                runner.close()
                await http.close()
                producer.close(10)
                store.close()
            return reports

        return asyncio.run(go())

    def sample(self, name, **labels):
        return self.registry.get_sample_value(name, labels)


def rss_slot(http, url, source_id, schedule=None, **defaults):
    source = RssSource(id=source_id, kind="rss", url=url)
    return Slot(RssPoller(source, Defaults(**defaults), http), schedule or Schedule(interval=600, min_interval=60))


def keys_on(kafka, topic):
    return Counter(m.key.decode() for m in read_topic(kafka.bootstrap, topic))


def test_every_good_fixture_item_arrives_exactly_once(kafka, raw_topic, feed_server, tmp_path):
    feeds = expected_feeds()
    h = Harness(kafka, raw_topic, tmp_path / "state")

    def slots(http):
        out = []
        for name, feed in feeds.items():
            query = f"?ctype={feed['content_type']}" if "content_type" in feed else ""
            out.append(rss_slot(http, feed_server.url(f"/feeds/{name}{query}"), name.split(".")[0]))
        out.append(rss_slot(http, feed_server.url("/feeds/rss20.xml?gzip=1"), "rss20-gzip"))
        return out

    def later(i, runner):
        h.clock.advance(7 * 3600 if i else 0)  # past every interval: all due again

    first, second = h.run(slots, 2, between=later)
    expected = {expected_id(name.split(".")[0], feed, item) for name, feed in feeds.items() for item in feed["items"]}
    expected |= {expected_id("rss20-gzip", feeds["rss20.xml"], item) for item in feeds["rss20.xml"]["items"]}
    on_kafka = keys_on(kafka, raw_topic)
    assert set(on_kafka) == expected and set(on_kafka.values()) == {1}
    assert first.new_items == len(expected) and first.errors == 0
    assert second.polled == len(feeds) + 1 and second.not_modified == len(feeds) + 1 and second.new_items == 0
    for m in read_topic(kafka.bootstrap, raw_topic):
        record = decode_raw(m.value)
        assert m.key.decode() == record.article_id and record.source_kind == "rss"
    assert h.sample("newsradar_items_produced_total", source="rss20") == 3
    assert h.sample("newsradar_fetches_total", source="rss20", outcome="not_modified") == 1
    assert h.sample("newsradar_source_last_new_item_timestamp_seconds", source="rss20") == T0


def test_a_restart_resends_nothing_that_was_acknowledged(kafka, raw_topic, feed_server, tmp_path):
    feed_server.set_body("grow", generated_feed("grow", 3))
    state = tmp_path / "state"

    def slots(http):
        return [rss_slot(http, feed_server.url("/mutable/grow"), "grow")]

    Harness(kafka, raw_topic, state).run(slots, 1)
    feed_server.set_body("grow", generated_feed("grow", 5))  # two new items; the body (and ETag) changed
    again = Harness(kafka, raw_topic, state)
    again.clock.advance(3600)
    [report] = again.run(slots, 1)
    assert report.new_items == 2
    on_kafka = keys_on(kafka, raw_topic)
    assert len(on_kafka) == 5 and set(on_kafka.values()) == {1}


def test_a_500_streak_backs_off_linearly_to_the_cap_and_recovers(kafka, raw_topic, feed_server, tmp_path):
    feed_server.fail_next["f"] = 4
    h = Harness(kafka, raw_topic, tmp_path / "state")
    schedule = Schedule(interval=600, min_interval=60, backoff_step=100, backoff_max=250)
    delays = []

    def slots(http):
        return [rss_slot(http, feed_server.url("/flaky/f/rdf.xml"), "flaky", schedule)]

    def step(i, runner):
        if i:
            slot = runner.slots[0]
            delays.append(slot.next_due - h.clock.t)
            assert not runner.due(slot.next_due - 1), "due before its backoff ended"
            h.clock.t = slot.next_due

    reports = h.run(slots, 6, between=step)
    assert [r.errors for r in reports] == [1, 1, 1, 1, 0, 0]
    assert delays == [100, 200, 250, 250, 3600]  # linear, capped; then the feed's own sy hint (hourly)
    assert reports[4].new_items == 2 and reports[5].new_items == 0
    assert h.sample("newsradar_fetches_total", source="flaky", outcome="http_error") == 4
    assert h.sample("newsradar_http_responses_total", source="flaky", status_class="5xx") == 4
    assert h.sample("newsradar_source_consecutive_errors", source="flaky") == 0


@pytest.mark.parametrize("retry_after, wait", [("3600", 3600), ("9999999", 86400)])
def test_retry_after_is_honoured_and_capped_at_a_day(kafka, raw_topic, feed_server, tmp_path, retry_after, wait):
    h = Harness(kafka, raw_topic, tmp_path / "state")
    seen = []

    def slots(http):
        return [rss_slot(http, feed_server.url(f"/status/429?retry_after={retry_after}"), "limited")]

    def check(i, runner):
        if i:
            seen.append(runner.slots[0].next_due - T0)
            assert runner.due(every=True) == [], "a one-shot run must respect Retry-After too"

    reports = h.run(slots, 2, between=check)
    assert seen == [wait] and reports[0].rate_limited == 1 and reports[1].polled == 0
    assert h.sample("newsradar_rate_limit_waits_total", source="limited") == 1
    assert h.sample("newsradar_rate_limit_wait_seconds_total", source="limited") == wait


def test_concurrency_is_limited_per_host(kafka, raw_topic, feed_server, tmp_path):
    feed_server.gen_delay = 0.2
    h = Harness(kafka, raw_topic, tmp_path / "state", per_host_concurrency=2, max_concurrent_polls=10)

    def slots(http):
        return [rss_slot(http, feed_server.url(f"/gen/h{i}.xml?items=1"), f"h{i}") for i in range(6)]

    [report] = h.run(slots, 1)
    assert report.new_items == 6
    assert feed_server.max_in_flight == 2


class ScriptedPoller:
    """A stand-in source for the loop's contract (the Telegram bot mode's offset, bugs, edits)."""

    def __init__(self, source_id, script):
        self.source_id = source_id
        self.script = list(script)
        self.cursors_seen = []

    async def poll(self, cursor, now: datetime) -> PollResult:
        self.cursors_seen.append(cursor)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    async def close(self):
        return None


def post(n: int, edited: str | None = None) -> RawArticle:
    return RawArticle(
        article_id=f"tg:chan:{n}", source_id="bot", source_kind="telegram", url=f"https://t.me/chan/{n}",
        title="", text=f"post {n}", published_at=format_time(datetime.fromtimestamp(T0).astimezone()),
        fetched_at=format_time(datetime.fromtimestamp(T0).astimezone()), channel="chan", message_id=n,
        edited_at=edited,
    )


def test_a_poller_bug_is_contained_to_its_source(kafka, raw_topic, feed_server, tmp_path):
    h = Harness(kafka, raw_topic, tmp_path / "state")
    buggy = ScriptedPoller("buggy", [RuntimeError("boom")])

    def slots(http):
        return [Slot(buggy, Schedule(backoff_step=30)), rss_slot(http, feed_server.url("/feeds/rss20.xml"), "fine")]

    [report] = h.run(slots, 1)
    assert report.errors == 1 and report.new_items == 3
    assert h.sample("newsradar_fetches_total", source="buggy", outcome="internal_error") == 1


def test_cursor_is_saved_only_after_kafka_acknowledged(kafka, raw_topic, tmp_path):
    state = tmp_path / "state"
    # Kafka cannot take these records (the topic does not exist): nothing may be confirmed.
    failing = Harness(kafka, "no-such-topic-" + raw_topic, state, producer_kwargs={"max_block_ms": 1500})
    poller = ScriptedPoller("bot", [PollResult(records=[post(1), post(2)], cursor={"offset": 3})])
    [report] = failing.run(lambda http: [Slot(poller, Schedule(backoff_step=10))], 1)
    assert report.errors == 1 and report.new_items == 0
    assert failing.sample("newsradar_produce_errors_total", source="bot") == 2
    with StateStore(state) as store:
        assert store.load("bot").cursor is None and store.unseen("bot", ["tg:chan:1|"]) == {"tg:chan:1|"}

    # The next run re-reads from the old offset (None) and this time Kafka acknowledges.
    ok = Harness(kafka, raw_topic, state)
    ok.clock.advance(60)
    again = ScriptedPoller("bot", [
        PollResult(records=[post(1), post(2)], cursor={"offset": 3}, next_poll_in=0),  # more is ready
        PollResult(records=[post(2), post(3), post(3, edited="2026-11-25T12:00:00Z")], cursor={"offset": 5}),
        PollResult(records=[post(3, edited="2026-11-25T12:00:00Z")], cursor={"offset": 5}),
    ])
    reports = ok.run(lambda http: [Slot(again, Schedule(interval=600))], 3,
                     between=lambda i, runner: ok.clock.advance(600) if i == 2 else None)
    assert again.cursors_seen == [None, {"offset": 3}, {"offset": 5}]
    assert [r.new_items for r in reports] == [2, 2, 0]  # the repeated edit is not sent again
    with StateStore(state) as store:
        assert store.load("bot").cursor == {"offset": 5}
    on_kafka = [decode_raw(m.value) for m in read_topic(kafka.bootstrap, raw_topic)]
    assert Counter((r.article_id, r.edited_at) for r in on_kafka) == {
        ("tg:chan:1", None): 1, ("tg:chan:2", None): 1, ("tg:chan:3", None): 1,
        ("tg:chan:3", "2026-11-25T12:00:00Z"): 1,  # an edit is a new record with the same id
    }


CJK = "动员令发布后士兵母亲委员会在市政厅前集会。"  # 3 bytes a character in UTF-8


def cjk(chars: int) -> str:
    return (CJK * (chars // len(CJK) + 1))[:chars]


def big_feed(entries: dict[str, int]) -> bytes:
    """RSS whose items carry ``chars`` CJK characters each, as HTML (so text and html both)."""
    items = "".join(
        f"<item><title>{guid}</title><link>https://big.example.org/{guid}</link><guid>{guid}</guid>"
        f"<pubDate>Sun, 23 Nov 2025 10:00:00 GMT</pubDate><description>&lt;p&gt;{cjk(chars)}&lt;/p&gt;</description></item>"
        for guid, chars in entries.items()
    )
    return (f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>big</title>'
            f"<link>https://big.example.org/</link><description>d</description>{items}</channel></rss>").encode()


def test_huge_cjk_entries_arrive_cut_to_the_cap_and_the_source_keeps_flowing(kafka, raw_topic, feed_server, tmp_path):
    # ~1.5 MB of text (plus its HTML copy), and ~2.7 MB: both over Kafka's ~1 MiB default.
    entries = {"big-1": 500_000, "big-2": 900_000}
    feed_server.set_body("big", big_feed(entries))
    h = Harness(kafka, raw_topic, tmp_path / "state")

    def slots(http):
        return [rss_slot(http, feed_server.url("/mutable/big"), "big")]

    def later(i, runner):
        if i:
            feed_server.set_body("big", big_feed({**entries, "small-3": 10}))
            h.clock.advance(3600)

    first, second = h.run(slots, 2, between=later)
    assert (first.errors, first.new_items, second.errors, second.new_items) == (0, 2, 0, 1)
    assert h.sample("newsradar_produce_errors_total", source="big") == 0
    assert h.sample("newsradar_source_consecutive_errors", source="big") == 0
    got = {decode_raw(m.value).guid: (len(m.value), decode_raw(m.value)) for m in read_topic(kafka.bootstrap, raw_topic)}
    assert set(got) == {"big-1", "big-2", "small-3"}
    size, one = got["big-1"]
    assert one.text == cjk(500_000) and one.html is None and one.flags == ("html_dropped",)
    assert 1_500_000 < size <= MAX_RECORD_BYTES
    size, two = got["big-2"]
    assert cjk(900_000).startswith(two.text) and two.html is None
    assert two.flags == ("html_dropped", "text_truncated")
    assert MAX_RECORD_BYTES - 64 < size <= MAX_RECORD_BYTES
    assert got["small-3"][1].flags is None and got["small-3"][1].text == cjk(10)


def test_every_poller_gets_the_same_cut(kafka, raw_topic, tmp_path):
    # A Telegram-shaped record from any mode goes through the same loop and the same cut.
    h = Harness(kafka, raw_topic, tmp_path / "state")
    long_post = dataclasses.replace(post(7), text=cjk(1_000_000))
    # No cut can save this one (its URL alone is over the cap): skipped and counted, not fatal.
    hopeless = dataclasses.replace(post(9), url="https://t.me/" + "x" * MAX_RECORD_BYTES)
    poller = ScriptedPoller("tg", [PollResult(records=[long_post, hopeless, post(8)], cursor={"offset": 9})])
    [report] = h.run(lambda http: [Slot(poller, Schedule())], 1)
    assert (report.errors, report.new_items, report.skipped_items) == (0, 2, 1)
    assert h.sample("newsradar_items_skipped_total", source="tg") == 1
    got = {decode_raw(m.value).message_id: decode_raw(m.value) for m in read_topic(kafka.bootstrap, raw_topic)}
    assert set(got) == {7, 8}
    assert got[7].flags == ("text_truncated",) and cjk(1_000_000).startswith(got[7].text)
    assert got[8].flags is None
    with StateStore(tmp_path / "state") as store:
        assert store.load("tg").cursor == {"offset": 9}  # the poll was delivered; it is not re-read


def test_a_slow_source_does_not_hold_back_a_fast_one(kafka, raw_topic, feed_server, tmp_path, caplog):
    # "slow" answers after 8 s; "fast" is due every 0.2 s. Each source runs on its own schedule,
    # so fast keeps its interval while slow's first poll is still waiting for its answer.
    caplog.set_level(logging.INFO, logger="connectors.runner")
    registry = CollectorRegistry()
    metrics = ConnectorMetrics(registry)
    every = Schedule(interval=0.2, min_interval=0.2)

    def fetches(source, outcome):
        return registry.get_sample_value("newsradar_fetches_total", {"source": source, "outcome": outcome})

    def fast_polls():
        return len(feed_server.hits("/feeds/atom10.xml"))

    def slow_done():  # polls of "slow" that ended, whatever their outcome
        return registry.get_sample_value("newsradar_fetch_duration_seconds_count", {"source": "slow"})

    async def go():
        http = HttpClient(FetchLimits(timeout=30), AddressPolicy(allow_private_networks=True))
        producer = make_producer(kafka.bootstrap)
        store = StateStore(tmp_path / "state")
        slots = [rss_slot(http, feed_server.url("/slow/8/rss20.xml"), "slow", every),
                 rss_slot(http, feed_server.url("/feeds/atom10.xml"), "fast", every)]
        runner = Runner(slots, producer=producer, store=store, metrics=metrics, topic=raw_topic,
                        progress_every=1.0)
        stop = asyncio.Event()
        running = asyncio.ensure_future(runner.run(stop))
        try:
            # Watched from a thread with the suite's bounded wait; the loop keeps running here.
            seen = await asyncio.to_thread(
                wait_for, lambda: (fast_polls(), slow_done()) if fast_polls() >= 10 else None, 30,
                "the fast source to be polled 10 times",
            )
            slow_requests = len(feed_server.hits("/slow/"))
            stop.set()
            await asyncio.wait_for(running, 30)
        finally:
            runner.close()
            await http.close()
            producer.close(10)
            store.close()
        return seen, slow_requests

    (polls, slow_finished), slow_requests = asyncio.run(go())
    assert polls >= 10 and slow_finished == 0, "the fast source waited for the slow one"
    assert slow_requests == 1  # asked once, still waiting for the answer
    # The fast source delivered its two items once; its later polls were 304s.
    assert len(read_topic(kafka.bootstrap, raw_topic)) == 2
    assert fetches("fast", "not_modified") >= 9
    # One progress line per interval (1 s here), plus the last partial one at stop.
    lines = [r.getMessage() for r in caplog.records if re.match(r"last \d+s: \d+ sources polled", r.getMessage())]
    assert lines and any(re.search(r": [1-9]\d* sources polled, .* [1-9]\d* not modified", line) for line in lines)


def test_a_webhook_is_answered_while_a_slow_source_is_still_polling(kafka, raw_topic, feed_server, tmp_path,
                                                                     monkeypatch):
    import aiohttp
    import yaml

    from connectors.telegram import make_poller
    from connectors.telegram.webhook import SECRET_HEADER
    from newsradar.config.sources import load_sources
    from tests.conftest import FIXTURES, free_port

    monkeypatch.setenv("TEST_HOOK_SECRET", "hook-secret")
    port = free_port()
    file = tmp_path / "sources.yaml"
    file.write_text(yaml.safe_dump({"sources": [{
        "id": "hook", "kind": "telegram", "mode": "bot", "long_poll": "1s", "channels": ["mothers_watch"],
        "webhook": {"port": port, "secret_env": "TEST_HOOK_SECRET"},
    }]}))
    sources = load_sources(file)
    update = json.loads((FIXTURES / "telegram/bot/basic.json").read_text("utf-8"))["steps"][0]["updates"][0]
    registry = CollectorRegistry()

    async def go():
        http = HttpClient(FetchLimits(timeout=60), AddressPolicy(allow_private_networks=True))
        producer = make_producer(kafka.bootstrap)
        store = StateStore(tmp_path / "state")
        hook = make_poller(sources.sources[0], sources=sources, http=http)
        slots = [rss_slot(http, feed_server.url("/slow/15/rss20.xml"), "slow"),
                 Slot(hook, Schedule(interval=0, min_interval=0))]
        runner = Runner(slots, producer=producer, store=store, metrics=ConnectorMetrics(registry), topic=raw_topic)
        stop = asyncio.Event()
        running = asyncio.ensure_future(runner.run(stop))
        try:
            await asyncio.to_thread(wait_for, lambda: hook.port is not None, 30, "the webhook listener to start")
            async with aiohttp.ClientSession() as session:
                async with session.post(f"http://127.0.0.1:{port}/telegram/webhook", json=update,
                                        headers={SECRET_HEADER: "hook-secret"}) as resp:
                    status = resp.status
            # Polls of "slow" that ended, whatever their outcome.
            slow_done = registry.get_sample_value("newsradar_fetch_duration_seconds_count", {"source": "slow"})
            stop.set()
            await asyncio.wait_for(running, 30)
        finally:
            runner.close()
            for slot in slots:
                await slot.poller.close()
            await http.close()
            producer.close(10)
            store.close()
        return status, slow_done

    status, slow_done = asyncio.run(go())
    # 200 means delivered and saved; it came while the slow feed was still being fetched.
    assert status == 200 and slow_done == 0
    assert [decode_raw(m.value).article_id for m in read_topic(kafka.bootstrap, raw_topic)] == ["tg:mothers_watch:41"]


def test_an_rss_entry_edited_under_its_guid_is_sent_again_with_the_same_id(kafka, raw_topic, feed_server, tmp_path):
    def body(second_title: str, third: bool = False) -> bytes:
        items = [("g-1", "First"), ("g-2", second_title)] + ([("same", "Third"), ("same", "Fourth")] if third else [])
        return ("<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>e</title>" + "".join(
            f"<item><guid isPermaLink='false'>{g}</guid><link>https://e.example.org/{t[:5]}</link><title>{t}</title>"
            "</item>" for g, t in items) + "</channel></rss>").encode()

    feed_server.set_body("edits", body("Second"))
    h = Harness(kafka, raw_topic, tmp_path / "state")

    def later(i, runner):
        if i == 1:
            feed_server.set_body("edits", body("Second, corrected"))
        if i == 2:  # one guid repeated by two new items: the others keep their ids, nothing re-sent
            feed_server.set_body("edits", body("Second, corrected", third=True))
        h.clock.advance(3600)

    reports = h.run(lambda http: [rss_slot(http, feed_server.url("/mutable/edits"), "edits")], 3, between=later)
    assert [r.new_items for r in reports] == [2, 1, 2]
    on_kafka = [decode_raw(m.value) for m in read_topic(kafka.bootstrap, raw_topic)]
    versions = [(r.guid, r.title, r.edited_at is not None) for r in on_kafka]
    assert sorted(versions) == [("g-1", "First", False), ("g-2", "Second", False), ("g-2", "Second, corrected", True),
                                ("same", "Fourth", False), ("same", "Third", False)]
    second = [r for r in on_kafka if r.guid == "g-2"]
    assert second[0].article_id == second[1].article_id
    assert "edit_time_is_fetch_time" in second[1].flags
