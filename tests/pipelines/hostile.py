"""Hostile news.raw payloads, built from explicit parameters.

The property test (tests/pipelines/test_hostile_input.py) draws the parameters with hypothesis;
the long campaign (benchmarks/fuzz.py) draws them with a seeded ``random.Random``. Both feed
the same builders, so a finding of one reproduces in the other from its parameters alone.

Every payload carries its own article id (``rss:fuzz:<n>``) unless the mutation is about the id,
so no two inputs are repeats of each other and each must end exactly once in news.tagged or
news.dlq.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from newsradar.records import format_time, utc_now

FIELDS = ("v", "article_id", "source_id", "source_kind", "url", "title", "text", "published_at",
          "fetched_at", "html", "author", "lang_hint", "guid", "channel", "message_id", "edited_at",
          "forwarded_from", "views", "flags")
REQUIRED = ("v", "article_id", "source_id", "source_kind", "url", "title", "text", "published_at", "fetched_at")
STRING_FIELDS = ("article_id", "source_id", "url", "title", "text", "html", "author", "guid", "channel")
INT_FIELDS = ("v", "message_id", "views")
TIME_FIELDS = ("published_at", "fetched_at", "edited_at")

# Real-looking text, so that hostile records also reach tagging and the novelty rules.
TEXTS = (
    "The Council of Mothers and Wives held a picket against mobilization outside the draft office.",
    "Совет матерей и жён провёл пикет у военкомата: родственники мобилизованных требуют ротации.",
    "Рада матерів і дружин провела акцію протесту біля військкомату проти мобілізації.",
    "Tomorrow will be rainy with strong wind in the city.",
    "Reservists received call-up papers; wives of the mobilized protested in the square.",
)
IMPOSSIBLE_DATES = (
    "9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00Z", "2026-02-30T10:00:00Z", "2026-13-01T00:00:00Z",
    "+275760-09-13T00:00:00Z", "1970-01-01T00:00:00+99:00", "3000-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00",
    "2026-11-20 10:00", "yesterday", "", "2026-11-20T10:00:00", "2026-11-20T25:61:61Z", "１２３４-01-01T00:00:00Z",
)
WRONG_VALUES: tuple[Any, ...] = (None, 0, -1, 2**64, 1.5, float("1e308"), True, "", "x", [], ["a"], {}, {"a": 1})
MARKUP = ("<a", "<", "<a href=", "<!--", "<![CDATA[", "&#", "&amp;", "<script>", "</", "<a<b")
KINDS = ("valid", "nested", "nested_field", "big_int", "date", "surrogate", "control", "giant", "markup",
         "wrong_type", "missing", "extra", "non_utf8", "garbage", "not_object", "duplicate_key")


def base(n: int, text: str | None = None) -> dict[str, Any]:
    now = utc_now()
    return {
        "v": 1, "article_id": f"rss:fuzz:{n}", "source_id": "fuzz", "source_kind": "rss",
        "url": f"https://news.example.org/fuzz/{n}", "title": f"Report {n}",
        "text": text if text is not None else f"{TEXTS[n % len(TEXTS)]} Item {n}.",
        "published_at": format_time(now - timedelta(minutes=5)), "fetched_at": format_time(now),
    }


def dumps(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8", "surrogatepass")


def build(n: int, kind: str, field: str = "text", size: int = 16, pick: int = 0, byte: int = 1) -> bytes:
    """One payload of ``kind`` for article ``n``. ``field``, ``size``, ``pick`` and ``byte``
    are the mutation's parameters; each kind uses the ones it needs (sizes are in characters
    or bytes, nesting depth, number of digits)."""
    record = base(n)
    if kind == "valid":
        return dumps(record)
    if kind == "nested":
        return b"[" * size + b"]" * size
    if kind == "nested_field":
        size = max(1, size)
        record[field] = json.loads("[" * min(size, 500) + "]" * min(size, 500))
        raw = dumps(record)
        if size <= 500:
            return raw
        # Deeper than json.loads would build here: splice the nesting into the bytes.
        return raw.replace(b"[" * 500 + b"]" * 500, b"[" * size + b"]" * size, 1)
    if kind == "big_int":
        digits = "9" * max(1, size)
        return dumps(record).replace(b'"v": 1', b'"v": 1, "%s": %s' % (field.encode(), digits.encode()), 1) \
            if field not in INT_FIELDS else _set_raw(record, field, digits.encode())
    if kind == "date":
        record[field if field in TIME_FIELDS else "published_at"] = IMPOSSIBLE_DATES[pick % len(IMPOSSIBLE_DATES)]
        return dumps(record)
    if kind == "surrogate":
        target = field if field in STRING_FIELDS else "title"
        value = record.get(target) or "x"
        cut = pick % (len(value) + 1)
        lone = chr(0xD800 + (pick * 7919) % 0x800)  # any of the 2,048 surrogates
        record[target] = value[:cut] + lone + value[cut:]
        # As a JSON escape (\ud83d, what a JSON encoder writes) or as the raw bytes (not UTF-8).
        return json.dumps(record).encode("ascii") if byte % 2 else dumps(record)
    if kind == "control":
        target = field if field in STRING_FIELDS else "text"
        if pick % 2:  # raw control bytes inside the string, which strict JSON refuses
            return _set_raw(record, target, b'"' + bytes([byte % 32]) * size + b'"')
        record[target] = chr(byte % 32) * size  # escaped: \u0001 is six bytes each
        return dumps(record)
    if kind == "giant":
        target = field if field in STRING_FIELDS else "text"
        record[target] = (TEXTS[pick % len(TEXTS)] + " ") * (size // 60 + 1)
        return dumps(record)
    if kind == "markup":
        record[field if field in STRING_FIELDS else "text"] = MARKUP[pick % len(MARKUP)] * size
        return dumps(record)
    if kind == "wrong_type":
        record[field] = WRONG_VALUES[pick % len(WRONG_VALUES)]
        return dumps(record)
    if kind == "missing":
        record.pop(REQUIRED[pick % len(REQUIRED)])
        return dumps(record)
    if kind == "extra":
        for k in range(1 + pick % 5):
            record[f"extra_{k}"] = WRONG_VALUES[(pick + k) % len(WRONG_VALUES)]
        return dumps(record)
    if kind == "non_utf8":
        raw = dumps(record)
        at = pick % len(raw)
        return raw[:at] + bytes([0x80 | (byte % 0x80)]) * max(1, size % 8) + raw[at:]
    if kind == "garbage":
        return bytes((pick * 31 + k * byte) % 256 for k in range(size))
    if kind == "not_object":
        return json.dumps(WRONG_VALUES[pick % len(WRONG_VALUES)]).encode()
    if kind == "duplicate_key":
        return dumps(record)[:-1] + b', "article_id": "rss:fuzz:dup:%d"}' % n
    raise ValueError(f"unknown kind {kind!r}")


def _set_raw(record: dict[str, Any], field: str, literal: bytes) -> bytes:
    """``record`` as JSON with ``field`` set to ``literal`` as written (a number Python would
    refuse to print)."""
    record = dict(record)
    record[field] = "__LITERAL__"
    return dumps(record).replace(b'"__LITERAL__"', literal, 1)


# The six payloads the poison-record issue was filed with, between good records end to end.
def six(n0: int) -> list[tuple[str, bytes]]:
    """(name, payload) of the six hostile records, numbered from ``n0``."""
    surrogate = base(n0 + 3)
    surrogate["title"] = "Пикет \ud83d у военкомата"
    markup = base(n0 + 5, text="<a" * 40_000)
    return [
        ("deep_nesting", b"[" * 200_000 + b"]" * 200_000),
        ("huge_number", _set_raw(base(n0 + 1), "message_id", b"9" * 5000)),
        ("far_date", dumps({**base(n0 + 2), "published_at": "9999-12-31T23:59:59-23:59"})),
        ("lone_surrogate", json.dumps(surrogate).encode("ascii")),
        # 700 KiB of byte 0x01 as the text, raw: its dead letter escapes each to six bytes.
        ("control_bytes", _set_raw(base(n0 + 4), "text", b'"' + b"\x01" * (700 * 1024) + b'"')),
        ("markup", dumps(markup)),
    ]
