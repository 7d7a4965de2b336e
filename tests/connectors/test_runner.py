"""The delivery loop with the real Kafka broker, the real fixture server and an injected clock."""

from __future__ import annotations

import asyncio
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
from newsradar.kafka import make_producer
from newsradar.metrics import ConnectorMetrics
from newsradar.netguard import AddressPolicy
from newsradar.records import RawArticle, decode_raw, format_time
from tests.connectors.conftest import expected_feeds, expected_id, read_topic
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
        """Build the runner inside a loop, run ``cycles`` cycles (``between(i, runner)`` first), close."""

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
                    reports.append(await runner.run_cycle())
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
    assert second.due == len(feeds) + 1 and second.not_modified == len(feeds) + 1 and second.new_items == 0
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
    assert seen == [wait] and reports[0].rate_limited == 1 and reports[1].due == 0
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
