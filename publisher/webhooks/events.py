"""Recording an event: in the outbox, in the transaction of the change it reports.

:func:`record` takes the connection of the change that causes the event, so a change
rolled back (a dry run, an error) leaves no event and a committed change always has
one.  The event is written with one delivery row per registered endpoint that wants
its type (:mod:`publisher.webhooks.outbox`), so the dispatcher never has to find out
which events are new (a cursor over ``seq`` would skip an event whose transaction
commits after a later one's); with no endpoint registered nothing is written.
``key`` names what the event is about (``subscriber:12``): events of one key reach
each endpoint in the order they were recorded.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from publisher.store.schema import webhook_deliveries, webhook_endpoints, webhook_events
from publisher.webhooks.model import EventType

if TYPE_CHECKING:
    from subscribers.model import Subscriber

Event = tuple[EventType, dict[str, object], str]  # (type, data, key)


async def record(conn: AsyncConnection, type: EventType, data: dict[str, object], key: str, now: datetime) -> None:
    """Put one event in the outbox, in ``conn``'s transaction."""
    await record_many(conn, [(type, data, key)], now)


async def _endpoints(conn: AsyncConnection) -> list[tuple[str, set[str]]]:
    """The registered endpoints and the event types each wants (empty: all)."""
    return [(url, set(json.loads(wanted))) for url, wanted in await conn.execute(
        select(webhook_endpoints.c.url, webhook_endpoints.c.events)
    )]


async def wanted(conn: AsyncConnection, *types: EventType) -> bool:
    """Whether an endpoint wants any of ``types``: a bulk change skips describing its
    events (a read per row) when nobody listens."""
    return any(not wants or wants & set(types) for _, wants in await _endpoints(conn))


async def record_many(conn: AsyncConnection, events: Sequence[Event], now: datetime) -> None:
    """Put ``events`` in the outbox in this order, in ``conn``'s transaction."""
    if not events:
        return
    endpoints = await _endpoints(conn)
    rows = [
        {"id": f"evt_{uuid.uuid4().hex}", "type": str(type), "key": key,
         "data": json.dumps(data, separators=(",", ":"), default=str), "created_at": now}
        for type, data, key in events
    ]
    takers = [[url for url, wanted in endpoints if not wanted or type in wanted] for type, _, _ in events]
    rows, takers = [r for r, t in zip(rows, takers) if t], [t for t in takers if t]
    if not rows:
        return
    seqs = (await conn.execute(
        insert(webhook_events).returning(webhook_events.c.seq, sort_by_parameter_order=True), rows
    )).scalars().all()
    await conn.execute(insert(webhook_deliveries), [
        {"endpoint": url, "event_seq": seq, "key": row["key"], "attempts": 0, "next_at": now}
        for seq, row, urls in zip(seqs, rows, takers) for url in urls
    ])


def about_subscriber(subscriber_id: int, email: str, status: str, *types: EventType) -> list[Event]:
    """Each of ``types`` about a subscriber as they are now: their id, address and status."""
    data: dict[str, object] = {"id": subscriber_id, "email": email, "status": str(status)}
    return [(type, data, f"subscriber:{subscriber_id}") for type in types]


async def subscriber_event(conn: AsyncConnection, subscriber: Subscriber, now: datetime, *types: EventType) -> None:
    """Record each of ``types`` about ``subscriber`` as it is now."""
    await record_many(conn, about_subscriber(subscriber.id, subscriber.email, subscriber.status, *types), now)


ERASE_CHUNK = 500  # subscriber ids per statement when their events are made anonymous


async def forget_subscribers(conn: AsyncConnection, ids: Sequence[int]) -> None:
    """Take the address out of every stored event about these subscribers, in ``conn``'s
    transaction (their erasure or purge).

    An event still owed is still sent, with ``"email": null``: an endpoint learns what
    happened to subscriber ``id`` (a CRM keeps its state right) but never receives personal
    data the publisher was asked to erase; an event already sent keeps no copy either.
    """
    for start in range(0, len(ids), ERASE_CHUNK):
        keys = [f"subscriber:{subscriber_id}" for subscriber_id in ids[start:start + ERASE_CHUNK]]
        found = await conn.execute(
            select(webhook_events.c.seq, webhook_events.c.data).where(webhook_events.c.key.in_(keys))
        )
        changed = [{"row_seq": seq, "new_data": json.dumps(json.loads(data) | {"email": None}, separators=(",", ":"))}
                   for seq, data in found]
        if changed:
            await conn.execute(
                update(webhook_events).where(webhook_events.c.seq == bindparam("row_seq"))
                .values(data=bindparam("new_data")),
                changed,
            )


# The event of a subscriber's leaving, by the status they leave with.
LEAVING = {
    "unsubscribed": EventType.SUBSCRIBER_UNSUBSCRIBED,
    "bounced": EventType.SUBSCRIBER_BOUNCED,
    "complained": EventType.SUBSCRIBER_COMPLAINED,
}


async def articles_published(conn: AsyncConnection, rows: Sequence[dict[str, object]]) -> None:
    """Record ``article.published`` for new rows of ``articles`` (as :mod:`publisher.store.ingest` inserts them)."""
    if not rows:
        return
    now = rows[0]["first_seen_at"]
    assert isinstance(now, datetime)
    await record_many(conn, [
        (EventType.ARTICLE_PUBLISHED,
         {"id": row["id"], "slug": row["slug"], "title": json.loads(str(row["data"])).get("title", ""),
          "published": row["published"]},
         f"article:{row['id']}")
        for row in rows
    ], now)
