"""``sources.yaml``: the feeds and channels the connectors poll.

The minimal shape is fixed by docs/design.md, "Configuration" (``allow_private_networks``,
``sources`` with ``id``/``kind``/``url``/``interval`` for RSS and
``mode``/``channel``/``base_url`` for Telegram). Each source kind validates into its own frozen model; the entry is dispatched
on ``kind`` (and ``mode`` for Telegram) first, so an error names the field of the model
the operator meant.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from newsradar.vocab import Lang

from .loader import ConfigError, Document, check_unique, config_duration, load_yaml, parse_size, pattern, validate

# Every duration carries its unit (30s, 10m): a bare 30 is refused, not read as seconds.
Duration = Annotated[float, BeforeValidator(config_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


HttpUrl = Annotated[str, pattern(r"^https?://[^\s/]+", "an http:// or https:// URL")]
SourceId = Annotated[str, pattern(r"^[a-z0-9][a-z0-9_.-]{0,63}$", "an id of lower-case letters, digits, '-', '_' or '.'")]


class Defaults(_Frozen):
    """Settings every source inherits unless it sets its own."""

    interval: Duration = 600.0
    # The feed's own hints (ttl, Cache-Control, sy:updatePeriod) are clamped to this range.
    min_interval: Duration = 60.0
    max_interval: Duration = 6 * 3600.0
    # Whole request exchange, connect to last byte.
    timeout: Duration = 20.0
    max_body: Size = 15 * 1024 * 1024
    max_redirects: int = Field(default=5, ge=0, le=20)
    per_host_concurrency: int = Field(default=2, ge=1, le=64)
    # How long the ids of delivered items are remembered (bounded dedupe per source).
    seen_ttl: Duration = 30 * 86400.0
    # Error backoff: linear steps, capped.
    backoff_step: Duration = 300.0
    backoff_max: Duration = 6 * 3600.0
    user_agent: str = "newsradar/0.1 (+https://github.com/newsradar/newsradar)"
    # A 304 proves nothing by itself: every Nth 304 in a row is checked with a full GET whose
    # body hash is compared with the last one (a server whose 304s hide changes is "lying").
    verify_304_every: int = Field(default=12, ge=1, le=10_000)
    # Polls in flight at once across all sources (the per-host limit applies within it).
    max_concurrent_polls: int = Field(default=32, ge=1, le=1024)
    # Polls holding their records at once, from fetch until Kafka acknowledged them and the
    # state is saved (bounds memory at a first start, when every item of every feed is new).
    max_polls_in_flight: int = Field(default=128, ge=1, le=65_536)
    # Upper bound on remembered ids per source, on top of seen_ttl.
    seen_max_per_source: int = Field(default=20_000, ge=100, le=10_000_000)


class _Source(_Frozen):
    id: SourceId
    enabled: bool = True
    interval: Duration | None = None
    # Language hint for the pipeline when the source does not declare one.
    lang: Lang | None = None


class RssSource(_Source):
    kind: Literal["rss"]
    url: HttpUrl
    # Per-feed overrides of the defaults (a huge archive feed, a slow server).
    timeout: Duration | None = None
    max_body: Size | None = None


# A public username, written with or without its "@" (kept without).
Channel = Annotated[
    str,
    pattern(r"^@?[A-Za-z][A-Za-z0-9_]{3,63}$", "a public channel username (letters, digits, _)"),
    AfterValidator(lambda v: v.lstrip("@")),
]


class TelegramWebSource(_Source):
    kind: Literal["telegram"]
    mode: Literal["web"]
    channel: Channel
    base_url: HttpUrl = "https://t.me"
    # How many ?before= pages to walk back on the first run and across gaps.
    backfill_pages: int = Field(default=5, ge=0, le=1000)


class TelegramWebhook(_Frozen):
    """Receive updates pushed by Telegram instead of calling getUpdates. Telegram needs an
    HTTPS URL on port 443, 80, 88 or 8443: put a TLS proxy in front of this listener and
    register it with setWebhook(url=..., secret_token=<the secret>)."""

    listen: str = "127.0.0.1"
    port: int = Field(default=8443, ge=0, le=65535)
    path: str = Field(default="/telegram/webhook", pattern=r"^/[A-Za-z0-9/_.-]*$")
    # Environment variable holding the secret token Telegram sends in every request.
    secret_env: str = "TELEGRAM_WEBHOOK_SECRET"


class TelegramBotSource(_Source):
    kind: Literal["telegram"]
    mode: Literal["bot"]
    # Environment variable holding the bot token; tokens never live in git.
    token_env: str = "TELEGRAM_BOT_TOKEN"
    api_base: HttpUrl = "https://api.telegram.org"
    # Only posts from these channels are kept (empty: every channel the bot is in).
    channels: tuple[Channel, ...] = ()
    # How long one getUpdates call (or one wait for webhook requests) may hold.
    long_poll: Duration = 25.0
    webhook: TelegramWebhook | None = None


class TelegramExportSource(_Source):
    kind: Literal["telegram"]
    mode: Literal["export"]
    path: str = Field(min_length=1)
    # Channel username for article ids when the export does not carry one.
    channel: Channel | None = None
    # Old exports (before date_unixtime) wrote local times of the exporting computer.
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"expected an IANA time zone like UTC or Europe/Moscow, got {v!r}") from None
        return v


class TelegramMtprotoSource(_Source):
    kind: Literal["telegram"]
    mode: Literal["mtproto"]
    channel: Channel
    api_id_env: str = "TELEGRAM_API_ID"
    api_hash_env: str = "TELEGRAM_API_HASH"
    session: str = "newsradar"


TelegramSource = TelegramWebSource | TelegramBotSource | TelegramExportSource | TelegramMtprotoSource


class TelegramSettings(_Frozen):
    """Politeness shared by every Telegram source of one process (t.me limits by client
    address, not by channel)."""

    # Least time between two requests to the t.me preview, across all web sources.
    web_request_gap: Duration = 1.0
    # The same for Bot API calls (each getUpdates long-polls; this only spaces the calls).
    bot_request_gap: Duration = 0.0
Source = RssSource | TelegramSource

_TELEGRAM_MODES = {
    "web": TelegramWebSource,
    "bot": TelegramBotSource,
    "export": TelegramExportSource,
    "mtproto": TelegramMtprotoSource,
}


class MetricsEndpoint(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)


class Sources(_Frozen):
    allow_private_networks: bool = False
    defaults: Defaults = Defaults()
    metrics: MetricsEndpoint = MetricsEndpoint()
    telegram: TelegramSettings = TelegramSettings()
    sources: tuple[Source, ...] = ()

    def interval_of(self, source: Source) -> float:
        return source.interval if source.interval is not None else self.defaults.interval


class _Top(_Frozen):
    """The top level with sources left raw; each entry is validated by its own model."""

    allow_private_networks: bool = False
    defaults: Defaults = Defaults()
    metrics: MetricsEndpoint = MetricsEndpoint()
    telegram: TelegramSettings = TelegramSettings()
    sources: list[dict]


def load_sources(path: str | os.PathLike) -> Sources:
    """Load and validate a sources file. Raises :class:`ConfigError` naming file and path."""
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise doc.error("", "expected a mapping at the top level (allow_private_networks:, sources:)")
    top = validate(doc, _Top)
    entries = [_source(doc, entry, f"sources[{i}]") for i, entry in enumerate(top.sources)]
    check_unique(doc, entries, lambda s: s.id, "sources", "source")
    return Sources(
        allow_private_networks=top.allow_private_networks,
        defaults=top.defaults,
        metrics=top.metrics,
        telegram=top.telegram,
        sources=tuple(entries),
    )


def _source(doc: Document, entry: dict, path: str) -> Source:
    kind = entry.get("kind")
    if kind == "rss":
        return validate(doc, RssSource, entry, path)
    if kind == "telegram":
        mode = entry.get("mode", "web")
        model = _TELEGRAM_MODES.get(mode) if isinstance(mode, str) else None
        if model is None:
            raise doc.error(f"{path}.mode", f"expected one of {', '.join(_TELEGRAM_MODES)}, got {mode!r}")
        return validate(doc, model, {**entry, "mode": mode}, path)
    if kind is None:
        raise doc.error(f"{path}.kind", "required key is missing; expected rss or telegram")
    raise doc.error(f"{path}.kind", f"expected rss or telegram, got {kind!r}")


__all__ = [
    "ConfigError", "Defaults", "MetricsEndpoint", "RssSource", "Source", "Sources",
    "TelegramBotSource", "TelegramExportSource", "TelegramMtprotoSource", "TelegramSettings", "TelegramSource",
    "TelegramWebSource", "TelegramWebhook", "load_sources",
]
