"""The shipped Grafana dashboards and provisioning files."""

from __future__ import annotations

import importlib.util

import pytest
import yaml

from tests.deploy.shipped import DASHBOARD_DIR, DASHBOARDS, REPO, load_dashboard, panel_queries

GRAFANA = REPO / "deploy" / "grafana"


def _builder():
    spec = importlib.util.spec_from_file_location("build_dashboards", GRAFANA / "build_dashboards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _provisioned_datasource() -> dict:
    (ds,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "newsradar.yml").read_text())["datasources"]
    return ds


def test_committed_dashboards_are_what_the_builder_writes():
    builder = _builder()
    assert sorted(builder.DASHBOARDS) == sorted(p.name for p in DASHBOARDS)
    for name, build in builder.DASHBOARDS.items():
        assert (DASHBOARD_DIR / name).read_text(encoding="utf-8") == builder.render(build), (
            f"{name} is stale: run .venv/bin/python deploy/grafana/build_dashboards.py"
        )


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path):
    board = load_dashboard(path)
    assert board["uid"].startswith("newsradar-") and board["title"].startswith("newsradar / ")
    datasource_uid = _provisioned_datasource()["uid"]
    ids, cells = set(), set()
    for panel in board["panels"]:
        assert panel["id"] not in ids
        ids.add(panel["id"])
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
        if panel["type"] == "row":
            continue
        assert panel["description"], panel["title"]
        assert panel["datasource"]["uid"] == datasource_uid
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == datasource_uid and target["expr"].strip()
    for var in board["templating"]["list"]:
        # The integration test evaluates panels with every variable at ".*": that must be
        # what "All" means to Grafana too.
        assert var["includeAll"] and var["allValue"] == ".*"
        assert var["datasource"]["uid"] == datasource_uid


def test_dashboards_cover_what_operators_watch():
    titles = {(q.dashboard, q.panel) for q in panel_queries()}
    expected = {
        "pipeline-overview.json": ["Articles in", "Articles per language", "Tags per topic",
                                   "Mentions per organization", "Alerts by kind", "Published to alert",
                                   "Fetched to alert"],
        "sources-health.json": ["Time since the last new item", "Fetch error ratio (1h)", "Fetches by outcome",
                                "304 ratio (1h)", "Rate-limit waits"],
        "kafka.json": ["Consumer lag by topic", "Dead letters by step"],
    }
    missing = [(d, t) for d, ts in expected.items() for t in ts if (d, t) not in titles]
    assert not missing


def test_provisioning_points_grafana_at_the_dashboards_and_prometheus():
    ds = _provisioned_datasource()
    assert ds["type"] == "prometheus" and ds["url"].endswith(":9090")
    prometheus = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert ds["jsonData"]["timeInterval"] == prometheus["global"]["scrape_interval"]
    (provider,) = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "newsradar.yml").read_text())["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
