"""The Beam steps that raise alerts from tagged articles; the rules they apply are plain code
in :mod:`transforms.alert_rules`, delivery is ``newsradar deliver`` (:mod:`newsradar.delivery`).

* :class:`RaiseAlerts` — the streaming step: mentions keyed by organization into a stateful
  DoFn that applies :class:`transforms.alert_rules.AlertRules` to the organization's state.
* :class:`RaiseAlertsInOrder` — the same rules over a bounded input (``build(ordered=True)``:
  `newsradar tag`, backtests), applied per organization in input order, because Beam gives a
  batch stateful DoFn its elements in no particular order and a replay must be reproducible.

Guarantees:

* Alert ids are deterministic (see :mod:`transforms.alert_rules`), so whatever a runner
  retries, the same alert keeps the same id; a bounded replay gives the same alerts, keys
  and ids on every run.
* State is per organization and bounded; an event-time timer prunes an organization's state
  once it has been quiet for the memory (:func:`transforms.alert_rules.memory`).
* What the steps' code fails on goes to ``dlq`` (step ``novelty``; :mod:`transforms.deadletters`).
* Both steps use the worker process's one watchlist reloader, the one tagging uses
  (:func:`transforms.tagging.watchlist_reloader`), so the two switch versions together.
* After a restart (:mod:`transforms.rebuild`): an organization seen for the first time with
  nothing in state starts from the state rebuilt from news.tagged and news.novelty, and an
  alert whose id is already on news.alerts is not raised again (counted as ``already_raised``).
  When the prune timer reduces an organization's state to its first and last mention, those
  go to ``summaries`` (news.novelty), which outlive news.tagged.
* Backfill guard (:func:`transforms.alert_rules.is_backfill`): a mention older than
  ``novelty.max_alert_age`` when it arrives updates state and raises nothing. On the stream a
  mention arrives when the rules see it (``clock``, the wall clock unless a test injects
  one), so no alert is raised longer than the age after its event, whatever delayed it; in an
  ordered replay, at the newest event time of the input up to it
  (:class:`transforms.alert_rules.ReplayClock`), because a replay takes seconds for what a
  stream saw over months.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

import apache_beam as beam
from apache_beam.coders import FloatCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from newsradar.metrics import pipeline_metrics
from newsradar.records import DeadLetter

from . import alert_rules, rebuild
from .alert_rules import AlertRules, MentionEvent, OrgState, ReplayClock, event_time, events_of
from .deadletters import DLQ, RecordStep
from .reload import WatchlistSource
from .state_coders import OrgStateCoder
from .tagging import watchlist_reloader


def _count(name: str) -> None:
    Metrics.counter("novelty", name).inc()


STEP = "novelty"
# A mention event the rules raised on: its dead letter keeps the event as JSON, which is not a
# record of any topic, so `newsradar dlq replay` leaves it alone (the article is in news.tagged).
EVENT_STEP = "novelty.event"


# The side output of the organizations' summaries (news.novelty).
SUMMARIES = "summaries"


class RaisedAlerts(NamedTuple):
    """What RaiseAlerts produces: the alerts, and the dead letters of what its code failed on
    (step ``novelty``: an article whose mentions could not be read, kept as its news.raw record;
    step ``novelty.event``: a mention event the rules raised on, kept as JSON). The streaming
    step also gives ``summaries``: a :class:`newsradar.records.NoveltySummary` of each
    organization whose state it prunes (None from the in-order step)."""

    alerts: beam.PCollection
    dlq: beam.PCollection
    summaries: beam.PCollection | None = None


class _EventsOf(RecordStep):
    """TaggedArticle -> (org id, MentionEvent) per watched organization it mentions."""

    STEP = STEP
    NAMESPACE = "novelty"

    def __init__(self, seq_in_key: bool = False):
        super().__init__()
        self._ordered = seq_in_key

    def process(self, element):
        seq, tagged = element if self._ordered else (0, element)
        events = self.attempt(tagged, events_of, tagged, seq)
        if isinstance(events, DeadLetter):
            yield beam.pvalue.TaggedOutput(DLQ, (seq, events) if self._ordered else events)
            return
        for rank, (org_id, event) in enumerate(events):
            yield (org_id, (seq, rank, event)) if self._ordered else (org_id, event)


class _AlertRulesFn(RecordStep):
    """What both rule-applying DoFns share: the watchlist (reloaded as tagging reloads it) and
    one worker's AlertRules, counted under ``novelty``."""

    STEP = EVENT_STEP
    NAMESPACE = "novelty"

    def __init__(self, source: WatchlistSource, clock: Callable[[], datetime] | None = None, seed=None):
        super().__init__()
        self._source = source
        self._clock = clock
        self._seed_blob = seed

    def setup(self) -> None:
        super().setup()
        # The process's one reloader, shared with tagging: the two switch versions together.
        self._reloader = watchlist_reloader(self._source)
        self._rules = AlertRules(self._reloader.get, now=self._clock, metrics=pipeline_metrics(), count=_count,
                                 watched_since=self._reloader.watched_since)
        self._seed = rebuild.load(self._seed_blob)


