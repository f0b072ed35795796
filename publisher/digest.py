"""Which articles go into which digest, for whom: the digest plan.

Planning is one transaction over the store.  Subscribers of a cadence are grouped by
their cursor (the newest article already planned for them) and their topics; each
distinct set of new articles becomes one digest, and the ledger gets one ``pending``
delivery row per subscriber through ``INSERT … SELECT`` (no subscriber list in
memory).  Cursors then move to the newest article, in the same transaction, so a
second plan right after the first finds nothing: each article reaches each
subscriber once, whatever its published date says.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from publisher.content.slug import slugify
from publisher.store.articles import newest_seq
from publisher.store.db import transaction
from publisher.store.schema import (
    UTCDateTime,
    articles,
    deliveries,
    digests,
    subscribers,
)
from subscribers.model import Cadence, Status


@dataclass(frozen=True)
class PlannedDigest:
    id: str
    cadence: Cadence
    article_seqs: tuple[int, ...]  # newest first
    recipients: int


def digest_id(cadence: Cadence, now: datetime, seqs: tuple[int, ...]) -> str:
    """Sortable and readable in logs: ``instant-20261125T170500-3fa2c1``."""
    tag = hashlib.sha256(f"{cadence}:{now.isoformat()}:{seqs}".encode()).hexdigest()[:6]
    return f"{cadence}-{now:%Y%m%dT%H%M%S}-{tag}"


def _matches(tags: list[str], topics: list[str]) -> bool:
    if not topics:
        return True
    wanted = {slugify(t) for t in topics}
    return any(slugify(t) in wanted for t in tags)


async def _pick(
    conn: AsyncConnection, cursor: int, topics: list[str], max_articles: int
) -> tuple[int, ...]:
    rows = await conn.execute(
        select(articles.c.seq, articles.c.tags).where(articles.c.seq > cursor).order_by(articles.c.seq.desc())
    )
    picked = [row.seq for row in rows if _matches(json.loads(row.tags), topics)]
    return tuple(picked[:max_articles])


async def plan(
    engine: AsyncEngine, cadence: Cadence, now: datetime, *, max_articles: int, dry_run: bool = False
) -> list[PlannedDigest]:
    """Create the digests due for ``cadence`` now; with ``dry_run`` nothing is written."""
    async with transaction(engine, dry_run=dry_run) as conn:
        return await _plan(conn, cadence, now, max_articles)


async def _plan(conn: AsyncConnection, cadence: Cadence, now: datetime, max_articles: int) -> list[PlannedDigest]:
    top = await newest_seq(conn)
    due = (
        subscribers.c.status == Status.ACTIVE,
        subscribers.c.cadence == cadence,
        subscribers.c.article_cursor < top,
    )
    groups = await conn.execute(
        select(subscribers.c.article_cursor, subscribers.c.topics, func.count())
        .where(*due)
        .group_by(subscribers.c.article_cursor, subscribers.c.topics)
    )
    by_articles: dict[tuple[int, ...], list[tuple[int, str, int]]] = defaultdict(list)
    for cursor, topics, count in groups.all():
        seqs = await _pick(conn, cursor, json.loads(topics), max_articles)
        if seqs:
            by_articles[seqs].append((cursor, topics, count))

    planned = []
    for seqs, members in sorted(by_articles.items()):
        ident = digest_id(cadence, now, seqs)
        await conn.execute(
            insert(digests).values(
                id=ident, cadence=cadence, article_seqs=json.dumps(seqs), status="sending", created_at=now
            )
        )
        for cursor, topics, _ in members:
            await conn.execute(
                insert(deliveries).from_select(
                    ["digest_id", "subscriber_id", "state", "attempts", "updated_at"],
                    select(
                        literal(ident),
                        subscribers.c.id,
                        literal("pending"),
                        literal(0),
                        literal(now, UTCDateTime()),
                    ).where(*due, subscribers.c.article_cursor == cursor, subscribers.c.topics == topics),
                )
            )
        planned.append(PlannedDigest(ident, cadence, seqs, sum(m[2] for m in members)))
    await conn.execute(update(subscribers).where(*due).values(article_cursor=top))
    return planned
