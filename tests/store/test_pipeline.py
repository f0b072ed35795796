"""Content in, digests out, through the real store and a maildir outbox."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from publisher import clock
from publisher.app import Publisher
from publisher.config import Settings
from publisher.delivery import ledger
from publisher.delivery.engine import Deliverer
from publisher.delivery.ledger import Claimant
from publisher.delivery.locks import exclusive
from publisher.delivery.model import DeliveryConfig
from publisher.delivery.service import framer
from publisher.digest.plan import PlanOptions, plan
from publisher.mail.transport import MaildirTransport, TransportPool
from publisher.store.schema import deliveries, digests, subscribers
from subscribers import service
from subscribers.model import Cadence
from tests.support.outbox import outbox_messages
from tests.support.people import add_subscriber

BACKDATED = """---
id: archive-find-1998
title: An archive find from 1998
date: 1998-03-02T10:00:00Z
tags: [history]
---

Found in a drawer, published today with its original date.
"""


async def add(publisher: Publisher, address: str, cadence: Cadence = Cadence.INSTANT) -> int:
    return (await add_subscriber(publisher.engine, address, name="Reader", cadence=cadence)).id


async def test_new_articles_reach_an_instant_subscriber_once(publisher: Publisher, settings: Settings) -> None:
    await add(publisher, "ann@example.org")
    scan = await publisher.intake.scan()
    assert len(scan.new) == 3

    first = await publisher.delivery.send([Cadence.INSTANT])
    assert len(first.planned) == 1 and first.report is not None
    assert first.report.sent == 1
    messages = outbox_messages(settings)
    assert len(messages) == 1
    text = messages[0].get_body(("plain",)).get_content()
    for article in scan.new:
        assert article.title.split(":")[0] in text

    second = await publisher.delivery.send([Cadence.INSTANT])
    assert second.planned == [] and second.report is not None and second.report.sent == 0
    assert len(outbox_messages(settings)) == 1


async def test_a_new_subscriber_gets_only_articles_seen_after_subscribing(
    publisher: Publisher, settings: Settings, site_dir: Path
) -> None:
    await publisher.intake.scan()
    await add(publisher, "late@example.org")
    nothing = await publisher.delivery.send([Cadence.INSTANT])
    assert nothing.planned == []

    (site_dir / "content" / "archive-find.md").write_text(BACKDATED, encoding="utf-8")
    await publisher.intake.scan()
    result = await publisher.delivery.send([Cadence.INSTANT])
    assert len(result.planned) == 1 and len(result.planned[0].article_seqs) == 1
    messages = outbox_messages(settings)
    assert len(messages) == 1
    assert messages[0]["Subject"] == "An archive find from 1998"


async def test_back_dated_article_goes_out_once_to_existing_subscribers(
    publisher: Publisher, settings: Settings, site_dir: Path
) -> None:
    await add(publisher, "ann@example.org")
    await publisher.intake.scan()
    await publisher.delivery.send([Cadence.INSTANT])
    (site_dir / "content" / "archive-find.md").write_text(BACKDATED, encoding="utf-8")
    await publisher.intake.scan()
    await publisher.delivery.send([Cadence.INSTANT])
    await publisher.delivery.send([Cadence.INSTANT])
    subjects = sorted(m["Subject"] for m in outbox_messages(settings))
    assert len(subjects) == 2
    assert "An archive find from 1998" in subjects


async def test_an_edit_updates_the_store_but_sends_nothing(
    publisher: Publisher, settings: Settings, site_dir: Path
) -> None:
    await add(publisher, "ann@example.org")
    await publisher.intake.scan()
    await publisher.delivery.send([Cadence.INSTANT])
    path = site_dir / "content" / "kim-russia-visit.md"
    path.write_text(path.read_text(encoding="utf-8") + "\nA correction was appended.\n", encoding="utf-8")
    scan = await publisher.intake.scan()
    assert scan.new == [] and len(scan.updated) == 1
    again = await publisher.delivery.send([Cadence.INSTANT])
    assert again.planned == []
    assert len(outbox_messages(settings)) == 1


async def test_cadences_are_planned_separately(publisher: Publisher, settings: Settings) -> None:
    await add(publisher, "now@example.org", Cadence.INSTANT)
    day = await add(publisher, "day@example.org", Cadence.DAILY)
    # Subscribed two hours ago, with this hour as their send hour: their slot has just passed.
    now = clock.now()
    async with publisher.engine.begin() as conn:
        await conn.execute(
            update(subscribers).where(subscribers.c.id == day)
            .values(send_hour=now.hour, created_at=now - timedelta(hours=2), confirmed_at=now - timedelta(hours=2))
        )
    await publisher.intake.scan()
    instant = await publisher.delivery.send([Cadence.INSTANT])
    assert [d.recipients for d in instant.planned] == [1]
    daily = await publisher.delivery.send([Cadence.DAILY])
    assert [d.recipients for d in daily.planned] == [1]
    recipients = sorted(str(m["To"]) for m in outbox_messages(settings))
    assert recipients == ["Reader <day@example.org>", "Reader <now@example.org>"]


async def test_dry_run_writes_nothing(publisher: Publisher, settings: Settings) -> None:
    await add(publisher, "ann@example.org")
    await publisher.intake.scan()
    dry = await publisher.delivery.send([Cadence.INSTANT], dry_run=True)
    assert len(dry.planned) == 1 and dry.report is None
    assert not settings.delivery.outbox.exists() or outbox_messages(settings) == []
    real = await publisher.delivery.send([Cadence.INSTANT])
    assert len(real.planned) == 1


async def test_unsubscribed_after_planning_is_never_sent(publisher: Publisher, settings: Settings) -> None:
    await add(publisher, "ann@example.org")
    await add(publisher, "bob@example.org")
    await publisher.intake.scan()
    await plan(publisher.engine, Cadence.INSTANT, clock.now(), PlanOptions(max_articles=20))
    assert await service.suppress(publisher.engine, "BOB@example.org", now=clock.now())
    report = await publisher.delivery.deliver()
    assert (report.sent, report.cancelled) == (1, 1)
    assert [str(m["To"]) for m in outbox_messages(settings)] == ["Reader <ann@example.org>"]


async def test_rows_left_sending_by_a_crash_are_resumed(publisher: Publisher, settings: Settings) -> None:
    ids = [await add(publisher, f"r{i}@example.org") for i in range(3)]
    await publisher.intake.scan()
    [digest] = await plan(publisher.engine, Cadence.INSTANT, clock.now(), PlanOptions(max_articles=20))
    async with publisher.engine.begin() as conn:  # as if the process died mid-batch
        await conn.execute(update(deliveries).values(state="sending"))
    report = await publisher.delivery.deliver()
    assert report.sent == 3 and report.finished == [digest.id]
    async with publisher.engine.connect() as conn:
        states = (await conn.execute(select(deliveries.c.subscriber_id, deliveries.c.state))).all()
        status = (await conn.execute(select(digests.c.status))).scalar_one()
    assert sorted(states) == [(i, "sent") for i in ids]
    assert status == "finished"
    assert len(outbox_messages(settings)) == 3


async def test_topics_filter_articles(publisher: Publisher, settings: Settings) -> None:
    sid = await add(publisher, "topical@example.org")
    async with publisher.engine.begin() as conn:
        await conn.execute(update(subscribers).where(subscribers.c.id == sid).values(topics=json.dumps(["russia"])))
    await publisher.intake.scan()
    result = await publisher.delivery.send([Cadence.INSTANT])
    assert len(result.planned) == 1 and len(result.planned[0].article_seqs) == 1
    [message] = outbox_messages(settings)
    assert "Kim" in message["Subject"]


async def test_broken_article_is_skipped_and_the_rest_published(publisher: Publisher, site_dir: Path) -> None:
    (site_dir / "content" / "broken.md").write_text("---\ntitle: [unclosed\n---\nbody\n", encoding="utf-8")
    scan = await publisher.intake.scan()
    assert len(scan.new) == 3
    assert "feed.rss" in publisher.shelf.docs


@pytest.mark.sqlite_only("SQLite is single-node; on PostgreSQL processes share the rows (the test below)")
async def test_only_one_process_delivers_at_a_time_on_sqlite(publisher: Publisher, settings: Settings) -> None:
    await add(publisher, "ann@example.org")
    await publisher.intake.scan()
    await plan(publisher.engine, Cadence.INSTANT, clock.now(), PlanOptions(max_articles=20))
    lock_path = settings.storage.data_dir / "delivery.lock"
    with exclusive(lock_path) as taken:  # another delivery run holds the lock
        assert taken
        blocked = await publisher.delivery.deliver()
        assert blocked.sent == 0
        async with publisher.engine.connect() as conn:
            assert (await conn.execute(select(deliveries.c.state))).scalar_one() == "pending"
    resumed = await publisher.delivery.deliver()
    assert resumed.sent == 1


@pytest.mark.postgresql_only("claims shared between processes are PostgreSQL's (SQLite is single-node)")
async def test_two_nodes_delivering_at_once_share_a_digest_and_send_each_message_once(
    publisher: Publisher, settings: Settings
) -> None:
    for i in range(60):
        await add(publisher, f"r{i:02}@example.org")
    await publisher.intake.scan()
    await plan(publisher.engine, Cadence.INSTANT, clock.now(), PlanOptions(max_articles=20))
    settings.delivery.batch_size = 5  # many claims, so the two runs interleave

    class Yielding(MaildirTransport):
        async def send(self, sender: str, recipient: str, message: bytes) -> str:
            await asyncio.sleep(0)  # let the other node's run take a turn
            return await super().send(sender, recipient, message)

    def node(name: str) -> Deliverer:
        config = DeliveryConfig.from_settings(settings)
        return Deliverer(
            publisher.engine, config, framer(settings, publisher.env, publisher.tokens), publisher.tokens,
            TransportPool(lambda: Yielding(settings.delivery.outbox), config.concurrency, name="outbox"),
            claimant=Claimant(name, timedelta(seconds=30)),
        )

    first, second = await asyncio.gather(node("a").run(), node("b").run())
    assert first.sent + second.sent == 60
    assert first.sent > 0 and second.sent > 0
    recipients = [str(m["To"]) for m in outbox_messages(settings)]
    assert sorted(recipients) == [f"Reader <r{i:02}@example.org>" for i in range(60)]
    async with publisher.engine.connect() as conn:
        states = (await conn.execute(select(deliveries.c.state, deliveries.c.claimed_by))).all()
    assert set(states) == {("sent", None)}  # recorded, and the claims released


async def test_stopping_mid_batch_finishes_the_message_in_hand_and_returns_the_rest(
    publisher: Publisher, settings: Settings
) -> None:
    for i in range(4):
        await add(publisher, f"r{i}@example.org")
    await publisher.intake.scan()
    await plan(publisher.engine, Cadence.INSTANT, clock.now(), PlanOptions(max_articles=20))

    class StopAfterFirst(MaildirTransport):
        async def send(self, sender: str, recipient: str, message: bytes) -> str:
            reply = await super().send(sender, recipient, message)
            publisher.tasks.stopping.set()  # as SIGTERM would, while this message is in flight
            return reply

    settings.delivery.concurrency = 1  # one message in flight, so "the rest" is exact
    config = DeliveryConfig.from_settings(settings)
    deliverer = Deliverer(
        publisher.engine, config, framer(settings, publisher.env, publisher.tokens), publisher.tokens,
        TransportPool(lambda: StopAfterFirst(settings.delivery.outbox), config.concurrency, name="outbox"),
        stop=publisher.tasks.stopping, claimant=publisher.delivery.claimant,
    )
    report = await deliverer.run()
    assert report.sent == 1 and report.finished == []
    async with publisher.engine.connect() as conn:
        states = sorted(s for (s,) in (await conn.execute(select(deliveries.c.state))).all())
    assert states == ["pending", "pending", "pending", "sent"]

    publisher.tasks.stopping.clear()
    rest = await publisher.delivery.deliver()
    assert rest.sent == 3 and len(rest.finished) == 1
    assert sorted(str(m["To"]) for m in outbox_messages(settings)) == [f"Reader <r{i}@example.org>" for i in range(4)]


async def test_outcomes_a_database_error_refused_are_written_again_not_sent_again(
    publisher: Publisher, settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(5):
        await add(publisher, f"r{i}@example.org")
    await publisher.intake.scan()
    await plan(publisher.engine, Cadence.INSTANT, clock.now(), PlanOptions(max_articles=20))
    real_record = ledger.record
    refused = []

    async def deadlocked_once(*args: object, **kwargs: object) -> None:
        if not refused:  # as PostgreSQL fails one of two deadlocked transactions
            refused.append(True)
            raise OperationalError("UPDATE deliveries", {}, Exception("deadlock detected"))
        await real_record(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ledger, "record", deadlocked_once)
    report = await publisher.delivery.deliver()
    assert refused and report.sent == 5 and len(report.finished) == 1
    # The refused batch holds what had been sent by then: all five, or fewer when the
    # first flush came earlier (a loaded machine); either way it is written again.
    assert re.search(r"could not record [1-5] outcomes? \(deadlock detected\)", caplog.text), caplog.text
    async with publisher.engine.connect() as conn:
        assert (await conn.execute(select(deliveries.c.state))).scalars().all() == ["sent"] * 5
    assert len(outbox_messages(settings)) == 5  # each went out once
