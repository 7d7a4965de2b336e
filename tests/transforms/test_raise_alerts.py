"""The Beam steps that raise alerts: the stateful step under TestStream (out-of-order
arrivals, expiry by timer, near-duplicates) and the ordered replay on a bounded input."""

from datetime import UTC, datetime

import apache_beam as beam
from apache_beam.metrics import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_stream import TestStream as BeamTestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from newsradar.identity import alert_id
from newsradar.records import Mention, RawArticle, TaggedArticle, TopicTag, format_time
from tests.transforms.test_alert_rules import DAY, T0, WATCHLIST
from transforms import alert_rules
from transforms.alert_rules import HOUR
from transforms.raise_alerts import RaiseAlerts, RaiseAlertsInOrder
from transforms.reload import Reloader, WatchlistSource


def tagged(article_id, story, t, org="cmw", duplicate_of=None, topics=()):
    when = format_time(datetime.fromtimestamp(t, UTC))
    raw = RawArticle(article_id=article_id, source_id="src", source_kind="rss", url=f"https://example.org/{article_id}",
                     title=f"Title {article_id}", text="The Council of Mothers and Wives said.", published_at=when,
                     fetched_at=when)
    mention = Mention(org_id=org, text="Council of Mothers and Wives", start=len(raw.title) + 6,
                      end=len(raw.title) + 34, match="exact")
    return TaggedArticle(article=raw, lang="en", story_id=story, duplicate_of=duplicate_of,
                         topics=tuple(TopicTag(t_, 4.0) for t_ in topics), mentions=(mention,))


class At:
    """A clock stopped at one instant (picklable, so a DoFn can carry it)."""

    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)


# For tests about other rules over simulated weeks: the mentions arrive on a clock at the
# end of the simulation, with an alert age that covers it, so the backfill guard stays out.
SIMULATED_END = T0 + 30 * DAY
PATIENT = WATCHLIST.model_copy(
    update={"novelty": WATCHLIST.novelty.model_copy(update={"max_alert_age": 40 * DAY})})


def raise_alerts(watchlist=PATIENT, clock=SIMULATED_END):
    return RaiseAlerts(WatchlistSource.fixed(watchlist), clock=At(clock))


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
        alerts = (p | stream | raise_alerts()).alerts | beam.Map(lambda a: (a.kind, a.article_id))
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
    memory = alert_rules.memory(WATCHLIST.novelty)
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
        alerts = (p | stream | raise_alerts()).alerts | beam.Map(lambda a: (a.kind, a.alert_id))
        same = alert_id("new_mention", "cmw", "s1")
        assert_that(alerts, equal_to([("new_mention", same), ("new_mention", same)]))


