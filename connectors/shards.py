"""Which connector replica polls which source: ``newsradar connect --shard I/N``.

Guarantees:

* N replicas with shards 0/N … (N−1)/N poll every enabled source exactly once between them:
  each source id belongs to exactly one shard, computed from the id alone (SHA-256, so the
  same on every machine and Python version, unlike ``hash()``).
* Rendezvous (highest-random-weight) hashing: the owner of an id is the shard whose
  ``sha256(id, shard)`` is highest. Going from N to N+1 replicas moves only the sources the
  new shard wins (about 1/(N+1) of them); going down, only the removed shard's sources move.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_SPEC = re.compile(r"^(\d+)/(\d+)$")


def _weight(source_id: str, shard: int) -> int:
    digest = hashlib.sha256(f"{source_id}\0{shard}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def owner(source_id: str, count: int) -> int:
    """The shard (0 … count−1) that polls ``source_id``."""
    if count < 1:
        raise ValueError(f"shard count must be at least 1, got {count}")
    return max(range(count), key=lambda shard: _weight(source_id, shard))


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"`` with 0 ≤ I < N; ValueError saying what is wrong otherwise."""
        found = _SPEC.match(text.strip())
        if not found:
            raise ValueError(f"--shard must be I/N (e.g. 0/3), got {text!r}")
        index, count = int(found.group(1)), int(found.group(2))
        if count < 1 or index >= count:
            raise ValueError(f"--shard {text}: I must be from 0 to N-1 and N at least 1")
        return cls(index, count)

    def owns(self, source_id: str) -> bool:
        return owner(source_id, self.count) == self.index

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"
