"""Subscribers and the suppression list in the store: rows in, Subscriber objects out.

Only this module knows the ``subscribers`` and ``suppressions`` tables.  The lifecycle
rules (who may be added, what confirming or leaving does) live in
:mod:`subscribers.service`, on top of these queries.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Row, Select, String, delete, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from publisher.store.articles import newest_seq
from publisher.store.schema import subscribers, suppressions
from subscribers.model import Cadence, Preferences, Source, Status, Subscriber

PAGE_LIMIT = 500  # the most rows one page of a listing may ask for
# The longest reason a suppression entry holds (PostgreSQL enforces it; SQLite would not).
MAX_REASON: int = cast(String, suppressions.c.reason.type).length or 20


def from_row(row: Row) -> Subscriber:
    return Subscriber(
        id=row.id,
        email=row.email,
        name=row.name,
        status=Status(row.status),
        preferences=Preferences(
            cadence=Cadence(row.cadence),
            topics=tuple(json.loads(row.topics)),
            timezone=row.timezone,
            send_hour=row.send_hour,
            send_weekday=row.send_weekday,
        ),
        source=Source(row.source),
        created_at=row.created_at,
        confirmed_at=row.confirmed_at,
        confirmed_source=Source(row.confirmed_source) if row.confirmed_source else None,
        unsubscribed_at=row.unsubscribed_at,
    )


def preference_values(prefs: Preferences) -> dict[str, object]:
    """``prefs`` as column values (topics as the sorted JSON list the planner groups by)."""
    return {
        "cadence": prefs.cadence.value,
        "topics": json.dumps(sorted(prefs.topics, key=str.casefold)),
        "timezone": prefs.timezone,
        "send_hour": prefs.send_hour,
        "send_weekday": prefs.send_weekday,
    }


async def activation(conn: AsyncConnection, source: Source, now: datetime) -> dict[str, object]:
    """Column values that make a subscriber active from now on (also the importer's).

    The article cursor starts at the newest article seen, so a new subscriber's first
    digest holds what is published after they joined, not the archive.
    """
    return {
        "status": Status.ACTIVE.value,
        "confirmed_at": now,
        "confirmed_source": source.value,
        "unsubscribed_at": None,
        "article_cursor": await newest_seq(conn),
    }


async def get(conn: AsyncConnection, subscriber_id: int) -> Subscriber | None:
    row = (await conn.execute(select(subscribers).where(subscribers.c.id == subscriber_id))).first()
    return from_row(row) if row else None


async def find(conn: AsyncConnection, address: str) -> Subscriber | None:
    """The subscriber with this normalized address."""
    row = (await conn.execute(select(subscribers).where(subscribers.c.email == address))).first()
    return from_row(row) if row else None


def _like_literal(text: str) -> str:
    """``text`` matched literally by a LIKE pattern with the escape character ``\\``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _listing(query: str, status: Status | None) -> Select:
    stmt = select(subscribers)
    if status is not None:
        stmt = stmt.where(subscribers.c.status == status.value)
    if query:
        pattern = "%" + _like_literal(query.lower()) + "%"
        stmt = stmt.where(
            or_(
                subscribers.c.email.like(pattern, escape="\\"),
                func.lower(subscribers.c.name).like(pattern, escape="\\"),
            )
        )
    return stmt


async def search(
    engine: AsyncEngine, *, query: str = "", status: Status | None = None, after: int = 0, limit: int = 50
) -> list[Subscriber]:
    """One page of subscribers whose address or name contains ``query``, by id after ``after``.

    Keyset paging (``after`` = the last id of the previous page) stays fast and
    consistent however deep the listing goes, unlike OFFSET.
    """
    stmt = _listing(query, status).where(subscribers.c.id > after).order_by(subscribers.c.id)
    async with engine.connect() as conn:
        rows = await conn.execute(stmt.limit(max(1, min(limit, PAGE_LIMIT))))
        return [from_row(row) for row in rows]


async def newest(
    conn: AsyncConnection, *, status: Status | None, cadence: Cadence | None, before: int | None, limit: int
) -> list[Subscriber]:
    """The newest ``limit`` subscribers (with ``status``, ``cadence``) below id ``before``.

    Each (status, cadence) pair asked for is one range of ``ix_subscribers_listing``
    (status, cadence, id) read backwards, so a page reads at most ``limit`` rows a pair
    (15 pairs at most) however many subscribers there are; without a filter it is the
    primary key read backwards.  The pairs' pages merge by id.
    """
    statuses: list[Status | None] = [status] if status is not None or cadence is None else list(Status)
    cadences: list[Cadence | None] = [cadence] if cadence is not None or status is None else list(Cadence)
    found: list[Subscriber] = []
    for wanted_status in statuses:
        for wanted_cadence in cadences:
            stmt = select(subscribers)
            if wanted_status is not None:
                stmt = stmt.where(subscribers.c.status == wanted_status.value)
            if wanted_cadence is not None:
                stmt = stmt.where(subscribers.c.cadence == wanted_cadence.value)
            if before is not None:
                stmt = stmt.where(subscribers.c.id < before)
            rows = await conn.execute(stmt.order_by(subscribers.c.id.desc()).limit(limit))
            found += (from_row(row) for row in rows)
    return sorted(found, key=lambda s: s.id, reverse=True)[:limit]


async def by_prefix(
    conn: AsyncConnection, prefix: str, *, status: Status | None, cadence: Cadence | None, after: str | None,
    limit: int,
) -> list[Subscriber]:
    """Subscribers whose address starts with ``prefix`` (lower case), in address order after ``after``.

    A range of the unique index on ``email`` (``prefix <= email < prefix's successor``),
    exact because addresses compare by code point on both databases (see
    ``publisher.store.schema.ADDRESS``); never a ``LIKE '%…%'`` scan.  The LIKE on top is
    only a guard.  The filters apply within the range.
    """
    upper = prefix[:-1] + chr(min(ord(prefix[-1]) + 1, 0x10FFFF))
    email = subscribers.c.email
    stmt = select(subscribers).where(
        email >= prefix, email < upper, email.like(_like_literal(prefix) + "%", escape="\\"),
    )
    if after is not None:
        stmt = stmt.where(email > after)
    # The filters as expressions no index serves (the values are lower case already): a
    # planner without statistics would rather take the status index and sort its rows.
    if status is not None:
        stmt = stmt.where(func.lower(subscribers.c.status) == status.value)
    if cadence is not None:
        stmt = stmt.where(func.lower(subscribers.c.cadence) == cadence.value)
    rows = await conn.execute(stmt.order_by(email).limit(limit))
    return [from_row(row) for row in rows]


async def count(engine: AsyncEngine, *, query: str = "", status: Status | None = None) -> int:
    stmt = select(func.count()).select_from(_listing(query, status).subquery())
    async with engine.connect() as conn:
        return (await conn.execute(stmt)).scalar_one()


async def batches(
    engine: AsyncEngine, *, status: Status | None = None, size: int = 1000
) -> AsyncIterator[list[Subscriber]]:
    """Every subscriber, in id order, a page at a time (never the whole list in memory)."""
    after = 0
    while page := await search(engine, status=status, after=after, limit=size):
        yield page
        after = page[-1].id


async def existing(conn: AsyncConnection, addresses: Sequence[str]) -> dict[str, Subscriber]:
    """The subscribers among ``addresses`` (normalized), by address."""
    rows = await conn.execute(select(subscribers).where(subscribers.c.email.in_(addresses)))
    return {row.email: from_row(row) for row in rows}


async def ids_of(conn: AsyncConnection, addresses: Sequence[str]) -> dict[str, int]:
    """The ids of the subscribers among ``addresses`` (normalized), by address."""
    rows = await conn.execute(select(subscribers.c.email, subscribers.c.id).where(subscribers.c.email.in_(addresses)))
    return {email: subscriber_id for email, subscriber_id in rows}


async def suppression(conn: AsyncConnection, address_hash: str) -> str | None:
    """Why the address is suppressed, or None if it is not."""
    return (
        await conn.execute(select(suppressions.c.reason).where(suppressions.c.email_hash == address_hash))
    ).scalar_one_or_none()


async def suppressed_among(conn: AsyncConnection, hashes: Sequence[str]) -> set[str]:
    rows = await conn.execute(select(suppressions.c.email_hash).where(suppressions.c.email_hash.in_(hashes)))
    return set(rows.scalars())


async def suppress(conn: AsyncConnection, address_hash: str, reason: str, now: datetime) -> None:
    """Put the address on the list (the first reason stays if it is already there)."""
    if await suppression(conn, address_hash) is None:
        await conn.execute(insert(suppressions).values(email_hash=address_hash, reason=reason, created_at=now))


async def lift(conn: AsyncConnection, hashes: Iterable[str]) -> None:
    await conn.execute(delete(suppressions).where(suppressions.c.email_hash.in_(list(hashes))))
