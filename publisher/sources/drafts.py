"""Drafts as an operator looks them up: the store knows them only as rows of draft files
(:func:`publisher.store.source_files.drafts`), so a page of them is read from the files.

A draft is never stored as an article (publishing it is the author's step), but the
scans remember which files are drafts: the dashboard pages through those rows by index
and parses just the files of one page, never a walk of the content directories.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.config import Settings
from publisher.content.model import Article
from publisher.sources.directories import MARKDOWN_PREFIX, markdown_source
from publisher.sources.markdown_dir import is_draft
from publisher.store import source_files


@dataclass(frozen=True)
class Draft:
    """A draft file's article, and where it is (its source's key and its path there)."""

    article: Article
    source: str
    path: str


def _read(settings: Settings, found: Sequence[tuple[str, str]]) -> list[Draft]:
    """The drafts of these files that still read as drafts with an article (a file edited
    or gone since the last scan is left out until the next scan says what it is)."""
    from publisher.content.markdown import read_article  # the parsers: only when a draft is shown

    drafts = []
    for source, path in found:
        file = Path(source.removeprefix(MARKDOWN_PREFIX)) / path
        try:
            data = file.read_bytes()
        except OSError:
            continue
        parsed = read_article(data, str(file), settings.site.url, limits=settings.content.limits)
        if parsed.article is not None and is_draft(parsed, file):
            drafts.append(Draft(parsed.article, source, path))
    return drafts


async def drafts_page(
    engine: AsyncEngine, settings: Settings, after: tuple[str, str] | None, limit: int
) -> list[Draft]:
    """Up to ``limit`` drafts by source and path after ``(source, path)`` ``after``."""
    async with engine.connect() as conn:
        found = await source_files.drafts(conn, after, limit)
    return await asyncio.to_thread(_read, settings, found)


async def find_draft(engine: AsyncEngine, settings: Settings, article_id: str) -> Draft | None:
    """The draft with this id in one of the configured Markdown directories, if any."""
    sources = [markdown_source(directory) for directory in settings.markdown_dirs]
    async with engine.connect() as conn:
        found = await source_files.draft_file(conn, sources, article_id)
    drafts = await asyncio.to_thread(_read, settings, [found] if found else [])
    return drafts[0] if drafts else None
