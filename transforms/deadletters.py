"""Dead letters of the per-element steps after parse (Normalize, Dedupe, tagging).

An article that makes a step's code raise would fail its bundle, and the runner would retry
that bundle forever: one bad record stops the stream. So a step catches the errors a record
can cause (:data:`DATA_ERRORS`) around its per-element work and sends the record to
``news.dlq`` instead, with the error and the step, counted in
``newsradar_dlq_records_total{step}`` and the Beam counter ``<Step>/dead_letters``.

What is *not* caught still fails the bundle, on purpose: errors of state, timers, Kafka or
the runner (the runner retries the bundle; retrying is right for them), and exception types
that say nothing about the record. A step catches only around the code that looks at the
record, never around state reads and writes.

The dead letter carries the article as a ``news.raw`` record (its text as the step received
it), so it can be replayed once the cause is fixed.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from newsradar.records import DeadLetter, RawArticle, TaggedArticle

log = logging.getLogger(__name__)

DLQ = "dlq"
# Errors a record can cause in our code and libraries (UnicodeError is a ValueError;
# ArithmeticError covers overflows from absurd dates and sizes).
DATA_ERRORS = (ValueError, TypeError, KeyError, IndexError, ArithmeticError, RecursionError)
# An exception's text can quote the whole input; the record itself is in the letter.
MAX_ERROR_CHARS = 1000


class Routed(NamedTuple):
    """A step's outputs: the articles that go on, and the dead letters."""

    articles: beam.PCollection
    dlq: beam.PCollection


def dead_letter(record: RawArticle | TaggedArticle, exc: BaseException, step: str) -> DeadLetter:
    """The dead letter of ``record`` (the article as a news.raw record), naming the error."""
    raw = record.article if isinstance(record, TaggedArticle) else record
    error = f"{type(exc).__name__}: {exc}"
    if len(error) > MAX_ERROR_CHARS:
        error = error[: MAX_ERROR_CHARS - 1] + "…"
    return DeadLetter.wrap(raw.encode(), error=error, step=step)


class DeadLetters:
    """One step's dead letters: builds them, counts them, logs them. Make it in ``setup``."""

    def __init__(self, step: str, namespace: str):
        from newsradar.metrics import pipeline_metrics

        self.step = step
        self._beam = Metrics.counter(namespace, "dead_letters")
        self._prometheus = pipeline_metrics().dlq.labels(step)

    def letter(self, record: RawArticle | TaggedArticle, exc: BaseException) -> DeadLetter:
        raw = record.article if isinstance(record, TaggedArticle) else record
        # With the traceback: a record that breaks our code is most often a bug to fix.
        log.warning("%s: article %s sent to news.dlq", self.step, raw.article_id, exc_info=exc)
        self._beam.inc()
        self._prometheus.inc()
        return dead_letter(record, exc, self.step)
