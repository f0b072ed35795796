"""A delivery run's connections: the probe, at most ``size`` at once, every one closed (no server)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from publisher.mail.transport import DeliveryError, Transport, TransportPool


class Fake(Transport):
    """A transport that counts its opens and closes; the first ``refusals`` opens fail."""

    def __init__(self, refusals: int = 0) -> None:
        self.refusals, self.opened, self.closed = refusals, 0, 0

    async def open(self) -> None:
        if self.refusals:
            self.refusals -= 1
            raise DeliveryError("Connection refused")
        self.opened += 1

    async def send(self, sender: str, recipient: str, message: bytes) -> str:
        return "250 ok"

    async def close(self) -> None:
        self.closed += 1


def factory(refusals: int = 0) -> tuple[list[Fake], TransportPool]:
    made: list[Fake] = []
    left = itertools.count(refusals, -1)

    def make() -> Fake:
        made.append(Fake(1 if next(left) > 0 else 0))
        return made[-1]

    return made, TransportPool(make, 2, name="test relay")


async def test_the_probe_is_the_first_connection_handed_out_and_the_rest_connect_when_used() -> None:
    made, pool = factory()
    assert await pool.open(asyncio.Event())
    first, second = pool.take(), pool.take()
    assert first is made[0] and first.opened == 1  # type: ignore[attr-defined]
    assert second is made[1] and second.opened == 0  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError):
        pool.take()  # never more than size at once
    await pool.release(first)
    assert made[0].closed == 1
    third = pool.take()  # a released place is free again, with a new connection
    await pool.close()
    assert [t.closed for t in made] == [1, 1, 1] and third is made[2]


async def test_an_unreachable_relay_raises_without_waiting() -> None:
    made, pool = factory(refusals=1)
    with pytest.raises(DeliveryError, match="Connection refused"):
        await pool.open(asyncio.Event())
    assert len(made) == 1


async def test_waiting_tries_again_until_the_relay_answers() -> None:
    made, pool = factory(refusals=2)
    assert await pool.open(asyncio.Event(), pauses=lambda: 0.001)
    assert len(made) == 3 and pool.take() is made[2]
    await pool.close()


async def test_waiting_ends_when_the_service_stops() -> None:
    made, pool = factory(refusals=1000)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stop.set)
    assert not await pool.open(stop, pauses=lambda: 0.01)
    async with pool:
        pass
    assert all(t.closed == 0 and t.opened == 0 for t in made)  # none ever connected


async def test_an_unused_probe_is_closed_with_the_pool() -> None:
    made, pool = factory()
    async with pool:
        assert await pool.open(asyncio.Event())
    assert made[0].opened == made[0].closed == 1
