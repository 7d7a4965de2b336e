"""`connect --once` says why each failed source failed, and fails when no source could be polled."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CollectorRegistry

from connectors.app import EXIT_FAILURE, EXIT_OK, once_exit_code
from connectors.base import PollResult
from connectors.http import FetchLimits, HttpClient
from connectors.rss import RssPoller
from connectors.runner import Runner, Schedule, Slot
from connectors.state import StateStore
from newsradar.config.sources import Defaults, RssSource
from newsradar.metrics import ConnectorMetrics
from newsradar.netguard import AddressPolicy

REFUSED = {"metadata": "http://169.254.169.254/", "private": "http://10.1.2.3/", "loopback": "http://127.0.0.1/",
           "decimal": "http://2130706433/"}


class Unchanged:
    """A source that answers "nothing new" (a 304): polled fine, nothing to send."""

    source_id = "quiet"

    async def poll(self, cursor, now):
        return PollResult(cursor=cursor, outcome="not_modified", status=304)

    async def close(self):
        return None


def once(tmp_path, with_working_source: bool):
    async def go():
        http = HttpClient(FetchLimits(timeout=5), AddressPolicy())  # the policy connect uses by default
        slots = [Slot(RssPoller(RssSource(id=sid, kind="rss", url=url), Defaults(), http), Schedule())
                 for sid, url in REFUSED.items()]
        if with_working_source:
            slots.append(Slot(Unchanged(), Schedule()))
        store = StateStore(tmp_path / "state")
        runner = Runner(slots, producer=None, store=store, metrics=ConnectorMetrics(CollectorRegistry()))
        try:
            await runner.run(asyncio.Event(), once=True)
        finally:
            runner.close()
            await http.close()
            store.close()
        return runner.progress

    return asyncio.run(go())


def test_no_source_polled_is_a_failure_with_each_reason(tmp_path, caplog):
    progress = once(tmp_path, with_working_source=False)
    assert progress.polled == 4 and progress.succeeded == 0
    assert set(progress.failures) == set(REFUSED)
    assert all("refusing internal address" in why for why in progress.failures.values())
    with caplog.at_level(logging.ERROR, logger="newsradar.connect"):
        assert once_exit_code(progress, produce_errors=0) == EXIT_FAILURE
    lines = [r.getMessage() for r in caplog.records if r.name == "newsradar.connect"]
    assert lines[-1] == "connect --once: none of the 4 sources could be polled"
    assert "connect --once: source decimal: refusing internal address 2130706433 -> 127.0.0.1" in lines[0]
    assert len(lines) == 5  # one reason per source, then the verdict


def test_a_failing_source_among_working_ones_is_counted_not_fatal(tmp_path):
    progress = once(tmp_path, with_working_source=True)
    assert progress.succeeded == 1 and len(progress.failures) == 4
    assert once_exit_code(progress, produce_errors=0) == EXIT_OK
    assert once_exit_code(progress, produce_errors=1) == EXIT_FAILURE
