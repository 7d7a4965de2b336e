"""Alert records: events from tagged articles, snippets, why sentences, severities, ids,
and the worker-side Novelty that counts what it raises."""

from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from newsradar.config.watchlist import Watchlist
from newsradar.identity import alert_id
from newsradar.metrics import PipelineMetrics
from newsradar.records import Alert, Mention, RawArticle, TaggedArticle, TopicTag, decode_alert
from transforms.alerting import Novelty
from transforms.alerts import event_time, events_of, make_alert, raised, severity, snippet, why
from transforms.nlp import analysis_text
from transforms.novelty import HOUR, OrgState, Trigger

WL = Watchlist.model_validate(
    {
        "organizations": [
            {"id": "cmw", "name": "Council of Mothers and Wives", "aliases": {"en": ["Council of Mothers and Wives"]},
             "severity": "warning"},
            {"id": "ur", "name": "United Russia", "aliases": {"en": ["United Russia"]}, "severity": "info"},
        ],
        "topics": [
            {"id": "protest", "name": "Public protests", "terms": {"en": ["protest"]}, "severity": "critical"},
            {"id": "quiet", "name": "Quiet", "terms": {"en": ["quiet"]}, "alert": False},
        ],
    }
)


def article(text="The Council of Mothers and Wives held a protest.", title="Protest", published="2026-03-02T10:00:00Z",
            fetched="2026-03-02T10:05:00Z", mentions=None, topics=()):
    raw = RawArticle(article_id="a1", source_id="s", source_kind="rss", url="https://example.org/a1", title=title,
                     text=text, published_at=published, fetched_at=fetched)
    full = analysis_text(title, text)
    if mentions is None:
        start = full.index("Council")
        mentions = (Mention("cmw", "Council of Mothers and Wives", start, start + 28, "exact"),)
    return TaggedArticle(article=raw, lang="en", story_id="story-1", topics=topics, mentions=mentions)


def test_snippet_always_contains_the_span():
    text = ("word " * 200) + "MATCH" + (" word" * 200)
    start = text.index("MATCH")
    s = snippet(text, start, start + 5, width=60)
    assert "MATCH" in s and s.startswith("…") and s.endswith("…") and len(s) <= 62
    assert snippet("short MATCH text", 6, 11) == "short MATCH text"
    long_span = "x" * 500
    assert snippet(long_span, 0, 500, width=100) == long_span


def test_events_one_per_organization_with_its_first_mention():
    full = analysis_text("Protest", "Council of Mothers and Wives and United Russia; the Council of Mothers and Wives again.")
    m1 = Mention("cmw", "Council of Mothers and Wives", full.index("Council"), full.index("Council") + 28, "exact")
    m2 = Mention("ur", "United Russia", full.index("United"), full.index("United") + 13, "exact")
    m3 = Mention("cmw", "Council of Mothers and Wives", full.rindex("Council"), full.rindex("Council") + 28, "lemma")
    tagged = article(text=full.split("\n\n", 1)[1], mentions=(m1, m2, m3), topics=(TopicTag("protest", 3.0),))
    events = events_of(tagged, seq=7)
    assert [org for org, _ in events] == ["cmw", "ur"]
    ev = events[0][1]
    assert ev.match == "exact" and ev.seq == 7 and ev.story_id == "story-1"
    assert ev.mention in ev.snippet
    assert ev.topics == (("protest", 3.0, ()),)
    assert events_of(article(mentions=())) == []


def test_event_time_never_after_the_fetch():
    assert event_time("2030-01-01T00:00:00Z", "2026-03-02T10:05:00Z") == datetime(2026, 3, 2, 10, 5, tzinfo=UTC).timestamp()
    assert event_time("2026-03-02T10:00:00Z", "2026-03-02T10:05:00Z") == datetime(2026, 3, 2, 10, tzinfo=UTC).timestamp()


def _event():
    return events_of(article())[0][1]


