"""The shipped Prometheus config and rules, checked by Prometheus' own promtool."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

from newsradar.cli import commands as cli
from newsradar.config.sources import MetricsEndpoint
from tests.deploy.shipped import INSTALL_SCRIPT, PROMETHEUS_DIR, RULE_FILES, RULE_TESTS, alert_names, rule_groups, tool

PROMETHEUS_YML = PROMETHEUS_DIR / "prometheus.yml"


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess:
    return subprocess.run([tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_config_and_the_rule_files_it_names():
    result = promtool("check", "config", PROMETHEUS_YML.name)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    assert sorted(PROMETHEUS_DIR / f for f in config["rule_files"]) == RULE_FILES


def test_promtool_accepts_every_rule_file():
    assert RULE_FILES
    result = promtool("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_rules_pass():
    assert RULE_TESTS
    result = promtool("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS), result.stdout


def test_every_alerting_rule_has_a_firing_case_and_a_quiet_case():
    firing: dict[str, int] = {}
    quiet: dict[str, int] = {}
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                into = firing if check.get("exp_alerts") else quiet
                into[check["alertname"]] = into.get(check["alertname"], 0) + 1
    alerts = alert_names()
    assert len(alerts) == len(set(alerts)), "alert names must be unique"
    assert not [a for a in alerts if a not in firing], "alerts never shown firing in a promtool test"
    assert not [a for a in alerts if a not in quiet], "alerts never shown staying quiet in a promtool test"
    assert not set(firing) - set(alerts), "promtool tests name alerts that no rule defines"


def _scrape_port(job: str) -> int:
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    (scrape,) = [s for s in config["scrape_configs"] if s["job_name"] == job]
    (target,) = [t for sc in scrape["static_configs"] for t in sc["targets"]]
    host, port = target.rsplit(":", 1)
    assert host == "127.0.0.1", f"{job}: processes bind 127.0.0.1 by default, the scrape target says {host}"
    return int(port)


def _option_default(command, name: str):
    (param,) = [p for p in command.params if p.name == name]
    return param.default


def test_scrape_targets_are_the_ports_the_processes_listen_on_by_default():
    assert _scrape_port("newsradar-connector") == MetricsEndpoint().port
    assert _scrape_port("newsradar-connector") == _option_default(cli.up, "connect_metrics_port")
    from pipelines.options import DEFAULT_METRICS_PORT

    assert _scrape_port("newsradar-pipeline") == DEFAULT_METRICS_PORT
    assert _scrape_port("newsradar-pipeline") == _option_default(cli.up, "pipeline_metrics_port")
    from newsradar.delivery import DEFAULT_METRICS_PORT as DELIVER_PORT

    assert _scrape_port("newsradar-deliver") == DELIVER_PORT
    assert _scrape_port("newsradar-deliver") == _option_default(cli.up, "deliver_metrics_port")
    assert _option_default(cli.main.commands["deliver"], "metrics_port") == DELIVER_PORT


def test_install_script_is_idempotent_and_leaves_apt_alone_when_everything_is_there(tmp_path):
    for name in ("prometheus", "promtool", "amtool", "prometheus-alertmanager"):
        tool(name)
    # An apt-get that fails loudly: the script must not reach for it.
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("apt-get", "sudo"):
        (fake / name).write_text("#!/bin/sh\necho \"$0 called\" >&2\nexit 97\n")
        (fake / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    for _ in range(2):
        result = subprocess.run(["bash", str(INSTALL_SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(r"prometheus: installed \(prometheus, version \d+\.\d+", result.stdout), result.stdout
        assert "called" not in result.stderr


def test_every_fetch_outcome_is_classified_as_error_or_not_in_the_error_ratio():
    import re

    from newsradar.metrics import FETCH_OUTCOMES

    (rule,) = [r for _, r in rule_groups() if r.get("record") == "source:newsradar_fetch_errors:rate1h"]
    errors = set(re.search(r'outcome=~"([^"]+)"', rule["expr"]).group(1).split("|"))
    not_errors = {"ok", "not_modified", "lying_304", "rate_limited"}
    assert errors <= set(FETCH_OUTCOMES), "the error ratio names outcomes the code does not have"
    assert set(FETCH_OUTCOMES) - errors - not_errors == set(), "new fetch outcome: decide whether it is an error"
