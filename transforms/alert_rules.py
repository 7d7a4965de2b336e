"""The alert rules, as plain code (no Beam): what is new enough to tell a person about, and
the Alert record that says so. The Beam steps that apply them are in
:mod:`transforms.raise_alerts`; delivery to sinks is ``newsradar deliver`` (:mod:`newsradar.delivery`).

From a tagged article to alerts, in three parts:

* :func:`events_of` — one :class:`MentionEvent` per watched organization the article
  mentions (its first mention, a snippet around it, the article's topics).
* :func:`observe` — the novelty rules: the state of one organization (:class:`OrgState`)
  sees that organization's mentions one at a time and answers with :class:`Trigger` s.
* :func:`make_alert` — a trigger as an Alert a person can read (``why``, ``snippet``,
  ``severity``). :class:`AlertRules` puts the three together for one worker: state and
  event in, alerts out, counted.

The rules:

* ``new_mention`` — the first article of a story that mentions the organization. Every
  later article of the same story (near-duplicates, reposts, edits) raises nothing: stories
  are remembered for ``novelty.story_memory`` (default 14 days).
* ``first_in_window`` — a new story mentions the organization after it had no mention for
  its window (``organizations[].novelty_window``, default ``novelty.default_window``, 7 d).
  Needs a previous mention: right after a cold start nothing is known, and nothing fires.
* ``surge`` — distinct stories mentioning the organization in one UTC hour reach
  ``surge.min_mentions`` and ``surge.factor`` times its baseline (mean stories per hour over
  the ``surge.baseline`` before that hour, or over the time it has been observed if
  shorter); then no surge for ``surge.cooldown``. Only the newest two hours are judged, so
  a late burst of old articles does not alert.
* ``topic`` — the first article of a story that carries an alerting topic and mentions the
  organization, once per (topic, story).

Times are event times: an article's ``published_at``, but never later than its
``fetched_at`` (feeds that date items in the future do not move the clock). Out-of-order
arrivals are fine: a late article never raises ``first_in_window`` (the silence it would
end is already over) and counts in its own hour.

Backfills: a mention whose event time is more than ``novelty.max_alert_age`` (default 2
days) before its arrival time updates the state like any other and raises nothing
(:func:`is_backfill`); the alerts it would have raised are counted as withheld. The caller
says when a mention arrives: the stream when the rules see it (the clock), a bounded replay
the newest event time in the input up to it (:class:`ReplayClock`).

Guarantees:

* Every trigger names what raised it (``subject``, ``trigger``), and :func:`make_alert` is
  deterministic except for ``created_at``: the id comes from
  :func:`newsradar.identity.alert_id` over (kind, organization or topic, trigger), so a
  replay in any order, a retried bundle or a second worker produce the same id and every
  sink can drop repeats.
* State is bounded: stories and hour counts older than the memory are pruned on every
  event (and by the caller's timer, :func:`prune`); an idle organization keeps only two
  timestamps; at most :data:`MAX_STORIES` stories per organization.
* A snippet always contains the matched span (it is cut around it at word boundaries).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from newsradar.config.watchlist import SURGE_STATE_MARGIN, Novelty, Organization, Watchlist
from newsradar.identity import alert_id
from newsradar.records import Alert, TaggedArticle, format_time, parse_time
from newsradar.vocab import SEVERITIES

from .nlp import analysis_text

HOUR = 3600.0
# The hour buckets that may still raise a surge: the newest and the one before it.
SURGE_LATENESS_HOURS = 1
# Hard cap on remembered stories per organization, whatever the memory duration says.
MAX_STORIES = 20_000
SNIPPET_CHARS = 280


@dataclass(frozen=True, slots=True)
class MentionEvent:
    """One article's mention of one watched organization (the input of the rules)."""

    org_id: str
    article_id: str
    story_id: str
    event_time: float  # unix seconds; see module docstring
    title: str
    url: str
    snippet: str  # the text around the first mention, which it contains
    mention: str  # the first mention's surface text
    match: str
    published_at: str
    fetched_at: str
    duplicate_of: str | None = None
    # (topic id, score, evidence texts, learned probability or None) of the alerting topics
    # the article carries (TopicTag's fields).
    topics: tuple[tuple[str, float, tuple[str, ...], float | None], ...] = ()
    # Arrival order in a bounded replay (`newsradar tag`); 0 on a stream.
    seq: int = 0
    # match "contextual": what resolved the short name (Mention.resolved_by).
    resolved_by: str = ""


