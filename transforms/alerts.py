"""Alert records: from a tagged article to novelty input, and from a trigger to an Alert a
person can read (``why``, ``snippet``, ``severity``). Plain functions; the Beam steps that
use them are in :mod:`transforms.alerting`.

Guarantees:

* :func:`make_alert` is deterministic except for ``created_at``: the id comes from
  :func:`newsradar.identity.alert_id` over (kind, organization or topic, trigger), so a
  replay, a retried bundle or a second worker produce the same id and every sink can drop
  repeats.
* A snippet always contains the matched span (it is cut around it at word boundaries).
"""

from __future__ import annotations

from datetime import UTC, datetime

from newsradar.config.watchlist import Organization, Watchlist
from newsradar.identity import alert_id
from newsradar.records import Alert, TaggedArticle, format_time, parse_time
from newsradar.vocab import SEVERITIES

from .nlp import analysis_text
from .novelty import MentionEvent, Trigger

SNIPPET_CHARS = 280

_MATCH_WORDS = {
    "exact": "its name",
    "lemma": "an inflected form of its name",
    "translit": "a transliteration of its name",
    "fuzzy": "a reworded form of its name",
}


def raised(severity: str) -> str:
    """One step up the severity scale, capped at critical."""
    return SEVERITIES[min(SEVERITIES.index(severity) + 1, len(SEVERITIES) - 1)]


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
    topics = tuple((t.id, t.score, tuple(e.text for e in t.evidence)) for t in tagged.topics)
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
                ),
            )
        )
    return out


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
    topic_id, score, evidence = trig.topic
    try:
        topic_name = watchlist.topic(topic_id).name
    except KeyError:
        topic_name = topic_id
    words = ", ".join(dict.fromkeys(evidence)) or "its terms"
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
