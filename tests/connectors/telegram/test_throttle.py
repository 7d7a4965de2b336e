"""The request pacer shared by Telegram sources, with an injected clock."""

import asyncio

from connectors.telegram.throttle import RequestPacer


class FakeTime:
    def __init__(self):
        self.now = 1000.0
        self.slept = []

    def clock(self):
        return self.now

    async def sleep(self, seconds):
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_requests_are_spaced_across_callers():
    t = FakeTime()
    pacer = RequestPacer(2.0, clock=t.clock, sleep=t.sleep)

    async def go():
        # Five channels asking at once still reach the service two seconds apart.
        return await asyncio.gather(*(pacer.wait() for _ in range(5)))

    waited = asyncio.run(go())
    assert waited == [0.0, 2.0, 2.0, 2.0, 2.0]
    assert t.now == 1008.0


def test_idle_time_is_not_banked():
    t = FakeTime()
    pacer = RequestPacer(2.0, clock=t.clock, sleep=t.sleep)
    asyncio.run(pacer.wait())
    t.now += 60
    assert asyncio.run(pacer.wait()) == 0.0
    assert asyncio.run(pacer.wait()) == 2.0


def test_pause_holds_everyone_and_is_never_shortened():
    t = FakeTime()
    pacer = RequestPacer(0.0, clock=t.clock, sleep=t.sleep)
    pacer.pause(30)
    pacer.pause(5)
    assert pacer.paused_for == 30
    assert asyncio.run(pacer.wait()) == 30
    assert pacer.paused_for == 0 and asyncio.run(pacer.wait()) == 0.0
