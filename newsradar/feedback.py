"""Analyst feedback on alerts: a verdict per alert (true or false positive) in a file that
lives in git next to the watchlist, and the precision it gives per organization alias and per
topic term.

The file is JSON lines, one verdict per line, appended in the order given (so a diff of it
is the verdicts added), keys sorted, UTF-8 as written::

    {"aliases":["Голос запаса"],"alert_id":"new_mention:golos-zapasa:…","at":"2026-05-02T09:00:00Z",
     "kind":"new_mention","org_id":"golos-zapasa","v":1,"verdict":"tp"}

Guarantees:

* An alert id is checked before anything is written: ``<kind>:<subject>:<digest>`` with a
  known kind (:func:`newsradar.identity.alert_id`); kind and subject (the organization, or the
  topic for ``topic`` alerts) are taken from it, so a verdict always names what it judges.
* The alias and the terms that matched are not in the id: a verdict carries them when the
  analyst gave them or they were looked up (`newsradar feedback --lookup`); a verdict
  without them counts for its organization or topic under ``(not recorded)``, never guessed.
* A topic that its learned classifier decided (``TopicTag.learned``) has no terms: its
  verdicts count under :data:`LEARNED_TERM`, so the classifier gets a precision of its own
  (:func:`topic_terms`).
* Reading: a line that is not a verdict is a :class:`FeedbackError` naming file and line; a
  later verdict on the same alert replaces an earlier one (the analyst changed their mind).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from newsradar.records import TaggedArticle, format_time, parse_time, utc_now
from newsradar.vocab import ALERT_KINDS

VERSION = 1
VERDICTS = ("tp", "fp")
NOT_RECORDED = "(not recorded)"
FILE_NAME = "feedback.jsonl"


class FeedbackError(ValueError):
    """A bad alert id or a feedback line that cannot be read; ``str()`` is one line."""


@dataclass(frozen=True)
class Verdict:
    alert_id: str
    verdict: str  # tp or fp
    kind: str
    at: str
    org_id: str | None = None
    topic_id: str | None = None
    aliases: tuple[str, ...] = ()  # the organization's names as the article wrote them
    terms: tuple[str, ...] = ()  # the topic terms that counted
    note: str | None = None

    def to_json(self) -> str:
        out: dict = {"v": VERSION, "alert_id": self.alert_id, "verdict": self.verdict, "kind": self.kind,
                     "at": self.at}
        for name in ("org_id", "topic_id", "note"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.aliases:
            out["aliases"] = list(self.aliases)
        if self.terms:
            out["terms"] = list(self.terms)
        return json.dumps(out, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


# The "term" of a topic its learned classifier decided: the words of its evidence are the
# features that weighed most, not terms of the watchlist.
LEARNED_TERM = "[learned classifier]"


def topic_terms(tagged: TaggedArticle, topic_id: str) -> list[str]:
    """The terms of ``topic_id`` that counted in ``tagged`` (its evidence), or
    :data:`LEARNED_TERM` when its learned classifier decided it."""
    out = []
    for topic in tagged.topics:
        if topic.id == topic_id:
            out.extend([LEARNED_TERM] if topic.learned is not None else [e.text for e in topic.evidence])
    return out


def parse_alert_id(alert_id: str) -> tuple[str, str]:
    """(kind, subject) of an alert id, or FeedbackError."""
    parts = alert_id.split(":")
    if len(parts) != 3 or parts[0] not in ALERT_KINDS or not parts[1] or len(parts[2]) != 20 \
            or any(c not in "0123456789abcdef" for c in parts[2]):
        raise FeedbackError(f"{alert_id!r} is not an alert id: expected <kind>:<organization or topic>:<20 hex digits>"
                            f" with a kind of {', '.join(ALERT_KINDS)} (`newsradar alerts tail` shows them)")
    return parts[0], parts[1]


def verdict_for(alert_id: str, verdict: str, aliases: Iterable[str] = (), terms: Iterable[str] = (),
                note: str | None = None, org_id: str | None = None, at=None) -> Verdict:
    kind, subject = parse_alert_id(alert_id)
    if verdict not in VERDICTS:
        raise FeedbackError(f"verdict {verdict!r}: expected tp or fp")
    topic_id = subject if kind == "topic" else None
    org = org_id if kind == "topic" else subject
    return Verdict(alert_id=alert_id, verdict=verdict, kind=kind, at=format_time(at or utc_now()), org_id=org,
                   topic_id=topic_id, aliases=tuple(dict.fromkeys(a for a in aliases if a.strip())),
                   terms=tuple(dict.fromkeys(t for t in terms if t.strip())), note=note or None)


def default_path(watchlist_file: str | os.PathLike) -> str:
    """``feedback.jsonl`` in the watchlist's directory."""
    return os.path.join(os.path.dirname(os.path.abspath(watchlist_file)), FILE_NAME)


