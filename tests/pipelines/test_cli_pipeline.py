"""`newsradar pipeline` refuses what it cannot run with the documented exit codes."""

from __future__ import annotations

import subprocess

from tests.conftest import FIXTURES, free_port, newsradar_cmd

WATCHLIST = FIXTURES / "pipeline" / "watchlist.yaml"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(newsradar_cmd("pipeline", *args), capture_output=True, text=True, timeout=120)


def test_missing_watchlist_is_bad_input(tmp_path):
    result = _run("--watchlist", str(tmp_path / "nope.yaml"), "--bootstrap-servers", f"localhost:{free_port()}")
    assert result.returncode == 2, result.stderr
    assert "nope.yaml" in result.stderr


def test_bad_pipeline_option_is_bad_input():
    result = _run("--watchlist", str(WATCHLIST), "--bootstrap-servers", f"localhost:{free_port()}",
                  "--story_similarity=3")
    assert result.returncode == 2, result.stderr
    assert "--story_similarity must be in (0, 1]" in result.stderr


def test_no_broker_is_a_failure_that_says_where_it_looked():
    port = free_port()
    result = _run("--watchlist", str(WATCHLIST), "--bootstrap-servers", f"localhost:{port}", "--metrics_port=0")
    assert result.returncode == 1, result.stderr
    assert f"no Kafka broker answers at localhost:{port}" in result.stderr
