"""The local broker, started and stopped by the project's own command, and the client settings."""

import subprocess

import pytest
from kafka import KafkaAdminClient

from newsradar import kafka as nk
from newsradar import records as r
from tests.conftest import LocalKafka, free_port, newsradar_cmd


@pytest.mark.kafka
def test_start_creates_topics_and_round_trip(kafka):
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        described = {t["name"]: t for t in admin.describe_topics(list(r.ALL_TOPICS))}
    finally:
        admin.close()
    assert set(described) == set(r.ALL_TOPICS)
    assert all(len(t["partitions"]) == 2 for t in described.values())

    article = r.RawArticle(
        article_id="rss:test:g:1", source_id="test", source_kind="rss", url="https://x/1",
        title="Мобилизация", text="текст", published_at="2026-11-20T10:00:00Z", fetched_at="2026-11-20T10:00:01Z",
    )
    producer = nk.make_producer(kafka.bootstrap)
    producer.send(r.TOPIC_RAW, key=article.article_id.encode(), value=article.encode()).get(timeout=30)
    producer.flush()
    producer.close()
    # Connector tests share news.raw on the session broker: read all of it, not the first 50.
    got = [m for m in nk.read_topic(kafka.bootstrap, r.TOPIC_RAW) if m.key == b"rss:test:g:1"]
    assert len(got) == 1 and r.decode_raw(got[0].value) == article


@pytest.mark.kafka
def test_topics_command_is_idempotent_against_any_broker(kafka):
    proc = subprocess.run(newsradar_cmd("kafka", "topics", "--bootstrap-servers", kafka.bootstrap), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert all(f"{t}: exists" in proc.stdout for t in r.ALL_TOPICS)
    missing = subprocess.run(
        newsradar_cmd("kafka", "topics", "--bootstrap-servers", f"localhost:{free_port()}"), capture_output=True, text=True
    )
    assert missing.returncode == 1 and "no Kafka broker answers" in missing.stderr


@pytest.mark.kafka
@pytest.mark.slow
def test_restart_keeps_data_and_status_reports(tmp_path):
    broker = LocalKafka(free_port(), tmp_path / "broker")
    assert broker.run("status").returncode == 3
    broker.start()
    try:
        again = broker.run("start")
        assert again.returncode == 0 and "already running" in again.stdout
        status = broker.run("status")
        assert status.returncode == 0 and "up at" in status.stdout

        producer = nk.make_producer(broker.bootstrap)
        for i in range(20):
            producer.send(r.TOPIC_RAW, key=str(i).encode(), value=f"v{i}".encode())
        producer.flush()
        producer.close()

        assert broker.run("stop").returncode == 0
        stopped = broker.run("status")
        assert stopped.returncode == 3 and "not running" in stopped.stdout

        broker.start()
        values = sorted(m.value for m in nk.read_topic(broker.bootstrap, r.TOPIC_RAW))
        assert values == sorted(f"v{i}".encode() for i in range(20))
    finally:
        broker.stop()
    assert broker.run("status").returncode == 3


def test_start_refuses_a_port_someone_else_holds(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = LocalKafka(port, tmp_path / "b").run("start", timeout=60)
    assert result.returncode == 1
    assert "already in use" in result.stderr


@pytest.mark.parametrize(
    "override",
    [{"acks": 1}, {"acks": 0}, {"enable_idempotence": False}, {"max_in_flight_requests_per_connection": 10}, {"retries": 0}],
)
def test_producer_config_refuses_to_weaken_delivery(override):
    with pytest.raises(nk.UnsafeProducerConfig):
        nk.producer_config("localhost:1", **override)


def test_producer_config_keeps_guarantees_and_allows_tuning():
    cfg = nk.producer_config("h:1", linger_ms=50, acks="all")
    assert cfg["acks"] == "all" and cfg["enable_idempotence"] is True and cfg["linger_ms"] == 50


def test_a_port_nothing_listens_on_is_no_broker_at_once_and_a_listener_is_asked():
    import socket
    import time

    dead = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    assert nk.broker_answers(dead, timeout=20) is False
    # Refused at every address: answered without the client's retries up to the timeout.
    assert time.monotonic() - started < 5
    assert nk._all_refused(f"{dead},127.0.0.1:{free_port()}", 1.0)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        alive = f"127.0.0.1:{listener.getsockname()[1]}"
        # Something listens (not a broker): the Kafka client is asked, not the TCP check.
        assert not nk._all_refused(f"{dead},{alive}", 1.0)
    assert not nk._all_refused("broker-without-port", 1.0)
    assert not nk._all_refused("", 1.0)
