"""Coders for what the stateful steps keep in Beam state: explicit, versioned encodings, not
pickled classes, so state written by one release (a Flink checkpoint or savepoint) is read by
the next even when the classes behind it change.

Guarantees:

* Every blob starts with its format number (one byte); the rest is UTF-8 JSON of plain values
  (numbers, strings, lists, maps with string keys). Floats are written with ``repr``
  precision, so a decoded state equals the encoded one.
* A reader decodes the current format and the one before it. The one before this first
  explicit format (1) is Beam's ``PickleCoder`` output (pickle protocol 5, first byte
  ``0x80``), read with an unpickler that only accepts the one class each blob may hold.
* A blob in no known format raises :class:`StateFormatError` (the runner fails the bundle:
  state is never silently replaced by an empty one).
* The encodings are plain functions (:func:`encode_org_state`, ...), tested without a
  pipeline; the Coder classes only wrap them.
"""

from __future__ import annotations

import io
import json
import pickle
from typing import TYPE_CHECKING, Any

from apache_beam.coders import Coder

from .alert_rules import OrgState

if TYPE_CHECKING:
    from .dedupe import Version

FORMAT = 1
_PICKLE = 0x80  # pickle protocol 2+ opens with PROTO (Beam's PickleCoder: the format before 1)


class StateFormatError(ValueError):
    """A state blob in no format this release reads."""


def _dump(fmt: int, value: Any) -> bytes:
    return bytes([fmt]) + json.dumps(value, separators=(",", ":"), ensure_ascii=False,
                                     allow_nan=False).encode("utf-8")


def _load(blob: bytes) -> Any:
    return json.loads(blob[1:].decode("utf-8"))


class _OneClassUnpickler(pickle.Unpickler):
    """Reads a legacy PickleCoder blob that may hold instances of one class only."""

    def __init__(self, blob: bytes, allowed: type):
        super().__init__(io.BytesIO(blob))
        self._allowed = allowed

    def find_class(self, module: str, name: str):
        if (module, name) == (self._allowed.__module__, self._allowed.__qualname__):
            return self._allowed
        raise StateFormatError(f"legacy state blob names {module}.{name}, expected {self._allowed.__qualname__}")


def _unpickle(blob: bytes, allowed: type) -> Any:
    try:
        return _OneClassUnpickler(blob, allowed).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError) as exc:
        raise StateFormatError(f"unreadable legacy state blob: {exc}") from None


def _format_of(blob: bytes) -> int:
    if not blob:
        raise StateFormatError("empty state blob")
    return blob[0]


# ---------------------------------------------------------------------------
# novelty: OrgState per organization


def encode_org_state(state: OrgState) -> bytes:
    return _dump(FORMAT, {
        "last_seen": state.last_seen,
        "first_seen": state.first_seen,
        "last_surge": state.last_surge,
        "stories": state.stories,
        "topic_stories": state.topic_stories,
        "hours": {str(h): n for h, n in state.hours.items()},
    })


def decode_org_state(blob: bytes) -> OrgState:
    fmt = _format_of(blob)
    if fmt == FORMAT:
        d = _load(blob)
        return OrgState(
            last_seen=d["last_seen"], first_seen=d["first_seen"], last_surge=d["last_surge"],
            stories={str(k): float(v) for k, v in d["stories"].items()},
            topic_stories={str(k): float(v) for k, v in d["topic_stories"].items()},
            hours={int(h): int(n) for h, n in d["hours"].items()},
        )
    if fmt == _PICKLE:
        old = _unpickle(blob, OrgState)
        if not isinstance(old, OrgState):
            raise StateFormatError(f"legacy novelty state holds {type(old).__name__}, expected OrgState")
        # Rebuilt field by field: a slot the old blob did not set gets its default.
        fresh = OrgState()
        return OrgState(**{name: getattr(old, name, getattr(fresh, name)) for name in OrgState.__slots__})
    raise StateFormatError(f"novelty state blob in format {fmt}; this release reads {FORMAT} and pickles")


# ---------------------------------------------------------------------------
# dedupe: (last version that went out, expiry in micros) per article id


def encode_seen(seen: tuple[Version | None, int]) -> bytes:
    version, expires = seen
    as_list = None if version is None else [version.edited_at, version.fetched_at, version.digest]
    return _dump(FORMAT, {"version": as_list, "expires": int(expires)})


def decode_seen(blob: bytes) -> tuple[Version | None, int]:
    from .dedupe import Version  # dedupe builds its state spec with this module's coder

    fmt = _format_of(blob)
    if fmt == FORMAT:
        d = _load(blob)
        v = d["version"]
        return (None if v is None else Version(v[0], v[1], v[2])), int(d["expires"])
    if fmt == _PICKLE:
        old = _unpickle(blob, Version)
        if not (isinstance(old, tuple) and len(old) == 2 and (old[0] is None or isinstance(old[0], Version))):
            raise StateFormatError("legacy dedupe state is not (Version, expiry)")
        version = old[0]
        if version is not None:
            version = Version(version.edited_at, version.fetched_at, version.digest)
        return version, int(old[1])
    raise StateFormatError(f"dedupe state blob in format {fmt}; this release reads {FORMAT} and pickles")


# ---------------------------------------------------------------------------
# Beam


class OrgStateCoder(Coder):
    """OrgState <-> bytes (:func:`encode_org_state`)."""

    def encode(self, value: OrgState) -> bytes:
        return encode_org_state(value)

    def decode(self, encoded: bytes) -> OrgState:
        return decode_org_state(encoded)

    def is_deterministic(self) -> bool:
        return False  # dict order follows insertion; never used as a key

    def to_type_hint(self):
        return OrgState


class SeenCoder(Coder):
    """Dedupe's (Version | None, expiry micros) <-> bytes (:func:`encode_seen`)."""

    def encode(self, value: tuple[Version | None, int]) -> bytes:
        return encode_seen(value)

    def decode(self, encoded: bytes) -> tuple[Version | None, int]:
        return decode_seen(encoded)

    def is_deterministic(self) -> bool:
        return True

    def to_type_hint(self):
        return tuple
