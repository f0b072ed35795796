"""The queries behind the gates per mailbox provider (:mod:`publisher.delivery.gates`).

Counts come from the database, not from counters kept by one process, so they hold
across nodes and restarts: a message's send time is its ``sent`` row's ``updated_at`` (a
sent row is never written again), a complaint's or hard bounce's time is its reader's
``unsubscribed_at`` (as :mod:`publisher.delivery.report` reads them).  Whole hours of
them are read from the aggregates the database keeps per hour and recipient domain
(:mod:`publisher.store.aggregates`), so a judgement over a week costs O(hours × domains),
not a scan of the week's messages.  The caller names the domains' providers
(:class:`publisher.delivery.providers.Providers`).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import Row, and_, func, insert, literal, select, union_all, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.delivery.model import DeliveryState, DigestState
from publisher.delivery.report import email_domain
from publisher.store.schema import deliveries, digests, domain_counts, provider_pauses, subscribers
from publisher.webhooks import events
from subscribers.model import Status

HELD = "held: "  # how the last reply of a row a gate kept back begins


def held_for_pause(provider: str) -> str:
    """The start of the last reply of a row held because ``provider`` is paused."""
    return f"{HELD}provider {provider} is paused"


def _hour_after(moment: datetime) -> datetime:
    """The first whole hour at or after ``moment``."""
    hour = moment.replace(minute=0, second=0, microsecond=0)
    return hour if hour == moment else hour + timedelta(hours=1)


async def tallies_by_domain(engine: AsyncEngine, since: datetime, *, exact: bool = True) -> list[tuple[str, str, int]]:
    """Messages sent, complaints and hard bounces since ``since``, by recipient domain:
    ``(domain, kind, count)`` with kind ``sent``, ``complained`` or ``bounced``.

    The whole hours come from the aggregates (:mod:`publisher.store.aggregates`: one row
    per hour and domain, never the ledger).  The part of an hour before the first whole
    one is read from the base tables when ``exact`` (a resume's moment: what happened
    before it must not count), at the cost of that part-hour's rows; otherwise that hour
    is counted whole (a window's start: up to an hour more of history, never less).
    """
    start = _hour_after(since) if exact else since.replace(minute=0, second=0, microsecond=0)
    tallies: Counter[tuple[str, str]] = Counter()
    async with engine.connect() as conn:
        for domain, kind, count in await conn.execute(
            select(domain_counts.c.domain, domain_counts.c.kind, func.sum(domain_counts.c.n))
            .where(domain_counts.c.hour >= start).group_by(domain_counts.c.domain, domain_counts.c.kind)
        ):
            tallies[domain, kind] += int(count)
        if start > since:
            domain = email_domain(subscribers.c.email)
            for found, count in await conn.execute(
                select(domain, func.count())
                .select_from(deliveries.join(subscribers, subscribers.c.id == deliveries.c.subscriber_id))
                .where(deliveries.c.state == DeliveryState.SENT, deliveries.c.updated_at >= since,
                       deliveries.c.updated_at < start)
                .group_by(domain)
            ):
                tallies[found, DeliveryState.SENT.value] += count
            for found, kind, count in await conn.execute(
                select(domain, subscribers.c.status, func.count())
                .where(subscribers.c.status.in_((Status.COMPLAINED, Status.BOUNCED)),
                       subscribers.c.unsubscribed_at >= since, subscribers.c.unsubscribed_at < start)
                .group_by(domain, subscribers.c.status)
            ):
                tallies[found, kind] += count
    return [(domain, kind, count) for (domain, kind), count in tallies.items() if count]


async def sent_or_sending_by_domain(engine: AsyncEngine, day: datetime) -> list[tuple[str, int]]:
    """Messages sent since ``day`` (a whole hour: a day's start) or being sent now (by any
    node), by recipient domain: the sent ones from the aggregates, those being sent (a few
    claimed batches) from the ledger, in one statement, so a row recorded meanwhile is
    counted once (in one snapshot it is either still being sent or already sent)."""
    domain = email_domain(subscribers.c.email)
    sent = (select(domain_counts.c.domain.label("domain"), domain_counts.c.n.label("n"))
            .where(domain_counts.c.hour >= day, domain_counts.c.kind == DeliveryState.SENT))
    sending = (select(domain.label("domain"), literal(1).label("n"))
               .select_from(deliveries.join(subscribers, subscribers.c.id == deliveries.c.subscriber_id))
               .where(deliveries.c.state == DeliveryState.SENDING))
    both = union_all(sent, sending).subquery()
    async with engine.connect() as conn:
        found = await conn.execute(select(both.c.domain, func.sum(both.c.n)).group_by(both.c.domain))
        return [(row_domain, int(count)) for row_domain, count in found if count]


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
