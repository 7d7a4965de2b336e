"""Helpers shared by the pipeline tests: build raw records, produce them, read topics back."""

from __future__ import annotations

from datetime import timedelta

from newsradar.kafka import make_producer
from newsradar.records import RawArticle, format_time, utc_now


def raw_article(n: int, *, text: str | None = None, title: str | None = None, **fields) -> RawArticle:
    """A valid RSS article numbered ``n`` whose text is unique to ``n`` (no near duplicates)."""
    now = utc_now()
    values = dict(
        article_id=f"rss:test:{n}",
        source_id="test",
        source_kind="rss",
        url=f"https://news.example.org/{n}",
        title=title if title is not None else f"Report {n}",
        text=text if text is not None else f"Item {n}: {' '.join(f'w{n}x{k}' for k in range(8))}.",
        published_at=format_time(now - timedelta(minutes=5)),
        fetched_at=format_time(now),
    )
    values.update(fields)
    return RawArticle(**values)


def produce(bootstrap: str, topic: str, messages) -> int:
    """Send (key, value) pairs and wait until Kafka acknowledged every one."""
    producer = make_producer(bootstrap, client_id="newsradar-test")
    try:
        futures = [producer.send(topic, key=k, value=v) for k, v in messages]
        producer.flush()
        for f in futures:
            f.get(timeout=30)
        return len(futures)
    finally:
        producer.close()




def committed(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in sorted(consumer.partitions_for_topic(topic))}
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def stop_process(proc, timeout: float = 90) -> None:
    """SIGTERM a `newsradar` process still running (its clean stop), then SIGKILL after ``timeout``."""
    import signal
    import subprocess

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
