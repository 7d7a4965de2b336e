"""What deploy/ ships for observability, read the way the tests need it.

Plain functions over the shipped files: the PromQL of every dashboard panel and rule, the
metric names that PromQL refers to, and the names newsradar's code exports.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.test.yml"))
DASHBOARD_DIR = REPO / "deploy" / "grafana" / "dashboards"
DASHBOARDS = sorted(DASHBOARD_DIR.glob("*.json"))
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
INSTALL_SCRIPT = PROMETHEUS_DIR / "install.sh"


def tool(name: str) -> str:
    """Path of a Prometheus tool from Debian's packages; fail saying how to install it."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        pytest.fail(f"{name} is not installed: run {INSTALL_SCRIPT.relative_to(REPO)} (`make deps` does)")
    return path


# --- PromQL ------------------------------------------------------------------------------

_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "offset", "inf", "nan", "atan2",
}
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_TOKEN = re.compile(r"(?P<num>\d[\w.]*)|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)(?P<call>\s*\()?|(?P<other>.)", re.S)
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def metric_names(expr: str) -> set[str]:
    """The metric (and recorded series) names a PromQL expression reads.

    Label names inside ``{...}``, ``by (...)`` and the like, function names, keywords and
    durations are not metric names; everything else that is an identifier is.
    """
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for m in _TOKEN.finditer(text):
        ident = m.group("ident")
        if ident and not m.group("call") and ident.lower() not in _KEYWORDS:
            names.add(ident)
    return names


# Values for Grafana's variables when an expression is evaluated outside Grafana: every
# template variable means "all" (its allValue is .*), the time windows cover a whole test run.
GRAFANA_BUILTINS = {
    "__rate_interval": "5m",
    "__interval": "15s",
    "__range": "1h",
}


def substitute(expr: str, variables: dict[str, str] | None = None) -> str:
    """Replace Grafana's $var / ${var} / [[var]] with concrete values (template vars -> .*)."""
    values = {**GRAFANA_BUILTINS, **(variables or {})}

    def value(name: str) -> str:
        return values.get(name, ".*")

    expr = re.sub(r"\$\{(\w+)(?::\w+)?\}", lambda m: value(m.group(1)), expr)
    expr = re.sub(r"\[\[(\w+)\]\]", lambda m: value(m.group(1)), expr)
    return re.sub(r"\$(\w+)", lambda m: value(m.group(1)), expr)


# --- dashboards ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref: str
    expr: str

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref}"


def load_dashboard(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _panels(panels: list[dict]) -> Iterator[dict]:
    for p in panels:
        yield p
        yield from _panels(p.get("panels", []))


def panel_queries() -> list[PanelQuery]:
    """Every PromQL expression of every panel of every shipped dashboard."""
    out = []
    for path in DASHBOARDS:
        board = load_dashboard(path)
        for p in _panels(board["panels"]):
            for t in p.get("targets", []):
                out.append(PanelQuery(path.name, p["title"], t["refId"], t["expr"]))
    return out


@dataclass(frozen=True)
class VariableQuery:
    dashboard: str
    name: str
    metric: str
    label: str


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*([A-Za-z_:][\w:]*)\s*(?:\{[^}]*\})?\s*,\s*(\w+)\s*\)\s*$")


def variable_queries() -> list[VariableQuery]:
    """Every ``label_values(metric, label)`` template variable of the shipped dashboards."""
    out = []
    for path in DASHBOARDS:
        for var in load_dashboard(path).get("templating", {}).get("list", []):
            if var.get("type") != "query":
                continue
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = _LABEL_VALUES.match(query)
            assert m, f"{path.name}: variable {var['name']}: expected label_values(metric, label), got {query!r}"
            out.append(VariableQuery(path.name, var["name"], m.group(1), m.group(2)))
    return out


# --- rules ---------------------------------------------------------------------------------


def rule_groups() -> Iterator[tuple[Path, dict]]:
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                yield path, rule


def alert_names() -> list[str]:
    return [rule["alert"] for _, rule in rule_groups() if "alert" in rule]


def recorded_names() -> set[str]:
    return {rule["record"] for _, rule in rule_groups() if "record" in rule}


# --- what the code exports -------------------------------------------------------------------

# Series Prometheus itself adds to every scrape, and prometheus_client's default collectors.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
                     "scrape_series_added"}


def exported_names() -> set[str]:
    """Every sample name newsradar's processes expose, from a fresh registry.

    Counters are exposed as ``<name>_total``, histograms as ``_bucket``/``_sum``/``_count``;
    the default process/platform/GC collectors that every process also serves are included.
    """
    from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

    from newsradar.metrics import ConnectorMetrics, DeliveryMetrics, PipelineMetrics

    registry = CollectorRegistry()
    ConnectorMetrics(registry)
    PipelineMetrics(registry)
    DeliveryMetrics(registry)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    names = set()
    for family in registry.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        elif family.type == "summary":
            names.update(family.name + suffix for suffix in ("", "_sum", "_count"))
        else:
            names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names
