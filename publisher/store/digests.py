"""Digests in the store, read back for rendering: for delivery and the "view in browser" page."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.content.model import Article
from publisher.store.articles import by_seq
from publisher.store.schema import digests


@dataclass(frozen=True)
class StoredDigest:
    id: str
    cadence: str
    articles: list[Article]  # newest first, as planned


async def load(engine: AsyncEngine, digest_id: str) -> StoredDigest | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(digests.c.cadence, digests.c.article_seqs).where(digests.c.id == digest_id))
        ).first()
        if row is None:
            return None
        return StoredDigest(digest_id, row.cadence, await by_seq(conn, json.loads(row.article_seqs)))
