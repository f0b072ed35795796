"""Incremental feed rebuilds: only the feeds whose input changed are built again, from the
store's feed index and cached entries, and they come out as a build from scratch would.
The documents built are kept in the store: a fresh process, or another node, serves them
without rendering or compressing them again."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher import clock
from publisher.app import Publisher
from publisher.config import Settings
from publisher.content.model import Article
from publisher.feeds import files as feed_files
from publisher.feeds import shelf as shelf_module
from publisher.feeds.build import FeedDocument, build_feeds
from publisher.feeds.entries import CONTENT_TEMPLATE
from publisher.store import articles as article_store
from publisher.store import ingest
from publisher.store.schema import articles, feed_entries
from publisher.templating import make_loader
from tests.support.articles import seed_like

BASE = datetime(2024, 1, 1, tzinfo=UTC)
TAGS = ("Alpha", "Beta", "Gamma", "Delta")


def story(n: int, tags: Sequence[str], **overrides: Any) -> Article:
    when = BASE + timedelta(hours=n)
    fields = {"id": f"story-{n}", "slug": f"story-{n}", "title": f"Story {n}", "published": when, "updated": when,
              "canonical_url": f"https://news.example.org/articles/story-{n}", "tags": tuple(tags)}
    return seed_like(**fields | overrides)


async def store(publisher: Publisher, *stories: Article) -> None:
    await ingest.ingest(publisher.engine, stories, clock.now(), source="api")


async def from_scratch(publisher: Publisher) -> dict[str, bytes]:
    """Every feed built from every published article: what the shelf must serve."""
    settings = publisher.shelf.settings
    docs = build_feeds(
        await article_store.latest(publisher.engine), settings.site, settings.feeds.max_entries, publisher.env,
        hub=settings.websub.hub, max_tag_feeds=settings.feeds.max_tag_feeds,
        max_entry_bytes=settings.feeds.max_entry_bytes,
    )
    return {path: doc.body for path, doc in docs.items()}


def bodies(docs: dict[str, FeedDocument]) -> dict[str, bytes]:
    return {path: doc.body for path, doc in docs.items()}


@pytest.fixture
async def archive(publisher: Publisher) -> Publisher:
    """60 stories, each with two of four tags, the newest (story-59) also tagged "Epsilon",
    alone; feeds built (20 entries each)."""
    await store(publisher, *(story(n, [TAGS[n % 4], TAGS[(n + 1) % 4]]) for n in range(59)),
                story(59, ["Alpha", "Beta", "Epsilon"]))
    await publisher.shelf.build()
    return publisher


async def test_an_edit_rebuilds_the_site_feeds_and_its_old_and_new_tags_feeds_only(
    archive: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    shelf = archive.shelf
    before = dict(shelf.docs)
    written: list[Any] = []
    real_write = feed_files.write_feeds
    monkeypatch.setattr(feed_files, "write_feeds", lambda docs, out, changed: written.append(changed)
                        or real_write(docs, out, changed))

    await store(archive, story(59, ["Beta", "Gamma"], title="Story 59, corrected"))  # Alpha and Epsilon dropped
    rebuilt = await shelf.build()

    assert rebuilt == {"", "alpha", "beta", "gamma"}
    assert shelf.docs["tags/delta/feed.atom"] is before["tags/delta/feed.atom"]  # the same bytes, the same ETag
    assert not any(path.startswith("tags/epsilon/") for path in shelf.docs)  # its only story left the tag
    changed = {path for path, doc in shelf.docs.items() if before[path].etag != doc.etag}
    assert changed == {f"{prefix}feed.{fmt}" for prefix in ("", "tags/alpha/", "tags/beta/", "tags/gamma/")
                       for fmt in ("rss", "atom", "json")}
    assert sorted(written[0]) == sorted({*changed, *(f"tags/epsilon/feed.{f}" for f in ("rss", "atom", "json"))})
    output = shelf.settings.site.output_dir
    assert not (output / "tags" / "epsilon").exists()
    assert (output / "tags" / "gamma" / "feed.atom").read_bytes() == shelf.docs["tags/gamma/feed.atom"].body
    assert bodies(shelf.docs) == await from_scratch(archive)


async def test_nothing_changed_rebuilds_nothing_and_an_old_story_only_its_tags(archive: Publisher) -> None:
    shelf = archive.shelf
    assert await shelf.build() == frozenset()
    # story-1 is long out of the site feed's 20 newest, and of no tag's: nothing shows it.
    await store(archive, story(1, [TAGS[1], TAGS[2]], title="Story 1, corrected"))
    assert await shelf.build() == frozenset()
    assert bodies(shelf.docs) == await from_scratch(archive)


async def test_an_unpublished_story_leaves_its_feeds(archive: Publisher) -> None:
    shelf = archive.shelf
    assert await ingest.unpublish(archive.engine, "story-58", clock.now())
    assert await shelf.build() == {"", "gamma", "delta"}  # story-58's tags
    assert bodies(shelf.docs) == await from_scratch(archive)


async def test_a_template_or_config_change_renders_every_entry_again(archive: Publisher, tmp_path: Path) -> None:
    shelf = archive.shelf
    versions = await cached_versions(archive.engine)
    assert len(versions) == 1  # every cached entry has the current one

    override = tmp_path / "templates"
    (override / "feed").mkdir(parents=True)
    source = archive.env.loader.get_source(archive.env, CONTENT_TEMPLATE)[0]  # type: ignore[union-attr]
    (override / CONTENT_TEMPLATE).write_text(source + "\n<p>Read on our site.</p>\n", encoding="utf-8")
    archive.env.loader = make_loader(override)  # what a reload with [site] templates_dir does
    assert await shelf.build() == {"", *(tag.lower() for tag in TAGS), "epsilon"}
    assert b"Read on our site." in shelf.docs["tags/delta/feed.atom"].body
    assert bodies(shelf.docs) == await from_scratch(archive)
    after_template = await cached_versions(archive.engine)
    assert len(after_template) == 1 and after_template != versions

    feeds = shelf.settings.feeds.model_copy(update={"max_entry_bytes": 1_000})
    shelf.settings = shelf.settings.model_copy(update={"feeds": feeds})
    await shelf.build()
    assert b"Too long for a feed" in shelf.docs["feed.rss"].body
    assert bodies(shelf.docs) == await from_scratch(archive)
    assert await cached_versions(archive.engine) not in (versions, after_template)


async def cached_versions(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        query = select(feed_entries.c.version).where(feed_entries.c.entry.is_not(None)).distinct()
        return set((await conn.execute(query)).scalars())


async def test_an_unreadable_story_makes_room_for_the_next_and_an_edit_behind_it_counts(publisher: Publisher) -> None:
    shelf = publisher.shelf
    feeds = shelf.settings.feeds.model_copy(update={"max_entries": 3})
    shelf.settings = shelf.settings.model_copy(update={"feeds": feeds})
    await store(publisher, *(story(n, ["Alpha"]) for n in range(6)))
    now = clock.now()
    async with publisher.engine.begin() as conn:  # a row an older or damaged store may hold: no title
        await conn.execute(insert(articles).values(
            id="damaged", slug="damaged", content_hash="0" * 64, tags=json.dumps(["Alpha"]),
            published=BASE + timedelta(hours=9), updated=now, first_seen_at=now, changed_at=now, source="api",
            data=json.dumps({"id": "damaged", "slug": "damaged", "published": now.isoformat()}),
        ))
    await shelf.build()
    assert bodies(shelf.docs) == await from_scratch(publisher)  # story-5, 4, 3: the damaged row left out
    assert b"Story 3" in shelf.docs["feed.atom"].body

    await store(publisher, story(2, ["Alpha"], title="Story 2, corrected"))  # fourth: behind what the feeds show
    assert await shelf.build() == frozenset()
    await store(publisher, story(3, ["Alpha"], title="Story 3, corrected"))  # third, after the damaged row
    assert await shelf.build() == {"", "alpha"}
    assert b"Story 3, corrected" in shelf.docs["feed.atom"].body
    assert bodies(shelf.docs) == await from_scratch(publisher)


class Work:
    """Counts what a shelf renders and compresses: the entries and documents built, the gzip calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entries = self.documents = self.gzips = 0
        real_entry, real_documents, real_gzip = shelf_module.usable_entry, shelf_module.feed_documents, gzip.compress

        def usable_entry(*args: Any, **kwargs: Any) -> Any:
            self.entries += 1
            return real_entry(*args, **kwargs)

        def feed_documents(*args: Any, **kwargs: Any) -> Any:
            self.documents += 1
            return real_documents(*args, **kwargs)

        def compress(*args: Any, **kwargs: Any) -> bytes:
            self.gzips += 1
            return real_gzip(*args, **kwargs)

        monkeypatch.setattr(shelf_module, "usable_entry", usable_entry)
        monkeypatch.setattr(shelf_module, "feed_documents", feed_documents)
        monkeypatch.setattr(gzip, "compress", compress)


