"""The daily news.candidates step on the streaming DirectRunner (TestStream): one ranking per
UTC day when the watermark passes its end, records that decode, dead letters for articles the
finder fails on."""

from __future__ import annotations

import dataclasses

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing import test_pipeline, test_stream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from newsradar.config import load_watchlist
from newsradar.records import decode_candidate, parse_time
from tests.transforms.test_candidates import STORIES, WATCHLIST, tagged
from transforms import rank_candidates
from transforms.rank_candidates import RankCandidates
from transforms.reload import WatchlistSource
from transforms.tagging import Tagger

DAY1 = parse_time("2026-05-01T00:00:00Z").timestamp()
DAY2 = DAY1 + 86400


@pytest.fixture(scope="module")
def tagger():
    return Tagger(load_watchlist(WATCHLIST))


def _summary(record) -> tuple:
    again = decode_candidate(record.encode())
    assert again == record
    return (record.day, record.rank, record.name, record.stories, record.topic_share, record.candidate_id[:14])


def test_one_ranking_per_day_when_the_day_ends(tagger):
    day1 = [tagged(tagger, i, *s) for i, s in enumerate(STORIES)]
    # The next day: the movement in two more stories, nothing else.
    day2 = [tagged(tagger, 10 + i, *STORIES[i]) for i in (0, 3)]
    stream = (
        test_stream.TestStream()
        .add_elements([TimestampedValue(a, DAY1 + 3600 * (i + 1)) for i, a in enumerate(day1[:4])])
        .add_elements([TimestampedValue(a, DAY1 + 3600 * (i + 10)) for i, a in enumerate(day1[4:])])
        .advance_watermark_to(DAY2 + 60)
        .add_elements([TimestampedValue(a, DAY2 + 3600) for a in day2])
        .advance_watermark_to_infinity()
    )
    options = PipelineOptions([])
    options.view_as(StandardOptions).streaming = True
    pipeline = test_pipeline.TestPipeline(options=options)
    candidates, dlq = pipeline | stream | RankCandidates(WatchlistSource.fixed(tagger.watchlist))
    assert_that(candidates | beam.Map(_summary), equal_to([
        ("2026-05-01", 1, "Голос запаса", 4, 1.0, "2026-05-01:ru:"),
        ("2026-05-01", 2, "Совет семей запасников", 2, 1.0, "2026-05-01:ru:"),
        ("2026-05-01", 3, "Зелёный сад", 3, 0.333, "2026-05-01:ru:"),
        ("2026-05-02", 1, "Голос запаса", 2, 1.0, "2026-05-02:ru:"),
    ]), label="daily rankings")
    assert_that(dlq, equal_to([]), label="no dead letters")
    pipeline.run().wait_until_finish()


def test_an_article_the_finder_fails_on_is_a_dead_letter(tagger, monkeypatch):
    article = tagged(tagger, 1, *STORIES[0])
    broken = dataclasses.replace(article, story_id="boom")

    real = rank_candidates.add_article

    def add_article(tallies, finder, t):
        if t.story_id == "boom":
            raise ValueError("finder bug")
        return real(tallies, finder, t)

    monkeypatch.setattr(rank_candidates, "add_article", add_article)
    stream = (test_stream.TestStream()
              .add_elements([TimestampedValue(article, DAY1 + 10), TimestampedValue(broken, DAY1 + 20)])
              .advance_watermark_to_infinity())
    options = PipelineOptions([])
    options.view_as(StandardOptions).streaming = True
    pipeline = test_pipeline.TestPipeline(options=options)
    candidates, dlq = pipeline | stream | RankCandidates(WatchlistSource.fixed(tagger.watchlist), min_stories=1)
    assert_that(candidates | beam.Map(lambda c: (c.name, c.stories)),
                equal_to([("Голос запаса", 1), ("Совет семей запасников", 1)]), label="the good article counts")
    assert_that(dlq | beam.Map(lambda d: (d.step, d.error)), equal_to([("candidates", "ValueError: finder bug")]),
                label="the bad one is a dead letter")
    pipeline.run().wait_until_finish()
