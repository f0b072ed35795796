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

On SQLite one process sends at a time, so its local Pacer is the whole rate:
:func:`make_pacer` picks.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.delivery.outcomes import retrying
from publisher.delivery.pacing import Gate, Pacer
from publisher.store import send_rates

BLOCK_SECONDS = 0.2  # slots reserved at once: at most one round trip to the database per node per 0.2 s
GLOBAL = ""  # the bucket of ``[delivery] rate``; a provider's is ``provider:<name>``


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
        self._block = max(1, int(rate * BLOCK_SECONDS))
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
        span = self._block * self._interval
        ends_in = await retrying(
            "reserve send slots", lambda: send_rates.reserve(self._engine, self._name, span)
        )
        end = self._clock() + ends_in  # the database's moment, on this node's clock (late by the reply's way back)
        self._slots.extend(end - (self._block - i) * self._interval for i in range(self._block))
