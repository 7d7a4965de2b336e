"""Kafka client settings: the one place that builds a producer, and topic administration.

Connectors and the pipeline's Kafka IO both get their producer from :func:`make_producer`,
so delivery guarantees are decided here once: ``acks=all`` and idempotence explicitly on.
A caller that tries to weaken them gets :class:`UnsafeProducerConfig`, not a silent downgrade.
Consumers and admin clients come from :func:`make_consumer` and :func:`make_admin`; all three
take TLS and SASL settings from the environment (:func:`security_config`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .records import ALL_TOPICS, TOPIC_ALERTS, TOPIC_CANDIDATES, TOPIC_DLQ, TOPIC_NOVELTY, TOPIC_RAW, TOPIC_TAGGED

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


# --- TLS and SASL ----------------------------------------------------------------------------
# Every client newsradar builds (connectors, pipeline and its SDK workers, deliver, dlq, the
# admin calls) takes these from its environment: NEWSRADAR_KAFKA_<kafka-python setting in upper
# case>, e.g. NEWSRADAR_KAFKA_SECURITY_PROTOCOL=SASL_SSL. The environment, not a flag, because
# Beam SDK workers build their own consumers and producers in other processes (set the variables
# on the worker pool too). docs/operations.md, "Kafka TLS and SASL".
SECURITY_ENV_PREFIX = "NEWSRADAR_KAFKA_"
_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_SECURITY_STRINGS = ("security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password",
                     "ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password", "ssl_crlfile")
_SECURITY_FLAGS = ("ssl_check_hostname",)
_FILES = ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_crlfile")


class KafkaSecurityError(ValueError):
    """The NEWSRADAR_KAFKA_* environment variables do not make a usable TLS/SASL setting."""


def security_config(environ: Mapping[str, str] | None = None) -> dict:
    """kafka-python settings for TLS and SASL from ``NEWSRADAR_KAFKA_*`` variables (``environ``:
    default ``os.environ``); ``{}`` when none is set (plaintext, kafka-python's default).

    Raises :class:`KafkaSecurityError` for an unknown variable, a protocol or mechanism kafka-python
    does not support here, SASL without mechanism, username and password, or a certificate file
    that cannot be read: a typo must stop the process, not fall back to plaintext.
    """
    environ = os.environ if environ is None else environ
    given = {name[len(SECURITY_ENV_PREFIX):].lower(): value for name, value in environ.items()
             if name.startswith(SECURITY_ENV_PREFIX)}
    unknown = sorted(set(given) - set(_SECURITY_STRINGS) - set(_SECURITY_FLAGS))
    if unknown:
        known = ", ".join(SECURITY_ENV_PREFIX + k.upper() for k in (*_SECURITY_STRINGS, *_SECURITY_FLAGS))
        raise KafkaSecurityError(f"unknown variable(s) {', '.join(SECURITY_ENV_PREFIX + u.upper() for u in unknown)}; "
                                 f"known: {known}")
    config: dict = {k: v for k, v in given.items() if k in _SECURITY_STRINGS and v != ""}
    for flag in _SECURITY_FLAGS:
        if flag in given:
            value = given[flag].strip().lower()
            if value not in ("true", "false"):
                raise KafkaSecurityError(f"{SECURITY_ENV_PREFIX}{flag.upper()} must be true or false, not {given[flag]!r}")
            config[flag] = value == "true"
    protocol = config.get("security_protocol", "PLAINTEXT")
    if protocol not in _SECURITY_PROTOCOLS:
        raise KafkaSecurityError(f"{SECURITY_ENV_PREFIX}SECURITY_PROTOCOL={protocol!r}: use one of "
                                 f"{', '.join(_SECURITY_PROTOCOLS)}")
    if protocol.startswith("SASL_"):
        mechanism = config.get("sasl_mechanism")
        if mechanism not in _SASL_MECHANISMS:
            raise KafkaSecurityError(f"{protocol} needs {SECURITY_ENV_PREFIX}SASL_MECHANISM, one of "
                                     f"{', '.join(_SASL_MECHANISMS)} (got {mechanism!r})")
        missing = [k for k in ("sasl_plain_username", "sasl_plain_password") if not config.get(k)]
        if missing:
            raise KafkaSecurityError(f"{protocol} with {mechanism} needs "
                                     f"{' and '.join(SECURITY_ENV_PREFIX + k.upper() for k in missing)}")
    elif "sasl_mechanism" in config:
        raise KafkaSecurityError(f"{SECURITY_ENV_PREFIX}SASL_MECHANISM is set but the protocol is {protocol}: "
                                 "set SECURITY_PROTOCOL to SASL_SSL or SASL_PLAINTEXT")
    for key in _FILES:
        if key in config and not os.access(config[key], os.R_OK):
            raise KafkaSecurityError(f"{SECURITY_ENV_PREFIX}{key.upper()}: cannot read {config[key]}")
    return config


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
    config = {**_DEFAULTS, **overrides, **_REQUIRED, **security_config()}
    config["bootstrap_servers"] = bootstrap_servers
    config["client_id"] = client_id
    return config


def make_producer(bootstrap_servers: str, client_id: str = "newsradar", **overrides):
    """Build a KafkaProducer with :func:`producer_config`. The only producer factory."""
    from kafka import KafkaProducer

    return KafkaProducer(**producer_config(bootstrap_servers, client_id, **overrides))


def make_consumer(bootstrap_servers: str, **config):
    """A KafkaConsumer with ``config`` and the environment's TLS/SASL settings. The only consumer factory."""
    from kafka import KafkaConsumer

    return KafkaConsumer(**{**config, **security_config(), "bootstrap_servers": bootstrap_servers})


def make_admin(bootstrap_servers: str, **config):
    """A KafkaAdminClient with ``config`` and the environment's TLS/SASL settings. The only admin factory."""
    from kafka import KafkaAdminClient

    return KafkaAdminClient(**{**config, **security_config(), "bootstrap_servers": bootstrap_servers})


class _ProbeSilence:
    """While a probe runs, kafka-python's own log lines are dropped: a refused connection is the
    answer the probe asks for, not an error (without this, one "no broker" is ~20 ERROR lines).
    Counted, so overlapping probes on several threads restore the level only when the last ends;
    other clients' lines are dropped too for those few seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = logging.NOTSET

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._saved = logging.getLogger("kafka").level
                logging.getLogger("kafka").setLevel(logging.CRITICAL + 1)
            self._depth += 1

    def __exit__(self, *exc_info) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                logging.getLogger("kafka").setLevel(self._saved)


_probe_silence = _ProbeSilence()


def broker_answers(bootstrap_servers: str, timeout: float = 3.0) -> bool:
    """True when a broker at ``bootstrap_servers`` answers a metadata request in time.
    Quiet: kafka-python's log lines of the attempt are dropped (the answer is the news)."""
    with _probe_silence:
        return _probe(bootstrap_servers, timeout)


def _probe(bootstrap_servers: str, timeout: float) -> bool:
    from kafka.errors import KafkaError

    security_config()  # unusable TLS/SASL settings are the caller's error, not "no broker answers"
    if _all_refused(bootstrap_servers, timeout):
        # Nothing listens at any address: say so at once instead of retrying to the timeout.
        log.debug("broker at %s does not answer: every address refused the connection", bootstrap_servers)
        return False
    admin = None
    try:
        admin = make_admin(
            bootstrap_servers,
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


def _all_refused(bootstrap_servers: str, timeout: float) -> bool:
    """True when every bootstrap address actively refuses a TCP connection (nothing listens).
    Anything else (it connects, a timeout, a name that does not resolve, an address this
    parser cannot read) is left to the Kafka client's own attempt."""
    addresses = [a.strip() for a in bootstrap_servers.split(",") if a.strip()]
    if not addresses:
        return False
    for address in addresses:
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            return False
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=min(timeout, 2.0)):
                return False
        except ConnectionRefusedError:
            continue
        except OSError:
            return False
    return True


DAY = 86400.0

# How long each topic keeps records, by base name (a topic prefix does not change it). The
# pipeline rebuilds its memory from news.tagged and news.alerts at start and backtests read
# news.raw by time, so these must cover the longest memory: docs/design.md, "Topics".
DEFAULT_RETENTION = {
    TOPIC_RAW: 30 * DAY,
    # the watchlist's default story memory (14d) plus a week's margin
    TOPIC_TAGGED: 21 * DAY,
    TOPIC_ALERTS: 30 * DAY,
    TOPIC_DLQ: 30 * DAY,
    # a day's ranking per record: a quarter of history to compare days against
    TOPIC_CANDIDATES: 90 * DAY,
}
# Text compresses ~4x with zstd; alerts and raw articles are read back in bulk (rebuild, backtest).
DEFAULT_COMPRESSION = {TOPIC_RAW: "zstd", TOPIC_ALERTS: "zstd"}
# Kept by key, not by time: the newest record of each key stays for ever (one per organization).
COMPACTED = frozenset({TOPIC_NOVELTY})


@dataclass(frozen=True)
class TopicPolicy:
    """How newsradar creates its topics. ``None`` takes the cluster's default (for replication:
    ``default.replication.factor``; for min ISR: ``min.insync.replicas``), never a hard-coded 1."""

    partitions: int = 2
    replication_factor: int | None = None
    min_insync_replicas: int | None = None
    retention_seconds: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_RETENTION))
    compression: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_COMPRESSION))
    compacted: frozenset[str] = COMPACTED

    def configs(self, topic: str) -> dict[str, str]:
        base = base_topic(topic)
        out = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
        if base in self.compacted:
            out["cleanup.policy"] = "compact"
        if base in self.retention_seconds:
            out["retention.ms"] = str(int(self.retention_seconds[base] * 1000))
        if base in self.compression:
            out["compression.type"] = self.compression[base]
        if self.min_insync_replicas is not None:
            out["min.insync.replicas"] = str(self.min_insync_replicas)
        return out


