"""Articles in the store, read back: for the feeds, the pages, the digests and the operator.

What is stored, and when, is :mod:`publisher.store.ingest`'s job (new, edited or
unchanged; scheduled; released; taken down); this module reads the rows it writes.
An article is stored as the JSON of ``Article.to_dict`` and read with
``Article.from_dict``, so the form lives on the model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from publisher.content.model import Article
from publisher.content.slug import slugify
from publisher.store.article_state import ArticleState
from publisher.store.schema import articles, digests, scheduled_articles

log = logging.getLogger(__name__)

_CHUNK = 500  # stays under SQLite's bound-parameter limit
PAGE_LIMIT = 500  # the most articles one page (GET /api/articles) holds


@dataclass(frozen=True)
class StoredArticle:
    """An article as the store knows it, for operators (``publisher articles``, the API)."""

    article: Article
    state: ArticleState
    seq: int | None  # None while scheduled
    first_seen_at: datetime
    digests: tuple[str, ...] = ()  # the digests that carried it, oldest first (only from :func:`find`)

    def to_dict(self) -> dict[str, object]:
        a = self.article
        return {
            "id": a.id, "slug": a.slug, "title": a.title, "url": a.canonical_url, "tags": list(a.tags),
            "date": a.published.isoformat(), "updated": a.updated.isoformat(), "state": self.state,
            "seq": self.seq, "first_seen_at": self.first_seen_at.isoformat(),
        }


def chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    """``items`` in slices small enough for one ``IN (…)`` on every backend."""
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


async def next_release(engine: AsyncEngine) -> datetime | None:
    """When the earliest scheduled article is due (None: nothing is scheduled)."""
    async with engine.connect() as conn:
        return (await conn.execute(select(func.min(scheduled_articles.c.publish_at)))).scalar_one()


async def scheduled(engine: AsyncEngine, limit: int | None = None) -> list[Article]:
    """The scheduled articles, soonest first (the ``limit`` soonest)."""
    query = (select(scheduled_articles.c.data).order_by(scheduled_articles.c.publish_at, scheduled_articles.c.id)
             .limit(limit))
    async with engine.connect() as conn:
        return [Article.from_dict(json.loads(row.data)) for row in await conn.execute(query)]


async def source_paths(engine: AsyncEngine, ids: Sequence[str]) -> dict[str, str]:
    """Where each of these published articles came from (its file, "api", a feed entry's URL)."""
    async with engine.connect() as conn:
        return await source_paths_on(conn, ids)


async def source_paths_on(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, str]:
    """:func:`source_paths` in the caller's transaction (ingest asks while it stores)."""
    found: dict[str, str] = {}
    for chunk in chunks(ids):
        rows = await conn.execute(
            select(articles.c.id, articles.c.data).where(articles.c.id.in_(chunk), articles.c.removed_at.is_(None))
        )
        found.update({row.id: json.loads(row.data).get("source_path", "") for row in rows})
    return found


async def stored(engine: AsyncEngine, ids: Sequence[str]) -> dict[str, Article]:
    """The stored articles with these ids (published or removed, not scheduled), by id."""
    found: dict[str, Article] = {}
    async with engine.connect() as conn:
        for chunk in chunks(ids):
            rows = await conn.execute(select(articles.c.id, articles.c.data).where(articles.c.id.in_(chunk)))
            for row in rows:
                with suppress(UnreadableArticle):  # then the item is dated as if new to the store
                    found[row.id] = _read(row.id, row.data)
    return found


class UnreadableArticle(ValueError):
    """A stored article this version can't read back (a row an older version or damage left)."""


def _read(article_id: str, data: str) -> Article:
    """The article stored as ``data``; raises :class:`UnreadableArticle` naming it."""
    try:
        return Article.from_dict(json.loads(data))
    except (ValueError, KeyError, TypeError) as exc:
        raise UnreadableArticle(f"stored article {article_id} can't be read: {type(exc).__name__}: {exc}") from exc


async def latest(engine: AsyncEngine, limit: int | None = None) -> list[Article]:
    """Published articles, newest first by published date (the feeds' order).

    One that can't be read is logged with its id and left out: the others are still
    published (an edit from its source, or ``publisher articles remove``, repairs it).
    """
    query = (
        select(articles.c.id, articles.c.data).where(articles.c.removed_at.is_(None))
        .order_by(articles.c.published.desc(), articles.c.id)
    )
    if limit is not None:
        query = query.limit(limit)
    found = []
    async with engine.connect() as conn:
        for row in await conn.execute(query):
            try:
                found.append(_read(row.id, row.data))
            except UnreadableArticle as exc:
                log.error("%s; left out of the feeds and pages", exc)
    return found


async def page_dates(engine: AsyncEngine, limit: int) -> list[tuple[str, datetime]]:
    """The slug and last change (``updated``) of the newest ``limit`` published articles:
    what a sitemap lists, read from the columns alone (no article is parsed)."""
    query = (
        select(articles.c.slug, articles.c.updated).where(articles.c.removed_at.is_(None))
        .order_by(articles.c.published.desc(), articles.c.id).limit(limit)
    )
    async with engine.connect() as conn:
        return [(row.slug, row.updated) for row in await conn.execute(query)]


async def published_by_id(engine: AsyncEngine, ids: Sequence[str]) -> dict[str, Article | None]:
    """The published articles with these ids, by id; None for one that can't be read
    (logged with its id, as :func:`latest` does: left out, the others are published)."""
    found: dict[str, Article | None] = {}
    async with engine.connect() as conn:
        for chunk in chunks(ids):
            rows = await conn.execute(
                select(articles.c.id, articles.c.data).where(articles.c.id.in_(chunk), articles.c.removed_at.is_(None))
            )
            for row in rows:
                try:
                    found[row.id] = _read(row.id, row.data)
                except UnreadableArticle as exc:
                    log.error("%s; left out of the feeds and pages", exc)
                    found[row.id] = None
    return found


async def revision(engine: AsyncEngine) -> tuple[object, ...]:
    """What changes whenever an article is stored, edited or removed (the newest ``seq``
    and ``changed_at``): a node compares it to know its feeds are stale."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(func.max(articles.c.seq), func.max(articles.c.changed_at)))).one()
        return tuple(row)


async def by_seq(conn: AsyncConnection, seqs: Sequence[int], *, removed: bool = True) -> list[Article]:
    """The articles with these sequence numbers, in the order given (without ``removed``,
    only those still published).  Raises :class:`UnreadableArticle`: a digest must not
    go out silently without one of its articles."""
    query = select(articles.c.seq, articles.c.id, articles.c.data).where(articles.c.seq.in_(seqs))
    if not removed:
        query = query.where(articles.c.removed_at.is_(None))
    rows = await conn.execute(query)
    found = {row.seq: _read(row.id, row.data) for row in rows}
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


async def published_page(engine: AsyncEngine, *, after: int, limit: int) -> tuple[list[StoredArticle], int]:
    """Published articles by ``seq`` (the order first seen) after ``after``, and how many there are."""
    live = articles.c.removed_at.is_(None)
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(articles.c.seq, articles.c.data, articles.c.first_seen_at)
            .where(live, articles.c.seq > after).order_by(articles.c.seq).limit(limit)
        )
        page = [StoredArticle(Article.from_dict(json.loads(r.data)), ArticleState.PUBLISHED, r.seq, r.first_seen_at)
                for r in rows]
        total = (await conn.execute(select(func.count()).select_from(articles).where(live))).scalar_one()
    return page, total


async def find(engine: AsyncEngine, article_id: str) -> StoredArticle | None:
    """The article stored (or scheduled) under ``article_id``, with the digests that carried it."""
    async with engine.connect() as conn:
        row = (await conn.execute(
            select(articles.c.seq, articles.c.data, articles.c.first_seen_at, articles.c.removed_at)
            .where(articles.c.id == article_id)
        )).first()
        if row is None:
            waiting = (await conn.execute(
                select(scheduled_articles.c.data, scheduled_articles.c.first_seen_at)
                .where(scheduled_articles.c.id == article_id)
            )).first()
            if waiting is None:
                return None
            return StoredArticle(Article.from_dict(json.loads(waiting.data)), ArticleState.SCHEDULED, None,
                                 waiting.first_seen_at)
        # digests.article_seqs is a JSON list as json.dumps writes it: "[7]", "[9, 7, 3]".
        seq = row.seq
        carried = await conn.execute(
            select(digests.c.id).where(or_(
                digests.c.article_seqs == f"[{seq}]", digests.c.article_seqs.like(f"[{seq}, %"),
                digests.c.article_seqs.like(f"%, {seq}]"), digests.c.article_seqs.like(f"%, {seq}, %"),
            )).order_by(digests.c.created_at, digests.c.id)
        )
        state = ArticleState.PUBLISHED if row.removed_at is None else ArticleState.REMOVED
        return StoredArticle(Article.from_dict(json.loads(row.data)), state, seq, row.first_seen_at,
                             tuple(carried.scalars()))


async def published_before(
    engine: AsyncEngine, after: tuple[datetime, int] | None, limit: int
) -> list[StoredArticle]:
    """Up to ``limit`` published articles, newest first by date (then ``seq``), after the
    one dated and numbered ``after``: keyset paging, each page one LIMIT query."""
    c = articles.c
    query = select(c.seq, c.id, c.data, c.first_seen_at).where(c.removed_at.is_(None))
    if after is not None:
        date, seq = after
        query = query.where(or_(c.published < date, and_(c.published == date, c.seq < seq)))
    query = query.order_by(c.published.desc(), c.seq.desc()).limit(limit)
    async with engine.connect() as conn:
        return [StoredArticle(_read(row.id, row.data), ArticleState.PUBLISHED, row.seq, row.first_seen_at)
                for row in await conn.execute(query)]


async def scheduled_after(
    engine: AsyncEngine, after: tuple[datetime, str] | None, limit: int
) -> list[StoredArticle]:
    """Up to ``limit`` scheduled articles, soonest first (then by id), after the one due
    and named ``after`` (keyset paging on the ``publish_at`` index)."""
    c = scheduled_articles.c
    query = select(c.data, c.first_seen_at)
    if after is not None:
        due, article_id = after
        query = query.where(or_(c.publish_at > due, and_(c.publish_at == due, c.id > article_id)))
    query = query.order_by(c.publish_at, c.id).limit(limit)
    async with engine.connect() as conn:
        return [StoredArticle(Article.from_dict(json.loads(row.data)), ArticleState.SCHEDULED, None, row.first_seen_at)
                for row in await conn.execute(query)]
