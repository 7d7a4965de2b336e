"""Which news.alerts offsets every sink has finished with, so the consumer commits only those.

Guarantees: :meth:`Progress.committable` never returns an offset past a record that some
sink has not finished (delivered, or dead-lettered, and written to the ledger); records
finish in any order, the commit point moves over the finished prefix of each partition.
Thread-safe: the consumer loop adds and commits, the sink workers finish.

A record read again after its partition was given away and back (a rebalance: the consumer
reads from the committed offset again) is a new entry of a new *epoch*; a sink finishing
the record it took before is ignored (:meth:`finish` with the old epoch), so it cannot
finish the new entry in another sink's place.
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class Progress:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # partition -> offset -> sinks still to finish, in offset order
        self._open: dict[int, OrderedDict[int, int]] = {}
        # partition -> the offset after the highest one read
        self._next: dict[int, int] = {}
        self._committed: dict[int, int] = {}
        # partition -> how many times it was forgotten: the epoch of what is read from it now
        self._epoch: dict[int, int] = {}

    def add(self, partition: int, offset: int, sinks: int) -> int:
        """A record read at ``offset`` that ``sinks`` sinks still have to finish (0: none).
        Returns the epoch to finish it with."""
        with self._lock:
            if sinks > 0:
                self._open.setdefault(partition, OrderedDict())[offset] = sinks
            self._next[partition] = max(self._next.get(partition, 0), offset + 1)
            return self._epoch.get(partition, 0)

    def finish(self, partition: int, offset: int, epoch: int = 0) -> None:
        """One sink finished the record read in ``epoch`` (a record of a partition given up
        by :meth:`forget` since is ignored)."""
        with self._lock:
            if epoch != self._epoch.get(partition, 0):
                return
            offsets = self._open.get(partition)
            if offsets is None or offset not in offsets:
                return
            offsets[offset] -= 1
            if offsets[offset] <= 0:
                del offsets[offset]

    def pending(self) -> int:
        """Records read that some sink has not finished."""
        with self._lock:
            return sum(len(o) for o in self._open.values())

    def committable(self) -> dict[int, int]:
        """Per partition whose commit point moved since the last call: the offset to commit
        (the first unfinished record, or the one after the highest read)."""
        out = {}
        with self._lock:
            for partition, after in self._next.items():
                offsets = self._open.get(partition)
                point = next(iter(offsets)) if offsets else after
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
                self._epoch[p] = self._epoch.get(p, 0) + 1

    def forget_all(self) -> None:
        with self._lock:
            for p in {*self._open, *self._next, *self._epoch}:
                self._epoch[p] = self._epoch.get(p, 0) + 1
            self._open.clear()
            self._next.clear()
            self._committed.clear()
