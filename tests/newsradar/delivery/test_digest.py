"""Digest mode without Kafka, on an injected clock: a sink's low-severity notifications are held
in the ledger (their offsets committable at once) and sent as one message at the end of the
period, the others at once; the digest's id is deterministic; a kill while notifications are
held, or while the digest is being sent, neither loses nor duplicates them; a digest that
cannot be delivered dead-letters every alert it held; and what a digest looks like on each
channel."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

import pytest
from prometheus_client import CollectorRegistry

from newsradar.config import ConfigError, load_watchlist
from newsradar.config.watchlist import Digest as DigestConfig
from newsradar.config.watchlist import Route
from newsradar.delivery.digest import Digest, digest_id, held_back, make_digest, period_end, period_start
from newsradar.delivery.ledger import DEAD_LETTERED, DELIVERED, HELD, Ledger
from newsradar.delivery.notification import build
from newsradar.delivery.progress import Progress
from newsradar.delivery.service import Job, Settings, SinkWorker
from newsradar.delivery.sinks import Permanent, Retryable, slack_digest_text, webhook_body
from newsradar.delivery.smtp import build_digest_message
from newsradar.delivery.telegram import telegram_digest_html
from newsradar.metrics import DeliveryMetrics
from newsradar.records import decode_alert
from tests.newsradar.delivery.chatservers import telegram_text
from tests.newsradar.delivery.receiver import make_alert
from tests.newsradar.delivery.test_worker import Letters, value

EVERY = 900.0
# a quarter past: the period [t0, t0 + 900) ends at T1
T0 = 1_796_000_400.0
T1 = T0 + EVERY


class SteppedTime:
    """A clock the test moves (:meth:`move`, once the worker sleeps: a sleep is relative to the
    time its caller read); ``sleep`` returns once the clock has moved far enough."""

    def __init__(self, now: float):
        self.now = now
        self.sleeps: list[float] = []
        self.sleeping = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        target = self.now + seconds
        self.sleeping += 1
        try:
            while self.now < target:
                await asyncio.sleep(0.001)
        finally:
            self.sleeping -= 1

    async def move(self, to: float) -> None:
        await until(lambda: self.sleeping > 0, "the worker to sleep until the end of the period")
        self.now = to


class DigestSink:
    """Takes notifications and digests; a digest can hang (a kill mid-send) or be refused."""

    kind = "webhook"
    key = "webhook https://hooks.example.org/digest"
    batched = False
    concurrency = 2
    rate_limit = None
    route = Route()

    def __init__(self, hang: bool = False, errors=()):
        self.digest = DigestConfig(every=EVERY, max_severity="info")
        self.hang = hang
        self.errors = list(errors)
        self.sent: list = []
        self.digests: list[Digest] = []

    async def send(self, items):
        (item,) = items
        if isinstance(item, Digest):
            self.digests.append(item)
            if self.hang:
                await asyncio.Event().wait()
            if self.errors:
                raise self.errors.pop(0)
        else:
            self.sent.append(item)

    async def close(self):
        return None


def info_job(n: int, written: float, severity: str = "info") -> Job:
    alert = make_alert(n, severity=severity)
    return Job(alert, alert.encode(), 0, n, written, f"news.alerts/0/{n}")


async def until(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.002)


class Process:
    """One deliver process's worker for the sink, on the ledger at ``path`` (a restart: a new one)."""

    def __init__(self, sink, path, t: SteppedTime, max_age: float = 6 * 3600.0):
        self.sink, self.t = sink, t
        self.registry = CollectorRegistry()
        self.ledger, self.progress, self.letters = Ledger(path), Progress(), Letters()
        self.worker = SinkWorker(sink, self.ledger, self.progress, self.letters, DeliveryMetrics(self.registry),
                                 Settings(bootstrap_servers="unused:9092", max_age=max_age), clock=t.clock,
                                 sleep=t.sleep, jitter=False)

    def submit(self, jobs):
        loop = asyncio.get_running_loop()
        for j in jobs:
            j = dataclasses.replace(j, token=self.progress.add(j.partition, j.offset, 1))
            self.worker.submit(loop, build([j.alert]), [j])

    def value(self, name, **labels):
        return value(self.registry, name, **labels)

    async def stop(self):
        await self.worker.close()
        assert self.worker.error is None, self.worker.error
        self.ledger.close()


