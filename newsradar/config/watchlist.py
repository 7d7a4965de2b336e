"""``watchlist.yaml``: watched organizations, topics, inline examples and alert routing.

Loaded once at start (and again on reload) into frozen objects; components take these
objects, never the YAML. See ``config/watchlist.yaml`` for a commented example.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, field_validator

from newsradar import topic_model
from newsradar.vocab import LANGUAGES, AlertKind, Lang, Severity

from .loader import ConfigError, Document, check_unique, config_duration, load_yaml, pattern, validate

LANGS = LANGUAGES


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


# A name or phrase must hold a letter or digit somewhere: a blank one can never match.
Text = Annotated[str, pattern(r"\S", "text that is not blank")]
# A topic term or a shape's phrase is matched on the keys of its words: one with no letter or
# digit in it ("—", "!!") is all punctuation, which no match key ever is.
Phrase = Annotated[str, pattern(r"[^\W_]", "a phrase with a letter or digit in it")]
Slug = Annotated[str, pattern(r"^[a-z0-9][a-z0-9-]{0,63}$", "an id of lower-case letters, digits and '-'")]
# Every duration carries its unit (7d, 30s): a bare 7 is refused, not read as seconds.
Duration = Annotated[float, BeforeValidator(config_duration)]


class Term(_Frozen):
    """A topic term or phrase with its weight. In YAML either ``"term"`` or
    ``{term: "...", weight: 2.0}``. Matched on lemmas, so one form covers its inflections."""

    term: Phrase
    weight: float = Field(default=1.0, gt=0)
    # A word of the setting, not of the event ("army", "front", "war"): it counts only beside
    # a term that is not background, and all of a topic's background terms together add at
    # most the topic's ``max_background``.
    background: bool = False

    @field_validator("term")
    @classmethod
    def _gaps_inside(cls, value: str) -> str:
        # "*" is a word that stands for at most one word of the text ("мобилизовать * ресурсы");
        # it needs a word on each side, and a star stuck to a word would be read as its letters.
        words = value.split()
        if "*" in value and ("*" in (words[0], words[-1]) or any("*" in w and w != "*" for w in words)):
            raise ValueError("a '*' stands alone between two words (\"мобилизовать * ресурсы\")")
        return value


def _term(value):
    return {"term": value} if isinstance(value, str) else value


TermItem = Annotated[Term, BeforeValidator(_term)]


# Bounds of a shape (transforms.topics.shape_matches searches one match per part within the
# window, and also stops at MAX_SHAPE_STEPS on adversarial text).
MAX_SHAPE_PARTS = 4
MAX_SHAPE_WINDOW = 200


class Shape(_Frozen):
    """A combination of words that is evidence only together: found where one phrase of every
    part stands within ``within`` words (tokens, punctuation included: from the first word of
    the first to the last word of the last; ``article`` for anywhere in the article), each on
    words of its own, and in the listed order when ``ordered``. Its weight counts once. So
    "women" + "gathered outside" + "with portraits" can reach a threshold none of them reaches
    alone (docs/tagging.md, "Shapes")."""

    name: Text
    weight: float = Field(gt=0, allow_inf_nan=False)
    within: StrictInt | Literal["article"] = 12
    ordered: bool = False
    # Each part: phrases matched like terms (every inflected form), without "*". At most
    # MAX_SHAPE_PARTS parts: the search for an occurrence grows with the matches of every part.
    parts: tuple[tuple[Phrase, ...], ...] = Field(min_length=2, max_length=MAX_SHAPE_PARTS)

    @field_validator("within")
    @classmethod
    def _positive_window(cls, value):
        if value != "article" and not 1 <= value <= MAX_SHAPE_WINDOW:
            raise ValueError(f"within is a number of words (1 to {MAX_SHAPE_WINDOW}) or 'article'")
        return value

    @field_validator("parts")
    @classmethod
    def _plain_phrases(cls, value):
        for part in value:
            if not part:
                raise ValueError("every part of a shape holds at least one phrase")
            if any("*" in phrase for phrase in part):
                raise ValueError("a shape's phrases take no '*': the window already allows words between")
        # The same phrase in two parts: both parts would need their own occurrence of it, which
        # is rarely what was meant (one part, or another phrase).
        seen: dict[str, int] = {}
        for i, part in enumerate(value):
            for phrase in part:
                key = " ".join(phrase.lower().split())
                if seen.get(key, i) != i:
                    raise ValueError(f"the phrase {phrase!r} is in parts {seen[key]} and {i}: give it to one part")
                seen[key] = i
        return value

    @property
    def window(self) -> int | None:
        """The most tokens the parts may span, or None for the whole article."""
        return None if self.within == "article" else self.within


class Learned(_Frozen):
    """A learned classifier beside a topic's rules (newsradar/topic_model.py): the article
    carries the topic when the rules reach ``threshold`` or the classifier's probability
    reaches this one. In YAML either the classifier's name or ``{model: NAME, threshold: P}``."""

    model: Slug
    # None: the threshold the classifier was trained with (in the model file).
    threshold: float | None = Field(default=None, gt=0, lt=1)


