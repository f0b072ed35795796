"""Digests in the store, read back for rendering: for delivery, the "view in browser" page
and the public list of past digests."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.content.model import Article
from publisher.delivery.model import DeliveryState, DigestState
from publisher.store.articles import UnreadableArticle, by_seq
from publisher.store.schema import deliveries, digests

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredDigest:
    id: str
    cadence: str
    articles: list[Article]  # newest first, as planned


@dataclass(frozen=True)
class PastDigest:
    """A digest in the public list: when it went out, its cadence, its articles still published."""

    id: str
    cadence: str
    created_at: datetime
    articles: list[Article]  # newest first, as planned


# A digest that reached someone: the public list leaves out the ones cancelled before any went out.
_SENT = exists().where(deliveries.c.digest_id == digests.c.id, deliveries.c.state == DeliveryState.SENT)


async def past(engine: AsyncEngine, limit: int, offset: int) -> tuple[list[PastDigest], int]:
    """A page of the digests that were sent to someone, newest first, and how many there are.

    A digest whose articles were all taken down since is left out (its page is a 404:
    :func:`load` finds nothing to show), though counted; one with an article the store
    can't read is logged and left out, the others are listed.
    """
    async with engine.connect() as conn:
        rows = (await conn.execute(
            select(digests.c.id, digests.c.cadence, digests.c.created_at, digests.c.article_seqs).where(_SENT)
            .order_by(digests.c.created_at.desc(), digests.c.id.desc()).limit(limit).offset(offset)
        )).all()
        total = (await conn.execute(select(func.count()).select_from(digests).where(_SENT))).scalar_one()
        found = []
        for row in rows:
            try:
                carried = await by_seq(conn, json.loads(row.article_seqs), removed=False)
            except UnreadableArticle as exc:
                log.error("%s; digest %s left out of the list of past digests", exc, row.id)
                continue
            if carried:
                found.append(PastDigest(row.id, row.cadence, row.created_at, carried))
    return found, total


async def load(engine: AsyncEngine, digest_id: str) -> StoredDigest | None:
    """The digest with the articles still published: one taken down after the digest was
    planned (``publisher articles remove``, its file deleted) is not sent, nor shown."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(digests.c.cadence, digests.c.article_seqs).where(digests.c.id == digest_id))
        ).first()
        if row is None:
            return None
        return StoredDigest(digest_id, row.cadence, await by_seq(conn, json.loads(row.article_seqs), removed=False))


async def drop_article(engine: AsyncEngine, digest_id: str, seq: int) -> list[int] | None:
    """Take article ``seq`` out of a digest not yet finished (what its remaining messages
    carry); the article seqs left, or None if the digest doesn't hold it."""
    async with engine.begin() as conn:
        stored = (
            await conn.execute(
                select(digests.c.article_seqs).where(digests.c.id == digest_id, digests.c.status != DigestState.FINISHED)
            )
        ).scalar()
        seqs = json.loads(stored) if stored is not None else []
        if seq not in seqs:
            return None
        left = [s for s in seqs if s != seq]
        await conn.execute(update(digests).where(digests.c.id == digest_id).values(article_seqs=json.dumps(left)))
        return left
