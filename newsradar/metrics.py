"""The catalog of Prometheus metrics every newsradar process exports.

One place names every metric, so code, recording/alerting rules and dashboards agree
(a test checks that every name used in ``deploy/`` is defined here). Label values are
bounded: source ids from sources.yaml, topic and organization ids from the watchlist, and
the enums below. Never a URL or free text.

Metrics objects take the registry as an argument (tests pass a fresh
``CollectorRegistry``); long-running processes use the default registry and serve it with
:func:`serve`, bound to 127.0.0.1 unless configured otherwise.
"""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from newsradar import vocab

PREFIX = "newsradar_"

# Enums for labels (bounded by construction).
FETCH_OUTCOMES = (
    "ok",            # 2xx with a parsed feed/page
    "not_modified",  # 304, content verified unchanged
    "lying_304",     # 304 whose content had in fact changed (flagged, re-fetched in full)
    "rate_limited",  # 429/503 with or without Retry-After
    "http_error",    # other 4xx/5xx
    "timeout",       # total deadline exceeded
    "refused",       # internal address, too many redirects, bad scheme
    "too_large",     # body cap exceeded after decompression
    "parse_error",   # not a feed / malformed page / entity declarations
    "network_error",  # DNS, connection reset, TLS
    "internal_error",  # a bug in a poller (logged with its traceback); the source backs off
    "unavailable",   # the source kind cannot run in this build (e.g. its module is missing)
)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
ALERT_KINDS = vocab.ALERT_KINDS
DUPLICATE_KINDS = ("same_id", "near_duplicate")
LANGS = vocab.DETECTED_LANGUAGES
WATCHLIST_RELOAD_RESULTS = ("ok", "failed")

# Latency buckets from seconds to a day: news is minutes old when it matters.
LATENCY_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30)


SOURCES_RELOAD_RESULTS = ("ok", "failed")


