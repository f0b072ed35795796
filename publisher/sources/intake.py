"""Bringing articles in: every configured source, into the store.

Three kinds of source (``[[sources]]`` in the config): Markdown directories, read
whole at each scan (a file deleted is an article removed); upstream RSS/Atom feeds,
fetched politely on their own interval (a feed shows only its latest items, so an
item dropping off it is not a removal); and articles POSTed to the API.  Each is
stored under its own source name, so one source's scan never removes another's
articles.  An article is identified by its stable id (front matter ``id``, the
upstream guid, or the canonical URL): an edit updates the feeds and never sends it
again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from publisher.config import FeedSource, Settings
from publisher.content.model import Article
from publisher.content.sources import scan_directory
from publisher.store import articles as article_store
from publisher.store.articles import IngestResult

if TYPE_CHECKING:
    import aiohttp

    from publisher.sources.upstream import FeedFetcher

log = logging.getLogger(__name__)

API_SOURCE = "api"


def _now() -> datetime:
    return datetime.now(UTC)


class Intake:
    """Reads the sources of ``settings()`` (called each time: a reload applies at the next scan)."""

    def __init__(self, engine: AsyncEngine, settings: Callable[[], Settings]) -> None:
        self._engine = engine
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._fetchers: dict[str, FeedFetcher] = {}

    async def close(self) -> None:
        for fetcher in self._fetchers.values():
            await fetcher.close()
        if self._session is not None:
            await self._session.close()

    async def scan_markdown(self, *, into: AsyncConnection | None = None) -> IngestResult:
        """Every Markdown directory, whole; a broken file is logged and skipped.

        ``into``: store in the caller's transaction (a dry run rolls it back), logging
        what it stores as "(dry run)".
        """
        settings = self._settings()
        total = IngestResult()
        for directory in settings.markdown_dirs:
            scanned = await asyncio.to_thread(scan_directory, directory, settings.site.url)
            for problem in scanned.problems:
                log.error("skipped: %s", problem)
            # A file that does not parse may be an article being edited: nothing is
            # removed until the directory reads cleanly.
            complete = directory.is_dir() and not scanned.problems
            _add(total, await self.store(scanned.articles, f"markdown:{directory}", complete=complete, into=into))
        return total

    async def fetch_feeds(self) -> IngestResult:
        """The upstream feeds due now (their interval passed, no backoff pending)."""
        settings = self._settings()
        total = IngestResult()
        now = _now()
        for source in settings.feed_sources:
            fetcher = self._fetcher(source, settings)
            if not fetcher.due(now):
                continue
            result = await fetcher.fetch()
            if result.unchanged:
                continue
            if result.scan is None:
                log.error("feed %s: %s; next try after %s", source.url, result.error,
                          result.retry_at.isoformat() if result.retry_at else "the interval")
                continue
            for problem in result.scan.problems:
                log.error("skipped: %s", problem)
            _add(total, await self.store(result.scan.articles, f"feed:{source.url}"))
            fetcher.commit(result)  # only now: a crash before the store must not earn a 304
        return total

    async def store(
        self, articles: Sequence[Article], source: str, *, complete: bool = False, into: AsyncConnection | None = None
    ) -> IngestResult:
        if into is None:
            result = await article_store.ingest(self._engine, articles, _now(), source=source, complete=complete)
        else:
            result = await article_store.ingest_on(into, articles, _now(), source=source, complete=complete)
        dry = "" if into is None else "(dry run) "
        for article in result.new:
            log.info("%spublished %s (%s) from %s", dry, article.slug, article.id, source)
        for article in result.updated:
            log.info("%supdated %s (%s) from %s", dry, article.slug, article.id, source)
        for article_id in result.removed:
            log.info("%sremoved %s: %s no longer has it", dry, article_id, source)
        return result

    def _fetcher(self, source: FeedSource, settings: Settings) -> FeedFetcher:
        fetcher = self._fetchers.get(source.url)
        if fetcher is None:
            # Imported here: aiohttp's client and feedparser cost ~10 MB that a site
            # without upstream feeds (and every `publisher send`) should not carry.
            import aiohttp

            from publisher.sources.upstream import FeedFetcher, user_agent

            if self._session is None:
                self._session = aiohttp.ClientSession()
            name = hashlib.sha256(source.url.encode()).hexdigest()[:16]
            fetcher = self._fetchers[source.url] = FeedFetcher(
                source.url, user_agent=user_agent(settings.site.url), session=self._session,
                state_path=Path(settings.storage.data_dir) / "upstream" / f"{name}.json",
                timeout=source.timeout, max_bytes=source.max_bytes, max_redirects=source.max_redirects,
                interval=source.interval,
            )
        return fetcher


def _add(total: IngestResult, result: IngestResult) -> None:
    total.new += result.new
    total.updated += result.updated
    total.removed += result.removed
    total.unchanged += result.unchanged
