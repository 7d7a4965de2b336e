"""One useful line where one line would do (issue 19, item 5): a dead broker, Ctrl-C on
`alerts tail -f`, a record on news.alerts that is not an alert, topics that exist with another
layout, json's own "at" in our messages."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime

import pytest

from newsradar import kafka as nk
from newsradar.identity import alert_id
from newsradar.records import ALL_TOPICS, TOPIC_ALERTS, Alert, RecordError, decode_raw, format_time
from pipelines.tag import read_items
from tests.conftest import free_port, newsradar_cmd


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(newsradar_cmd(*args), capture_output=True, text=True, timeout=timeout)


def test_a_dead_broker_is_one_line(tmp_path):
    dead = f"127.0.0.1:{free_port()}"
    for args in (("alerts", "tail", "--bootstrap-servers", dead), ("kafka", "topics", "--bootstrap-servers", dead)):
        result = _run(*args)
        assert result.returncode == 1
        assert result.stderr.splitlines() == [f"newsradar: no Kafka broker answers at {dead}"], result.stderr
    status = _run("kafka", "status", "--port", dead.split(":")[1], "--data-dir", str(tmp_path / "kafka"))
    assert status.returncode == 3 and status.stderr == ""
    assert status.stdout.splitlines() == [f"kafka: not running at localhost:{dead.split(':')[1]}"]


def test_ctrl_c_before_alerts_tail_follows_is_no_aborted(monkeypatch):
    # Ctrl-C while the broker is still being asked (the first seconds) used to print "Aborted!".
    from click.testing import CliRunner

    import newsradar.kafka
    from newsradar.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(newsradar.kafka, "broker_answers", interrupted)
    result = CliRunner().invoke(main, ["alerts", "tail", "-f"])
    assert result.exit_code == 130 and result.output == "", result.output


def test_json_s_dangling_at_is_not_doubled():
    [item] = read_items(b'{"text": "unterminated\n', datetime.now(UTC))
    assert item.error == "not JSON: Unterminated string starting at column 10"
    with pytest.raises(RecordError, match=r"not JSON: Unterminated string starting at line 1 column 2$"):
        decode_raw(b'["x')


def _alert(n: int) -> Alert:
    return Alert(alert_id=alert_id("new_mention", "cmw", f"noise-{n}"), kind="new_mention", severity="warning",
                 article_id=f"a{n}", story_id=f"noise-{n}", url=f"https://example.org/{n}", title=f"Title {n}",
                 snippet="…", why="a test alert", created_at=format_time(datetime.now(UTC)), org_id="cmw")


@pytest.mark.kafka
def test_alerts_tail_names_a_record_that_is_not_an_alert_and_ctrl_c_ends_quietly(kafka):
    nk.ensure_topics(kafka.bootstrap, partitions=1, topics=[TOPIC_ALERTS])
    producer = nk.make_producer(kafka.bootstrap)
    # Alerts before the one looked for, as a full suite leaves on the topic: the follower prints
    # them in one burst (the case where a select() on its pipe once waited for ever).
    for n in range(300):
        earlier = _alert(n)
        producer.send(TOPIC_ALERTS, key=earlier.alert_id.encode(), value=earlier.encode())
    bad = producer.send(TOPIC_ALERTS, key=b"x", value=b"this is not json").get(timeout=30)
    good = _alert(time.time_ns())
    producer.send(TOPIC_ALERTS, key=good.alert_id.encode(), value=good.encode()).get(timeout=30)
    producer.close(10)
    once = _run("alerts", "tail", "-n", "1000", "--bootstrap-servers", kafka.bootstrap)
    assert once.returncode == 0, once.stderr
    assert good.alert_id in once.stdout
    assert (f"newsradar: news.alerts {bad.partition}:{bad.offset}: not an alert, skipped: not JSON: "
            "Expecting value at line 1 column 1") in once.stderr.splitlines(), once.stderr

    follow = subprocess.Popen(newsradar_cmd("alerts", "tail", "-f", "-n", "1000", "--bootstrap-servers", kafka.bootstrap),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Both pipes are read by threads: the session's news.alerts may hold enough records that are
    # not alerts for their warning lines to fill stderr and block the command, and enough alerts
    # that one read takes many lines into Python's buffer (a select() on the pipe would then
    # wait for bytes already read).
    errors: list[str] = []
    printed: queue.Queue[str] = queue.Queue()
    drain = threading.Thread(target=lambda: errors.extend(follow.stderr), daemon=True)
    reader = threading.Thread(target=lambda: [printed.put(line) for line in follow.stdout], daemon=True)
    drain.start()
    reader.start()
    try:
        deadline, seen = time.monotonic() + 60, False
        while not seen and time.monotonic() < deadline:
            try:
                line = printed.get(timeout=1)
            except queue.Empty:
                continue
            seen = json.loads(line)["alert_id"] == good.alert_id
        assert seen, f"alerts tail -f never printed the alert (exit {follow.poll()}; stderr {''.join(errors)[-2000:]!r})"
        os.kill(follow.pid, signal.SIGINT)
        follow.wait(timeout=60)
        reader.join(timeout=10)
        drain.join(timeout=10)
        err = "".join(errors)
    finally:
        if follow.poll() is None:
            follow.kill()
    assert follow.returncode == 0, err
    assert "Aborted" not in err and "Traceback" not in err, err


@pytest.mark.kafka
def test_kafka_topics_says_when_existing_topics_have_another_layout(kafka):
    nk.ensure_topics(kafka.bootstrap)
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        counts = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(list(ALL_TOPICS))}
    finally:
        admin.close()
    asked = max(counts.values()) + 4
    result = _run("kafka", "topics", "--bootstrap-servers", kafka.bootstrap, "--partitions", str(asked),
                  "--replication-factor", "3")
    assert result.returncode == 1, result.stdout + result.stderr
    for topic in ALL_TOPICS:
        assert (f"{topic}: exists with {counts[topic]} partitions, not {asked} and replication factor 1, not 3 "
                "(an existing topic is not changed)") in result.stdout.splitlines(), result.stdout
    assert f"{len(ALL_TOPICS)} existing topics do not have the layout asked for" in result.stderr
    same = _run("kafka", "topics", "--bootstrap-servers", kafka.bootstrap)
    assert same.returncode == 0 and "not" not in same.stdout, same.stdout


def test_kafka_topics_takes_retention_per_topic_and_refuses_what_it_cannot_set():
    from click.testing import CliRunner

    from newsradar.cli.commands import _retention_option, main

    assert _retention_option(None, None, ("news.tagged=45d", "news.raw=12h")) == {"news.tagged": 45 * 86400.0,
                                                                                 "news.raw": 12 * 3600.0}
    for bad, why in (("news.tagged", "want TOPIC=DURATION"), ("news.tagged=soon", "a duration like"),
                     ("news.novelty=3d", "compacted"), ("other=3d", "want TOPIC=DURATION")):
        result = CliRunner().invoke(main, ["kafka", "topics", "--bootstrap-servers", "127.0.0.1:1", "--retention", bad])
        assert result.exit_code == 2 and why in result.output, (bad, result.output)
