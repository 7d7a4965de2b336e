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
