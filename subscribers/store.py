"""Subscribers in the store: add (idempotently), list, unsubscribe.

Addresses are normalized with email-validator (syntax only, no DNS) and kept lower
case, so ``Ann@Example.org`` and ``ann@example.org`` are one subscriber.
"""

from __future__ import annotations

import json
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.store.articles import newest_seq
from publisher.store.schema import subscribers
from subscribers.model import Cadence, Source, Status, Subscriber


class SubscriberError(ValueError):
    """Input that can't become a subscriber (the message says why)."""


def normalize_email(raw: str) -> str:
    """The canonical form of an address, or SubscriberError naming what is wrong."""
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise SubscriberError(f"{raw!r} is not a valid email address: {exc}") from None


def _from_row(row: Row) -> Subscriber:
    return Subscriber(
        id=row.id,
        email=row.email,
        name=row.name,
        status=Status(row.status),
        cadence=Cadence(row.cadence),
        topics=tuple(json.loads(row.topics)),
        timezone=row.timezone,
        source=Source(row.source),
        created_at=row.created_at,
        confirmed_at=row.confirmed_at,
    )


async def add(
    engine: AsyncEngine,
    email: str,
    *,
    name: str = "",
    cadence: Cadence = Cadence.DAILY,
    source: Source,
    now: datetime,
) -> tuple[Subscriber, bool]:
    """Add an active subscriber; returns it and whether it was created.

    An address that is already there is returned as it is (adding twice is not an
    error).  A new subscriber's cursor starts at the newest article seen, so their
    first digest holds only articles first seen after they subscribed.
    """
    address = normalize_email(email)
    if any(ch in name for ch in "\r\n\0"):
        raise SubscriberError("the name must be a single line")
    async with engine.begin() as conn:
        existing = (await conn.execute(select(subscribers).where(subscribers.c.email == address))).first()
        if existing is not None:
            return _from_row(existing), False
        cursor = await newest_seq(conn)
        await conn.execute(
            insert(subscribers).values(
                email=address,
                name=name.strip(),
                status=Status.ACTIVE,
                cadence=cadence,
                source=source,
                created_at=now,
                confirmed_at=now,
                article_cursor=cursor,
            )
        )
        row = (await conn.execute(select(subscribers).where(subscribers.c.email == address))).one()
        return _from_row(row), True


async def list_all(engine: AsyncEngine) -> list[Subscriber]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(subscribers).order_by(subscribers.c.id))
        return [_from_row(row) for row in rows]


async def unsubscribe(engine: AsyncEngine, email: str) -> bool:
    """Mark the address unsubscribed; True if it was subscribed.

    The row stays (the ledger refers to it) but no digest that has not yet been handed
    to the transport will reach it: delivery checks the status of every recipient.
    """
    address = normalize_email(email)
    async with engine.begin() as conn:
        result = await conn.execute(
            update(subscribers)
            .where(subscribers.c.email == address, subscribers.c.status != Status.UNSUBSCRIBED)
            .values(status=Status.UNSUBSCRIBED)
        )
        return result.rowcount > 0