def _learned(value):
    return {"model": value} if isinstance(value, str) else value


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
    # Combinations of words that count only together (``Shape``); a found negative shape
    # cancels the positive matches it overlaps and subtracts its weight, like a negative term.
    shapes: dict[Lang, tuple[Shape, ...]] = Field(default_factory=dict)
    negative_shapes: dict[Lang, tuple[Shape, ...]] = Field(default_factory=dict)
    # A classifier of the build's model file that may also decide the topic (``Learned``).
    learned: Annotated[Learned, BeforeValidator(_learned)] | None = None
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
    # ``title``: not a name of it but the title of its head ("Defence Minister"): never a
    # mention itself, it resolves a later ``mention`` alias when the article's context
    # resolves it like a ``true`` one ("Defence Minister Belousov ... the ministry").
    generic: bool | Literal["mention", "title"] = False

    @property
    def generic_level(self) -> int:
        """0 a full name, 1 resolved by any context, 2 only by an earlier full mention (or
        resolved title), 3 a title that only resolves a later level-2 alias."""
        if self.generic == "mention":
            return 2
        if self.generic == "title":
            return 3
        return int(bool(self.generic))


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


# A sink's address: scheme and host, nothing else checked here (the sinks check addresses
# again after DNS, newsradar/netguard.py).
Url = Annotated[str, pattern(r"^https?://[^/\s?#@]+(/\S*)?$", "an http:// or https:// URL")]
EnvName = Annotated[str, pattern(r"^[A-Za-z_][A-Za-z0-9_]*$", "the name of an environment variable")]


class Route(_Frozen):
    """Which alerts a sink gets (all, by default). A notification goes to the sink when one
    of the alerts it adds passes every condition given."""

    min_severity: Severity | None = None
    kinds: tuple[AlertKind, ...] = ()
    organizations: tuple[Slug, ...] = ()
    topics: tuple[Slug, ...] = ()


class Digest(_Frozen):
    """A sink's digest: the notifications whose new (routed) alerts are all at or below
    ``max_severity`` are held and sent together, one message every ``every`` (periods aligned
    on the clock: every 15m is :00, :15, :30, :45 UTC); the others go at once, as without it."""

    every: Annotated[Duration, Field(ge=1, le=86400)]
    max_severity: Severity = "info"


def _one_of(env_value, file_value, env: str, file: str, required: bool):
    """A secret by reference only: the name of an environment variable or the path of a file
    (relative to $NEWSRADAR_HOME), never the value; ``newsradar deliver`` reads it at start.
    Checked on the file field (declared after the env field, validated even when absent)."""
    if env_value is not None and file_value is not None:
        raise ValueError(f"give {env} or {file}, not both")
    if required and env_value is None and file_value is None:
        raise ValueError(f"expected {env} (an environment variable) or {file} (a file) with the secret")
    return file_value


SecretFile = Annotated[Text | None, Field(validate_default=True)]


class WebhookSink(_Frozen):
    kind: Literal["webhook"]
    url: Url
    # Where the HMAC secret is: an environment variable, or a file (never the secret itself).
    secret_env: EnvName | None = None
    secret_file: SecretFile = None
    allow_private_networks: bool = False
    # Per request; a failed request is retried with backoff by `newsradar deliver`.
    timeout: Duration = 10.0
    # Requests to this sink at the same time, and at most this many per second (none: no cap).
    concurrency: int = Field(default=4, ge=1, le=64)
    rate_limit: float | None = Field(default=None, gt=0)
    route: Route = Route()
    digest: Digest | None = None

    @field_validator("secret_file", mode="after")
    @classmethod
    def _secret(cls, value, info):
        return _one_of(info.data.get("secret_env"), value, "secret_env", "secret_file", required=False)


