"""One sink's worker without Kafka: retries with backoff until delivered or the maximum age,
then a dead letter with the reason; the ledger written after the sink took a notification,
the progress that says what may be committed, the metrics, and the ledger's own rules."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from prometheus_client import CollectorRegistry

from newsradar.config.watchlist import Route, WebhookSink
from newsradar.delivery.ledger import DEAD_LETTERED, DELIVERED, Ledger
from newsradar.delivery.notification import build
from newsradar.delivery.progress import Progress
from newsradar.delivery.service import Job, Rebalances, Settings, SinkWorker, backoff_delay
from newsradar.delivery.sinks import Permanent, Retryable, Webhook
from newsradar.metrics import DeliveryMetrics
from newsradar.records import decode_alert
from tests.newsradar.delivery.receiver import SECRET, SECRET_ENV, Receiver, make_alert


class FakeTime:
    """A clock that the worker's sleep advances: retries without waiting."""

    def __init__(self, now: float):
        self.now = now
        self.sleeps: list[float] = []

    def clock(self):
        return self.now

    async def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class Letters:
    topic = "news.dlq"

    def __init__(self):
        self.sent = []

    def send(self, letters):
        self.sent.extend(letters)


class ScriptedSink:
    """Raises the planned errors, then takes everything."""

    kind = "webhook"
    key = "webhook https://hooks.example.org/x"
    batched = False
    concurrency = 2
    rate_limit = None
    route = Route()

    def __init__(self, errors=()):
        self.errors = list(errors)
        self.sent: list[str] = []

    async def send(self, notifications):
        if self.errors:
            raise self.errors.pop(0)
        self.sent.extend(a for n in notifications for a in n.alert_ids)

    async def close(self):
        return None


def job(n: int, written: float, partition: int = 0) -> Job:
    alert = make_alert(n)
    return Job(alert, alert.encode(), partition, n, written, f"news.alerts/{partition}/{n}")


def run_worker(sink, jobs, fake: FakeTime, tmp_path, max_age=3600.0):
    registry = CollectorRegistry()
    metrics = DeliveryMetrics(registry)
    ledger, progress, letters = Ledger(tmp_path / "ledger.sqlite"), Progress(), Letters()
    settings = Settings(bootstrap_servers="unused:9092", max_age=max_age)
    worker = SinkWorker(sink, ledger, progress, letters, metrics, settings, clock=fake.clock, sleep=fake.sleep,
                        jitter=False)

    async def go():
        await worker.start()
        loop = asyncio.get_running_loop()
        for j in jobs:
            j = dataclasses.replace(j, token=progress.add(j.partition, j.offset, 1))
            worker.submit(loop, build([j.alert]), [j])
        # bounded by wall time: the sinks of some tests talk to real servers on 127.0.0.1
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if progress.pending() == 0 or worker.error:
                break
            await asyncio.sleep(0.001)
        await worker.close()

    asyncio.run(go())
    assert worker.error is None, worker.error
    assert progress.pending() == 0, "the worker never finished its alerts"
    return ledger, progress, letters, registry


def value(registry, name, **labels):
    return registry.get_sample_value(name, labels) or 0.0


