"""One notification per story, without Kafka: what a notification holds (the three-organization
article), its id and updates, the grouping window, and the restart of a grouping: the same
alerts read again by a new process after a kill are the same notification, under the same
id, sent once, never regrouped; and records of the previous and the current schema version,
written as docs/design.md documents them, read and grouped alike."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from newsradar.config.watchlist import Route
from newsradar.delivery.grouping import Grouper
from newsradar.delivery.ledger import Ledger
from newsradar.delivery.notification import Notification, build
from newsradar.delivery.service import Deliverer, DeliveryLoop, Settings, SinkWorker
from newsradar.identity import notification_id
from newsradar.metrics import DeliveryMetrics
from newsradar.records import READ_VERSIONS, SCHEMA_VERSION
from tests.conftest import wait_for
from tests.newsradar.delivery.receiver import THREE_ORGS as ORGS
from tests.newsradar.delivery.receiver import make_alert, three_org_article


def test_the_three_organization_article_is_one_notification():
    alerts = three_org_article()
    n = build(alerts)
    assert n.notification_id == notification_id("story-1", 1) and n.update == 1 and n.follows is None
    assert set(n.organizations) == set(ORGS) and n.topics == ("protest",)
    assert n.kinds == ("new_mention", "topic")
    assert n.severity == "critical"  # the highest of the six
    assert len(n.why) == 6 and set(n.why) == {a.why for a in alerts}
    assert set(n.alert_ids) == {a.alert_id for a in alerts}
    # the snippet, title and link of the most severe alert
    assert n.snippet == "… the ovd-info said …" and n.url == "https://example.org/1"


def test_a_notification_does_not_depend_on_the_order_its_alerts_arrived():
    alerts = three_org_article()
    assert build(alerts) == build(list(reversed(alerts))) == build(alerts[3:] + alerts[:3])
    assert Notification.decode(build(alerts).encode()) == build(alerts)


def test_an_update_follows_the_first_and_holds_the_story_so_far():
    first = build([make_alert(1, org="cmw")])
    second = build([make_alert(1, kind="topic", org="cmw", topic="protest", severity="critical")], first)
    third = build([make_alert(1, org="ovd-info")], second)
    assert [x.update for x in (first, second, third)] == [1, 2, 3]
    assert second.notification_id == notification_id("story-1", 2) != first.notification_id
    assert second.follows == third.follows == first.notification_id == third.first_id
    assert third.organizations == ("cmw", "ovd-info") and third.topics == ("protest",)
    assert third.severity == "critical" and len(third.why) == 3 and len(third.alerts) == 1
    assert third.snippet == first.snippet
    follow = third.follow_up()
    assert follow["organizations"] == ["ovd-info"] and follow["topics"] == [] and follow["follows"] == first.first_id


def test_a_notification_is_of_one_story():
    with pytest.raises(ValueError, match="more than one story"):
        build([make_alert(1), make_alert(2)])
    with pytest.raises(ValueError, match="more than one story"):
        build([make_alert(2)], build([make_alert(1)]))


def test_the_window_closes_a_group_after_its_first_alert_whatever_comes_later():
    g: Grouper[str] = Grouper(5.0)
    g.add("s1", "a", now=100.0)
    g.add("s2", "b", now=101.0)
    g.add("s1", "c", now=104.9)
    assert g.next_due() == 105.0 and g.due(104.99) == [] and len(g) == 3
    (closed,) = g.due(105.0)
    assert closed.story_id == "s1" and closed.items == ["a", "c"]
    g.add("s1", "d", now=105.5)  # after the close: a new group, the story's next update
    assert [x.story_id for x in g.due(106.0)] == ["s2"]
    assert [x.items for x in g.flush()] == [["d"]] and g.next_due() is None and len(g) == 0
    with pytest.raises(ValueError):
        Grouper(-1.0)


# ---------------------------------------------------------------------------
# a kill between the grouping and the sink's acknowledgement


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    value: bytes
    timestamp: int


class Sink:
    """Takes notifications, or (``hang``) never answers, as a process killed mid-send."""

    kind = "webhook"
    key = "webhook https://hooks.example.org/x"
    batched = False
    concurrency = 4
    rate_limit = None
    route = Route()

    def __init__(self, hang: bool):
        self.hang = hang
        self.sent: list[Notification] = []

    async def send(self, notifications):
        self.sent.extend(notifications)
        if self.hang:
            await asyncio.Event().wait()

    async def close(self):
        return None


class Letters:
    topic = "news.dlq"

    def send(self, letters):
        raise AssertionError(f"nothing may be dead-lettered: {letters}")


def process(ledger: Ledger, records: list[Rec], hang: bool, window: float = 0.0):
    """One deliver process over ``records`` (its consumer loop's _take and grouping, real
    workers on a real delivery loop); returns its sink and the Deliverer."""
    settings = Settings(bootstrap_servers="unused:9092", group_window=window)
    sink = Sink(hang)
    d = Deliverer(settings, [sink], ledger=ledger, metrics=DeliveryMetrics(CollectorRegistry()), echo=lambda _m: None)
    worker = SinkWorker(sink, ledger, d.progress, Letters(), d.metrics, settings)
    loop = DeliveryLoop([worker])
    loop.start()
    try:
        for rec in records:
            d._take(rec, [worker], loop.loop, Letters())
        d._close_groups(d.grouper.flush(), loop.loop)
        if hang:
            wait_for(lambda: len(sink.sent) >= 1, 10, "the hanging sink to be sent the first notification",
                     interval=0.01)
        else:
            wait_for(lambda: d.progress.pending() == 0, 10, "every notification delivered", interval=0.01)
    finally:
        loop.stop()
    return sink, d


def test_after_a_kill_the_alerts_read_again_are_the_same_notification_sent_once(tmp_path):
    alerts = three_org_article()
    records = [Rec("news.alerts", i % 2, i, a.encode(), int(time.time() * 1000)) for i, a in enumerate(alerts)]
    ledger = Ledger(tmp_path / "ledger.sqlite")
    # process 1 has read four of the six, grouped them into one notification, and is killed
    # while the sink has it
    first, _ = process(ledger, records[:4], hang=True)
    (sent,) = first.sent
    assert set(sent.alert_ids) == {a.alert_id for a in alerts[:4]}
    # process 2 reads every record again, in another order, with the window open: the four
    # rejoin the notification they were grouped into; the two never grouped are the update
    second, d2 = process(ledger, list(reversed(records)), hang=False, window=0.0)
    again = [n for n in second.sent if n.notification_id == sent.notification_id]
    assert again == [sent], "the notification in flight at the kill must be sent again once, as it was"
    (update,) = [n for n in second.sent if n.notification_id != sent.notification_id]
    assert update.update == 2 and update.follows == sent.notification_id
    assert set(update.alert_ids) == {a.alert_id for a in alerts[4:]}
    assert d2.progress.pending() == 0
    # a third process finds every alert delivered and sends nothing
    third, _ = process(ledger, records, hang=False)
    assert third.sent == []


# ---------------------------------------------------------------------------
# record versions: news.alerts records as docs/design.md ("news.alerts: Alert") documents them,
# written out by hand, not by this build's encoder


def documented_alert(version: int, org: str, kind: str = "new_mention", topic: str | None = None) -> bytes:
    record = {
        "v": version, "alert_id": f"{kind}:{topic or org}:0f1e2d3c4b5a69788796", "kind": kind,
        "severity": "critical" if topic else "warning", "article_id": "rss:a7c1e0b5f2d94c3e8a10",
        "story_id": "rss:a7c1e0b5f2d94c3e8a10", "url": "https://example.org/news/protest",
        "title": "Protest in Moscow", "snippet": f"… {org} reported detentions …",
        "why": f"{org} is mentioned in a new story.", "created_at": "2026-12-07T01:10:00.250Z", "org_id": org,
    }
    if topic:
        record["topic_id"] = topic
    return json.dumps(record, ensure_ascii=False).encode()


class Kept:
    topic = "news.dlq"

    def __init__(self):
        self.sent = []

    def send(self, letters):
        self.sent.extend(letters)


def test_deliver_reads_the_previous_and_the_current_record_version(tmp_path):
    # schema version 1 (what the pipeline writes an alert as), 2 (the previous version) and 3
    # (the current one, which a newer writer may use): one story, so one notification
    assert READ_VERSIONS == (1, 2, 3) and SCHEMA_VERSION == 3, \
        "a new schema version: write the records of the previous and the current one here, as documented"
    now = int(time.time() * 1000)
    records = [Rec("news.alerts", 0, 0, documented_alert(1, "cmw"), now),
               Rec("news.alerts", 1, 0, documented_alert(2, "ovd-info", kind="topic", topic="protest"), now),
               Rec("news.alerts", 1, 1, documented_alert(3, "vesna"), now)]
    sink, d = process(Ledger(tmp_path / "ledger.sqlite"), records, hang=False)
    assert d.decode_errors == 0
    (n,) = sink.sent
    assert set(n.alert_ids) == {json.loads(r.value)["alert_id"] for r in records}
    assert n.organizations == ("cmw", "vesna", "ovd-info") and n.topics == ("protest",) and n.severity == "critical"
    assert n.story_id == "rss:a7c1e0b5f2d94c3e8a10" and n.title == "Protest in Moscow"
    assert d.progress.pending() == 0 and d.progress.committable() == {0: 1, 1: 2}


def test_a_record_of_a_version_deliver_does_not_read_is_a_dead_letter_with_the_reason(tmp_path):
    settings = Settings(bootstrap_servers="unused:9092")
    sink, letters = Sink(hang=False), Kept()
    d = Deliverer(settings, [sink], ledger=Ledger(tmp_path / "l.sqlite"), metrics=DeliveryMetrics(CollectorRegistry()),
                  echo=lambda _m: None)
    worker = SinkWorker(sink, d.ledger, d.progress, letters, d.metrics, settings)
    loop = DeliveryLoop([worker])
    loop.start()
    try:
        d._take(Rec("news.alerts", 0, 7, documented_alert(4, "cmw"), int(time.time() * 1000)), [worker], loop.loop,
                letters)
    finally:
        loop.stop()
    (letter,) = letters.sent
    assert letter.step == "alerts.decode" and letter.source == "news.alerts/0/7"
    assert "unsupported schema version 4" in letter.error and d.decode_errors == 1
    assert d.progress.committable() == {0: 8} and sink.sent == []