# news.tagged and news.alerts created for a pipeline keep its memory plus this: the rebuild at
# start reads that margin of news.tagged for first and last mentions (transforms/rebuild.py).
TAGGED_MARGIN = 7 * DAY


def pipeline_topic_policy(memory_seconds: float, **overrides) -> TopicPolicy:
    """The policy topics are created with for a pipeline whose memory is ``memory_seconds``:
    news.tagged and news.alerts keep that plus :data:`TAGGED_MARGIN`, at least their defaults."""
    keep = {name: max(seconds, memory_seconds + TAGGED_MARGIN) if name in (TOPIC_TAGGED, TOPIC_ALERTS) else seconds
            for name, seconds in DEFAULT_RETENTION.items()}
    return TopicPolicy(retention_seconds=keep, **overrides)


def base_topic(topic: str) -> str:
    """``<prefix>news.raw`` -> ``news.raw`` (topic prefixes are plain string prefixes); a name that
    is not a newsradar topic is returned as is."""
    return next((base for base in ALL_TOPICS if topic.endswith(base)), topic)


def ensure_topics(
    bootstrap_servers: str,
    partitions: int | None = None,
    replication_factor: int | None = None,
    topics: Iterable[str] = ALL_TOPICS,
    timeout: float = 30.0,
    policy: TopicPolicy | None = None,
) -> list[str]:
    """Create the newsradar topics that do not exist yet; returns the names created.

    Topics are created with ``max.message.bytes`` = :data:`MAX_MESSAGE_BYTES` (every record within
    the record cap fits whatever the cluster's default), the policy's retention and compression,
    and its replication and min ISR (the cluster's defaults unless set). ``partitions`` and
    ``replication_factor`` override the policy's. Idempotent: existing topics are left as they are
    (neither their partition count nor their settings are changed; :func:`check_retention` says
    when an existing topic keeps too little).
    """
    from kafka.errors import TopicAlreadyExistsError

    policy = policy or TopicPolicy()
    partitions = partitions or policy.partitions
    replication = replication_factor or policy.replication_factor or -1  # -1: the broker's default
    admin = make_admin(bootstrap_servers, request_timeout_ms=int(timeout * 1000), client_id="newsradar-admin")
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in topics if t not in existing]
        created = []
        for name in wanted:
            try:
                admin.create_topics(
                    {name: {"num_partitions": partitions, "replication_factor": replication,
                            "configs": policy.configs(name)}},
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


def layout_mismatches(bootstrap_servers: str, topics: Iterable[str], partitions: int | None = None,
                      replication_factor: int | None = None, timeout: float = 30.0) -> dict[str, str]:
    """Existing topics whose partition count or replication factor is not the one asked for
    (``None``: not asked), each with a sentence saying what it has. ``ensure_topics`` never
    changes an existing topic, so a caller that asked for a layout must say when it did not get it."""

    if partitions is None and replication_factor is None:
        return {}
    admin = make_admin(bootstrap_servers, request_timeout_ms=int(timeout * 1000), client_id="newsradar-admin")
    try:
        described = admin.describe_topics(list(topics))
    finally:
        admin.close()
    out: dict[str, str] = {}
    for meta in described:
        parts = meta.get("partitions") or []
        if meta.get("error_code") or not parts:
            continue  # absent: nothing to compare
        problems = []
        if partitions is not None and len(parts) != partitions:
            problems.append(f"{len(parts)} partitions, not {partitions}")
        replicas = sorted({len(p.get("replica_nodes") or ()) for p in parts})
        if replication_factor is not None and replicas != [replication_factor]:
            problems.append(f"replication factor {'/'.join(map(str, replicas))}, not {replication_factor}")
        if problems:
            out[meta["name"]] = " and ".join(problems)
    return out


def topic_retention(bootstrap_servers: str, topics: Iterable[str], timeout: float = 30.0) -> dict[str, float | None]:
    """Each existing topic's effective retention in seconds (``None``: kept forever); topics that
    do not exist are left out."""
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = make_admin(bootstrap_servers, request_timeout_ms=int(timeout * 1000), client_id="newsradar-admin")
    try:
        present = [t for t in topics if t in set(admin.list_topics())]
        if not present:
            return {}
        found = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, configs={"retention.ms": None}) for t in present],
            config_filter="all",
        )
    finally:
        admin.close()
    out: dict[str, float | None] = {}
    for name, entries in _topic_config_entries(found).items():
        value = int(entries["retention.ms"])
        out[name] = None if value < 0 else value / 1000.0
    return out