@pytest.mark.parametrize(
    "trig, words",
    [
        (Trigger("new_mention", "cmw", "story-1", None), ["Council of Mothers and Wives", "new story", "“Protest”"]),
        (Trigger("first_in_window", "cmw", "story-1", None, gap=9.5 * 86400, window=7 * 86400),
         ["again after 9.5 days", "quiet window is 7.0 days"]),
        (Trigger("surge", "cmw", "42", None, count=12, baseline=1.5, hour_start=1772445600.0, window=7 * 86400),
         ["12 new stories", "8.0 times its baseline of 1.50 per hour", "2026-03-02 10:00 UTC"]),
        (Trigger("surge", "cmw", "42", None, count=6, baseline=0.0, hour_start=1772445600.0, window=HOUR),
         ["6 new stories", "no stories per hour before"]),
        (Trigger("topic", "protest", "cmw|story-1", None, topic=("protest", 4.5, ("protest", "rally"))),
         ["Public protests", "score 4.5: protest, rally", "mentions Council of Mothers and Wives"]),
    ],
)
def test_why_is_a_readable_sentence_with_the_numbers(trig, words):
    trig = Trigger(**{**{f: getattr(trig, f) for f in trig.__dataclass_fields__}, "event": _event()})
    sentence = why(trig, WL.organization("cmw"), WL)
    for w in words:
        assert w in sentence
    assert sentence.endswith(".")


def test_severities():
    cmw, ur = WL.organization("cmw"), WL.organization("ur")
    ev = _event()
    assert severity(Trigger("new_mention", "cmw", "s", ev), cmw, WL) == "warning"
    assert severity(Trigger("first_in_window", "cmw", "s", ev), cmw, WL) == "critical"
    assert severity(Trigger("surge", "ur", "s", ev), ur, WL) == "warning"
    assert severity(Trigger("topic", "protest", "x", ev, topic=("protest", 3, ())), ur, WL) == "critical"
    assert raised("critical") == "critical"


def test_make_alert_is_a_valid_record_with_a_deterministic_id():
    ev = _event()
    alert = make_alert(Trigger("new_mention", "cmw", "story-1", ev), WL.organization("cmw"), WL,
                       datetime(2026, 3, 2, 11, tzinfo=UTC))
    assert isinstance(alert, Alert)
    assert alert.alert_id == alert_id("new_mention", "cmw", "story-1")
    assert decode_alert(alert.encode()) == alert
    assert alert.org_id == "cmw" and alert.topic_id is None and "Council of Mothers and Wives" in alert.snippet
    topic = make_alert(Trigger("topic", "protest", "cmw|story-1", ev, topic=("protest", 3.0, ())),
                       WL.organization("cmw"), WL, datetime(2026, 3, 2, 11, tzinfo=UTC))
    assert topic.topic_id == "protest" and topic.org_id == "cmw"


def test_worker_novelty_counts_alerts_and_latency_and_filters_topics():
    metrics = PipelineMetrics(CollectorRegistry())
    clock = datetime(2026, 3, 2, 10, 10, tzinfo=UTC)
    nov = Novelty(lambda: WL, now=lambda: clock, metrics=metrics)
    tagged = article(topics=(TopicTag("protest", 3.0), TopicTag("quiet", 5.0)))
    alerts = nov.apply(OrgState(), events_of(tagged)[0][1])
    assert [a.kind for a in alerts] == ["new_mention", "topic"]
    assert [a.topic_id for a in alerts if a.kind == "topic"] == ["protest"]  # "quiet" does not alert
    assert metrics.alerts.labels(kind="topic")._value.get() == 1
    assert metrics.published_to_alert._sum.get() == pytest.approx(2 * 600)  # 10 minutes after publication, twice
    assert metrics.fetched_to_alert._sum.get() == pytest.approx(2 * 300)


def test_worker_novelty_ignores_an_organization_no_longer_watched():
    nov = Novelty(lambda: WL)
    ev = _event()
    gone = type(ev)(**{**{f: getattr(ev, f) for f in ev.__dataclass_fields__}, "org_id": "removed"})
    assert nov.apply(OrgState(), gone) == []
