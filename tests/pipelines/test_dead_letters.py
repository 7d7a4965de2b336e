"""Dead letters beyond parse: an article that makes Normalize, Dedupe, the tagger or the novelty
rules raise, with any exception a record's code can raise, goes to the DLQ with its record, the
error and the step, and the stream goes on (it used to fail the bundle forever). Only the named
infrastructure errors still fail the bundle.

The faults are injected into each step's own plain function for one article id: no real
input makes our steps raise today, which is exactly when such a bug bites.
"""

from __future__ import annotations

import json

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_stream import TestStream as BeamTestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue
from prometheus_client import REGISTRY

import transforms.dedupe
import transforms.normalize
from newsradar.config import load_watchlist
from newsradar.records import TaggedArticle, decode_raw, parse_time
from pipelines.monitor import build
from pipelines.run import run_bounded
from tests.conftest import FIXTURES
from tests.pipelines.support import raw_article
from transforms.alert_rules import AlertRules
from transforms.tagging import Tagger

WATCHLIST = load_watchlist(FIXTURES / "pipeline" / "watchlist.yaml")
# article number -> the step whose code fails on it
FAULTS = {101: "normalize", 102: "dedupe", 103: "dedupe", 104: "tag", 105: "novelty.event"}
STEPS = ("parse", "normalize", "dedupe", "tag", "novelty.event")
# Errors of the record's code, not the machine's: every one becomes a dead letter.
RECORD_ERRORS = (ValueError, RuntimeError, AttributeError, KeyError, ZeroDivisionError)


def _failing(fn, article_id: str, position: int, exc: type[BaseException]):
    def wrapper(*args, **kwargs):
        record = args[position]
        record = record.article if isinstance(record, TaggedArticle) else record
        if record.article_id == article_id:
            raise exc(f"injected fault for {article_id}")
        return fn(*args, **kwargs)

    return wrapper


def inject(monkeypatch, exc: type[BaseException] | tuple[type[BaseException], ...] = ValueError) -> None:
    """Each step's own code raises for one article: Normalize (normalize), DropRepeats
    (version_of), GroupStories (assign_story), TagArticles (Tagger.tag), the novelty rules
    (AlertRules.apply, on the mention event of article 105). ``exc``: one error for all, or one
    per fault of FAULTS, in its order."""
    errors = exc if isinstance(exc, tuple) else (exc,) * len(FAULTS)
    e101, e102, e103, e104, e105 = errors
    monkeypatch.setattr(transforms.normalize, "normalize",
                        _failing(transforms.normalize.normalize, "rss:test:101", 0, e101))
    monkeypatch.setattr(transforms.dedupe, "version_of", _failing(transforms.dedupe.version_of, "rss:test:102", 0, e102))
    monkeypatch.setattr(transforms.dedupe, "assign_story",
                        _failing(transforms.dedupe.assign_story, "rss:test:103", 1, e103))
    monkeypatch.setattr(Tagger, "tag", _failing(Tagger.tag, "rss:test:104", 1, e104))
    monkeypatch.setattr(AlertRules, "apply", _failing(AlertRules.apply, "rss:test:105", 2, e105))


def payloads() -> list[tuple[bytes, float]]:
    """Good articles around one bad one per step, and a malformed record."""
    numbers = [1, 101, 2, 102, 103, 3, 104, 4, 105]
    out = []
    for n in numbers:
        # 105 names the watched organization, so it reaches the novelty rules.
        article = raw_article(n, text="The Council of Mothers and Wives met today.") if n == 105 else raw_article(n)
        out.append((article.encode(), parse_time(article.published_at).timestamp()))
    out.insert(5, (b"not a record", out[4][1]))
    return out


def dlq_counts() -> dict[str, float]:
    return {s: REGISTRY.get_sample_value("newsradar_dlq_records_total", {"step": s}) or 0.0 for s in STEPS}