def _topic_config_entries(found) -> dict[str, dict[str, str]]:
    """``{topic: {key: value}}`` from describe_configs' answer (``{type: {name: {key: {data}}}}``)."""
    out: dict[str, dict[str, str]] = {}
    for by_name in found.values():
        for name, entries in by_name.items():
            out[name] = {key: (data.get("value") if isinstance(data, dict) else data) for key, data in entries.items()}
    return out


def check_retention(bootstrap_servers: str, needs: Mapping[str, float], timeout: float = 30.0) -> list[str]:
    """Why the topics cannot hold what the pipeline must read back: one sentence per topic that
    keeps records for less than ``needs[topic]`` seconds. Empty when all is well."""
    problems = []
    for name, kept in sorted(topic_retention(bootstrap_servers, needs, timeout).items()):
        needed = needs[name]
        if kept is not None and kept < needed:
            problems.append(
                f"topic {name} keeps records for {_days(kept)} but the pipeline's memory needs {_days(needed)}: "
                f"raise its retention.ms to at least {int(needed * 1000)} (kafka-configs.sh --alter "
                f"--entity-type topics --entity-name {name} --add-config retention.ms={int(needed * 1000)})"
            )
    return problems


def _days(seconds: float) -> str:
    return f"{seconds / DAY:g}d" if seconds >= DAY else f"{seconds / 3600:g}h"


