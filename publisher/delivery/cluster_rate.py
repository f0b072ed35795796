"""One send rate for the cluster: ``[delivery] rate`` held across every node on PostgreSQL.

Each node's :class:`~publisher.delivery.pacing.Pacer` paces only its own
connections, so N nodes would send N times the rate.  :class:`ClusterPacer` takes its
slots from a bucket in the database instead (:func:`publisher.store.send_rates.reserve`,
a GCRA on the database's clock): a block of slots at a time, enough for
:data:`BLOCK_SECONDS` at the rate, handed out here in order, each at its moment.
A slot whose moment passed while every connection was busy goes at once, and slots
a node never used (it stopped) are lost, never saved up: the relay sees at most the
rate plus one block per node.

The window (``window_messages`` per ``window_seconds``) stays each node's own.

A mailbox provider's rate (``[delivery.providers.<name>]``, or the rate its lane adapted
to after a throttle) is shared the same way through :class:`ClusterSlots`, from the
bucket ``provider:<name>``; a throttle's pause is reserved there too, so every node
backs off from that provider.

On SQLite one process sends at a time, so its local Pacer (and a lane's
:class:`~publisher.delivery.pacing.LocalSlots`) is the whole rate: :func:`make_pacer`
and :func:`make_slots` pick.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.delivery.outcomes import retrying
from publisher.delivery.pacing import Gate, LocalSlots, Pacer, Slots
from publisher.store import send_rates

BLOCK_SECONDS = 0.2  # slots reserved at once: at most one round trip to the database per node per 0.2 s
GLOBAL = ""  # the bucket of ``[delivery] rate``; a provider's is ``provider:<name>``


def block_size(rate: float) -> int:
    """Slots reserved at once at ``rate``: :data:`BLOCK_SECONDS` worth, at least one."""
    return max(1, int(rate * BLOCK_SECONDS))


async def reserve_block(
    engine: AsyncEngine, name: str, count: int, interval: float, clock: Callable[[], float], *, pause: float = 0.0,
) -> list[float]:
    """Reserve ``count`` slots ``interval`` apart from bucket ``name``, after ``pause``
    seconds of it reserved for none; their moments on ``clock``."""
    span = count * interval
    ends_in = await retrying("reserve send slots", lambda: send_rates.reserve(engine, name, pause + span))
    end = clock() + ends_in  # the database's moment, on this node's clock (late by the reply's way back)
    return [end - (count - i) * interval for i in range(count)]


def make_pacer(engine: AsyncEngine, name: str, rate: float, window_messages: int, window_seconds: float) -> Gate:
    """The gate for bucket ``name`` (:data:`GLOBAL`, or ``provider:<name>``): shared by
    the cluster on PostgreSQL when there is a rate, else this node's :class:`Pacer`."""
    if rate <= 0 or engine.dialect.name != "postgresql":
        return Pacer(rate, window_messages, window_seconds)
    return ClusterPacer(engine, name, rate, window_messages, window_seconds)


class ClusterPacer:
    """``await pacer.wait()`` before each message: ``rate`` messages per second across
    every node using bucket ``name``, and this node's window."""

    unlimited = False

    def __init__(
        self, engine: AsyncEngine, name: str, rate: float, window_messages: int, window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._engine = engine
        self._name = name
        self._interval = 1.0 / rate
        self._block = block_size(rate)
        self._window = Pacer(0, window_messages, window_seconds, clock, sleep)
        self._clock = clock
        self._sleep = sleep
        self._slots: deque[float] = deque()  # reserved moments not yet handed out, on ``clock``
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:  # slots are handed out in order, one at a time
            if not self._slots:
                await self._reserve()
            delay = self._slots.popleft() - self._clock()
            if delay > 0:
                await self._sleep(delay)
        # After the slot: a wait for the window here loses the slot, never adds a message.
        if not self._window.unlimited:
            await self._window.wait()

    async def _reserve(self) -> None:
        self._slots.extend(await reserve_block(self._engine, self._name, self._block, self._interval, self._clock))


def make_slots(engine: AsyncEngine, provider: str, clock: Callable[[], float] = time.monotonic) -> Slots:
    """Where the lane of ``provider`` books its slots: the cluster's bucket on PostgreSQL
    (asked only while the lane has a rate), else this node."""
    if engine.dialect.name != "postgresql":
        return LocalSlots(clock)
    return ClusterSlots(engine, f"provider:{provider}", clock)


class ClusterSlots:
    """A lane's slots from bucket ``name``, shared by every node: a block at a time, at
    the lane's rate when the block is reserved; a throttle's pause is reserved in the
    bucket before the next block (the block reserved before it is void)."""

    def __init__(self, engine: AsyncEngine, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._name = name
        self._clock = clock
        self._slots: deque[float] = deque()  # reserved moments not yet booked, on ``clock``
        self._pause = 0.0  # seconds of the bucket the next reservation holds back first
        self._paused_until = 0.0  # on ``clock``: what holds back a lane without a rate
        self._lock = asyncio.Lock()

    async def book(self, rate: float | None, horizon: float) -> float:
        if rate is None:  # no rate (any more): nothing to share
            return self._paused_until - self._clock()
        async with self._lock:  # one reservation at a time; slots are booked in order
            if not self._slots:
                count = block_size(rate)
                pause, self._pause = self._pause, 0.0
                self._slots.extend(
                    await reserve_block(self._engine, self._name, count, 1.0 / rate, self._clock, pause=pause)
                )
            delay = self._slots[0] - self._clock()
            if delay <= horizon:
                self._slots.popleft()
            return delay

    def pause(self, seconds: float) -> None:
        self._slots.clear()
        self._pause = max(self._pause, seconds)
        self._paused_until = max(self._paused_until, self._clock() + seconds)
