"""The delivery loop's memory does not grow with what its sources' cursors remember (issue 20).

An RSS cursor keeps an entry per item of the feed's last delivered body (newsradar.feeditems),
so it grows as a feed fills up to its window; the soak's 2,000 feeds took the whole two weeks
to fill theirs. The loop reads a cursor from the state store for the poll that needs it and
keeps none between polls, so the process does not grow with feed sizes times sources.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import tracemalloc

from prometheus_client import CollectorRegistry

from connectors.base import PollResult
from connectors.runner import Runner, Schedule, Slot
from connectors.state import StateStore
from newsradar.metrics import ConnectorMetrics
from newsradar.records import RawArticle, format_time

SOURCES = 200
ITEMS = 50  # entries per cursor, as a 50-item feed's cursor holds
ROUNDS = 3
T0 = 1_764_000_000.0


def remembered(source_id: str, round_: int) -> dict:
    """A cursor like an RSS one: an id and two digests per item of the last body, new ids every
    round (the feed moved on)."""
    return {"round": round_, "items": {f"g:{source_id}:{round_}:{i:04d}": [f"{i:012x}", f"{round_:012x}"]
                                       for i in range(ITEMS)}}


class RememberingPoller:
    """Returns a fresh cursor every poll and notes which round's cursor it was handed."""

    def __init__(self, source_id: str):
        self.source_id = source_id
        self.handed: list[int | None] = []

    async def poll(self, cursor, now) -> PollResult:
        self.handed.append(cursor["round"] if cursor else None)
        return PollResult(cursor=remembered(self.source_id, len(self.handed)), outcome="ok")

    async def close(self) -> None:
        return None


def traced_size(build) -> int:
    """Bytes that what ``build()`` returns holds (traced Python allocations)."""
    gc.collect()
    tracemalloc.start()
    try:
        kept = build()
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del kept
    return size


def test_cursors_are_not_held_between_polls(tmp_path):
    one_round = traced_size(lambda: [remembered(f"s{n:03d}", 1) for n in range(SOURCES)])
    pollers = [RememberingPoller(f"s{n:03d}") for n in range(SOURCES)]

    async def go() -> int:
        store = StateStore(tmp_path)
        runner = Runner([Slot(p, Schedule()) for p in pollers], producer=None, store=store,
                        metrics=ConnectorMetrics(CollectorRegistry()), clock=lambda: T0)
        try:
            await runner.poll_due(every=True)  # every source has a saved cursor from here on
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                for _ in range(ROUNDS):
                    await runner.poll_due(every=True)
                gc.collect()
                return tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
        finally:
            runner.close()
            store.close()

    held = asyncio.run(go())
    # Each poll was handed the cursor its previous poll saved (from the store now).
    assert all(p.handed == [None, *range(1, ROUNDS + 1)] for p in pollers)
    # Holding the latest cursor of every source would keep about one round's worth (~3 MB here).
    assert one_round > 1_000_000
    assert held < one_round / 10, f"the loop kept {held} bytes over {ROUNDS} rounds; one round of cursors is {one_round}"


class HeldAck:
    """A send Kafka has not acknowledged yet."""

    def __init__(self):
        self._callbacks = []

    def add_callback(self, fn):
        self._callbacks.append(fn)

    def add_errback(self, fn):
        return None

    def ack(self):
        for fn in self._callbacks:
            fn(None)


class SlowAcks:
    """A producer whose acknowledgements come only when the test says so."""

    def __init__(self):
        self._lock = threading.Lock()
        self.pending: list[HeldAck] = []
        self.acked = 0

    def send(self, topic, key=None, value=None):
        held = HeldAck()
        with self._lock:
            self.pending.append(held)
        return held

    def waiting(self) -> int:
        with self._lock:
            return len(self.pending)

    def ack_all(self) -> None:
        with self._lock:
            held, self.pending = self.pending, []
            self.acked += len(held)
        for h in held:
            h.ack()


class FullFeedPoller:
    """A source whose first poll returns its whole feed as new (no state yet)."""

    ITEMS = 5

    def __init__(self, source_id: str):
        self.source_id = source_id
        self.polls = 0

    async def poll(self, cursor, now) -> PollResult:
        self.polls += 1
        stamp = format_time(now)
        records = [RawArticle(article_id=f"{self.source_id}:{i}", source_id=self.source_id, source_kind="rss",
                              url=f"https://example.org/{self.source_id}/{i}", title=f"item {i}", text="text",
                              published_at=stamp, fetched_at=stamp) for i in range(self.ITEMS)]
        return PollResult(records=records, cursor={"polled": self.polls}, outcome="ok")

    async def close(self) -> None:
        return None


