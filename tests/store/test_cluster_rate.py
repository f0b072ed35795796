"""One send rate for the cluster: ``[delivery] rate`` holds across nodes sharing a PostgreSQL store.

Two nodes (two publishers, each with its own engine, data directory and delivery run)
deliver one digest at once to a server that notes when each message arrives; and the
buckets they share, reserved from directly.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from publisher import clock
from publisher.app import Publisher
from publisher.config import load_settings
from publisher.delivery.cluster_rate import BLOCK_SECONDS, GLOBAL, ClusterPacer, make_pacer
from publisher.delivery.pacing import Pacer
from publisher.store import send_rates
from publisher.store.schema import send_rates as send_rates_table
from subscribers.model import Cadence
from tests.support.delivery_sites import insert_subscribers, write_site
from tests.support.smtp_server import SmtpServer

RATE = 50  # messages per second, for the whole cluster
COUNT = 250  # five seconds at the rate; either node alone could send them in two
BLOCK = max(1, int(RATE * BLOCK_SECONDS))  # slots a node reserves at once: the burst it may add


class ArrivalServer(SmtpServer):
    """Notes the moment each message arrives (``time.monotonic``)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[float] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.arrivals.append(time.monotonic())
        return await super().handle_DATA(server, session, envelope)


def busiest_second(arrivals: list[float]) -> int:
    """The most messages that arrived within any one second."""
    ordered = sorted(arrivals)
    return max(bisect.bisect_left(ordered, start + 1.0) - i for i, start in enumerate(ordered))


@pytest.mark.postgresql_only("nodes share a rate through the PostgreSQL store (on SQLite one process sends at a time)")
@pytest.mark.usefixtures("database")
async def test_two_nodes_together_send_at_the_cluster_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with ArrivalServer() as server:
        config = write_site(tmp_path, smtp_port=server.port, rate=RATE, concurrency=4, batch_size=10)
        nodes = [
            Publisher(load_settings(config, environ={
                "PUBLISHER_SECRET_KEY": "cluster-rate-key", "PUBLISHER_STORAGE__DATA_DIR": str(tmp_path / f"data{n}"),
            }))
            for n in range(2)
        ]
        for node in nodes:
            await node.start()
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


async def test_the_cluster_paces_a_rate_on_postgresql_and_each_node_its_own_otherwise() -> None:
    postgresql = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1/unused")  # never connected
    sqlite = create_async_engine("sqlite+aiosqlite://")
    try:
        assert isinstance(make_pacer(postgresql, GLOBAL, 10, 0, 60), ClusterPacer)
        assert isinstance(make_pacer(postgresql, GLOBAL, 0, 100, 60), Pacer)  # a window alone stays the node's
        assert isinstance(make_pacer(sqlite, GLOBAL, 10, 0, 60), Pacer)  # one process sends at a time
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
