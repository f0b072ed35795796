"""A feed build with nothing moved in the store since the last one, in this process or
another, checks no feed: it takes every feed's input as the last build recorded it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.app import Publisher
from publisher.config import Settings
from tests.store.test_feed_shelf import TAGS, bodies, from_scratch, store, story


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements ``engine`` executes meanwhile."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


def per_feed(seen: list[str]) -> list[str]:
    """The statements that read the feed index (a feed's newest articles, the tags, the sync's check)."""
    return [statement for statement in seen if "feed_tags" in statement or "feed_entries" in statement]


@pytest.fixture
async def archive(publisher: Publisher) -> Publisher:
    """60 stories, each with two of four tags; feeds built."""
    await store(publisher, *(story(n, [TAGS[n % 4], TAGS[(n + 1) % 4]]) for n in range(60)))
    await publisher.shelf.build()
    return publisher


async def test_nothing_changed_makes_no_per_feed_query_in_this_process_or_another(
    archive: Publisher, settings: Settings
) -> None:
    with statements(archive.engine) as seen:
        assert await archive.shelf.build() == frozenset()
    assert per_feed(seen) == [] and len(seen) <= 3
    fresh = Publisher(settings)  # `publisher build` again: nothing in memory
    await fresh.start()
    try:
        with statements(fresh.engine) as seen:
            assert await fresh.shelf.build() == frozenset()
        assert per_feed(seen) == [] and len(seen) <= 6
        assert bodies(fresh.shelf.docs) == bodies(archive.shelf.docs) == await from_scratch(archive)
    finally:
        await fresh.close()


async def test_an_article_another_process_changed_rebuilds_its_feeds(archive: Publisher, settings: Settings) -> None:
    other = Publisher(settings)  # another process on the same store: the CLI, another node
    await other.start()
    try:
        await store(other, story(60, ["Delta"]))
        assert await archive.shelf.build() == {"", "delta"}
        assert bodies(archive.shelf.docs) == await from_scratch(archive)
        # The other process built nothing itself: the inputs it finds recorded are today's.
        with statements(other.engine) as seen:
            assert await other.shelf.build() == frozenset()
        assert per_feed(seen) == []
        assert bodies(other.shelf.docs) == bodies(archive.shelf.docs)
    finally:
        await other.close()


async def test_a_setting_of_the_feeds_changed_checks_them_again(archive: Publisher) -> None:
    shelf = archive.shelf
    feeds = shelf.settings.feeds.model_copy(update={"max_tag_feeds": 2})
    shelf.settings = shelf.settings.model_copy(update={"feeds": feeds})
    await shelf.build()
    assert sorted(path for path in shelf.docs if path.endswith(".atom")) == [
        "feed.atom", "tags/alpha/feed.atom", "tags/beta/feed.atom"]
