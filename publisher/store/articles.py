"""Articles in the store: tell new from edited from unchanged, and read them back.

Only this module turns Article objects into rows and back, so the JSON form lives in
one place (Article.to_dict / from_dict).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from publisher.content.model import Article
from publisher.content.slug import slugify
from publisher.store.db import Exclusive, serialize
from publisher.store.schema import articles

_CHUNK = 500  # stays under SQLite's bound-parameter limit


@dataclass
class IngestResult:
    """What a scan changed: new articles get digests, edited ones only new feeds."""

    new: list[Article] = field(default_factory=list)
    updated: list[Article] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # ids a complete source no longer offers
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.new or self.updated or self.removed)


def _row(article: Article, source: str) -> dict[str, object]:
    return {
        "id": article.id,
        "slug": article.slug,
        "content_hash": article.content_hash(),
        "data": json.dumps(article.to_dict(), ensure_ascii=False, sort_keys=True),
        "tags": json.dumps(list(article.tags), ensure_ascii=False),
        "published": article.published,
        "updated": article.updated,
        "source": source,
        "removed_at": None,
    }


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


async def ingest(
    engine: AsyncEngine, scanned: Sequence[Article], now: datetime, *, source: str = "", complete: bool = False
) -> IngestResult:
    """Insert new articles and update edited ones, in one transaction.

    New articles are inserted oldest-published first, so their ``seq`` (the order the
    publisher saw them in) follows publication order within one scan.  ``complete``:
    ``scanned`` is everything ``source`` offers (a Markdown directory), so its stored
    articles missing from it are marked removed; a feed shows only its latest items,
    so it is never complete.  A removed article that comes back is an edit, not news.
    """
    async with engine.begin() as conn:
        return await ingest_on(conn, scanned, now, source=source, complete=complete)


async def ingest_on(
    conn: AsyncConnection, scanned: Sequence[Article], now: datetime, *, source: str = "", complete: bool = False
) -> IngestResult:
    """:func:`ingest` in the caller's transaction: a dry run stores, plans, then rolls it all back."""
    result = IngestResult()
    await serialize(conn, Exclusive.INGEST)  # another scan (a node, the CLI) may store the same article
    known: dict[str, tuple[str, bool]] = {}
    ids = [a.id for a in scanned]
    for chunk in _chunks(ids):
        rows = await conn.execute(
            select(articles.c.id, articles.c.content_hash, articles.c.removed_at).where(articles.c.id.in_(chunk))
        )
        known.update({row.id: (row.content_hash, row.removed_at is not None) for row in rows})
    for article in sorted(scanned, key=lambda a: (a.published, a.id)):
        row = _row(article, source)
        if article.id not in known:
            await conn.execute(insert(articles).values(**row, first_seen_at=now, changed_at=now))
            result.new.append(article)
        elif known[article.id] != (row["content_hash"], False):
            await conn.execute(
                update(articles).where(articles.c.id == article.id).values(**row, changed_at=now)
            )
            result.updated.append(article)
        else:
            result.unchanged += 1
    if complete:
        gone = await conn.execute(
            update(articles)
            .where(articles.c.source == source, articles.c.removed_at.is_(None), articles.c.id.not_in(ids))
            .values(removed_at=now, changed_at=now)
            .returning(articles.c.id)
        )
        result.removed = sorted(gone.scalars())
    return result


async def latest(engine: AsyncEngine, limit: int | None = None) -> list[Article]:
    """Published articles, newest first by published date (the feeds' order)."""
    query = (
        select(articles.c.data).where(articles.c.removed_at.is_(None))
        .order_by(articles.c.published.desc(), articles.c.id)
    )
    if limit is not None:
        query = query.limit(limit)
    async with engine.connect() as conn:
        rows = await conn.execute(query)
        return [Article.from_dict(json.loads(row.data)) for row in rows]


async def revision(engine: AsyncEngine) -> tuple[object, ...]:
    """What changes whenever an article is stored, edited or removed (the newest ``seq``
    and ``changed_at``): a node compares it to know its feeds are stale."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(func.max(articles.c.seq), func.max(articles.c.changed_at)))).one()
        return tuple(row)


async def by_seq(conn: AsyncConnection, seqs: Sequence[int]) -> list[Article]:
    """The articles with these sequence numbers, in the order given."""
    rows = await conn.execute(select(articles.c.seq, articles.c.data).where(articles.c.seq.in_(seqs)))
    found = {row.seq: Article.from_dict(json.loads(row.data)) for row in rows}
    return [found[s] for s in seqs if s in found]


async def newest_seq(conn: AsyncConnection) -> int:
    """The sequence number of the last article seen (0 when there is none)."""
    return (await conn.execute(select(func.coalesce(func.max(articles.c.seq), 0)))).scalar_one()


async def all_tags(conn: AsyncConnection) -> list[str]:
    """Every tag used by a stored article, sorted (the topics subscribers can pick)."""
    found: dict[str, str] = {}
    for (tags,) in await conn.execute(select(articles.c.tags).where(articles.c.removed_at.is_(None))):
        for tag in json.loads(tags):
            found.setdefault(slugify(tag), tag)
    return sorted(found.values(), key=str.casefold)


async def by_slug(engine: AsyncEngine, slug: str) -> Article | None:
    """The article published under ``slug`` (the newest one, should two ever share it)."""
    query = (
        select(articles.c.data).where(articles.c.slug == slug, articles.c.removed_at.is_(None))
        .order_by(articles.c.seq.desc()).limit(1)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    return Article.from_dict(json.loads(row.data)) if row else None