class _ApplyNoveltyRulesFn(_AlertRulesFn):
    """Keyed by organization id. State: the organization's OrgState and when to prune it."""

    # Versioned, not pickled: a savepoint of this release restores in the next (state_coders).
    STATE = ReadModifyWriteStateSpec("org", OrgStateCoder())
    GC_AT = ReadModifyWriteStateSpec("gc_at", FloatCoder())
    GC = TimerSpec("gc", TimeDomain.WATERMARK)

    def process(
        self,
        element: tuple[str, MentionEvent],
        timestamp=beam.DoFn.TimestampParam,
        state=beam.DoFn.StateParam(STATE),
        gc_at=beam.DoFn.StateParam(GC_AT),
        gc=beam.DoFn.TimerParam(GC),
    ):
        org_id, event = element
        # Nothing in state (the timer prunes it, never clears it): what the rebuild at start
        # found for the organization, if anything.
        current = state.read() or self._seed.org_state(org_id) or OrgState()
        alerts = self.attempt(event, self._rules.apply, current, event)
        if isinstance(alerts, DeadLetter):
            # The rules change the state in place: what they did before raising is not kept.
            yield beam.pvalue.TaggedOutput(DLQ, alerts)
            return
        state.write(current)
        fresh = [a for a in alerts if not self._seed.raised(a.org_id, a.alert_id)]
        if len(fresh) < len(alerts):
            Metrics.counter("novelty", "already_raised").inc(len(alerts) - len(fresh))
            alerts = fresh
        # Prune once the organization has been quiet for the memory; a later element moves
        # the timer forward, never back.
        due = float(timestamp.micros) / 1e6 + alert_rules.memory(self._reloader.watchlist.novelty)
        if due > (gc_at.read() or 0.0):
            gc_at.write(due)
            gc.set(Timestamp.of(due))
        yield from alerts

    @on_timer(GC)
    def expire(self, key=beam.DoFn.KeyParam, fired=beam.DoFn.TimestampParam, state=beam.DoFn.StateParam(STATE),
               gc_at=beam.DoFn.StateParam(GC_AT)):
        current = state.read()
        if current is None:
            return
        alert_rules.prune(current, float(fired.micros) / 1e6, self._reloader.watchlist.novelty)
        _count("states_pruned")
        # What stays is two timestamps: enough for first_in_window after a long silence. They
        # go to news.novelty too: the mentions behind them leave news.tagged's retention, and
        # a restart must still know them (transforms.rebuild).
        state.write(current)
        gc_at.clear()
        summary = rebuild.summary_of(key, current, self._rules.now())
        if summary is not None:
            yield beam.pvalue.TaggedOutput(SUMMARIES, summary)


