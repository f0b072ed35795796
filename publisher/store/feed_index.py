"""The feeds' index of the published articles, and their prepared entries, in the store.

A feed shows its newest articles only (``[feeds] max_entries``), so the feed shelf
builds each one from a LIMIT query here instead of reading the whole archive:
``feed_entries`` holds one row per published article (its date, the content hash and
``changed_at`` it was indexed at, and its prepared entry once rendered) and
``feed_tags`` one row per article and tag slug.  :func:`sync` brings both in step
with ``articles`` from the store alone, whoever changed it (this node's scan, the
CLI beside the daemon, another node), so the index never depends on a change being
reported to the process that builds the feeds.  The rows are keyed by the article's
content hash and ``changed_at``: an edit, a removal or a return makes the row stale,
and a stale row's cached entry goes with it.

``feed_documents`` keeps the documents the shelf last built, each with a digest of
the input it was built from (:class:`BuiltFeed`): a shelf that starts empty, or whose
documents are older than another node's, takes the stored ones whose input is still
the current one instead of rendering and compressing them again.  The meta table keeps
every feed's input as of the last build and what it was built at (the store's revision
and the settings, :func:`inputs_at`): a build that finds them unmoved, in any process,
knows every feed's input without a query per feed.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, RowMapping, bindparam, delete, exists, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from publisher.content.slug import spelled_slugs
from publisher.store.articles import chunks
from publisher.store import meta
from publisher.store.db import Exclusive, serialize
from publisher.store.schema import articles, feed_documents, feed_entries, feed_tags

_BATCH = 500  # articles indexed per round trip (and under SQLite's bound-parameter limit)

_LIVE = articles.c.removed_at.is_(None)
# Published articles whose index row is missing or stale.
_STALE = (
    select(articles.c.seq, articles.c.id, articles.c.content_hash, articles.c.changed_at, articles.c.published,
           articles.c.tags)
    .select_from(articles.outerjoin(feed_entries, feed_entries.c.article_id == articles.c.id))
    .where(_LIVE, or_(feed_entries.c.article_id.is_(None), feed_entries.c.content_hash != articles.c.content_hash,
                      feed_entries.c.changed_at != articles.c.changed_at))
)
# Index rows of articles no longer published.
_GONE = select(feed_entries.c.article_id).where(
    ~exists().where(articles.c.id == feed_entries.c.article_id, _LIVE)
)


@dataclass(frozen=True)
class Candidate:
    """One article as a feed's selection sees it: equal candidates give equal entries."""

    article_id: str
    content_hash: str
    changed_at: datetime
    tag: str  # the tag as this article spells it ("" in the site feed)


async def sync(engine: AsyncEngine) -> bool:
    """Bring the index in step with ``articles``; False when it already was.

    A read finds out first, so a build with nothing changed takes no write lock.  The
    writes wait for any scan storing articles (the ingest lock), so two nodes indexing
    at once write one after the other, and the second finds nothing left to do.
    Articles are indexed in batches by ``seq``: the first sync of a large archive holds
    a batch in memory at a time, not the archive.
    """
    async with engine.connect() as conn:
        behind = (await conn.execute(select(exists(_STALE.limit(1)) | exists(_GONE.limit(1))))).scalar_one()
    if not behind:
        return False
    async with engine.begin() as conn:
        await serialize(conn, Exclusive.INGEST)
        await _forget(conn, list((await conn.execute(_GONE)).scalars()))
        after = 0
        while rows := (await conn.execute(_STALE.where(articles.c.seq > after).order_by(articles.c.seq)
                                          .limit(_BATCH))).all():
            await _forget(conn, [row.id for row in rows])
            await conn.execute(insert(feed_entries), [
                {"article_id": row.id, "content_hash": row.content_hash, "changed_at": row.changed_at,
                 "published": row.published} for row in rows
            ])
            tags = [{"article_id": row.id, "slug": slug, "tag": tag, "published": row.published}
                    for row in rows for slug, tag in spelled_slugs(json.loads(row.tags)).items()]
            if tags:
                await conn.execute(insert(feed_tags), tags)
            after = rows[-1].seq
    return True


