#!/usr/bin/env python3
"""Write the newsradar Grafana dashboards (deploy/grafana/dashboards/*.json).

The dashboards are generated so that every panel has the same shape (datasource, units,
legend) and the PromQL stays readable here, next to the panel it belongs to. The JSON files
are committed; tests/deploy checks that they are what this script writes, that every metric
they name is exported by newsradar/metrics.py or recorded in deploy/prometheus/rules, and
evaluates every expression against a real Prometheus scraping a real connector and pipeline.

Run after editing:  .venv/bin/python deploy/grafana/build_dashboards.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"

# The datasource deploy/grafana/provisioning/datasources/newsradar.yml provisions.
DATASOURCE = {"type": "prometheus", "uid": "newsradar-prometheus"}
RATE = "$__rate_interval"
SCHEMA_VERSION = 39


class Layout:
    """Places panels left to right in rows of 24 grid units."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_height = 0
        self.next_id = 1

    def place(self, w: int, h: int) -> dict:
        if self.x + w > 24:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_height = max(self.row_height, h)
        return pos

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def target(expr: str, legend: str = "", ref: str = "A") -> dict:
    return {"refId": ref, "datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "range": True}


def row(layout: Layout, title: str) -> dict:
    if layout.x:
        layout.x, layout.y, layout.row_height = 0, layout.y + layout.row_height, 0
    panel = {"type": "row", "id": layout.new_id(), "title": title, "collapsed": False, "panels": [],
             "gridPos": layout.place(24, 1)}
    layout.x, layout.y, layout.row_height = 0, layout.y + 1, 0
    return panel


def panel(layout: Layout, title: str, description: str, targets: list[dict], *, unit: str = "short",
          kind: str = "timeseries", w: int = 12, h: int = 8, stack: bool = False) -> dict:
    for i, t in enumerate(targets):
        t["refId"] = chr(ord("A") + i)
    defaults: dict = {"unit": unit}
    options: dict = {"tooltip": {"mode": "multi", "sort": "desc"}}
    if kind == "timeseries":
        defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
                              "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
        options["legend"] = {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"],
                             "showLegend": True}
    elif kind == "stat":
        options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                   "colorMode": "value", "graphMode": "area", "textMode": "auto"}
    elif kind == "bargauge":
        options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                   "displayMode": "gradient", "orientation": "horizontal", "showUnfilled": True}
    return {
        "type": kind,
        "id": layout.new_id(),
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": layout.place(w, h),
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
    }


def variable(name: str, label: str, metric: str, label_name: str) -> dict:
    query = f"label_values({metric}, {label_name})"
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "hide": 0,
        "options": [],
    }


def dashboard(uid: str, title: str, description: str, panels: list[dict], variables: list[dict]) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["newsradar"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "",
        "version": 1,
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["newsradar"], "asDropdown": False, "title": "newsradar"}],
        "panels": panels,
    }


def quantiles(metric: str, selector: str = "") -> list[dict]:
    return [
        target(f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{selector}[{RATE}])))", f"p{p}")
        for q, p in ((0.5, "50"), (0.9, "90"), (0.99, "99"))
    ]