def test_the_prune_timer_writes_the_organizations_summary_for_news_novelty():
    memory = alert_rules.memory(WATCHLIST.novelty)
    stream = (
        BeamTestStream()
        .add_elements([TimestampedValue(tagged("a1", "s1", T0), T0)])
        .add_elements([TimestampedValue(tagged("a2", "s2", T0 + DAY), T0 + DAY)])
        .advance_watermark_to(T0 + DAY + memory - 60)  # not quiet for the memory yet: nothing
        .advance_watermark_to(T0 + DAY + memory + 10)
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline(options=streaming_options()) as p:
        raised = p | stream | raise_alerts()
        summaries = raised.summaries | beam.Map(lambda s: (s.org_id, s.first_seen, s.last_seen, s.last_surge,
                                                           s.written_at))
        # Once, when the timer pruned the state (moved forward by a2), with its two timestamps.
        assert_that(summaries, equal_to([("cmw", T0, T0 + DAY, None, format_time(At(SIMULATED_END)()))]))


def test_stream_without_expiry_remembers_the_story():
    stream = (
        BeamTestStream()
        .add_elements([TimestampedValue(tagged("a1", "s1", T0), T0)])
        .advance_watermark_to(T0 + 3 * DAY)
        .add_elements([TimestampedValue(tagged("a1b", "s1", T0 + HOUR), T0 + 3 * DAY)])
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline(options=streaming_options()) as p:
        alerts = (p | stream | raise_alerts()).alerts | beam.Map(lambda a: a.article_id)
        assert_that(alerts, equal_to(["a1"]))


def test_stream_a_60_day_old_article_in_a_new_story_raises_nothing():
    now = T0 + 60 * DAY
    stream = (
        BeamTestStream()
        .add_elements([TimestampedValue(tagged("old", "s-old", T0, topics=("protest",)), now)])
        .add_elements([TimestampedValue(tagged("recent", "s-recent", now - DAY), now)])  # within the age
        .add_elements([TimestampedValue(tagged("fresh", "s-fresh", now - 60), now)])
        .advance_watermark_to_infinity()
    )
    p = beam.Pipeline(options=streaming_options())
    alerts = (p | stream | raise_alerts(WATCHLIST, clock=now)).alerts | beam.Map(lambda a: (a.kind, a.article_id))
    # The old article still set the organization's last mention: the recent one ends a silence.
    assert_that(alerts, equal_to([("new_mention", "recent"), ("first_in_window", "recent"), ("new_mention", "fresh")]))
    result = p.run()
    result.wait_until_finish()
    counters = {c.key.metric.name: c.committed
                for c in result.metrics().query(MetricsFilter().with_namespace("novelty"))["counters"]}
    assert counters.get("withheld_new_mention") == 1 and counters.get("withheld_topic") == 1, counters


def test_bounded_replay_an_article_after_much_newer_ones_is_a_backfill():
    numbered = [
        (0, tagged("a1", "s1", T0 + 60 * DAY)),
        (1, tagged("b1", "t1", T0 + 60 * DAY, org="quick")),  # no cmw mention, still moves the clock
        (2, tagged("old", "s-old", T0)),  # 60 days before the newest so far: history
        (3, tagged("day-old", "s-day", T0 + 59 * DAY)),  # within the age: news, late
        (4, tagged("next", "s-next", T0 + 61 * DAY)),
    ]
    with beam.Pipeline(runner="BundleBasedDirectRunner", options=PipelineOptions(flags=[])) as p:
        out = (p | beam.Create(numbered) | RaiseAlertsInOrder(WatchlistSource.fixed(WATCHLIST))).alerts | beam.Map(
            lambda kv: (kv[0][0], kv[1].kind, kv[1].article_id))
        assert_that(out, equal_to([(0, "new_mention", "a1"), (1, "new_mention", "b1"), (3, "new_mention", "day-old"),
                                   (4, "new_mention", "next")]))


def test_bounded_replay_in_chronological_order_alerts_as_the_stream_did_at_the_time():
    # A backtest over months: each article arrives at its own time, nothing is withheld.
    numbered = [(i, tagged(f"a{i}", f"s{i}", T0 + i * 20 * DAY)) for i in range(4)]
    with beam.Pipeline(runner="BundleBasedDirectRunner", options=PipelineOptions(flags=[])) as p:
        out = (p | beam.Create(numbered) | RaiseAlertsInOrder(WatchlistSource.fixed(WATCHLIST))).alerts | beam.Map(
            lambda kv: (kv[0][0], kv[1].kind))
        assert_that(out, equal_to([(0, "new_mention")] + [(i, k) for i in (1, 2, 3)
                                                          for k in ("new_mention", "first_in_window")]))


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
            ).alerts | beam.Map(lambda kv: (kv[0], kv[1].kind, kv[1].alert_id))
            assert_that(out, equal_to(expected))


def test_the_steps_count_alerts_in_beam_counters_named_novelty():
    numbered = [(0, tagged("a1", "s1", T0)), (1, tagged("b1", "t1", T0 + 60, org="gone"))]
    # The runner of `newsradar tag` (pipelines.run.run_bounded); the BundleBasedDirectRunner
    # reports no metrics of a pipeline with a side input, which RaiseAlertsInOrder has.
    p = beam.Pipeline(runner=FnApiRunner(), options=PipelineOptions(flags=[]))
    _ = p | beam.Create(numbered) | RaiseAlertsInOrder(WatchlistSource.fixed(WATCHLIST))
    result = p.run()
    result.wait_until_finish()
    query = result.metrics().query(MetricsFilter().with_namespace("novelty"))
    counters = {c.key.metric.name: c.committed for c in query["counters"]}
    assert counters.get("alerts_new_mention") == 1 and counters.get("org_not_watched") == 1, counters


# ---------------------------------------------------------------------------
# the watchlist across restarts (the last good version under $NEWSRADAR_HOME)


def watchlist_yaml(*org_ids):
    names = {"cmw": "Council of Mothers and Wives", "quick": "Quick"}
    orgs = "".join(f"  - {{id: {o}, name: {names[o]}, aliases: {{en: [{names[o]}]}}}}\n" for o in org_ids)
    return f"organizations:\n{orgs}novelty: {{max_alert_age: 40d}}\n"


def keep_versions(path, store, *versions, wall=lambda: 0.0):
    """A pipeline that ran ``versions`` of the file one after another (each taken on a poll)."""
    path.write_text(versions[0], encoding="utf-8")
    source = WatchlistSource.from_file(path, store=store)
    running = Reloader(source, compile=lambda wl: wl, clock=lambda: 0.0, wall=wall)
    for content in versions[1:]:
        path.write_text(content, encoding="utf-8")
        assert running.poll()
    return source


def test_stream_workers_set_up_with_a_bad_file_run_the_last_good_version(tmp_path):
    path, store = tmp_path / "watchlist.yaml", tmp_path / "home" / "watchlist"
    source = keep_versions(path, store, watchlist_yaml("cmw"), watchlist_yaml("cmw", "quick"))
    path.write_text("organizations: [\n", encoding="utf-8")  # then a bad edit, and a restart
    stream = (
        BeamTestStream()
        .add_elements([TimestampedValue(tagged("q1", "t1", T0, org="quick"), T0)])
        .add_elements([TimestampedValue(tagged("a1", "s1", T0 + 60), T0 + 60)])
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline(options=streaming_options()) as p:
        alerts = (p | stream | RaiseAlerts(source, clock=At(T0 + HOUR))).alerts | beam.Map(
            lambda a: (a.kind, a.org_id))
        # With the launch version (cmw only) quick's mention would be org_not_watched.
        assert_that(alerts, equal_to([("new_mention", "quick"), ("new_mention", "cmw")]))


def test_stream_an_organization_added_back_has_no_first_in_window_from_its_unwatched_time(tmp_path):
    path, store = tmp_path / "watchlist.yaml", tmp_path / "store"
    back = T0 + 20 * DAY  # cmw removed, then added back at this (wall-clock) time
    source = keep_versions(path, store, watchlist_yaml("cmw", "quick"), watchlist_yaml("quick"),
                           watchlist_yaml("quick", "cmw"), wall=lambda: back)
    stream = (
        BeamTestStream()
        .add_elements([TimestampedValue(tagged("a1", "s1", T0), T0)])  # known from before it was removed
        .add_elements([TimestampedValue(tagged("a2", "s2", back + 6 * DAY), back + 6 * DAY)])
        .add_elements([TimestampedValue(tagged("a3", "s3", back + 14 * DAY), back + 14 * DAY)])
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline(options=streaming_options()) as p:
        alerts = (p | stream | RaiseAlerts(source, clock=At(back + 15 * DAY))).alerts | beam.Map(
            lambda a: (a.kind, a.article_id))
        # a2 is 26 days after a1 but only 6 after cmw was watched again: not a known silence.
        # a3 follows 8 watched days without a mention.
        assert_that(alerts, equal_to([("new_mention", "a1"), ("new_mention", "a2"), ("new_mention", "a3"),
                                      ("first_in_window", "a3")]))