# ---------------------------------------------------------------------------
# plain functions


def test_which_notifications_wait_for_the_digest():
    digest = DigestConfig(every=EVERY, max_severity="info")
    quiet, loud = build([make_alert(1, severity="info")]), build([make_alert(2, severity="warning")])
    assert held_back(digest, Route(), quiet) and not held_back(digest, Route(), loud)
    assert not held_back(None, Route(), quiet)
    assert held_back(DigestConfig(every=EVERY, max_severity="warning"), Route(), loud)
    # an update is judged by what it adds: a quiet update of a critical story waits
    story = build([make_alert(3, severity="critical")])
    update = build([make_alert(3, org="memorial", severity="info")], story)
    assert update.severity == "critical" and held_back(digest, Route(), update)
    # a route's alerts decide: the critical alert is routed away, the info one is what the sink gets
    mixed = build([make_alert(4, org="cmw", severity="info"), make_alert(4, org="memorial", severity="critical")])
    assert held_back(digest, Route(organizations=("cmw",)), mixed) and not held_back(digest, Route(), mixed)


def test_periods_are_aligned_and_the_digest_id_is_deterministic():
    assert period_start(T0 + 10, EVERY) == T0 and period_end(T0 + 10, EVERY) == T1 == period_end(T0, EVERY)
    a = digest_id("webhook https://a", T1, 1)
    assert a == digest_id("webhook https://a", T1, 1) == "digest:" + a.split(":")[1] + ":20261130T011500Z:1"
    assert a != digest_id("webhook https://b", T1, 1) and a != digest_id("webhook https://a", T1, 2)
    assert a != digest_id("webhook https://a", T1 + EVERY, 1)


# ---------------------------------------------------------------------------
# the worker


def test_quiet_notifications_are_held_and_sent_as_one_digest_at_the_end_of_the_period(tmp_path):
    async def go():
        t = SteppedTime(T0 + 60)
        p = Process(DigestSink(), tmp_path / "ledger.sqlite", t)
        await p.worker.start()
        jobs = [info_job(n, t.now) for n in (1, 2, 3)] + [info_job(4, t.now, severity="warning")]
        p.submit(jobs)
        await until(lambda: p.progress.pending() == 0, "every alert finished (held or sent)")
        # the warning went at once; the three quiet ones are in the ledger, their offsets committable
        assert [n.alert_ids for n in p.sink.sent] == [(jobs[3].alert.alert_id,)] and p.sink.digests == []
        assert p.progress.committable() == {0: 5}
        assert all(p.ledger.outcome(p.sink.key, j.alert.alert_id) == HELD for j in jobs[:3])
        assert p.ledger.done(p.sink.key, jobs[0].alert.alert_id, "news.alerts/1/99"), "held: done whichever record"
        await until(lambda: p.value("newsradar_alert_sink_digest_held", sink="webhook") == 3, "3 alerts held")
        await t.move(T1 - 0.001)
        await asyncio.sleep(0.05)
        assert p.sink.digests == [], "nothing before the end of the period"
        await t.move(T1 + 0.5)
        await until(lambda: p.sink.digests, "the digest at the end of the period")
        await until(lambda: p.value("newsradar_alert_digests_total", sink="webhook", outcome="ok") == 1,
                    "the digest counted")
        (d,) = p.sink.digests
        assert d.digest_id == digest_id(p.sink.key, T1, 1)
        # held at the same moment: in the order of their ids (the order is fixed when sealed)
        assert sorted(a for n in d.notifications for a in n.alert_ids) == sorted(j.alert.alert_id for j in jobs[:3])
        assert [n.notification_id for n in d.notifications] == sorted(n.notification_id for n in d.notifications)
        assert all(p.ledger.outcome(p.sink.key, j.alert.alert_id) == DELIVERED for j in jobs[:3])
        assert p.value("newsradar_alert_sink_deliveries_total", sink="webhook", outcome="ok") == 4
        assert p.value("newsradar_alert_sink_digest_held", sink="webhook") == 0
        await t.move(T1 + EVERY + 1)
        await asyncio.sleep(0.05)
        assert len(p.sink.digests) == 1, "an empty period sends nothing"
        await p.stop()

    asyncio.run(go())


