"""Progress of long work on stderr: a bar when stderr is a terminal, plain lines otherwise.

Guarantees: nothing is written to stdout; on a terminal one line is redrawn in place (at most
every ``redraw`` seconds) and ended with a newline by :meth:`Progress.done`; elsewhere (a
log file, a pipe, a test) a plain line is written every ``every`` seconds, so a short run
writes nothing and a long one a line per interval, plus a summary line at the end when any
interval line was written. With a ``total`` the line has a percentage and an ETA from the
rate so far; without one (work whose size is not known up front, such as a single Beam run)
it says only what was done and for how long: an ETA is never guessed.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 24


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def describe(what: str, done: int, total: int | None, elapsed: float, unit: str) -> str:
    """``what: done/total unit (pct), rate/s, ETA m:ss`` — the text of one progress line."""
    rate = done / elapsed if elapsed > 0 else 0.0
    if total:
        share = min(done / total, 1.0)
        text = f"{what}: {done:,}/{total:,} {unit} ({share:.0%}), {rate:,.0f}/s"
        if rate > 0 and done < total:
            text += f", ETA {_duration((total - done) / rate)}"
        return text
    if not done:
        return f"{what}: {_duration(elapsed)} elapsed"
    return f"{what}: {done:,} {unit}, {rate:,.0f}/s, {_duration(elapsed)} elapsed"


class Progress:
    """Count work done; report it. Use as a context manager or call :meth:`done`."""

    def __init__(self, what: str, total: int | None = None, unit: str = "items", stream: TextIO | None = None,
                 every: float = 10.0, redraw: float = 0.2, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.what = what
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = _is_tty(self.stream) if tty is None else tty
        self.every = every
        self.redraw = redraw
        self.clock = clock
        self.count = 0
        self._start = clock()
        self._last = self._start
        self._lines = 0
        self._finished = False

    def advance(self, n: int = 1) -> None:
        self.count += n
        now = self.clock()
        if now - self._last >= (self.redraw if self.tty else self.every):
            self._last = now
            self._show(now)

    def tick(self) -> None:
        """Report without counting: time passes on work that cannot be counted."""
        self.advance(0)

    def _show(self, now: float) -> None:
        text = describe(self.what, self.count, self.total, now - self._start, self.unit)
        if self.tty:
            self.stream.write("\r\x1b[K" + _bar(self.count, self.total) + text)
        else:
            self.stream.write(f"newsradar: {text}\n")
            self._lines += 1
        self.stream.flush()

    def done(self) -> None:
        if self._finished:
            return
        self._finished = True
        elapsed = self.clock() - self._start
        text = describe(self.what, self.count, self.total, elapsed, self.unit)
        if self.tty:
            self.stream.write("\r\x1b[K" + _bar(self.count, self.total) + f"{text}, done in {_duration(elapsed)}\n")
        elif self._lines:
            self.stream.write(f"newsradar: {text}, done in {_duration(elapsed)}\n")
        else:
            return
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.done()


class Ticker:
    """A :class:`Progress` without a count, ticked from a thread while a blocking call runs
    (a Beam run reports nothing until it ends)."""

    def __init__(self, progress: Progress, interval: float = 1.0):
        self.progress = progress
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress-ticker", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.progress.tick()

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.progress.done()


def _bar(done: int, total: int | None) -> str:
    if not total:
        return ""
    filled = int(BAR_WIDTH * min(done / total, 1.0))
    return "[" + "#" * filled + " " * (BAR_WIDTH - filled) + "] "


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False
