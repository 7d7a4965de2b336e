"""Metric names agree between the code, the rules and the dashboards."""

from __future__ import annotations

from tests.deploy.shipped import (
    PROMETHEUS_SERIES,
    exported_names,
    metric_names,
    panel_queries,
    recorded_names,
    rule_groups,
    variable_queries,
)


def unknown(names: set[str]) -> set[str]:
    """The names that neither the code exports, nor a recording rule records, nor Prometheus adds."""
    return names - exported_names() - recorded_names() - PROMETHEUS_SERIES


def _names_by_user() -> dict[str, set[str]]:
    users: dict[str, set[str]] = {}
    for q in panel_queries():
        users[str(q)] = metric_names(q.expr)
    for v in variable_queries():
        users[f"{v.dashboard} / ${v.name}"] = {v.metric}
    for path, rule in rule_groups():
        users[f"{path.name} / {rule.get('alert') or rule.get('record')}"] = metric_names(rule["expr"])
    return users


def test_every_name_a_dashboard_or_rule_reads_is_exported_by_code_or_recorded():
    users = _names_by_user()
    assert len(users) > 40
    bad = {user: sorted(unknown(names)) for user, names in users.items() if unknown(names)}
    assert not bad, f"names no code exports and no rule records: {bad}"


def test_the_check_catches_a_name_nobody_exports():
    assert unknown(metric_names("sum(rate(newsradar_fetch_total[5m]))")) == {"newsradar_fetch_total"}
    assert unknown(metric_names("newsradar_fetch_duration_seconds")) == {"newsradar_fetch_duration_seconds"}
    assert unknown(metric_names("newsradar_fetch_duration_seconds_bucket + newsradar_fetches_total")) == set()


def test_every_catalog_metric_is_on_a_dashboard_or_in_a_rule():
    used = set().union(*_names_by_user().values())
    used_bases = {n.removesuffix("_total").removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
                  for n in used}
    from prometheus_client import CollectorRegistry

    from newsradar.metrics import ConnectorMetrics, DeliveryMetrics, PipelineMetrics

    registry = CollectorRegistry()
    ConnectorMetrics(registry)
    PipelineMetrics(registry)
    DeliveryMetrics(registry)
    catalog = {family.name for family in registry.collect()}
    assert sorted(catalog - used_bases) == [], "metrics in the catalog that no dashboard or rule shows"


def test_recording_rules_follow_the_level_metric_operation_convention():
    for name in recorded_names():
        level, metric, *_ = name.split(":")
        assert level and metric.startswith("newsradar_"), name


def test_every_catalog_metric_and_alert_is_documented():
    from tests.deploy.shipped import REPO, alert_names

    doc = (REPO / "docs" / "observability.md").read_text(encoding="utf-8")
    catalog = {n for n in exported_names() if n.startswith("newsradar_") and not n.endswith(("_bucket", "_sum", "_count"))}
    catalog = {n for n in catalog if not n.endswith("_created")}
    assert sorted(n for n in catalog if f"`{n}" not in doc) == []
    assert sorted(a for a in alert_names() if f"`{a}`" not in doc) == []
    assert sorted(r for r in recorded_names() if f"`{r}`" not in doc) == []