def test_a_kill_while_held_or_while_the_digest_is_sent_loses_and_repeats_nothing(tmp_path):
    path = tmp_path / "ledger.sqlite"

    async def go():
        t = SteppedTime(T0 + 60)
        jobs = [info_job(n, t.now) for n in (1, 2, 3)]
        # process 1 holds three notifications and is killed before the period ends
        p1 = Process(DigestSink(), path, t)
        await p1.worker.start()
        p1.submit(jobs)
        await until(lambda: p1.progress.pending() == 0, "the three held")
        await p1.stop()
        # process 2 starts after the period ended: the digest holds the three; it is killed
        # while the sink has it (sealed, not acknowledged)
        t.now = T1 + 30
        p2 = Process(DigestSink(hang=True), path, t)
        await p2.worker.start()
        await until(lambda: p2.sink.digests, "process 2 sends the digest")
        await p2.stop()
        # process 3 reads the three alerts again (offsets were committed, but say a replay):
        # they are held already; it sends the same digest again, once, as it was
        t.now = T1 + 2 * EVERY + 30
        p3 = Process(DigestSink(), path, t)
        await p3.worker.start()
        p3.submit([dataclasses.replace(j, source=f"news.alerts/0/{100 + j.offset}") for j in jobs])
        await until(lambda: p3.sink.digests and p3.progress.pending() == 0, "process 3 resends the digest")
        await asyncio.sleep(0.05)
        (again,) = p3.sink.digests
        assert again == p2.sink.digests[0], "the digest in flight at the kill is sent again as it was"
        assert p3.sink.sent == [], "a held alert read again is not sent on its own"
        await p3.stop()
        # process 4 finds everything delivered
        p4 = Process(DigestSink(), path, t)
        await p4.worker.start()
        await asyncio.sleep(0.1)
        assert p4.sink.digests == [] and p4.sink.sent == []
        await p4.stop()
        return again

    d = asyncio.run(go())
    assert sorted(d.alert_ids) == sorted(j.alert.alert_id for j in [info_job(n, 0) for n in (1, 2, 3)])
    assert d.digest_id == digest_id(DigestSink.key, T1, 1), "process 2 sealed the period that ended at T1"


def test_a_digest_that_cannot_be_delivered_dead_letters_every_alert_it_held(tmp_path):
    async def go():
        t = SteppedTime(T0 + 60)
        p = Process(DigestSink(errors=[Permanent("HTTP 410")]), tmp_path / "ledger.sqlite", t)
        await p.worker.start()
        jobs = [info_job(n, t.now) for n in (1, 2)]
        p.submit(jobs)
        await until(lambda: p.progress.pending() == 0, "the two held")
        await t.move(T1 + 1)
        await until(lambda: len(p.letters.sent) == 2, "two dead letters")
        await until(lambda: p.value("newsradar_alert_digests_total", sink="webhook", outcome="failed") == 1,
                    "the failed digest counted")
        assert all(p.ledger.outcome(p.sink.key, j.alert.alert_id) == DEAD_LETTERED for j in jobs)
        assert p.value("newsradar_alert_sink_deliveries_total", sink="webhook", outcome="failed") == 2
        letters = p.letters.sent
        await p.stop()
        return jobs, letters

    jobs, letters = asyncio.run(go())
    assert sorted(d.source for d in letters) == sorted(j.source for j in jobs)
    assert all(d.step == "alerts.webhook" and d.error == "HTTP 410" for d in letters)
    assert sorted(decode_alert(d.original_bytes()).alert_id for d in letters) == sorted(j.alert.alert_id for j in jobs)
    assert {decode_alert(d.original_bytes()) for d in letters} == {j.alert for j in jobs}


