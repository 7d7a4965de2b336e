"""The connectors' embedded state store (SQLite): cursors, schedules and recently seen ids.

Guarantees:

* :meth:`StateStore.commit_delivery` writes a source's new cursor and the ids it delivered in
  one transaction. The delivery loop calls it only after Kafka acknowledged those records,
  so after a crash the store never claims more than Kafka has (at least once, never lost).
* SQLite commits are atomic, so a SIGKILL at any point leaves the store either before or after
  a commit. We run WAL with ``synchronous=NORMAL``: durable across process crashes; a power
  cut can roll back the last commits, which re-sends (duplicates), never loses.
* The store is where cursors live: the delivery loop reads one with :meth:`StateStore.cursor`
  for each poll and keeps none in memory.
* Seen ids are bounded twice: rows older than the TTL are expired and each source keeps at
  most ``max_per_source`` rows (oldest dropped first). An id still present in its feed is
  refreshed on every changed fetch, so it never expires while the feed still lists it.
* One process per state directory: a second ``newsradar connect`` on the same directory
  gets :class:`StateLocked` instead of silently racing the first.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
DB_NAME = "connectors.sqlite3"
LOCK_NAME = "connectors.lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    source_id   TEXT PRIMARY KEY,
    cursor      TEXT,
    next_due    REAL,
    hold_until  REAL,
    errors      INTEGER NOT NULL DEFAULT 0,
    last_new_at REAL,
    updated_at  REAL
);
CREATE TABLE IF NOT EXISTS seen (
    source_id TEXT NOT NULL,
    key       TEXT NOT NULL,
    seen_at   REAL NOT NULL,
    PRIMARY KEY (source_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_by_age ON seen (seen_at);
"""


class StateLocked(RuntimeError):
    """Another process holds this state directory."""


@dataclass
class SourceState:
    cursor: dict[str, Any] | None = None
    next_due: float | None = None
    # Until when the source itself asked us to stay away (Retry-After); even --once waits.
    hold_until: float | None = None
    errors: int = 0
    last_new_at: float | None = None


