"""The record kinds that travel on Kafka, and the identities they carry.

Every record is a JSON object in UTF-8 with a schema version field ``"v"``
(docs/design.md, "Records on Kafka"). Connectors build :class:`RawArticle`; the pipeline
reads it back, adds analysis (:class:`TaggedArticle`), raises :class:`Alert`, ranks the
names nobody watches yet once a day (:class:`Candidate`) and sends anything it cannot read
to the dead-letter topic as :class:`DeadLetter`.

Guarantees:

* ``decode_*`` either returns a fully valid record or raises :class:`RecordError` naming
  the field that is wrong and what was expected, whatever the bytes: nesting too deep for
  the decoder, numbers past the int-string limit or outside 64 bits, ``NaN``, dates past
  year 9999 are all a RecordError. It never returns a half-valid record.
* No record holds a lone surrogate: a ``news.raw`` string that carries one (``"\\ud83d"`` in
  JSON, or a connector's text) has it replaced by U+FFFD when the record is decoded or built,
  flagged ``surrogates_replaced``, so every record encodes to valid UTF-8. A record built by a
  connector treats :data:`newsradar.escapes.SURROGATE_MARK` (what its parser left for an
  escaped lone surrogate, ``&#55357;`` in a feed) the same way.
* ``encode()`` never raises on text: a string that still holds a surrogate (an error message
  quoting one) is written with JSON escapes instead.
* A :class:`DeadLetter` always fits its topic: the *encoded* original is capped at
  :data:`MAX_DLQ_ORIGINAL_BYTES` (escapes counted), the error at :data:`MAX_ERROR_CHARS`.
* Versions change compatibly: a reader accepts every version up to its own
  (:data:`READ_VERSIONS`; a rolling upgrade mixes them, and this build writes most records as
  1), and a record is written with the oldest version that can carry it, so a reader one
  version behind keeps reading everything that does not use what is new. Version 2 added the
  mention match kind ``contextual`` and the mention field ``resolved_by``; version 3 the topic
  field ``learned`` (the probability of a learned classifier that decided the topic,
  :mod:`newsradar.topic_model`). Only a news.tagged record that holds one of these is written
  as 2 or 3.
  news.candidates records (issue 16) are new: every one is written as 1.
* ``encode(decode_x(b))`` is stable: keys are sorted and optional fields that are unset are
  left out, so the same record always has the same bytes.
* Article ids, alert ids and canonical URLs are pure functions in :mod:`newsradar.identity`,
  so replicas and restarts agree on identity.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from newsradar.escapes import SURROGATE_MARK
from newsradar.vocab import ALERT_KINDS, MATCH_KINDS, MATCH_KINDS_V1, SEVERITIES, SOURCE_KINDS

# The newest schema version this build writes, and every version it reads (this one and the
# one before). A record is written with the oldest version that can carry it.
SCHEMA_VERSION = 3
READ_VERSIONS = (1, 2, 3)

# The topics the records travel on. Names are part of the contract (docs/design.md, "Topics").
TOPIC_RAW = "news.raw"
TOPIC_TAGGED = "news.tagged"
TOPIC_ALERTS = "news.alerts"
TOPIC_DLQ = "news.dlq"
# Compacted: per organization, when it was first and last seen (the novelty state a restart
# cannot read back from news.tagged once those mentions are past its retention).
TOPIC_NOVELTY = "news.novelty"
TOPIC_CANDIDATES = "news.candidates"
ALL_TOPICS = (TOPIC_RAW, TOPIC_TAGGED, TOPIC_ALERTS, TOPIC_DLQ, TOPIC_NOVELTY, TOPIC_CANDIDATES)


# A record larger than this is refused by decode; the pipeline sends it to the DLQ.
MAX_RECORD_BYTES = 2 * 1024 * 1024
# Records the pipeline writes (news.tagged, news.alerts, news.dlq) carry a raw article plus
# analysis, or an original payload: they may be larger, up to this (below the producer's 4 MiB
# request limit, newsradar.kafka.MAX_REQUEST_BYTES, with room for the request's own overhead).
MAX_OUTPUT_RECORD_BYTES = 3 * 1024 * 1024
# A dead letter's ``original`` takes at most this many bytes once encoded (JSON escapes
# counted: 700 KiB of control bytes escape to 4.3 MB); the rest of the payload stays findable
# on its input topic through ``DeadLetter.source`` (topic/partition/offset).
MAX_DLQ_ORIGINAL_BYTES = 2 * 1024 * 1024
# Ids (article, source, reply_to) are short digests and names; a longer one is refused.
MAX_ID_CHARS = 512
# An exception's text can quote the whole input; the record itself is in the letter.
MAX_ERROR_CHARS = 1000
# Integers in records are 64-bit (Kafka offsets, Telegram ids, view counts).
_INT_RANGE = (-(2**63), 2**63 - 1)
# How far ahead of our clock an event time may be (see clamp_future).
MAX_CLOCK_SKEW = timedelta(minutes=5)


class RecordError(ValueError):
    """A record that does not follow the schema.

    ``field`` is the dotted path of the offending field (``topics[0].score``), or ``""``
    when the record as a whole is wrong (not JSON, too large).
    """

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


# ---------------------------------------------------------------------------
# time


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix and at most millisecond precision."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: every timestamp in newsradar is timezone-aware")
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    # Milliseconds only, and only when there are some: parse_time(format_time(t)) must format
    # to the same text (a time with 0 < microseconds < 1000 used to come back without ".000").
    millis = value.microsecond // 1000
    if millis:
        text += f".{millis:03d}"
    return text + "Z"


_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp with an explicit offset; returns an aware UTC datetime."""
    if not isinstance(text, str) or not _RFC3339.match(text):
        raise ValueError(f"expected an RFC 3339 timestamp with a timezone, got {text!r}")
    normalized = text.replace("z", "Z").replace("Z", "+00:00")
    # fromisoformat in 3.11 accepts up to 6 fractional digits; trim nanoseconds.
    m = re.match(r"^(.*?\.\d{6})\d+(.*)$", normalized)
    if m:
        normalized = m.group(1) + m.group(2)
    try:
        return datetime.fromisoformat(normalized.replace("t", "T")).astimezone(UTC)
    except OverflowError:
        # 9999-12-31T23:59:59-23:59 is a valid RFC 3339 text past datetime's last instant.
        raise ValueError(f"timestamp {text!r} is outside the years 1-9999 in UTC") from None


