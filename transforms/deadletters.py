"""One way for a per-record step to send what it fails on to ``news.dlq``: :class:`RecordStep`.

A record that makes a step's code raise would fail its bundle, and the runner would retry that
bundle forever: one bad record stops the stream. So every record step (parse, normalize,
dedupe, tagging, novelty) calls its plain function through :meth:`RecordStep.attempt`, which
turns **any** exception that function raises into a dead letter (step, error class, message,
the original), counted in ``newsradar_dlq_records_total{step}`` and the Beam counter
``<namespace>/dead_letters``, and logged with its traceback.

Only :data:`INFRASTRUCTURE_ERRORS` fail the bundle, on purpose: they say nothing about the
record (a full disk, a lost connection, a Kafka client error, memory), and retrying the bundle
is right for them. A step wraps only the code that looks at the record, never state reads and
writes, timers or sends: errors there are the runner's to retry.

A dead letter is built from the record's bytes, never by re-encoding text that failed: parse
keeps the payload as it came; later steps keep the article as a ``news.raw`` record (lone
surrogates escaped, so the encoding cannot fail), which ``newsradar dlq replay`` can send back
once the cause is fixed. :meth:`newsradar.records.DeadLetter.wrap` caps the encoded size.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from kafka.errors import KafkaError

from newsradar.records import DeadLetter, RawArticle, TaggedArticle

log = logging.getLogger(__name__)

DLQ = "dlq"
# The errors that fail a bundle instead of making a dead letter: the machine's, not the
# record's. OSError covers disks, sockets and timeouts; KafkaError the client's own errors.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (OSError, MemoryError, KafkaError)


class Routed(NamedTuple):
    """A step's outputs: the articles that go on, and the dead letters."""

    articles: beam.PCollection
    dlq: beam.PCollection


def original_of(record: Any) -> tuple[bytes, str | None]:
    """The bytes a dead letter keeps for ``record``, and where it came from when known.

    A payload (bytes, or a Kafka record with ``value``) is kept as it came; an article as its
    news.raw record; anything else (an intermediate value such as a mention event) as JSON,
    so that even a step's own values can always be written down."""
    if isinstance(record, (bytes, bytearray)):
        return bytes(record), None
    if isinstance(record, str):
        return record.encode("utf-8", "surrogatepass"), None
    if isinstance(record, TaggedArticle):
        record = record.article
    if isinstance(record, RawArticle):
        return record.encode(), None
    value = getattr(record, "value", None)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value), getattr(record, "source", None)
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        data: Any = dataclasses.asdict(record)
    else:
        data = {"repr": repr(record)[:10_000]}
    return json.dumps(data, ensure_ascii=True, default=repr, sort_keys=True).encode("ascii"), None


def dead_letter(record: Any, exc: BaseException, step: str) -> DeadLetter:
    """The dead letter of ``record`` (see :func:`original_of`), naming the error."""
    payload, source = original_of(record)
    return DeadLetter.wrap(payload, error=f"{type(exc).__name__}: {exc}", step=step, source=source)


class DeadLetters:
    """One step's dead letters: builds them, counts them, logs them. Make it in ``setup``."""

    def __init__(self, step: str, namespace: str):
        from newsradar.metrics import pipeline_metrics

        self.step = step
        self._beam = Metrics.counter(namespace, "dead_letters")
        self._prometheus = pipeline_metrics().dlq.labels(step)

    def count(self) -> None:
        self._beam.inc()
        self._prometheus.inc()

    def letter(self, record: Any, exc: BaseException) -> DeadLetter:
        article_id = getattr(getattr(record, "article", record), "article_id", None)
        # With the traceback: a record that breaks our code is most often a bug to fix.
        log.warning("%s: %s sent to news.dlq", self.step, f"article {article_id}" if article_id else "a record",
                    exc_info=exc)
        self.count()
        return dead_letter(record, exc, self.step)


def attempt(letters: DeadLetters, record: Any, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``; when it raises anything but an infrastructure error, the dead letter of
    ``record`` (built, counted and logged by ``letters``) instead. The one place a record's
    error becomes a dead letter, for the Beam steps (:meth:`RecordStep.attempt`) and the
    batch path (:mod:`pipelines.batch`) alike."""
    try:
        return fn(*args)
    except INFRASTRUCTURE_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001 -- any other error is the record's: dead-lettered, counted, logged
        return letters.letter(record, exc)


class RecordStep(beam.DoFn):
    """Base of the per-record steps (keyed or not).

    A subclass names its ``STEP`` (the dead letters' ``step``) and ``NAMESPACE`` (its Beam
    counters). A stateless step implements :meth:`apply` (its plain function, one record in,
    one result out) and optionally :meth:`emitted`; stateful steps write their own
    ``process`` and call their plain functions through :meth:`attempt`. With ``keyed=True``
    elements are (key, record) pairs and both outputs keep the key.
    """

    STEP: ClassVar[str] = ""
    NAMESPACE: ClassVar[str] = ""

    def __init__(self, keyed: bool = False):
        self._keyed = keyed

    def setup(self) -> None:
        self._dead = DeadLetters(self.STEP, self.NAMESPACE)

    def attempt(self, record: Any, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``; when it raises anything but an infrastructure error, the dead
        letter of ``record`` instead (check the result with ``isinstance(r, DeadLetter)``)."""
        return attempt(self._dead, record, fn, *args)

    def apply(self, record: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement apply() or process()")

    def emitted(self, result: Any) -> None:
        """Called with each result that goes on (counters)."""

    def process(self, element):
        key, record = element if self._keyed else (None, element)
        result = self.attempt(record, self.apply, record)
        if isinstance(result, DeadLetter):
            yield beam.pvalue.TaggedOutput(DLQ, (key, result) if self._keyed else result)
            return
        self.emitted(result)
        yield (key, result) if self._keyed else result
