"""build() over a bounded input in input order (run_bounded, DirectRunner): the same assembly
as the stream."""

from __future__ import annotations

import collections
import json

import pytest

from newsradar.config import load_watchlist
from newsradar.records import parse_time
from pipelines.run import run_bounded
from tests.conftest import FIXTURES

RAW = FIXTURES / "pipeline" / "raw.jsonl"
STORIES = {json.loads(line)["id"]: json.loads(line) for line in (FIXTURES / "pipeline" / "stories.jsonl").open()}


def event_time(line: bytes) -> float:
    """A replay's element time: when the connector fetched the record (what Kafka stamps),
    or the epoch for a line that is not a record (it only goes to the DLQ)."""
    try:
        return parse_time(json.loads(line)["fetched_at"]).timestamp()
    except (ValueError, KeyError, TypeError):
        return 0.0


@pytest.fixture(scope="module")
def outputs():
    lines = RAW.read_bytes().splitlines()
    result = run_bounded([(line, event_time(line)) for line in lines],
                         load_watchlist(FIXTURES / "pipeline" / "watchlist.yaml"))
    # In input order, by the line they came from.
    tagged = [result.tagged[i] for i in sorted(result.tagged)]
    dlq = [result.dead[i] for i in sorted(result.dead)]
    return tagged, dlq, result.alerts


def test_every_line_comes_out_once_as_article_or_dead_letter(outputs):
    tagged, dlq, alerts = outputs
    ids = collections.Counter(t.article.article_id for t in tagged)
    expected = {f"rss:fixture:{key}" for key in STORIES} | {"tg:examplechan:17"}
    assert set(ids) == expected
    # The refetched repeat of wire-en-1 is dropped; the edited copy-en-1 may follow its original.
    assert ids["rss:fixture:wire-en-1"] == 1
    assert sorted(d.error.split(":")[0] for d in dlq) == ["not JSON", "not UTF-8", "title", "v"]
    assert {d.step for d in dlq} == {"parse"}
    assert any(d.encoding == "base64" for d in dlq)
    # Alerts are tested in tests/transforms/test_alert_rules.py and test_raise_alerts.py; here: of these articles.
    assert all(alert.article_id in ids for alert in alerts)


def test_the_edit_wins(outputs):
    tagged, _, _ = outputs
    versions = [t for t in tagged if t.article.article_id == "rss:fixture:copy-en-1"]
    assert any("training starts on Monday" in t.article.text for t in versions)
    assert [t.is_update for t in versions].count(False) == 1


def test_language_and_stories(outputs):
    tagged, _, _ = outputs
    by_id = {t.article.article_id.removeprefix("rss:fixture:"): t for t in tagged}
    for key, row in STORIES.items():
        assert by_id[key].lang == row["lang"], key
    stories = collections.defaultdict(set)
    for key, row in STORIES.items():
        stories[row["story"]].add(by_id[key].story_id)
    assert all(len(ids) == 1 for ids in stories.values()), stories
    assert len({next(iter(ids)) for ids in stories.values()}) == len(stories)


def test_html_only_post_is_cleaned(outputs):
    tagged, _, _ = outputs
    post = next(t for t in tagged if t.article.article_id == "tg:examplechan:17")
    assert post.article.text == "Повестки раздают прямо у метро — очевидцы"
    assert post.article.html is None
    assert post.lang == "ru"