# ---------------------------------------------------------------------------
# field checking


_MISSING = object()


def _check(data: dict, name: str, kind: type | tuple, required: bool, prefix: str = "") -> Any:
    value = data.get(name, _MISSING)
    path = f"{prefix}{name}"
    if value is _MISSING or value is None:
        if required:
            raise RecordError(path, "required field is missing")
        return None
    # bool is an int in Python; refuse it where a number is expected.
    if kind in (int, float, (int, float)) and isinstance(value, bool):
        raise RecordError(path, f"expected a number, got {value!r}")
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise RecordError(path, f"expected {expected}, got {type(value).__name__}")
    if isinstance(value, int) and not isinstance(value, bool) and not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
        raise RecordError(path, f"number of {value.bit_length()} bits is outside the 64-bit range")
    return value


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def has_surrogates(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (it cannot be encoded to UTF-8)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def replace_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (a pair becomes its character)."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _needs_repair(text: str, marks: bool) -> bool:
    return has_surrogates(text) or (marks and SURROGATE_MARK in text)


def _repaired(text: str, marks: bool) -> str:
    text = replace_surrogates(text) if has_surrogates(text) else text
    return text.replace(SURROGATE_MARK, "\ufffd") if marks else text


def _repair_strings(values: dict, marks: bool = False) -> dict:
    """``values`` (RawArticle fields) without lone surrogates, flagged when any were replaced.

    ``marks``: also replace :data:`newsradar.escapes.SURROGATE_MARK`, which a connector's
    parser left where the document escaped a lone surrogate (only when a record is built)."""
    repaired = False
    for name, value in values.items():
        if isinstance(value, str) and _needs_repair(value, marks):
            values[name] = _repaired(value, marks)
            repaired = True
        elif isinstance(value, tuple) and any(isinstance(v, str) and _needs_repair(v, marks) for v in value):
            values[name] = tuple(_repaired(v, marks) if isinstance(v, str) else v for v in value)
            repaired = True
    if repaired:
        values["flags"] = with_flag(values.get("flags"), "surrogates_replaced")
    return values


def _check_time(data: dict, name: str, required: bool, prefix: str = "") -> str | None:
    value = _check(data, name, str, required, prefix)
    if value is None:
        return None
    try:
        return format_time(parse_time(value))
    except ValueError as exc:
        raise RecordError(f"{prefix}{name}", str(exc)) from None


def _check_enum(data: dict, name: str, allowed: tuple, required: bool, prefix: str = "") -> Any:
    value = _check(data, name, str, required, prefix)
    if value is not None and value not in allowed:
        raise RecordError(f"{prefix}{name}", f"expected one of {', '.join(allowed)}, got {value!r}")
    return value


def _check_id(data: dict, name: str, required: bool = True, prefix: str = "") -> str | None:
    """An id: non-empty and at most :data:`MAX_ID_CHARS` long (ids are short digests; a long
    one would be copied into every record made from this one, past the output size cap)."""
    value = _check_nonempty(data, name, prefix) if required else _check(data, name, str, False, prefix)
    if value is not None and len(value) > MAX_ID_CHARS:
        raise RecordError(f"{prefix}{name}", f"an id of {len(value)} characters, over {MAX_ID_CHARS}")
    return value


def _check_nonempty(data: dict, name: str, prefix: str = "") -> str:
    value = _check(data, name, str, True, prefix)
    if not value.strip():
        raise RecordError(f"{prefix}{name}", "must not be empty")
    return value


def json_problem(exc: json.JSONDecodeError) -> str:
    """json's message without its dangling "at" ("Unterminated string starting at"), for a
    message that says where itself ("... at line 1 column 9")."""
    return exc.msg.removesuffix(" at")


def _load_object(payload: bytes | str | dict, limit: int = MAX_RECORD_BYTES) -> dict:
    if isinstance(payload, dict):
        return payload
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    if not isinstance(payload, (bytes, bytearray)):
        raise RecordError("", f"expected JSON bytes, got {type(payload).__name__}")
    if len(payload) > limit:
        raise RecordError("", f"record of {len(payload)} bytes exceeds the {limit}-byte cap")
    try:
        # Decode ourselves: json.loads(bytes) would guess UTF-16/32 from a BOM.
        data = json.loads(bytes(payload).decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise RecordError("", f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise RecordError("", f"not JSON: {json_problem(exc)} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise RecordError("", "not JSON we read: nested too deeply") from None
    except ValueError as exc:
        # Python's int-string limit (a 5,000-digit number), NaN/Infinity.
        raise RecordError("", f"not JSON we read: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise RecordError("", f"expected a JSON object, got {type(data).__name__}")
    version = data.get("v", _MISSING)
    if version is _MISSING:
        raise RecordError("v", "required field is missing (schema version)")
    if version not in READ_VERSIONS or isinstance(version, bool):
        raise RecordError("v", f"unsupported schema version {version!r}, this build reads "
                               f"{', '.join(map(str, READ_VERSIONS))}")
    return data


def _dump(obj: dict) -> bytes:
    text = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (records repair theirs; an error message may quote one): escaped.
        return json.dumps(obj, ensure_ascii=True, sort_keys=True, separators=(",", ":")).encode("ascii")


class _Values:
    """Pickled as its field values, and unpickled without its checks (they ran when it was
    built). A slotted dataclass's own pickling looks its fields up at every call
    (``dataclasses.fields``): a quarter of what pickling the batch path's records to and from
    its worker processes cost (docs/benchmarks.md, session 10)."""

    __slots__ = ()

    def __reduce__(self):
        cls = type(self)
        return _rebuilt, (cls, tuple([getattr(self, name) for name in _field_names(cls)]))


def _rebuilt(cls: type, values: tuple):
    return _construct(cls, dict(zip(_field_names(cls), values, strict=True)))


class _Record(_Values):
    """Shared encode/decode plumbing for the record dataclasses."""

    __slots__ = ()
    KIND: ClassVar[str] = ""

    def version(self) -> int:
        """The oldest schema version that can carry this record (what it is written as)."""
        return 1

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"v": self.version()}
        for name in _field_names(type(self)):
            value = getattr(self, name)
            if value is None:
                continue
            out[name] = _plain(value)
        return out

    def encode(self) -> bytes:
        return _dump(self.to_dict())


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


_SCALARS = (str, int, float, bool)


def _plain(value: Any) -> Any:
    if isinstance(value, _SCALARS):  # the common case, before the costlier checks
        return value
    if dataclasses.is_dataclass(value):
        # Unset optional fields of nested items are left out, as at the top level.
        return {name: _plain(getattr(value, name)) for name in _field_names(type(value))
                if getattr(value, name) is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def encode(record: _Record) -> bytes:
    return record.encode()


# ---------------------------------------------------------------------------
# news.raw


@dataclass(frozen=True, slots=True)
class RawArticle(_Record):
    """One article or post as fetched (topic ``news.raw``)."""

    KIND: ClassVar[str] = "raw"

    article_id: str
    source_id: str
    source_kind: str
    url: str
    title: str
    text: str
    published_at: str
    fetched_at: str
    html: str | None = None
    author: str | None = None
    lang_hint: str | None = None
    guid: str | None = None
    channel: str | None = None
    message_id: int | None = None
    edited_at: str | None = None
    forwarded_from: str | None = None
    views: int | None = None
    # Telegram: the article_id of the post this one replies to (same channel).
    reply_to: str | None = None
    # Connector-side flags that explain a substitution (e.g. "date_missing"); optional.
    flags: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        # Connectors build records from text a source sent; a lone surrogate in it (or the mark
        # a parser left for one, newsradar.escapes) is repaired here, once, so that no record
        # on news.raw fails to encode.
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        repaired = _repair_strings(dict(values), marks=True)
        for name, value in repaired.items():
            if value is not values[name]:
                object.__setattr__(self, name, value)
        validate_raw(self.to_dict())


def _raw_fields(data: dict, prefix: str = "") -> dict:
    flags = _check(data, "flags", list, False, prefix)
    if flags is not None:
        for i, flag in enumerate(flags):
            if not isinstance(flag, str):
                raise RecordError(f"{prefix}flags[{i}]", "expected str")
    return _repair_strings(dict(
        article_id=_check_id(data, "article_id", True, prefix),
        source_id=_check_id(data, "source_id", True, prefix),
        source_kind=_check_enum(data, "source_kind", SOURCE_KINDS, True, prefix),
        url=_check(data, "url", str, True, prefix),
        title=_check(data, "title", str, True, prefix),
        text=_check(data, "text", str, True, prefix),
        published_at=_check_time(data, "published_at", True, prefix),
        fetched_at=_check_time(data, "fetched_at", True, prefix),
        html=_check(data, "html", str, False, prefix),
        author=_check(data, "author", str, False, prefix),
        lang_hint=_check(data, "lang_hint", str, False, prefix),
        guid=_check(data, "guid", str, False, prefix),
        channel=_check(data, "channel", str, False, prefix),
        message_id=_check(data, "message_id", int, False, prefix),
        edited_at=_check_time(data, "edited_at", False, prefix),
        forwarded_from=_check(data, "forwarded_from", str, False, prefix),
        views=_check(data, "views", int, False, prefix),
        reply_to=_check_id(data, "reply_to", False, prefix),
        flags=tuple(flags) if flags is not None else None,
    ))


def validate_raw(data: dict) -> None:
    if data.get("v", SCHEMA_VERSION) not in READ_VERSIONS:
        raise RecordError("v", f"unsupported schema version {data.get('v')!r}")
    _raw_fields(data)


def decode_raw(payload: bytes | str | dict) -> RawArticle:
    """Decode and validate a ``news.raw`` record."""
    fields_ = _raw_fields(_load_object(payload))
    return _construct(RawArticle, fields_)


# Most bytes one character can take in an encoded record (a control character as \uXXXX),
# and what keys, quotes, separators and numbers of a RawArticle take at most, with room to spare.
_MAX_BYTES_PER_CHAR = 6
_RAW_FIXED_BYTES = 1024


def fit_to_size(record: RawArticle, max_bytes: int = MAX_RECORD_BYTES) -> RawArticle:
    """``record`` itself when its encoding fits in ``max_bytes``, else a copy cut to fit.

    What is cut, in order, until it fits: ``html`` is dropped (flag ``html_dropped``), then
    ``text`` is shortened (``text_truncated``), then ``title`` (``title_truncated``); a cut
    falls on a character boundary, so the bytes stay valid UTF-8. Nothing else changes: the
    ``article_id`` and every identity field are kept, so dedupe by id is unaffected. Raises
    :class:`RecordError` when the remaining fields alone exceed ``max_bytes``.

    The one place records are made to fit Kafka (the delivery loop calls it for every source);
    records that are obviously small are not even encoded.
    """
    if surely_fits(record, max_bytes):
        return record
    size = len(record.encode())
    if size <= max_bytes:
        return record
    if record.html is not None:
        record = dataclasses.replace(record, html=None, flags=with_flag(record.flags, "html_dropped"))
        size = len(record.encode())
    for name, flag in (("text", "text_truncated"), ("title", "title_truncated")):
        if size <= max_bytes:
            return record
        record = _cut(record, name, flag, max_bytes)
        size = len(record.encode())
    if size > max_bytes:
        raise RecordError("", f"record {record.article_id} is {size} bytes without html, text and title, "
                              f"over the {max_bytes}-byte cap")
    return record


def surely_fits(record: RawArticle, max_bytes: int = MAX_RECORD_BYTES) -> bool:
    """Whether ``record``'s encoding is within ``max_bytes`` for sure, without encoding it
    (False: it may or may not be; encode it to know)."""
    return _size_bound(record) <= max_bytes


def _size_bound(record: RawArticle) -> int:
    chars = 0
    for name in _field_names(type(record)):
        value = getattr(record, name)
        if isinstance(value, str):
            chars += len(value)
        elif isinstance(value, tuple):
            chars += sum(len(v) + 3 for v in value)
    return chars * _MAX_BYTES_PER_CHAR + _RAW_FIXED_BYTES


def with_flag(flags: tuple[str, ...] | None, flag: str) -> tuple[str, ...]:
    flags = tuple(flags or ())
    return flags if flag in flags else (*flags, flag)


def _cut(record: RawArticle, name: str, flag: str, max_bytes: int) -> RawArticle:
    """Shorten field ``name`` (flagging it) just enough for the record to fit, or to ``""``.

    The field is cut in its encoded form, so escapes (a quote, a newline, a control character
    taking six bytes) are counted exactly; the cut then backs off at most a few bytes so that
    it ends neither inside an escape nor inside a UTF-8 character."""
    record = dataclasses.replace(record, flags=with_flag(record.flags, flag))
    excess = len(record.encode()) - max_bytes
    quoted = json.dumps(getattr(record, name), ensure_ascii=False).encode("utf-8")
    end = max(len(quoted) - 1 - excess, 1)  # the opening quote and the body bytes that stay
    while True:
        try:
            value = json.loads((quoted[:end] + b'"').decode("utf-8"))
            break
        except (UnicodeDecodeError, json.JSONDecodeError):
            end -= 1  # inside an escape or a character; end == 1 ('""') always decodes
    return dataclasses.replace(record, **{name: value})


def clamp_future(article: RawArticle, now: datetime, skew: timedelta = MAX_CLOCK_SKEW) -> RawArticle:
    """``article`` with ``published_at``, ``fetched_at`` and ``edited_at`` no later than
    ``now + skew``; each one moved back is flagged ``<field>_clamped``.

    Event time comes from these fields (and from Kafka timestamps, clamped the same way by
    the reader): a producer with a fast clock must not move it, and with it every timer that
    expires dedupe and novelty state, into the future."""
    limit = now + skew
    changes: dict[str, Any] = {}
    flags = article.flags
    for name in ("published_at", "fetched_at", "edited_at"):
        value = getattr(article, name)
        if value is not None and parse_time(value) > limit:
            changes[name] = format_time(limit)
            flags = with_flag(flags, f"{name}_clamped")
    if not changes:
        return article
    return dataclasses.replace(article, flags=flags, **changes)


def _construct(cls, values: dict):
    # Values are already validated; skip __post_init__ re-validation.
    obj = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(obj, name, value)
    return obj


def with_text(article: RawArticle, title: str, text: str, flags: tuple[str, ...] | None) -> RawArticle:
    """``article`` with a new title and text and no ``html`` (Normalize's cleaned ones): the
    record ``dataclasses.replace(article, title=..., text=..., html=None, flags=...)`` builds,
    without checking its unchanged fields again (they were checked when ``article`` was built,
    and that check is most of what a replace costs). Every string is repaired as a new
    record's are; the new values are type-checked."""
    if not isinstance(title, str) or not isinstance(text, str):
        raise RecordError("title" if not isinstance(title, str) else "text", "expected str")
    if flags is not None and not (isinstance(flags, tuple) and all(isinstance(f, str) for f in flags)):
        raise RecordError("flags", "expected a tuple of str")
    values = {name: getattr(article, name) for name in _field_names(RawArticle)}
    values.update(title=title, text=text, html=None, flags=flags)
    return _construct(RawArticle, _repair_strings(values, marks=True))


# ---------------------------------------------------------------------------
# news.tagged


@dataclass(frozen=True, slots=True)
class Evidence(_Values):
    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class TopicTag(_Values):
    id: str
    # What the topic's rules scored (below the topic's threshold when ``learned`` decided it).
    score: float
    evidence: tuple[Evidence, ...] = ()
    # Set when the topic's learned classifier decided it and the rules did not: its
    # probability; the evidence is then the words that raised it most. Schema v3.
    learned: float | None = None


@dataclass(frozen=True, slots=True)
class Mention(_Values):
    org_id: str
    text: str
    start: int
    end: int
    match: str
    # match "contextual": what resolved the short name ("Russia's: Москва, Кремль"); schema v2.
    resolved_by: str | None = None


@dataclass(frozen=True, slots=True)
class TaggedArticle(_Record):
    """The article plus the pipeline's analysis (topic ``news.tagged``)."""

    KIND: ClassVar[str] = "tagged"

    article: RawArticle
    lang: str
    story_id: str
    duplicate_of: str | None = None
    topics: tuple[TopicTag, ...] = ()
    mentions: tuple[Mention, ...] = ()
    # True when this record replaces an earlier version of the same article (an edit).
    is_update: bool = False
    # When its news.raw record arrived (its Kafka time, as the pipeline's event time): the time
    # Dedupe's windows count in, which the state rebuild at start needs. Added in issue 13;
    # records written before it lack it (the reader then takes the record's own Kafka time).
    arrived_at: str | None = None

    def version(self) -> int:
        if any(t.learned is not None for t in self.topics):
            return 3
        new = any(m.match not in MATCH_KINDS_V1 or m.resolved_by is not None for m in self.mentions)
        return 2 if new else 1

    def to_dict(self) -> dict:
        out = self.article.to_dict()
        out["v"] = self.version()
        out.update(
            lang=self.lang,
            story_id=self.story_id,
            duplicate_of=self.duplicate_of,  # always present, null when original
            topics=_plain(self.topics),
            mentions=_plain(self.mentions),
            is_update=self.is_update,
        )
        if self.arrived_at is not None:
            out["arrived_at"] = self.arrived_at
        return out


def _span(data: dict, prefix: str) -> tuple[int, int]:
    start = _check(data, "start", int, True, prefix)
    end = _check(data, "end", int, True, prefix)
    if start < 0 or end < start:
        raise RecordError(f"{prefix}end", f"expected 0 <= start <= end, got {start}..{end}")
    return start, end


def decode_tagged(payload: bytes | str | dict) -> TaggedArticle:
    data = _load_object(payload, MAX_OUTPUT_RECORD_BYTES)
    article = _construct(RawArticle, _raw_fields(data))
    topics = []
    for i, item in enumerate(_check(data, "topics", list, True) or []):
        p = f"topics[{i}]."
        if not isinstance(item, dict):
            raise RecordError(f"topics[{i}]", "expected an object")
        evidence = []
        for j, ev in enumerate(_check(item, "evidence", list, False, p) or []):
            q = f"{p}evidence[{j}]."
            if not isinstance(ev, dict):
                raise RecordError(f"{p}evidence[{j}]", "expected an object")
            start, end = _span(ev, q)
            evidence.append(Evidence(_check(ev, "text", str, True, q), start, end))
        learned = _check(item, "learned", (int, float), False, p)
        if learned is not None:
            if data["v"] < 3:
                raise RecordError(f"{p}learned", f"not a field of schema version {data['v']}")
            if isinstance(learned, bool) or not 0 <= learned <= 1:
                raise RecordError(f"{p}learned", f"expected a probability between 0 and 1, got {learned!r}")
            learned = float(learned)
        topics.append(
            TopicTag(_check_nonempty(item, "id", p), float(_check(item, "score", (int, float), True, p)),
                     tuple(evidence), learned)
        )
    mentions = []
    v1 = data["v"] == 1
    for i, item in enumerate(_check(data, "mentions", list, True) or []):
        p = f"mentions[{i}]."
        if not isinstance(item, dict):
            raise RecordError(f"mentions[{i}]", "expected an object")
        start, end = _span(item, p)
        resolved_by = _check(item, "resolved_by", str, False, p)
        if v1 and resolved_by is not None:
            raise RecordError(f"{p}resolved_by", "not a field of schema version 1")
        mentions.append(
            Mention(
                _check_nonempty(item, "org_id", p),
                _check(item, "text", str, True, p),
                start,
                end,
                _check_enum(item, "match", MATCH_KINDS_V1 if v1 else MATCH_KINDS, True, p),
                resolved_by,
            )
        )
    return TaggedArticle(
        article=article,
        lang=_check_nonempty(data, "lang"),
        story_id=_check_nonempty(data, "story_id"),
        duplicate_of=_check(data, "duplicate_of", str, False),
        topics=tuple(topics),
        mentions=tuple(mentions),
        is_update=bool(_check(data, "is_update", bool, False)),
        arrived_at=_check_time(data, "arrived_at", False),
    )


# ---------------------------------------------------------------------------
# news.alerts


@dataclass(frozen=True, slots=True)
class Alert(_Record):
    """Something an analyst should look at (topic ``news.alerts``)."""

    KIND: ClassVar[str] = "alert"

    alert_id: str
    kind: str
    severity: str
    article_id: str
    story_id: str
    url: str
    title: str
    snippet: str
    why: str
    created_at: str
    org_id: str | None = None
    topic_id: str | None = None

    def __post_init__(self) -> None:
        _alert_fields(self.to_dict())


def _alert_fields(data: dict) -> dict:
    values = dict(
        alert_id=_check_nonempty(data, "alert_id"),
        kind=_check_enum(data, "kind", ALERT_KINDS, True),
        severity=_check_enum(data, "severity", SEVERITIES, True),
        article_id=_check_nonempty(data, "article_id"),
        story_id=_check_nonempty(data, "story_id"),
        url=_check(data, "url", str, True),
        title=_check(data, "title", str, True),
        snippet=_check(data, "snippet", str, True),
        why=_check_nonempty(data, "why"),
        created_at=_check_time(data, "created_at", True),
        org_id=_check(data, "org_id", str, False),
        topic_id=_check(data, "topic_id", str, False),
    )
    if values["org_id"] is None and values["topic_id"] is None:
        raise RecordError("org_id", "an alert names an org_id or a topic_id; both are missing")
    return values


def decode_alert(payload: bytes | str | dict) -> Alert:
    return _construct(Alert, _alert_fields(_load_object(payload, MAX_OUTPUT_RECORD_BYTES)))


# ---------------------------------------------------------------------------
# news.novelty


def _unix_seconds(data: dict, name: str, required: bool) -> float | None:
    value = _check(data, name, (int, float), required)
    if isinstance(value, bool) or (value is not None and not math.isfinite(value)):
        raise RecordError(name, f"{name} must be a finite number of unix seconds, not {value!r}")
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class NoveltySummary(_Record):
    """What must outlive news.tagged about one organization (topic ``news.novelty``, compacted,
    key ``org_id``): the event times (unix seconds, as the novelty state keeps them) of its
    first and last mention and of its last surge. A restart folds the newest of these into the
    novelty state, so ``first_in_window`` after a silence longer than news.tagged's retention
    still counts the silence from the last mention."""

    KIND: ClassVar[str] = "novelty"

    org_id: str
    first_seen: float
    last_seen: float
    written_at: str
    last_surge: float | None = None

    def __post_init__(self) -> None:
        _novelty_fields(self.to_dict())


def _novelty_fields(data: dict) -> dict:
    values = dict(
        org_id=_check_nonempty(data, "org_id"),
        first_seen=_unix_seconds(data, "first_seen", True),
        last_seen=_unix_seconds(data, "last_seen", True),
        written_at=_check_time(data, "written_at", True),
        last_surge=_unix_seconds(data, "last_surge", False),
    )
    if values["first_seen"] > values["last_seen"]:
        raise RecordError("first_seen", "first_seen is after last_seen")
    return values


def decode_novelty(payload: bytes | str | dict) -> NoveltySummary:
    data = _load_object(payload)
    if data.get("v", 1) not in READ_VERSIONS:
        raise RecordError("v", f"unsupported schema version {data.get('v')!r}")
    return _construct(NoveltySummary, _novelty_fields(data))


# ---------------------------------------------------------------------------
# news.candidates


@dataclass(frozen=True, slots=True)
class CandidateExample(_Values):
    article_id: str
    url: str
    snippet: str


@dataclass(frozen=True, slots=True)
class Candidate(_Record):
    """An organization-like name nobody watches that kept appearing with the watched topics
    on one UTC day (topic ``news.candidates``; :mod:`transforms.rank_candidates`)."""

    KIND: ClassVar[str] = "candidate"

    candidate_id: str
    day: str
    rank: int
    name: str
    lang: str
    key: str
    forms: tuple[str, ...]
    stories: int
    articles: int
    topic_share: float
    score: float
    topics: tuple[str, ...] = ()
    found_by: tuple[str, ...] = ()
    heads: tuple[str, ...] = ()
    examples: tuple[CandidateExample, ...] = ()


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _strings(data: dict, name: str, required: bool = False) -> tuple[str, ...]:
    items = _check(data, name, list, required) or []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise RecordError(f"{name}[{i}]", "expected str")
    return tuple(items)


def decode_candidate(payload: bytes | str | dict) -> Candidate:
    data = _load_object(payload, MAX_OUTPUT_RECORD_BYTES)
    day = _check_nonempty(data, "day")
    if not _DAY.match(day):
        raise RecordError("day", f"expected a UTC day YYYY-MM-DD, got {day!r}")
    examples = []
    for i, item in enumerate(_check(data, "examples", list, False) or []):
        p = f"examples[{i}]."
        if not isinstance(item, dict):
            raise RecordError(f"examples[{i}]", "expected an object")
        examples.append(CandidateExample(_check_nonempty(item, "article_id", p), _check(item, "url", str, True, p),
                                         _check(item, "snippet", str, True, p)))
    return Candidate(
        candidate_id=_check_id(data, "candidate_id"), day=day, rank=_check(data, "rank", int, True),
        name=_check_nonempty(data, "name"), lang=_check_nonempty(data, "lang"), key=_check_nonempty(data, "key"),
        forms=_strings(data, "forms", True), stories=_check(data, "stories", int, True),
        articles=_check(data, "articles", int, True),
        topic_share=float(_check(data, "topic_share", (int, float), True)),
        score=float(_check(data, "score", (int, float), True)),
        topics=_strings(data, "topics"), found_by=_strings(data, "found_by"), heads=_strings(data, "heads"),
        examples=tuple(examples),
    )


# ---------------------------------------------------------------------------
# news.dlq


@dataclass(frozen=True, slots=True)
class DeadLetter(_Record):
    """A record the pipeline could not process, kept with the reason (topic ``news.dlq``).

    ``original`` is the original payload as text when it was valid UTF-8, otherwise its
    base64 encoding with ``encoding="base64"``. When ``original`` would take more than
    :data:`MAX_DLQ_ORIGINAL_BYTES` in the encoded letter (its JSON escapes counted), only a
    prefix of the payload is kept, cut on a character boundary, with ``original_size`` giving
    the payload's full length, so a dead letter always fits its topic; ``source`` says where
    the whole payload is. ``error`` is cut to :data:`MAX_ERROR_CHARS`.
    """

    KIND: ClassVar[str] = "dlq"

    original: str
    error: str
    step: str
    at: str
    encoding: str = "utf-8"
    # Where the bad record came from, when known (topic/partition/offset of the input).
    source: str | None = None
    # Set when ``original`` holds only the first MAX_DLQ_ORIGINAL_BYTES of the payload.
    original_size: int | None = None

    @classmethod
    def wrap(cls, payload: bytes, error: str, step: str, at: datetime | None = None, source: str | None = None,
             max_original_bytes: int = MAX_DLQ_ORIGINAL_BYTES):
        payload = bytes(payload)
        text, enc = _original_text(payload, max_original_bytes)
        kept = len(base64.b64decode(text)) if enc == "base64" else len(text.encode("utf-8"))
        if len(error) > MAX_ERROR_CHARS:
            error = error[: MAX_ERROR_CHARS - 1] + "…"
        if has_surrogates(error):
            error = replace_surrogates(error)
        return cls(original=text, error=error or "unknown error", step=step, at=format_time(at or utc_now()),
                   encoding=enc, source=source, original_size=len(payload) if kept < len(payload) else None)

    def original_bytes(self) -> bytes:
        if self.encoding == "base64":
            return base64.b64decode(self.original)
        return self.original.encode("utf-8")


def _original_text(payload: bytes, limit: int) -> tuple[str, str]:
    """The ``original`` of a dead letter and its encoding: the payload as text when it is
    UTF-8, else base64; cut so that it takes at most ``limit`` bytes as a JSON string."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        # Base64 takes 4 bytes for every 3, and needs no escapes.
        return base64.b64encode(payload[: limit // 4 * 3]).decode("ascii"), "base64"
    if len(payload) * _MAX_BYTES_PER_CHAR + 2 <= limit:
        return text, "utf-8"
    quoted = json.dumps(text, ensure_ascii=False).encode("utf-8")
    if len(quoted) <= limit:
        return text, "utf-8"
    # Cut the encoded form, then back off to the end of a whole escape and character.
    end = limit - 1
    while True:
        try:
            return json.loads((quoted[:end] + b'"').decode("utf-8")), "utf-8"
        except (UnicodeDecodeError, json.JSONDecodeError):
            end -= 1  # at most 11 bytes back (an escape pair); end == 1 ('""') always decodes


def decode_dead_letter(payload: bytes | str | dict) -> DeadLetter:
    data = _load_object(payload, MAX_OUTPUT_RECORD_BYTES)
    return DeadLetter(
        original=_check(data, "original", str, True),
        error=_check_nonempty(data, "error"),
        step=_check_nonempty(data, "step"),
        at=_check_time(data, "at", True),
        encoding=_check_enum(data, "encoding", ("utf-8", "base64"), False) or "utf-8",
        source=_check(data, "source", str, False),
        original_size=_check(data, "original_size", int, False),
    )


__all__ = [
    "ALL_TOPICS", "Alert", "DeadLetter", "Evidence", "MAX_CLOCK_SKEW", "MAX_DLQ_ORIGINAL_BYTES", "MAX_ERROR_CHARS",
    "MAX_OUTPUT_RECORD_BYTES", "MAX_RECORD_BYTES", "Mention", "NoveltySummary", "RawArticle",
    "RecordError", "SCHEMA_VERSION", "TOPIC_ALERTS", "TOPIC_DLQ", "TOPIC_NOVELTY", "TOPIC_RAW", "TOPIC_TAGGED",
    "TaggedArticle", "TopicTag", "decode_alert", "decode_dead_letter", "decode_novelty",


# ---------------------------------------------------------------------------
    "ALL_TOPICS", "Alert", "Candidate", "CandidateExample", "DeadLetter", "Evidence", "MAX_CLOCK_SKEW", "MAX_DLQ_ORIGINAL_BYTES", "MAX_ERROR_CHARS",
    "MAX_OUTPUT_RECORD_BYTES", "MAX_RECORD_BYTES", "Mention", "RawArticle",
    "RecordError", "SCHEMA_VERSION", "TOPIC_ALERTS", "TOPIC_DLQ", "TOPIC_RAW", "TOPIC_TAGGED",
    "TOPIC_CANDIDATES", "TaggedArticle", "TopicTag", "decode_alert", "decode_candidate", "decode_dead_letter",
    "clamp_future", "decode_raw", "decode_tagged", "encode", "fit_to_size", "format_time", "has_surrogates",
    "json_problem", "parse_time", "replace_surrogates", "utc_now", "with_flag",
]
