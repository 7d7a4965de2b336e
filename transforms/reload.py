"""Watchlist changes without a restart: the file is polled, a good new version replaces the
compiled one, a bad one is refused and the old one stays in force.

:class:`WatchlistSource` is the small picklable value a pipeline is built with (the version
validated at launch plus, normally, the file's path). Each worker turns it into a
:class:`Reloader` in ``DoFn.setup``; ``Reloader.get()`` costs a clock read except once per
``poll_interval``, when it stats the file and, if the bytes changed, loads, validates and
compiles the new version. Compilation happens on the worker that will use it (spaCy
matchers do not travel well), so every worker reloads on its own within one poll interval.

A Reloader converges on the file's current valid content wherever and whenever it is made:
a worker (or DoFn instance) set up after the file was edited starts from the edited version,
not from the launch version it was shipped with. It tells them apart by content hash:
:class:`WatchlistSource` carries the hash of the bytes the launch version was loaded from.

The file must be readable at the same path on every worker (a ConfigMap or shared volume on
a cluster). A version is refused when it does not load (:class:`ConfigError`) or when
``check`` says so (the pipeline checks the inline examples); refusal is counted through
``on_result("failed", reason)`` and logged, once per bad version.

Loading is bounded in time: the file is loaded on a helper thread and a load that has not
answered within ``load_timeout`` (default 10 s) is refused like a bad version, so a loader that
hangs cannot stall the step that asked. A Python thread cannot be stopped: the stuck load is
abandoned (a daemon thread), and no other load starts on that Reloader until it ends, so
a file that keeps the loader spinning costs one thread, never one per poll.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from newsradar.config import ConfigError, load_watchlist
from newsradar.config.watchlist import Watchlist

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_POLL_INTERVAL = 30.0
DEFAULT_LOAD_TIMEOUT = 10.0


class RejectedVersion(Exception):
    """A watchlist that loads but must not be used (e.g. its inline examples fail)."""


@dataclass(frozen=True)
class WatchlistSource:
    """Where a pipeline's watchlist comes from: ``initial`` (validated at launch) and the
    file to poll for new versions (``None``: fixed, as in tests and `newsradar tag`).
    ``initial_hash`` is the SHA-256 of the bytes ``initial`` was loaded from (``None``:
    unknown, so a Reloader takes whatever valid version the file holds when it starts).
    ``load_timeout`` bounds one load of the file (seconds of wall time)."""

    initial: Watchlist
    path: str | None = None
    poll_interval: float = DEFAULT_POLL_INTERVAL
    initial_hash: str | None = None
    load_timeout: float = DEFAULT_LOAD_TIMEOUT

    @classmethod
    def from_file(cls, path: str | os.PathLike, poll_interval: float = DEFAULT_POLL_INTERVAL) -> WatchlistSource:
        """Load and validate now (ConfigError names file and field), then poll ``path``."""
        path = os.path.abspath(os.fspath(path))
        # Hash before and after loading: an edit in between would make the hash name bytes
        # other than the ones loaded, so load again until both agree.
        for _ in range(5):
            before = _content_hash(path)
            watchlist = load_watchlist(path)
            if before is not None and _content_hash(path) == before:
                return cls(watchlist, path, poll_interval, before)
        return cls(watchlist, path, poll_interval, None)

    @classmethod
    def fixed(cls, watchlist: Watchlist) -> WatchlistSource:
        return cls(watchlist, None)


def _content_hash(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return None


class Reloader(Generic[T]):
    """The compiled form of the current watchlist, rebuilt when the file changes.

    ``compile`` turns a Watchlist into what the caller needs (matchers, a lookup table).
    ``check`` may raise :class:`RejectedVersion` to refuse a version that loads.
    ``on_result(result, detail)`` is called with ``"ok"`` or ``"failed"`` for every
    attempted reload (the caller counts them). ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        source: WatchlistSource,
        compile: Callable[[Watchlist], T],
        check: Callable[[Watchlist, T], None] | None = None,
        on_result: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.source = source
        self._compile = compile
        self._check = check
        self._on_result = on_result or (lambda result, detail: None)
        self._clock = clock
        self.watchlist = source.initial
        # The launch version is what this instance holds until the file says otherwise; the
        # first poll happens now, so an instance made after an edit starts from the edit
        # (and the launch version is compiled only when the file holds nothing better).
        self._hash = source.initial_hash
        self._stat: tuple[int, int] | None = None
        self._refused_hash: str | None = None
        self._stuck: threading.Thread | None = None
        self.version = 1
        self._next_poll = clock() + source.poll_interval
        if source.path is None or not self._take_new_version():
            self.value: T = compile(source.initial)

    def _stat_now(self) -> tuple[int, int] | None:
        if not self.source.path:
            return None
        try:
            st = os.stat(self.source.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def get(self) -> T:
        """The compiled current watchlist; polls the file when the interval has passed."""
        if self.source.path is not None and self._clock() >= self._next_poll:
            self._next_poll = self._clock() + self.source.poll_interval
            self.poll()
        return self.value

    def poll(self) -> bool:
        """Check the file now; returns True when a new version was taken into use."""
        if self.source.path is None:
            return False
        return self._take_new_version()

    def _take_new_version(self) -> bool:
        if self._stuck is not None:
            if self._stuck.is_alive():
                return False  # reported when it timed out; the file is looked at again later
            self._stuck = None
        stat = self._stat_now()
        if stat == self._stat and stat is not None:
            return False
        self._stat = stat
        digest = _content_hash(self.source.path)
        if digest is not None and digest in (self._hash, self._refused_hash):
            return False
        try:
            watchlist = self._load_bounded(self.source.path)
            value = self._compile(watchlist)
            if self._check is not None:
                self._check(watchlist, value)
        except (ConfigError, RejectedVersion, ValueError) as exc:
            self._refused_hash = digest
            log.error("watchlist reload refused, keeping version %d in force: %s", self.version, exc)
            self._on_result("failed", str(exc))
            return False
        self.watchlist, self.value, self._hash = watchlist, value, digest
        self.version += 1
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
            self._stuck = worker
            raise ConfigError(path, "", f"loading did not finish within {self.source.load_timeout:g}s "
                                        "(abandoned; no other load starts until it ends)")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["watchlist"]