class KeyMentionsByOrganization(beam.PTransform):
    """TaggedArticle -> (org id, MentionEvent), one per watched organization it mentions, on
    ``articles``; DeadLetter on ``dlq``."""

    def expand(self, tagged):
        # A typed key gives the stateful step a deterministic key coder.
        return tagged | "EventsOf" >> beam.ParDo(_EventsOf()).with_output_types(
            tuple[str, MentionEvent]).with_outputs(DLQ, main="articles")


class RaiseAlerts(beam.PTransform):
    """TaggedArticle -> Alert (streaming; state per organization; see module docstring).
    ``clock`` (picklable, returns an aware datetime) is when a mention arrives and when its
    alerts are created; default the wall clock. ``seed``: a :class:`transforms.rebuild.SeedBlob`
    (the rebuild at start)."""

    def __init__(self, source: WatchlistSource, label: str | None = None,
                 clock: Callable[[], datetime] | None = None, seed=None):
        super().__init__(label)
        self._source = source
        self._clock = clock
        self._seed = seed

    def expand(self, tagged):
        events = tagged | "KeyMentionsByOrganization" >> KeyMentionsByOrganization()
        alerts = (
            events.articles
            | "ApplyNoveltyRules" >> beam.ParDo(_ApplyNoveltyRulesFn(self._source, self._clock, self._seed)).with_outputs(
                DLQ, SUMMARIES, main="alerts")
        )
        dlq = (events.dlq, alerts.dlq) | "MergeDeadLetters" >> beam.Flatten()
        return RaisedAlerts(alerts.alerts, dlq, alerts[SUMMARIES])


class _ApplyNoveltyRulesInOrderFn(_AlertRulesFn):
    """Grouped by organization id: its (seq, rank, event) list, folded in input order."""

    def process(self, element, clock: ReplayClock):
        _org_id, events = element
        state = OrgState()
        for seq, rank, event in sorted(events, key=lambda e: (e[0], e[1])):
            alerts = self.attempt(event, self._rules.apply, state, event, clock.at(seq, event.event_time))
            if isinstance(alerts, DeadLetter):
                yield beam.pvalue.TaggedOutput(DLQ, (seq, alerts))
                continue
            for i, alert in enumerate(alerts):
                yield (seq, rank, i), alert


def _seq_and_event_time(seq, tagged):
    """(seq, event time) of an input for the replay clock; an input whose times do not parse
    moves no clock (its mentions go to the dead letters in KeyMentionsByOrganization)."""
    art = tagged.article
    try:
        yield seq, event_time(art.published_at, art.fetched_at)
    except ValueError:
        return


class RaiseAlertsInOrder(beam.PTransform):
    """(arrival number, TaggedArticle) -> ((arrival number, rank, n), Alert) over a bounded
    input: each organization's mentions are replayed through the rules in arrival order, so
    the alerts (and their ids) are those a stream in that order would raise. Sort the output
    by its key to list the alerts in input order. Each input arrives at the newest event time
    of the inputs up to it (:class:`transforms.alert_rules.ReplayClock`)."""

    def __init__(self, source: WatchlistSource, label: str | None = None):
        super().__init__(label)
        self._source = source

    def expand(self, numbered):
        events = numbered | "KeyMentionsByOrganization" >> beam.ParDo(_EventsOf(seq_in_key=True)).with_output_types(
            tuple[str, typing.Any]).with_outputs(DLQ, main="articles")
        clock = (
            numbered
            | "EventTimes" >> beam.FlatMapTuple(_seq_and_event_time)
            | "CollectEventTimes" >> beam.combiners.ToList()
            | "ReplayClock" >> beam.Map(ReplayClock)
        )
        alerts = (
            events.articles
            | "GroupByOrganization" >> beam.GroupByKey()
            | "ApplyNoveltyRulesInOrder" >> beam.ParDo(
                _ApplyNoveltyRulesInOrderFn(self._source), clock=beam.pvalue.AsSingleton(clock)
            ).with_outputs(DLQ, main="alerts")
        )
        dlq = (events.dlq, alerts.dlq) | "MergeDeadLetters" >> beam.Flatten()
        return RaisedAlerts(alerts.alerts, dlq)