def pipeline_overview() -> dict:
    lay = Layout()
    topic, org = '{topic=~"$topic"}', '{org=~"$org"}'
    panels = [
        row(lay, "Flow"),
        panel(lay, "Articles in", "Valid articles the pipeline read from news.raw, and items the connectors "
              "produced into it, per second.", [
                  target(f"sum(rate(newsradar_articles_total[{RATE}]))", "articles read"),
                  target(f"sum(rate(newsradar_items_produced_total[{RATE}]))", "items produced"),
              ], unit="ops", w=8),
        panel(lay, "Articles per language", "Detected language of the articles read, per second.", [
            target(f"sum by (lang) (rate(newsradar_articles_total[{RATE}]))", "{{lang}}"),
        ], unit="ops", w=8, stack=True),
        panel(lay, "Duplicates dropped", "Articles recognised as repeats (same id, or a near-duplicate copy "
              "of a story already seen), per second.", [
                  target(f"sum by (kind) (rate(newsradar_duplicates_total[{RATE}]))", "{{kind}}"),
              ], unit="ops", w=8),
        row(lay, "What was found"),
        panel(lay, "Tags per topic", "Topic tags assigned, per hour.", [
            target(f"sum by (topic) (rate(newsradar_tags_total{topic}[{RATE}])) * 3600", "{{topic}}"),
        ], unit="short", w=12),
        panel(lay, "Mentions per organization", "Mentions of watched organizations, per hour.", [
            target(f"sum by (org) (rate(newsradar_mentions_total{org}[{RATE}])) * 3600", "{{org}}"),
        ], unit="short", w=12),
        panel(lay, "Alerts by kind", "Alerts raised, per hour.", [
            target(f"sum by (kind) (rate(newsradar_alerts_total[{RATE}])) * 3600", "{{kind}}"),
        ], unit="short", w=12, stack=True),
        panel(lay, "Alerts in the time range", "Alerts raised over the dashboard's time range, by kind; "
              "\"withheld\": alerts a backfill did not raise (a mention older than novelty.max_alert_age "
              "when it arrived).", [
                  target("sum by (kind) (increase(newsradar_alerts_total[$__range]))", "{{kind}}"),
                  target("sum by (kind) (increase(newsradar_alerts_withheld_total[$__range]))", "withheld {{kind}}"),
              ], kind="bargauge", w=6),
        panel(lay, "Mentions in the time range", "Mentions over the dashboard's time range, by organization.", [
            target(f"sort_desc(sum by (org) (increase(newsradar_mentions_total{org}[$__range])))", "{{org}}"),
        ], kind="bargauge", w=6),
        row(lay, "Latency"),
        panel(lay, "Published to alert", "From an article's published_at to the alert it raised: how late "
              "we are compared with the source (includes the source's own publishing delay).",
              quantiles("newsradar_published_to_alert_seconds"), unit="s", w=12),
        panel(lay, "Fetched to alert", "From the moment a connector fetched the article to its alert: our "
              "own processing delay (Kafka, pipeline).",
              quantiles("newsradar_fetched_to_alert_seconds"), unit="s", w=12),
        row(lay, "Operations"),
        panel(lay, "Watchlist and sources reloads", "Reload attempts over the time range: the pipeline's "
              "watchlist and the connectors' sources file. A failed reload leaves the previous version in "
              "force.", [
                  target("sum by (result) (increase(newsradar_watchlist_reloads_total[$__range]))",
                         "watchlist {{result}}"),
                  target("sum by (result) (increase(newsradar_connect_sources_reloads_total[$__range]))",
                         "sources {{result}}"),
              ], kind="stat", w=8),
        panel(lay, "State rebuilt at start", "The last start's rebuild of pipeline state from news.tagged, "
              "news.alerts and news.novelty: how long it took and how many records it read per topic (docs/pipeline.md, "
              "State and restarts). A rebuild that grows with every deploy means the memory or the topics grew.", [
                  target("max(newsradar_state_rebuild_seconds)", "seconds"),
                  target("sum by (topic) (newsradar_state_rebuild_records)", "{{topic}} records"),
              ], kind="stat", w=8),
        panel(lay, "Event times clamped", "Event times more than the allowed clock skew ahead of the "
              "pipeline's clock, moved back, over the time range, by field. Not 0: a producer's clock "
              "(a feed's dates, a connector host, a Kafka producer) is ahead.", [
                  target("sum by (field) (increase(newsradar_event_times_clamped_total[$__range]))", "{{field}}"),
              ], kind="stat", w=8),
        panel(lay, "Processes up", "1 when Prometheus can scrape the process's /metrics.", [
            target('up{job=~"newsradar-.*"}', "{{job}} {{instance}}"),
        ], kind="stat", w=8),
        row(lay, "Alert delivery (newsradar deliver)"),
        panel(lay, "Alert deliveries to sinks", "Deliveries of alerts to the watchlist's sinks (webhook, "
              "Alertmanager, file, Slack, Telegram, e-mail) per hour, by sink and outcome: ok, retried (an attempt failed, tried "
              "again), failed (refused for good) and expired (still failing at --max-age); the last two "
              "go to news.dlq. Also the notifications (the alerts of one story, grouped) per hour.", [
                  target(f"sum by (sink, outcome) (rate(newsradar_alert_sink_deliveries_total[{RATE}])) * 3600",
                         "{{sink}} {{outcome}}"),
                  target(f"sum by (sink, outcome) (rate(newsradar_alert_notifications_total[{RATE}])) * 3600",
                         "{{sink}} notifications {{outcome}}", ref="B"),
              ], unit="short", w=12),
        panel(lay, "Alert to delivered", "From an alert's created_at to the sink acknowledging it, 95th "
              "percentile per sink.", [
                  target(f"histogram_quantile(0.95, sum by (sink, le) "
                         f"(rate(newsradar_alert_delivery_seconds_bucket[{RATE}])))", "{{sink}} p95"),
              ], unit="s", w=12),
        panel(lay, "Undelivered alerts", "Per sink: alerts read from news.alerts and not yet delivered or "
              "dead-lettered, and those of them waiting after a failed attempt.", [
                  target("sum by (sink) (newsradar_alert_sink_pending)", "{{sink}} pending"),
                  target("sum by (sink) (newsradar_alert_sink_retrying)", "{{sink}} retrying", ref="B"),
              ], unit="short", w=12),
        panel(lay, "Oldest undelivered alert", "Per sink: how long the oldest undelivered alert has been on "
              "news.alerts. The alert NewsradarAlertSinkFailing fires above 10 minutes.", [
                  target("max by (sink) (newsradar_alert_sink_oldest_pending_seconds)", "{{sink}}"),
              ], unit="s", w=12),
        panel(lay, "Digests", "Per sink with a digest: the alerts it holds in the ledger for its next digest "
              "(quiet notifications sent together every period), and digest messages per hour by outcome "
              "(ok, failed, expired; the alerts of a failed one go to news.dlq).", [
                  target("sum by (sink) (newsradar_alert_sink_digest_held)", "{{sink}} held"),
                  target(f"sum by (sink, outcome) (rate(newsradar_alert_digests_total[{RATE}])) * 3600",
                         "{{sink}} digests {{outcome}}", ref="B"),
              ], unit="short", w=12),
    ]
    return dashboard(
        "newsradar-pipeline", "newsradar / Pipeline overview",
        "What goes into the pipeline, what it finds, and how late its alerts are.", panels,
        [variable("topic", "Topic", "newsradar_tags_total", "topic"),
         variable("org", "Organization", "newsradar_mentions_total", "org")],
    )


