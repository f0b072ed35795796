"""Every query on the outbox tables: registering endpoints, claims, outcomes, the status.

A delivery row is owed by one endpoint for one event.  A dispatch pass *claims* due
rows (``FOR UPDATE SKIP LOCKED``, as :mod:`publisher.delivery.ledger` claims deliveries;
SQLite's write lock first instead): each is ``claimed_by`` the pass until
``lease_until``, so several nodes share the outbox without sending a row twice at
once, and the rows of a node that died are taken over when their lease lapses.  A row
is due when its ``next_at`` came and no earlier row of its key is owed to its
endpoint: that keeps each key's events in order per endpoint, while one endpoint
failing delays no other.  Acknowledged rows are deleted, and with the last of them
their event.

The endpoint column has no foreign key: an event recorded while a reload removes its
endpoint must not fail the change that caused it (:mod:`publisher.webhooks.events`);
the rows it may leave for the removed endpoint go at the next registration.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Row, and_, case, delete, exists, func, insert, not_, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from publisher.store.db import Exclusive, begin_writing, serialize
from publisher.store.schema import webhook_deliveries, webhook_endpoints, webhook_events

_d = webhook_deliveries.c


async def _registered(conn: AsyncConnection) -> dict[str, list[str]]:
    return {url: json.loads(events) for url, events in await conn.execute(
        select(webhook_endpoints.c.url, webhook_endpoints.c.events)
    )}


def _same(known: dict[str, list[str]], wanted: dict[str, list[str]]) -> bool:
    return known.keys() == wanted.keys() and all(sorted(known[url]) == sorted(wanted[url]) for url in wanted)


async def register(engine: AsyncEngine, wanted: dict[str, list[str]]) -> None:
    """Make the registered endpoints ``wanted`` (``{url: event types}``, [] = all): new ones
    get the events recorded from now on; removed ones lose what they were still owed.

    Every process registers as it starts (:meth:`publisher.app.Publisher.start`), so a
    command run before any daemon records the events of a new endpoint too; a read shows
    when nothing changed, and then nothing is written."""
    async with engine.connect() as conn:
        if _same(await _registered(conn), wanted):
            return
    async with engine.begin() as conn:
        await serialize(conn, Exclusive.WEBHOOKS)  # nodes starting at once: one inserts, the others see it
        known = await _registered(conn)
        for url, events in wanted.items():
            if url not in known:
                await conn.execute(insert(webhook_endpoints).values(url=url, events=json.dumps(sorted(events))))
            elif sorted(known[url]) != sorted(events):
                await conn.execute(
                    update(webhook_endpoints).where(webhook_endpoints.c.url == url)
                    .values(events=json.dumps(sorted(events)))
                )
        await conn.execute(delete(webhook_endpoints).where(webhook_endpoints.c.url.not_in(list(wanted))))
        if await conn.scalar(select(_d.endpoint).where(_d.endpoint.not_in(list(wanted))).limit(1)) is not None:
            await conn.execute(delete(webhook_deliveries).where(_d.endpoint.not_in(list(wanted))))
            await conn.execute(delete(webhook_events).where(
                ~exists().where(_d.event_seq == webhook_events.c.seq)
            ))


def _claimable(now: datetime) -> ColumnElement[bool]:
    earlier = webhook_deliveries.alias("earlier")
    return and_(
        _d.next_at <= now,
        or_(_d.lease_until.is_(None), _d.lease_until < now),
        not_(exists().where(
            earlier.c.endpoint == _d.endpoint, earlier.c.key == _d.key, earlier.c.event_seq < _d.event_seq
        )),
    )


async def claim(
    engine: AsyncEngine, endpoints: Sequence[str], limit: int, now: datetime, claimant: str, lease: timedelta
) -> list[Row]:
    """Claim up to ``limit`` due rows of ``endpoints``, oldest events first, with their events."""
    async with engine.begin() as conn:
        await begin_writing(conn)
        picked = (await conn.execute(
            select(_d.endpoint, _d.event_seq)
            .where(_d.endpoint.in_(list(endpoints)), _claimable(now))
            .order_by(_d.event_seq)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )).all()
        if not picked:
            return []
        chosen = tuple_(_d.endpoint, _d.event_seq).in_([tuple(row) for row in picked])
        await conn.execute(
            update(webhook_deliveries).where(chosen).values(claimed_by=claimant, lease_until=now + lease)
        )
        rows = await conn.execute(
            select(_d.endpoint, _d.event_seq, _d.attempts, webhook_events.c.id, webhook_events.c.type,
                   webhook_events.c.data, webhook_events.c.created_at)
            .join(webhook_events, webhook_events.c.seq == _d.event_seq)
            .where(chosen)
            .order_by(_d.event_seq)
        )
        return list(rows.all())


@dataclass(frozen=True)
class Failure:
    """A failed attempt to deliver one row, and when to try it next."""

    endpoint: str
    event_seq: int
    attempts: int  # with this one
    next_at: datetime
    error: str


async def acknowledged(engine: AsyncEngine, done: Sequence[tuple[str, int]], now: datetime) -> None:
    """The endpoints acknowledged these (endpoint, event seq): their rows go, and events no one is owed."""
    if not done:
        return
    async with engine.begin() as conn:
        await conn.execute(delete(webhook_deliveries).where(tuple_(_d.endpoint, _d.event_seq).in_(list(done))))
        await conn.execute(
            update(webhook_endpoints).where(webhook_endpoints.c.url.in_({endpoint for endpoint, _ in done}))
            .values(last_success_at=now)
        )
        await conn.execute(delete(webhook_events).where(
            webhook_events.c.seq.in_(sorted({seq for _, seq in done})),
            ~exists().where(_d.event_seq == webhook_events.c.seq),
        ))


async def failed(engine: AsyncEngine, failures: Sequence[Failure], now: datetime) -> None:
    """Record failed attempts: each row waits until its ``next_at``, its endpoint shows the error."""
    if not failures:
        return
    async with engine.begin() as conn:
        for f in failures:
            await conn.execute(
                update(webhook_deliveries).where(_d.endpoint == f.endpoint, _d.event_seq == f.event_seq)
                .values(attempts=f.attempts, next_at=f.next_at, last_error=f.error, claimed_by=None, lease_until=None)
            )
            await conn.execute(
                update(webhook_endpoints).where(webhook_endpoints.c.url == f.endpoint)
                .values(last_error=f.error, last_error_at=now)
            )


async def next_due(engine: AsyncEngine, endpoints: Sequence[str]) -> datetime | None:
    """When a row of ``endpoints`` is next due (None: nothing is owed)."""
    async with engine.connect() as conn:
        return await conn.scalar(select(func.min(_d.next_at)).where(_d.endpoint.in_(list(endpoints))))


@dataclass(frozen=True)
class EndpointStatus:
    """One endpoint as ``publisher status`` and the dashboard show it."""

    url: str
    pending: int  # events it is owed
    failing: int  # of those, how many failed at least once
    last_error: str | None
    last_error_at: datetime | None
    last_success_at: datetime | None


async def status(engine: AsyncEngine, cap: int | None = None) -> list[EndpointStatus]:
    """Every registered endpoint with what it is owed, by URL.  With ``cap``, a page's reads
    stay bounded however long an endpoint was down: ``pending`` stops at ``cap`` + 1 (shown
    as "more than cap"), and ``failing`` counts among the oldest ``cap`` + 1 owed events
    (those a dispatch pass tries first); without, both are exact."""
    async with engine.connect() as conn:
        rows = (await conn.execute(select(webhook_endpoints).order_by(webhook_endpoints.c.url))).all()
        found = []
        for r in rows:
            oldest = select(_d.attempts).where(_d.endpoint == r.url).order_by(_d.event_seq)
            if cap is not None:
                oldest = oldest.limit(cap + 1)
            owed = oldest.subquery()
            pending, failing = (await conn.execute(
                select(func.count(), func.coalesce(func.sum(case((owed.c.attempts > 0, 1), else_=0)), 0))
                .select_from(owed)
            )).one()
            found.append(EndpointStatus(r.url, pending, failing, r.last_error, r.last_error_at, r.last_success_at))
        return found


@dataclass(frozen=True)
class OwedEvent:
    """An event still owed to an endpoint (a row of the dashboard's outbox table)."""

    endpoint: str
    event_seq: int
    event_id: str
    type: str
    created_at: datetime
    attempts: int
    next_at: datetime
    last_error: str | None


async def owed_page(engine: AsyncEngine, limit: int, after: tuple[str, int] | None = None) -> list[OwedEvent]:
    """Up to ``limit`` owed events by endpoint, then oldest first, from after ``after``
    (endpoint, event seq): keyset paging along the deliveries' primary key."""
    query = (
        select(_d.endpoint, _d.event_seq, webhook_events.c.id, webhook_events.c.type, webhook_events.c.created_at,
               _d.attempts, _d.next_at, _d.last_error)
        .join(webhook_events, webhook_events.c.seq == _d.event_seq)
        .order_by(_d.endpoint, _d.event_seq)
        .limit(limit)
    )
    if after is not None:
        query = query.where(tuple_(_d.endpoint, _d.event_seq) > tuple_(*after))  # a range seek on the key
    async with engine.connect() as conn:
        return [OwedEvent(*row) for row in await conn.execute(query)]
