"""The queries behind the gates per mailbox provider (:mod:`publisher.delivery.gates`).

Counts come from the ledger and the subscribers, not from counters kept by one
process, so they hold across nodes and restarts: a message's send time is its ``sent``
row's ``updated_at`` (a sent row is never written again), a complaint's or hard bounce's
time is its reader's ``unsubscribed_at`` (as :mod:`publisher.delivery.report` reads
them).  The rows are grouped by recipient domain in the database; the caller names the
domains' providers (:class:`publisher.delivery.providers.Providers`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Row, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.delivery.model import DeliveryState, DigestState
from publisher.delivery.report import email_domain
from publisher.store.schema import deliveries, digests, provider_pauses, subscribers
from publisher.webhooks import events
from subscribers.model import Status

HELD = "held: "  # how the last reply of a row a gate kept back begins


def held_for_pause(provider: str) -> str:
    """The start of the last reply of a row held because ``provider`` is paused."""
    return f"{HELD}provider {provider} is paused"


async def sent_or_sending_by_domain(engine: AsyncEngine, since: datetime) -> list[tuple[str, int]]:
    """Messages sent since ``since`` or being sent now (by any node), by recipient domain."""
    domain = email_domain(subscribers.c.email)
    rows = or_(
        and_(deliveries.c.state == DeliveryState.SENT, deliveries.c.updated_at >= since),
        deliveries.c.state == DeliveryState.SENDING,
    )
    async with engine.connect() as conn:
        found = await conn.execute(
            select(domain, func.count())
            .select_from(deliveries.join(subscribers, subscribers.c.id == deliveries.c.subscriber_id))
            .where(rows).group_by(domain)
        )
        return [(row_domain, count) for row_domain, count in found]


async def sent_by_domain(engine: AsyncEngine, since: datetime) -> list[tuple[str, int]]:
    """Messages sent since ``since``, by recipient domain."""
    domain = email_domain(subscribers.c.email)
    async with engine.connect() as conn:
        found = await conn.execute(
            select(domain, func.count())
            .select_from(deliveries.join(subscribers, subscribers.c.id == deliveries.c.subscriber_id))
            .where(deliveries.c.state == DeliveryState.SENT, deliveries.c.updated_at >= since)
            .group_by(domain)
        )
        return [(row_domain, count) for row_domain, count in found]


async def complaints_and_bounces(engine: AsyncEngine, since: datetime) -> list[Row]:
    """Readers who complained or hard-bounced since ``since``: (email, status, unsubscribed_at).

    Few, on any list worth sending to (a breaker pauses at a fraction of a percent)."""
    async with engine.connect() as conn:
        found = await conn.execute(
            select(subscribers.c.email, subscribers.c.status, subscribers.c.unsubscribed_at)
            .where(subscribers.c.status.in_((Status.COMPLAINED, Status.BOUNCED)),
                   subscribers.c.unsubscribed_at >= since)
        )
        return list(found.all())


async def pauses(engine: AsyncEngine) -> list[Row]:
    """Every provider a breaker paused or that was resumed: (provider, reason, since, resumed_at);
    paused while ``reason`` is set."""
    async with engine.connect() as conn:
        found = await conn.execute(
            select(provider_pauses.c.provider, provider_pauses.c.reason, provider_pauses.c.since,
                   provider_pauses.c.resumed_at).order_by(provider_pauses.c.provider)
        )
        return list(found.all())


async def pause(engine: AsyncEngine, provider: str, reason: str, now: datetime) -> bool:
    """Pause deliveries to ``provider`` with ``reason``; False if it already was paused
    (by this node or another).

    Every digest being sent is paused for that provider's readers: each gets a
    ``digest.paused`` event naming the provider, in the pause's transaction (so one
    event per pause, whichever node judged it)."""
    try:
        async with engine.begin() as conn:
            paused = await conn.execute(
                update(provider_pauses)
                .where(provider_pauses.c.provider == provider, provider_pauses.c.reason.is_(None))
                .values(reason=reason, since=now)
            )
            if not paused.rowcount:
                if await conn.scalar(select(provider_pauses.c.provider).where(provider_pauses.c.provider == provider)):
                    return False  # paused already
                await conn.execute(insert(provider_pauses).values(provider=provider, reason=reason, since=now))
            sending = (await conn.execute(
                select(digests.c.id).where(digests.c.status == DigestState.SENDING).order_by(digests.c.id)
            )).scalars()
            await events.record_many(conn, [
                (events.EventType.DIGEST_PAUSED, {"id": digest_id, "reason": reason, "provider": provider},
                 f"digest:{digest_id}")
                for digest_id in sending
            ], now)
            return True
    except IntegrityError:  # another node recorded it first
        return False


async def resume(engine: AsyncEngine, providers: list[str] | None, now: datetime) -> list[str]:
    """Lift the pause of ``providers`` (None: every paused one), and make the rows held for
    them due now; the providers resumed."""
    async with engine.begin() as conn:
        which = provider_pauses.c.reason.is_not(None)
        if providers is not None:
            which = and_(which, provider_pauses.c.provider.in_(providers))
        resumed = list((await conn.execute(select(provider_pauses.c.provider).where(which))).scalars())
        if not resumed:
            return []
        await conn.execute(
            update(provider_pauses).where(provider_pauses.c.provider.in_(resumed))
            .values(reason=None, since=None, resumed_at=now)
        )
        for provider in resumed:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.state == DeliveryState.DEFERRED,
                       deliveries.c.last_reply.startswith(held_for_pause(provider), autoescape=True))
                .values(retry_at=now)
            )
        return resumed