class AlertmanagerSink(_Frozen):
    kind: Literal["alertmanager"]
    url: Url
    allow_private_networks: bool = False
    # Per request; a failed request is retried with backoff by `newsradar deliver`.
    timeout: Duration = 10.0
    # Requests to this sink at the same time, and at most this many per second (none: no cap).
    concurrency: int = Field(default=4, ge=1, le=64)
    rate_limit: float | None = Field(default=None, gt=0)
    route: Route = Route()


class FileSink(_Frozen):
    kind: Literal["file"]
    path: Text
    route: Route = Route()


class SlackSink(_Frozen):
    """A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat): its URL is the
    secret, so it is given by reference."""

    kind: Literal["slack"]
    url_env: EnvName | None = None
    url_file: SecretFile = None
    allow_private_networks: bool = False
    timeout: Duration = 10.0
    concurrency: int = Field(default=1, ge=1, le=16)
    # Slack allows about one message per second per webhook.
    rate_limit: float | None = Field(default=1.0, gt=0)
    route: Route = Route()
    digest: Digest | None = None

    @field_validator("url_file", mode="after")
    @classmethod
    def _secret(cls, value, info):
        return _one_of(info.data.get("url_env"), value, "url_env", "url_file", required=True)


def _chat_id(value):
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class TelegramSink(_Frozen):
    """A Telegram bot's sendMessage to one chat; the bot token by reference."""

    kind: Literal["telegram"]
    chat_id: Annotated[str, BeforeValidator(_chat_id), pattern(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})$",
                                    "a numeric chat id or an @channel username")]
    token_env: EnvName | None = None
    token_file: SecretFile = None
    # The Bot API's address (a local stand-in in tests).
    api_url: Url = "https://api.telegram.org"
    allow_private_networks: bool = False
    timeout: Duration = 10.0
    concurrency: int = Field(default=1, ge=1, le=16)
    # Telegram allows about one message per second to one chat (20 a minute to a group).
    rate_limit: float | None = Field(default=1.0, gt=0)
    route: Route = Route()
    digest: Digest | None = None

    @field_validator("token_file", mode="after")
    @classmethod
    def _secret(cls, value, info):
        return _one_of(info.data.get("token_env"), value, "token_env", "token_file", required=True)


# A mail server's name or an IP literal; checked again after DNS by the sink.
Host = Annotated[str, pattern(r"^([A-Za-z0-9]([A-Za-z0-9-]{0,62}\.)*[A-Za-z0-9-]{1,63}|[0-9A-Fa-f:.]+)$",
                              "a host name or an IP address")]
# A bare address (user@domain), no display name: what goes on the envelope too.
MailAddress = Annotated[str, pattern(r"^[^@\s<>,;\"()\[\]]+@[A-Za-z0-9.-]+$", "an e-mail address user@domain")]


class EmailSink(_Frozen):
    """E-mail over SMTP: STARTTLS (or implicit TLS) and AUTH with the password by reference;
    one message per notification with a plain and an HTML part."""

    kind: Literal["email"]
    host: Host
    # 587 is the submission port (STARTTLS); 465 for tls: implicit.
    port: int = Field(default=587, ge=1, le=65535)
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    # A CA bundle (PEM) that signed the server's certificate, when it is not a public CA
    # (relative to $NEWSRADAR_HOME); the system's CAs otherwise. The host name is always checked.
    ca_file: Text | None = None
    username: Text | None = None
    password_env: EnvName | None = None
    password_file: SecretFile = None
    from_address: Annotated[MailAddress, Field(alias="from")]
    to: Annotated[tuple[MailAddress, ...], Field(min_length=1, max_length=100)]
    # The subject is "<subject_prefix> [SEVERITY] <title>" ("Update 2: <title>" for an update).
    subject_prefix: str = Field(default="[newsradar]", max_length=100, pattern=r"^[^\r\n]*$")
    allow_private_networks: bool = False
    # Each network step of the SMTP session (smtplib's socket timeout); a failure is retried by `newsradar deliver`.
    timeout: Duration = 30.0
    concurrency: int = Field(default=2, ge=1, le=16)
    rate_limit: float | None = Field(default=None, gt=0)
    route: Route = Route()
    digest: Digest | None = None

    @field_validator("password_file", mode="after")
    @classmethod
    def _secret(cls, value, info):
        _one_of(info.data.get("password_env"), value, "password_env", "password_file", required=False)
        has_password = info.data.get("password_env") is not None or value is not None
        if has_password and info.data.get("username") is None:
            raise ValueError("a password without a username: give username too")
        if info.data.get("username") is not None and not has_password:
            raise ValueError("expected password_env (an environment variable) or password_file (a file) "
                             "with the password for username")
        if has_password and info.data.get("tls") == "none":
            raise ValueError("tls: none would send the password in clear text: use starttls or implicit")
        return value


