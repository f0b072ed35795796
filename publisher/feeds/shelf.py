"""The feeds this node serves now, and how they are rebuilt after the store changes.

:class:`FeedShelf` holds the current documents (path → :class:`FeedDocument`) that the
web layer answers from memory, rebuilds them from the store (one build at a time),
writes their static copies as a best effort and announces what changed to the WebSub
hub.  It remembers the store's revision it built from, so a standby rebuilds only when
another node has changed the articles.

A build touches only the feeds whose input changed.  The input of a feed is what its
bytes are made of: the settings of its channel, the version of the entries
(:func:`~publisher.feeds.entries.entry_version`), and the articles it went through,
newest first, each with its content hash and change time, as the store's feed index
(:mod:`publisher.store.feed_index`) lists them.  Those are a LIMIT query per feed, so a
build compares each feed's input with the one it was built from and renders again only
the feeds that differ, from entries cached in the store (only an edited article is
rendered again).  The change set is thus read from the store, not told: it holds after a
restart, a reload, a change made by the CLI or another node.  Unchanged documents stay
the same objects, so their ETag and Last-Modified stay, their static files are not
touched, and the hub hears only of the feeds that changed.  Memory holds the documents
served and a digest of each feed's input, never the archive.

Those per-feed queries are skipped when nothing they read can have moved: a build
records every feed's input with what it was built at (the store's revision and the
feeds' settings, :func:`_at`) in the store, so a later build at the same point, in this
process or another (``publisher build`` with nothing changed), takes them as they are.

The documents rebuilt are stored with that digest (``feed_documents``), so a start
(``publisher build``, the daemon) or a node whose documents are older than another's
takes the stored documents whose input is still today's instead of rendering and
compressing them again: rebuilding all 153 documents of a 10,000-article archive costs
seconds, mostly gzip.  The static copies are still all compared at a start, so a missing
or damaged file is repaired, and an intact one is not rewritten.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from publisher import urls
from publisher.config import Settings
from publisher.content.model import Article
from publisher.feeds.build import FORMATS, FeedDocument, feed_documents, kept_tags, tag_feed_title, usable_entry
from publisher.feeds.entries import Entry, entry_version
from publisher.feeds.websub import HubPinger
from publisher.store import articles as article_store
from publisher.store import feed_index, meta
from publisher.store.feed_index import BuiltFeed, Candidate
from publisher.tasks import TaskTracker

if TYPE_CHECKING:
    import jinja2

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
        self._at: str | None = None  # what every feed was last built at, all of them (see _at)
        self._built: dict[str, BuiltFeed] = {}  # by tag slug ("": the site's feeds)
        # The static copies are written whole at the first build and after a failed write;
        # otherwise only the files of the documents that changed.
        self._write_all = True

    async def build(self, *, announce: bool = True) -> frozenset[str]:
        """Rebuild the feeds whose input changed, write their static copies, tell the WebSub
        hub (unless not ``announce``: the node that stored the change has told it).
        Returns the tag slugs of the feeds rebuilt ("" for the site's)."""
        async with self._lock:
            return await self._build(self.settings, announce)

    async def refresh(self) -> None:
        """Rebuild the feeds if the store's articles changed since they were built (by
        another node: a standby serves what the leader stored)."""
        if await article_store.revision(self._engine) != self._revision:
            await self.build(announce=False)

    @property
    def revision(self) -> tuple[object, ...] | None:
        """The store's revision the current documents (and the feeds' index) were built
        from; None before the first build.  What is made from them may be kept until it moves."""
        return self._revision

    async def listing(self, tag_slug: str, *, limit: int, offset: int) -> tuple[list[Article], int, str]:
        """A page of the archive (``tag_slug`` "") or of one tag's articles in the feeds' order
        (newest first), from the feeds' index, which every build brings in step with the
        articles: its articles, how many the listing has in all, and the tag as spelled
        ("" for the archive, or a tag no article has)."""
        ids, total, tag = await feed_index.listed(self._engine, tag_slug, limit, offset)
        found = await article_store.published_by_id(self._engine, ids)
        return [article for article_id in ids if (article := found.get(article_id))], total, tag

    async def site_map(self, limit: int) -> tuple[list[tuple[str, datetime]], list[str]]:
        """What the sitemap lists: the slug and last change of the newest ``limit`` published
        articles, and every tag slug that has articles (sorted)."""
        async with self._engine.connect() as conn:
            tags = sorted(await feed_index.tag_counts(conn))
        return await article_store.page_dates(self._engine, limit), tags

    async def _build(self, settings: Settings, announce: bool) -> frozenset[str]:
        site, feeds, websub = settings.site, settings.feeds, settings.websub
        revision = await article_store.revision(self._engine)
        version = entry_version(self._env, site.url, feeds.max_entry_bytes)
        channel = (site.title, site.description, site.author, site.language, site.url, websub.hub,
                   feeds.max_entries, version)
        at = _at(revision, channel, feeds.max_tag_feeds)
        recorded = await self._recorded(at)
        if recorded is not None:  # nothing moved since every feed was built: no feed to check
            current, loaded = recorded
            wanted, stale, gone = list(current), {}, []
        else:
            wanted, current, loaded, stale, gone = await self._check(channel, feeds.max_entries, feeds.max_tag_feeds)
        made = await self._rebuild(stale, settings, version)
        before = self.docs
        docs: dict[str, FeedDocument] = {}
        for slug in wanted:
            if slug not in stale:
                docs.update(loaded.get(slug) or {path: before[path] for path in _paths(slug) if path in before})
            elif (result := made[slug]) is not None:  # None: logged, missing, tried again at the next build
                docs.update(result[0])
                current[slug] = _built_from(channel, result[1])
        whole = all(made.values())  # else the feed that could not be built is checked and tried again next time
        self.docs, self._built, self._revision, self._at = docs, current, revision, at if whole else None
        await feed_index.keep_documents(
            self._engine,
            {slug: (current[slug], [_columns(doc) for doc in made[slug][0].values()]) for slug in made if made[slug]},
            gone,
        )
        if recorded is None and whole:
            await feed_index.keep_inputs(self._engine, at, current)
        changed = [path for path, doc in docs.items() if path not in before or before[path].etag != doc.etag]
        await self._write_static_copies(site.output_dir, [*changed, *(path for path in before if path not in docs)])
        if await meta.get(self._engine, meta.SITE_URL) != site.url:  # published under this URL from now on
            await meta.put(self._engine, meta.SITE_URL, site.url)
        if websub.hub and before and announce:  # the first build after a start only restates what the hub has seen
            self.hub.settings = websub
            self.hub.ping(urls.absolute(site.url, path) for path in changed)
        return frozenset(slug for slug in stale if made[slug] is not None)

    async def _recorded(self, at: str) -> tuple[dict[str, BuiltFeed], dict[str, dict[str, FeedDocument]]] | None:
        """Every feed's input, and the stored documents of those this shelf lacks, when all
        were built at ``at`` (the store's revision and the feeds' settings): by this shelf,
        or by the process that last recorded it in the store (a ``build`` with nothing
        changed).  None: each feed must be checked."""
        inputs = dict(self._built) if at == self._at else await feed_index.inputs_at(self._engine, at)
        if inputs is None:
            return None
        async with self._engine.connect() as conn:
            loaded = await self._load({slug: built for slug, built in inputs.items() if built != self._built.get(slug)},
                                      conn)
        if not all(loaded.values()):  # stored since from other inputs (an older node's build): check them
            return None
        return inputs, loaded

    async def _check(self, channel: tuple[object, ...], max_entries: int, max_tag_feeds: int) -> tuple[
        list[str], dict[str, BuiltFeed], dict[str, dict[str, FeedDocument]], dict[str, list[Candidate]], list[str]
    ]:
        """Compare each feed's input, from the store's feed index, with the one its documents
        on this shelf or in the store were built from.  Returns the feeds wanted, those
        current (by tag slug), the stored documents of those this shelf lacks, the stale
        feeds with the newest articles they go through, and the feeds stored but no longer
        wanted."""
        await feed_index.sync(self._engine)
        firsts: dict[str, list[Candidate]] = {}
        current: dict[str, BuiltFeed] = {}  # the feeds this shelf or the store holds as built from today's input
        async with self._engine.connect() as conn:
            wanted = ["", *kept_tags(await feed_index.tag_counts(conn), max_tag_feeds)]
            stored = await feed_index.built_feeds(conn)
            for slug in wanted:
                known = [built for built in (self._built.get(slug), stored.get(slug)) if built is not None]
                # As many as it went through last time: one left out made room for the next.
                first = await feed_index.newest(conn, slug, max([max_entries, *(b.went_through for b in known)]))
                firsts[slug] = first
                for built in known:  # this shelf's documents first: they are in memory already
                    if built == _built_from(channel, first[:max(max_entries, built.went_through)]):
                        current[slug] = built
                        break
            # A feed not on this shelf (a start) or older here than in the store (another node built it since).
            loaded = await self._load({slug: built for slug, built in current.items() if built != self._built.get(slug)},
                                      conn)
        stale = {slug: firsts[slug] for slug in wanted
                 if slug not in current or loaded.get(slug) == {}}  # {}: replaced in the store meanwhile
        for slug in stale:
            current.pop(slug, None)  # back once built: a feed that can't be built is tried again next time
        return wanted, current, loaded, stale, [slug for slug in stored if slug not in wanted]

    async def _load(self, feeds: dict[str, BuiltFeed], conn: AsyncConnection) -> dict[str, dict[str, FeedDocument]]:
        """The stored documents of these feeds, by tag slug: built by this node before it
        started, or by another node since this one built them."""
        loaded: dict[str, dict[str, FeedDocument]] = {slug: {} for slug in feeds}
        for row in await feed_index.stored_documents(conn, feeds):
            loaded[row["slug"]][row["path"]] = FeedDocument(
                path=row["path"], body=row["body"], gzipped=row["gzipped"], content_type=row["content_type"],
                etag=row["etag"], last_modified=row["last_modified"],
            )
        return loaded

    async def _rebuild(
        self, stale: dict[str, list[Candidate]], settings: Settings, version: str
    ) -> dict[str, tuple[dict[str, FeedDocument], tuple[Candidate, ...]] | None]:
        """The documents of each stale feed and the articles it went through (None: it can't be built)."""
        site, limit = settings.site, settings.feeds.max_entries
        entries = await self._entries({c for rows in stale.values() for c in rows}, settings, version)
        chosen: dict[str, tuple[list[Entry], tuple[Candidate, ...]]] = {}
        for slug, rows in stale.items():
            picked: list[Entry] = []
            went_through: list[Candidate] = []
            page, asked = rows, max(limit, len(rows))  # the first page came with as many as asked, or all there were
            while True:
                for candidate in page:
                    if len(picked) == limit:
                        break
                    went_through.append(candidate)
                    if (entry := entries[candidate]) is not None:
                        picked.append(entry)
                if len(picked) == limit or len(page) < asked:
                    break  # enough, or no more articles: one left out made room for the next
                async with self._engine.connect() as conn:
                    page, asked = await feed_index.newest(conn, slug, limit, offset=len(went_through)), limit
                entries |= await self._entries(set(page), settings, version)
            chosen[slug] = (picked, tuple(went_through))

        def render() -> dict[str, tuple[dict[str, FeedDocument], tuple[Candidate, ...]] | None]:
            made = {}
            for slug, (picked, went_through) in chosen.items():
                title = tag_feed_title(site, stale[slug][0].tag) if slug and stale[slug] else site.title
                docs = feed_documents(slug, title, picked, site, settings.websub.hub)
                made[slug] = None if docs is None else (docs, went_through)
            return made

        # In a thread: rendering documents takes long enough to stall every request.
        return await asyncio.to_thread(render)

    async def _entries(
        self, candidates: Iterable[Candidate], settings: Settings, version: str
    ) -> dict[Candidate, Entry | None]:
        """Each candidate's prepared entry (None: it can't be rendered), cached in the store
        under ``version``; the articles without one are read, rendered and cached."""
        wanted = list(candidates)
        async with self._engine.connect() as conn:
            cached = await feed_index.cached_entries(conn, [c.article_id for c in wanted], version)
        found = {c: Entry.from_json(cached[c.article_id]) if cached[c.article_id] else None
                 for c in wanted if c.article_id in cached}
        missing = [c for c in wanted if c.article_id not in cached]
        if not missing:
            return found
        stored = await article_store.published_by_id(self._engine, [c.article_id for c in missing])
        site, max_entry_bytes = settings.site, settings.feeds.max_entry_bytes

        def render() -> dict[Candidate, Entry | None]:
            by_id: dict[str, Entry | None] = {}  # once an article: its candidates differ by tag only
            for article_id in dict.fromkeys(c.article_id for c in missing):
                if article_id in stored:  # else unpublished since the index listed it
                    article = stored[article_id]  # None: unreadable, logged
                    by_id[article_id] = usable_entry(article, site, self._env, max_entry_bytes) if article else None
            return {c: by_id[c.article_id] for c in missing if c.article_id in by_id}

        rendered = await asyncio.to_thread(render)
        await feed_index.keep_entries(
            self._engine, {c: entry.to_json() if entry else "" for c, entry in rendered.items()}, version
        )
        return found | {c: rendered.get(c) for c in missing}  # one unpublished meanwhile is left out

    async def _write_static_copies(self, output_dir: Path, changed: Sequence[str]) -> None:
        """Write the feeds to ``[site] output_dir`` for nginx or a CDN, as a best effort:
        the ``changed`` paths' files (a path no longer on the shelf is deleted), or every
        file at the first build and after a write failed.

        A directory that is read-only, full or not a directory never stops serving (the
        feeds are in memory) nor sending: the problem is logged once each time it
        changes, and shown in ``/readyz`` and ``publisher status`` until a write succeeds.
        """
        from publisher.feeds.files import write_feeds

        try:
            written = await asyncio.to_thread(write_feeds, self.docs, output_dir, None if self._write_all else changed)
        except OSError as exc:
            self._write_all = True
            problem = (f"cannot write the static feed files to {output_dir}: {exc.strerror or exc} "
                       f"({exc.filename or output_dir}); the feeds are still served by the daemon")
            if problem != self.static_files_problem:
                log.error("%s", problem)
            self.static_files_problem = problem
            return
        if self.static_files_problem is not None:
            log.info("feeds: the static feed files are written to %s again", output_dir)
        self.static_files_problem = None
        self._write_all = False
        log.info("feeds: %d files written for %d documents in %s", written, len(self.docs), output_dir)


def _built_from(channel: tuple[object, ...], went_through: Sequence[Candidate]) -> BuiltFeed:
    """What a feed built from ``channel`` going through these candidates is built from."""
    text = json.dumps([list(channel), [[c.article_id, c.content_hash, c.changed_at.isoformat(), c.tag]
                                       for c in went_through]], ensure_ascii=False)
    return BuiltFeed(hashlib.sha256(text.encode("utf-8")).hexdigest(), len(went_through))


def _at(revision: tuple[object, ...], channel: tuple[object, ...], max_tag_feeds: int) -> str:
    """A digest of what decides every feed's input but the articles themselves: the store's
    revision (it moves whenever an article is stored, edited or removed), the channel's
    settings and how many tag feeds are kept."""
    text = json.dumps([list(revision), list(channel), max_tag_feeds], default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _columns(doc: FeedDocument) -> dict[str, object]:
    """A document as ``feed_documents`` stores it."""
    return {"path": doc.path, "body": doc.body, "gzipped": doc.gzipped, "content_type": doc.content_type,
            "etag": doc.etag, "last_modified": doc.last_modified}


def _paths(tag_slug: str) -> list[str]:
    """The paths of one feed's documents, one a format."""
    return [urls.feed_path(fmt, tag_slug) for fmt in FORMATS]
