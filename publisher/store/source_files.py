"""What each Markdown file gave at the last scan (the ``source_files`` table).

A scan compares the directory's stat results with these rows and reads only the files
that differ (:mod:`publisher.sources.markdown_dir`); the rows are written in the
transaction that stores the articles they produced, so they are the truth every node
and every restart starts from.  The rows hold no article: an unchanged file's article
is already in ``articles`` (or ``scheduled_articles``), keyed by ``article_id``.

A scan with nothing changed is mostly this module's :func:`load` and a comparison of
rows: a row is a named tuple (built from the database's tuple without a per-field
``__setattr__``, compared in C), and the few rows with problems are the only ones whose
JSON is decoded.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from publisher.store.articles import chunks
from publisher.store.schema import articles, scheduled_articles, source_files


class Outcome(StrEnum):
    """What a file gave at its last scan."""

    ARTICLE = "article"  # its article is stored from it (published or scheduled)
    DRAFT = "draft"  # a draft: checked, its id (if it parses) withdrawn
    BROKEN = "broken"  # an error kept it out: reported again at every scan
    LOST = "lost"  # parses, but another file has its id or slug
    REFUSED = "refused"  # parses, but another source publishes its id: parsed again at every scan


_OUTCOMES = {outcome.value: outcome for outcome in Outcome}  # a dict lookup: 10,000 rows a scan
# The outcomes a file is looked at again for at every scan (see :func:`load_told`).
UNSETTLED = (Outcome.BROKEN, Outcome.LOST, Outcome.REFUSED)

SAVE_BATCH = 500  # rows an INSERT of :func:`save` carries

StoredProblem = tuple[int, str, str]  # (line, message, severity) of a problem, without the file's path


class SourceFile(NamedTuple):
    """One file as the last scan found it; ``mtime_ns`` 0 makes the next scan read it
    again (a file written within the filesystem's timestamp granularity of being read
    may change again without its stat showing it)."""

    path: str  # relative to the directory, with "/" separators
    size: int
    mtime_ns: int
    content_hash: str  # SHA-256 of the bytes
    parsed_with: str  # the fingerprint of the parser's inputs beside the bytes
    outcome: Outcome
    article_id: str | None = None
    slug: str | None = None
    problems: tuple[StoredProblem, ...] = ()


async def load(conn: AsyncConnection, source: str) -> dict[str, SourceFile]:
    """The rows of ``source``, by path: plain tuples from the driver, the columns in
    :class:`SourceFile`'s order, an outcome looked up and problems decoded only where
    there are some."""
    return await _load(conn, source_files.c.source == source)


async def load_told(conn: AsyncConnection, source: str, paths: Collection[str]) -> dict[str, SourceFile]:
    """The rows a scan of only the ``paths`` the file watcher told of needs, by indexed
    queries, not the source's every row (100,000 of them cost ~0.3 s to load): those of
    ``paths``; of every file the last scan left unsettled (broken, lost or refused: their
    problems are reported and their articles offered again at every scan, and a broken
    one holds back every removal); and of the files sharing an id or a slug with those
    (:func:`load_sharing`), so their contest of ids and slugs goes as in a full scan."""
    c = source_files.c
    loaded: dict[str, SourceFile] = {}
    for chunk in chunks(sorted(paths)):
        loaded |= await _load(conn, c.source == source, c.path.in_(chunk))
    loaded |= await _load(conn, c.source == source, c.outcome.in_(UNSETTLED))
    return await load_sharing(conn, source, loaded, loaded.values())


async def load_sharing(
    conn: AsyncConnection, source: str, loaded: dict[str, SourceFile], rows: Iterable[SourceFile]
) -> dict[str, SourceFile]:
    """``loaded`` with the rows of every file sharing an id or a slug with ``rows``, and
    with those the new ones share one with, until none comes: what a file's contest for
    its id and slug can touch (indexed queries on each)."""
    c = source_files.c
    loaded = dict(loaded)
    asked: set[tuple[str, str]] = set()
    fresh = list(rows)
    while fresh:
        keys = {("id", r.article_id) for r in fresh if r.article_id} | {("slug", r.slug) for r in fresh if r.slug}
        keys -= asked
        asked |= keys
        found: dict[str, SourceFile] = {}
        for column, name in ((c.article_id, "id"), (c.slug, "slug")):
            for chunk in chunks(sorted(value for key, value in keys if key == name)):
                found |= await _load(conn, c.source == source, column.in_(chunk))
        fresh = [row for path, row in found.items() if path not in loaded]
        loaded |= found
    return loaded


async def _load(conn: AsyncConnection, *where: ColumnElement[Any]) -> dict[str, SourceFile]:
    """The rows ``where`` selects (see :func:`load`)."""
    c = source_files.c
    rows = await conn.execute(
        select(c.path, c.size, c.mtime_ns, c.content_hash, c.parsed_with, c.outcome, c.article_id, c.slug, c.problems)
        .where(*where)
    )
    outcomes, make = _OUTCOMES, SourceFile._make
    loaded: dict[str, SourceFile] = {}
    for path, size, mtime_ns, content_hash, parsed_with, outcome, article_id, slug, problems in rows:
        loaded[path] = make((path, size, mtime_ns, content_hash, parsed_with, outcomes[outcome], article_id, slug,
                             _problems(problems) if problems else ()))
    return loaded


def _problems(stored: str) -> tuple[StoredProblem, ...]:
    """A row's problems as :func:`save` wrote them (JSON lists of line, message, severity)."""
    return tuple((line, message, severity) for line, message, severity in json.loads(stored))


