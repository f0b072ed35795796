"""How fast delivery may go: a steady rate, a sliding window, and backing off when throttled.

Relays and receiving providers publish limits ("N messages per second", "M per
hour") and enforce the rest by answering 421/45x.  :class:`Pacer` keeps every
connection of a delivery run under the configured rate and window together, and
:class:`Backoff` slows a connection down while the far side keeps throttling it.
Several nodes on PostgreSQL share one rate through
:class:`publisher.delivery.cluster_rate.ClusterPacer`, a :class:`Gate` as :class:`Pacer` is.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol


class Gate(Protocol):
    """What senders wait on before each message: this node's :class:`Pacer`, or the cluster's."""

    @property
    def unlimited(self) -> bool:
        """Whether it never waits (senders skip the call)."""

    async def wait(self) -> None:
        """Return when the next message may go."""


class Pacer:
    """A shared gate: ``await pacer.wait()`` before each message.

    ``rate`` messages per second (0: no limit) as evenly spaced slots, and at most
    ``window_messages`` in any ``window_seconds`` (0 messages: no window).  Memory is
    one timestamp per message in the window.
    """

    def __init__(
        self, rate: float, window_messages: int, window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._window_messages = window_messages
        self._window_seconds = window_seconds
        self._clock = clock
        self._sleep = sleep
        self._next_slot = 0.0
        self._sent: deque[float] = deque()
        self._lock = asyncio.Lock()

    @property
    def unlimited(self) -> bool:
        return not self._interval and not self._window_messages

    async def wait(self) -> None:
        if self.unlimited:
            return
        async with self._lock:  # slots are handed out in order, one at a time
            while (delay := self._delay()) > 0:
                await self._sleep(delay)
            now = self._clock()
            if self._interval:
                self._next_slot = max(self._next_slot, now) + self._interval
            if self._window_messages:
                self._sent.append(now)

    def _delay(self) -> float:
        now = self._clock()
        delay = self._next_slot - now
        if self._window_messages:
            while self._sent and self._sent[0] <= now - self._window_seconds:
                self._sent.popleft()
            if len(self._sent) >= self._window_messages:
                delay = max(delay, self._sent[0] + self._window_seconds - now)
        return delay


class Backoff:
    """A pause that doubles with each throttle (or refusal) in a row, up to a limit; reset by a success."""

    def __init__(self, base: float, limit: float = 60.0) -> None:
        self._base = base
        self._limit = limit
        self._streak = 0

    def reset(self) -> None:
        self._streak = 0

    def next_pause(self) -> float:
        """Count a throttle (or a refusal); the seconds to wait before trying again."""
        self._streak += 1
        return min(self._limit, self._base * 2 ** (self._streak - 1))