def sources_health() -> dict:
    lay = Layout()
    src = '{source=~"$source"}'
    panels = [
        row(lay, "Freshness"),
        panel(lay, "Time since the last new item", "Per source. The alert NewsradarSourceSilent fires at 4x "
              "the source's usual gap between items (next panel).", [
                  target(f"source:newsradar_seconds_since_last_new_item{src}", "{{source}}"),
              ], unit="s", w=12),
        panel(lay, "Silence relative to the usual gap", "Time since the last new item divided by the source's "
              "usual gap between items (its shortest 7-day mean over the past week). 4 = alert.", [
                  target(f"source:newsradar_seconds_since_last_new_item{src} "
                         f"/ source:newsradar_usual_item_interval_seconds{src}", "{{source}}"),
              ], unit="short", w=12),
        panel(lay, "New items per source", "Items acknowledged by Kafka on news.raw, per hour.", [
            target(f"sum by (source) (rate(newsradar_items_produced_total{src}[{RATE}])) * 3600", "{{source}}"),
        ], unit="short", w=24, stack=True),
        row(lay, "Fetches"),
        panel(lay, "Fetches by outcome", "Fetch attempts per second by outcome, over the selected sources.", [
            target(f"sum by (outcome) (rate(newsradar_fetches_total{src}[{RATE}]))", "{{outcome}}"),
        ], unit="ops", w=12, stack=True),
        panel(lay, "HTTP responses by status class", "Responses per second by status class.", [
            target(f"sum by (status_class) (rate(newsradar_http_responses_total{src}[{RATE}]))",
                   "{{status_class}}"),
        ], unit="ops", w=12, stack=True),
        panel(lay, "Fetch error ratio (1h)", "Share of fetches that failed (timeouts, HTTP errors, refused, "
              "too large, unparseable, network), per source. The alert fires above 0.5 for 30 minutes.", [
                  target(f"source:newsradar_fetch_error_ratio:rate1h{src}", "{{source}}"),
              ], unit="percentunit", w=12),
        panel(lay, "304 ratio (1h)", "Share of fetches answered 304 Not Modified, per source: high is good "
              "(the source supports conditional GET and had nothing new).", [
                  target(f"source:newsradar_not_modified_ratio:rate1h{src}", "{{source}}"),
              ], unit="percentunit", w=12),
        panel(lay, "Errors in a row", "Consecutive failed polls per source (0 when healthy); polling backs "
              "off as it grows.", [
                  target(f"max by (source) (newsradar_source_consecutive_errors{src})", "{{source}}"),
              ], unit="short", w=12),
        panel(lay, "Parse errors and skipped items", "Per source, per hour: feeds, pages or posts that could "
              "not be parsed, and entries inside a good feed that could not become a record.", [
                  target(f"sum by (source) (rate(newsradar_parse_errors_total{src}[{RATE}])) * 3600",
                         "{{source}} unparseable"),
                  target(f"sum by (source) (rate(newsradar_items_skipped_total{src}[{RATE}])) * 3600",
                         "{{source}} skipped"),
              ], unit="short", w=12),
        panel(lay, "Scheduler heartbeat", "Progress intervals the connectors' scheduler completed, per minute "
              "(about 2 when healthy; flat at 0 = the scheduler is stuck).", [
                  target(f"sum by (instance) (rate(newsradar_poll_cycles_total[{RATE}])) * 60", "{{instance}}"),
              ], unit="short", w=24),
        row(lay, "Rate limits and cost"),
        panel(lay, "Rate-limit waits", "Times per hour a source told us to wait (429/503 Retry-After, "
              "Telegram FLOOD_WAIT).", [
                  target(f"sum by (source) (rate(newsradar_rate_limit_waits_total{src}[{RATE}])) * 3600",
                         "{{source}}"),
              ], unit="short", w=12),
        panel(lay, "Time asked to wait", "Seconds of waiting requested per second of wall time, per source.", [
            target(f"sum by (source) (rate(newsradar_rate_limit_wait_seconds_total{src}[{RATE}]))", "{{source}}"),
        ], unit="percentunit", w=12),
        panel(lay, "Fetch duration", "Whole fetch exchange over the selected sources.",
              quantiles("newsradar_fetch_duration_seconds", src), unit="s", w=12),
        panel(lay, "Bytes fetched", "Body bytes per second after decompression, per source.", [
            target(f"sum by (source) (rate(newsradar_fetch_bytes_total{src}[{RATE}]))", "{{source}}"),
        ], unit="Bps", w=12, stack=True),
    ]
    return dashboard(
        "newsradar-sources", "newsradar / Sources health",
        "Per-source freshness, fetch outcomes, conditional GET and rate limits.", panels,
        [variable("source", "Source", "newsradar_fetches_total", "source")],
    )


