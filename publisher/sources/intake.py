"""Bringing articles in: every configured source, into the store.

Three kinds of source (``[[sources]]`` in the config): Markdown directories, of
which each scan reads only the files changed since the last (a file deleted is an
article removed); upstream RSS/Atom feeds,
fetched politely on their own interval (a feed shows only its latest items, so an
item dropping off it is not a removal); and articles POSTed to the API.  Each is
stored under its own source name, so one source's scan never removes another's
articles.  An article is identified by its stable id (front matter ``id``, the
upstream guid, or the canonical URL): an edit updates the feeds and never sends it
again.

:class:`Intake` is the service of this step: it reads, stores, then has the feed
shelf rebuilt and tells the root what the node should know (a scan finished, when the
next scheduled article is due, that new articles want sending) through callbacks, so
it imports neither the runtime nor delivery.  It also answers the reads of what it
stored (the archive pages, the API's listing, ``publisher articles`` and ``status``, the
dashboard's pages of articles and drafts), so no front end calls the article store
itself.  It is long because it is both halves of that one service, each method short.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from publisher import clock, metrics
from publisher.config import Settings, UpstreamFeed
from publisher.content.model import Article, Problem, ScanResult, Severity
from publisher.feeds.shelf import FeedShelf
from publisher.sources.drafts import Draft, drafts_page, find_draft
from publisher.sources.markdown_dir import DirectoryScan, scan_changes, scan_directory, scan_told
from publisher.sources.directories import MARKDOWN_PREFIX, markdown_source, moved_directory, told_by_directory
from publisher.store import articles as article_store
from publisher.store import ingest as article_ingest
from publisher.store import source_files
from publisher.store.articles import StoredArticle
from publisher.store.source_files import Outcome
from publisher.store.ingest import IngestResult

if TYPE_CHECKING:
    import aiohttp

    from publisher.sources.upstream import FeedFetcher, FetchResult

log = logging.getLogger(__name__)

API_SOURCE = "api"

Job = Callable[[], Awaitable[object]]
Opener = Callable[[], AbstractAsyncContextManager[AsyncConnection]]  # a transaction to write in


def check_content(settings: Settings) -> list[ScanResult]:
    """Every Markdown directory read as a scan reads it, without the store (``publisher check``):
    it needs only the settings, so checking builds no database engine."""
    site_url, limits = settings.site.url, settings.content.limits
    return [scan_directory(directory, site_url, limits=limits) for directory in settings.markdown_dirs]


@dataclass(frozen=True)
class Fetched:
    """An upstream feed fetched and parsed, its articles not stored yet."""

    url: str
    fetcher: FeedFetcher
    result: FetchResult


class Intake:
    """Brings articles in from every source of ``settings`` into the store, then has the feeds rebuilt.

    ``settings`` is replaced by the root on a reload; each scan or fetch reads it once,
    at its start.  Collaborators, all given by the root: the store's ``engine``; the
    ``shelf`` rebuilt after a change; ``later`` to run a job in the background, tracked;
    ``on_scanned(at)`` when a Markdown scan finished; ``on_next_release(at | None)``
    after every change, with when the earliest scheduled article is due;
    ``on_new_articles()`` to send what was just published to instant subscribers.
    """

    def __init__(
        self, settings: Settings, engine: AsyncEngine, shelf: FeedShelf, *,
        later: Callable[[str, Job], None],
        on_scanned: Callable[[datetime], None],
        on_next_release: Callable[[datetime | None], None],
        on_new_articles: Job,
    ) -> None:
        self.settings = settings
        self._engine = engine
        self._shelf = shelf
        self._later = later
        self._on_scanned = on_scanned
        self._on_next_release = on_next_release
        self._on_new_articles = on_new_articles
        self._scan_lock = asyncio.Lock()  # one store of articles at a time: the watcher and the interval scan
        self._fetch_lock = asyncio.Lock()  # one upstream fetch at a time (a fetcher's rule), outside _scan_lock
        self._session: aiohttp.ClientSession | None = None
        self._fetchers: dict[str, FeedFetcher] = {}
        self._placed: list[Path] | None = None  # the Markdown directories checked for a move

    async def close(self) -> None:
        for fetcher in self._fetchers.values():
            await fetcher.close()
        if self._session is not None:
            await self._session.close()

    def check_content(self) -> list[ScanResult]:
        """Every Markdown directory read as a scan reads it, without the store (see :func:`check_content`)."""
        return check_content(self.settings)

    async def scan(self, told: Collection[Path] | None = None) -> IngestResult:
        """Read the Markdown directories, store what is new, edited or removed, rebuild feeds if needed.

        A broken article is logged as ``path:line: message`` and skipped; the others
        are published.  ``told``: the paths the file watcher saw change; only those are
        looked at (see :meth:`scan_markdown`).
        """
        async with self._scan_lock:  # the watcher and the interval scan may both fire
            started = time.perf_counter()
            result = await self.scan_markdown(told=told)
            await self._published(result)
            metrics.scan_finished(time.perf_counter() - started)
            self._on_scanned(clock.now())
            return result

    async def fetch_feeds(self) -> IngestResult:
        """Fetch the upstream feeds that are due; store and publish what is new.

        The fetch (network and parsing, seconds for a slow or big feed) runs outside the
        scan lock: a Markdown scan or an article POSTed to the API waits only for the store.
        """
        async with self._fetch_lock:
            fetched = await self._fetch_due()
            async with self._scan_lock:
                result = await self._store_fetched(fetched)
                await self._published(result)
            return result

    async def accept(self, articles: Sequence[Article], *, withdrawn: Sequence[str] = ()) -> IngestResult:
        """Articles POSTed to the API (and the ids of those now posted as drafts, which
        are unpublished); new ones go to instant subscribers in the background."""
        async with self._scan_lock:
            result = await self.store(articles, API_SOURCE, withdrawn=withdrawn)
            await self._published(result)
        if result.new:
            self._later("instant", self._on_new_articles)
        return result

    async def unpublish(self, article_id: str, *, within: Opener | None = None) -> bool:
        """Take an article down (``publisher articles remove``, ``DELETE /api/articles/…``, the
        dashboard) and rebuild the feeds; False if no published or scheduled article has this
        id.  ``within``: the transaction to do it in (the dashboard's, which records it)."""
        async with self._scan_lock:
            async with (within or self._engine.begin)() as conn:
                found = await article_ingest.unpublish_on(conn, article_id, clock.now())
            if found:
                await self._published(IngestResult(removed=[article_id]))
        return found

    async def publish_due(self) -> None:
        """The leader's job at a scheduled article's time: publish what is due (feeds, the
        WebSub ping) and send it to instant subscribers."""
        async with self._scan_lock:
            result = await self.release()
            await self._published(result)
        if result.new:
            await self._on_new_articles()

    # --- reads of what is stored ----------------------------------------------------------

    async def latest(self, limit: int | None = None) -> list[Article]:
        """The published articles, newest first (at most ``limit``)."""
        return await article_store.latest(self._engine, limit)

    async def scheduled(self) -> list[Article]:
        """The articles waiting for their date, soonest first."""
        return await article_store.scheduled(self._engine)

    async def by_slug(self, slug: str) -> Article | None:
        """The published article with this slug (its archive page)."""
        return await article_store.by_slug(self._engine, slug)

    async def find(self, article_id: str) -> StoredArticle | None:
        """One article with its state, first sighting and digests, whatever its state."""
        return await article_store.find(self._engine, article_id)

    async def published_page(self, *, after: int, limit: int) -> tuple[list[StoredArticle], int]:
        """Up to ``limit`` published articles with a ``seq`` above ``after``, and how many are published."""
        return await article_store.published_page(self._engine, after=after, limit=limit)

    async def published_before(self, after: tuple[datetime, int] | None, limit: int) -> list[StoredArticle]:
        """A page of published articles, newest first (see :func:`publisher.store.articles.published_before`)."""
        return await article_store.published_before(self._engine, after, limit)

    async def scheduled_after(self, after: tuple[datetime, str] | None, limit: int) -> list[StoredArticle]:
        """A page of scheduled articles, soonest first (see :func:`publisher.store.articles.scheduled_after`)."""
        return await article_store.scheduled_after(self._engine, after, limit)

    async def drafts(self, after: tuple[str, str] | None, limit: int) -> list[Draft]:
        """A page of drafts, by directory and path (see :mod:`publisher.sources.drafts`)."""
        return await drafts_page(self._engine, self.settings, after, limit)

    async def draft(self, article_id: str) -> Draft | None:
        return await find_draft(self._engine, self.settings, article_id)

    async def _published(self, result: IngestResult) -> None:
        metrics.articles_published(len(result.new))
        if result.changed or not self._shelf.docs:
            await self._shelf.build()
        self._on_next_release(await article_store.next_release(self._engine))

    async def scan_markdown(
        self, *, into: AsyncConnection | None = None, told: Collection[Path] | None = None
    ) -> IngestResult:
        """Every Markdown directory, reading only the files changed since the last scan (as the
        store remembers it: :mod:`publisher.sources.markdown_dir`); a broken file is logged
        and skipped (``skipped``), at every scan.  Then every source's scheduled articles
        whose time has come are published.

        ``into``: store in the caller's transaction (a dry run rolls it back), logging
        what it stores as "(dry run)".  ``told``: the paths the file watcher saw change
        (new, edited or removed): only those are stat'ed, the other files are taken as the
        store remembers them, and a directory with none of them is not looked at (a walk
        of a large archive costs seconds).  The interval scan and ``build`` walk every
        directory: they catch what the watcher missed.
        """
        settings = self.settings
        site_url, limits = settings.site.url, settings.content.limits
        total = IngestResult()
        if self._placed != settings.markdown_dirs:
            async with _within(self._engine, into, write=False) as conn:
                stored = await source_files.sources(conn, MARKDOWN_PREFIX)
            if moved := moved_directory(settings.markdown_dirs, stored):
                async with _within(self._engine, into) as conn:
                    count = await source_files.rename_source(conn, *moved)
                log.info("content directory moved from %s to %s: its %d articles keep their ids and dates",
                         *(source.removeprefix(MARKDOWN_PREFIX) for source in moved), count)
            self._placed = list(settings.markdown_dirs)
        for directory, paths in told_by_directory(settings.markdown_dirs, told).items():
            source = markdown_source(directory)
            async with _within(self._engine, into, write=False) as conn:
                if paths is None:
                    before = await source_files.load(conn, source)
                else:  # only the rows the told paths can change, by indexed queries
                    scan = await scan_told(conn, source, directory, site_url, limits, paths)
            if paths is None:
                scan = await asyncio.to_thread(scan_changes, directory, site_url, limits, before)
            _log_problems(scan.result.problems)
            stored = IngestResult(unchanged=len(scan.kept))
            if not scan.settled:
                # A told scan names what left from the rows (the store need not list the
                # source's every id to find it); a walk offers all, the rest is removed.
                complete, withdrawn = (scan.complete, scan.withdrawn) if paths is None else (False, _withdrawn(scan))
                async with _within(self._engine, into) as conn:
                    stored.add(await article_ingest.ingest_on(
                        conn, scan.result.articles, clock.now(), source=source, complete=complete,
                        withdrawn=withdrawn, kept=scan.kept,
                    ))
                    scan.refuse({problem.path for problem in stored.skipped})
                    await source_files.save(conn, source, *scan.changes())
                self._log_stored(stored, source, dry=into is not None)
            stored.skipped[:0] = scan.result.errors
            total.add(stored)
        total.add(await self.release(into=into))
        return total

    async def release(self, *, into: AsyncConnection | None = None) -> IngestResult:
        """Publish the scheduled articles whose time has come (``into``: in the caller's transaction)."""
        async with _within(self._engine, into) as conn:
            result = await article_ingest.release_on(conn, clock.now())
        dry = "" if into is None else "(dry run) "
        for article in result.new + result.updated:
            log.info("%spublished %s (%s), scheduled for %s", dry, article.slug, article.id,
                     article.published.isoformat())
        return result

    async def _fetch_due(self) -> list[Fetched]:
        """Fetch and parse the upstream feeds due now (their interval passed, no backoff
        pending); what changed is for :meth:`_store_fetched`.

        Apart from storing, so a caller can fetch (seconds of network and parsing)
        without holding what the other sources' scans and the API wait for.
        """
        settings = self.settings
        now = clock.now()
        fetched = []
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
            _log_problems(result.scan.problems)
            fetched.append(Fetched(source.url, fetcher, result))
        return fetched

    async def _store_fetched(self, fetched: Sequence[Fetched]) -> IngestResult:
        """Store the articles of feeds fetched by :meth:`_fetch_due`; an item without a
        date of its own keeps the dates it was first stored with."""
        from publisher.content.upstream import keep_first_dates  # here: see _fetcher

        total = IngestResult()
        for feed in fetched:
            assert feed.result.scan is not None  # fetch_feeds keeps only parsed feeds
            known = await article_store.stored(self._engine, sorted(feed.result.scan.undated))
            total.add(await self.store(keep_first_dates(feed.result.scan, known), f"feed:{feed.url}"))
            feed.fetcher.commit(feed.result)  # only now: a crash before the store must not earn a 304
        return total

    async def store(
        self, articles: Sequence[Article], source: str, *, complete: bool = False, withdrawn: Sequence[str] = (),
        into: AsyncConnection | None = None,
    ) -> IngestResult:
        """Store what ``source`` offers (see :func:`publisher.store.ingest.ingest`) and log what changed;
        ``into``: in the caller's transaction (a dry run)."""
        async with _within(self._engine, into) as conn:
            result = await article_ingest.ingest_on(
                conn, articles, clock.now(), source=source, complete=complete, withdrawn=withdrawn
            )
        self._log_stored(result, source, dry=into is not None)
        return result

    @staticmethod
    def _log_stored(result: IngestResult, source: str, *, dry: bool) -> None:
        """What ``source`` changed in the store, one line an article ("(dry run)" when rolled back)."""
        prefix = "(dry run) " if dry else ""
        for problem in result.skipped:
            log.error("skipped: %s", problem)
        for article in result.new:
            log.info("%spublished %s (%s) from %s", prefix, article.slug, article.id, source)
        for article in result.updated:
            log.info("%supdated %s (%s) from %s", prefix, article.slug, article.id, source)
        for article in result.regenerated:
            log.info("%snew generated takeaways for %s (%s) from %s", prefix, article.slug, article.id, source)
        for article in result.scheduled:
            log.info("%sscheduled %s (%s) from %s for %s", prefix, article.slug, article.id, source,
                     article.published.isoformat())
        for article_id in result.removed:
            log.info("%sremoved %s: %s no longer has it, or has it as a draft", prefix, article_id, source)

    def _fetcher(self, source: UpstreamFeed, settings: Settings) -> FeedFetcher:
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
        fetcher.limits = settings.content.limits
        return fetcher


@asynccontextmanager
async def _within(
    engine: AsyncEngine, into: AsyncConnection | None, *, write: bool = True
) -> AsyncIterator[AsyncConnection]:
    """The caller's transaction (a dry run, rolled back by the caller), else a new one
    committed here; ``write=False``: a short read (a scan reads the rows of the last one,
    then parses for seconds before it writes)."""
    if into is not None:
        yield into
        return
    async with engine.begin() if write else engine.connect() as conn:
        yield conn


def _withdrawn(scan: DirectoryScan) -> list[str]:
    """The ids a told scan takes down: the drafts', and once the directory reads cleanly
    (as :attr:`~publisher.sources.markdown_dir.DirectoryScan.complete` has it) those its
    files published at the last scan and offer no more (a file gone, an id changed)."""
    if not scan.complete:
        return scan.withdrawn
    offered = {*scan.kept, *(article.id for article in scan.result.articles)}
    left = {row.article_id for row in scan.before.values() if row.outcome == Outcome.ARTICLE} - offered
    return [*scan.withdrawn, *sorted(str(article_id) for article_id in left)]


def _log_problems(problems: Sequence[Problem]) -> None:
    """An error skipped its article; a warning only says what was left out of one."""
    for problem in problems:
        if problem.severity == Severity.ERROR:
            log.error("skipped: %s", problem)
        else:
            log.warning("%s", problem)  # it says "warning:" itself
