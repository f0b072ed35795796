"""One send rate for the cluster: ``[delivery] rate`` holds across nodes sharing a PostgreSQL store.

Two nodes (two publishers, each with its own engine, data directory and delivery run)
deliver one digest at once to a server that notes when each message arrives, at the
cluster's rate and at a mailbox provider's; the buckets they share, reserved from
directly; and a lane's cluster slots over a bucket on a simulated clock.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from publisher import clock
from publisher.app import Publisher
from publisher.config import load_settings
from publisher.delivery import cluster_rate
from publisher.delivery.cluster_rate import BLOCK_SECONDS, GLOBAL, ClusterPacer, ClusterSlots, make_pacer, make_slots
from publisher.delivery.pacing import Lane, LocalSlots, Pacer
from publisher.store import send_rates
from publisher.store.schema import send_rates as send_rates_table
from subscribers.model import Cadence
from tests.support.delivery_sites import insert_subscribers, write_site
from tests.support.fake_time import FakeTime
from tests.support.smtp_server import SmtpServer

RATE = 50  # messages per second, for the whole cluster
COUNT = 250  # five seconds at the rate; either node alone could send them in two
BLOCK = max(1, int(RATE * BLOCK_SECONDS))  # slots a node reserves at once: the burst it may add


class ArrivalServer(SmtpServer):
    """Notes the moment each message arrives (``time.monotonic``), and its recipients' domain."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[float] = []
        self.domains: list[str] = []  # of each arrival's first recipient

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.arrivals.append(time.monotonic())
        self.domains.append(envelope.rcpt_tos[0].rpartition("@")[2])
        return await super().handle_DATA(server, session, envelope)

    def arrivals_at(self, domain: str, *, but: bool = False) -> list[float]:
        """The arrival times of messages to ``domain`` (with ``but``: to any other)."""
        return [at for at, to in zip(self.arrivals, self.domains, strict=True) if (to == domain) != but]


def busiest_second(arrivals: list[float]) -> int:
    """The most messages that arrived within any one second."""
    ordered = sorted(arrivals)
    return max(bisect.bisect_left(ordered, start + 1.0) - i for i, start in enumerate(ordered))


@pytest.mark.postgresql_only("nodes share a rate through the PostgreSQL store (on SQLite one process sends at a time)")
@pytest.mark.usefixtures("database")
async def test_two_nodes_together_send_at_the_cluster_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with ArrivalServer() as server:
        config = write_site(tmp_path, smtp_port=server.port, rate=RATE, concurrency=4, batch_size=10)
        nodes = await start_nodes(tmp_path, config, 2)
        try:
            await insert_subscribers(nodes[0].engine, [f"r{i:03d}@example.org" for i in range(COUNT)])
            await nodes[0].intake.scan()
            assert len(await nodes[0].delivery.plan([Cadence.INSTANT])) == 1
            reports = await asyncio.gather(*(node.delivery.deliver() for node in nodes))
        finally:
            for node in nodes:
                await node.close()

    seconds, busiest = max(server.arrivals) - min(server.arrivals), busiest_second(server.arrivals)
    with capsys.disabled():
        print(f"\n[cluster rate] 2 nodes at {RATE}/s: {COUNT} messages in {seconds:.2f} s "
              f"({(COUNT - 1) / seconds:.1f}/s), at most {busiest} in one second, shares {[r.sent for r in reports]}")
    assert [r.sent > 0 for r in reports] == [True, True]  # both nodes sent
    assert sum(r.sent for r in reports) == len(server.messages) == COUNT
    assert busiest <= RATE + 2 * BLOCK
    assert (COUNT - 1) / seconds <= RATE * 1.1  # intervals between arrivals


async def start_nodes(tmp_path: Path, config: Path, count: int) -> list[Publisher]:
    nodes = [
        Publisher(load_settings(config, environ={
            "PUBLISHER_SECRET_KEY": "cluster-rate-key", "PUBLISHER_STORAGE__DATA_DIR": str(tmp_path / f"data{n}"),
        }))
        for n in range(count)
    ]
    for node in nodes:
        await node.start()
    return nodes