def missing_topics(bootstrap_servers: str, topics: Iterable[str] = ALL_TOPICS, timeout: float = 30.0) -> list[str]:
    """The newsradar topics that do not exist on the cluster (none created)."""

    admin = make_admin(bootstrap_servers, request_timeout_ms=int(timeout * 1000), client_id="newsradar-admin")
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

    from kafka import TopicPartition

    consumer = make_consumer(bootstrap_servers, enable_auto_commit=False, client_id="newsradar-read")
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


class _GroupBusy(RuntimeError):
    """The group coordinator answered with a retriable error for the group."""


def _live_members(described, group: str) -> int:
    """Live members of ``group`` in describe_groups' answer; a group error is raised
    (:class:`_GroupBusy` when it is worth asking again), never read as "nobody"."""
    info = described.get(group) if isinstance(described, dict) else None
    if not info:
        return 0
    error = info.get("error")
    if error and "GroupIdNotFound" in error:
        return 0  # never used, or gone: nobody there
    if error:
        if any(word in error for word in ("CoordinatorLoadInProgress", "NotCoordinator", "CoordinatorNotAvailable")):
            raise _GroupBusy(error)
        raise RuntimeError(f"describing consumer group {group}: {error}")
    if (info.get("group_state") or info.get("state")) in ("Dead", "Empty"):
        return 0
    return len(info.get("members") or ())


