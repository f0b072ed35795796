"""Storing articles: tell new from edited from unchanged, schedule, release, take down.

Every source's articles arrive here (a scan of the Markdown directory, an upstream
feed, the API), so the rules of what is news live in one place: a new article gets
the next ``seq`` and so goes into digests; an edit only changes the feeds; an id that
another source publishes is refused; an article dated in the future waits in
``scheduled_articles`` until :func:`release`.  :mod:`publisher.store.articles` reads
what this writes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from publisher.content.model import Article, Problem, same_authored
from publisher.store.articles import chunks, source_paths_on
from publisher.store.db import Exclusive, serialize
from publisher.store.schema import articles, scheduled_articles
from publisher.webhooks.events import articles_published


@dataclass(frozen=True, slots=True)
class Ingested:
    """An article as a result tells of it, once stored: what the log lines, the CLI, the API
    and the scheduler read.  Not the :class:`Article`: a first build of 10,000 articles
    held every parsed one (~9.4 KB each, 94 MB) through the feed build and the CLI only
    for these fields; now they are freed with the scan that read them, before the feeds
    are built."""

    id: str
    slug: str
    title: str
    published: datetime
    updated: datetime  # as stored: an edit's is when it was seen

    @classmethod
    def of(cls, article: Article) -> Ingested:
        return cls(article.id, article.slug, article.title, article.published, article.updated)


@dataclass
class IngestResult:
    """What a scan changed: new articles get digests, edited ones only new feeds."""

    new: list[Ingested] = field(default_factory=list)
    updated: list[Ingested] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # ids a complete source no longer offers, or made drafts
    unchanged: int = 0
    skipped: list[Problem] = field(default_factory=list)  # errors that kept an input out
    scheduled: list[Ingested] = field(default_factory=list)  # dated in the future: stored (or edited) to wait
    # Published articles whose generated takeaways changed, not their author's text
    # ([content] takeaways switched, or a better suggester): stored anew, not an edit.
    regenerated: list[Ingested] = field(default_factory=list)
    # What the feeds must show anew: the ids of the articles new, edited or removed here,
    # and their tags before and after (an edit moving an article from tag a to tag b
    # changes both tag feeds), so a feed rebuild can touch only the feeds they are in.
    changed_ids: set[str] = field(default_factory=set)
    changed_tags: set[str] = field(default_factory=set)

    @property
    def changed(self) -> bool:
        return bool(self.new or self.updated or self.removed or self.regenerated)

    def __repr__(self) -> str:
        """Counts, not articles: asyncio's runner formats the repr of a command's result as
        it ends (checking its SIGINT handler), and the dataclass repr of a first build's
        10,000 articles, every body included, took ~250 MB at that moment."""
        return (f"IngestResult(new={len(self.new)}, updated={len(self.updated)}, removed={len(self.removed)}, "
                f"unchanged={self.unchanged}, skipped={len(self.skipped)}, scheduled={len(self.scheduled)}, "
                f"regenerated={len(self.regenerated)})")

    def add(self, other: IngestResult) -> None:
        """Fold ``other`` (another source's, or the release's) into this one."""
        for name in ("new", "updated", "removed", "skipped", "scheduled", "regenerated"):
            getattr(self, name).extend(getattr(other, name))
        self.unchanged += other.unchanged
        self.changed_ids |= other.changed_ids
        self.changed_tags |= other.changed_tags

    def touch(self, article_id: str, *tag_lists: Sequence[str]) -> None:
        """Note that the feeds show ``article_id`` anew, in the tags of ``tag_lists``."""
        self.changed_ids.add(article_id)
        for tags in tag_lists:
            self.changed_tags.update(tags)


def _data(data: dict[str, Any]) -> str:
    """An article's :meth:`~Article.to_dict` as the store keeps it."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def _row(article: Article, source: str, content_hash: str, data: dict[str, Any]) -> dict[str, object]:
    return {
        "id": article.id,
        "slug": article.slug,
        "content_hash": content_hash,
        "data": _data(data),
        "tags": json.dumps(list(article.tags), ensure_ascii=False),
        "published": article.published,
        "updated": article.updated,
        "source": source,
        "removed_at": None,
        "withdrawn_at": None,
    }


async def ingest(
    engine: AsyncEngine, scanned: Sequence[Article], now: datetime, *, source: str = "", complete: bool = False,
    withdrawn: Sequence[str] = (), kept: Collection[str] = (),
) -> IngestResult:
    """Insert new articles and update edited ones, in one transaction.

    New articles are inserted oldest-published first, so their ``seq`` (the order the
    publisher saw them in) follows publication order within one scan.  ``complete``:
    ``scanned`` is everything ``source`` offers (a Markdown directory), so its stored
    articles missing from it are marked removed; a feed shows only its latest items,
    so it is never complete.  ``withdrawn``: ids ``source`` now has as drafts, removed
    whether or not the scan is complete.  ``kept``: ids ``source`` still offers unchanged
    (an incremental scan did not read their files again), so they are neither stored nor
    removed.  A removed article that comes back is an
    edit, not news.  An id that another source publishes (or has scheduled) is refused
    (``skipped``): no source takes over another's article and its feed GUID.

    An article dated after ``now`` is *scheduled*: kept in ``scheduled_articles``
    (edited there, removed with its file) until :func:`release` publishes it; one
    already published that gets a future date is unpublished until then.
    """
    async with engine.begin() as conn:
        return await ingest_on(conn, scanned, now, source=source, complete=complete, withdrawn=withdrawn, kept=kept)


