"""The dashboard's aggregates (publisher.store.aggregates) equal a full recount after any mix of writes.

A seeded random mix of what changes subscribers and the ledger (sign-ups, confirmations,
departures, bounces, complaints, erasures, an import, the purge, a digest planned and
delivered to an SMTP server that accepts, defers and refuses) goes through the real
services on both backends; after it, the counts the triggers kept must be those
``publisher db rebuild-aggregates`` computes from the base tables.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher import clock
from publisher.admin import figures
from publisher.app import Publisher
from publisher.cli import main
from publisher.config import load_settings
from publisher.delivery import ledger
from publisher.store import aggregates
from publisher.store.schema import (
    deliveries,
    digest_counts,
    digest_domain_counts,
    domain_counts,
    message_counts,
    subscriber_counts,
    subscribers,
)
from subscribers import service
from subscribers.importer import parse_csv
from subscribers.model import Cadence, Preferences, Source, Status
from tests.support.delivery_sites import write_site
from tests.support.smtp_faults import FaultServer

DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "example.org", "corp.example")

Counts = dict[str, Counter[tuple[object, ...]]]


async def kept_counts(engine: AsyncEngine) -> Counts:
    """Every aggregate row with a count, by table (rows at 0 are equal to none)."""
    found: Counts = {}
    async with engine.connect() as conn:
        for table in (subscriber_counts, message_counts, digest_counts, digest_domain_counts, domain_counts):
            rows = await conn.execute(select(table))
            found[table.name] = Counter({tuple(row[:-1]): row[-1] for row in rows if row[-1]})
    return found


async def recounted(engine: AsyncEngine) -> Counts:
    """The counts from the base tables, as the rebuild makes them (then rolled back)."""
    async with engine.connect() as conn:
        trans = await conn.begin()
        await conn.run_sync(aggregates.rebuild)
        found: Counts = {}
        for table in (subscriber_counts, message_counts, digest_counts, digest_domain_counts, domain_counts):
            rows = await conn.execute(select(table))
            found[table.name] = Counter({tuple(row[:-1]): row[-1] for row in rows if row[-1]})
        await trans.rollback()
    return found


async def random_mix(publisher: Publisher, rng: random.Random) -> list[int]:
    """Sign-ups, confirmations, departures, bounces, complaints, erasures, an import and a
    purge; the ids of the active subscribers left."""
    engine, now = publisher.engine, clock.now()
    people: list[int] = []
    for i in range(60):
        address = f"p{i}@{rng.choice(DOMAINS)}"
        days_ago = rng.randrange(0, 40)
        subscriber, _ = await service.sign_up(engine, address, name="", prefs=Preferences(cadence=Cadence.INSTANT),
                                              source=Source.WEB, now=now - timedelta(days=days_ago, hours=rng.random()))
        people.append(subscriber.id)
    for subscriber_id in people:
        if rng.random() < 0.8:
            await service.confirm(engine, subscriber_id, now=now - timedelta(hours=rng.randrange(0, 48)))
    csv_rows = "email,cadence\n" + "".join(f"imported{i}@{rng.choice(DOMAINS)},instant\n" for i in range(40))
    parsed = parse_csv(csv_rows, known_topics=[], default_timezone="UTC", default_cadence=Cadence.INSTANT)
    await publisher.subscribers.import_rows(parsed)
    async with engine.connect() as conn:
        everyone = list((await conn.execute(select(subscribers.c.id, subscribers.c.email))).all())
    rng.shuffle(everyone)
    for subscriber_id, email in everyone[:25]:
        match rng.randrange(5):
            case 0:
                await service.leave(engine, subscriber_id, now=now - timedelta(hours=rng.randrange(0, 30)))
            case 1:
                await publisher.subscribers.record_bounce(email, "hard")
            case 2:
                await publisher.subscribers.record_bounce(email, "complaint")
            case 3:
                await service.erase(engine, subscriber_id, now=now)
            case _:
                await publisher.subscribers.record_bounce(email, "soft")
    await service.purge_pending(engine, older_than=now - timedelta(days=30))
    async with engine.connect() as conn:
        return list((await conn.execute(
            select(subscribers.c.id).where(subscribers.c.status == Status.ACTIVE)
        )).scalars())


async def test_the_aggregates_equal_a_full_recount(tmp_path: Path, database: object) -> None:
    rng = random.Random(21)
    with FaultServer() as server:
        config = write_site(tmp_path, smtp_port=server.port, smtp="timeout = 2", retry_base=3600,
                            max_attempts=5, max_error_ratio=1.0)
        publisher = Publisher(load_settings(config, environ={}))
        await publisher.start()
        try:
            active = await random_mix(publisher, rng)
            async with publisher.engine.connect() as conn:
                emails = dict((await conn.execute(
                    select(subscribers.c.id, subscribers.c.email).where(subscribers.c.id.in_(active))
                )).all())
            addresses = sorted(emails.values())
            for address in addresses[::5]:
                server.fail(address, "550 5.1.1 No such user")
            for address in addresses[1::5]:
                server.fail(address, "451 4.3.0 Try later", times=100)
            await publisher.intake.scan()
            await publisher.delivery.send([Cadence.INSTANT])
            # After the digest: more departures, and an erasure of a reader with ledger rows.
            for subscriber_id in active[:3]:
                await service.leave(publisher.engine, subscriber_id, now=clock.now())
            await publisher.subscribers.record_bounce(emails[active[3]], "complaint")
            await service.erase(publisher.engine, active[4], now=clock.now())
            kept, recount = await kept_counts(publisher.engine), await recounted(publisher.engine)
            async with publisher.engine.connect() as conn:
                states = Counter((await conn.execute(select(deliveries.c.state))).scalars())
                statuses = Counter((await conn.execute(select(subscribers.c.status))).scalars())
            seen = await figures.overview(publisher.engine, publisher.providers, publisher.settings, clock.now())
            scanned = await scanned_tallies(publisher)
            totals = await publisher.delivery.totals()  # `publisher status`: the unfinished digests' messages
            later = clock.now() + timedelta(hours=2)  # the deferred rows' retries are due by then
            due = await ledger.due_count(publisher.engine, later)  # the queue depth gauge
            async with publisher.engine.connect() as conn:
                retries = (await conn.execute(select(deliveries.c.retry_at).where(deliveries.c.state == "deferred"))).scalars()
                due_retries = sum(1 for retry in retries if retry is not None and retry <= later)
        finally:
            await publisher.close()
    assert {"sent", "deferred", "failed"} <= set(states), states  # the mix did reach every outcome
    assert sum(n for (_hour, state), n in kept["message_counts"].items() if state == "sent") == states["sent"]
    assert {kind for (_hour, _domain, kind) in kept["domain_counts"]} == {"sent", "complained", "bounced"}
    assert kept == recount
    # The dashboard's figures, read from the aggregates, are those of the base tables.
    assert seen.subscribers.by_status == statuses
    assert seen.queue.by_state == {state: states[state] for state in ("pending", "sending", "deferred")
                                   if states[state]}
    [digest] = seen.queue.digests
    assert digest.by_state == states and totals == states
    assert due_retries and due == states["pending"] + states["sending"] + due_retries
    assert sum(counts.get("sent", 0) for _hour, counts in seen.messages) == states["sent"]
    assert len(seen.messages) == 48 and len(seen.subscribers.days) == 30
    rates = {rate.provider: (rate.sent, rate.complaints, rate.hard_bounces) for rate in seen.rates.providers}
    assert rates == scanned and any(bounces for _sent, _complaints, bounces in rates.values())


async def scanned_tallies(publisher: Publisher) -> dict[str, tuple[int, int, int]]:
    """Per provider over the last 7 days, by scanning the base tables: (sent, complaints, hard bounces)."""
    since = clock.now() - timedelta(days=7)
    found: dict[str, list[int]] = {}
    async with publisher.engine.connect() as conn:
        sent = await conn.execute(
            select(subscribers.c.email).join(deliveries, deliveries.c.subscriber_id == subscribers.c.id)
            .where(deliveries.c.state == "sent", deliveries.c.updated_at >= since)
        )
        for (email,) in sent:
            found.setdefault(publisher.providers.of(email), [0, 0, 0])[0] += 1
        left = await conn.execute(select(subscribers.c.email, subscribers.c.status)
                                  .where(subscribers.c.status.in_(("complained", "bounced")),
                                         subscribers.c.unsubscribed_at >= since))
        for email, status in left:
            found.setdefault(publisher.providers.of(email), [0, 0, 0])[1 if status == "complained" else 2] += 1
    return {provider: (sent, complaints, bounces) for provider, (sent, complaints, bounces) in found.items()}


def test_rebuild_aggregates_on_the_command_line(tmp_path: Path, database: object) -> None:
    """``publisher db rebuild-aggregates`` puts right counts that were wrong (e.g. edited by hand)."""
    config = write_site(tmp_path, smtp_port=25)

    async def counts(damage: bool) -> Counter[tuple[object, ...]]:
        publisher = Publisher(load_settings(config, environ={}))
        await publisher.start()
        try:
            if damage:
                await service.create(publisher.engine, "ann@gmail.com", prefs=Preferences(), confirmed=True,
                                     source=Source.CLI, now=clock.now())
                async with publisher.engine.begin() as conn:
                    await conn.execute(subscriber_counts.update().values(n=subscriber_counts.c.n + 5))
            return (await kept_counts(publisher.engine))["subscriber_counts"]
        finally:
            await publisher.close()

    today = clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
    assert asyncio.run(counts(damage=True)) == Counter({(today, "active"): 6})
    result = CliRunner().invoke(main, ["--config", str(config), "db", "rebuild-aggregates"])
    assert result.exit_code == 0, result.output
    assert "recounted 1 subscriber(s): 1 active" in result.output
    assert asyncio.run(counts(damage=False)) == Counter({(today, "active"): 1})


async def test_concurrent_claims_and_outcomes_keep_the_counts_exact(make_settings: object) -> None:
    """Four claimants take and record one digest's rows at once (as four nodes do on
    PostgreSQL, through the pool's connections): no count is lost, and no two writers
    deadlock on the hot counter rows (a deadlock would fail a claim or an outcome here)."""
    from sqlalchemy import insert

    from publisher.delivery import ledger
    from publisher.delivery.ledger import Claimant
    from publisher.store.schema import digests
    from tests.support.delivery_sites import insert_subscribers

    publisher = Publisher(make_settings())  # type: ignore[operator]
    await publisher.start()
    try:
        engine, now = publisher.engine, clock.now()
        ids = await insert_subscribers(engine, [f"r{i}@{DOMAINS[i % len(DOMAINS)]}" for i in range(1200)])
        async with engine.begin() as conn:
            await conn.execute(insert(digests).values(id="d1", cadence="instant", article_seqs="[]",
                                                      status="sending", created_at=now))
            await conn.execute(insert(deliveries), [
                {"digest_id": "d1", "subscriber_id": sid, "state": "pending", "updated_at": now}
                for sid in ids.values()
            ])

        async def node(name: str, seed: int) -> int:
            rng, claimant, done = random.Random(seed), Claimant(name, timedelta(minutes=5)), 0
            while rows := await ledger.claim(engine, "d1", 0, 40, clock.now(), claimant):
                sent = [row.subscriber_id for row in rows if rng.random() < 0.6]
                # Deferred rows are due again at once: claims then take deferred rows while
                # outcomes defer others, in the same hour's counter rows.
                others = [{"digest": "d1", "sid": row.subscriber_id, "attempts": row.attempts + 1,
                           "state": "deferred" if row.attempts < 3 and rng.random() < 0.8 else "failed",
                           "last_reply": "451 later", "retry_at": clock.now()}
                          for row in rows if row.subscriber_id not in sent]
                await ledger.record(engine, others, clock.now(), sent={"d1": sent})
                done += len(rows)
            return done

        handled = await asyncio.gather(*(node(f"node{i}", i) for i in range(4)))
        kept, recount = await kept_counts(engine), await recounted(engine)
    finally:
        await publisher.close()
    assert sum(handled) >= 1200
    assert sum(kept["digest_counts"].values()) == 1200
    assert kept == recount