class ConnectorMetrics:
    """What `newsradar connect` exports (per source)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY):
        self.fetches = Counter(
            "newsradar_fetches", "Fetch attempts by source and outcome.", ["source", "outcome"], registry=registry
        )
        self.http_responses = Counter(
            "newsradar_http_responses", "HTTP responses by source and status class.", ["source", "status_class"],
            registry=registry,
        )
        self.items_produced = Counter(
            "newsradar_items_produced", "Items acknowledged by Kafka on news.raw.", ["source"], registry=registry
        )
        self.fetch_bytes = Counter(
            "newsradar_fetch_bytes", "Body bytes received after decompression.", ["source"], registry=registry
        )
        self.fetch_duration = Histogram(
            "newsradar_fetch_duration_seconds", "Whole fetch exchange, first byte sent to last byte read.",
            ["source"], buckets=DURATION_BUCKETS, registry=registry,
        )
        self.last_new_item = Gauge(
            "newsradar_source_last_new_item_timestamp_seconds",
            "Unix time of the last new item from the source (seconds since = time() - this).",
            ["source"], registry=registry,
        )
        self.produce_errors = Counter(
            "newsradar_produce_errors", "Sends Kafka did not acknowledge.", ["source"], registry=registry
        )
        self.parse_errors = Counter(
            "newsradar_parse_errors", "Feeds, pages or posts that could not be parsed.", ["source"], registry=registry
        )
        self.rate_limit_waits = Counter(
            "newsradar_rate_limit_waits", "Times a source told us to wait (429/503/FLOOD_WAIT).", ["source"],
            registry=registry,
        )
        self.rate_limit_wait_seconds = Counter(
            "newsradar_rate_limit_wait_seconds", "Seconds we were asked to wait.", ["source"], registry=registry
        )
        self.consecutive_errors = Gauge(
            "newsradar_source_consecutive_errors", "Errors in a row for the source (0 when healthy).", ["source"],
            registry=registry,
        )
        self.poll_cycles = Counter(
            "newsradar_poll_cycles", "Scheduler progress intervals completed (one per progress log line).",
            registry=registry,
        )
        self.items_skipped = Counter(
            "newsradar_items_skipped", "Entries or messages that could not become records (counted, not fatal).",
            ["source"], registry=registry,
        )
        # `connect --reload-every`: a refused sources file leaves the running version in force.
        self.sources_reloads = Counter(
            "newsradar_connect_sources_reloads", "Sources file reloads while running, by result (ok|failed).",
            ["result"], registry=registry,
        )
        for result in SOURCES_RELOAD_RESULTS:
            self.sources_reloads.labels(result=result)

    def init_source(self, source: str) -> None:
        """Create the source's series at zero (call once per configured source at start).

        Without this a series appears only when its first event happens, so a source that
        never answered 304 or was never rate limited has no series to take a ratio or a rate
        of, and dashboards and alert rules see "no data" instead of 0. The last-new-item
        timestamp is left unset: there is no honest value until an item arrives (or the
        connector restores it from its state).
        """
        for outcome in FETCH_OUTCOMES:
            self.fetches.labels(source=source, outcome=outcome)
        for status_class in STATUS_CLASSES:
            self.http_responses.labels(source=source, status_class=status_class)
        for metric in (self.items_produced, self.fetch_bytes, self.fetch_duration, self.produce_errors,
                       self.parse_errors, self.rate_limit_waits, self.rate_limit_wait_seconds,
                       self.consecutive_errors, self.items_skipped):
            metric.labels(source=source)


# The event times the pipeline clamps: the reader's Kafka timestamps, and parse's record times.
CLAMPED_FIELDS = ("kafka_timestamp", "published_at", "fetched_at", "edited_at")


class PipelineMetrics:
    """What the streaming pipeline's workers export."""

    def __init__(self, registry: CollectorRegistry = REGISTRY):
        self.articles = Counter(
            "newsradar_articles", "Valid articles read from news.raw, by detected language.", ["lang"], registry=registry
        )
        self.dlq = Counter("newsradar_dlq_records", "Records sent to news.dlq, by step.", ["step"], registry=registry)
        self.duplicates = Counter(
            "newsradar_duplicates", "Articles recognised as repeats, by kind.", ["kind"], registry=registry
        )
        self.tags = Counter("newsradar_tags", "Topic tags assigned, by topic.", ["topic"], registry=registry)
        self.mentions = Counter(
            "newsradar_mentions", "Watched-organization mentions, by organization.", ["org"], registry=registry
        )
        self.alerts = Counter("newsradar_alerts", "Alerts raised, by kind.", ["kind"], registry=registry)
        self.alerts_withheld = Counter(
            "newsradar_alerts_withheld",
            "Alerts not raised because their event was older than novelty.max_alert_age when it arrived "
            "(a backfill), by kind.", ["kind"], registry=registry,
        )
        self.published_to_alert = Histogram(
            "newsradar_published_to_alert_seconds", "From an article's published_at to its alert.",
            buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.fetched_to_alert = Histogram(
            "newsradar_fetched_to_alert_seconds", "From an article's fetched_at to its alert.",
            buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.consumer_lag = Gauge(
            "newsradar_kafka_consumer_lag", "Records behind the end of the partition.", ["topic", "partition"],
            registry=registry,
        )
        self.watchlist_reloads = Counter(
            "newsradar_watchlist_reloads", "Watchlist reload attempts, by result (ok|failed).", ["result"],
            registry=registry,
        )
        self.clamped_times = Counter(
            "newsradar_event_times_clamped",
            "Event times later than now plus the allowed clock skew, moved back, by field.", ["field"],
            registry=registry,
        )
        self.rebuild_seconds = Gauge(
            "newsradar_state_rebuild_seconds",
            "How long the state rebuild from news.tagged, news.alerts and news.novelty took at the last start.",
            registry=registry,
        )
        self.rebuild_records = Gauge(
            "newsradar_state_rebuild_records",
            "Records folded into the state at the last start, by topic.", ["topic"], registry=registry,
        )
        # Series for every enum value exist from the start at 0, so "no alerts of this kind"
        # is a 0 on the dashboards and rules, not a missing series.
        for lang in LANGS:
            self.articles.labels(lang=lang)
        for kind in ALERT_KINDS:
            self.alerts.labels(kind=kind)
            self.alerts_withheld.labels(kind=kind)
        for kind in DUPLICATE_KINDS:
            self.duplicates.labels(kind=kind)
        for result in WATCHLIST_RELOAD_RESULTS:
            self.watchlist_reloads.labels(result=result)
        for name in CLAMPED_FIELDS:
            self.clamped_times.labels(field=name)
        for name in ("news.tagged", "news.alerts", "news.novelty"):
            self.rebuild_records.labels(topic=name)


SINK_KINDS = ("webhook", "alertmanager", "file", "slack", "telegram", "email")
# ok: delivered; retried: an attempt failed and the alert waits for the next; failed: refused
# for good (a 4xx), to news.dlq; expired: still failing at the maximum age, to news.dlq.
SINK_OUTCOMES = ("ok", "retried", "failed", "expired")
# Alert to delivered: seconds when all is well, up to the maximum age when a sink was down.
DELIVERY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 21600)


class DeliveryMetrics:
    """What `newsradar deliver` exports (per sink kind)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY):
        self.sink_deliveries = Counter(
            "newsradar_alert_sink_deliveries", "Alert deliveries to sinks, by sink kind and outcome.",
            ["sink", "outcome"], registry=registry,
        )
        self.notifications = Counter(
            "newsradar_alert_notifications", "Notifications (the alerts of one story, grouped) sent to sinks, "
            "by sink kind and outcome.", ["sink", "outcome"], registry=registry,
        )
        self.delivery_latency = Histogram(
            "newsradar_alert_delivery_seconds", "From an alert's created_at to the sink acknowledging it.",
            ["sink"], buckets=DELIVERY_BUCKETS, registry=registry,
        )
        self.pending = Gauge(
            "newsradar_alert_sink_pending", "Alerts read from news.alerts that the sink has not finished.",
            ["sink"], registry=registry,
        )
        self.retrying = Gauge(
            "newsradar_alert_sink_retrying", "Alerts whose last attempt failed, waiting to be tried again.",
            ["sink"], registry=registry,
        )
        self.oldest_pending = Gauge(
            "newsradar_alert_sink_oldest_pending_seconds",
            "Age of the oldest alert the sink has not finished (0 when none), since it was written to news.alerts.",
            ["sink"], registry=registry,
        )
        self.digests = Counter(
            "newsradar_alert_digests", "Digest messages (a sink's held low-severity notifications, sent together) "
            "by sink kind and outcome.", ["sink", "outcome"], registry=registry,
        )
        self.digest_held = Gauge(
            "newsradar_alert_sink_digest_held",
            "Alerts the sink holds in the ledger for its next digest (their offsets are committed).",
            ["sink"], registry=registry,
        )
        for sink in SINK_KINDS:
            for outcome in SINK_OUTCOMES:
                self.sink_deliveries.labels(sink=sink, outcome=outcome)
                if outcome != "retried":
                    self.notifications.labels(sink=sink, outcome=outcome)
                    self.digests.labels(sink=sink, outcome=outcome)
            for metric in (self.delivery_latency, self.pending, self.retrying, self.oldest_pending, self.digest_held):
                metric.labels(sink=sink)


_lock = threading.Lock()
_pipeline_metrics: PipelineMetrics | None = None


def pipeline_metrics() -> PipelineMetrics:
    """The process-wide PipelineMetrics on the default registry (Beam workers share it)."""
    global _pipeline_metrics
    with _lock:
        if _pipeline_metrics is None:
            _pipeline_metrics = PipelineMetrics(REGISTRY)
        return _pipeline_metrics


def serve(port: int, host: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY) -> int:
    """Serve ``/metrics`` on host:port (127.0.0.1 by default); returns the bound port."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server.server_port