@dataclass(frozen=True, slots=True)
class Trigger:
    """Something the rules decided is new. ``trigger`` identifies the event for alert_id."""

    kind: str
    subject: str  # org id, or topic id for kind "topic"
    trigger: str
    event: MentionEvent
    # Facts for the human-readable sentence.
    gap: float | None = None  # first_in_window: seconds since the previous mention
    window: float | None = None
    count: int | None = None  # surge: stories in the hour
    baseline: float | None = None  # surge: stories per hour before it
    hour_start: float | None = None
    topic: tuple[str, float, tuple[str, ...], float | None] | None = None


@dataclass(slots=True)
class OrgState:
    """What is remembered about one organization. Plain data, kept in Beam state in an explicit
    versioned encoding (:mod:`transforms.state_coders`): a new field needs a new format there."""

    last_seen: float | None = None
    first_seen: float | None = None
    last_surge: float | None = None
    # story id -> event time of its first mention
    stories: dict[str, float] = field(default_factory=dict)
    # "topic|story" -> event time
    topic_stories: dict[str, float] = field(default_factory=dict)
    # hour bucket (unix hour) -> distinct new stories first seen in it
    hours: dict[int, int] = field(default_factory=dict)

    def is_idle(self) -> bool:
        return not (self.stories or self.topic_stories or self.hours)


# ---------------------------------------------------------------------------
# events: a tagged article as the rules' input


def snippet(text: str, start: int, end: int, width: int = SNIPPET_CHARS) -> str:
    """About ``width`` characters of ``text`` around ``text[start:end]``, cut at spaces,
    with "…" where text was cut. Always contains the span (whole, if it is longer)."""
    if end - start >= width:
        return text[start:end]
    room = (width - (end - start)) // 2
    lo, hi = max(0, start - room), min(len(text), end + room)
    if lo > 0:
        space = text.find(" ", lo, start)
        lo = space + 1 if space != -1 else lo
    if hi < len(text):
        space = text.rfind(" ", end, hi)
        hi = space if space != -1 else hi
    body = " ".join(text[lo:hi].split())
    return ("…" if lo > 0 else "") + body + ("…" if hi < len(text) else "")


def event_time(published_at: str, fetched_at: str) -> float:
    """Event time in unix seconds: published, but never after it was fetched."""
    return min(parse_time(published_at).timestamp(), parse_time(fetched_at).timestamp())


def events_of(tagged: TaggedArticle, seq: int = 0) -> list[tuple[str, MentionEvent]]:
    """One (org id, event) per watched organization the article mentions; the event holds
    the first mention and every topic the article carries."""
    if not tagged.mentions:
        return []
    art = tagged.article
    text = analysis_text(art.title, art.text)
    when = event_time(art.published_at, art.fetched_at)
    topics = tuple((t.id, t.score, tuple(e.text for e in t.evidence), t.learned) for t in tagged.topics)
    out = []
    seen: set[str] = set()
    for m in tagged.mentions:
        if m.org_id in seen:
            continue
        seen.add(m.org_id)
        out.append(
            (
                m.org_id,
                MentionEvent(
                    org_id=m.org_id,
                    article_id=art.article_id,
                    story_id=tagged.story_id,
                    event_time=when,
                    title=art.title,
                    url=art.url,
                    snippet=snippet(text, m.start, m.end),
                    mention=m.text,
                    match=m.match,
                    published_at=art.published_at,
                    fetched_at=art.fetched_at,
                    duplicate_of=tagged.duplicate_of,
                    topics=topics,
                    seq=seq,
                    resolved_by=m.resolved_by or "",
                ),
            )
        )
    return out


# ---------------------------------------------------------------------------
# the novelty rules


