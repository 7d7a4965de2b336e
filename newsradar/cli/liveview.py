"""The live terminal view of `newsradar up`: throughput, tags, mentions and the latest alerts.

Counts come from the parts' own ``/metrics`` endpoints (the same numbers Prometheus sees);
alerts come from the ``news.alerts`` topic. On a terminal the view redraws in place (rich);
otherwise (a log file, a test) every new alert is printed once as a plain line.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from newsradar.records import TOPIC_ALERTS, RecordError, decode_alert


def scrape(url: str, timeout: float = 2.0) -> dict[str, float]:
    """Sum every sample of every metric at a /metrics URL by name (labels folded)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback URL we built
            text = resp.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError):
        return {}
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


class AlertFeed:
    """Reads news.alerts without a consumer group, from shortly before the end."""

    def __init__(self, bootstrap: str, backlog: int = 20,
                 on_bad: Callable[[int, int, str], None] | None = None):
        """``on_bad(partition, offset, error)`` hears of every record that is not an alert."""
        from kafka import TopicPartition

        from newsradar.kafka import make_consumer

        self._consumer = make_consumer(bootstrap, enable_auto_commit=False, client_id="newsradar-up-view")
        parts = [TopicPartition(TOPIC_ALERTS, p) for p in sorted(self._consumer.partitions_for_topic(TOPIC_ALERTS) or ())]
        self._consumer.assign(parts)
        ends = self._consumer.end_offsets(parts)
        begins = self._consumer.beginning_offsets(parts)
        for tp in parts:
            self._consumer.seek(tp, max(begins[tp], ends[tp] - backlog))
        self._ends = ends
        self._on_bad = on_bad
        self.bad = 0

    def caught_up(self) -> bool:
        """True once every partition was read up to where it ended when the feed opened."""
        return all(self._consumer.position(tp) >= end for tp, end in self._ends.items())

    def poll(self, timeout_ms: int = 0) -> list:
        out = []
        for records in self._consumer.poll(timeout_ms=timeout_ms, max_records=500).values():
            for rec in records:
                try:
                    out.append(decode_alert(rec.value))
                except RecordError as exc:
                    self.bad += 1  # shown in the view; the pipeline owns the DLQ, not the viewer
                    if self._on_bad is not None:
                        self._on_bad(rec.partition, rec.offset, str(exc))
        out.sort(key=lambda a: a.created_at)
        return out

    def close(self) -> None:
        self._consumer.close()


class LiveView:
    def __init__(self, bootstrap: str, metrics_urls: dict[str, str], say: Callable[[str], None] = print, live: bool = True):
        self.bootstrap = bootstrap
        self.metrics_urls = metrics_urls
        self.say = say
        self.live_requested = live
        self.alerts: deque = deque(maxlen=8)
        self.totals: dict[str, float] = {}
        self._last = (time.monotonic(), 0.0)
        self.rate = 0.0
        self._feed: AlertFeed | None = None
        self._live = None
        self._last_status = 0.0
        self.status_every = 15.0

    def __enter__(self):
        self._feed = AlertFeed(self.bootstrap)
        if self.live_requested:
            import sys

            if sys.stdout.isatty():
                from rich.live import Live

                self._live = Live(self._render(), refresh_per_second=2, transient=False)
                self._live.__enter__()
        return self

    def __exit__(self, *exc):
        if self._live is not None:
            self._live.__exit__(*exc)
        if self._feed is not None:
            self._feed.close()
        return False

    def refresh(self) -> None:
        totals: dict[str, float] = {}
        for url in self.metrics_urls.values():
            for name, value in scrape(url).items():
                totals[name] = totals.get(name, 0.0) + value
        self.totals = totals
        now = time.monotonic()
        articles = totals.get("newsradar_articles_total", 0.0)
        then, before = self._last
        if now > then:
            self.rate = max(0.0, (articles - before) / (now - then))
        self._last = (now, articles)
        new = self._feed.poll() if self._feed else []
        for alert in new:
            self.alerts.appendleft(alert)
            if self._live is None:
                subject = alert.org_id or alert.topic_id
                self.say(f"ALERT {alert.kind} [{alert.severity}] {subject}: {alert.why}  ({alert.url})")
        if self._live is not None:
            self._live.update(self._render())
        elif now - self._last_status >= self.status_every:
            self._last_status = now
            self.say(self.status_line())

    def status_line(self) -> str:
        t = self.totals
        return (
            f"status: items fetched {t.get('newsradar_items_produced_total', 0):.0f}, "
            f"articles {t.get('newsradar_articles_total', 0):.0f} ({self.rate:.1f}/s), "
            f"tags {t.get('newsradar_tags_total', 0):.0f}, mentions {t.get('newsradar_mentions_total', 0):.0f}, "
            f"alerts {t.get('newsradar_alerts_total', 0):.0f}, dead letters {t.get('newsradar_dlq_records_total', 0):.0f}"
        )

    def _render(self):
        from rich.console import Group
        from rich.table import Table

        t = self.totals
        stats = Table(title="newsradar", show_header=False, expand=False)
        stats.add_column(style="bold")
        stats.add_column(justify="right")
        stats.add_row("articles/s", f"{self.rate:.1f}")
        for label, name in (
            ("items fetched", "newsradar_items_produced_total"),
            ("articles", "newsradar_articles_total"),
            ("duplicates", "newsradar_duplicates_total"),
            ("tags", "newsradar_tags_total"),
            ("mentions", "newsradar_mentions_total"),
            ("alerts", "newsradar_alerts_total"),
            ("dead letters", "newsradar_dlq_records_total"),
        ):
            stats.add_row(label, f"{t.get(name, 0):.0f}")
        alerts = Table(title="latest alerts", expand=True)
        alerts.add_column("kind")
        alerts.add_column("subject")
        alerts.add_column("why", overflow="fold")
        for a in self.alerts:
            alerts.add_row(a.kind, a.org_id or a.topic_id or "", a.why)
        return Group(stats, alerts)


def tail_alerts(bootstrap: str, follow: bool, say: Callable[[str], None] = print, backlog: int = 50,
                warn: Callable[[str], None] | None = None) -> int:
    """Print alerts from news.alerts as JSON lines (the `newsradar alerts tail` command); a
    record that is not an alert is one ``warn`` line naming it (``partition:offset``, as
    `newsradar dlq` names records), never skipped silently."""
    def bad(partition: int, offset: int, error: str) -> None:
        (warn or say)(f"newsradar: {TOPIC_ALERTS} {partition}:{offset}: not an alert, skipped: {error}")

    feed = AlertFeed(bootstrap, backlog=backlog, on_bad=bad)
    count = 0
    try:
        while follow or not feed.caught_up():
            for alert in feed.poll(timeout_ms=500):
                say(json.dumps(alert.to_dict(), ensure_ascii=False))
                count += 1
        return count
    except KeyboardInterrupt:
        return count
    finally:
        feed.close()