async def _forget(conn: AsyncConnection, ids: Sequence[str]) -> None:
    for chunk in chunks(ids):
        await conn.execute(delete(feed_tags).where(feed_tags.c.article_id.in_(chunk)))
        await conn.execute(delete(feed_entries).where(feed_entries.c.article_id.in_(chunk)))


async def tag_counts(conn: AsyncConnection) -> dict[str, tuple[str, int]]:
    """Tag slug → (one of its spellings, how many published articles have it)."""
    query = select(feed_tags.c.slug, func.min(feed_tags.c.tag), func.count()).group_by(feed_tags.c.slug)
    return {slug: (tag, count) for slug, tag, count in await conn.execute(query)}


async def newest(conn: AsyncConnection, tag_slug: str, limit: int, offset: int = 0) -> list[Candidate]:
    """A feed's articles, newest first by date (ties by ascending id, as Python orders
    strings), from ``offset``: the site feed's (``tag_slug`` "") or one tag's."""
    if tag_slug:
        query = (
            select(feed_tags.c.article_id, feed_entries.c.content_hash, feed_entries.c.changed_at, feed_tags.c.tag)
            .join(feed_entries, feed_entries.c.article_id == feed_tags.c.article_id)
            .where(feed_tags.c.slug == tag_slug)
            .order_by(feed_tags.c.published.desc(), _code_point_order(conn, feed_tags.c.article_id))
        )
    else:
        query = (
            select(feed_entries.c.article_id, feed_entries.c.content_hash, feed_entries.c.changed_at, literal(""))
            .order_by(feed_entries.c.published.desc(), _code_point_order(conn, feed_entries.c.article_id))
        )
    rows = await conn.execute(query.limit(limit).offset(offset))
    return [Candidate(*row) for row in rows]


async def listed(engine: AsyncEngine, tag_slug: str, limit: int, offset: int) -> tuple[list[str], int, str]:
    """A page of a listing (the archive, ``tag_slug`` "", or one tag's page), in its feed's
    order: the ids of its articles from ``offset``, how many it has in all, and the tag as
    one of its articles spells it ("" for the archive, or a tag no article has)."""
    async with engine.connect() as conn:
        ids = [candidate.article_id for candidate in await newest(conn, tag_slug, limit, offset)]
        if tag_slug:
            total, tag = (await conn.execute(
                select(func.count(), func.min(feed_tags.c.tag)).where(feed_tags.c.slug == tag_slug)
            )).one()
        else:
            total, tag = (await conn.execute(select(func.count()).select_from(feed_entries))).scalar_one(), ""
    return ids, total, tag or ""


def _code_point_order(conn: AsyncConnection, column: ColumnElement[str]) -> ColumnElement[str]:
    """``column`` compared as Python compares strings (by code point), so a feed built here
    and one built from a list of articles break ties alike: SQLite's default (BINARY)
    already compares UTF-8 bytes, which is code point order; PostgreSQL's database
    collation may not, its "C" collation does."""
    return column.collate("C") if conn.dialect.name == "postgresql" else column


async def cached_entries(conn: AsyncConnection, ids: Sequence[str], version: str) -> dict[str, str]:
    """The prepared entries (JSON, or "" for an article that can't be rendered) cached
    under ``version`` for these article ids, by id."""
    found: dict[str, str] = {}
    for chunk in chunks(ids):
        rows = await conn.execute(
            select(feed_entries.c.article_id, feed_entries.c.entry)
            .where(feed_entries.c.article_id.in_(chunk), feed_entries.c.version == version,
                   feed_entries.c.entry.is_not(None))
        )
        found.update({row.article_id: row.entry for row in rows})
    return found


async def keep_entries(engine: AsyncEngine, entries: Mapping[Candidate, str], version: str) -> None:
    """Cache each candidate's prepared entry under ``version``, unless its row changed
    meanwhile (then the entry is of content no longer published, and is dropped)."""
    if not entries:
        return
    query = (
        update(feed_entries)
        .where(feed_entries.c.article_id == bindparam("b_id"), feed_entries.c.content_hash == bindparam("b_hash"),
               feed_entries.c.changed_at == bindparam("b_changed"))
        .values(version=version, entry=bindparam("b_entry"))
    )
    async with engine.begin() as conn:
        await conn.execute(query, [
            {"b_id": c.article_id, "b_hash": c.content_hash, "b_changed": c.changed_at, "b_entry": entry}
            for c, entry in entries.items()
        ])


