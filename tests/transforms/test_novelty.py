"""Novelty rules: the plain state machine, then the stateful Beam step under TestStream
(out-of-order arrivals, expiry by timer, near-duplicates)."""

from datetime import UTC, datetime

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_stream import TestStream as BeamTestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from newsradar.config.watchlist import Watchlist
from newsradar.identity import alert_id
from newsradar.records import Mention, RawArticle, TaggedArticle, TopicTag, format_time
from transforms import novelty
from transforms.alerting import RaiseAlerts, RaiseAlertsInOrder
from transforms.novelty import HOUR, MentionEvent, OrgState, observe
from transforms.reload import WatchlistSource

DAY = 86400.0
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC).timestamp()

WATCHLIST = Watchlist.model_validate(
    {
        "organizations": [
            {"id": "cmw", "name": "Council of Mothers and Wives", "aliases": {"en": ["Council of Mothers and Wives"]},
             "severity": "warning"},
            {"id": "quick", "name": "Quick", "aliases": {"en": ["Quick"]}, "novelty_window": "1d"},
        ],
        "topics": [
            {"id": "protest", "name": "Protests", "terms": {"en": ["protest"]}},
            {"id": "quiet", "name": "Quiet", "terms": {"en": ["quiet"]}, "alert": False},
        ],
        "novelty": {"default_window": "7d", "story_memory": "14d",
                    "surge": {"min_mentions": 5, "factor": 4, "baseline": "7d", "cooldown": "6h"}},
    }
)
CMW = WATCHLIST.organization("cmw")


def event(story, t, article=None, org="cmw", topics=()):
    return MentionEvent(
        org_id=org, article_id=article or f"a-{story}-{t}", story_id=story, event_time=t, title="t", url="u",
        snippet="s", mention="Council", match="exact", published_at=format_time(datetime.fromtimestamp(t, UTC)),
        fetched_at=format_time(datetime.fromtimestamp(t, UTC)), topics=topics,
    )


def kinds(triggers):
    return [t.kind for t in triggers]


# ---------------------------------------------------------------------------
# plain rules


def test_new_mention_once_per_story_near_duplicates_raise_nothing():
    state = OrgState()
    assert kinds(observe(state, event("s1", T0, "a1"), CMW, WATCHLIST.novelty)) == ["new_mention"]
    assert observe(state, event("s1", T0 + 60, "a2"), CMW, WATCHLIST.novelty) == []
    assert kinds(observe(state, event("s2", T0 + 120, "a3"), CMW, WATCHLIST.novelty)) == ["new_mention"]


def test_first_in_window_after_the_organizations_window():
    state = OrgState()
    observe(state, event("s1", T0), CMW, WATCHLIST.novelty)
    assert kinds(observe(state, event("s2", T0 + 6.9 * DAY), CMW, WATCHLIST.novelty)) == ["new_mention"]
    trig = observe(state, event("s3", T0 + 14 * DAY), CMW, WATCHLIST.novelty)
    assert kinds(trig) == ["new_mention", "first_in_window"]
    assert trig[1].gap == pytest.approx(7.1 * DAY)
    quick = WATCHLIST.organization("quick")
    state = OrgState()
    observe(state, event("q1", T0, org="quick"), quick, WATCHLIST.novelty)
    assert "first_in_window" in kinds(observe(state, event("q2", T0 + 1.5 * DAY, org="quick"), quick, WATCHLIST.novelty))


def test_no_first_in_window_without_history_or_for_late_arrivals():
    state = OrgState()
    assert kinds(observe(state, event("s1", T0 + 30 * DAY), CMW, WATCHLIST.novelty)) == ["new_mention"]
    # An article published 20 days before the newest one arrives late: new story, no silence ended.
    assert kinds(observe(state, event("s0", T0 + 10 * DAY), CMW, WATCHLIST.novelty)) == ["new_mention"]
    assert state.last_seen == T0 + 30 * DAY