def kafka() -> dict:
    lay = Layout()
    panels = [
        row(lay, "Consumer lag"),
        panel(lay, "Consumer lag by topic", "Records the pipeline is behind the end of each topic (all "
              "partitions). The alert fires when it is above 100 and growing for 15 minutes.", [
                  target("topic:newsradar_kafka_consumer_lag:sum", "{{topic}}"),
              ], unit="short", w=12),
        panel(lay, "Consumer lag by partition", "Records behind, per topic and partition.", [
            target("sum by (topic, partition) (newsradar_kafka_consumer_lag)", "{{topic}}[{{partition}}]"),
        ], unit="short", w=12),
        panel(lay, "Lag trend", "Change of the lag per second: above 0 means falling behind.", [
            target(f"sum by (topic) (deriv(newsradar_kafka_consumer_lag[{RATE}]))", "{{topic}}"),
        ], unit="short", w=12),
        panel(lay, "In and out of news.raw", "Items the connectors produced into news.raw and valid articles "
              "the pipeline read from it, per second.", [
                  target(f"sum(rate(newsradar_items_produced_total[{RATE}]))", "produced"),
                  target(f"sum(rate(newsradar_articles_total[{RATE}]))", "read"),
              ], unit="ops", w=12),
        row(lay, "Dead letters and produce errors"),
        panel(lay, "Dead letters by step", "Records sent to news.dlq per hour, by the pipeline step that "
              "rejected them.", [
                  target(f"sum by (step) (rate(newsradar_dlq_records_total[{RATE}])) * 3600", "{{step}}"),
              ], unit="short", w=12, stack=True),
        panel(lay, "Dead letters in the time range", "By step. Each record on news.dlq keeps the original "
              "bytes, the error and the step.", [
                  target("sum by (step) (increase(newsradar_dlq_records_total[$__range]))", "{{step}}"),
              ], kind="bargauge", w=12),
        panel(lay, "Produce errors", "Sends to news.raw that Kafka did not acknowledge, per source, per hour.", [
            target(f"sum by (source) (rate(newsradar_produce_errors_total[{RATE}])) * 3600", "{{source}}"),
        ], unit="short", w=24),
    ]
    return dashboard(
        "newsradar-kafka", "newsradar / Kafka",
        "Consumer lag, dead letters and produce errors.", panels, [],
    )


DASHBOARDS = {
    "pipeline-overview.json": pipeline_overview,
    "sources-health.json": sources_health,
    "kafka.json": kafka,
}


def render(build) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    OUT.mkdir(exist_ok=True)
    for name, build in DASHBOARDS.items():
        (OUT / name).write_text(render(build), encoding="utf-8")
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