Sink = Annotated[WebhookSink | AlertmanagerSink | FileSink | SlackSink | TelegramSink | EmailSink,
                 Field(discriminator="kind")]


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


# Surge hour counts are kept this long past the baseline (late mentions still count in their
# hour; transforms.alert_rules.prune).
SURGE_STATE_MARGIN = 2 * 3600.0


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

    def without_learned(self) -> Watchlist:
        """This watchlist with its topics' rules alone (for measuring what the rules do)."""
        return self.model_copy(update={"topics": tuple(t.model_copy(update={"learned": None}) for t in self.topics)})

    def topic(self, topic_id: str) -> Topic:
        for topic in self.topics:
            if topic.id == topic_id:
                return topic
        raise KeyError(topic_id)

    def memory_seconds(self) -> float:
        """The longest the novelty rules look back with this watchlist (story memory, windows,
        surge baseline and cooldown): what news.tagged and news.alerts must keep for the state
        rebuilt at start (the pipeline adds Dedupe's windows: ``pipelines.run.memory_seconds``)."""
        n = self.novelty
        return max(n.story_memory, n.default_window, n.surge.baseline + SURGE_STATE_MARGIN, n.surge.cooldown,
                   *(org.window(n) for org in self.organizations))


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
                if alias.generic in (True, "title") and org.country is None and not any(org.context.values()):
                    raise doc.error(
                        f"organizations[{i}].aliases.{lang}[{j}].generic",
                        f"generic alias {alias.text!r} has nothing to resolve it: give the organization "
                        "a country (one of countries:) or context words",
                    )
    for i, topic in enumerate(wl.topics):
        if not any(topic.terms.values()):
            raise doc.error(f"topics[{i}].terms", "expected at least one term in en, ru or uk")
        for field in ("shapes", "negative_shapes"):
            for lang, shapes in getattr(topic, field).items():
                # A shape is reported by its name (per-term figures, `[name]`): two of one name
                # in a language would be counted as one.
                names: dict[str, int] = {}
                for j, shape in enumerate(shapes):
                    if shape.name in names:
                        raise doc.error(f"topics[{i}].{field}.{lang}[{j}].name",
                                        f"duplicate shape name {shape.name!r} (first used at [{names[shape.name]}])")
                    names[shape.name] = j
        if topic.learned is not None:
            try:
                shipped = topic_model.load()
            except topic_model.ModelError as exc:
                raise doc.error(f"topics[{i}].learned", f"the build's model file cannot be used: {exc}") from exc
            if topic.learned.model not in shipped.classifiers:
                raise doc.error(f"topics[{i}].learned.model",
                                f"unknown classifier {topic.learned.model!r} (this build has: "
                                f"{', '.join(sorted(shipped.classifiers))})")
    for i, sink in enumerate(wl.alerts.sinks):
        for field, known, what in (("organizations", org_ids, "organization"), ("topics", topic_ids, "topic")):
            for j, ref in enumerate(getattr(sink.route, field)):
                if ref not in known:
                    raise doc.error(f"alerts.sinks[{i}].route.{field}[{j}]", f"unknown {what} id {ref!r}")
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
    "Acronym", "Alerts", "Alias", "AlertmanagerSink", "ConfigError", "Country", "Digest", "EmailSink", "Example", "FileSink",
    "LANGS", "Learned", "Novelty", "Organization", "Route", "SlackSink", "Surge", "TelegramSink", "Term", "Topic", "Watchlist", "WebhookSink",
    "load_watchlist",
]