def append(path: str | os.PathLike, verdict: Verdict) -> None:
    """One line at the end of ``path`` (created if missing), flushed to disk."""
    line = verdict.to_json() + "\n"
    with open(path, "a+b") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell():
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                line = "\n" + line  # a hand edit left no newline at the end
        fh.write(line.encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def load(path: str | os.PathLike) -> list[Verdict]:
    """Every verdict of the file in order; the last one per alert wins (:func:`latest`)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise FeedbackError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise FeedbackError(f"{path}: not UTF-8: {exc.reason}") from None
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict) or obj.get("v") != VERSION:
                raise ValueError(f"expected a verdict object with \"v\": {VERSION}")
            missing = [name for name in ("alert_id", "verdict", "kind", "at") if name not in obj]
            if missing:
                raise ValueError(f"missing {', '.join(missing)}")
            parse_time(obj["at"])
            v = Verdict(alert_id=obj["alert_id"], verdict=obj["verdict"], kind=obj["kind"], at=obj["at"],
                        org_id=obj.get("org_id"), topic_id=obj.get("topic_id"),
                        aliases=tuple(obj.get("aliases", ())), terms=tuple(obj.get("terms", ())), note=obj.get("note"))
            if v.verdict not in VERDICTS:
                raise ValueError(f"verdict {v.verdict!r}: expected tp or fp")
            parse_alert_id(v.alert_id)
        except (ValueError, KeyError, TypeError, FeedbackError) as exc:
            what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise FeedbackError(f"{path}:{n}: not a verdict: {what}") from None
        out.append(v)
    return out


def latest(verdicts: Iterable[Verdict]) -> list[Verdict]:
    """One verdict per alert, the last given, in the order of first appearance."""
    by_id: dict[str, Verdict] = {}
    for v in verdicts:
        by_id[v.alert_id] = v
    return list(by_id.values())


@dataclass
class Precision:
    tp: int = 0
    fp: int = 0
    alerts: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    def as_dict(self) -> dict:
        return {"tp": self.tp, "fp": self.fp, "precision": round(self.precision, 3)}


def _fold(text: str) -> str:
    return " ".join(text.casefold().replace("ё", "е").split())


def _grouped(pairs) -> dict[tuple[str, str], Precision]:
    """(subject, name) pairs of verdicts -> counts, names compared case-folded (ё as е) and
    shown as first written."""
    out: dict[tuple[str, str], Precision] = {}
    shown: dict[tuple[str, str], str] = {}
    for subject, names, v in pairs:
        for name in dict.fromkeys(names) or (NOT_RECORDED,):
            key = (subject, _fold(name))
            label = shown.setdefault(key, name)
            _count(out.setdefault((subject, label), Precision()), v)
    return dict(sorted(out.items()))


def by_alias(verdicts: Iterable[Verdict]) -> dict[tuple[str, str], Precision]:
    """(organization, alias as the article wrote it) -> verdicts; alerts without an
    organization are left out, those without an alias counted under :data:`NOT_RECORDED`."""
    return _grouped((v.org_id, _distinct(v.aliases), v) for v in latest(verdicts) if v.org_id is not None)


def by_term(verdicts: Iterable[Verdict]) -> dict[tuple[str, str], Precision]:
    """(topic, term as the article wrote it) -> verdicts of ``topic`` alerts."""
    return _grouped((v.topic_id, _distinct(v.terms), v) for v in latest(verdicts) if v.topic_id is not None)


def _distinct(names: tuple[str, ...]) -> tuple[str, ...]:
    """One name per case-folded form: «Пикет» and «пикет» in one alert count once."""
    seen: dict[str, str] = {}
    for name in names:
        seen.setdefault(_fold(name), name)
    return tuple(seen.values())


def _count(p: Precision, v: Verdict) -> None:
    if v.verdict == "tp":
        p.tp += 1
    else:
        p.fp += 1
    p.alerts.append(v.alert_id)


def report_lines(verdicts: list[Verdict]) -> list[str]:
    """The text table both reports print."""
    current = latest(verdicts)
    lines = [f"analyst feedback: {len(current)} alerts judged ({sum(v.verdict == 'tp' for v in current)} true, "
             f"{sum(v.verdict == 'fp' for v in current)} false positives)"]
    for title, table in (("organization alias", by_alias(verdicts)), ("topic term", by_term(verdicts))):
        lines.append("")
        if not table:
            lines.append(f"per {title}: none judged")
            continue
        width = max(len(f"{a}  {b}") for a, b in table) + 2
        lines.append(f"{'per ' + title:<{width}}  tp  fp  precision")
        for (subject, name), p in table.items():
            lines.append(f"{subject + '  ' + name:<{width}}  {p.tp:>2}  {p.fp:>2}  {p.precision:>9.2f}")
    return lines