def test_surge_against_baseline_with_cooldown():
    state = OrgState()
    # A baseline of one story every 4 hours for two days.
    t = T0
    for i in range(12):
        assert "surge" not in kinds(observe(state, event(f"b{i}", t), CMW, WATCHLIST.novelty))
        t += 4 * HOUR
    burst_hour = novelty.hour_of(t) * HOUR + 5
    seen = []
    for i in range(6):
        seen += kinds(observe(state, event(f"x{i}", burst_hour + i * 60), CMW, WATCHLIST.novelty))
    assert seen.count("surge") == 1  # fired at the 5th story of the hour, not again
    surge = [tr for tr in observe(state, event("x-late", burst_hour + 600), CMW, WATCHLIST.novelty)]
    assert "surge" not in kinds(surge)
    # Within the cooldown another busy hour raises nothing; after it, it may.
    for i in range(6):
        assert "surge" not in kinds(observe(state, event(f"y{i}", burst_hour + 3 * HOUR + i), CMW, WATCHLIST.novelty))
    later = burst_hour + 7 * HOUR
    got = []
    for i in range(12):
        got += kinds(observe(state, event(f"z{i}", later + i), CMW, WATCHLIST.novelty))
    assert "surge" in got


def test_surge_needs_factor_times_baseline():
    state = OrgState()
    t = T0
    for i in range(48):  # two stories an hour for a day
        observe(state, event(f"b{i}", t), CMW, WATCHLIST.novelty)
        t += 0.5 * HOUR
    start = novelty.hour_of(t) * HOUR + 1
    got = []
    for i in range(7):  # 7 < 4 x 2
        got += kinds(observe(state, event(f"x{i}", start + i), CMW, WATCHLIST.novelty))
    assert "surge" not in got


def test_a_late_burst_of_old_articles_does_not_surge():
    state = OrgState()
    observe(state, event("now", T0 + 3 * DAY), CMW, WATCHLIST.novelty)
    got = []
    for i in range(10):
        got += kinds(observe(state, event(f"old{i}", T0 + i), CMW, WATCHLIST.novelty))
    assert "surge" not in got


def test_topic_alert_once_per_topic_and_story():
    state = OrgState()
    topics = (("protest", 4.0, ("protest",)),)
    trig = observe(state, event("s1", T0, topics=topics), CMW, WATCHLIST.novelty)
    assert kinds(trig) == ["new_mention", "topic"]
    assert trig[1].subject == "protest" and trig[1].trigger == "cmw|s1"
    assert observe(state, event("s1", T0 + 1, "copy", topics=topics), CMW, WATCHLIST.novelty) == []


def test_state_is_pruned_to_the_memory_and_capped(monkeypatch):
    state = OrgState()
    for i in range(30):
        observe(state, event(f"s{i}", T0 + i * DAY), CMW, WATCHLIST.novelty)
    assert min(state.stories.values()) >= T0 + 29 * DAY - WATCHLIST.novelty.story_memory
    assert len(state.hours) <= 7 * 24 + 3
    novelty.prune(state, T0 + 100 * DAY, WATCHLIST.novelty)
    assert state.is_idle() and state.last_seen == T0 + 29 * DAY
    monkeypatch.setattr(novelty, "MAX_STORIES", 5)
    for i in range(10):
        observe(state, event(f"c{i}", T0 + 100 * DAY + i), CMW, WATCHLIST.novelty)
    assert len(state.stories) == 5 and "c9" in state.stories


def test_alert_ids_do_not_depend_on_arrival_order():
    events = [event("s1", T0, "a1"), event("s1", T0 + 5, "a2"), event("s2", T0 + 9 * DAY, "a3")]
    ids = []
    for order in (events, list(reversed(events))):
        state = OrgState()
        ids.append({alert_id(t.kind, t.subject, t.trigger)
                    for e in order for t in observe(state, e, CMW, WATCHLIST.novelty) if t.kind == "new_mention"})
    assert ids[0] == ids[1] == {alert_id("new_mention", "cmw", "s1"), alert_id("new_mention", "cmw", "s2")}


# ---------------------------------------------------------------------------
# Beam: the stateful step on a TestStream, the ordered replay on a bounded input


def tagged(article_id, story, t, org="cmw", duplicate_of=None, topics=()):
    when = format_time(datetime.fromtimestamp(t, UTC))
    raw = RawArticle(article_id=article_id, source_id="src", source_kind="rss", url=f"https://example.org/{article_id}",
                     title=f"Title {article_id}", text="The Council of Mothers and Wives said.", published_at=when,
                     fetched_at=when)
    mention = Mention(org_id=org, text="Council of Mothers and Wives", start=len(raw.title) + 6,
                      end=len(raw.title) + 34, match="exact")
    return TaggedArticle(article=raw, lang="en", story_id=story, duplicate_of=duplicate_of,
                         topics=tuple(TopicTag(t_, 4.0) for t_ in topics), mentions=(mention,))


