"""Digests in the store, read back for rendering: for delivery and the "view in browser" page."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.content.model import Article
from publisher.delivery.model import DigestState
from publisher.store.articles import by_seq
from publisher.store.schema import digests


@dataclass(frozen=True)
class StoredDigest:
    id: str
    cadence: str
    articles: list[Article]  # newest first, as planned


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
