"""Novelty rules per watched organization: what is new enough to tell a person about.

The state of one organization (:class:`OrgState`) sees that organization's mentions one at a
time (:func:`observe`) and answers with :class:`Trigger` s:

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

Every trigger names what raised it (``subject``, ``trigger``), so
:func:`newsradar.identity.alert_id` gives the same id however often or in whatever order the
input is replayed. State is bounded: stories and hour counts older than the memory are
pruned on every event and on a timer; an idle organization keeps only two timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from newsradar.config.watchlist import Novelty, Organization

HOUR = 3600.0
# The hour buckets that may still raise a surge: the newest and the one before it.
SURGE_LATENESS_HOURS = 1
# Hard cap on remembered stories per organization, whatever the memory duration says.
MAX_STORIES = 20_000


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
    # (topic id, score, evidence texts) of the alerting topics the article carries.
    topics: tuple[tuple[str, float, tuple[str, ...]], ...] = ()
    # Arrival order in a bounded replay (`newsradar tag`); 0 on a stream.
    seq: int = 0


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
    topic: tuple[str, float, tuple[str, ...]] | None = None


@dataclass(slots=True)
class OrgState:
    """What is remembered about one organization. Plain data: Beam pickles it into state."""

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


def hour_of(t: float) -> int:
    return int(t // HOUR)


def observe(state: OrgState, event: MentionEvent, org: Organization, novelty: Novelty) -> list[Trigger]:
    """Apply one mention to ``state`` (mutated) and return what it triggers, in the order
    new_mention, first_in_window, surge, topic."""
    t = event.event_time
    out: list[Trigger] = []
    new_story = event.story_id not in state.stories
    newest_before = state.last_seen
    if new_story:
        state.stories[event.story_id] = t
        out.append(Trigger("new_mention", org.id, event.story_id, event))
        window = org.window(novelty)
        if newest_before is not None and t - newest_before >= window:
            out.append(
                Trigger("first_in_window", org.id, event.story_id, event, gap=t - newest_before, window=window)
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
    """Forget what no rule can need any more as of event time ``now``."""
    horizon = now - novelty.story_memory
    if state.stories:
        state.stories = {s: at for s, at in state.stories.items() if at > horizon}
        if len(state.stories) > MAX_STORIES:
            newest = sorted(state.stories.items(), key=lambda kv: kv[1])[-MAX_STORIES:]
            state.stories = dict(newest)
    if state.topic_stories:
        state.topic_stories = {k: at for k, at in state.topic_stories.items() if at > horizon}
        if len(state.topic_stories) > MAX_STORIES:
            state.topic_stories = dict(sorted(state.topic_stories.items(), key=lambda kv: kv[1])[-MAX_STORIES:])
    if state.hours:
        oldest_hour = hour_of(now - novelty.surge.baseline) - SURGE_LATENESS_HOURS - 1
        state.hours = {h: n for h, n in state.hours.items() if h >= oldest_hour}


def memory(novelty: Novelty) -> float:
    """How long after an organization's last event its state can be pruned to nothing."""
    return max(novelty.story_memory, novelty.surge.baseline + 2 * HOUR)
