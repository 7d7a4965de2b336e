"""ParseRaw: valid payloads become RawArticle, everything else a counted dead letter."""

from __future__ import annotations

import json

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from prometheus_client import REGISTRY

from newsradar.records import MAX_DLQ_ORIGINAL_BYTES, MAX_RECORD_BYTES, DeadLetter, RawArticle
from tests.pipelines.support import raw_article
from transforms.kafkaio import KafkaRecord
from transforms.parse import ParseRaw, parse_article, payload_of

VALID = raw_article(1).encode()


def _without(field: str) -> bytes:
    data = json.loads(VALID)
    del data[field]
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"this is not json", "not JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"[1, 2, 3]", "expected a JSON object"),
        (json.dumps({**json.loads(VALID), "v": 4}).encode(), "v: unsupported schema version 4"),
        (_without("article_id"), "article_id: required field is missing"),
        (json.dumps({**json.loads(VALID), "source_kind": "fax"}).encode(), "source_kind: expected one of"),
        (json.dumps({**json.loads(VALID), "published_at": "yesterday"}).encode(), "published_at: expected an RFC 3339"),
        (json.dumps({**json.loads(VALID), "text": "x" * MAX_RECORD_BYTES}).encode(), "exceeds the"),
        (b"", "not JSON"),
    ],
)
def test_bad_payloads_become_dead_letters_with_the_original_bytes(payload, error):
    result = parse_article(payload, source="news.raw/1/42")
    assert isinstance(result, DeadLetter)
    assert error in result.error
    assert result.step == "parse"
    assert result.source == "news.raw/1/42"
    if len(payload) > MAX_DLQ_ORIGINAL_BYTES:
        # The head is kept (cut so its JSON form fits the cap, escapes included; never inside a
        # character); the whole payload stays on news.raw at result.source.
        kept = result.original_bytes()
        assert kept == payload[: len(kept)] and MAX_DLQ_ORIGINAL_BYTES - 1024 < len(kept) <= MAX_DLQ_ORIGINAL_BYTES
        assert result.original_size == len(payload)
    else:
        assert result.original_bytes() == payload


def test_non_utf8_payload_is_kept_as_base64():
    result = parse_article(b"\xff\xfe\x00garbage")
    assert result.encoding == "base64"
    assert result.original_bytes() == b"\xff\xfe\x00garbage"


def test_valid_payload_becomes_the_record():
    result = parse_article(VALID)
    assert isinstance(result, RawArticle)
    assert result.encode() == VALID


def test_payload_of_reads_kafka_records_bytes_and_tombstones():
    record = KafkaRecord("news.raw", 1, 42, 0, b"k", b"payload")
    assert payload_of(record) == (b"payload", "news.raw/1/42")
    assert payload_of(b"abc") == (b"abc", None)
    assert payload_of("abc") == (b"abc", None)
    tombstone = KafkaRecord("news.raw", 0, 7, 0, b"k", None)
    assert payload_of(tombstone) == (b"", "news.raw/0/7")


def test_parse_raw_splits_and_counts():
    before = REGISTRY.get_sample_value("newsradar_dlq_records_total", {"step": "parse"}) or 0.0
    inputs = [raw_article(1).encode(), b"{broken", raw_article(2).encode(), KafkaRecord("news.raw", 0, 9, 0, None, b"nope")]
    pipeline = test_pipeline.TestPipeline()
    parsed = pipeline | beam.Create(inputs) | ParseRaw()
    assert_that(parsed.articles | "Ids" >> beam.Map(lambda a: a.article_id), equal_to(["rss:test:1", "rss:test:2"]),
                label="articles")
    assert_that(parsed.dlq | "Sources" >> beam.Map(lambda d: (d.source, d.original)),
                equal_to([(None, "{broken"), ("news.raw/0/9", "nope")]), label="dead letters")
    pipeline.run().wait_until_finish()
    assert (REGISTRY.get_sample_value("newsradar_dlq_records_total", {"step": "parse"}) or 0.0) - before == 2


def test_a_checked_article_parses_as_its_encoding_does():
    """The batch path hands a file's checked article to ParseRaw as it is: what comes out is
    what its encoding gives, clamped alike; one over news.raw's cap is the same dead letter."""
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 3, 1, tzinfo=UTC)
    article = raw_article(1, published_at="2026-03-04T23:00:00Z", fetched_at="2026-03-05T00:00:00Z")  # ahead of `now`
    assert parse_article(article, now=now) == parse_article(article.encode(), now=now)
    assert {"published_at_clamped", "fetched_at_clamped"} <= set(parse_article(article, now=now).flags)
    assert parse_article(article, now=now + timedelta(days=10)) is article  # nothing to clamp: itself
    huge = raw_article(2, text="слово " * 400_000)  # 4.4 MB encoded
    letter, reference = parse_article(huge, now=now), parse_article(huge.encode(), now=now)
    assert isinstance(letter, DeadLetter)
    assert (letter.step, letter.error, letter.original, letter.encoding, letter.original_size) == \
        (reference.step, reference.error, reference.original, reference.encoding, reference.original_size)
    assert "exceeds" in letter.error and str(MAX_RECORD_BYTES) in letter.error