@dataclass(frozen=True)
class BuiltFeed:
    """What one feed's documents were built from: equal inputs give equal bytes."""

    input: str  # a digest of the channel's settings and the articles it went through
    went_through: int  # how many articles it went through (usable or not), newest first


async def built_feeds(conn: AsyncConnection) -> dict[str, BuiltFeed]:
    """What each feed stored in ``feed_documents`` was built from, by tag slug ("": the site's)."""
    rows = await conn.execute(
        select(feed_documents.c.slug, feed_documents.c.input, feed_documents.c.went_through).distinct()
    )
    return {row.slug: BuiltFeed(row.input, row.went_through) for row in rows}


async def stored_documents(conn: AsyncConnection, feeds: Mapping[str, BuiltFeed]) -> list[RowMapping]:
    """The stored documents of these feeds (tag slug → the input wanted), each row with
    ``path``, ``body``, ``gzipped``, ``content_type``, ``etag`` and ``last_modified``;
    a feed stored since from another input has no row here."""
    found: list[RowMapping] = []
    columns = (feed_documents.c.path, feed_documents.c.slug, feed_documents.c.input, feed_documents.c.body,
               feed_documents.c.gzipped, feed_documents.c.content_type, feed_documents.c.etag,
               feed_documents.c.last_modified)
    for chunk in chunks(list(feeds)):
        rows = await conn.execute(select(*columns).where(feed_documents.c.slug.in_(chunk)))
        found.extend(row for row in rows.mappings() if row["input"] == feeds[row["slug"]].input)
    return found


async def keep_documents(
    engine: AsyncEngine, built: Mapping[str, tuple[BuiltFeed, Sequence[Mapping[str, object]]]], gone: Collection[str]
) -> None:
    """Store each rebuilt feed's documents (tag slug → what it was built from and its
    documents, as dicts of ``feed_documents``' columns but ``slug``, ``input`` and
    ``went_through``) in place of its old ones, and forget the feeds ``gone``.

    Upserts: two nodes storing the same feed at once leave one's documents whole; an
    older input stored over a newer one is only a wasted build for the next reader,
    which compares inputs before it takes stored documents.
    """
    if not built and not gone:
        return
    # Each dialect's own INSERT (ON CONFLICT), imported here: a SQLite process never loads PostgreSQL's dialect.
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    upsert = dialect_insert(feed_documents)
    upsert = upsert.on_conflict_do_update(
        index_elements=[feed_documents.c.path],
        set_={column.name: upsert.excluded[column.name] for column in feed_documents.c if column.name != "path"},
    )
    rows = [{**doc, "slug": slug, "input": feed.input, "went_through": feed.went_through}
            for slug, (feed, docs) in built.items() for doc in docs]
    async with engine.begin() as conn:
        for chunk in chunks([*gone, *(slug for slug, (_, docs) in built.items() if not docs)]):
            await conn.execute(delete(feed_documents).where(feed_documents.c.slug.in_(chunk)))
        if rows:
            await conn.execute(upsert, rows)


INPUTS = "feed_inputs"  # the meta key of :func:`keep_inputs`


async def inputs_at(engine: AsyncEngine, at: str) -> dict[str, BuiltFeed] | None:
    """Every feed's input (by tag slug, in the order built) as :func:`keep_inputs` recorded
    it at ``at``; None when the last one recorded was at another point."""
    stored = await meta.get(engine, INPUTS)
    if stored is None or (recorded := json.loads(stored))["at"] != at:
        return None
    return {slug: BuiltFeed(digest, went_through) for slug, digest, went_through in recorded["feeds"]}


async def keep_inputs(engine: AsyncEngine, at: str, feeds: Mapping[str, BuiltFeed]) -> None:
    """Record every feed's input, all of them read at ``at`` (a digest of the store's revision
    and the settings that shape the feeds), for the next build in any process.

    The last build to record wins, whatever its age: a build whose ``at`` is not today's
    finds another recorded and checks every feed, and the documents are only taken from
    ``feed_documents`` if stored from these very inputs.
    """
    await meta.put(engine, INPUTS, json.dumps(
        {"at": at, "feeds": [[slug, feed.input, feed.went_through] for slug, feed in feeds.items()]}
    ))
