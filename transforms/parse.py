"""Parse ``news.raw`` payloads into :class:`~newsradar.records.RawArticle`; everything else to
the dead-letter output.

Guarantee: every input element comes out exactly once, either as a valid RawArticle on the
main output or as a :class:`~newsradar.records.DeadLetter` on ``dlq`` carrying the original
bytes, the error (naming the field) and the step. Each dead letter is counted. Event times
from the future are clamped (see :func:`parse_article`).
"""

from __future__ import annotations

from datetime import datetime

import apache_beam as beam
from apache_beam.metrics import Metrics

from newsradar.metrics import pipeline_metrics
from newsradar.records import DeadLetter, RawArticle, RecordError, clamp_future, decode_raw, surely_fits, utc_now

from .deadletters import DLQ, RecordStep

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


def parse_article(payload: bytes | RawArticle, source: str | None = None, step: str = STEP,
                  now: datetime | None = None) -> RawArticle | DeadLetter:
    """Decode one payload: a RawArticle, or a DeadLetter saying why not. Times later than
    ``now`` (the wall clock) plus :data:`~newsradar.records.MAX_CLOCK_SKEW` are moved back
    and flagged (:func:`~newsradar.records.clamp_future`): a producer with a fast clock must
    not move event time, and every timer with it, into the future.

    ``payload`` may also be an article its caller built and checked (the batch path from a
    file): decoding its encoding would give it back, so only the clamp is left, unless the
    encoding may be over news.raw's cap, when its bytes are judged as the record's would be."""
    if isinstance(payload, RawArticle):
        if surely_fits(payload):
            return clamp_future(payload, now or utc_now())
        payload = payload.encode()
    try:
        article = decode_raw(payload)
    except RecordError as exc:
        return DeadLetter.wrap(payload, error=str(exc), step=step, source=source)
    return clamp_future(article, now or utc_now())


CLAMPED = "_clamped"


class _Parse(RecordStep):
    STEP = STEP
    NAMESPACE = "ParseRaw"

    def __init__(self, keyed: bool = False):
        super().__init__(keyed)
        self._ok = Metrics.counter("ParseRaw", "articles")

    def apply(self, element) -> RawArticle | DeadLetter:
        payload, source = payload_of(element)
        result = parse_article(payload, source)
        if isinstance(result, DeadLetter):
            self._dead.count()
        return result

    def emitted(self, result: RawArticle) -> None:
        self._ok.inc()
        for flag in result.flags or ():
            if flag.endswith(CLAMPED):
                pipeline_metrics().clamped_times.labels(field=flag.removesuffix(CLAMPED)).inc()


class ParseRaw(beam.PTransform):
    """bytes (or KafkaRecord) → RawArticle on ``articles``; DeadLetter on ``dlq``.
    With ``keyed=True`` the elements are (key, payload) pairs and both outputs keep the key."""

    def __init__(self, keyed: bool = False, label: str | None = None):
        super().__init__(label)
        self._keyed = keyed

    def expand(self, payloads):
        return payloads | "Decode" >> beam.ParDo(_Parse(self._keyed)).with_outputs(DLQ, main="articles")
