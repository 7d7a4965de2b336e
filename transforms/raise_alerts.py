"""The Beam steps that raise alerts from tagged articles; the rules they apply are plain code
in :mod:`transforms.alert_rules`, delivery is :mod:`transforms.deliver_alerts`.

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
* Both steps take the watchlist versions tagging takes (the same reloader rules), so the
  two never run different watchlists.
"""

from __future__ import annotations

import typing

import apache_beam as beam
from apache_beam.coders import FloatCoder, PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from newsradar.metrics import pipeline_metrics
from newsradar.records import TaggedArticle

from . import alert_rules
from .alert_rules import AlertRules, MentionEvent, OrgState, events_of
from .reload import WatchlistSource
from .tagging import reload_counter, watchlist_reloader


def _count(name: str) -> None:
    Metrics.counter("novelty", name).inc()


class _AlertRulesFn(beam.DoFn):
    """What both rule-applying DoFns share: the watchlist (reloaded as tagging reloads it) and
    one worker's AlertRules, counted under ``novelty``."""

    def __init__(self, source: WatchlistSource):
        self._source = source

    def setup(self) -> None:
        self._reloader = watchlist_reloader(self._source, reload_counter("novelty"))
        self._rules = AlertRules(self._reloader.get, metrics=pipeline_metrics(), count=_count)


class _ApplyNoveltyRulesFn(_AlertRulesFn):
    """Keyed by organization id. State: the organization's OrgState and when to prune it."""

    STATE = ReadModifyWriteStateSpec("org", PickleCoder())
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
        _org_id, event = element
        current = state.read() or OrgState()
        alerts = self._rules.apply(current, event)
        state.write(current)
        # Prune once the organization has been quiet for the memory; a later element moves
        # the timer forward, never back.
        due = float(timestamp.micros) / 1e6 + alert_rules.memory(self._reloader.watchlist.novelty)
        if due > (gc_at.read() or 0.0):
            gc_at.write(due)
            gc.set(Timestamp.of(due))
        yield from alerts

    @on_timer(GC)
    def expire(self, fired=beam.DoFn.TimestampParam, state=beam.DoFn.StateParam(STATE),
               gc_at=beam.DoFn.StateParam(GC_AT)):
        current = state.read()
        if current is None:
            return
        alert_rules.prune(current, float(fired.micros) / 1e6, self._reloader.watchlist.novelty)
        _count("states_pruned")
        # What stays is two timestamps: enough for first_in_window after a long silence.
        state.write(current)
        gc_at.clear()


class KeyMentionsByOrganization(beam.PTransform):
    """TaggedArticle -> (org id, MentionEvent), one per watched organization it mentions."""

    def expand(self, tagged):
        # A typed key gives the stateful step a deterministic key coder.
        return tagged | "EventsOf" >> beam.FlatMap(events_of).with_output_types(tuple[str, MentionEvent])


class RaiseAlerts(beam.PTransform):
    """TaggedArticle -> Alert (streaming; state per organization; see module docstring)."""

    def __init__(self, source: WatchlistSource, label: str | None = None):
        super().__init__(label)
        self._source = source

    def expand(self, tagged):
        return (
            tagged
            | "KeyMentionsByOrganization" >> KeyMentionsByOrganization()
            | "ApplyNoveltyRules" >> beam.ParDo(_ApplyNoveltyRulesFn(self._source))
        )


def _events_in_order(item: tuple[int, TaggedArticle]):
    seq, tagged = item
    for rank, (org_id, event) in enumerate(events_of(tagged, seq)):
        yield org_id, (seq, rank, event)


class _ApplyNoveltyRulesInOrderFn(_AlertRulesFn):
    """Grouped by organization id: its (seq, rank, event) list, folded in input order."""

    def process(self, element):
        _org_id, events = element
        state = OrgState()
        for seq, rank, event in sorted(events, key=lambda e: (e[0], e[1])):
            for i, alert in enumerate(self._rules.apply(state, event)):
                yield (seq, rank, i), alert


class RaiseAlertsInOrder(beam.PTransform):
    """(arrival number, TaggedArticle) -> ((arrival number, rank, n), Alert) over a bounded
    input: each organization's mentions are replayed through the rules in arrival order, so
    the alerts (and their ids) are those a stream in that order would raise. Sort the output
    by its key to list the alerts in input order."""

    def __init__(self, source: WatchlistSource, label: str | None = None):
        super().__init__(label)
        self._source = source

    def expand(self, numbered):
        return (
            numbered
            | "KeyMentionsByOrganization" >> beam.FlatMap(_events_in_order).with_output_types(tuple[str, typing.Any])
            | "GroupByOrganization" >> beam.GroupByKey()
            | "ApplyNoveltyRulesInOrder" >> beam.ParDo(_ApplyNoveltyRulesInOrderFn(self._source))
        )
