"""``watchlist.yaml``: watched organizations, topics, inline examples and alert routing.

Loaded once at start (and again on reload) into frozen objects; components take these
objects, never the YAML. See ``config/watchlist.yaml`` for a commented example.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from newsradar.vocab import LANGUAGES, Lang, Severity

from .loader import ConfigError, Document, check_unique, config_duration, load_yaml, pattern, validate

LANGS = LANGUAGES


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


# A name or phrase must hold a letter or digit somewhere: a blank one can never match.
Text = Annotated[str, pattern(r"\S", "text that is not blank")]
Slug = Annotated[str, pattern(r"^[a-z0-9][a-z0-9-]{0,63}$", "an id of lower-case letters, digits and '-'")]
# Every duration carries its unit (7d, 30s): a bare 7 is refused, not read as seconds.
Duration = Annotated[float, BeforeValidator(config_duration)]


class Term(_Frozen):
    """A topic term or phrase with its weight. In YAML either ``"term"`` or
    ``{term: "...", weight: 2.0}``. Matched on lemmas, so one form covers its inflections."""

    term: Text
    weight: float = Field(default=1.0, gt=0)


def _term(value):
    return {"term": value} if isinstance(value, str) else value


TermItem = Annotated[Term, BeforeValidator(_term)]


class Topic(_Frozen):
    id: Slug
    name: Text
    description: str = ""
    # An article is tagged when the summed weight of distinct matched terms reaches this.
    threshold: float = Field(default=2.0, gt=0)
    terms: dict[Lang, tuple[TermItem, ...]]
    # A negative term cancels every positive match it overlaps ("protest song" is not
    # evidence of a protest) and subtracts its weight once from the score.
    negative: dict[Lang, tuple[TermItem, ...]] = Field(default_factory=dict)
    # Raise a ``topic`` alert when an article carries this topic and a watched organization.
    alert: bool = True
    severity: Severity = "warning"


def _alias(value):
    return {"text": value} if isinstance(value, str) else value


class Alias(_Frozen):
    """One name of an organization. In YAML either ``"name"`` or ``{text: "...", case: proper}``.

    ``case: any`` (the default) matches the name case-insensitively in every inflected form.
    ``case: proper`` is for names that are also ordinary words ("Вёрстка" is page layout,
    "единая Россия" a phrase): such a name counts only when it is written capitalized as in
    ``text`` and does not open a sentence, or stands in quotation marks, or one of the
    organization's ``context`` words is within a few words of it (docs/tagging.md).
    """

    text: Text
    case: Literal["any", "proper"] = "any"


AliasItem = Annotated[Alias, BeforeValidator(_alias)]


class Organization(_Frozen):
    id: Slug
    name: Text
    # Names and phrasings per language; every inflected form of each is matched.
    aliases: dict[Lang, tuple[AliasItem, ...]]
    # Short all-caps abbreviations, matched case-sensitively as whole tokens (e.g. "ЕР", "UCSMR").
    acronyms: tuple[Text, ...] = ()
    # Also match Latin <-> Cyrillic transliterations of the aliases.
    translit: bool = True
    # Also match aliases with up to two words swapped for a listed synonym ("Moms" for "Mothers").
    fuzzy: bool = True
    # Words (any inflection) that confirm a ``case: proper`` alias when near it.
    context: dict[Lang, tuple[Text, ...]] = Field(default_factory=dict)
    # first_in_window fires when the organization had no mention for this long.
    novelty_window: Duration | None = None
    severity: Severity = "warning"

    def window(self, novelty: Novelty) -> float:
        """The first_in_window period in seconds: this organization's, else the default."""
        return self.novelty_window if self.novelty_window is not None else novelty.default_window


class Example(_Frozen):
    """An inline example that must (or must not) produce the listed tags and mentions."""

    text: Text
    title: str = ""
    lang: Lang | None = None
    topics: tuple[str, ...] = ()
    not_topics: tuple[str, ...] = ()
    orgs: tuple[str, ...] = ()
    not_orgs: tuple[str, ...] = ()
    note: str = ""


class WebhookSink(_Frozen):
    kind: Literal["webhook"]
    url: Text
    # Name of the environment variable that holds the HMAC secret (never the secret itself).
    secret_env: str | None = None
    allow_private_networks: bool = False
    # Per request; a failed request is retried with backoff by `newsradar deliver`.
    timeout: Duration = 10.0
    # Requests to this sink at the same time, and at most this many per second (none: no cap).
    concurrency: int = Field(default=4, ge=1, le=64)
    rate_limit: float | None = Field(default=None, gt=0)