class StateStore:
    """SQLite state for every source of one ``newsradar connect`` process.

    One thread owns it (the connectors' event loop: sqlite3 refuses calls from any other), and
    every call closes its cursors before returning, so no statement is left for another
    thread to reset when it frees a cursor (see :meth:`_run`)."""

    def __init__(self, state_dir: str | os.PathLike):
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.dir / LOCK_NAME, "a+")  # held (flock) for the store's lifetime
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise StateLocked(f"another newsradar connect is using the state directory {self.dir}") from None
        self.path = self.dir / DB_NAME
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._run("PRAGMA journal_mode=WAL")
        self._run("PRAGMA synchronous=NORMAL")
        version = self._one("PRAGMA user_version")[0]
        if version not in (0, SCHEMA_VERSION):
            raise RuntimeError(f"{self.path}: state schema version {version}, this build knows {SCHEMA_VERSION}")
        with closing(self._db.executescript(_SCHEMA)):
            pass
        self._run(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading

    def load(self, source_id: str) -> SourceState:
        row = self._one(
            "SELECT cursor, next_due, hold_until, errors, last_new_at FROM sources WHERE source_id = ?", (source_id,)
        )
        if row is None:
            return SourceState()
        cursor = json.loads(row[0]) if row[0] else None
        return SourceState(cursor=cursor, next_due=row[1], hold_until=row[2], errors=row[3] or 0, last_new_at=row[4])

    def cursor(self, source_id: str) -> dict[str, Any] | None:
        """The source's saved cursor alone (what a poll starts from)."""
        row = self._one("SELECT cursor FROM sources WHERE source_id = ?", (source_id,))
        return json.loads(row[0]) if row is not None and row[0] else None

    def unseen(self, source_id: str, keys: Sequence[str]) -> set[str]:
        """The subset of ``keys`` not delivered (and remembered) for this source."""
        if not keys:
            return set()
        seen: set[str] = set()
        unique = list(dict.fromkeys(keys))
        # SQLite caps host parameters per statement; query in slices.
        for start in range(0, len(unique), 500):
            part = unique[start:start + 500]
            marks = ",".join("?" * len(part))
            seen.update(
                k for (k,) in self._all(
                    f"SELECT key FROM seen WHERE source_id = ? AND key IN ({marks})", (source_id, *part)
                )
            )
        return set(unique) - seen

    def seen_keys(self, source_id: str) -> set[str]:
        return {k for (k,) in self._all("SELECT key FROM seen WHERE source_id = ?", (source_id,))}

    # -- writing

    def commit_delivery(
        self,
        source_id: str,
        *,
        cursor: dict[str, Any] | None,
        seen: Iterable[str],
        now: float,
        next_due: float,
        errors: int,
        last_new_at: float | None,
    ) -> None:
        """Record a delivered poll: new cursor (None keeps the old one), seen ids, schedule."""
        with self._transaction():
            self._upsert(source_id, cursor, now, next_due, None, errors, last_new_at)
            self._many(
                "INSERT INTO seen (source_id, key, seen_at) VALUES (?, ?, ?) "
                "ON CONFLICT (source_id, key) DO UPDATE SET seen_at = excluded.seen_at",
                ((source_id, key, now) for key in seen),
            )

    def schedule(
        self, source_id: str, *, now: float, next_due: float, errors: int, hold_until: float | None = None
    ) -> None:
        """Record only when to come back (a failed poll: the cursor stays as it was)."""
        with self._transaction():
            self._upsert(source_id, None, now, next_due, hold_until, errors, None)

    def _upsert(self, source_id, cursor, now, next_due, hold_until, errors, last_new_at) -> None:
        self._run(
            "INSERT INTO sources (source_id, cursor, next_due, hold_until, errors, last_new_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source_id) DO UPDATE SET "
            "cursor = COALESCE(excluded.cursor, sources.cursor), next_due = excluded.next_due, "
            "hold_until = excluded.hold_until, errors = excluded.errors, "
            "last_new_at = COALESCE(excluded.last_new_at, sources.last_new_at), updated_at = excluded.updated_at",
            (
                source_id,
                json.dumps(cursor, sort_keys=True, ensure_ascii=False) if cursor is not None else None,
                next_due, hold_until, errors, last_new_at, now,
            ),
        )

    def expire(self, *, older_than: float, max_per_source: int) -> int:
        """Forget seen ids older than ``older_than`` and beyond the per-source cap; returns rows removed."""
        with self._transaction():
            removed = self._run("DELETE FROM seen WHERE seen_at < ?", (older_than,))
            crowded = self._all(
                "SELECT source_id, COUNT(*) FROM seen GROUP BY source_id HAVING COUNT(*) > ?", (max_per_source,)
            )
            for source_id, count in crowded:
                removed += self._run(
                    "DELETE FROM seen WHERE source_id = ? AND key IN "
                    "(SELECT key FROM seen WHERE source_id = ? ORDER BY seen_at ASC, key ASC LIMIT ?)",
                    (source_id, source_id, count - max_per_source),
                )
        return removed

    def _transaction(self):
        return _Transaction(self)

    # Every cursor is closed before the call returns, on the thread that owns the store. A
    # cursor left to be freed later resets its statement whenever it is freed, on whatever
    # thread drops the last reference; SQLite statements are shared through the connection's
    # cache, so a reset from another thread in the middle of an executemany on this one makes
    # SQLite refuse the next bind: "bad parameter or other API misuse" (issue 20).

    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute a statement that returns no rows; the number of rows it changed."""
        with closing(self._db.execute(sql, params)) as cur:
            return cur.rowcount

    def _one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        with closing(self._db.execute(sql, params)) as cur:
            return cur.fetchone()

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with closing(self._db.execute(sql, params)) as cur:
            return cur.fetchall()

    def _many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with closing(self._db.executemany(sql, rows)):
            pass


class _Transaction:
    def __init__(self, store: StateStore):
        self._store = store

    def __enter__(self) -> None:
        self._store._run("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._store._run("ROLLBACK")
            return
        try:
            self._store._run("COMMIT")
        except sqlite3.Error:
            # A COMMIT that fails (a deferred constraint, a full disk) can leave the transaction
            # open: the next BEGIN would fail, and the next COMMIT would carry this one's writes.
            if self._store._db.in_transaction:
                self._store._run("ROLLBACK")
            raise


__all__ = ["SourceState", "StateLocked", "StateStore"]
