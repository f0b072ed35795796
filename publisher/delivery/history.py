"""What the ledger holds about one subscriber: the digests planned for them, newest first.

For the dashboard's subscriber record.  One range of ``ix_deliveries_subscriber``
(subscriber_id, updated_at) read backwards, so a subscriber's history costs the same in
a ledger of ten rows or ten million.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.store.schema import deliveries, digests

HISTORY = 20  # the most ledger rows a subscriber's record shows


@dataclass(frozen=True, slots=True)
class Received:
    """One digest planned for the subscriber: its state (sent, failed, …), the last reply."""

    digest_id: str
    cadence: str
    state: str
    attempts: int
    last_reply: str | None
    updated_at: datetime


async def received(engine: AsyncEngine, subscriber_id: int, limit: int = HISTORY) -> list[Received]:
    """The last ``limit`` ledger rows of ``subscriber_id``, the newest change first."""
    stmt = (
        select(deliveries.c.digest_id, digests.c.cadence, deliveries.c.state, deliveries.c.attempts,
               deliveries.c.last_reply, deliveries.c.updated_at)
        .join(digests, digests.c.id == deliveries.c.digest_id)
        .where(deliveries.c.subscriber_id == subscriber_id)
        .order_by(deliveries.c.updated_at.desc())
        .limit(limit)
    )
    async with engine.connect() as conn:
        return [Received(*row) for row in await conn.execute(stmt)]
