"""A simulated clock for pacing tests: time moves only when someone sleeps."""

from __future__ import annotations


class FakeTime:
    """A clock that only moves when someone sleeps (``clock`` and ``sleep`` as the pacers take them)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
