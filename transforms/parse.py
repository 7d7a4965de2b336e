"""Parse ``news.raw`` payloads into :class:`~newsradar.records.RawArticle`; everything else to
the dead-letter output.

Guarantee: every input element comes out exactly once, either as a valid RawArticle on the
main output or as a :class:`~newsradar.records.DeadLetter` on ``dlq`` carrying the original
bytes, the error (naming the field) and the step. Each dead letter is counted.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from newsradar.metrics import pipeline_metrics
from newsradar.records import DeadLetter, RawArticle, RecordError, decode_raw

from .deadletters import DLQ

STEP = "parse"


def payload_of(element) -> tuple[bytes, str | None]:
    """The bytes of an input element and where it came from: a Kafka record (anything with
    ``value`` and ``source``) or plain bytes/str from a file."""
    if isinstance(element, (bytes, bytearray)):
        return bytes(element), None
    if isinstance(element, str):
        return element.encode("utf-8"), None
    value = getattr(element, "value", None)
    if value is None:
        # A tombstone or a foreign object: still a dead letter, never silently skipped.
        return b"", getattr(element, "source", None)
    return bytes(value), getattr(element, "source", None)


def parse_article(payload: bytes, source: str | None = None, step: str = STEP) -> RawArticle | DeadLetter:
    """Decode one payload: a RawArticle, or a DeadLetter saying why not."""
    try:
        return decode_raw(payload)
    except RecordError as exc:
        return DeadLetter.wrap(payload, error=str(exc), step=step, source=source)


class _Parse(beam.DoFn):
    def __init__(self, keyed: bool = False):
        self._keyed = keyed
        self._ok = Metrics.counter("ParseRaw", "articles")
        self._bad = Metrics.counter("ParseRaw", "dead_letters")

    def setup(self):
        self._dlq_metric = pipeline_metrics().dlq.labels(STEP)

    def process(self, element):
        key, element = element if self._keyed else (None, element)
        payload, source = payload_of(element)
        result = parse_article(payload, source)
        out = (key, result) if self._keyed else result
        if isinstance(result, DeadLetter):
            self._bad.inc()
            self._dlq_metric.inc()
            yield beam.pvalue.TaggedOutput(DLQ, out)
        else:
            self._ok.inc()
            yield out


class ParseRaw(beam.PTransform):
    """bytes (or KafkaRecord) → RawArticle on ``articles``; DeadLetter on ``dlq``.
    With ``keyed=True`` the elements are (key, payload) pairs and both outputs keep the key."""

    def __init__(self, keyed: bool = False, label: str | None = None):
        super().__init__(label)
        self._keyed = keyed

    def expand(self, payloads):
        return payloads | "Decode" >> beam.ParDo(_Parse(self._keyed)).with_outputs(DLQ, main="articles")
