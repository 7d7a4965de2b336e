"""Watchlist changes without a restart, and across restarts: the file is polled, a good new
version replaces the one in force, a bad one is refused and the old one stays; the last good
version is kept on disk so a restart with a bad file runs it instead of stopping.

:class:`WatchlistSource` is the small picklable value a pipeline is built with (the version
validated at launch plus, normally, the file's path and the last-good store's directory).
Each worker process turns it into one :class:`Reloader` (see
:func:`transforms.tagging.watchlist_reloader`), shared by all its steps so that tagging and
novelty switch versions at the same moment. ``Reloader.current()`` costs a clock read except
once per ``poll_interval``, when it stats the file and, if the bytes changed, loads and
checks the new version. Steps compile what they need from the version in force (spaCy
matchers do not travel well), so every worker reloads on its own within one poll interval.

Guarantees:

* A Reloader converges on the newest good version wherever and whenever it is made: the file
  if its content is good; else the last good version in the store (:class:`LastGood`,
  ``$NEWSRADAR_HOME/watchlist/``), which every Reloader and the launcher write when they take
  a version; else the launch version. A worker set up while the file holds a refused edit
  runs the last good version, not the launch one. Versions are told apart by content hash.
* A version is refused when it does not load (:class:`ConfigError`) or when ``check`` says so
  (the pipeline checks the inline examples); refusal is counted through
  ``on_result("failed", reason)`` and logged, once per bad version and process.
* Each organization's *watched since* (:meth:`Reloader.watched_since`): the wall-clock time
  from which it has been in every version in force, or ``None`` when it has been in all of
  them as far as is known. Kept with the last good version, so a restart knows that an
  organization was removed and added back while it was down.

The file must be readable at the same path on every worker (a ConfigMap or shared volume on
a cluster), and so should the store's directory for workers to share a last good version
(each worker otherwise keeps its own).

Loading is bounded in time: a Reloader loads the file (and, at start, the last good copy) on
a helper thread, and a load that has not answered within ``load_timeout`` (default 10 s) is
refused like a bad version, so a loader that hangs cannot stall the step that asked. A Python
thread cannot be stopped: the stuck load is abandoned (a daemon thread), and no poll starts
another load on that Reloader until it ends, so a file that keeps the loader spinning costs
one thread (two at start), never one per poll. The launcher's load (:meth:`WatchlistSource.from_file`)
is not bounded: it runs before the pipeline, in front of whoever started it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, NamedTuple, TypeVar

from newsradar.config import ConfigError, load_watchlist
from newsradar.config.watchlist import Watchlist
from newsradar.records import format_time

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_POLL_INTERVAL = 30.0
# Old versions kept in a store besides the last good one (a reader may hold the previous name).
STORE_KEEP = 3
STORE_FORMAT = 1
DEFAULT_LOAD_TIMEOUT = 10.0


class RejectedVersion(Exception):
    """A watchlist that loads but must not be used (e.g. its inline examples fail)."""


Check = Callable[[Watchlist], None]
OnResult = Callable[[str, str], None]


def _no_result(result: str, detail: str) -> None:
    return None


# ---------------------------------------------------------------------------
# the last good version on disk


class Saved(NamedTuple):
    """A version read back from a :class:`LastGood` store (its bytes verified by hash)."""

    path: str  # the stored copy, loadable with load_watchlist
    digest: str
    watched_since: dict[str, float]
    saved_at: str


class LastGood:
    """The last good version of one watchlist file, kept in ``directory`` (default
    ``$NEWSRADAR_HOME/watchlist``) under a name derived from the file's absolute path.

    Layout: ``<sha256>.yaml`` (the bytes, named by their hash) and ``last-good.json`` (which
    one, when, and the organizations' watched-since times). Both are written to a temporary
    name and renamed, so a reader sees the old pair or the new one; the bytes are checked
    against their hash when read, so a damaged copy is ignored, never used."""

    def __init__(self, directory: str | os.PathLike, watched_file: str):
        key = hashlib.sha256(os.path.abspath(watched_file).encode()).hexdigest()[:16]
        self.dir = Path(directory) / key
        self.watched_file = watched_file

    def save(self, data: bytes, digest: str, watched_since: dict[str, float]) -> None:
        """Keep ``data`` (whose SHA-256 is ``digest``) as the last good version. Raises OSError."""
        self.dir.mkdir(parents=True, exist_ok=True)
        copy = self.dir / f"{digest}.yaml"
        if not copy.exists():
            _write_atomically(copy, data)
        meta = {"v": STORE_FORMAT, "sha256": digest, "file": os.path.abspath(self.watched_file),
                "saved_at": format_time(_utcnow()), "watched_since": watched_since}
        _write_atomically(self.dir / "last-good.json", json.dumps(meta, sort_keys=True).encode())
        old = sorted((p for p in self.dir.glob("*.yaml") if p != copy), key=lambda p: p.stat().st_mtime)
        for stale in old[:-STORE_KEEP] if len(old) > STORE_KEEP else []:
            stale.unlink(missing_ok=True)

    def load(self) -> Saved | None:
        """The last good version, or None when there is none (or it is damaged: logged)."""
        meta_path = self.dir / "last-good.json"
        try:
            meta = json.loads(meta_path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("last good watchlist %s is unreadable, ignored: %s", meta_path, exc)
            return None
        if not isinstance(meta, dict) or meta.get("v") != STORE_FORMAT or not isinstance(meta.get("sha256"), str):
            log.error("last good watchlist %s is not in format %d, ignored", meta_path, STORE_FORMAT)
            return None
        copy = self.dir / f"{meta['sha256']}.yaml"
        if _content_hash(str(copy)) != meta["sha256"]:
            log.error("last good watchlist %s is missing or does not match its hash, ignored", copy)
            return None
        since = meta.get("watched_since") or {}
        since = {k: float(v) for k, v in since.items() if isinstance(k, str) and isinstance(v, (int, float))}
        return Saved(str(copy), meta["sha256"], since, str(meta.get("saved_at", "")))


def _utcnow():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _content_hash(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return None


def _read(path: str) -> tuple[bytes, str] | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    return data, hashlib.sha256(data).hexdigest()


def _load_checked(path: str, check: Check | None) -> Watchlist:
    """Load and check one version; ConfigError or RejectedVersion when it must not be used."""
    watchlist = load_watchlist(path)
    if check is not None:
        check(watchlist)
    return watchlist


def advance_since(before: Watchlist | None, after: Watchlist, since: dict[str, float], now: float) -> dict[str, float]:
    """Watched-since times once ``after`` replaces ``before`` at ``now``: an organization that
    stays keeps its time (none: as far as known, always watched), one that is new gets ``now``,
    one that left is forgotten (if it comes back, it is new). ``before`` None: nothing known."""
    if before is None:
        return {}
    kept = {o.id for o in before.organizations}
    out = {}
    for org in after.organizations:
        if org.id not in kept:
            out[org.id] = now
        elif org.id in since:
            out[org.id] = since[org.id]
    return out


# ---------------------------------------------------------------------------
# what a pipeline is built with


@dataclass(frozen=True)
class WatchlistSource:
    """Where a pipeline's watchlist comes from: ``initial`` (validated at launch), the file to
    poll for new versions (``None``: fixed, as in tests and `newsradar tag`) and ``store``,
    the directory of the last-good store (``None``: none); ``max_memory``, the bound on a new
    version's memory (see the field). ``initial_hash`` is the SHA-256 of
    the bytes ``initial`` was loaded from (``None``: unknown, so a Reloader takes whatever
    valid version the file holds when it starts). ``load_timeout`` bounds one load of the
    file by a Reloader (seconds of wall time)."""

    initial: Watchlist
    path: str | None = None
    poll_interval: float = DEFAULT_POLL_INTERVAL
    initial_hash: str | None = None
    store: str | None = field(default=None)
    load_timeout: float = DEFAULT_LOAD_TIMEOUT
    # The longest memory (Watchlist.memory_seconds) a new version may have: what the topics
    # the state is rebuilt from keep (None: no bound). A longer one is refused at reload.
    max_memory: float | None = None

    @classmethod
    def from_file(cls, path: str | os.PathLike, poll_interval: float = DEFAULT_POLL_INTERVAL, *,
                  store: str | os.PathLike | None = None, check: Check | None = None,
                  on_result: OnResult = _no_result) -> WatchlistSource:
        """Load and check the file now and poll it later. When it is bad (ConfigError naming
        file, line and field, or ``check`` refuses it) and ``store`` holds a last good version
        of it, that version is the launch version (logged, ``on_result("failed", ...)``);
        with no last good version, the file's error is raised."""
        path = os.path.abspath(os.fspath(path))
        store = os.fspath(store) if store is not None else None
        try:
            watchlist, digest = _load_stable(path, check)
        except (ConfigError, RejectedVersion) as exc:
            saved = LastGood(store, path).load() if store is not None else None
            if saved is None:
                if isinstance(exc, RejectedVersion):
                    raise ConfigError(path, "examples", str(exc)) from None
                raise
            watchlist = _load_checked(saved.path, check)
            log.error("watchlist %s refused at start, running its last good version (sha256 %s, saved %s): %s",
                      path, saved.digest[:12], saved.saved_at, exc)
            on_result("failed", str(exc))
            return cls(watchlist, path, poll_interval, saved.digest, store)
        source = cls(watchlist, path, poll_interval, digest, store)
        if store is not None and digest is not None:
            _save_quietly(LastGood(store, path), path, digest, watchlist)
        return source

    @classmethod
    def fixed(cls, watchlist: Watchlist) -> WatchlistSource:
        return cls(watchlist, None)


def _load_stable(path: str, check: Check | None) -> tuple[Watchlist, str | None]:
    # Hash before and after loading: an edit in between would make the hash name bytes
    # other than the ones loaded, so load again until both agree.
    for _ in range(5):
        before = _content_hash(path)
        watchlist = _load_checked(path, check)
        if before is not None and _content_hash(path) == before:
            return watchlist, before
    return watchlist, None


def _save_quietly(store: LastGood, path: str, digest: str, watchlist: Watchlist,
                  since: dict[str, float] | None = None) -> None:
    """Keep a version as the last good one. A store that cannot be written costs only the
    restart guarantee, not the version in force: logged, and the pipeline goes on."""
    read = _read(path)
    if read is None or read[1] != digest:
        return  # the file changed since it was loaded; the next version taken is saved
    try:
        saved = store.load()
        if since is None:
            # The launcher: times carried over from the last good version, new organizations from now.
            before = load_watchlist(saved.path) if saved is not None else None
            since = saved.watched_since if saved is not None and saved.digest == digest else advance_since(
                before, watchlist, saved.watched_since if saved is not None else {}, time.time())
        store.save(read[0], digest, since)
    except (OSError, ConfigError) as exc:
        log.error("cannot keep the last good watchlist in %s (a restart with a bad file will refuse to start): %s",
                  store.dir, exc)


# ---------------------------------------------------------------------------
# the version in force


class Version(NamedTuple, Generic[T]):
    number: int  # 1 the launch version, then 2, 3, ... in this Reloader: a new number is a new version
    watchlist: Watchlist
    value: T
    digest: str | None


class Reloader(Generic[T]):
    """The current watchlist and its compiled form, rebuilt when the file changes. Thread-safe:
    one instance serves every step of a worker process.

    ``compile`` turns a Watchlist into what the caller needs (identity for the shared
    watchlist reloader). ``check`` may raise :class:`RejectedVersion` to refuse a version that
    loads. ``on_result(result, detail)`` is called with ``"ok"`` or ``"failed"`` for every
    attempted reload (the caller counts them). ``clock`` (poll timing) and ``wall`` (watched
    since) are injectable for tests.
    """

    def __init__(
        self,
        source: WatchlistSource,
        compile: Callable[[Watchlist], T],
        check: Callable[[Watchlist, T], None] | None = None,
        on_result: OnResult | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ):
        self.source = source
        self._compile = compile
        self._check = check
        self._on_result = on_result or _no_result
        self._clock = clock
        self._wall = wall
        self._lock = threading.RLock()
        self._store = LastGood(source.store, source.path) if source.store and source.path else None
        self._stat: tuple[int, int] | None = None
        self._refused_hash: str | None = None
        self._stuck: list[threading.Thread] = []  # abandoned loads that may still be running
        self._next_poll = clock() + source.poll_interval
        saved = self._store.load() if self._store is not None else None
        self._saved = saved
        # The first poll happens now, so an instance made after an edit starts from the edit;
        # if the file holds nothing good, the last good version, and only then the launch one.
        self._current: Version[T] | None = None
        self._since: dict[str, float] = {}
        with self._lock:
            if not self._start(saved):
                self._install(source.initial, compile(source.initial), source.initial_hash, saved)

    def _start(self, saved: Saved | None) -> bool:
        """Put the file's version in force if it is good and not the launch version, else the
        last good one if the file is bad; False: the launch version it is."""
        if self.source.path is None:
            return False
        stat = self._stat_now()
        digest = _content_hash(self.source.path)
        if digest is not None and digest == self.source.initial_hash:
            self._stat = stat
            return False
        return self._take_new_version(initial=True) or self._take_saved(saved)

    # -- reading

    @property
    def watchlist(self) -> Watchlist:
        return self._current.watchlist

    @property
    def value(self) -> T:
        return self._current.value

    @property
    def version(self) -> int:
        return self._current.number

    def current(self) -> Version[T]:
        """The version in force; polls the file when the interval has passed."""
        if self.source.path is not None and self._clock() >= self._next_poll:
            with self._lock:
                if self._clock() >= self._next_poll:
                    self._next_poll = self._clock() + self.source.poll_interval
                    self._take_new_version()
        return self._current

    def get(self) -> T:
        """The compiled current watchlist; polls the file when the interval has passed."""
        return self.current().value

    def watched_since(self, org_id: str) -> float | None:
        """Since when (unix seconds, wall clock) ``org_id`` has been in every version in force;
        None when it has been in all of them as far as is known."""
        return self._since.get(org_id)

    def poll(self) -> bool:
        """Check the file now; returns True when a new version was taken into use."""
        if self.source.path is None:
            return False
        with self._lock:
            return self._take_new_version()

    # -- changing

    def _install(self, watchlist: Watchlist, value: T, digest: str | None, saved: Saved | None = None) -> None:
        """Put a version in force (under the lock). The watched-since times come from the
        store when it holds this very version (another process computed them), else from the
        version before it: this instance's, or at start the store's."""
        before = self._current.watchlist if self._current is not None else None
        if saved is not None and digest is not None and saved.digest == digest:
            since = dict(saved.watched_since)
        elif before is not None:
            since = advance_since(before, watchlist, self._since, self._wall())
        elif saved is not None:
            since = advance_since(self._load_or_none(saved.path), watchlist, saved.watched_since, self._wall())
        else:
            since = {}
        # 1 is the launch version; whatever else an instance starts from is 2.
        if self._current is None:
            number = 1 if digest == self.source.initial_hash else 2
        else:
            number = self._current.number + 1
        self._current, self._since = Version(number, watchlist, value, digest), since
        if number == 1 and digest == self.source.initial_hash:
            return  # the launch version: the launcher kept it
        if self._store is not None and digest is not None and (saved is None or saved.digest != digest):
            _save_quietly(self._store, self.source.path, digest, watchlist, since)

    def _stat_now(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.source.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _take_saved(self, saved: Saved | None) -> bool:
        """At start, with nothing good in the file: the store's last good version, if it is
        one this instance can use (it is checked again: the code may have changed)."""
        if saved is None or saved.digest == self.source.initial_hash:
            return False
        try:
            watchlist = self._load_bounded(saved.path)
            value = self._compile(watchlist)
            if self._check is not None:
                self._check(watchlist, value)
        except (ConfigError, RejectedVersion, ValueError) as exc:
            log.error("last good watchlist %s refused, running the launch version: %s", saved.path, exc)
            return False
        self._install(watchlist, value, saved.digest, saved)
        log.warning("watchlist %s is not usable; running its last good version (sha256 %s, saved %s)",
                    self.source.path, saved.digest[:12], saved.saved_at)
        return True

    def _take_new_version(self, initial: bool = False) -> bool:
        self._stuck = [worker for worker in self._stuck if worker.is_alive()]
        if self._stuck:
            return False  # reported when it timed out; the file is looked at again later
        stat = self._stat_now()
        if stat == self._stat and stat is not None:
            return False
        self._stat = stat
        digest = _content_hash(self.source.path)
        in_force = self.source.initial_hash if self._current is None else self._current.digest
        if digest is not None and digest in (in_force, self._refused_hash):
            return False
        try:
            watchlist = self._load_bounded(self.source.path)
            value = self._compile(watchlist)
            if self._check is not None:
                self._check(watchlist, value)
        except (ConfigError, RejectedVersion, ValueError) as exc:
            self._refused_hash = digest
            log.error("watchlist reload refused, keeping the version in force: %s", exc)
            self._on_result("failed", str(exc))
            return False
        if digest is not None and _content_hash(self.source.path) != digest:
            self._stat = None  # edited while loading: try again at the next poll
            return False
        # Another process may have taken this version first: its watched-since times win, so
        # every process (and every later start) agrees on them.
        saved = self._saved if initial else (self._store.load() if self._store is not None else None)
        self._install(watchlist, value, digest, saved)
        log.info("watchlist reloaded from %s (version %d)", self.source.path, self.version)
        self._on_result("ok", "")
        return True

    def _load_bounded(self, path: str) -> Watchlist:
        """``load_watchlist(path)`` on a helper thread, waiting at most ``load_timeout``."""
        outcome: dict[str, object] = {}

        def load() -> None:
            try:
                outcome["watchlist"] = load_watchlist(path)
            except BaseException as exc:  # noqa: BLE001 -- not handled here: re-raised by the waiting thread
                outcome["error"] = exc

        worker = threading.Thread(target=load, name=f"watchlist-load:{path}", daemon=True)
        worker.start()
        worker.join(self.source.load_timeout)
        if worker.is_alive():
            self._stuck.append(worker)
            raise ConfigError(path, "", f"loading did not finish within {self.source.load_timeout:g}s "
                                        "(abandoned; no other load starts until it ends)")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["watchlist"]

    def _load_or_none(self, path: str) -> Watchlist | None:
        try:
            return self._load_bounded(path)
        except ConfigError as exc:
            log.error("last good watchlist %s does not load, its watched-since times are not used: %s", path, exc)
            return None
