"""The feeds this node serves now, and how they are rebuilt after the store changes.

:class:`FeedShelf` holds the current documents (path → :class:`FeedDocument`) that the
web layer answers from memory, rebuilds them from the store (one build at a time: the
build runs in threads, and two at once could finish out of order), writes their
static copies as a best effort and announces what changed to the WebSub hub.  It
remembers the store's revision it built from, so a standby rebuilds only when
another node has changed the articles.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from publisher import urls
from publisher.config import Settings
from publisher.feeds.websub import HubPinger
from publisher.store import articles as article_store
from publisher.store import meta
from publisher.tasks import TaskTracker

if TYPE_CHECKING:  # the feed builder (feedgen, lxml) is imported by the first build, not by every command
    import jinja2

    from publisher.feeds.build import FeedDocument

log = logging.getLogger(__name__)


class FeedShelf:
    """The current feed documents (``docs``) and their rebuilds.

    ``settings`` is replaced by the root on a reload; a build reads it once, at its start.
    """

    def __init__(self, settings: Settings, engine: AsyncEngine, env: jinja2.Environment, tasks: TaskTracker) -> None:
        self.settings = settings
        self.docs: dict[str, FeedDocument] = {}
        self.hub = HubPinger(settings.websub, tasks)
        # Why the static feed files could not be written at the last build (None: they were).
        # Best effort: the feeds are served from memory whatever happens to the copies.
        self.static_files_problem: str | None = None
        self._engine = engine
        self._env = env
        self._lock = asyncio.Lock()
        self._revision: tuple[object, ...] | None = None  # the store's, when the docs were built

    async def build(self, *, announce: bool = True) -> None:
        """Render every feed from the store, write the static copies, tell the WebSub hub
        (unless not ``announce``: the node that stored the change has told it)."""
        async with self._lock:
            await self._build(self.settings, announce)

    async def refresh(self) -> None:
        """Rebuild the feeds if the store's articles changed since they were built (by
        another node: a standby serves what the leader stored)."""
        if await article_store.revision(self._engine) != self._revision:
            await self.build(announce=False)

    async def _build(self, settings: Settings, announce: bool) -> None:
        from publisher.feeds.build import build_feeds

        site, feeds, websub = settings.site, settings.feeds, settings.websub
        revision = await article_store.revision(self._engine)
        published = await article_store.latest(self._engine)
        before = self.docs
        # In a thread: rendering hundreds of documents takes long enough to stall every request.
        self.docs = await asyncio.to_thread(
            build_feeds, published, site, feeds.max_entries, self._env, hub=websub.hub,
            max_tag_feeds=feeds.max_tag_feeds, max_entry_bytes=feeds.max_entry_bytes,
        )
        self._revision = revision
        await self._write_static_copies(site.output_dir)
        if await meta.get(self._engine, meta.SITE_URL) != site.url:  # published under this URL from now on
            await meta.put(self._engine, meta.SITE_URL, site.url)
        if websub.hub and before and announce:  # the first build after a start only restates what the hub has seen
            changed = [path for path, doc in self.docs.items() if path not in before or before[path].etag != doc.etag]
            self.hub.settings = websub
            self.hub.ping(urls.absolute(site.url, path) for path in changed)

    async def _write_static_copies(self, output_dir: Path) -> None:
        """Write the feeds to ``[site] output_dir`` for nginx or a CDN, as a best effort.

        A directory that is read-only, full or not a directory never stops serving (the
        feeds are in memory) nor sending: the problem is logged once each time it
        changes, and shown in ``/readyz`` and ``publisher status`` until a write succeeds.
        """
        from publisher.feeds.files import write_feeds

        try:
            await asyncio.to_thread(write_feeds, self.docs, output_dir)
        except OSError as exc:
            problem = (f"cannot write the static feed files to {output_dir}: {exc.strerror or exc} "
                       f"({exc.filename or output_dir}); the feeds are still served by the daemon")
            if problem != self.static_files_problem:
                log.error("%s", problem)
            self.static_files_problem = problem
            return
        if self.static_files_problem is not None:
            log.info("feeds: the static feed files are written to %s again", output_dir)
        self.static_files_problem = None
        log.info("feeds: %d files in %s", len(self.docs), output_dir)
