"""Read and committed positions seen by this process: lets a local run stop cleanly."""

from __future__ import annotations

import threading


class LocalProgress:
    """Read and committed positions of the readers running in this process.

    Only meaningful when the workers run inside the launching process (LOOPBACK on Prism):
    the launcher asks the readers to stop taking new records, then waits until everything
    read has been committed before it cancels the job. On a cluster runner, use the runner's
    own stop (Flink: stop with a savepoint).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.read: dict[tuple[str, int], int] = {}
        self.committed: dict[tuple[str, int], int] = {}
        self.paused: set[tuple[str, int]] = set()

    def request_stop(self) -> None:
        self._stop.set()

    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def note_read(self, tp: tuple[str, int], next_offset: int) -> None:
        with self._lock:
            self.read[tp] = max(next_offset, self.read.get(tp, next_offset))

    def note_paused(self, tp: tuple[str, int]) -> None:
        with self._lock:
            self.paused.add(tp)

    def note_committed(self, tp: tuple[str, int], offset: int) -> None:
        with self._lock:
            self.committed[tp] = max(offset, self.committed.get(tp, offset))

    def settled(self) -> bool:
        """True when every reader has paused and everything read has been committed."""
        with self._lock:
            return all(tp in self.paused for tp in self.read) and all(
                self.committed.get(tp, -1) >= offset for tp, offset in self.read.items()
            )

    def uncommitted(self) -> dict[str, int]:
        with self._lock:
            return {
                f"{t}/{p}": offset - self.committed.get((t, p), 0)
                for (t, p), offset in self.read.items()
                if self.committed.get((t, p), -1) < offset
            }


LOCAL_PROGRESS = LocalProgress()
