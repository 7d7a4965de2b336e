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
        (["kind=new_mention", "org=ucsm", "severity=warning"], "newsroom"),
        (["kind=surge", "org=ucsm"], "newsroom"),
    ],
)
def test_routes_send_each_kind_of_alert_to_its_receiver(labels, receiver):
    result = amtool("config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver]


def test_inhibit_rules_name_only_alerts_that_exist():
    import re

    text = ALERTMANAGER_CONFIG.read_text()
    names = set(re.findall(r"Newsradar\w+", text))
    assert names and names <= set(alert_names())
