"""What each sink has done with each alert, kept across restarts of ``newsradar deliver``.

Guarantees:

* A row is written only after the sink acknowledged the alert (``delivered``) or Kafka
  acknowledged its dead letter on news.dlq (``dead_lettered``), and the service commits a
  news.alerts offset only after the rows of every record before it are written: a restart
  re-reads at most what was not finished, and the ledger says which sinks already took it.
* A ``delivered`` alert is never sent to that sink again, whichever record brings it (the
  pipeline writes an alert again after its own restart, with the same id). A
  ``dead_lettered`` one is skipped only for the same news.alerts record: the copy that
  ``newsradar dlq replay`` writes is a new record and is tried again.
* SQLite in WAL mode with ``synchronous=NORMAL``: a row survives the process being killed;
  after a power loss the newest rows may be gone, which repeats those deliveries (never
  loses one: the offsets in Kafka are then behind them too, or the alerts were delivered).
* Notifications (one per story and update, :mod:`.notification`) are written with the ids of
  their alerts *before* any sink is sent one, in one transaction: after a kill, an alert read
  again belongs to the notification it was grouped into, and that notification is sent again
  as it was (same id, same body), never regrouped under another id. The story's last
  notification is what the next update builds on.
* The file sink's writes: where in the file each notification's line starts, written before
  the line (:meth:`intend_write`), so a line written just before a kill is found on the resend
  and not written twice.
* Bounded: rows older than ``ttl`` (news.alerts' retention by default) are deleted by
  :meth:`prune`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from newsradar import paths
from newsradar.kafka import DEFAULT_RETENTION
from newsradar.records import TOPIC_ALERTS

from .notification import Notification

DELIVERED = "delivered"
DEAD_LETTERED = "dead_lettered"
DEFAULT_TTL = DEFAULT_RETENTION[TOPIC_ALERTS]


def default_path() -> Path:
    return paths.home() / "deliver" / "ledger.sqlite"


class Ledger:
    """Thread-safe: the consumer loop reads it, the sink workers write it."""

    def __init__(self, path: Path | None = None, ttl: float = DEFAULT_TTL):
        self.path = path or default_path()
        self.ttl = ttl
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outcomes (sink TEXT NOT NULL, alert_id TEXT NOT NULL, outcome TEXT NOT NULL, "
            "position TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (sink, alert_id))"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS outcomes_at ON outcomes (at)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS notifications (notification_id TEXT PRIMARY KEY, story_id TEXT NOT NULL, "
            "seq INTEGER NOT NULL, body TEXT NOT NULL, at REAL NOT NULL)"
        )
        self._db.execute("CREATE UNIQUE INDEX IF NOT EXISTS notifications_story ON notifications (story_id, seq)")
        self._db.execute("CREATE INDEX IF NOT EXISTS notifications_at ON notifications (at)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS members (alert_id TEXT PRIMARY KEY, notification_id TEXT NOT NULL, "
            "at REAL NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS members_at ON members (at)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS file_writes (path TEXT NOT NULL, notification_id TEXT NOT NULL, "
            "offset INTEGER NOT NULL, at REAL NOT NULL, PRIMARY KEY (path, notification_id))"
        )

    def done(self, sink: str, alert_id: str, position: str) -> bool:
        """True when ``sink`` needs nothing more for this alert read at ``position``."""
        with self._lock:
            row = self._db.execute("SELECT outcome, position FROM outcomes WHERE sink = ? AND alert_id = ?",
                                   (sink, alert_id)).fetchone()
        if row is None:
            return False
        outcome, where = row
        return outcome == DELIVERED or where == position

    def record(self, sink: str, outcome: str, items: Iterable[tuple[str, str]], at: float | None = None) -> None:
        """``items``: (alert_id, position) pairs, written in one transaction."""
        at = time.time() if at is None else at
        rows = [(sink, alert_id, outcome, position, at) for alert_id, position in items]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO outcomes VALUES (?, ?, ?, ?, ?)", rows)
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def outcome(self, sink: str, alert_id: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT outcome FROM outcomes WHERE sink = ? AND alert_id = ?",
                                   (sink, alert_id)).fetchone()
        return row[0] if row else None

    # -- notifications ------------------------------------------------------------------------

    def add_notification(self, n: Notification, at: float | None = None) -> None:
        """The notification and its alerts, in one transaction; an alert already in another
        notification is a bug (the caller asks :meth:`notification_of` first): sqlite3.IntegrityError."""
        at = time.time() if at is None else at
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute("INSERT INTO notifications VALUES (?, ?, ?, ?, ?)",
                                 (n.notification_id, n.story_id, n.update, n.encode().decode(), at))
                self._db.executemany("INSERT INTO members VALUES (?, ?, ?)",
                                     [(alert_id, n.notification_id, at) for alert_id in n.alert_ids])
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def notification_of(self, alert_id: str) -> Notification | None:
        """The notification the alert was grouped into, if it was."""
        with self._lock:
            row = self._db.execute("SELECT n.body FROM members m JOIN notifications n USING (notification_id) "
                                   "WHERE m.alert_id = ?", (alert_id,)).fetchone()
        return Notification.decode(row[0]) if row else None

    def last_notification(self, story_id: str) -> Notification | None:
        """The story's newest notification (the one the next update follows)."""
        with self._lock:
            row = self._db.execute("SELECT body FROM notifications WHERE story_id = ? ORDER BY seq DESC LIMIT 1",
                                   (story_id,)).fetchone()
        return Notification.decode(row[0]) if row else None

    # -- the file sink's writes ------------------------------------------------------------

    def intend_write(self, path: str, offsets: Iterable[tuple[str, int]], at: float | None = None) -> None:
        """(notification_id, offset in the file) of lines about to be appended to ``path``."""
        at = time.time() if at is None else at
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO file_writes VALUES (?, ?, ?, ?)",
                                 [(path, nid, offset, at) for nid, offset in offsets])

    def intended_offset(self, path: str, notification_id: str) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT offset FROM file_writes WHERE path = ? AND notification_id = ?",
                                   (path, notification_id)).fetchone()
        return row[0] if row else None

    def prune(self, now: float | None = None) -> int:
        """Delete rows older than the ttl; returns how many."""
        now = time.time() if now is None else now
        cutoff = now - self.ttl
        with self._lock:
            return sum(self._db.execute(f"DELETE FROM {table} WHERE at < ?", (cutoff,)).rowcount
                       for table in ("outcomes", "notifications", "members", "file_writes"))

    def close(self) -> None:
        with self._lock:
            self._db.close()
