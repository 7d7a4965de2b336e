"""`newsradar pipeline` refuses what it cannot run with the documented exit codes."""

from __future__ import annotations

import subprocess
import time

import pytest

from newsradar import kafka as nk
from newsradar.records import ALL_TOPICS
from tests.conftest import FIXTURES, free_port, newsradar_cmd

WATCHLIST = FIXTURES / "pipeline" / "watchlist.yaml"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(newsradar_cmd("pipeline", *args), capture_output=True, text=True, timeout=120)


def test_missing_watchlist_is_bad_input(tmp_path):
    result = _run("--watchlist", str(tmp_path / "nope.yaml"), "--bootstrap-servers", f"localhost:{free_port()}")
    assert result.returncode == 2, result.stderr
    assert "nope.yaml" in result.stderr


def test_a_bad_watchlist_at_start_runs_its_last_good_version_else_is_bad_input(tmp_path):
    import os
    import shutil

    from transforms.reload import WatchlistSource

    path = tmp_path / "watchlist.yaml"
    shutil.copy(WATCHLIST, path)
    text = path.read_text(encoding="utf-8")
    broken = text.replace("organizations:", "organizations:\n  - {id: Bad Id, name: x, aliases: {en: [x]}}", 1)
    line = broken.splitlines().index("  - {id: Bad Id, name: x, aliases: {en: [x]}}") + 1
    path.write_text(broken, encoding="utf-8")
    args = ("--watchlist", str(path), "--bootstrap-servers", f"localhost:{free_port()}", "--metrics_port=0",
            "--runner", "DirectRunner")
    result = _run(*args)
    assert result.returncode == 2, result.stderr  # no last good version yet: the file's error
    assert f"{path}:{line}: organizations[0].id: expected an id" in result.stderr
    # A start with the good file keeps it under $NEWSRADAR_HOME (as `newsradar pipeline` does) ...
    path.write_text(text, encoding="utf-8")
    WatchlistSource.from_file(path, store=os.path.join(os.environ["NEWSRADAR_HOME"], "watchlist"))
    path.write_text(broken, encoding="utf-8")
    result = _run(*args)
    # ... so the next start with the bad file goes on with it, and says so; here it then
    # finds no broker (exit 1), which shows it went past the watchlist.
    assert result.returncode == 1, result.stderr
    assert "refused at start, running its last good version" in result.stderr and "no Kafka broker" in result.stderr


def test_bad_pipeline_option_is_bad_input():
    result = _run("--watchlist", str(WATCHLIST), "--bootstrap-servers", f"localhost:{free_port()}",
                  "--story_similarity=3")
    assert result.returncode == 2, result.stderr
    assert "--story_similarity must be in (0, 1]" in result.stderr
    result = _run("--watchlist", str(WATCHLIST), "--bootstrap-servers", f"localhost:{free_port()}",
                  "--watchlist_poll=0s")
    assert result.returncode == 2 and "--watchlist_poll must be more than 0s, got 0s" in result.stderr, result.stderr


def test_no_broker_is_a_failure_that_says_where_it_looked():
    port = free_port()
    result = _run("--watchlist", str(WATCHLIST), "--bootstrap-servers", f"localhost:{port}", "--metrics_port=0")
    assert result.returncode == 1, result.stderr
    assert f"no Kafka broker answers at localhost:{port}" in result.stderr


@pytest.mark.kafka
def test_topics_that_keep_less_than_the_memory_are_refused(kafka, topic_prefix):
    prefix = f"{topic_prefix}."
    short = nk.TopicPolicy(retention_seconds={"news.tagged": 3600.0, "news.alerts": 30 * nk.DAY})
    nk.ensure_topics(kafka.bootstrap, topics=[prefix + t for t in ALL_TOPICS], policy=short)
    result = _run("--watchlist", str(WATCHLIST), "--bootstrap-servers", kafka.bootstrap, "--metrics_port=0",
                  f"--topic_prefix={prefix}", f"--group_id={topic_prefix}-g")
    assert result.returncode == 2, result.stderr
    assert f"topic {prefix}news.tagged keeps records for 1h" in result.stderr
    assert "news.alerts keeps" not in result.stderr


@pytest.mark.kafka
def test_a_second_pipeline_on_the_same_group_is_refused(kafka, topic_prefix):
    prefix, group = f"{topic_prefix}.", f"{topic_prefix}-g"
    nk.ensure_topics(kafka.bootstrap, topics=[prefix + t for t in ALL_TOPICS])
    with nk.GroupClaim(kafka.bootstrap, group, prefix + "news.dlq"):
        started = time.monotonic()
        result = _run("--watchlist", str(WATCHLIST), "--bootstrap-servers", kafka.bootstrap, "--metrics_port=0",
                      f"--topic_prefix={prefix}", f"--group_id={group}")
    assert result.returncode == 2, result.stderr
    assert f"another pipeline is running on consumer group {group!r}" in result.stderr
    assert time.monotonic() - started < 90


@pytest.mark.kafka
def test_topics_the_pipeline_creates_keep_a_long_watchlist_memory(kafka, topic_prefix, tmp_path):
    prefix = f"{topic_prefix}."
    watchlist = tmp_path / "w.yaml"
    watchlist.write_text(WATCHLIST.read_text(encoding="utf-8") + "\nnovelty: {story_memory: 40d}\n", encoding="utf-8")
    result = _run("--watchlist", str(watchlist), "--bootstrap-servers", kafka.bootstrap, "--metrics_port=0",
                  "--runner", "DirectRunner", f"--topic_prefix={prefix}", f"--group_id={topic_prefix}-g")
    assert result.returncode == 0, result.stderr
    kept = nk.topic_retention(kafka.bootstrap, [prefix + "news.tagged", prefix + "news.alerts", prefix + "news.raw"])
    assert kept == {prefix + "news.tagged": 47 * nk.DAY, prefix + "news.alerts": 47 * nk.DAY, prefix + "news.raw": 30 * nk.DAY}


@pytest.mark.parametrize("runner", ["PrismRunner", "PortableRunner"])
def test_prism_runners_never_split_a_bundle_of_a_stateful_step(runner):
    # Prism releases the keys of a split bundle's residual while the primary still runs them
    # (docs/pipeline.md, "One bundle per key"); tests/pipelines/test_portable.py fails without.
    from apache_beam.options.pipeline_options import DebugOptions

    from pipelines.run import _beam_options

    options = _beam_options(runner, ["--experiments=use_runner_v2", "--experiments=prism_disable_sdf_split"])
    assert options.view_as(DebugOptions).experiments == ["use_runner_v2", "prism_disable_sdf_split"]
    assert "prism_disable_sdf_split" in _beam_options(runner, []).view_as(DebugOptions).experiments