def streaming_options():
    options = PipelineOptions(flags=[], runner="BundleBasedDirectRunner")
    options.view_as(StandardOptions).streaming = True
    return options


def test_stream_out_of_order_and_near_duplicates():
    stream = (
        BeamTestStream()
        .add_elements([TimestampedValue(tagged("a1", "s1", T0 + 2 * DAY), T0 + 2 * DAY)])
        .add_elements([TimestampedValue(tagged("a0", "s0", T0), T0 + 2 * DAY + 60)])  # late, older
        .add_elements([TimestampedValue(tagged("a1-copy", "s1", T0 + 2 * DAY + 30, duplicate_of="a1"), T0 + 2 * DAY + 90)])
        .advance_watermark_to(T0 + 3 * DAY)
        .add_elements([TimestampedValue(tagged("a2", "s2", T0 + 10 * DAY, topics=("protest",)), T0 + 10 * DAY)])
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline(options=streaming_options()) as p:
        alerts = p | stream | RaiseAlerts(WatchlistSource.fixed(WATCHLIST)) | beam.Map(lambda a: (a.kind, a.article_id))
        assert_that(
            alerts,
            equal_to([
                ("new_mention", "a1"),
                ("new_mention", "a0"),  # a late story is still a new story
                # a1-copy: same story, nothing; a0 did not end a silence (it is older)
                ("new_mention", "a2"),
                ("first_in_window", "a2"),  # 8 days after a1, the newest before it
                ("topic", "a2"),
            ]),
        )


def test_stream_state_expires_on_the_timer():
    memory = novelty.memory(WATCHLIST.novelty)
    stream = (
        BeamTestStream()
        .add_elements([TimestampedValue(tagged("a1", "s1", T0), T0)])
        .advance_watermark_to(T0 + memory + 10)
        # The same story again, published an hour after the first but fetched much later:
        # only the timer can have pruned it, so it is news again, with the same alert id.
        .add_elements([TimestampedValue(tagged("a1b", "s1", T0 + HOUR), T0 + memory + 20)])
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline(options=streaming_options()) as p:
        alerts = p | stream | RaiseAlerts(WatchlistSource.fixed(WATCHLIST)) | beam.Map(lambda a: (a.kind, a.alert_id))
        same = alert_id("new_mention", "cmw", "s1")
        assert_that(alerts, equal_to([("new_mention", same), ("new_mention", same)]))


def test_stream_without_expiry_remembers_the_story():
    stream = (
        BeamTestStream()
        .add_elements([TimestampedValue(tagged("a1", "s1", T0), T0)])
        .advance_watermark_to(T0 + 3 * DAY)
        .add_elements([TimestampedValue(tagged("a1b", "s1", T0 + HOUR), T0 + 3 * DAY)])
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline(options=streaming_options()) as p:
        alerts = p | stream | RaiseAlerts(WatchlistSource.fixed(WATCHLIST)) | beam.Map(lambda a: a.article_id)
        assert_that(alerts, equal_to(["a1"]))


def test_bounded_replay_in_input_order_is_reproducible():
    numbered = [
        (0, tagged("a1", "s1", T0)),
        (1, tagged("b1", "t1", T0 + 60, org="quick")),
        (2, tagged("a2", "s1", T0 + 120, duplicate_of="a1")),
        (3, tagged("a3", "s3", T0 + 8 * DAY)),
    ]
    expected = [
        ((0, 0, 0), "new_mention", alert_id("new_mention", "cmw", "s1")),
        ((1, 0, 0), "new_mention", alert_id("new_mention", "quick", "t1")),
        ((3, 0, 0), "new_mention", alert_id("new_mention", "cmw", "s3")),
        ((3, 0, 1), "first_in_window", alert_id("first_in_window", "cmw", "s3")),
    ]
    for _ in range(2):  # the same alerts, keys and ids on every run
        with beam.Pipeline(runner="BundleBasedDirectRunner", options=PipelineOptions(flags=[])) as p:
            out = (
                p
                | beam.Create(numbered)
                | RaiseAlertsInOrder(WatchlistSource.fixed(WATCHLIST))
                | beam.Map(lambda kv: (kv[0], kv[1].kind, kv[1].alert_id))
            )
            assert_that(out, equal_to(expected))
