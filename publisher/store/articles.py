"""Articles in the store: tell new from edited from unchanged, and read them back.

Only this module turns Article objects into rows and back, so the JSON form lives in
one place (Article.to_dict / from_dict).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from publisher.content.model import Article, Problem
from publisher.content.slug import slugify
from publisher.store.db import Exclusive, serialize
from publisher.store.schema import articles, digests, scheduled_articles

log = logging.getLogger(__name__)

_CHUNK = 500  # stays under SQLite's bound-parameter limit
PAGE_LIMIT = 500  # the most articles one page (GET /api/articles) holds


class ArticleState(StrEnum):
    PUBLISHED = "published"
    REMOVED = "removed"  # its source no longer offers it, or an operator unpublished it
    SCHEDULED = "scheduled"  # dated in the future
    DRAFT = "draft"  # never stored: a Markdown file marked as a draft


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


@dataclass
class IngestResult:
    """What a scan changed: new articles get digests, edited ones only new feeds."""

    new: list[Article] = field(default_factory=list)
    updated: list[Article] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # ids a complete source no longer offers, or made drafts
    unchanged: int = 0
    skipped: list[Problem] = field(default_factory=list)  # errors that kept an input out
    scheduled: list[Article] = field(default_factory=list)  # dated in the future: stored (or edited) to wait

    @property
    def changed(self) -> bool:
        return bool(self.new or self.updated or self.removed)


def _data(article: Article) -> str:
    return json.dumps(article.to_dict(), ensure_ascii=False, sort_keys=True)


def _row(article: Article, source: str, content_hash: str) -> dict[str, object]:
    return {
        "id": article.id,
        "slug": article.slug,
        "content_hash": content_hash,
        "data": _data(article),
        "tags": json.dumps(list(article.tags), ensure_ascii=False),
        "published": article.published,
        "updated": article.updated,
        "source": source,
        "removed_at": None,
        "withdrawn_at": None,
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
    edit, not news.  An id that another source publishes (or has scheduled) is refused
    (``skipped``): no source takes over another's article and its feed GUID.

    An article dated after ``now`` is *scheduled*: kept in ``scheduled_articles``
    (edited there, removed with its file) until :func:`release` publishes it; one
    already published that gets a future date is unpublished until then.
    """
    async with engine.begin() as conn:
        return await ingest_on(conn, scanned, now, source=source, complete=complete, withdrawn=withdrawn)


async def ingest_on(
    conn: AsyncConnection, scanned: Sequence[Article], now: datetime, *, source: str = "", complete: bool = False,
    withdrawn: Sequence[str] = (),
) -> IngestResult:
    """:func:`ingest` in the caller's transaction: a dry run stores, plans, then rolls it all back."""
    result = IngestResult()
    await serialize(conn, Exclusive.INGEST)  # another scan (a node, the CLI) may store the same article
    ids = [a.id for a in scanned]
    known = await _known(conn, ids)
    waiting: dict[str, tuple[str, str]] = {}  # id → (content hash, source) of the scheduled ones
    for chunk in _chunks(ids):
        rows = await conn.execute(
            select(scheduled_articles.c.id, scheduled_articles.c.content_hash, scheduled_articles.c.source)
            .where(scheduled_articles.c.id.in_(chunk))
        )
        waiting.update({row.id: (row.content_hash, row.source) for row in rows})
    # Ids another source publishes or has scheduled, named by its file (or the source).
    taken = {i: k.source for i, k in known.items() if k.source != source and not k.removed}
    taken |= {i: owner for i, (_, owner) in waiting.items() if owner != source}
    taken |= {i: path for i, path in (await _source_paths(conn, sorted(taken))).items() if path}
    later: list[str] = []
    for article in sorted(scanned, key=lambda a: (a.published, a.id)):
        if article.id in taken:
            result.skipped.append(Problem(
                article.source_path or source, 0, f"id {article.id!r} is already published by {taken[article.id]}"
            ))
        elif article.published > now:
            later.append(article.id)
            await _schedule(conn, article, source, now, waiting.get(article.id), result)
        else:
            await _publish(conn, article, source, now, known.get(article.id), result)
    # A scheduled article leaves the queue when it is now a draft, dated now, or (complete) gone.
    published_now = [i for i in waiting if i not in taken and i not in later]
    dropped = scheduled_articles.c.id.in_([*withdrawn, *published_now])
    if complete:
        dropped = dropped | scheduled_articles.c.id.not_in(later)
    await conn.execute(delete(scheduled_articles).where(scheduled_articles.c.source == source, dropped))
    gone = articles.c.id.in_([*withdrawn, *later])
    if complete:
        gone = articles.c.id.not_in(ids) | gone
    removed = await conn.execute(
        update(articles)
        .where(articles.c.source == source, articles.c.removed_at.is_(None), gone)
        .values(removed_at=now, changed_at=now)
        .returning(articles.c.id)
    )
    result.removed = sorted(removed.scalars())
    return result


async def release(engine: AsyncEngine, now: datetime) -> IngestResult:
    """Publish the scheduled articles whose time has come: each moves into ``articles``
    as new (a new ``seq``, so every subscriber's next digest has it), or as an edit if
    it was published before."""
    async with engine.begin() as conn:
        return await release_on(conn, now)


