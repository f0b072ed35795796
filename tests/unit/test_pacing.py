"""The delivery pace: a steady rate and a sliding window, on a simulated clock."""

from __future__ import annotations

import pytest

from publisher.delivery.pacing import Backoff, Pacer


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def send_times(pacer: Pacer, time: FakeTime, count: int) -> list[float]:
    times = []
    for _ in range(count):
        await pacer.wait()
        times.append(round(time.now - 1000.0, 6))
    return times


async def test_rate_spaces_messages_evenly() -> None:
    time = FakeTime()
    pacer = Pacer(rate=4, window_messages=0, window_seconds=60, clock=time.clock, sleep=time.sleep)
    assert await send_times(pacer, time, 5) == [0.0, 0.25, 0.5, 0.75, 1.0]


async def test_window_holds_messages_until_the_oldest_leaves_it() -> None:
    time = FakeTime()
    pacer = Pacer(rate=0, window_messages=3, window_seconds=10, clock=time.clock, sleep=time.sleep)
    assert await send_times(pacer, time, 7) == [0.0, 0.0, 0.0, 10.0, 10.0, 10.0, 20.0]


async def test_rate_and_window_together() -> None:
    time = FakeTime()
    pacer = Pacer(rate=10, window_messages=2, window_seconds=1, clock=time.clock, sleep=time.sleep)
    assert await send_times(pacer, time, 4) == [0.0, 0.1, 1.0, 1.1]


async def test_no_limits_never_waits() -> None:
    time = FakeTime()
    pacer = Pacer(rate=0, window_messages=0, window_seconds=1, clock=time.clock, sleep=time.sleep)
    assert pacer.unlimited
    assert await send_times(pacer, time, 3) == [0.0, 0.0, 0.0]


def test_backoff_doubles_up_to_its_limit_and_resets() -> None:
    backoff = Backoff(0.5, limit=3)
    assert [backoff.next_pause() for _ in range(4)] == [0.5, 1.0, 2.0, 3.0]
    backoff.reset()
    assert backoff.next_pause() == pytest.approx(0.5)