GOOGLE_RATE = 20  # messages per second to gmail.com, for the whole cluster
GOOGLE_COUNT = 120  # six seconds at its rate
GOOGLE_BLOCK = max(1, int(GOOGLE_RATE * BLOCK_SECONDS))


@pytest.mark.postgresql_only("nodes share a provider's rate through the PostgreSQL store")
@pytest.mark.usefixtures("database")
async def test_two_nodes_together_send_to_a_provider_at_its_cluster_rate_and_to_others_at_full_speed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    google = [f"g{i:03d}@gmail.com" for i in range(GOOGLE_COUNT)]
    others = [f"o{i:03d}@example.org" for i in range(GOOGLE_COUNT)]
    with ArrivalServer() as server:
        config = write_site(
            tmp_path, smtp_port=server.port, concurrency=4, batch_size=10,
            extra=f"[delivery.providers.google]\nrate = {GOOGLE_RATE}\n",
        )
        nodes = await start_nodes(tmp_path, config, 2)
        try:
            # Interleaved, so each batch holds both providers' recipients.
            await insert_subscribers(nodes[0].engine, [a for pair in zip(google, others, strict=True) for a in pair])
            await nodes[0].intake.scan()
            assert len(await nodes[0].delivery.plan([Cadence.INSTANT])) == 1
            reports = await asyncio.gather(*(node.delivery.deliver(wait=True) for node in nodes))
        finally:
            for node in nodes:
                await node.close()

    to_google, to_others = server.arrivals_at("gmail.com"), server.arrivals_at("gmail.com", but=True)
    seconds = max(to_google) - min(to_google)
    others_seconds = max(to_others) - min(server.arrivals)
    with capsys.disabled():
        print(f"\n[provider rate] 2 nodes, google at {GOOGLE_RATE}/s: {len(to_google)} gmail.com messages in "
              f"{seconds:.2f} s ({(len(to_google) - 1) / seconds:.1f}/s), at most {busiest_second(to_google)} in one "
              f"second; {len(to_others)} others in {others_seconds:.2f} s; shares {[r.sent for r in reports]}")
    assert sorted(to for m in server.messages for to in m.rcpt_tos) == sorted(google + others)  # once each
    assert sum(r.sent for r in reports) == len(server.messages)
    assert busiest_second(to_google) <= GOOGLE_RATE + 2 * GOOGLE_BLOCK
    assert (len(to_google) - 1) / seconds <= GOOGLE_RATE * 1.1
    assert others_seconds < seconds / 2  # the others are not held to google's rate