class GroupClaimed(RuntimeError):
    """Another live process holds the claim on this consumer group."""


class GroupClaim:
    """At most one running pipeline per consumer group, detected with Kafka's own liveness.

    The pipeline commits offsets without joining its group (Beam's readers assign partitions),
    so the group itself cannot say whether a pipeline is running. The claim is a second group,
    ``<group>.claim``, that this process joins with a consumer subscribed to a newsradar topic; the
    client's heartbeat thread keeps the membership alive while the process lives. Before joining,
    the claim group is described: members there belong to a pipeline that is running, so we refuse
    (:class:`GroupClaimed`). A pipeline killed with SIGKILL leaves its member until the broker's
    session timeout (``session_timeout_ms``) expires it; we wait that out, up to ``wait`` seconds,
    instead of refusing.
    """

    def __init__(self, bootstrap_servers: str, group_id: str, topic: str, *, wait: float = 30.0,
                 session_timeout_ms: int = 10_000, poll_interval: float = 1.0):
        self.bootstrap_servers = bootstrap_servers
        self.group = f"{group_id}.claim"
        self.topic = topic
        self.wait = wait
        self.session_timeout_ms = session_timeout_ms
        self.poll_interval = poll_interval
        self._consumer = None
        self._stop = None
        self._thread = None

    def members(self, timeout: float = 30.0) -> int:
        """Live members of the claim group (0: nobody holds it)."""
        import time

        from kafka.errors import CoordinatorLoadInProgressError, CoordinatorNotAvailableError

        admin = make_admin(self.bootstrap_servers, client_id="newsradar-admin")
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    return _live_members(admin.describe_groups([self.group]), self.group)
                except (CoordinatorNotAvailableError, CoordinatorLoadInProgressError, _GroupBusy):
                    # a new cluster creates its offsets topic on first use, a coordinator moves:
                    # retriable, within a bound
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        finally:
            admin.close()

    def __enter__(self) -> GroupClaim:
        import threading
        import time


        deadline = time.monotonic() + self.wait
        while (held := self.members()) > 0:
            if time.monotonic() >= deadline:
                raise GroupClaimed(
                    f"another pipeline is running on consumer group {self.group.removesuffix('.claim')!r} "
                    f"({held} member(s) in {self.group}, still there after {self.wait:.0f}s); stop it first, or "
                    "give this one its own --group_id"
                )
            log.info("waiting for the claim on %s to expire (a stopped pipeline's session)", self.group)
            time.sleep(1.0)
        self._consumer = make_consumer(
            self.bootstrap_servers, group_id=self.group, client_id="newsradar-claim",
            enable_auto_commit=False, session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(1000, self.session_timeout_ms // 5),
            # the claim reads nothing: it only polls to stay in the group
            max_poll_records=1, fetch_max_bytes=1024, max_partition_fetch_bytes=1024,
        )
        self._consumer.subscribe([self.topic])
        joined_by = time.monotonic() + 30.0
        while not self._consumer.assignment():  # joined once the group gave us the partitions
            if time.monotonic() > joined_by:
                self._consumer.close()
                raise GroupClaimed(f"could not join {self.group} within 30s")
            self._consumer.poll(timeout_ms=500)
            self._pause()
        # Two pipelines that looked at the same moment both saw nobody: whichever looks last
        # after joining sees the other and gives way (both may; never neither).
        if (held := self.members()) > 1:
            self._consumer.close()
            self._consumer = None
            raise GroupClaimed(
                f"another pipeline joined consumer group {self.group.removesuffix('.claim')!r} at the same moment "
                f"({held} members in {self.group}); start one at a time, or give each its own --group_id")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="newsradar-claim", daemon=True)
        self._thread.start()
        return self

    def _keep(self) -> None:
        # poll() keeps the member inside max.poll.interval; records are ignored (nothing is committed)
        while not self._stop.wait(self.poll_interval):
            self._consumer.poll(timeout_ms=0)
            self._pause()

    def _pause(self) -> None:
        # paused partitions are not fetched, but poll() still heartbeats and rejoins
        assigned = self._consumer.assignment()
        if assigned:
            self._consumer.pause(*assigned)

    def __exit__(self, *exc) -> None:
        if self._stop is not None:
            self._stop.set()
            self._thread.join(timeout=5)
        if self._consumer is not None:
            self._consumer.close()  # leaves the group at once: a restart need not wait
