"""Kafka client settings: the one place that builds a producer, and topic administration.

Connectors and the pipeline's Kafka IO both get their producer from :func:`make_producer`,
so delivery guarantees are decided here once: ``acks=all`` and idempotence explicitly on.
A caller that tries to weaken them gets :class:`UnsafeProducerConfig`, not a silent downgrade.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from .records import ALL_TOPICS

log = logging.getLogger(__name__)

DEFAULT_BOOTSTRAP = "localhost:9092"

# Size limits, from the inside out: a record's value is at most records.MAX_RECORD_BYTES (2 MiB, the
# delivery loop cuts records to fit); a produce request at most MAX_REQUEST_BYTES; a batch the
# broker and our topics accept at most MAX_MESSAGE_BYTES (deploy/kafka/server.properties.in has
# the same value as message.max.bytes; ensure_topics sets it as max.message.bytes). Kafka's own
# default, about 1 MiB, would refuse a 1.5 MB record on every poll.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
MAX_MESSAGE_BYTES = MAX_REQUEST_BYTES + 64 * 1024

# Producer settings that carry the at-least-once, no-reordering guarantee.
_REQUIRED = {"acks": "all", "enable_idempotence": True}
_DEFAULTS = {
    "linger_ms": 5,
    "retries": 2**31 - 1,
    # delivery_timeout_ms bounds how long a send may retry before it fails loudly.
    "delivery_timeout_ms": 120_000,
    "max_in_flight_requests_per_connection": 5,
    "max_request_size": MAX_REQUEST_BYTES,
}


class UnsafeProducerConfig(ValueError):
    """The requested client config would turn off acks=all or idempotence."""


def producer_config(bootstrap_servers: str, client_id: str = "newsradar", **overrides) -> dict:
    """The full kafka-python producer config; ``overrides`` may tune but never weaken it."""
    for key, required in _REQUIRED.items():
        if key in overrides and overrides[key] not in (required, str(required).lower()):
            raise UnsafeProducerConfig(
                f"refusing producer setting {key}={overrides[key]!r}: newsradar needs {key}={required!r} "
                "so that no acknowledged item is lost or duplicated by a retry"
            )
    if int(overrides.get("max_in_flight_requests_per_connection", 5)) > 5:
        raise UnsafeProducerConfig("max_in_flight_requests_per_connection above 5 disables idempotence ordering")
    if "retries" in overrides and int(overrides["retries"]) <= 0:
        raise UnsafeProducerConfig("retries=0 turns off idempotent retries")
    config = {**_DEFAULTS, **overrides, **_REQUIRED}
    config["bootstrap_servers"] = bootstrap_servers
    config["client_id"] = client_id
    return config


def make_producer(bootstrap_servers: str, client_id: str = "newsradar", **overrides):
    """Build a KafkaProducer with :func:`producer_config`. The only producer factory."""
    from kafka import KafkaProducer

    return KafkaProducer(**producer_config(bootstrap_servers, client_id, **overrides))


def broker_answers(bootstrap_servers: str, timeout: float = 3.0) -> bool:
    """True when a broker at ``bootstrap_servers`` answers a metadata request in time."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    admin = None
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap_servers,
            request_timeout_ms=int(timeout * 1000),
            bootstrap_timeout_ms=int(timeout * 1000),
            client_id="newsradar-probe",
        )
        admin.list_topics()
        return True
    except (KafkaError, OSError, ValueError) as exc:
        log.debug("broker at %s does not answer: %s", bootstrap_servers, exc)
        return False
    finally:
        if admin is not None:
            admin.close()


def ensure_topics(
    bootstrap_servers: str,
    partitions: int = 2,
    replication_factor: int = 1,
    topics: Iterable[str] = ALL_TOPICS,
    timeout: float = 30.0,
) -> list[str]:
    """Create the newsradar topics that do not exist yet; returns the names created.

    Topics are created with ``max.message.bytes`` = :data:`MAX_MESSAGE_BYTES`, so every record
    within the record cap fits whatever the cluster's default. Idempotent: existing topics are
    left as they are (neither their partition count nor their settings are changed).
    """
    from kafka import KafkaAdminClient
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=int(timeout * 1000),
        client_id="newsradar-admin",
    )
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in topics if t not in existing]
        created = []
        for name in wanted:
            try:
                admin.create_topics(
                    {name: {"num_partitions": partitions, "replication_factor": replication_factor,
                            "configs": {"max.message.bytes": str(MAX_MESSAGE_BYTES)}}},
                    timeout_ms=int(timeout * 1000),
                    wait_for_metadata=True,
                )
                created.append(name)
            except TopicAlreadyExistsError:
                # Another process created it between list and create: that is the goal.
                pass
        return created
    finally:
        admin.close()


def missing_topics(bootstrap_servers: str, topics: Iterable[str] = ALL_TOPICS, timeout: float = 30.0) -> list[str]:
    """The newsradar topics that do not exist on the cluster (none created)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout * 1000),
                             client_id="newsradar-admin")
    try:
        existing = set(admin.list_topics())
    finally:
        admin.close()
    return [t for t in topics if t not in existing]


def read_topic(bootstrap_servers: str, topic: str, timeout: float = 30.0) -> list:
    """Every record on ``topic``, from the beginning to the end offsets at call time, without a
    consumer group (nothing committed). For replays, checks and tests. Raises TimeoutError when
    the end is not reached within ``timeout`` seconds."""
    import time

    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False, client_id="newsradar-read")
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not parts:
            return []
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        out = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end within {timeout:.0f}s")
            for records in consumer.poll(timeout_ms=200).values():
                out.extend(records)
        return out
    finally:
        consumer.close()