async def save(conn: AsyncConnection, source: str, changed: Sequence[SourceFile], gone: Sequence[str]) -> None:
    """Replace the rows of ``changed`` files and delete those of ``gone`` paths, in the
    caller's transaction (the one that stores their articles; it holds the ingest lock,
    so two nodes never interleave here)."""
    for chunk in chunks([*(f.path for f in changed), *gone]):
        await conn.execute(delete(source_files).where(source_files.c.source == source, source_files.c.path.in_(chunk)))
    for start in range(0, len(changed), SAVE_BATCH):  # a first scan's 10,000 rows as dicts at once: ~6 MB more
        await conn.execute(insert(source_files), [
            {
                "source": source, "path": f.path, "size": f.size, "mtime_ns": f.mtime_ns,
                "content_hash": f.content_hash, "parsed_with": f.parsed_with, "outcome": f.outcome,
                "article_id": f.article_id, "slug": f.slug,
                "problems": json.dumps(f.problems, ensure_ascii=False) if f.problems else None,
            }
            for f in changed[start:start + SAVE_BATCH]
        ])


async def sources(conn: AsyncConnection, prefix: str) -> list[str]:
    """The sources with rows here whose key starts with ``prefix`` ("markdown:")."""
    found = await conn.execute(
        select(source_files.c.source).where(source_files.c.source.startswith(prefix, autoescape=True)).distinct()
    )
    return sorted(found.scalars())


async def rename_source(conn: AsyncConnection, old: str, new: str) -> int:
    """Give everything ``old`` holds (its files, published and scheduled articles) to ``new``:
    the same directory under another path.  Returns the articles moved."""
    await conn.execute(update(source_files).where(source_files.c.source == old).values(source=new))
    await conn.execute(update(scheduled_articles).where(scheduled_articles.c.source == old).values(source=new))
    moved = await conn.execute(update(articles).where(articles.c.source == old).values(source=new))
    return moved.rowcount or 0


async def drafts(conn: AsyncConnection, after: tuple[str, str] | None, limit: int) -> list[tuple[str, str]]:
    """``(source, path)`` of up to ``limit`` files the last scans found to be drafts that
    parse, by source and path after ``after`` (keyset paging): the store knows drafts only
    as these rows, their articles are read from the files."""
    c = source_files.c
    query = select(c.source, c.path).where(c.outcome == Outcome.DRAFT, c.article_id.is_not(None))
    if after is not None:
        query = query.where(or_(c.source > after[0], and_(c.source == after[0], c.path > after[1])))
    rows = await conn.execute(query.order_by(c.source, c.path).limit(limit))
    return [(row.source, row.path) for row in rows]


async def draft_file(conn: AsyncConnection, sources: Sequence[str], article_id: str) -> tuple[str, str] | None:
    """``(source, path)`` of the draft with this id in one of ``sources`` (by the id index), if any."""
    c = source_files.c
    for source in sources:
        row = (await conn.execute(
            select(c.path).where(c.source == source, c.article_id == article_id, c.outcome == Outcome.DRAFT).limit(1)
        )).first()
        if row is not None:
            return source, row.path
    return None
