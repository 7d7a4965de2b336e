"""Politeness shared by every source that talks to one Telegram service.

t.me rate-limits by client address, not by channel: twenty channels polled at once look like
one impatient client. One :class:`RequestPacer` per service (t.me pages, the Bot API) is
shared by all its sources. Guarantees: requests through one pacer start at least
``min_interval`` seconds apart (in start order), and after :meth:`pause` none starts before
the pause ends (a 429's Retry-After from one channel holds back every channel).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class RequestPacer:
    def __init__(
        self,
        min_interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.min_interval = max(0.0, float(min_interval))
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> float:
        """Wait for this request's turn; returns the seconds waited."""
        async with self._lock:
            now = self._clock()
            start = max(now, self._next, self._paused_until)
            if start > now:
                await self._sleep(start - now)
            self._next = start + self.min_interval
            return start - now

    def pause(self, seconds: float) -> None:
        """Hold every request back for ``seconds`` from now (never shortens a longer pause)."""
        self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._clock())
