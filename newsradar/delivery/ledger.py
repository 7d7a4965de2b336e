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
* Telegram: the message id of each story's message per sink (:meth:`remember_message`),
  written after Telegram acknowledged the message, so a later update edits it.
* The file sink's writes: where in the file each notification's line starts, written before
  the line (:meth:`intend_write`), so a line written just before a kill is found on the resend
  and not written twice.
* Digests (:mod:`.digest`): a notification a sink holds for its digest is written with its
  alerts (their records, to dead-letter them if the digest is never delivered) and the alerts'
  outcome ``held``, in one transaction, before their offsets may be committed; a held alert is
  done for that sink like a delivered one. A digest is sealed (its id and the notifications it
  holds fixed) before it is sent, so a digest sent again after a kill is the same message; it
  is finished (its alerts ``delivered`` or ``dead_lettered``) after the sink acknowledged it.
* Bounded: rows older than ``ttl`` (news.alerts' retention by default) are deleted by
  :meth:`prune`; held and sealed digests are kept until they are finished.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from newsradar import paths
from newsradar.kafka import DEFAULT_RETENTION
from newsradar.records import TOPIC_ALERTS

from .notification import Notification

DELIVERED = "delivered"
DEAD_LETTERED = "dead_lettered"
# In a notification the sink holds for its digest (not sent yet, but the ledger has it).
HELD = "held"
SEALED = "sealed"
DEFAULT_TTL = DEFAULT_RETENTION[TOPIC_ALERTS]


@dataclass(frozen=True, slots=True)
class HeldAlert:
    """An alert of a held notification: its record, to dead-letter it if the digest fails."""

    alert_id: str
    source: str
    raw: str
    written: float


@dataclass(frozen=True, slots=True)
class SealedDigest:
    digest_id: str
    since: float
    until: float
    notifications: tuple[Notification, ...]
    alerts: tuple[HeldAlert, ...]


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
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS story_messages (sink TEXT NOT NULL, story_id TEXT NOT NULL, "
            "message_id INTEGER NOT NULL, notification_id TEXT NOT NULL, at REAL NOT NULL, "
            "PRIMARY KEY (sink, story_id))"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS digest_entries (sink TEXT NOT NULL, notification_id TEXT NOT NULL, "
            "body TEXT NOT NULL, alerts TEXT NOT NULL, n_alerts INTEGER NOT NULL, at REAL NOT NULL, digest_id TEXT, "
            "PRIMARY KEY (sink, notification_id))"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS digest_entries_digest ON digest_entries (digest_id)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS digests (digest_id TEXT PRIMARY KEY, sink TEXT NOT NULL, since REAL NOT NULL, "
            "until REAL NOT NULL, state TEXT NOT NULL, at REAL NOT NULL)"
        )

    def done(self, sink: str, alert_id: str, position: str) -> bool:
        """True when ``sink`` needs nothing more for this alert read at ``position``."""
        with self._lock:
            row = self._db.execute("SELECT outcome, position FROM outcomes WHERE sink = ? AND alert_id = ?",
                                   (sink, alert_id)).fetchone()
        if row is None:
            return False
        outcome, where = row
        return outcome in (DELIVERED, HELD) or where == position

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

    # -- the message of each story in a chat that can edit (Telegram) ------------------------

    def remember_message(self, sink: str, story_id: str, message_id: int, notification_id: str,
                         at: float | None = None) -> None:
        """The chat message that shows the story on ``sink`` (its later updates edit it)."""
        at = time.time() if at is None else at
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO story_messages VALUES (?, ?, ?, ?, ?)",
                             (sink, story_id, message_id, notification_id, at))

    def story_message(self, sink: str, story_id: str) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT message_id FROM story_messages WHERE sink = ? AND story_id = ?",
                                   (sink, story_id)).fetchone()
        return row[0] if row else None

    # -- digests ---------------------------------------------------------------------------

    def _transaction(self, work: Callable[[], object]):
        with self._lock:
            self._db.execute("BEGIN")
            try:
                result = work()
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result

    def hold(self, sink: str, n: Notification, alerts: Iterable[HeldAlert], at: float | None = None) -> None:
        """``n`` waits for the sink's digest: the notification, its alerts' records, and the
        outcome ``held`` of every alert it carries, in one transaction. Holding it again (its
        alerts read again after a kill) changes nothing, unless the digest it was in was given
        up (its dead letters replayed): then it waits for the next digest."""
        at = time.time() if at is None else at
        alerts = list(alerts)
        where = {a.alert_id: a.source for a in alerts}
        entry = json.dumps([[a.alert_id, a.source, a.raw, a.written] for a in alerts], ensure_ascii=False)

        def work():
            row = (sink, n.notification_id, n.encode().decode(), entry, len(n.alert_ids), at)
            self._db.execute("INSERT OR IGNORE INTO digest_entries VALUES (?, ?, ?, ?, ?, ?, NULL)", row)
            self._db.execute(
                "UPDATE digest_entries SET alerts = ?, at = ?, digest_id = NULL WHERE sink = ? AND notification_id = ? "
                "AND digest_id IN (SELECT digest_id FROM digests WHERE state = ?)",
                (entry, at, sink, n.notification_id, DEAD_LETTERED))
            self._db.executemany("INSERT OR REPLACE INTO outcomes VALUES (?, ?, ?, ?, ?)",
                                 [(sink, a, HELD, where.get(a, ""), at) for a in n.alert_ids])

        self._transaction(work)

    def seal_digests(self, sink: str, until: float, make_id: Callable[[float, int], str], max_per: int,
                     at: float | None = None) -> int:
        """Fix the digests of the notifications the sink held before ``until`` (at most
        ``max_per`` each, in the order they were held; ``make_id(until, part)`` names them).
        A digest id already used (the clock went back) is not used again: its notifications
        wait for the next period. Returns how many digests were sealed."""
        at = time.time() if at is None else at

        def work():
            rows = self._db.execute(
                "SELECT notification_id, at FROM digest_entries WHERE sink = ? AND digest_id IS NULL AND at < ? "
                "ORDER BY at, notification_id", (sink, until)).fetchall()
            sealed = 0
            for part, i in enumerate(range(0, len(rows), max_per), start=1):
                chunk = rows[i:i + max_per]
                ident = make_id(until, part)
                inserted = self._db.execute("INSERT OR IGNORE INTO digests VALUES (?, ?, ?, ?, ?, ?)",
                                            (ident, sink, chunk[0][1], until, SEALED, at)).rowcount
                if not inserted:
                    continue
                self._db.executemany("UPDATE digest_entries SET digest_id = ? WHERE sink = ? AND notification_id = ?",
                                     [(ident, sink, nid) for nid, _at in chunk])
                sealed += 1
            return sealed

        return self._transaction(work)

    def sealed_digests(self, sink: str) -> list[SealedDigest]:
        """The sink's digests sealed and not finished, oldest first, each as it was sealed."""
        with self._lock:
            digests = self._db.execute("SELECT digest_id, since, until FROM digests WHERE sink = ? AND state = ? "
                                       "ORDER BY until, digest_id", (sink, SEALED)).fetchall()
            out = []
            for ident, since, until in digests:
                rows = self._db.execute("SELECT body, alerts FROM digest_entries WHERE digest_id = ? AND sink = ? "
                                        "ORDER BY at, notification_id", (ident, sink)).fetchall()
                notes = tuple(Notification.decode(body) for body, _a in rows)
                alerts = tuple(HeldAlert(*a) for _b, held in rows for a in json.loads(held))
                out.append(SealedDigest(ident, since, until, notes, alerts))
        return out

    def finish_digest(self, sink: str, digest_id: str, outcome: str, items: Iterable[tuple[str, str]],
                      at: float | None = None) -> None:
        """The digest was delivered (or its alerts dead-lettered): ``outcome`` for each
        (alert_id, position) of ``items`` and the digest finished, in one transaction."""
        at = time.time() if at is None else at
        rows = [(sink, alert_id, outcome, position, at) for alert_id, position in items]

        def work():
            self._db.execute("UPDATE digests SET state = ?, at = ? WHERE digest_id = ?", (outcome, at, digest_id))
            self._db.executemany("INSERT OR REPLACE INTO outcomes VALUES (?, ?, ?, ?, ?)", rows)

        self._transaction(work)

    def held_alerts(self, sink: str) -> int:
        """Alerts in notifications the sink holds for a digest not yet finished."""
        with self._lock:
            row = self._db.execute(
                "SELECT COALESCE(SUM(e.n_alerts), 0) FROM digest_entries e LEFT JOIN digests d USING (digest_id) "
                "WHERE e.sink = ? AND (e.digest_id IS NULL OR d.state = ?)", (sink, SEALED)).fetchone()
        return int(row[0])

    def prune(self, now: float | None = None) -> int:
        """Delete rows older than the ttl (digests only once finished); returns how many."""
        now = time.time() if now is None else now
        cutoff = now - self.ttl
        with self._lock:
            count = sum(self._db.execute(f"DELETE FROM {table} WHERE at < ?", (cutoff,)).rowcount
                        for table in ("outcomes", "notifications", "members", "file_writes", "story_messages"))
            count += self._db.execute(
                "DELETE FROM digest_entries WHERE digest_id IN "
                "(SELECT digest_id FROM digests WHERE state != ? AND at < ?)", (SEALED, cutoff)).rowcount
            count += self._db.execute("DELETE FROM digests WHERE state != ? AND at < ?", (SEALED, cutoff)).rowcount
            return count

    def close(self) -> None:
        with self._lock:
            self._db.close()