async def ingest_on(
    conn: AsyncConnection, scanned: Sequence[Article], now: datetime, *, source: str = "", complete: bool = False,
    withdrawn: Sequence[str] = (), kept: Collection[str] = (),
) -> IngestResult:
    """:func:`ingest` in the caller's transaction: a dry run stores, plans, then rolls it all back."""
    result = IngestResult()
    await serialize(conn, Exclusive.INGEST)  # another scan (a node, the CLI) may store the same article
    ids = [a.id for a in scanned]
    known = await _known(conn, ids)
    waiting: dict[str, tuple[str, str]] = {}  # id → (content hash, source) of the scheduled ones
    for chunk in chunks(ids):
        rows = await conn.execute(
            select(scheduled_articles.c.id, scheduled_articles.c.content_hash, scheduled_articles.c.source)
            .where(scheduled_articles.c.id.in_(chunk))
        )
        waiting.update({row.id: (row.content_hash, row.source) for row in rows})
    # Ids another source publishes or has scheduled, named by its file (or the source).
    taken = {i: k.source for i, k in known.items() if k.source != source and not k.removed}
    taken |= {i: owner for i, (_, owner) in waiting.items() if owner != source}
    taken |= {i: path for i, path in (await source_paths_on(conn, sorted(taken))).items() if path}
    later: set[str] = set()
    new = _NewRows(conn)
    for article in sorted(scanned, key=lambda a: (a.published, a.id)):
        if article.id in taken:
            result.skipped.append(Problem(
                article.source_path or source, 0, f"id {article.id!r} is already published by {taken[article.id]}"
            ))
        elif article.published > now:
            later.add(article.id)
            await _schedule(conn, article, source, now, waiting.get(article.id), result)
        else:
            await _publish(conn, article, source, now, known.get(article.id), result, new)
    await new.flush()
    # A scheduled article leaves the queue when it is now a draft, dated now, or (complete) gone.
    # The ids are compared here, not in one NOT IN (…): a directory offers more ids than
    # one statement may carry.
    kept = set(kept)
    offered = {*ids, *kept}
    published_now = {i for i in waiting if i not in taken and i not in later}
    dropped = {*withdrawn, *published_now}
    gone = {*withdrawn, *later}
    if complete:
        dropped |= {i for i in await _ids_of(conn, scheduled_articles, source) if i not in later and i not in kept}
        gone |= {i for i in await _ids_of(conn, articles, source) if i not in offered}
    for chunk in chunks(sorted(dropped)):
        await conn.execute(delete(scheduled_articles).where(scheduled_articles.c.source == source,
                                                            scheduled_articles.c.id.in_(chunk)))
    for chunk in chunks(sorted(gone)):
        removed = await conn.execute(
            update(articles)
            .where(articles.c.source == source, articles.c.removed_at.is_(None), articles.c.id.in_(chunk))
            .values(removed_at=now, changed_at=now)
            .returning(articles.c.id, articles.c.tags)
        )
        for row in removed:
            result.removed.append(row.id)
            result.touch(row.id, json.loads(row.tags))
    result.removed.sort()
    return result


async def _ids_of(conn: AsyncConnection, table: Table, source: str) -> list[str]:
    """The ids ``source`` has in ``table`` (the live ones of ``articles``)."""
    query = select(table.c.id).where(table.c.source == source)
    if table is articles:
        query = query.where(articles.c.removed_at.is_(None))
    return list((await conn.execute(query)).scalars())


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
    new = _NewRows(conn)
    for article, row in due:
        await _publish(conn, article, row.source, now, known.get(article.id), result, new, row.content_hash)
    await new.flush()
    return result


@dataclass(frozen=True)
class _Known:
    """What ingest needs to know of a stored article."""

    content_hash: str
    removed: bool
    source: str
    withdrawn: bool  # unpublished by an operator: only an edit brings it back
    tags: tuple[str, ...]  # as the feeds show it now (none while removed)
    updated: datetime  # as stored: an edit's is when it was seen


