"""The alert rules as plain code: events from tagged articles and snippets, the novelty
rules' state machine, why sentences, severities and ids, and the worker-side AlertRules that
counts what it raises."""

import subprocess
import sys
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from newsradar.config.watchlist import Watchlist
from newsradar.identity import alert_id
from newsradar.metrics import PipelineMetrics
from newsradar.records import Alert, Mention, RawArticle, TaggedArticle, TopicTag, decode_alert, format_time
from tests.conftest import REPO
from transforms import alert_rules
from transforms.alert_rules import (
    HOUR,
    AlertRules,
    MentionEvent,
    OrgState,
    Trigger,
    event_time,
    events_of,
    make_alert,
    observe,
    raised,
    severity,
    snippet,
    why,
)
from transforms.nlp import analysis_text

DAY = 86400.0
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC).timestamp()

# Shared with tests/transforms/test_raise_alerts.py.
WATCHLIST = Watchlist.model_validate(
    {
        "organizations": [
            {"id": "cmw", "name": "Council of Mothers and Wives", "aliases": {"en": ["Council of Mothers and Wives"]},
             "severity": "warning"},
            {"id": "ur", "name": "United Russia", "aliases": {"en": ["United Russia"]}, "severity": "info"},
            {"id": "quick", "name": "Quick", "aliases": {"en": ["Quick"]}, "novelty_window": "1d"},
        ],
        "topics": [
            {"id": "protest", "name": "Public protests", "terms": {"en": ["protest"]}, "severity": "critical"},
            {"id": "quiet", "name": "Quiet", "terms": {"en": ["quiet"]}, "alert": False},
        ],
        "novelty": {"default_window": "7d", "story_memory": "14d",
                    "surge": {"min_mentions": 5, "factor": 4, "baseline": "7d", "cooldown": "6h"}},
    }
)
CMW = WATCHLIST.organization("cmw")


# ---------------------------------------------------------------------------
# events: a tagged article as the rules' input


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
    assert ev.topics == (("protest", 3.0, (), None),)
    assert events_of(article(mentions=())) == []


def test_event_time_never_after_the_fetch():
    assert event_time("2030-01-01T00:00:00Z", "2026-03-02T10:05:00Z") == datetime(2026, 3, 2, 10, 5, tzinfo=UTC).timestamp()
    assert event_time("2026-03-02T10:00:00Z", "2026-03-02T10:05:00Z") == datetime(2026, 3, 2, 10, tzinfo=UTC).timestamp()


def _event():
    return events_of(article())[0][1]


# ---------------------------------------------------------------------------
# the novelty rules


def event(story, t, article=None, org="cmw", topics=()):
    return MentionEvent(
        org_id=org, article_id=article or f"a-{story}-{t}", story_id=story, event_time=t, title="t", url="u",
        snippet="s", mention="Council", match="exact", published_at=format_time(datetime.fromtimestamp(t, UTC)),
        fetched_at=format_time(datetime.fromtimestamp(t, UTC)), topics=topics,
    )


def kinds(triggers):
    return [t.kind for t in triggers]


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
    burst_hour = alert_rules.hour_of(t) * HOUR + 5
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
    start = alert_rules.hour_of(t) * HOUR + 1
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
    topics = (("protest", 4.0, ("protest",), None),)
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
    alert_rules.prune(state, T0 + 100 * DAY, WATCHLIST.novelty)
    assert state.is_idle() and state.last_seen == T0 + 29 * DAY
    monkeypatch.setattr(alert_rules, "MAX_STORIES", 5)
    for i in range(10):
        observe(state, event(f"c{i}", T0 + 100 * DAY + i), CMW, WATCHLIST.novelty)
    assert len(state.stories) == 5 and "c9" in state.stories


def _prune_by_sorting(seen: dict[str, float], horizon: float, cap: int) -> dict[str, float]:
    """The definition prune's shortcut must agree with: drop what is at or before the
    horizon, then keep the ``cap`` newest by a stable sort (ties: the earlier inserted goes)."""
    kept = {k: at for k, at in seen.items() if at > horizon}
    return dict(sorted(kept.items(), key=lambda kv: kv[1])[-cap:]) if len(kept) > cap else kept


