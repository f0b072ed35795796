"""Articles in the store: tell new from edited from unchanged, and read them back.

Only this module turns Article objects into rows and back, so the JSON form lives in
one place (Article.to_dict / from_dict).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from publisher.content.model import Article, Problem
from publisher.content.slug import slugify
from publisher.store.db import Exclusive, serialize
from publisher.store.schema import articles

_CHUNK = 500  # stays under SQLite's bound-parameter limit


@dataclass
class IngestResult:
    """What a scan changed: new articles get digests, edited ones only new feeds."""

    new: list[Article] = field(default_factory=list)
    updated: list[Article] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # ids a complete source no longer offers, or made drafts
    unchanged: int = 0
    skipped: list[Problem] = field(default_factory=list)  # errors that kept an input out

    @property
    def changed(self) -> bool:
        return bool(self.new or self.updated or self.removed)


def _row(article: Article, source: str, content_hash: str) -> dict[str, object]:
    return {
        "id": article.id,
        "slug": article.slug,
        "content_hash": content_hash,
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
    engine: AsyncEngine, scanned: Sequence[Article], now: datetime, *, source: str = "", complete: bool = False,
    withdrawn: Sequence[str] = (),
) -> IngestResult:
    """Insert new articles and update edited ones, in one transaction.

    New articles are inserted oldest-published first, so their ``seq`` (the order the
    publisher saw them in) follows publication order within one scan.  ``complete``:
    ``scanned`` is everything ``source`` offers (a Markdown directory), so its stored
    articles missing from it are marked removed; a feed shows only its latest items,
    so it is never complete.  ``withdrawn``: ids ``source`` now has as drafts, removed
    whether or not the scan is complete.  A removed article that comes back is an
    edit, not news.  An id that another source publishes is refused (``skipped``): no
    source takes over another's article and its feed GUID.

    An edit's ``updated`` (Atom ``<updated>``, JSON Feed ``date_modified``) becomes
    ``now``, when the change was first seen, unless the article gives a later one of
    its own.  The stored content hash is the parsed article's, so an unchanged re-scan
    matches it and leaves that date alone.
    """
    result = IngestResult()
    async with engine.begin() as conn:
        await serialize(conn, Exclusive.INGEST)  # another scan (a node, the CLI) may store the same article
        known: dict[str, tuple[str, bool, str]] = {}
        ids = [a.id for a in scanned]
        for chunk in _chunks(ids):
            rows = await conn.execute(
                select(articles.c.id, articles.c.content_hash, articles.c.removed_at, articles.c.source)
                .where(articles.c.id.in_(chunk))
            )
            known.update({row.id: (row.content_hash, row.removed_at is not None, row.source) for row in rows})
        taken = {i for i, (_, removed, owner) in known.items() if owner != source and not removed}
        owners = await _source_paths(conn, sorted(taken))
        for article in sorted(scanned, key=lambda a: (a.published, a.id)):
            content_hash = article.content_hash()
            if article.id in taken:
                result.skipped.append(Problem(
                    article.source_path or source, 0,
                    f"id {article.id!r} is already published by {owners.get(article.id) or known[article.id][2]}",
                ))
            elif article.id not in known:
                row = _row(article, source, content_hash)
                await conn.execute(insert(articles).values(**row, first_seen_at=now, changed_at=now))
                result.new.append(article)
            elif known[article.id][:2] != (content_hash, False):
                if article.updated <= article.published:  # no later date of its own: the edit's
                    article = dataclasses.replace(article, updated=now)
                await conn.execute(
                    update(articles).where(articles.c.id == article.id)
                    .values(**_row(article, source, content_hash), changed_at=now)
                )
                result.updated.append(article)
            else:
                result.unchanged += 1
        gone = articles.c.id.in_(withdrawn)
        if complete:
            gone = articles.c.id.not_in(ids) | gone
        if complete or withdrawn:
            removed = await conn.execute(
                update(articles)
                .where(articles.c.source == source, articles.c.removed_at.is_(None), gone)
                .values(removed_at=now, changed_at=now)
                .returning(articles.c.id)
            )
            result.removed = sorted(removed.scalars())
    return result


async def source_paths(engine: AsyncEngine, ids: Sequence[str]) -> dict[str, str]:
    """Where each of these published articles came from (its file, "api", a feed entry's URL)."""
    async with engine.connect() as conn:
        return await _source_paths(conn, ids)


async def _source_paths(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for chunk in _chunks(ids):
        rows = await conn.execute(
            select(articles.c.id, articles.c.data).where(articles.c.id.in_(chunk), articles.c.removed_at.is_(None))
        )
        found.update({row.id: json.loads(row.data).get("source_path", "") for row in rows})
    return found


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
