"""A plan written in batches: delivery starts on the first, a crash between two loses nobody."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from publisher import clock
from publisher.app import Publisher
from publisher.config import Settings
from publisher.delivery import ledger
from publisher.delivery.service import DeliveryService
from publisher.digest.plan import STALE_PLAN, PlanOptions, PlanProgress, plan
from publisher.mail.transport import MaildirTransport
from publisher.store.schema import deliveries, digests
from subscribers.model import Cadence
from tests.support.outbox import outbox_messages
from tests.support.people import add_subscriber

READERS = 7
OPTIONS = PlanOptions(max_articles=20, batch_size=2)  # four batches of seven readers


class Crash(Exception):
    """The planning process dies between two batches."""


async def readers(publisher: Publisher) -> list[int]:
    ids = [(await add_subscriber(publisher.engine, f"r{i}@example.org", name="R")).id for i in range(READERS)]
    await publisher.intake.scan()
    return ids


async def rows_by_subscriber(publisher: Publisher) -> Counter[int]:
    async with publisher.engine.connect() as conn:
        return Counter((await conn.execute(select(deliveries.c.subscriber_id))).scalars())


class CrashAfterFirstBatch(PlanProgress):
    async def batch_committed(self) -> None:
        raise Crash


async def killed_after_first_batch(publisher: Publisher) -> None:
    """A plan whose process died after its first batch: nobody closed its digest."""
    with pytest.raises(Crash):
        await plan(publisher.engine, Cadence.INSTANT, clock.now(), OPTIONS, progress=CrashAfterFirstBatch(turns=True))
    async with publisher.engine.begin() as conn:
        await conn.execute(update(digests).values(plan_cursor=2))


async def test_a_crash_between_batches_loses_nobody_and_plans_nobody_twice(publisher: Publisher) -> None:
    ids = await readers(publisher)
    await killed_after_first_batch(publisher)
    assert await rows_by_subscriber(publisher) == Counter(ids[:2])
    # Meanwhile, a plan leaves the subscribers to the one being written; once stale, it is closed.
    assert await plan(publisher.engine, Cadence.INSTANT, clock.now() + timedelta(seconds=1), OPTIONS) == []
    later = clock.now() + STALE_PLAN + timedelta(seconds=1)
    [_] = await plan(publisher.engine, Cadence.INSTANT, later, OPTIONS)
    assert await rows_by_subscriber(publisher) == Counter(ids)  # each exactly once, across both digests
    async with publisher.engine.connect() as conn:
        cursors = (await conn.execute(select(digests.c.id, digests.c.plan_cursor))).all()
    assert len(cursors) == 2 and all(cursor is None for _, cursor in cursors)  # the stopped plan was closed
    assert await plan(publisher.engine, Cadence.INSTANT, later + timedelta(seconds=1), OPTIONS) == []


async def test_a_digest_being_planned_is_never_finished(publisher: Publisher, settings: Settings) -> None:
    await readers(publisher)
    await killed_after_first_batch(publisher)
    report = await publisher.delivery.deliver()
    assert report.sent == 2 and report.finished == []
    [digest] = await ledger.unfinished_digests(publisher.engine)
    assert not await ledger.finish_if_done(publisher.engine, digest.id, clock.now())
    assert len(outbox_messages(settings)) == 2


async def test_the_first_message_goes_out_before_the_last_batch_is_written(
    publisher: Publisher, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await readers(publisher)
    real_options, real_send = DeliveryService._plan_options, MaildirTransport.send
    events: list[str] = []
    sent = asyncio.Event()

    def small_batches(self: DeliveryService, cadence: Cadence) -> PlanOptions:
        return dataclasses.replace(real_options(self, cadence), batch_size=2)

    async def send(self: MaildirTransport, sender: str, recipient: str, message: bytes) -> str:
        reply = await real_send(self, sender, recipient, message)
        events.append("sent")
        sent.set()
        return reply

    monkeypatch.setattr(DeliveryService, "_plan_options", small_batches)
    monkeypatch.setattr(MaildirTransport, "send", send)
    # The plan holds its third of four batches until a message is sent: a send that
    # delivered only after the whole plan would never get there (the timeout fails it).
    from publisher.digest import plan as plan_module

    real_batch_committed = plan_module.PlanProgress.batch_committed
    batches = 0

    async def batch_committed(self: plan_module.PlanProgress) -> None:
        nonlocal batches
        batches += 1
        events.append(f"batch {batches}")
        await real_batch_committed(self)
        if batches == 2:
            await asyncio.wait_for(sent.wait(), timeout=10)

    monkeypatch.setattr(plan_module.PlanProgress, "batch_committed", batch_committed)
    result = await publisher.delivery.send([Cadence.INSTANT])
    assert result.report is not None and result.report.sent == READERS
    assert events.index("sent") < events.index("batch 4")
    assert await rows_by_subscriber(publisher) == Counter(ids)
    assert len(outbox_messages(settings)) == READERS
    [summary] = await ledger.states(publisher.engine)
    assert summary.status == "finished"


@pytest.mark.sqlite_only("one writer at a time: PostgreSQL's plan and claims lock rows and need no turns")
async def test_the_delivery_writes_between_the_batches_of_a_plan(
    publisher: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite has one writer: the delivery's claims take turns with the plan's batches.

    Without turns the plan's batches, back to back, kept the write lock, and SQLite's
    busy handler let the claims in only once the whole plan was written.
    """
    count = 40
    for i in range(count):
        await add_subscriber(publisher.engine, f"t{i}@example.org", name="T")
    await publisher.intake.scan()
    settings = publisher.delivery.settings
    publisher.delivery.settings = settings.model_copy(
        update={"delivery": settings.delivery.model_copy(update={"batch_size": 1})}  # a claim per row
    )
    real_options, real_claim = DeliveryService._plan_options, ledger.claim
    real_batch_committed = PlanProgress.batch_committed
    events: list[str] = []
    claimed = asyncio.Event()

    def one_per_batch(self: DeliveryService, cadence: Cadence) -> PlanOptions:
        return dataclasses.replace(real_options(self, cadence), batch_size=1)

    async def batch_committed(self: PlanProgress) -> None:
        events.append("batch")
        await real_batch_committed(self)
        if len(events) == 1:  # the delivery has started (rendered, connected) before the plan goes on
            await asyncio.wait_for(claimed.wait(), timeout=10)

    async def claim(*args: object, **kwargs: object) -> list[object]:
        rows = await real_claim(*args, **kwargs)  # type: ignore[arg-type]
        if rows:
            events.append("claim")
            claimed.set()
        return rows  # type: ignore[return-value]

    monkeypatch.setattr(DeliveryService, "_plan_options", one_per_batch)
    monkeypatch.setattr(PlanProgress, "batch_committed", batch_committed)
    monkeypatch.setattr(ledger, "claim", claim)
    result = await publisher.delivery.send([Cadence.INSTANT])
    assert result.report is not None and result.report.sent == count
    last_batch = len(events) - events[::-1].index("batch")
    # Claims interleave with the plan's batches (without turns: none before the plan's end). Not
    # one a batch: a loaded machine's senders are slower, so the producer claims less often.
    assert events[:last_batch].count("claim") >= count // 4, " ".join(events)
