"""The SQLite state store: what survives a restart, what is bounded, one process per directory."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.state import StateLocked, StateStore


def test_cursor_seen_ids_and_schedule_survive_a_reopen(tmp_path):
    with StateStore(tmp_path) as store:
        store.commit_delivery("a", cursor={"etag": '"x"'}, seen=["k1", "k2"], now=100.0, next_due=700.0, errors=0,
                              last_new_at=100.0)
        store.schedule("a", now=200.0, next_due=500.0, errors=1)  # a failed poll keeps the cursor
    with StateStore(tmp_path) as store:
        state = store.load("a")
        assert state.cursor == {"etag": '"x"'} and state.next_due == 500.0 and state.errors == 1
        assert state.last_new_at == 100.0
        assert store.unseen("a", ["k1", "k3", "k3"]) == {"k3"}
        assert store.unseen("b", ["k1"]) == {"k1"}  # ids are scoped by source
        assert store.load("never") .cursor is None


def test_none_cursor_keeps_the_old_one(tmp_path):
    with StateStore(tmp_path) as store:
        store.commit_delivery("a", cursor={"n": 1}, seen=[], now=1.0, next_due=2.0, errors=0, last_new_at=None)
        store.commit_delivery("a", cursor=None, seen=["x"], now=3.0, next_due=4.0, errors=2, last_new_at=None)
        assert store.load("a").cursor == {"n": 1} and store.load("a").errors == 2


def test_seen_ids_expire_by_age_and_by_count(tmp_path):
    with StateStore(tmp_path) as store:
        store.commit_delivery("a", cursor=None, seen=[f"old{i}" for i in range(5)], now=10.0, next_due=0, errors=0,
                              last_new_at=None)
        store.commit_delivery("a", cursor=None, seen=[f"new{i}" for i in range(150)], now=20.0, next_due=0, errors=0,
                              last_new_at=None)
        # Still listed by the feed: refreshed, so it does not expire with the others.
        store.commit_delivery("a", cursor=None, seen=["old0"], now=20.0, next_due=0, errors=0, last_new_at=None)
        removed = store.expire(older_than=15.0, max_per_source=100)
        assert removed == 4 + 51
        left = store.seen_keys("a")
        assert len(left) == 100 and "old0" in left and "old1" not in left


def test_a_second_process_cannot_use_the_same_directory(tmp_path):
    with StateStore(tmp_path):
        with pytest.raises(StateLocked, match="another newsradar connect"):
            StateStore(tmp_path)
    StateStore(tmp_path).close()  # released on close


# Run in a fresh interpreter: gc.get_objects() walks every object of the process, and in the
# suite's process (millions of objects) each walk took long enough to stretch this to a minute.
_GC_WALKER_RACE = """
import gc, sys, threading
from pathlib import Path
from connectors.state import StateStore

stop = threading.Event()

def walk_the_gc():
    while not stop.is_set():
        held = gc.get_objects()
        del held

sys.setswitchinterval(1e-5)  # switch threads often, so the race is hit within the bound below
walker = threading.Thread(target=walk_the_gc, daemon=True)
try:
    with StateStore(Path(sys.argv[1])) as store:
        walker.start()
        for i in range(2000):
            source = f"s{i % 50}"
            store.cursor(source)
            store.load(source)
            keys = [f"k{i}-{j}" for j in range(100)]
            assert store.unseen(source, keys) == set(keys)
            store.commit_delivery(source, cursor={"n": i}, seen=keys, now=float(i), next_due=0.0, errors=0,
                                  last_new_at=None)
        assert store.load("s49").cursor == {"n": 1999}
finally:
    stop.set()
    walker.join(10)
print("ok")
"""


def test_the_store_survives_another_thread_holding_its_objects(tmp_path):
    """Issue 20: a thread that walks the gc (a memory sampler, a debugger) holds references
    to every object for a moment and drops them on its own thread. A cursor the store left
    open then resets its cached statement from there, in the middle of this thread's
    executemany, and SQLite refused the next bind ("bad parameter or other API misuse")."""
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", _GC_WALKER_RACE, str(tmp_path)], cwd=repo, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(repo)})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_a_failed_commit_is_rolled_back_and_the_store_goes_on(tmp_path):
    import sqlite3

    with StateStore(tmp_path) as store:
        # A real failing COMMIT: a deferred foreign key that the delivery's row breaks.
        db = store._db
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("CREATE TABLE parent (id TEXT PRIMARY KEY)")
        db.execute("CREATE TABLE child (id TEXT REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")
        db.execute("CREATE TRIGGER breaks AFTER INSERT ON sources BEGIN INSERT INTO child VALUES ('nobody'); END")
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            store.commit_delivery("a", cursor={"n": 1}, seen=["k1"], now=1.0, next_due=2.0, errors=0, last_new_at=None)
        assert not db.in_transaction
        db.execute("DROP TRIGGER breaks")
        store.schedule("b", now=3.0, next_due=4.0, errors=0)  # a BEGIN again: refused while the old one was open
        assert store.load("a").cursor is None and store.unseen("a", ["k1"]) == {"k1"}  # nothing of it stayed
    with StateStore(tmp_path) as store:
        assert store.load("b").next_due == 4.0 and store.load("a").cursor is None