def validators(docs: dict[str, FeedDocument]) -> dict[str, tuple[bytes, bytes, str, str, datetime]]:
    return {path: (doc.body, doc.gzipped, doc.content_type, doc.etag, doc.last_modified) for path, doc in docs.items()}


def static_files(output: Path) -> dict[str, tuple[bytes, int]]:
    """Each static feed file's bytes and modification time (ns), by path under ``output``."""
    return {path.relative_to(output).as_posix(): (path.read_bytes(), path.stat().st_mtime_ns)
            for path in output.rglob("feed.*")}


async def test_a_fresh_process_serves_the_stored_documents_rendering_and_compressing_nothing(
    archive: Publisher, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = settings.site.output_dir
    files = static_files(output)
    assert len(files) == 2 * len(archive.shelf.docs)  # each document and its .gz twin
    work = Work(monkeypatch)
    fresh = Publisher(settings)  # a restart: nothing in memory, the same store and output directory
    await fresh.start()
    try:
        assert await fresh.shelf.build() == frozenset()
        assert (work.entries, work.documents, work.gzips) == (0, 0, 0)
        assert validators(fresh.shelf.docs) == validators(archive.shelf.docs)  # the same bytes, ETags, dates
        assert static_files(output) == files  # nothing rewritten: same bytes, same mtimes (nginx's Last-Modified)

        # A damaged or missing static copy is still repaired, from the stored documents.
        (output / "feed.atom").write_bytes(b"damaged")
        (output / "tags" / "beta" / "feed.rss.gz").unlink()
        again = Publisher(settings)
        await again.start()
        try:
            assert await again.shelf.build() == frozenset()
        finally:
            await again.close()
        assert {path: data for path, (data, _) in static_files(output).items()} == {
            path: data for path, (data, _) in files.items()}
        assert (work.entries, work.documents, work.gzips) == (0, 0, 0)
    finally:
        await fresh.close()


async def test_a_change_made_while_it_was_down_rebuilds_only_the_affected_feeds(
    archive: Publisher, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = dict(archive.shelf.docs)
    # Stored while no daemon ran (the CLI's ingest, say): story-59 leaves Alpha and Epsilon for Gamma.
    await store(archive, story(59, ["Beta", "Gamma"], title="Story 59, corrected"))
    work = Work(monkeypatch)
    fresh = Publisher(settings)
    await fresh.start()
    try:
        assert await fresh.shelf.build() == {"", "alpha", "beta", "gamma"}
        assert (work.entries, work.documents, work.gzips) == (1, 4, 12)  # story-59's entry; 4 feeds × 3 formats
        docs = fresh.shelf.docs
        assert validators({p: d for p, d in docs.items() if p.startswith("tags/delta/")}) == validators(
            {p: d for p, d in before.items() if p.startswith("tags/delta/")})
        assert bodies(docs) == await from_scratch(archive)
        assert not (settings.site.output_dir / "tags" / "epsilon").exists()
    finally:
        await fresh.close()
    work.entries = work.documents = work.gzips = 0
    restarted = Publisher(settings)  # and the rebuilt feeds were stored in turn
    await restarted.start()
    try:
        assert await restarted.shelf.build() == frozenset()
        assert (work.entries, work.documents, work.gzips) == (0, 0, 0)
        assert validators(restarted.shelf.docs) == validators(docs)
    finally:
        await restarted.close()


async def test_a_node_older_than_the_store_takes_the_newer_documents_another_built(
    archive: Publisher, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = Publisher(settings)  # a second node, serving the same feeds
    await other.start()
    try:
        await other.shelf.build()
        await store(archive, story(60, ["Delta"]))
        assert await archive.shelf.build() == {"", "delta"}  # the node that stored it rebuilds them
        work = Work(monkeypatch)
        await other.shelf.refresh()  # the other learns of the change from the store's revision
        assert (work.entries, work.documents, work.gzips) == (0, 0, 0)  # and takes the stored documents
        assert validators(other.shelf.docs) == validators(archive.shelf.docs)
    finally:
        await other.close()
