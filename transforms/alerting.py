"""Beam steps from tagged articles to alerts, and from alerts to sinks.

* :class:`RaiseAlerts` — the streaming step: mentions keyed by organization into a stateful
  DoFn that applies the novelty rules (:mod:`transforms.novelty`) and turns triggers into
  Alert records (:mod:`transforms.alerts`). State is per organization and bounded; an
  event-time timer prunes an organization's state once it has been quiet for the memory.
* :class:`RaiseAlertsInOrder` — the same rules over a bounded input (``build(ordered=True)``:
  `newsradar tag`, backtests), applied per organization in input order, because Beam gives a
  batch stateful DoFn its elements in no particular order and a replay must be reproducible.
* :class:`DeliverAlerts` — alerts to the watchlist's sinks (:mod:`transforms.sinks`); its
  output is the dead letters of deliveries that failed after their retries.

Alert ids are deterministic (see :mod:`transforms.alerts`), so whatever a runner retries,
the same alert keeps the same id.
"""

from __future__ import annotations

import logging
import typing
from collections.abc import Callable
from datetime import UTC, datetime

import apache_beam as beam
from apache_beam.coders import FloatCoder, PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from newsradar.config.watchlist import Watchlist
from newsradar.records import Alert, DeadLetter, TaggedArticle, parse_time

from . import novelty
from .alerts import events_of, make_alert
from .novelty import MentionEvent, OrgState
from .reload import WatchlistSource
from .tagging import reload_counter, watchlist_reloader

log = logging.getLogger(__name__)


class Novelty:
    """The rules plus alert formatting for one worker: state in, alerts out. Plain code that
    both Beam steps (and tests) share."""

    def __init__(self, watchlist: Callable[[], Watchlist], now: Callable[[], datetime] | None = None,
                 metrics=None):
        self._watchlist = watchlist
        self._now = now or (lambda: datetime.now(UTC))
        self._metrics = metrics

    def apply(self, state: OrgState, event: MentionEvent) -> list[Alert]:
        wl = self._watchlist()
        try:
            org = wl.organization(event.org_id)
        except KeyError:
            # Removed from the watchlist by a reload while its mentions were in flight.
            Metrics.counter("novelty", "org_not_watched").inc()
            return []
        alerting = {t.id for t in wl.topics if t.alert}
        if any(t[0] not in alerting for t in event.topics):
            event = _with_topics(event, tuple(t for t in event.topics if t[0] in alerting))
        triggers = novelty.observe(state, event, org, wl.novelty)
        created = self._now()
        alerts = [make_alert(t, org, wl, created) for t in triggers]
        for alert in alerts:
            Metrics.counter("novelty", f"alerts_{alert.kind}").inc()
            if self._metrics is not None:
                self._metrics.alerts.labels(kind=alert.kind).inc()
                now = created.timestamp()
                self._metrics.published_to_alert.observe(max(0.0, now - parse_time(event.published_at).timestamp()))
                self._metrics.fetched_to_alert.observe(max(0.0, now - parse_time(event.fetched_at).timestamp()))
        return alerts


def _with_topics(event: MentionEvent, topics) -> MentionEvent:
    from dataclasses import replace

    return replace(event, topics=topics)


def _worker_metrics():
    from newsradar.metrics import pipeline_metrics

    return pipeline_metrics()


class _NoveltyFn(beam.DoFn):
    """Keyed by organization id. State: the organization's OrgState and when to prune it."""

    STATE = ReadModifyWriteStateSpec("org", PickleCoder())
    GC_AT = ReadModifyWriteStateSpec("gc_at", FloatCoder())
    GC = TimerSpec("gc", TimeDomain.WATERMARK)

    def __init__(self, source: WatchlistSource):
        self._source = source

    def setup(self) -> None:
        self._reloader = watchlist_reloader(self._source, reload_counter("novelty"))
        self._novelty = Novelty(self._reloader.get, metrics=_worker_metrics())

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
        alerts = self._novelty.apply(current, event)
        state.write(current)
        # Prune once the organization has been quiet for the memory; a later element moves
        # the timer forward, never back.
        due = float(timestamp.micros) / 1e6 + novelty.memory(self._reloader.watchlist.novelty)
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
        novelty.prune(current, float(fired.micros) / 1e6, self._reloader.watchlist.novelty)
        Metrics.counter("novelty", "states_pruned").inc()
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
            | "ApplyNoveltyRules" >> beam.ParDo(_NoveltyFn(self._source))
        )


