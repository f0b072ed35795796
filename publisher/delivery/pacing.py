"""How fast delivery may go: a steady rate, a sliding window, and backing off when throttled.

Relays and receiving providers publish limits ("N messages per second", "M per
hour") and enforce the rest by answering 421/45x.  :class:`Pacer` keeps every
connection of a delivery run under the configured rate and window together;
:class:`Lane` keeps the messages to one mailbox provider under that provider's own
limits, and slows them alone when the provider throttles; :class:`Backoff` slows a
connection down while the relay keeps refusing it.  Several nodes on PostgreSQL share
one rate through :class:`publisher.delivery.cluster_rate.ClusterPacer`, a :class:`Gate`
as :class:`Pacer` is, and a provider's rate through its
:class:`~publisher.delivery.cluster_rate.ClusterSlots`, a :class:`Slots` as
:class:`LocalSlots` is.
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


# A sender waits at most this long for a provider's slot (or a place among its messages in
# flight); a message whose provider is further off waits deferred, its connection goes on.
HORIZON = 0.25
MIN_RATE = 1.0  # messages per second: a throttling provider's rate is never cut below it
RECOVERY = 20  # successes in a row that win back the rate a throttle cut (a step each)
RECENT = 32  # send times kept to know the rate an unlimited provider was sent at


class Slots(Protocol):
    """Where a :class:`Lane` books its slots: on this node (:class:`LocalSlots`), or from
    the cluster's bucket for the provider on PostgreSQL."""

    async def book(self, rate: float | None, horizon: float) -> float:
        """The seconds until the next slot at ``rate`` messages per second (None: no rate,
        only a pause holds it back), negative if its moment passed; booked if they are
        at most ``horizon``, else left for a later call."""

    def pause(self, seconds: float) -> None:
        """No slot sooner than ``seconds`` from now (a throttle's pause)."""


class LocalSlots:
    """A lane's slots booked on this node alone: evenly spaced from the last one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next_slot = 0.0

    async def book(self, rate: float | None, horizon: float) -> float:
        now = self._clock()
        delay = self._next_slot - now
        if delay <= horizon and rate is not None:
            self._next_slot = max(self._next_slot, now) + 1.0 / rate
        return delay

    def pause(self, seconds: float) -> None:
        self._next_slot = max(self._next_slot, self._clock() + seconds)


class Lane:
    """One mailbox provider's messages in a delivery run: its own ``rate`` (messages per
    second) and ``concurrency`` (in flight at once), 0 for none, and an adaptive rate.

    A throttle reply halves the provider's rate (AIMD; an unlimited provider starts from
    the rate it was being sent at), never below ``MIN_RATE``, and pushes its next slot out
    by a pause that doubles with each throttle in a row (``pause_base``): once for the
    messages that were in flight together (their :attr:`epoch`), not once each, or a few
    connections' worth of replies to one burst would cut it to the floor.  Each success then
    adds back a ``RECOVERY``-th of the rate before the cut, up to the configured rate (or
    back to unlimited).  Other providers' lanes are untouched: a provider asking to slow
    down slows alone.  Its slots come from ``slots`` (by default this node's own; the
    cluster's on PostgreSQL, :func:`publisher.delivery.cluster_rate.make_slots`).
    """

    def __init__(
        self, name: str, rate: float, concurrency: int, *, pause_base: float,
        slots: Slots | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name = name
        self._ceiling = rate if rate > 0 else None  # None: no rate of its own
        self._rate = self._ceiling  # the rate now: the ceiling, or less after throttles
        self._step = 0.0  # what each success adds back
        self._places = asyncio.Semaphore(concurrency) if concurrency > 0 else None
        self._pause = Backoff(pause_base)
        self._slots = slots if slots is not None else LocalSlots(clock)
        self._clock = clock
        self._sleep = sleep
        self._started: deque[float] = deque(maxlen=RECENT)
        self.throttled_in_a_row = 0
        self.blocked = False  # it kept throttling: its messages wait for the next pass
        self.epoch = 0  # cuts so far: a message taken in an earlier epoch was already answered for

    @property
    def rate(self) -> float | None:
        """Messages per second it may get now; None: no limit."""
        return self._rate

    async def take(self, horizon: float = HORIZON) -> float:
        """Wait for the provider's next slot and a place among its messages in flight, if
        they come within ``horizon`` seconds: 0.0, and :meth:`release` gives the place back
        after the message, which was sent in the current :attr:`epoch`.  Else nothing is
        taken: the seconds until the slot."""
        if self._places is not None:
            try:
                async with asyncio.timeout(horizon):
                    await self._places.acquire()
            except TimeoutError:
                return horizon
        while True:
            try:
                delay = await self._slots.book(self._rate, horizon)
            except BaseException:
                self.release()
                raise
            if delay > horizon:
                self.release()
                return delay
            epoch = self.epoch
            self._started.append(self._clock() + max(0.0, delay))
            if delay > 0:
                await self._sleep(delay)
            if self.epoch == epoch:
                return 0.0
            # The provider throttled while this one waited: its slot is void, take one anew.

    def release(self) -> None:
        """A message taken with :meth:`take` is done (whatever its outcome)."""
        if self._places is not None:
            self._places.release()

    def succeeded(self) -> None:
        """The provider took a message: the rate grows back by a step."""
        self.throttled_in_a_row = 0
        self._pause.reset()
        if self._rate is None or self._rate == self._ceiling:
            return
        self._rate += self._step
        if self._ceiling is not None:
            self._rate = min(self._rate, self._ceiling)
        elif self._rate >= self._step * RECOVERY:
            self._rate = None  # back at the rate it was throttled from: unlimited again

    def throttled(self, epoch: int) -> int:
        """The provider asked to slow down about a message taken in ``epoch``: the rate halves
        and the next slot waits a pause, unless that epoch was cut already; how many throttles
        in a row that makes."""
        self.throttled_in_a_row += 1
        if epoch != self.epoch:
            return self.throttled_in_a_row
        self.epoch += 1
        before = self._rate if self._rate is not None else self._sent_rate()
        self._rate = max(MIN_RATE, before / 2)
        self._step = max(MIN_RATE, before) / RECOVERY
        self._slots.pause(self._pause.next_pause())
        return self.throttled_in_a_row

    def _sent_rate(self) -> float:
        """The rate of its last few messages (an unlimited lane's, when first throttled)."""
        started = self._started
        span = started[-1] - started[0] if len(started) > 1 else 0.0
        return (len(started) - 1) / span if span > 0 else MIN_RATE * 2


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