def summary(letter) -> tuple[str, str, str]:
    """(step, article id from the record the letter carries, error type)."""
    if letter.step == "parse":
        return ("parse", letter.original, letter.error.split(":")[0])
    if letter.step == "novelty.event":  # the mention event, as JSON
        return (letter.step, json.loads(letter.original)["article_id"], letter.error.split(":")[0])
    return (letter.step, decode_raw(letter.original_bytes()).article_id, letter.error.split(":")[0])


def expected_letters(errors: tuple[type[BaseException], ...]) -> list[tuple[str, str, str]]:
    return [("parse", "not a record", "not JSON"),
            *[(step, f"rss:test:{n}", exc.__name__) for (n, step), exc in zip(FAULTS.items(), errors, strict=True)]]


# The novelty rules fail after tagging: article 105 is tagged, its alert is what is lost.
GOOD_IDS = [f"rss:test:{n}" for n in (1, 2, 3, 4, 105)]


def test_stream_routes_each_step_s_failures_to_the_dlq_and_goes_on(monkeypatch):
    # One run, each step failing with another of the errors a record's code can raise.
    exc = RECORD_ERRORS
    inject(monkeypatch, exc)
    before = dlq_counts()
    stream = BeamTestStream()
    for payload, at in payloads():
        stream = stream.add_elements([TimestampedValue(payload, at)])
    stream = stream.advance_watermark_to_infinity()
    options = PipelineOptions(flags=[], runner="BundleBasedDirectRunner")
    options.view_as(StandardOptions).streaming = True
    with beam.Pipeline(options=options) as p:
        outputs = build(p | stream, WATCHLIST)
        assert_that(outputs.tagged | beam.Map(lambda t: t.article.article_id), equal_to(GOOD_IDS), label="Tagged")
        assert_that(outputs.dlq | beam.Map(summary), equal_to(expected_letters(exc)), label="DeadLetters")
        assert_that(outputs.alerts | beam.Map(lambda a: a.article_id), equal_to([]), label="NoAlert")
    after = dlq_counts()
    assert {s: after[s] - before[s] for s in STEPS} == {
        "parse": 1, "normalize": 1, "dedupe": 2, "tag": 1, "novelty.event": 1}


def test_bounded_ordered_run_routes_them_too_keyed_by_input():
    # Without faults first: the same input tags every article and dead-letters only the
    # malformed record, so what the next test sees is the injected faults' doing.
    result = run_bounded(payloads(), WATCHLIST)
    assert sorted(result.dead) == [5] and result.dead[5].step == "parse"
    assert sorted(t.article.article_id for t in result.tagged.values()) == sorted(
        {*GOOD_IDS, *(f"rss:test:{n}" for n in FAULTS)}
    )
    assert [a.article_id for a in result.alerts] == ["rss:test:105"]


def test_bounded_ordered_run_with_faults(monkeypatch):
    inject(monkeypatch)
    result = run_bounded(payloads(), WATCHLIST)
    # Input positions: 1 101 2 102 103 <bad> 3 104 4 105
    assert {i: summary(d) for i, d in result.dead.items()} == {
        1: ("normalize", "rss:test:101", "ValueError"),
        3: ("dedupe", "rss:test:102", "ValueError"),
        4: ("dedupe", "rss:test:103", "ValueError"),
        5: ("parse", "not a record", "not JSON"),
        7: ("tag", "rss:test:104", "ValueError"),
        9: ("novelty.event", "rss:test:105", "ValueError"),
    }
    assert {i: t.article.article_id for i, t in result.tagged.items()} == {
        0: "rss:test:1", 2: "rss:test:2", 6: "rss:test:3", 8: "rss:test:4", 9: "rss:test:105",
    }
    assert result.alerts == []


def test_errors_a_record_cannot_cause_still_fail_the_bundle(monkeypatch):
    # An OSError (disk, network, state) is not the article's fault: retrying is right, and
    # a dead letter would lose the article to a passing outage.
    inject(monkeypatch, OSError)
    # The runner wraps the error in its own exception type; the message is the original one.
    with pytest.raises(Exception, match="injected fault for rss:test:101"):
        run_bounded(payloads(), WATCHLIST)
