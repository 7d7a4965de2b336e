"""Which news.alerts offsets every sink has finished with, so the consumer commits only those.

Guarantees: :meth:`Progress.committable` never returns an offset past a record that some
sink has not finished (delivered, or dead-lettered, and written to the ledger); records
finish in any order, the commit point moves over the finished prefix of each partition.
Thread-safe: the consumer loop adds and commits, the sink workers finish.

Every read of a record is its own entry with its own token: a record read again (its
partition given away and back in a rebalance, or the consumer's position moved back for any
reason) replaces the entry of its earlier read, and a sink finishing what it took from the
earlier read is ignored (:meth:`finish` with the old token), so it can never finish the new
entry in another sink's place.
"""

from __future__ import annotations

import threading


class Progress:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # partition -> offset -> [sinks still to finish, token of the read]
        self._open: dict[int, dict[int, list[int]]] = {}
        # partition -> the offset after the highest one read
        self._next: dict[int, int] = {}
        self._committed: dict[int, int] = {}
        self._reads = 0
        # records read at an offset this process had read before (a rebalance, a position reset)
        self.read_again = 0

    def add(self, partition: int, offset: int, sinks: int) -> int:
        """A record read at ``offset`` that ``sinks`` sinks still have to finish (0: none).
        Returns the token its sinks finish it with."""
        with self._lock:
            self._reads += 1
            token = self._reads
            offsets = self._open.setdefault(partition, {})
            if offset < self._next.get(partition, 0):
                self.read_again += 1
            offsets.pop(offset, None)
            if sinks > 0:
                offsets[offset] = [sinks, token]
            self._next[partition] = max(self._next.get(partition, 0), offset + 1)
            return token

    def finish(self, partition: int, offset: int, token: int) -> None:
        """One sink finished the record of the read ``token`` (a read replaced since, or of a
        partition given up by :meth:`forget`, is ignored)."""
        with self._lock:
            entry = self._open.get(partition, {}).get(offset)
            if entry is None or entry[1] != token:
                return
            entry[0] -= 1
            if entry[0] <= 0:
                del self._open[partition][offset]

    def pending(self) -> int:
        """Records read that some sink has not finished."""
        with self._lock:
            return sum(len(o) for o in self._open.values())

    def committable(self) -> dict[int, int]:
        """Per partition whose commit point moved since the last call: the offset to commit
        (the lowest unfinished record, or the one after the highest read)."""
        out = {}
        with self._lock:
            for partition, after in self._next.items():
                offsets = self._open.get(partition)
                point = min(offsets) if offsets else after
                if self._committed.get(partition) != point:
                    out[partition] = point
        return out

    def committed(self, offsets: dict[int, int]) -> None:
        """Kafka took these offsets."""
        with self._lock:
            self._committed.update(offsets)

    def forget(self, partitions) -> None:
        """The group gave these partitions to another member: stop tracking them."""
        with self._lock:
            for p in partitions:
                self._open.pop(p, None)
                self._next.pop(p, None)
                self._committed.pop(p, None)

    def forget_all(self) -> None:
        with self._lock:
            self._open.clear()
            self._next.clear()
            self._committed.clear()