def test_a_digest_is_retried_until_the_maximum_age_counted_from_the_end_of_its_period(tmp_path):
    async def go():
        t = SteppedTime(T0 + 60)
        # held 840 s before the period ends: older than the maximum age when the digest is first sent
        p = Process(DigestSink(errors=[Retryable("HTTP 503")] * 100), tmp_path / "ledger.sqlite", t, max_age=600.0)
        await p.worker.start()
        jobs = [info_job(n, t.now) for n in (1, 2)]
        p.submit(jobs)
        await until(lambda: p.progress.pending() == 0, "the two held")
        await t.move(T1 + 1)
        await until(lambda: len(p.sink.digests) == 1, "the first attempt")
        await t.move(T1 + 1000)  # past the backoff, and past the maximum age
        await until(lambda: len(p.letters.sent) == 2, "two dead letters at the maximum age")
        await until(lambda: p.value("newsradar_alert_digests_total", sink="webhook", outcome="expired") == 1,
                    "the expired digest counted")
        assert p.value("newsradar_alert_sink_deliveries_total", sink="webhook", outcome="retried") == 2
        letters = p.letters.sent
        await p.stop()
        return letters

    letters = asyncio.run(go())
    assert all("gave up after 2 attempt(s)" in d.error and "max age 600s" in d.error and "HTTP 503" in d.error
               for d in letters), [d.error for d in letters]


def test_more_than_a_digest_holds_are_parts_of_the_same_period(tmp_path):
    from newsradar.delivery import digest as digest_module

    ledger = Ledger(tmp_path / "l.sqlite")
    for n in range(1, 6):
        ledger.hold("s", build([make_alert(n, severity="info")]), [], at=T0 + n)
    sealed = ledger.seal_digests("s", T1, lambda until, part: digest_id("s", until, part), max_per=2)
    assert sealed == 3 and digest_module.DIGEST_MAX >= 2
    parts = ledger.sealed_digests("s")
    assert [len(d.notifications) for d in parts] == [2, 2, 1]
    assert [d.digest_id.rsplit(":", 1)[1] for d in parts] == ["1", "2", "3"]
    # sealing the same period again (the clock went back) uses no id twice and moves nothing
    ledger.hold("s", build([make_alert(9, severity="info")]), [], at=T0 + 9)
    assert ledger.seal_digests("s", T1, lambda until, part: digest_id("s", until, part), max_per=2) == 0
    assert ledger.held_alerts("s") == 6
    ledger.close()


# ---------------------------------------------------------------------------
# on each channel


def sample_digest() -> Digest:
    notes = [build([make_alert(n, severity="info", why=f"<b>{n}</b> & more")]) for n in range(1, 4)]
    return make_digest(digest_id("k", T1, 1), T0 + 5, T1, notes)


def test_a_digest_on_each_channel():
    d = sample_digest()
    body = json.loads(d.encode())
    assert body["count"] == 3 and body["digest_id"] == d.digest_id and body["until"] == "2026-11-30T01:15:00Z"
    assert [n["notification_id"] for n in body["notifications"]] == [n.notification_id for n in d.notifications]
    slack = slack_digest_text(d)
    assert slack.startswith("*Digest: 3 notifications, 01:00-01:15 UTC*") and slack.count("\n• [INFO] Title") == 3
    shown, error = telegram_text(telegram_digest_html(d))
    assert error is None and shown.count("• [INFO] Title") == 3
    many = make_digest(d.digest_id, T0, T1, [build([make_alert(n, severity="info", why="w" * 50)])
                                             for n in range(1, 300)])
    text = telegram_digest_html(many)
    shown, error = telegram_text(text)
    assert error is None and len(text) <= 4096 and "more" in shown.splitlines()[-2]
    msg = build_digest_message(d, "a@example.org", ["d@example.org"], "[newsradar]", T1)
    assert msg["Subject"] == "[newsradar] Digest: 3 notifications, 01:00-01:15 UTC"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["X-Newsradar-Notification-Id"] == d.digest_id
    # the webhook's body is the digest's JSON (a notification's own body is unchanged)
    assert webhook_body(d.notifications[0]) == d.notifications[0].encode()


