"""The fault test (issue 13): a restart is invisible. A generated stream over simulated weeks
(tests/pipelines/restarts.py) runs through `newsradar pipeline` on Prism against the real
broker once without interruption (the reference) and, at the same time on other topics, once
with a clean stop (SIGTERM) and a SIGKILL at seeded random points, restarting each time. The
alert ids on news.alerts are the reference's (none raised twice), first_in_window fires
where the reference's does, every copy of a story keeps the reference's story id, and nothing
tagged is lost. The full size (2,000 articles, two of each) is benchmarks/restarts.py."""

from __future__ import annotations

import random
import threading

import pytest

from tests.conftest import newsradar_cmd
from tests.pipelines import restarts

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SEED = 13
ARTICLES = 300


def test_stops_and_kills_are_invisible_in_alerts_and_stories(kafka, topic_prefix, tmp_path):
    stream = restarts.generate(ARTICLES, SEED)
    assert len(stream.records) >= ARTICLES and stream.copies and stream.quiet_returns
    watchlist = restarts.watchlist_copy(tmp_path / "watchlist.yaml")
    runs = {}
    for name in ("reference", "restarted"):
        prefix = f"{topic_prefix}.{name}."
        restarts.make_topics(kafka.bootstrap, prefix)
        runs[name] = restarts.Pipeline(kafka.bootstrap, prefix, watchlist, tmp_path / f"{name}.log",
                                       tmp_path / f"home-{name}", newsradar_cmd())
    plan = restarts.interruptions(random.Random(SEED), len(stream.records), stops=1, kills=1)
    assert sorted(how for how, _ in plan) == ["kill", "term"]

    errors: list[BaseException] = []

    def in_thread(fn, *args):
        def run():
            try:
                fn(*args)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread below
                errors.append(exc)
        thread = threading.Thread(target=run)
        thread.start()
        return thread

    total = len(stream.records)
    threads = [
        in_thread(restarts.run_to_end, runs["reference"], 240, total),
        in_thread(restarts.produce_once_running, list(runs.values()), stream, 240),
    ]
    try:
        done = restarts.run_interrupted(runs["restarted"], plan, timeout=240, total=total)
    except AssertionError:
        if errors:  # the cause, when a helper thread failed first
            raise errors[0] from None
        raise
    finally:
        for thread in threads:
            thread.join()
        for p in runs.values():
            if p.alive():
                p.stop("term")
    if errors:
        raise errors[0]
    assert [d["how"] for d in done] == [how for how, _ in plan]
    log = runs["restarted"].log()
    assert log.count("pipeline: state rebuilt in") == 3, log[-3000:]

    ref = restarts.outcome(kafka.bootstrap, runs["reference"].prefix)
    got = restarts.outcome(kafka.bootstrap, runs["restarted"].prefix)
    assert ref.alerts_by_kind["first_in_window"] and ref.alerts_by_kind["surge"], ref.alerts_by_kind
    assert len(ref.story_of) == len(stream.records)
    assert restarts.compare(ref, got) == [], (done, log[-3000:])
