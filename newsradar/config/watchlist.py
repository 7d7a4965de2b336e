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
    # A word of the setting, not of the event ("army", "front", "war"): it counts only beside
    # a term that is not background, and all of a topic's background terms together add at
    # most the topic's ``max_background``.
    background: bool = False


def _term(value):
    return {"term": value} if isinstance(value, str) else value


TermItem = Annotated[Term, BeforeValidator(_term)]


class Topic(_Frozen):
    id: Slug
    name: Text
    description: str = ""
    # An article is tagged when the summed weight of distinct matched terms reaches this.
    threshold: float = Field(default=2.0, gt=0)
    # The most that ``background`` terms add together (and only beside another term).
    max_background: float = Field(default=1.0, ge=0)
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
    "единая Россия" a phrase): such a name counts only when it is written as a name (in
    quotation marks or with a capital, not right after "фильм", "кинотеатр", ...) and
    something supports it: one of the organization's ``heads`` or ``context`` words near it,
    two context words anywhere in the article, or a full mention of it (docs/tagging.md).
    """

    text: Text
    case: Literal["any", "proper"] = "any"
    # A short or generic form ("Минобороны", "the Defense Ministry") that several bodies share:
    # it counts only when the article's context resolves it to this organization (an earlier
    # full mention, the organization's country among the ones the story is about, or its
    # context words); such a mention is ``match: contextual`` (docs/tagging.md). ``mention``:
    # only an earlier full mention resolves it ("the ministry" after "Russia's Defence Ministry").
    generic: bool | Literal["mention"] = False

    @property
    def generic_level(self) -> int:
        """0 a full name, 1 resolved by any context, 2 only by an earlier full mention."""
        return 2 if self.generic == "mention" else int(bool(self.generic))


AliasItem = Annotated[Alias, BeforeValidator(_alias)]


class Acronym(_Frozen):
    """An abbreviation, matched case-sensitively as whole tokens. In YAML either ``"ЕР"`` or
    ``{text: ФАС, case: proper}``: ``proper`` counts only with support (a head or context word
    near it, or a full mention of the organization in the article), for abbreviations that
    other bodies share."""

    text: Text
    case: Literal["any", "proper"] = "any"


AcronymItem = Annotated[Acronym, BeforeValidator(_alias)]


class Country(_Frozen):
    """A country a story can be about, told by cue words (places, institutions, people) found
    anywhere in the article, each counted once; the article's language and its source add
    half a cue each for the countries that list them. Generic aliases of the organizations of this ``id`` are read
    as theirs when it leads (docs/tagging.md)."""

    id: Slug
    # The possessive used in explanations: "Russia's".
    name: Text
    cues: dict[Lang, tuple[TermItem, ...]]
    langs: tuple[Lang, ...] = ()
    # Source ids (shell patterns, "tg-*") whose stories are mostly about this country: an
    # article from one counts half a cue, as the language does.
    sources: tuple[Text, ...] = ()


class Organization(_Frozen):
    id: Slug
    name: Text
    # Names and phrasings per language; every inflected form of each is matched.
    aliases: dict[Lang, tuple[AliasItem, ...]]
    # Short all-caps abbreviations, matched case-sensitively as whole tokens (e.g. "ЕР", "UCSMR").
    acronyms: tuple[AcronymItem, ...] = ()
    # The country the organization belongs to (an id under ``countries:``): what resolves
    # its ``generic`` aliases.
    country: Slug | None = None
    # Also match Latin <-> Cyrillic transliterations of the aliases.
    translit: bool = True
    # Also match aliases with up to two words swapped for a listed synonym ("Moms" for "Mothers").
    fuzzy: bool = True
    # Words (any inflection) that confirm a ``case: proper`` alias when near it, and a
    # ``generic`` one anywhere in the article.
    context: dict[Lang, tuple[Text, ...]] = Field(default_factory=dict)
    # Words that head the name ("движение «Путь домой»", "the Way Home, a movement"): within
    # three words of a ``case: proper`` alias they confirm it.
    heads: dict[Lang, tuple[Text, ...]] = Field(default_factory=dict)
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


class Watchlist(_Frozen):
    version: Literal[1] = 1
    countries: tuple[Country, ...] = ()
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

    def country(self, country_id: str) -> Country:
        for country in self.countries:
            if country.id == country_id:
                return country
        raise KeyError(country_id)

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
    check_unique(doc, list(wl.countries), lambda c: c.id, "countries", "country")
    country_ids = {c.id for c in wl.countries}
    org_ids = {o.id for o in wl.organizations}
    topic_ids = {t.id for t in wl.topics}
    for i, org in enumerate(wl.organizations):
        if not any(org.aliases.values()):
            raise doc.error(f"organizations[{i}].aliases", "expected at least one alias in en, ru or uk")
        if org.country is not None and org.country not in country_ids:
            raise doc.error(f"organizations[{i}].country", f"unknown country id {org.country!r} (see countries:)")
        for lang, aliases in org.aliases.items():
            for j, alias in enumerate(aliases):
                if alias.generic is True and org.country is None and not any(org.context.values()):
                    raise doc.error(
                        f"organizations[{i}].aliases.{lang}[{j}].generic",
                        f"generic alias {alias.text!r} has nothing to resolve it: give the organization "
                        "a country (one of countries:) or context words",
                    )
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
    "Acronym", "Alerts", "Alias", "AlertmanagerSink", "ConfigError", "Country", "Example", "FileSink", "LANGS", "Novelty",
    "Organization", "Surge", "Term", "Topic", "Watchlist", "WebhookSink", "load_watchlist",
]