def _events_in_order(item: tuple[int, TaggedArticle]):
    seq, tagged = item
    for rank, (org_id, event) in enumerate(events_of(tagged, seq)):
        yield org_id, (seq, rank, event)


class _FoldInOrder(beam.DoFn):
    def __init__(self, source: WatchlistSource):
        self._source = source

    def setup(self) -> None:
        self._reloader = watchlist_reloader(self._source, reload_counter("novelty"))
        self._novelty = Novelty(self._reloader.get, metrics=_worker_metrics())

    def process(self, element):
        _org_id, events = element
        state = OrgState()
        for seq, rank, event in sorted(events, key=lambda e: (e[0], e[1])):
            for i, alert in enumerate(self._novelty.apply(state, event)):
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
            | "ApplyNoveltyRulesInOrder" >> beam.ParDo(_FoldInOrder(self._source))
        )


# ---------------------------------------------------------------------------
# sinks


class _DeliverFn(beam.DoFn):
    """Collects a bundle's alerts and delivers them concurrently in finish_bundle, so a slow
    sink costs a bundle at most the dispatcher's deadline, once, never per alert."""

    def __init__(self, sinks, allow_private_networks: bool):
        self._sinks = sinks
        self._allow_private = allow_private_networks

    def setup(self) -> None:
        from .sinks import Dispatcher

        self._dispatcher = Dispatcher.from_config(
            self._sinks, metrics=_worker_metrics(), allow_private_networks=self._allow_private
        )
        self._failed = Metrics.counter("alerts", "sink_deliveries_failed")
        self._dlq = _worker_metrics().dlq

    def start_bundle(self) -> None:
        self._pending: list[tuple[Alert, object, object]] = []

    def process(self, alert: Alert, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam):
        self._pending.append((alert, timestamp, window))

    def finish_bundle(self):
        pending, self._pending = self._pending, []
        if not pending:
            return
        where = {a.alert_id: (t, w) for a, t, w in pending}
        for failure in self._dispatcher.deliver([a for a, _t, _w in pending]):
            self._failed.inc()
            step = f"alerts.{failure.sink}"  # bounded: one label value per sink kind
            self._dlq.labels(step).inc()
            timestamp, window = where[failure.alert.alert_id]
            letter = DeadLetter.wrap(failure.alert.encode(), error=failure.error, step=step)
            yield WindowedValue(letter, timestamp, [window])

    def teardown(self) -> None:
        dispatcher = getattr(self, "_dispatcher", None)
        if dispatcher is not None:
            dispatcher.close()


def check_sinks(source: WatchlistSource) -> None:
    """At launch: every configured sink can be built (e.g. its secret is in the
    environment); raises ConfigError naming the file and the sink otherwise."""
    from newsradar.config import ConfigError

    from .sinks import SinkConfigError, build_sink

    for i, sink in enumerate(source.initial.alerts.sinks):
        try:
            build_sink(sink)
        except SinkConfigError as exc:
            raise ConfigError(source.path or "<watchlist>", f"alerts.sinks[{i}]", str(exc)) from None


class DeliverAlerts(beam.PTransform):
    """Alert -> the watchlist's sinks (webhook, Alertmanager, file). Never fails for a sink;
    its output is a DeadLetter (step ``alerts.<sink>``, counted in
    ``newsradar_dlq_records_total``) per delivery that failed after its retries, for
    ``news.dlq``. Apply it beside, not before, the write to ``news.alerts``.

    Sinks are taken from the watchlist at launch (a reload does not change them: a sink
    holds connections and secrets, which belong to a deployment, not an edit)."""

    def __init__(self, sinks, allow_private_networks: bool = False, label: str | None = None):
        super().__init__(label)
        self._sinks = tuple(sinks)
        self._allow_private = allow_private_networks

    def expand(self, alerts):
        return alerts | "DeliverToSinks" >> beam.ParDo(_DeliverFn(self._sinks, self._allow_private))
