"""WriteToKafka: one producer per worker, flushed per bundle; a failed send fails the bundle."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from newsradar.kafka import make_producer
from newsradar.records import Alert, DeadLetter, TaggedArticle


class KafkaWriteError(RuntimeError):
    """A send the broker did not acknowledge; raised in finish_bundle to fail the bundle."""


def message_for(record) -> tuple[bytes | None, bytes]:
    """The Kafka key and value of an output record: keyed by its identity, so that repeats
    land on one partition and any consumer can drop them by key."""
    if isinstance(record, TaggedArticle):
        return record.article.article_id.encode("utf-8"), record.encode()
    if isinstance(record, Alert):
        return record.alert_id.encode("utf-8"), record.encode()
    if isinstance(record, DeadLetter):
        return (record.source.encode("utf-8") if record.source else None), record.encode()
    raise TypeError(f"no Kafka encoding for {type(record).__name__}")


class _SendToKafka(beam.DoFn):
    """One producer per worker; a bundle succeeds only if every send in it was acknowledged."""

    def __init__(self, topic: str, bootstrap_servers: str, client_id: str):
        self._topic = topic
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self._sent = Metrics.counter("WriteToKafka", f"sent_{topic}")
        self._failed = Metrics.counter("WriteToKafka", f"failed_{topic}")

    def setup(self):
        self._producer = make_producer(self._bootstrap, client_id=self._client_id)

    def start_bundle(self):
        self._futures = []

    def process(self, record):
        key, value = message_for(record)
        self._futures.append(self._producer.send(self._topic, key=key, value=value))
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
    it to :class:`CommitOffsets`.
    """

    def __init__(self, topic: str, bootstrap_servers: str, client_id: str = "newsradar-pipeline"):
        super().__init__()
        self._topic = topic
        self._bootstrap = bootstrap_servers
        self._client_id = client_id

    def expand(self, records):
        return records | "Send" >> beam.ParDo(_SendToKafka(self._topic, self._bootstrap, self._client_id))
