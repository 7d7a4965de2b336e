from prometheus_client import CollectorRegistry

from newsradar.metrics import ConnectorMetrics, PipelineMetrics


def test_metric_names_carry_the_prefix_and_read_back():
    reg = CollectorRegistry()
    cm = ConnectorMetrics(reg)
    pm = PipelineMetrics(reg)
    cm.fetches.labels(source="feed-a", outcome="ok").inc()
    pm.alerts.labels(kind="surge").inc(2)
    assert reg.get_sample_value("newsradar_fetches_total", {"source": "feed-a", "outcome": "ok"}) == 1
    assert reg.get_sample_value("newsradar_alerts_total", {"kind": "surge"}) == 2
    names = {m.name for m in reg.collect()}
    assert names and all(n.startswith("newsradar_") for n in names)


def test_enum_labelled_pipeline_series_exist_at_zero_from_the_start():
    from newsradar.metrics import ALERT_KINDS, LANGS

    reg = CollectorRegistry()
    PipelineMetrics(reg)
    for kind in ALERT_KINDS:
        assert reg.get_sample_value("newsradar_alerts_total", {"kind": kind}) == 0
        assert reg.get_sample_value("newsradar_alerts_withheld_total", {"kind": kind}) == 0
    for lang in LANGS:
        assert reg.get_sample_value("newsradar_articles_total", {"lang": lang}) == 0
    assert reg.get_sample_value("newsradar_watchlist_reloads_total", {"result": "failed"}) == 0


def test_init_source_creates_every_per_source_series_at_zero_but_no_timestamp():
    from newsradar.metrics import FETCH_OUTCOMES

    reg = CollectorRegistry()
    cm = ConnectorMetrics(reg)
    cm.init_source("feed-a")
    for outcome in FETCH_OUTCOMES:
        assert reg.get_sample_value("newsradar_fetches_total", {"source": "feed-a", "outcome": outcome}) == 0
    assert reg.get_sample_value("newsradar_rate_limit_waits_total", {"source": "feed-a"}) == 0
    assert reg.get_sample_value("newsradar_fetch_duration_seconds_count", {"source": "feed-a"}) == 0
    # No honest value before the first item: absent, not 0 (which would read as 1970).
    assert reg.get_sample_value("newsradar_source_last_new_item_timestamp_seconds", {"source": "feed-a"}) is None
    cm.init_source("feed-a")  # idempotent
    assert reg.get_sample_value("newsradar_fetches_total", {"source": "feed-a", "outcome": "ok"}) == 0