def test_prune_at_the_cap_forgets_what_a_full_sort_would(monkeypatch):
    # prune runs after every mention; at the cap it drops the oldest story without sorting
    # them all. Late events, equal times and a horizon passing several at once, as a stream has.
    import random

    monkeypatch.setattr(alert_rules, "MAX_STORIES", 7)
    rng = random.Random(5)
    state, reference = OrgState(), {}
    now = T0
    for i in range(400):
        now += rng.choice([0, 0, 60, 3600, 2 * DAY])
        at = now - rng.choice([0, 0, 0, 30, 5 * HOUR])  # some late, many at the same second
        story = f"s{rng.randrange(60)}" if rng.random() < 0.2 else f"n{i}"
        for seen in (state.stories, reference):
            seen.setdefault(story, at)
        topics = (("protest", 3.0, ("protest",), None),) if i % 3 == 0 else ()
        if topics:
            state.topic_stories.setdefault(f"protest|{story}", at)
        alert_rules.prune(state, now, WATCHLIST.novelty)
        reference = _prune_by_sorting(reference, now - WATCHLIST.novelty.story_memory, 7)
        assert state.stories == reference
        assert len(state.topic_stories) <= 7
    assert state.stories == reference and len(reference) == 7


def test_alert_ids_do_not_depend_on_arrival_order():
    events = [event("s1", T0, "a1"), event("s1", T0 + 5, "a2"), event("s2", T0 + 9 * DAY, "a3")]
    ids = []
    for order in (events, list(reversed(events))):
        state = OrgState()
        ids.append({alert_id(t.kind, t.subject, t.trigger)
                    for e in order for t in observe(state, e, CMW, WATCHLIST.novelty) if t.kind == "new_mention"})
    assert ids[0] == ids[1] == {alert_id("new_mention", "cmw", "s1"), alert_id("new_mention", "cmw", "s2")}


# ---------------------------------------------------------------------------
# alerts


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
        (Trigger("topic", "protest", "cmw|story-1", None, topic=("protest", 4.5, ("protest", "rally"), None)),
         ["Public protests", "score 4.5: protest, rally", "mentions Council of Mothers and Wives"]),
        # decided by the learned classifier: its probability and words, and what the rules scored
        (Trigger("topic", "protest", "cmw|story-1", None, topic=("protest", 1.0, ("стояли", "с портретами"), 0.734)),
         ["Public protests", "learned classifier, probability 0.73: стояли, с портретами", "rules score 1",
          "mentions Council of Mothers and Wives"]),
    ],
)
def test_why_is_a_readable_sentence_with_the_numbers(trig, words):
    trig = Trigger(**{**{f: getattr(trig, f) for f in trig.__dataclass_fields__}, "event": _event()})
    sentence = why(trig, WATCHLIST.organization("cmw"), WATCHLIST)
    for w in words:
        assert w in sentence
    assert sentence.endswith(".")


def test_severities():
    cmw, ur = WATCHLIST.organization("cmw"), WATCHLIST.organization("ur")
    ev = _event()
    assert severity(Trigger("new_mention", "cmw", "s", ev), cmw, WATCHLIST) == "warning"
    assert severity(Trigger("first_in_window", "cmw", "s", ev), cmw, WATCHLIST) == "critical"
    assert severity(Trigger("surge", "ur", "s", ev), ur, WATCHLIST) == "warning"
    assert severity(Trigger("topic", "protest", "x", ev, topic=("protest", 3, (), None)), ur, WATCHLIST) == "critical"
    assert raised("critical") == "critical"