async def _known(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, _Known]:
    """The stored articles among ``ids``."""
    known: dict[str, _Known] = {}
    for chunk in chunks(ids):
        rows = await conn.execute(
            select(articles.c.id, articles.c.content_hash, articles.c.removed_at, articles.c.source,
                   articles.c.withdrawn_at, articles.c.tags, articles.c.updated)
            .where(articles.c.id.in_(chunk))
        )
        known.update({
            row.id: _Known(row.content_hash, row.removed_at is not None, row.source, row.withdrawn_at is not None,
                           () if row.removed_at is not None else tuple(json.loads(row.tags)), row.updated)
            for row in rows
        })
    return known


class _NewRows:
    """New articles' rows, inserted a batch at a time: one statement per article made a
    first scan of 10,000 files spend most of its time compiling the same INSERT.
    The rows keep their order (``published``, then id), and so their ``seq``."""

    BATCH = 500

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._rows: list[dict[str, object]] = []

    async def add(self, row: dict[str, object]) -> None:
        self._rows.append(row)
        if len(self._rows) >= self.BATCH:
            await self.flush()

    async def flush(self) -> None:
        if self._rows:
            await self._conn.execute(insert(articles), self._rows)
            await articles_published(self._conn, self._rows)
            self._rows = []


async def _publish(
    conn: AsyncConnection, article: Article, source: str, now: datetime, known: _Known | None,
    result: IngestResult, new: _NewRows, content_hash: str | None = None,
) -> None:
    """Insert ``article`` as new, or update it as an edit, or count it unchanged.

    An edit's ``updated`` (Atom ``<updated>``, JSON Feed ``date_modified``) becomes
    ``now``, when the change was first seen, unless the article gives a later one of
    its own; and no ``updated`` is ever later than ``now`` (a feed's Last-Modified is
    its newest entry's).  The stored content hash is the parsed article's, so an
    unchanged re-scan matches it and leaves those dates alone.

    An article whose author changed nothing but whose generated takeaways did
    (:func:`~publisher.content.model.same_authored`) is stored anew with its dates as they
    were: the feeds show the new takeaways, no reader sees an edit, no digest resends it.
    """
    data = article.to_dict()  # once: the content hash and the stored row are made of it
    content_hash = content_hash or article.content_hash(data)
    if known is not None and same_authored(known.content_hash, content_hash) and (
        known.withdrawn or not known.removed
    ):
        if known.content_hash == content_hash or known.withdrawn:  # taken down: only an edit brings it back
            result.unchanged += 1
            return
        article = dataclasses.replace(article, updated=known.updated)
        values = _row(article, source, content_hash, article.to_dict())
        await conn.execute(update(articles).where(articles.c.id == article.id).values(**values, changed_at=now))
        result.regenerated.append(Ingested.of(article))
        result.touch(article.id, article.tags, known.tags)
        return
    dated = article
    if known is not None and article.updated <= article.published:  # no later date of its own: the edit's
        article = dataclasses.replace(article, updated=now)
    if article.updated > now:
        article = dataclasses.replace(article, updated=now)
    row = _row(article, source, content_hash, data if article is dated else article.to_dict())
    if known is None:
        await new.add({**row, "first_seen_at": now, "changed_at": now})
        result.new.append(Ingested.of(article))
    else:
        await conn.execute(update(articles).where(articles.c.id == article.id).values(**row, changed_at=now))
        result.updated.append(Ingested.of(article))
    result.touch(article.id, article.tags, known.tags if known else ())


async def _schedule(
    conn: AsyncConnection, article: Article, source: str, now: datetime, waiting: tuple[str, str] | None,
    result: IngestResult,
) -> None:
    """Store (or edit) a scheduled article; an unchanged one is counted unchanged."""
    data = article.to_dict()
    content_hash = article.content_hash(data)
    values = {"source": source, "publish_at": article.published, "content_hash": content_hash, "data": _data(data)}
    if waiting is None:
        await conn.execute(insert(scheduled_articles).values(id=article.id, first_seen_at=now, **values))
    elif waiting[0] != content_hash:
        await conn.execute(update(scheduled_articles).where(scheduled_articles.c.id == article.id).values(**values))
    else:
        result.unchanged += 1
        return
    result.scheduled.append(Ingested.of(article))


async def unpublish(engine: AsyncEngine, article_id: str, now: datetime) -> bool:
    """:func:`unpublish_on` in a transaction of its own."""
    async with engine.begin() as conn:
        return await unpublish_on(conn, article_id, now)


async def unpublish_on(conn: AsyncConnection, article_id: str, now: datetime) -> bool:
    """An operator takes an article down (or off the schedule), in the caller's transaction:
    gone from feeds and pages until its source offers an edit of it; a digest already sent
    stays sent.  False if no published or scheduled article has this id."""
    await serialize(conn, Exclusive.INGEST)
    taken_down = await conn.execute(
        update(articles).where(articles.c.id == article_id, articles.c.removed_at.is_(None))
        .values(removed_at=now, changed_at=now, withdrawn_at=now)
    )
    unscheduled = await conn.execute(delete(scheduled_articles).where(scheduled_articles.c.id == article_id))
    return bool(taken_down.rowcount or unscheduled.rowcount)