class FakeBucket:
    """``send_rates.reserve`` over one process's buckets, on a simulated clock."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self.next_slot: dict[str, float] = {}
        self.spans: list[float] = []  # every span reserved, in order

    async def reserve(self, engine: object, name: str, span: float) -> float:
        self.spans.append(span)
        self.next_slot[name] = max(self.next_slot.get(name, 0.0), self._now()) + span
        return self.next_slot[name] - self._now()


async def test_cluster_slots_come_in_blocks_at_the_lane_rate_and_a_throttle_pushes_the_bucket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    time_ = FakeTime()
    bucket = FakeBucket(time_.clock)
    monkeypatch.setattr(cluster_rate.send_rates, "reserve", bucket.reserve)
    postgresql = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1/unused")  # never connected
    try:
        nodes = [ClusterSlots(postgresql, "provider:google", time_.clock) for _ in range(2)]
        # Blocks of 20/s * 0.2 s = 4 slots, 0.05 s apart; the nodes' blocks follow one another.
        assert [await nodes[0].book(20, horizon=1.0) for _ in range(4)] == pytest.approx([0.0, 0.05, 0.1, 0.15])
        assert [await nodes[1].book(20, horizon=1.0) for _ in range(4)] == pytest.approx([0.2, 0.25, 0.3, 0.35])
        assert bucket.spans == pytest.approx([0.2, 0.2])
        assert await nodes[0].book(20, horizon=0.3) == pytest.approx(0.4)  # reserved, too far: kept for later
        assert await nodes[0].book(20, horizon=0.4) == pytest.approx(0.4)
        assert len(bucket.spans) == 3
        # A throttle: the node's block is void, and its next reservation holds the bucket back by the pause.
        nodes[0].pause(2.0)
        assert await nodes[0].book(10, horizon=5.0) == pytest.approx(0.6 + 2.0)  # after what the bucket gave out
        assert bucket.spans[-1] == pytest.approx(2.0 + 0.2)  # the pause, then 2 slots at 10/s
        assert await nodes[1].book(20, horizon=5.0) == pytest.approx(2.8)  # the other node backs off too
        assert await nodes[0].book(None, horizon=0.0) == pytest.approx(2.0)  # no rate: only the pause holds it
        assert len(bucket.spans) == 5  # ... and no reservation
    finally:
        await postgresql.dispose()


async def test_a_lane_takes_its_slots_from_the_cluster_only_while_it_has_a_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    time_ = FakeTime()
    bucket = FakeBucket(time_.clock)
    monkeypatch.setattr(cluster_rate.send_rates, "reserve", bucket.reserve)
    postgresql = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1/unused")  # never connected
    try:
        lanes = [
            Lane(name, rate, 0, pause_base=1.0, slots=ClusterSlots(postgresql, f"provider:{name}", time_.clock),
                 clock=time_.clock, sleep=time_.sleep)
            for name, rate in (("google", 10.0), ("other", 0.0))
        ]
        for _ in range(10):
            await lanes[1].take()
            time_.now += 0.01  # 100 a second, unlimited
        assert bucket.spans == []  # a lane without a rate never asks the database
        start = time_.now
        for _ in range(6):
            assert await lanes[0].take() == 0.0
        assert time_.now - start == pytest.approx(0.5)  # 10/s
        assert bucket.spans == pytest.approx([0.2, 0.2, 0.2])  # blocks of 2
        lanes[1].throttled(lanes[1].epoch)  # now it has a rate (half the 100/s it went at): shared
        assert await lanes[1].take(horizon=5.0) == 0.0
        assert "provider:other" in bucket.next_slot
    finally:
        await postgresql.dispose()


async def test_the_cluster_paces_a_rate_on_postgresql_and_each_node_its_own_otherwise() -> None:
    postgresql = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1/unused")  # never connected
    sqlite = create_async_engine("sqlite+aiosqlite://")
    try:
        assert isinstance(make_pacer(postgresql, GLOBAL, 10, 0, 60), ClusterPacer)
        assert isinstance(make_pacer(postgresql, GLOBAL, 0, 100, 60), Pacer)  # a window alone stays the node's
        assert isinstance(make_pacer(sqlite, GLOBAL, 10, 0, 60), Pacer)  # one process sends at a time
        assert isinstance(make_slots(postgresql, "google"), ClusterSlots)
        assert isinstance(make_slots(sqlite, "google"), LocalSlots)
    finally:
        await postgresql.dispose()
        await sqlite.dispose()


@pytest.mark.postgresql_only("the cluster's buckets are PostgreSQL's")
async def test_reservations_follow_one_another_and_an_idle_bucket_saves_nothing_up(publisher: Publisher) -> None:
    google = "provider:google"
    first = await send_rates.reserve(publisher.engine, google, 0.5)
    second = await send_rates.reserve(publisher.engine, google, 0.5)
    assert 0.3 < first <= 0.5 and 0.8 < second <= 1.0  # the second span starts where the first ends
    assert 0.3 < await send_rates.reserve(publisher.engine, GLOBAL, 0.5) <= 0.5  # another bucket, apart
    async with publisher.engine.begin() as conn:  # an hour idle
        await conn.execute(update(send_rates_table).values(next_slot=clock.now() - timedelta(hours=1)))
    assert 0.3 < await send_rates.reserve(publisher.engine, google, 0.5) <= 0.5  # from now: nothing saved up