def test_make_alert_is_a_valid_record_with_a_deterministic_id():
    ev = _event()
    alert = make_alert(Trigger("new_mention", "cmw", "story-1", ev), WATCHLIST.organization("cmw"), WATCHLIST,
                       datetime(2026, 3, 2, 11, tzinfo=UTC))
    assert isinstance(alert, Alert)
    assert alert.alert_id == alert_id("new_mention", "cmw", "story-1")
    assert decode_alert(alert.encode()) == alert
    assert alert.org_id == "cmw" and alert.topic_id is None and "Council of Mothers and Wives" in alert.snippet
    topic = make_alert(Trigger("topic", "protest", "cmw|story-1", ev, topic=("protest", 3.0, (), None)),
                       WATCHLIST.organization("cmw"), WATCHLIST, datetime(2026, 3, 2, 11, tzinfo=UTC))
    assert topic.topic_id == "protest" and topic.org_id == "cmw"


# ---------------------------------------------------------------------------
# AlertRules: one worker's rules


def test_alert_rules_counts_alerts_and_latency_and_filters_topics():
    metrics = PipelineMetrics(CollectorRegistry())
    clock = datetime(2026, 3, 2, 10, 10, tzinfo=UTC)
    rules = AlertRules(lambda: WATCHLIST, now=lambda: clock, metrics=metrics)
    tagged = article(topics=(TopicTag("protest", 3.0), TopicTag("quiet", 5.0)))
    alerts = rules.apply(OrgState(), events_of(tagged)[0][1])
    assert [a.kind for a in alerts] == ["new_mention", "topic"]
    assert [a.topic_id for a in alerts if a.kind == "topic"] == ["protest"]  # "quiet" does not alert
    assert metrics.alerts.labels(kind="topic")._value.get() == 1
    assert metrics.published_to_alert._sum.get() == pytest.approx(2 * 600)  # 10 minutes after publication, twice
    assert metrics.fetched_to_alert._sum.get() == pytest.approx(2 * 300)


def test_alert_rules_ignores_an_organization_no_longer_watched():
    rules = AlertRules(lambda: WATCHLIST)
    ev = _event()
    gone = type(ev)(**{**{f: getattr(ev, f) for f in ev.__dataclass_fields__}, "org_id": "removed"})
    assert rules.apply(OrgState(), gone) == []


def test_alert_rules_tells_the_callers_counter_what_it_raised_and_ignored():
    counted = []
    # The clock just after the event: on the wall clock a March 2026 event is a backfill.
    rules = AlertRules(lambda: WATCHLIST, now=lambda: datetime(2026, 3, 2, 10, 10, tzinfo=UTC), count=counted.append)
    ev = _event()
    rules.apply(OrgState(), ev)
    rules.apply(OrgState(), type(ev)(**{**{f: getattr(ev, f) for f in ev.__dataclass_fields__}, "org_id": "removed"}))
    assert counted == ["alerts_new_mention", "org_not_watched"]


def test_an_organization_added_back_has_no_first_in_window_from_the_time_it_was_not_watched():
    state = OrgState()
    observe(state, event("s1", T0), CMW, WATCHLIST.novelty)
    back = T0 + 10 * DAY  # removed after s1, added back here: its mentions in between were not seen
    gap = observe(state, event("s2", back + 2 * DAY), CMW, WATCHLIST.novelty, watched_since=back)
    assert kinds(gap) == ["new_mention"]  # 12 days since s1, but only 2 known to be quiet
    quiet = observe(state, event("s3", back + 10 * DAY), CMW, WATCHLIST.novelty, watched_since=back)
    assert kinds(quiet) == ["new_mention", "first_in_window"] and quiet[1].gap == 8 * DAY
    # Watched since long before the newest mention: the gap is measured from the mention.
    later = observe(state, event("s4", back + 20 * DAY), CMW, WATCHLIST.novelty, watched_since=T0 - DAY)
    assert kinds(later) == ["new_mention", "first_in_window"] and later[1].gap == 10 * DAY