class AlertmanagerSink(_Frozen):
    kind: Literal["alertmanager"]
    url: Text
    allow_private_networks: bool = False
    # Per request; a failed request is retried with backoff by `newsradar deliver`.
    timeout: Duration = 10.0
    # Requests to this sink at the same time, and at most this many per second (none: no cap).
    concurrency: int = Field(default=4, ge=1, le=64)
    rate_limit: float | None = Field(default=None, gt=0)


class FileSink(_Frozen):
    kind: Literal["file"]
    path: Text


Sink = Annotated[WebhookSink | AlertmanagerSink | FileSink, Field(discriminator="kind")]


class Surge(_Frozen):
    """Surge detection per organization (see docs for the method)."""

    # Mentions in the current hour must be at least this many ...
    min_mentions: int = 5
    # ... and this many times the recent hourly baseline.
    factor: float = 4.0
    # Baseline: mean mentions per hour over this window.
    baseline: Duration = 7 * 86400.0
    # No second surge alert for the same organization within this time.
    cooldown: Duration = 6 * 3600.0


class Novelty(_Frozen):
    default_window: Duration = 7 * 86400.0
    # How long a story is remembered per organization, so its late copies raise nothing.
    story_memory: Duration = 14 * 86400.0
    # Backfill guard: a mention whose event time is more than this before the time it
    # arrives updates the state but raises no alert (docs/alerts.md, "Backfills").
    max_alert_age: Annotated[Duration, Field(gt=0)] = 2 * 86400.0
    surge: Surge = Surge()


class Alerts(_Frozen):
    sinks: tuple[Sink, ...] = ()
    # `newsradar deliver` makes the alerts of one story read within this long of its first
    # one notification (docs/alerts.md, "One notification per story"); --group-window overrides.
    group_window: Annotated[Duration, Field(ge=0, le=3600)] = 5.0


class Watchlist(_Frozen):
    version: Literal[1] = 1
    organizations: tuple[Organization, ...] = ()
    topics: tuple[Topic, ...] = ()
    examples: tuple[Example, ...] = ()
    novelty: Novelty = Novelty()
    alerts: Alerts = Alerts()

    def organization(self, org_id: str) -> Organization:
        for org in self.organizations:
            if org.id == org_id:
                return org
        raise KeyError(org_id)

    def topic(self, topic_id: str) -> Topic:
        for topic in self.topics:
            if topic.id == topic_id:
                return topic
        raise KeyError(topic_id)


def load_watchlist(path: str | os.PathLike) -> Watchlist:
    """Load and validate a watchlist file. Raises :class:`ConfigError` naming file and path."""
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise doc.error("", "expected a mapping at the top level (organizations:, topics:, ...)")
    watchlist = validate(doc, Watchlist)
    _check_references(doc, watchlist)
    return watchlist


def _check_references(doc: Document, wl: Watchlist) -> None:
    check_unique(doc, list(wl.organizations), lambda o: o.id, "organizations", "organization")
    check_unique(doc, list(wl.topics), lambda t: t.id, "topics", "topic")
    org_ids = {o.id for o in wl.organizations}
    topic_ids = {t.id for t in wl.topics}
    for i, org in enumerate(wl.organizations):
        if not any(org.aliases.values()):
            raise doc.error(f"organizations[{i}].aliases", "expected at least one alias in en, ru or uk")
    for i, topic in enumerate(wl.topics):
        if not any(topic.terms.values()):
            raise doc.error(f"topics[{i}].terms", "expected at least one term in en, ru or uk")
    for i, ex in enumerate(wl.examples):
        for field, known, what in (
            ("topics", topic_ids, "topic"),
            ("not_topics", topic_ids, "topic"),
            ("orgs", org_ids, "organization"),
            ("not_orgs", org_ids, "organization"),
        ):
            for j, ref in enumerate(getattr(ex, field)):
                if ref not in known:
                    raise doc.error(f"examples[{i}].{field}[{j}]", f"unknown {what} id {ref!r}")


__all__ = [
    "Alerts", "Alias", "AlertmanagerSink", "ConfigError", "Example", "FileSink", "LANGS", "Novelty",
    "Organization", "Surge", "Term", "Topic", "Watchlist", "WebhookSink", "load_watchlist",
]