def hour_of(t: float) -> int:
    return int(t // HOUR)


def observe(state: OrgState, event: MentionEvent, org: Organization, novelty: Novelty,
            watched_since: float | None = None) -> list[Trigger]:
    """Apply one mention to ``state`` (mutated) and return what it triggers, in the order
    new_mention, first_in_window, surge, topic. ``watched_since``: since when the
    organization has been watched without a break (None: always, as far as is known); a
    silence is only known from then on."""
    t = event.event_time
    out: list[Trigger] = []
    new_story = event.story_id not in state.stories
    newest_before = state.last_seen
    if new_story:
        state.stories[event.story_id] = t
        out.append(Trigger("new_mention", org.id, event.story_id, event))
        window = org.window(novelty)
        # While it was not watched its mentions were not seen: the known silence starts when
        # it was watched again, if that is after its newest mention.
        quiet_since = newest_before if watched_since is None or newest_before is None else max(
            newest_before, watched_since)
        if quiet_since is not None and t - quiet_since >= window:
            out.append(
                Trigger("first_in_window", org.id, event.story_id, event, gap=t - quiet_since, window=window)
            )
        bucket = hour_of(t)
        state.hours[bucket] = state.hours.get(bucket, 0) + 1
        newest_hour = hour_of(max(t, newest_before if newest_before is not None else t))
        if bucket >= newest_hour - SURGE_LATENESS_HOURS:
            surge = _surge(state, bucket, t, org, novelty, event)
            if surge is not None:
                out.append(surge)
    for topic in event.topics:
        key = f"{topic[0]}|{event.story_id}"
        if key not in state.topic_stories:
            state.topic_stories[key] = t
            out.append(Trigger("topic", topic[0], f"{org.id}|{event.story_id}", event, topic=topic))
    state.last_seen = t if newest_before is None else max(newest_before, t)
    state.first_seen = t if state.first_seen is None else min(state.first_seen, t)
    prune(state, state.last_seen, novelty)
    return out


def _surge(state: OrgState, bucket: int, t: float, org: Organization, novelty: Novelty,
           event: MentionEvent) -> Trigger | None:
    rule = novelty.surge
    count = state.hours[bucket]
    if count < rule.min_mentions:
        return None
    if state.last_surge is not None and abs(t - state.last_surge) < rule.cooldown:
        return None
    span = max(1, int(rule.baseline // HOUR))
    observed = span if state.first_seen is None else min(span, max(1, bucket - hour_of(state.first_seen)))
    before = sum(n for h, n in state.hours.items() if bucket - observed <= h < bucket)
    baseline = before / observed
    if count < rule.factor * baseline:
        return None
    state.last_surge = t
    return Trigger(
        "surge", org.id, str(bucket), event, count=count, baseline=baseline, hour_start=bucket * HOUR,
        window=observed * HOUR,
    )


def prune(state: OrgState, now: float, novelty: Novelty) -> None:
    """Forget what no rule can need any more as of event time ``now``. Runs after every
    mention, so it costs one scan when nothing is forgotten (an organization at the story cap
    drops only its oldest story, not a sort of all of them)."""
    horizon = now - novelty.story_memory
    state.stories = _forget(state.stories, horizon)
    state.topic_stories = _forget(state.topic_stories, horizon)
    if state.hours:
        oldest_hour = hour_of(now - novelty.surge.baseline) - SURGE_LATENESS_HOURS - 1
        state.hours = {h: n for h, n in state.hours.items() if h >= oldest_hour}


def _forget(seen: dict[str, float], horizon: float) -> dict[str, float]:
    """``seen`` without the entries at or before ``horizon``, and at most :data:`MAX_STORIES`
    of the newest (ties: the earlier inserted goes first, as a stable sort would drop them).
    The same dict when nothing goes."""
    if not seen:
        return seen
    oldest = min(seen.values())
    if oldest <= horizon:
        seen = {k: at for k, at in seen.items() if at > horizon}
        oldest = min(seen.values(), default=0.0)
    excess = len(seen) - MAX_STORIES
    if excess == 1:  # the usual case at the cap: one new story in, the oldest out
        del seen[next(k for k, at in seen.items() if at == oldest)]
    elif excess > 1:
        seen = dict(sorted(seen.items(), key=lambda kv: kv[1])[-MAX_STORIES:])
    return seen


def is_backfill(event: MentionEvent, arrival: float, novelty: Novelty) -> bool:
    """Whether ``event``, arriving at ``arrival`` (unix seconds), is history rather than news:
    its event time is more than ``novelty.max_alert_age`` before it arrived."""
    return arrival - event.event_time > novelty.max_alert_age


class ReplayClock:
    """When each input of a bounded replay arrives: the newest event time among the inputs up
    to it (in input order). A replay stands in for a stream that received every article as it
    was published, so an article placed after much newer ones is a backfill, as it would be
    on the stream; a chronological replay (a backtest) alerts as the stream did at the time.
    Plain data, built once per replay and shared by every organization's fold."""

    def __init__(self, times: Iterable[tuple[int, float]]):
        self._seqs: list[int] = []
        self._newest: list[float] = []
        newest = float("-inf")
        for seq, t in sorted(times):
            newest = max(newest, t)
            self._seqs.append(seq)
            self._newest.append(newest)

    def at(self, seq: int, event_time: float) -> float:
        """The arrival time of input ``seq`` (never before its own ``event_time``)."""
        i = bisect.bisect_right(self._seqs, seq) - 1
        return max(event_time, self._newest[i]) if i >= 0 else event_time


class ArrivalClock:
    """:class:`ReplayClock` for a replay read as a stream: told of each input's event time in
    input order (:meth:`saw`), it gives the arrival time of the input seen last."""

    def __init__(self):
        self.newest = float("-inf")

    def saw(self, event_time: float) -> None:
        self.newest = max(self.newest, event_time)

    def at(self, event_time: float) -> float:
        """The arrival time of the input seen last, never before its own ``event_time``."""
        return max(event_time, self.newest)


def memory(novelty: Novelty) -> float:
    """How long after an organization's last event its state can be pruned to nothing."""
    return max(novelty.story_memory, novelty.surge.baseline + SURGE_STATE_MARGIN)


# ---------------------------------------------------------------------------
# alerts


_MATCH_WORDS = {
    "exact": "its name",
    "lemma": "an inflected form of its name",
    "translit": "a transliteration of its name",
    "fuzzy": "a reworded form of its name",
    "contextual": "a short name",
}


def raised(severity: str) -> str:
    """One step up the severity scale, capped at critical."""
    return SEVERITIES[min(SEVERITIES.index(severity) + 1, len(SEVERITIES) - 1)]


def _duration(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{max(1, round(seconds / 60))} minutes"


def why(trig: Trigger, org: Organization, watchlist: Watchlist) -> str:
    """One sentence an analyst can read: what happened, with the numbers behind it."""
    ev = trig.event
    said = f"\u201c{ev.mention}\u201d ({_MATCH_WORDS.get(ev.match, ev.match)})"
    if ev.match == "contextual" and ev.resolved_by:
        # "«Минобороны» read as Russia's: Москва, Кремль": the decision, so it can be checked.
        how = ev.resolved_by if ev.resolved_by.startswith("after ") else f"read as {ev.resolved_by}"
        said = f"\u201c{ev.mention}\u201d (a short name, {how})"
    if trig.kind == "new_mention":
        return f"{org.name} is mentioned in a new story: {said} in \u201c{ev.title or ev.url}\u201d."
    if trig.kind == "first_in_window":
        return (
            f"{org.name} is mentioned again after {_duration(trig.gap)} without a mention "
            f"(its quiet window is {_duration(trig.window)}): {said} in \u201c{ev.title or ev.url}\u201d."
        )
    if trig.kind == "surge":
        hour = datetime.fromtimestamp(trig.hour_start, UTC).strftime("%Y-%m-%d %H:00")
        if trig.baseline:
            ratio = f"{trig.count / trig.baseline:.1f} times its baseline of {trig.baseline:.2f} per hour"
        else:
            ratio = "where it had no stories per hour before"
        return (
            f"{org.name} is in {trig.count} new stories in the hour from {hour} UTC, "
            f"{ratio} over the previous {_duration(trig.window)}."
        )
    topic_id, score, evidence, learned = trig.topic
    try:
        topic_name = watchlist.topic(topic_id).name
    except KeyError:
        topic_name = topic_id
    words = ", ".join(dict.fromkeys(evidence)) or "its terms"
    if learned is not None:
        # The classifier decided, not the rules: say so, with the words that weighed most.
        return (f"An article about {topic_name} (learned classifier, probability {learned:.2f}: {words}; "
                f"rules score {score:g}) mentions {org.name}: {said}.")
    return f"An article about {topic_name} (score {score:g}: {words}) mentions {org.name}: {said}."


def severity(trig: Trigger, org: Organization, watchlist: Watchlist) -> str:
    """new_mention: the organization's; first_in_window and surge: one step higher; topic:
    the higher of the topic's and the organization's."""
    if trig.kind == "new_mention":
        return org.severity
    if trig.kind in ("first_in_window", "surge"):
        return raised(org.severity)
    try:
        topic_severity = watchlist.topic(trig.subject).severity
    except KeyError:
        topic_severity = "warning"
    return max(org.severity, topic_severity, key=SEVERITIES.index)


def make_alert(trig: Trigger, org: Organization, watchlist: Watchlist, created_at: datetime) -> Alert:
    ev = trig.event
    return Alert(
        alert_id=alert_id(trig.kind, trig.subject, trig.trigger),
        kind=trig.kind,
        severity=severity(trig, org, watchlist),
        article_id=ev.article_id,
        story_id=ev.story_id,
        url=ev.url,
        title=ev.title,
        snippet=ev.snippet,
        why=why(trig, org, watchlist),
        created_at=format_time(created_at),
        org_id=org.id,
        topic_id=trig.subject if trig.kind == "topic" else None,
    )


# ---------------------------------------------------------------------------
# one worker's rules


def _no_count(name: str) -> None:
    return None


def _always_watched(org_id: str) -> float | None:
    return None


def watched_event(wl: Watchlist, event: MentionEvent) -> tuple[Organization, MentionEvent] | None:
    """The organization ``event`` is about and the event as the rules see it (only the
    watchlist's alerting topics), or None when the organization is not watched. The stream
    and the state rebuild at start (:mod:`transforms.rebuild`) both go through here."""
    try:
        org = wl.organization(event.org_id)
    except KeyError:
        return None
    alerting = {t.id for t in wl.topics if t.alert}
    if any(t[0] not in alerting for t in event.topics):
        event = replace(event, topics=tuple(t for t in event.topics if t[0] in alerting))
    return org, event


class AlertRules:
    """The rules plus alert building for one worker: an organization's state and one of its
    mentions in, alerts out. Plain code that both Beam steps (and tests) share.

    ``watchlist`` is called on every event (a reload may have changed it). ``count(name)``
    is told of every ``org_not_watched``, ``alerts_<kind>`` and ``withheld_<kind>`` (an
    alert a backfill did not raise), for the caller's counters (the Beam steps pass Beam's);
    ``metrics`` (:class:`newsradar.metrics.PipelineMetrics`) gets the alert counts and
    latencies. ``now`` is the clock: alerts' ``created_at``, and the arrival time of an
    event the caller gives none for (the stream). ``watched_since(org_id)`` is when the
    organization was last added to the watchlist (None: always watched as far as known;
    :meth:`transforms.reload.Reloader.watched_since`)."""

    def __init__(self, watchlist: Callable[[], Watchlist], now: Callable[[], datetime] | None = None,
                 metrics=None, count: Callable[[str], None] = _no_count,
                 watched_since: Callable[[str], float | None] = _always_watched):
        self._watchlist = watchlist
        self._watched_since = watched_since
        self._now = now or (lambda: datetime.now(UTC))
        self._metrics = metrics
        self._count = count

    def now(self) -> datetime:
        """The rules' clock (aware)."""
        return self._now()

    def apply(self, state: OrgState, event: MentionEvent, arrival: float | None = None) -> list[Alert]:
        """The alerts ``event`` raises; ``state`` is updated in place. ``arrival``: when the
        event arrived (unix seconds; default: now), for the backfill guard."""
        wl = self._watchlist()
        watched = watched_event(wl, event)
        if watched is None:
            # Removed from the watchlist by a reload while its mentions were in flight.
            self._count("org_not_watched")
            return []
        org, event = watched
        triggers = observe(state, event, org, wl.novelty, self._watched_since(org.id))
        created = self._now()
        if triggers and is_backfill(event, created.timestamp() if arrival is None else arrival, wl.novelty):
            for trig in triggers:
                self._count(f"withheld_{trig.kind}")
                if self._metrics is not None:
                    self._metrics.alerts_withheld.labels(kind=trig.kind).inc()
            return []
        alerts = [make_alert(t, org, wl, created) for t in triggers]
        for alert in alerts:
            self._count(f"alerts_{alert.kind}")
            if self._metrics is not None:
                self._metrics.alerts.labels(kind=alert.kind).inc()
                now = created.timestamp()
                self._metrics.published_to_alert.observe(max(0.0, now - parse_time(event.published_at).timestamp()))
                self._metrics.fetched_to_alert.observe(max(0.0, now - parse_time(event.fetched_at).timestamp()))
        return alerts