def test_backoff_doubles_from_the_base_honours_retry_after_and_is_capped():
    assert [backoff_delay(a, None, 0.5, 60, jitter=False) for a in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_delay(20, None, 0.5, 60, jitter=False) == 60
    assert backoff_delay(1, 7.0, 0.5, 60, jitter=False) == 7.0
    assert backoff_delay(1, 3600.0, 0.5, 60, jitter=False) == 60
    assert 0.4 <= backoff_delay(1, None, 0.5, 60) <= 0.6


def test_retried_with_backoff_until_delivered_then_in_the_ledger(tmp_path):
    fake = FakeTime(time.time())
    sink = ScriptedSink([Retryable("HTTP 503"), Retryable("HTTP 429", retry_after=5.0), Retryable("timeout")])
    j = job(1, fake.now)
    ledger, progress, letters, registry = run_worker(sink, [j], fake, tmp_path)
    assert sink.sent == [j.alert.alert_id]
    assert fake.sleeps == [0.5, 5.0, 2.0]
    assert letters.sent == []
    assert ledger.outcome(sink.key, j.alert.alert_id) == DELIVERED
    assert ledger.done(sink.key, j.alert.alert_id, "news.alerts/1/99")  # whichever record brings it again
    assert progress.committable() == {0: 2}
    assert value(registry, "newsradar_alert_sink_deliveries_total", sink="webhook", outcome="retried") == 3
    assert value(registry, "newsradar_alert_sink_deliveries_total", sink="webhook", outcome="ok") == 1
    assert value(registry, "newsradar_alert_sink_pending", sink="webhook") == 0
    assert value(registry, "newsradar_alert_sink_retrying", sink="webhook") == 0
    assert value(registry, "newsradar_alert_delivery_seconds_count", sink="webhook") == 1


def test_still_failing_at_the_maximum_age_is_a_dead_letter_with_the_reason(tmp_path):
    fake = FakeTime(time.time())
    sink = ScriptedSink([Retryable("HTTP 503")] * 1000)
    j = job(1, fake.now)
    ledger, _progress, letters, registry = run_worker(sink, [j], fake, tmp_path, max_age=120.0)
    assert sink.sent == []
    assert sum(fake.sleeps) <= 120.0 and len(fake.sleeps) >= 5
    (letter,) = letters.sent
    assert letter.step == "alerts.webhook" and letter.source == "news.alerts/0/1"
    assert "gave up after" in letter.error and "max age 120s" in letter.error and "HTTP 503" in letter.error
    assert decode_alert(letter.original_bytes()) == j.alert
    assert ledger.outcome(sink.key, j.alert.alert_id) == DEAD_LETTERED
    # the same record is not dead-lettered twice; a replayed copy (another record) is tried again
    assert ledger.done(sink.key, j.alert.alert_id, j.source)
    assert not ledger.done(sink.key, j.alert.alert_id, "news.alerts/0/500")
    assert value(registry, "newsradar_alert_sink_deliveries_total", sink="webhook", outcome="expired") == 1


def test_age_counts_from_when_the_record_was_written_not_from_created_at(tmp_path):
    # a replayed dead letter keeps its old created_at but is a new record: it gets a full max age
    fake = FakeTime(time.time() + 10 * 86400)
    sink = ScriptedSink([Retryable("HTTP 503")] * 3)
    ledger, _p, letters, _r = run_worker(sink, [job(1, fake.now)], fake, tmp_path, max_age=60.0)
    assert letters.sent == [] and len(sink.sent) == 1


def test_a_permanent_failure_is_a_dead_letter_at_once(tmp_path):
    fake = FakeTime(time.time())
    sink = ScriptedSink([Permanent("HTTP 400")])
    _ledger, _p, letters, registry = run_worker(sink, [job(1, fake.now)], fake, tmp_path)
    assert fake.sleeps == [] and [d.error for d in letters.sent] == ["HTTP 400"]
    assert value(registry, "newsradar_alert_sink_deliveries_total", sink="webhook", outcome="failed") == 1


def test_a_signed_webhook_through_the_worker_reaches_the_receiver_once_per_id(tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    fake = FakeTime(time.time())
    with Receiver(statuses=[500, 503]) as rx:
        sink = Webhook(WebhookSink(kind="webhook", url=rx.url, secret_env=SECRET_ENV, allow_private_networks=True))
        jobs = [job(1, fake.now), job(2, fake.now)]
        ledger, progress, letters, _r = run_worker(sink, jobs, fake, tmp_path)
    assert all(valid for _, valid in rx.attempts) and len(rx.attempts) == 4
    assert set(rx.alerts) == {j.alert.alert_id for j in jobs} and letters.sent == []
    assert progress.committable() == {0: 3}


def test_progress_commits_only_the_finished_prefix():
    p = Progress()
    t = {offset: p.add(0, offset, 2) for offset in (5, 6, 7, 9)}
    p.add(1, 3, 0)  # nothing to do for it
    assert p.committable() == {0: 5, 1: 4}
    p.committed({0: 5, 1: 4})
    p.finish(0, 6, t[6])
    p.finish(0, 6, t[6])
    assert p.committable() == {}  # 5 is still open
    p.finish(0, 5, t[5])
    assert p.committable() == {}  # one of two sinks
    p.finish(0, 5, t[5])
    assert p.committable() == {0: 7}
    for offset in (7, 7, 9, 9):
        p.finish(0, offset, t[offset])
    assert p.committable() == {0: 10} and p.pending() == 0
    late = p.add(0, 11, 1)
    p.forget([0])
    p.finish(0, 11, late)  # a late finish of a partition given away is ignored
    assert p.committable() == {}


def test_a_record_read_again_is_finished_only_by_its_new_read():
    """The fault run found it: a record read again (here after a rebalance) while its first
    read's deliveries are in flight; a sink finishing what it took from the first read must
    not count for another sink of the new read (the commit passed an alert the webhook never
    had, and the next kill lost it)."""
    for rebalance in (True, False):
        p = Progress()
        first = p.add(0, 5, 2)  # two sinks
        p.add(0, 6, 0)
        if rebalance:
            p.forget([0])
        again = p.add(0, 5, 2)
        assert again != first
        p.finish(0, 5, first)  # the file sink's delivery from the first read ends
        p.finish(0, 5, again)  # the file sink on the new read (the ledger says it is done)
        assert p.committable() == {0: 5}, "the webhook has not finished: the commit must not pass the record"
        p.finish(0, 5, again)
        assert p.committable() == {0: 7 if not rebalance else 6}
        assert p.read_again == (0 if rebalance else 1)


def test_a_record_read_again_below_open_ones_holds_the_commit_point():
    p = Progress()
    t = {o: p.add(0, o, 1) for o in (10, 11, 12)}
    p.finish(0, 10, t[10])
    p.add(0, 10, 1)  # read again (a position reset), after 11 and 12
    assert p.committable() == {0: 10}


def test_a_partition_assigned_back_after_a_rebalance_keeps_what_is_in_flight():
    """The 1,000-alert fault run found it: kafka-python keeps the fetch position of a partition
    a rebalance gives back, so nothing is read again; forgetting its records in flight let the
    commit pass them, and the next kill lost 122 alerts to the webhook."""
    p = Progress()
    t = {o: p.add(0, o, 1) for o in (5, 6)}
    p.add(1, 3, 1)
    said = []
    r = Rebalances(p, said.append)
    r.revoked([0, 1])
    r.assigned([0])
    p.add(0, 7, 0)  # reading goes on from the kept position
    assert p.committable() == {0: 5}, "records 5 and 6 are in flight: the commit must not pass them"
    p.finish(0, 5, t[5])
    p.finish(0, 6, t[6])
    assert p.committable() == {0: 8}
    assert 1 not in p.committable() and "[1] went to another member" in said[-1]
    # what the revocation used to do (forget partition 0 too): the commit passes 5 and 6
    old = Progress()
    old.add(0, 5, 1)
    old.forget([0])
    old.add(0, 7, 0)
    assert old.committable() == {0: 8}


def test_ledger_survives_a_reopen_and_prunes_old_rows(tmp_path):
    path = tmp_path / "l.sqlite"
    ledger = Ledger(path, ttl=100.0)
    ledger.record("s", DELIVERED, [("a1", "t/0/1"), ("a2", "t/0/2")], at=1000.0)
    ledger.record("s", DEAD_LETTERED, [("a3", "t/0/3")], at=1050.0)
    ledger.close()
    again = Ledger(path, ttl=100.0)
    assert again.done("s", "a1", "t/0/77") and not again.done("other", "a1", "t/0/1")
    assert again.done("s", "a3", "t/0/3") and not again.done("s", "a3", "t/1/3")
    assert again.prune(now=1120.0) == 2
    assert not again.done("s", "a1", "t/0/1") and again.done("s", "a3", "t/0/3")
    again.close()


@pytest.mark.parametrize("rate", [10.0])
def test_rate_limit_spaces_the_requests(tmp_path, rate):
    fake = FakeTime(time.time())
    sink = ScriptedSink()
    sink.rate_limit = rate
    sink.concurrency = 1
    run_worker(sink, [job(n, fake.now) for n in range(1, 6)], fake, tmp_path)
    assert len(sink.sent) == 5
    assert sum(fake.sleeps) == pytest.approx(4 / rate)