def test_records_waiting_for_acks_are_bounded_by_max_polls_in_flight(tmp_path):
    """Issue 20's start-up burst: with acks slow, at most max_polls_in_flight polls hold
    records, however many sources are due and however many polls may fetch at once."""
    limit, sources = 4, 20
    pollers = [FullFeedPoller(f"s{i:02d}") for i in range(sources)]
    producer = SlowAcks()

    async def go():
        with StateStore(tmp_path) as store:
            runner = Runner([Slot(p, Schedule()) for p in pollers], producer=producer, store=store,
                            metrics=ConnectorMetrics(CollectorRegistry()), clock=lambda: T0,
                            max_concurrent_polls=sources, max_polls_in_flight=limit)
            try:
                cycle = asyncio.ensure_future(runner.poll_due(every=True))
                most_waiting = most_holding = 0
                for _ in range(2000):
                    await asyncio.sleep(0.005)
                    if cycle.done():
                        break
                    waiting = producer.waiting()
                    # Polls started and not yet acknowledged: fetching, parsing or waiting for acks.
                    holding = sum(p.polls for p in pollers) - producer.acked // FullFeedPoller.ITEMS
                    most_waiting, most_holding = max(most_waiting, waiting), max(most_holding, holding)
                    if waiting >= limit * FullFeedPoller.ITEMS:
                        await asyncio.sleep(0.05)  # time for the loop to (wrongly) start more polls
                        most_holding = max(most_holding, sum(p.polls for p in pollers) - producer.acked // FullFeedPoller.ITEMS)
                        producer.ack_all()
                assert cycle.done(), "the poll cycle never finished"
                progress = cycle.result()
            finally:
                runner.close()
            return progress, most_waiting, most_holding

    progress, most_waiting, most_holding = asyncio.run(go())
    assert progress.new_items == sources * FullFeedPoller.ITEMS and progress.errors == 0
    assert most_holding <= limit, f"{most_holding} polls held records at once, the limit is {limit}"
    assert most_waiting == limit * FullFeedPoller.ITEMS, "the limit was never reached: the test proves nothing"


class FailingPoller(FullFeedPoller):
    """A poller with a bug: its poll raises."""

    async def poll(self, cursor, now) -> PollResult:
        self.polls += 1
        raise RuntimeError("a poller's bug")


class AckedAtOnce:
    def add_callback(self, fn):
        fn(None)

    def add_errback(self, fn):
        return None


class RefusesSomeSources:
    """Acknowledges at once, except that sends for the sources named fail as Kafka would."""

    def __init__(self, failing: set[str]):
        self.failing = failing

    def send(self, topic, key=None, value=None):
        from kafka.errors import KafkaTimeoutError

        if any(key and key.startswith(source.encode()) for source in self.failing):
            raise KafkaTimeoutError("no broker in time")
        return AckedAtOnce()


def test_failed_polls_and_failed_deliveries_give_their_in_flight_turn_back(tmp_path):
    """A poll that raises and a delivery whose sends fail each release the turn they took: with
    a limit of 2, twelve sources (a third failing to poll, a third failing to deliver) all get
    polled in one cycle, and the bound is back at 2 afterwards (a lost turn would stall it)."""
    limit = 2
    pollers = [(FailingPoller if i % 3 == 0 else FullFeedPoller)(f"s{i:02d}") for i in range(12)]
    producer = RefusesSomeSources({p.source_id for i, p in enumerate(pollers) if i % 3 == 1})

    async def go():
        with StateStore(tmp_path) as store:
            runner = Runner([Slot(p, Schedule()) for p in pollers], producer=producer, store=store,
                            metrics=ConnectorMetrics(CollectorRegistry()), clock=lambda: T0,
                            max_concurrent_polls=12, max_polls_in_flight=limit)
            try:
                progress = await asyncio.wait_for(runner.poll_due(every=True), timeout=60)
                return progress, runner._in_flight._value
            finally:
                runner.close()

    progress, turns_left = asyncio.run(go())
    assert all(p.polls == 1 for p in pollers)
    assert progress.errors >= 4 and progress.new_items == 4 * FullFeedPoller.ITEMS, progress
    assert turns_left == limit