def test_alert_rules_asks_since_when_the_organization_is_watched():
    asked = []

    def since(org_id):
        asked.append(org_id)
        return T0 + 5 * DAY

    rules = AlertRules(lambda: WATCHLIST, watched_since=since)
    state = OrgState()
    rules.apply(state, event("s1", T0), arrival=T0)
    assert [a.kind for a in rules.apply(state, event("s2", T0 + 8 * DAY), arrival=T0 + 8 * DAY)] == ["new_mention"]
    assert asked == ["cmw", "cmw"]


def test_a_backfill_is_older_than_the_max_alert_age_when_it_arrives():
    age = WATCHLIST.novelty.max_alert_age
    assert age == 2 * DAY  # the default
    assert not alert_rules.is_backfill(event("s", T0), T0 + age, WATCHLIST.novelty)
    assert alert_rules.is_backfill(event("s", T0), T0 + age + 1, WATCHLIST.novelty)


def test_a_60_day_old_article_in_a_new_story_raises_nothing_but_is_remembered():
    metrics = PipelineMetrics(CollectorRegistry())
    counted = []
    now = T0 + 60 * DAY
    rules = AlertRules(lambda: WATCHLIST, now=lambda: datetime.fromtimestamp(now, UTC), metrics=metrics,
                       count=counted.append)
    state = OrgState()
    old = event("old-story", T0, topics=(("protest", 3.0, ("protest",), None),))
    assert rules.apply(state, old) == []  # arrival: the clock, 60 days after the event
    assert counted == ["withheld_new_mention", "withheld_topic"]
    assert metrics.alerts_withheld.labels(kind="new_mention")._value.get() == 1
    assert metrics.alerts.labels(kind="new_mention")._value.get() == 0
    # The state saw it: the story is known and the organization's last mention is T0, so a
    # second old copy is no story of its own and a new story ends a 60-day silence.
    assert "old-story" in state.stories and state.last_seen == T0
    assert rules.apply(state, event("old-story", T0 + 60, "copy")) == [] and counted[2:] == []
    fresh = rules.apply(state, event("new-story", now - 60), arrival=now)
    assert [a.kind for a in fresh] == ["new_mention", "first_in_window"]


def test_the_guard_follows_the_arrival_the_caller_gives_and_the_watchlists_age():
    rules = AlertRules(lambda: WATCHLIST)  # the wall clock is never asked when arrival is given
    assert [a.kind for a in rules.apply(OrgState(), event("s", T0), arrival=T0 + DAY)] == ["new_mention"]
    patient = WATCHLIST.model_copy(update={"novelty": WATCHLIST.novelty.model_copy(update={"max_alert_age": 90 * DAY})})
    rules = AlertRules(lambda: patient)
    assert [a.kind for a in rules.apply(OrgState(), event("s", T0), arrival=T0 + 60 * DAY)] == ["new_mention"]


def test_max_alert_age_in_the_file_needs_its_unit(tmp_path):
    from newsradar.config import ConfigError, load_watchlist

    path = tmp_path / "w.yaml"
    path.write_text("novelty: {max_alert_age: 3d}\n", encoding="utf-8")
    assert load_watchlist(path).novelty.max_alert_age == 3 * DAY
    path.write_text("novelty:\n  max_alert_age: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_watchlist(path)
    assert "novelty.max_alert_age" in str(err.value) and "unit is required" in str(err.value) and ":2:" in str(err.value)


def test_the_replay_clock_is_the_newest_event_time_so_far_in_input_order():
    clock = alert_rules.ReplayClock([(2, T0 + DAY), (0, T0), (1, T0 + 10 * DAY), (3, T0 + 11 * DAY)])
    assert clock.at(0, T0) == T0
    assert clock.at(2, T0 + DAY) == T0 + 10 * DAY  # after a newer one: it arrives at that one's time
    assert clock.at(3, T0 + 11 * DAY) == T0 + 11 * DAY
    assert alert_rules.ReplayClock([]).at(5, T0) == T0


def test_the_rules_load_without_beam():
    # The rules are plain code: importing them (and all they import) must not pull in Beam.
    code = "import sys, transforms.alert_rules; print('apache_beam' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False", out.stderr