async def release_on(conn: AsyncConnection, now: datetime) -> IngestResult:
    """:func:`release` in the caller's transaction (a dry run rolls it back)."""
    result = IngestResult()
    await serialize(conn, Exclusive.INGEST)
    rows = (await conn.execute(
        delete(scheduled_articles).where(scheduled_articles.c.publish_at <= now)
        .returning(scheduled_articles.c.source, scheduled_articles.c.content_hash, scheduled_articles.c.data)
    )).all()
    due = sorted(((Article.from_dict(json.loads(row.data)), row) for row in rows),
                 key=lambda pair: (pair[0].published, pair[0].id))
    known = await _known(conn, [article.id for article, _ in due])
    for article, row in due:
        await _publish(conn, article, row.source, now, known.get(article.id), result, row.content_hash)
    return result


async def next_release(engine: AsyncEngine) -> datetime | None:
    """When the earliest scheduled article is due (None: nothing is scheduled)."""
    async with engine.connect() as conn:
        return (await conn.execute(select(func.min(scheduled_articles.c.publish_at)))).scalar_one()


async def scheduled(engine: AsyncEngine) -> list[Article]:
    """The scheduled articles, soonest first."""
    query = select(scheduled_articles.c.data).order_by(scheduled_articles.c.publish_at, scheduled_articles.c.id)
    async with engine.connect() as conn:
        return [Article.from_dict(json.loads(row.data)) for row in await conn.execute(query)]


@dataclass(frozen=True)
class _Known:
    """What ingest needs to know of a stored article."""

    content_hash: str
    removed: bool
    source: str
    withdrawn: bool  # unpublished by an operator: only an edit brings it back


async def _known(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, _Known]:
    """The stored articles among ``ids``."""
    known: dict[str, _Known] = {}
    for chunk in _chunks(ids):
        rows = await conn.execute(
            select(articles.c.id, articles.c.content_hash, articles.c.removed_at, articles.c.source,
                   articles.c.withdrawn_at)
            .where(articles.c.id.in_(chunk))
        )
        known.update({
            row.id: _Known(row.content_hash, row.removed_at is not None, row.source, row.withdrawn_at is not None)
            for row in rows
        })
    return known


async def _publish(
    conn: AsyncConnection, article: Article, source: str, now: datetime, known: _Known | None,
    result: IngestResult, content_hash: str | None = None,
) -> None:
    """Insert ``article`` as new, or update it as an edit, or count it unchanged.

    An edit's ``updated`` (Atom ``<updated>``, JSON Feed ``date_modified``) becomes
    ``now``, when the change was first seen, unless the article gives a later one of
    its own; and no ``updated`` is ever later than ``now`` (a feed's Last-Modified is
    its newest entry's).  The stored content hash is the parsed article's, so an
    unchanged re-scan matches it and leaves those dates alone.
    """
    content_hash = content_hash or article.content_hash()
    if known is not None and known.content_hash == content_hash and (known.withdrawn or not known.removed):
        result.unchanged += 1
        return
    if known is not None and article.updated <= article.published:  # no later date of its own: the edit's
        article = dataclasses.replace(article, updated=now)
    if article.updated > now:
        article = dataclasses.replace(article, updated=now)
    row = _row(article, source, content_hash)
    if known is None:
        await conn.execute(insert(articles).values(**row, first_seen_at=now, changed_at=now))
        result.new.append(article)
    else:
        await conn.execute(update(articles).where(articles.c.id == article.id).values(**row, changed_at=now))
        result.updated.append(article)


async def _schedule(
    conn: AsyncConnection, article: Article, source: str, now: datetime, waiting: tuple[str, str] | None,
    result: IngestResult,
) -> None:
    """Store (or edit) a scheduled article; an unchanged one is counted unchanged."""
    content_hash = article.content_hash()
    values = {"source": source, "publish_at": article.published, "content_hash": content_hash, "data": _data(article)}
    if waiting is None:
        await conn.execute(insert(scheduled_articles).values(id=article.id, first_seen_at=now, **values))
    elif waiting[0] != content_hash:
        await conn.execute(update(scheduled_articles).where(scheduled_articles.c.id == article.id).values(**values))
    else:
        result.unchanged += 1
        return
    result.scheduled.append(article)


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


async def stored(engine: AsyncEngine, ids: Sequence[str]) -> dict[str, Article]:
    """The stored articles with these ids (published or removed, not scheduled), by id."""
    found: dict[str, Article] = {}
    async with engine.connect() as conn:
        for chunk in _chunks(ids):
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


async def unpublish(engine: AsyncEngine, article_id: str, now: datetime) -> bool:
    """An operator takes an article down (or off the schedule): gone from feeds and pages
    until its source offers an edit of it; a digest already sent stays sent.  False if no
    published or scheduled article has this id."""
    async with engine.begin() as conn:
        await serialize(conn, Exclusive.INGEST)
        taken_down = await conn.execute(
            update(articles).where(articles.c.id == article_id, articles.c.removed_at.is_(None))
            .values(removed_at=now, changed_at=now, withdrawn_at=now)
        )
        unscheduled = await conn.execute(delete(scheduled_articles).where(scheduled_articles.c.id == article_id))
    return bool(taken_down.rowcount or unscheduled.rowcount)
