"""The Alertmanager routing example, checked and routed by amtool."""

from __future__ import annotations

import subprocess

import pytest

from tests.deploy.shipped import ALERTMANAGER_CONFIG, alert_names, tool


def amtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([tool("amtool"), *args], capture_output=True, text=True, timeout=60)


def test_amtool_accepts_the_config():
    result = amtool("check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "webhook" in ALERTMANAGER_CONFIG.read_text()


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=NewsradarTargetDown", "severity=page", "job=newsradar-pipeline"], "ops-pager"),
        (["alertname=NewsradarSourceSilent", "severity=warning", "source=meduza-en"], "ops-chat"),
        (["alertname=Unrelated", "severity=info"], "ops-log"),
        (["alertname=NewsradarNews", "notification=story:0f3a:1"], "newsroom"),
        # a news story is never taken for an operational warning, whatever its labels
        (["alertname=NewsradarNews", "notification=story:0f3a:1", "severity=warning"], "newsroom"),
    ],
)
def test_routes_send_each_kind_of_alert_to_its_receiver(labels, receiver):
    result = amtool("config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver]


def test_inhibit_rules_name_only_alerts_that_exist():
    import re

    from newsradar.delivery.sinks import NEWS_ALERTNAME

    text = ALERTMANAGER_CONFIG.read_text()
    names = set(re.findall(r"Newsradar\w+", text))
    # the Prometheus rules' alerts, and the news `newsradar deliver` posts
    assert names and names <= {*alert_names(), NEWS_ALERTNAME}