@pytest.mark.parametrize("sink, field, words", [
    ("{kind: file, path: a.jsonl, digest: {every: 15m}}", "alerts.sinks[0].digest", "unknown key"),
    ("{kind: alertmanager, url: 'http://am:9093', digest: {every: 15m}}", "alerts.sinks[0].digest", "unknown key"),
    ("{kind: slack, url_env: U, digest: {every: 0s}}", "alerts.sinks[0].digest.every", ">= 1"),
    ("{kind: slack, url_env: U, digest: {every: 15m, max_severity: low}}", "alerts.sinks[0].digest.max_severity",
     "info"),
    ("{kind: slack, url_env: U, digest: {max_severity: info}}", "alerts.sinks[0].digest.every", "missing"),
])
def test_digest_config_errors_name_the_field(tmp_path, sink, field, words):
    path = tmp_path / "w.yaml"
    path.write_text(f"alerts:\n  sinks:\n    - {sink}\n")
    with pytest.raises(ConfigError) as err:
        load_watchlist(path)
    assert (err.value.line, err.value.path) == (3, field) and words in str(err.value), str(err.value)


def test_what_a_sink_held_is_sent_after_its_digest_is_taken_out_of_the_watchlist(tmp_path):
    path = tmp_path / "ledger.sqlite"

    async def go():
        t = SteppedTime(T0 + 60)
        p1 = Process(DigestSink(), path, t)
        await p1.worker.start()
        p1.submit([info_job(n, t.now) for n in (1, 2)])
        await until(lambda: p1.progress.pending() == 0, "the two held")
        await p1.stop()
        sink = DigestSink()
        sink.digest = None  # the restart's watchlist has no digest for the sink
        p2 = Process(sink, path, t)
        await p2.worker.start()
        await until(lambda: sink.digests, "what was held, sent at once")
        await until(lambda: p2.value("newsradar_alert_digests_total", sink="webhook", outcome="ok") == 1, "counted")
        p2.submit([info_job(3, t.now)])
        await until(lambda: sink.sent, "a new quiet notification sent on its own")
        await p2.stop()
        return sink

    sink = asyncio.run(go())
    assert [len(d.notifications) for d in sink.digests] == [2] and len(sink.sent) == 1


def test_a_replayed_alert_of_a_given_up_digest_waits_for_the_next_one(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite")
    n = build([make_alert(1, severity="info")])
    (alert_id,) = n.alert_ids
    ledger.hold("s", n, [], at=T0 + 1)
    ledger.seal_digests("s", T1, lambda until, part: digest_id("s", until, part), max_per=10)
    (first,) = ledger.sealed_digests("s")
    ledger.finish_digest("s", first.digest_id, DEAD_LETTERED, [(alert_id, "news.alerts/0/1")])
    assert ledger.held_alerts("s") == 0 and not ledger.done("s", alert_id, "news.alerts/0/9")
    # `newsradar dlq replay` wrote it again (news.alerts/0/9): held again, in the next period's digest
    ledger.hold("s", n, [], at=T1 + 5)
    assert ledger.held_alerts("s") == 1
    assert ledger.seal_digests("s", T1 + EVERY, lambda until, part: digest_id("s", until, part), max_per=10) == 1
    (second,) = ledger.sealed_digests("s")
    assert second.digest_id != first.digest_id and second.notifications == (n,)
    # a notification held again while its digest is sealed (a kill before the send) stays in that digest
    ledger.hold("s", n, [], at=T1 + EVERY + 5)
    assert [d.digest_id for d in ledger.sealed_digests("s")] == [second.digest_id]
    ledger.close()
