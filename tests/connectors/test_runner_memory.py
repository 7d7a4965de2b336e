"""The delivery loop's memory does not grow with what its sources' cursors remember (issue 20).

An RSS cursor keeps an entry per item of the feed's last delivered body (newsradar.feeditems),
so it grows as a feed fills up to its window; the soak's 2,000 feeds took the whole two weeks
to fill theirs. The loop reads a cursor from the state store for the poll that needs it and
keeps none between polls, so the process does not grow with feed sizes times sources.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

from prometheus_client import CollectorRegistry

from connectors.base import PollResult
from connectors.runner import Runner, Schedule, Slot
from connectors.state import StateStore
from newsradar.metrics import ConnectorMetrics

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
