"""WriteToKafka: one producer per worker, flushed per bundle; a failed send fails the bundle.

A record too large for the broker (over :data:`~newsradar.records.MAX_OUTPUT_RECORD_BYTES`
encoded) would fail every retry of its bundle, so it is never sent: its dead letter (step
``write``, the encoded record as original, cut to the size cap) goes to the dead-letter topic
instead, and is counted.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from newsradar.kafka import make_producer
from newsradar.metrics import pipeline_metrics
from newsradar.records import MAX_OUTPUT_RECORD_BYTES, Alert, Candidate, DeadLetter, NoveltySummary, TaggedArticle

STEP = "write"


class KafkaWriteError(RuntimeError):
    """A send the broker did not acknowledge; raised in finish_bundle to fail the bundle."""


def message_for(record) -> tuple[bytes | None, bytes]:
    """The Kafka key and value of an output record: keyed by its identity, so that repeats
    land on one partition and any consumer can drop them by key."""
    if isinstance(record, TaggedArticle):
        return record.article.article_id.encode("utf-8"), record.encode()
    if isinstance(record, Alert):
        return record.alert_id.encode("utf-8"), record.encode()
    if isinstance(record, NoveltySummary):
        # Compacted by this key: the newest summary of an organization is the one kept.
        return record.org_id.encode("utf-8"), record.encode()
    if isinstance(record, Candidate):
        return record.candidate_id.encode("utf-8"), record.encode()
    if isinstance(record, DeadLetter):
        return (record.source.encode("utf-8") if record.source else None), record.encode()
    raise TypeError(f"no Kafka encoding for {type(record).__name__}")


def oversize_letter(value: bytes, topic: str, max_bytes: int) -> DeadLetter:
    """The dead letter of an encoded record that is too large for ``topic``."""
    return DeadLetter.wrap(value, error=f"RecordTooLarge: {len(value)} bytes encoded, over the {max_bytes}-byte "
                                         f"limit of {topic}", step=STEP, source=None)


class _SendToKafka(beam.DoFn):
    """One producer per worker; a bundle succeeds only if every send in it was acknowledged."""

    def __init__(self, topic: str, bootstrap_servers: str, client_id: str, dlq_topic: str | None,
                 max_bytes: int):
        self._topic = topic
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self._dlq_topic = dlq_topic
        self._max_bytes = max_bytes
        self._sent = Metrics.counter("WriteToKafka", f"sent_{topic}")
        self._failed = Metrics.counter("WriteToKafka", f"failed_{topic}")
        self._oversize = Metrics.counter("WriteToKafka", f"oversize_{topic}")

    def setup(self):
        self._producer = make_producer(self._bootstrap, client_id=self._client_id)

    def start_bundle(self):
        self._futures = []

    def process(self, record):
        key, value = message_for(record)
        topic = self._topic
        if len(value) > self._max_bytes:
            if self._dlq_topic is None:
                raise KafkaWriteError(f"a record of {len(value)} bytes is over the {self._max_bytes}-byte limit "
                                      f"for {topic}, and no dead-letter topic was given")
            letter = oversize_letter(value, topic, self._max_bytes)
            self._oversize.inc()
            pipeline_metrics().dlq.labels(step=STEP).inc()
            topic, key, value = self._dlq_topic, key, letter.encode()
        self._futures.append(self._producer.send(topic, key=key, value=value))
        return ()

    def finish_bundle(self):
        futures, self._futures = self._futures, []
        if not futures:
            return
        self._producer.flush()
        errors = [f.exception for f in futures if f.failed()]
        undone = sum(1 for f in futures if not f.is_done)
        self._sent.inc(len(futures) - len(errors) - undone)
        if errors or undone:
            self._failed.inc(len(errors) + undone)
            raise KafkaWriteError(
                f"{len(errors) + undone} of {len(futures)} sends to {self._topic} were not acknowledged "
                f"(first error: {errors[0] if errors else 'still pending after flush'}); failing the bundle so it is retried"
            )

    def teardown(self):
        producer = getattr(self, "_producer", None)
        if producer is not None:
            producer.close()


class WriteToKafka(beam.PTransform):
    """Write output records (TaggedArticle, Alert, DeadLetter) to a topic.

    Returns an empty PCollection whose watermark says how far the writes are durable; pass
    it to :class:`CommitOffsets`. A record over ``max_bytes`` encoded goes to ``dlq_topic`` as
    a dead letter (see the module docstring); without ``dlq_topic`` it fails the bundle.
    """

    def __init__(self, topic: str, bootstrap_servers: str, client_id: str = "newsradar-pipeline",
                 dlq_topic: str | None = None, max_bytes: int = MAX_OUTPUT_RECORD_BYTES):
        super().__init__()
        self._topic = topic
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self._dlq_topic = dlq_topic
        self._max_bytes = max_bytes

    def expand(self, records):
        return records | "Send" >> beam.ParDo(
            _SendToKafka(self._topic, self._bootstrap, self._client_id, self._dlq_topic, self._max_bytes))
