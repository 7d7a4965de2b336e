"""Lone UTF-16 surrogates written as escapes (``&#55357;`` in XML, ``\\ud83d`` in JSON), made
parseable before a C parser sees them.

Emitters that count in UTF-16 code units (JavaScript, Java, .NET) write an emoji as two
escapes, and sometimes cut one in half. The parsers under our connectors do not survive
that: feedparser's loose parser raises UnicodeEncodeError on ``&#55357;`` (the whole feed
would be a FeedError), and ijson's yajl backend turns ``\\ud83d`` into ``?`` and raises
UnicodeDecodeError on ``\\ude00`` (the rest of an export would be unreadable).

Guarantees:

* A high surrogate escape directly followed by a low one is the character they encode
  (``&#55357;&#56832;`` is written ``&#128512;``; a JSON pair is left as it is, yajl reads
  pairs right): nothing is lost, nothing is flagged.
* Every other surrogate escape becomes :data:`SURROGATE_MARK`, which
  :class:`newsradar.records.RawArticle` turns into U+FFFD and flags ``surrogates_replaced``
  when a record is built from the text, as it does with a lone surrogate in a string.
* Nothing else in the document changes; both rewrites are linear in its size.
"""

from __future__ import annotations

import re
from typing import IO

# A private-use character (plane 16) no real text uses; it stands for a replaced surrogate
# from the parse to the record, so the record knows to flag itself.
SURROGATE_MARK = "\U0010fffd"

# ---------------------------------------------------------------------------
# XML character references

_CHARREF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]{1,8})|([0-9]{1,10}));")
_MARK_REF = b"&#%d;" % ord(SURROGATE_MARK)


def _ref_value(match: re.Match) -> int:
    hexa, dec = match.group(1), match.group(2)
    return int(hexa, 16) if hexa is not None else int(dec)


def _is_high(value: int) -> bool:
    return 0xD800 <= value <= 0xDBFF


def _is_low(value: int) -> bool:
    return 0xDC00 <= value <= 0xDFFF


def fix_surrogate_charrefs(xml: bytes) -> bytes:
    """``xml`` (UTF-8) with surrogate character references rewritten (see module docstring)."""
    if b"&#" not in xml:
        return xml
    out: list[bytes] = []
    last = 0
    pending: re.Match | None = None  # a high surrogate reference waiting for its low half
    for match in _CHARREF.finditer(xml):
        value = _ref_value(match)
        if pending is not None:
            if match.start() == pending.end() and _is_low(value):
                out += [xml[last:pending.start()], b"&#%d;" % (0x10000 + ((_ref_value(pending) - 0xD800) << 10)
                                                             + (value - 0xDC00))]
                last, pending = match.end(), None
                continue
            out += [xml[last:pending.start()], _MARK_REF]
            last, pending = pending.end(), None
        if _is_high(value):
            pending = match
        elif _is_low(value):
            out += [xml[last:match.start()], _MARK_REF]
            last = match.end()
    if pending is not None:
        out += [xml[last:pending.start()], _MARK_REF]
        last = pending.end()
    if last == 0:
        return xml
    out.append(xml[last:])
    return b"".join(out)


# ---------------------------------------------------------------------------
# JSON string escapes, on a stream

# Every escape is matched from its backslash, left to right, so "\\\\ud83d" (an escaped
# backslash, then text) is never taken for a surrogate escape.
_JSON_ESCAPE = re.compile(
    rb"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|\\u([dD][89a-fA-F][0-9a-fA-F]{2})|\\.",
    re.DOTALL,
)
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_MARK_ESCAPE = b"\\udbff\\udffd"  # SURROGATE_MARK as a JSON surrogate pair
_LONGEST_ESCAPE = 12  # a \uXXXX\uXXXX pair


def fix_surrogate_escapes(json_bytes: bytes) -> bytes:
    """``json_bytes`` with each lone surrogate escape replaced by :data:`SURROGATE_MARK`'s pair."""
    fixed, _ = _fix_until(json_bytes, len(json_bytes))
    return fixed


def _fix_until(data: bytes, limit: int) -> tuple[bytes, int]:
    """``data[:cut]`` rewritten, and ``cut``: the furthest clean offset up to ``limit``.

    ``data`` must begin where no escape and no run of backslashes is open. Bytes after
    ``limit`` are only looked at to tell a pair from a lone half. Clean means no escape, pair
    or run of backslashes straddles the offset, so the rest can be rewritten later alone."""
    if not _MAYBE_SURROGATE.search(data):
        return data[:(cut := _plain_cut(data, limit))], cut
    out: list[bytes] = []
    # Every escape is seen here: when none ends past ``limit``, ``limit`` itself is clean.
    last, cut = 0, limit
    for match in _JSON_ESCAPE.finditer(data):
        if match.end() > limit:
            cut = match.start()
            break
        if match.group(3) is not None:
            out += [data[last:match.start()], _MARK_ESCAPE]
            last = match.end()
    out.append(data[last:cut])
    return b"".join(out), cut


def _plain_cut(data: bytes, limit: int) -> int:
    """A clean offset at or before ``limit`` in ``data`` holding no surrogate escape."""
    if limit >= len(data):
        return len(data)
    # An escape begun before the window ends before ``limit``; one begun inside it may not.
    backslash = data.find(b"\\", max(limit - _LONGEST_ESCAPE, 0), limit)
    if backslash < 0:
        return limit
    # Back to the first backslash of its run: from there, pairs of backslashes are escapes.
    while backslash > 0 and data[backslash - 1:backslash] == b"\\":
        backslash -= 1
    return backslash


class SurrogateSafeReader:
    """A binary file wrapper whose ``read`` returns the JSON with lone surrogate escapes
    rewritten (:func:`fix_surrogate_escapes`), for streaming parsers such as ijson.

    A chunk is handed on only up to an offset no escape, surrogate pair or run of backslashes
    straddles, so every escape is seen whole and from its first backslash.
    """

    def __init__(self, raw: IO[bytes], chunk: int = 64 * 1024):
        self._raw = raw
        self._chunk = chunk
        self._held = b""  # read, not yet rewritten (may end inside an escape)
        self._ready = b""  # rewritten, not yet returned
        self._eof = False

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of the rewritten document (all of it when ``size`` < 0)."""
        while not self._eof and (size < 0 or len(self._ready) < size):
            more = self._raw.read(self._chunk)
            if not more:
                self._eof = True
                self._ready += fix_surrogate_escapes(self._held)
                self._held = b""
                break
            data = self._held + more
            fixed, cut = _fix_until(data, max(len(data) - _LONGEST_ESCAPE, 0))
            self._held = data[cut:]
            self._ready += fixed
        if size < 0:
            size = len(self._ready)
        out, self._ready = self._ready[:size], self._ready[size:]
        return out

    def close(self) -> None:
        self._raw.close()


__all__ = ["SURROGATE_MARK", "SurrogateSafeReader", "fix_surrogate_charrefs", "fix_surrogate_escapes"]
