"""The store on each backend: the migrations make exactly schema.py, and what SQLite
would let pass (long values, NUL characters, ASCII-only case folding, naive datetimes)
behaves the same on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, MetaData, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.content.model import MAX_ID_LENGTH, MAX_SLUG_LENGTH
from publisher.delivery import ledger
from publisher.store import articles as article_store
from publisher.store import ingest as article_ingest
from publisher.store.db import alembic_config, create_engine, revisions, upgrade
from publisher.store.schema import (
    deliveries,
    digests,
    metadata,
    subscribers,
    suppressions,
)
from subscribers import store as subscriber_store
from subscribers.model import Cadence, Preferences, Source, Status
from subscribers.service import create
from tests.support.articles import seed_like
from tests.support.databases import Backend

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
async def engine(database: Backend, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty database of the backend under test (no migrations run yet)."""
    engine = create_engine(database.url(tmp_path))
    yield engine
    await engine.dispose()


def _same_default(
    context: MigrationContext, inspected: Column[Any], declared: Column[Any],
    inspected_default: str | None, declared_default: Any, rendered_declared_default: str | None,
) -> bool | None:
    """False when a server default only reads differently (``'[]'::text`` or ``('')`` for
    ``''``: Alembic takes SQLite's empty string for a change); else Alembic's own comparison."""
    if inspected_default is None or rendered_declared_default is None:
        return None

    def bare(value: str) -> str:
        return value.split("::", 1)[0].strip("()").strip("'\"")

    return False if bare(inspected_default) == bare(rendered_declared_default) else None


def _schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": _same_default}
    )
    return compare_metadata(context, metadata)


async def test_the_migrations_make_exactly_the_schema_of_schema_py(engine: AsyncEngine) -> None:
    await upgrade(engine)
    async with engine.connect() as conn:
        assert await conn.run_sync(_schema_differences) == []


async def test_the_migrations_go_down_to_nothing_and_up_again(engine: AsyncEngine) -> None:
    await upgrade(engine)

    def down(connection: Connection) -> list[str]:
        command.downgrade(alembic_config(connection), "base")
        reflected = MetaData()
        reflected.reflect(connection)
        return sorted(reflected.tables)

    async with engine.begin() as conn:
        assert await conn.run_sync(down) == ["alembic_version"]
    await upgrade(engine)
    async with engine.connect() as conn:
        assert await conn.run_sync(_schema_differences) == []


async def test_the_migration_of_the_lifecycle_suppresses_who_had_left(engine: AsyncEngine) -> None:
    """0002 reads and writes data with plain SQL: it must do so on every backend."""

    def to_0001(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), "0001")

    async with engine.begin() as conn:
        await conn.run_sync(to_0001)
        await conn.execute(
            text(
                "INSERT INTO subscribers (email, status, cadence, source, created_at, confirmed_at) "
                "VALUES (:email, :status, 'daily', 'web', :at, :at)"
            ),
            [{"email": "gone@example.org", "status": "unsubscribed", "at": NOW},
             {"email": "here@example.org", "status": "active", "at": NOW}],
        )
    await upgrade(engine)
    async with engine.connect() as conn:
        reasons = (await conn.execute(select(suppressions.c.reason))).scalars().all()
        sources = dict((await conn.execute(select(subscribers.c.email, subscribers.c.confirmed_source))).all())
    assert reasons == ["unsubscribed"]
    assert sources == {"gone@example.org": "web", "here@example.org": "web"}


async def test_processes_starting_at_once_on_an_empty_database_all_find_it_migrated(
    database: Backend, tmp_path: Path
) -> None:
    """Nodes or a CLI command starting beside the daemon: the migrations run once, the
    others wait for them (an advisory lock on PostgreSQL, the write lock on SQLite)."""
    engines = [create_engine(database.url(tmp_path)) for _ in range(4)]
    try:
        await asyncio.gather(*(upgrade(engine) for engine in engines))
        async with engines[0].connect() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
        assert versions == [(await revisions(engines[0]))[1]]  # the newest migration, once
    finally:
        for engine in engines:
            await engine.dispose()


async def test_datetimes_come_back_aware_in_utc_to_the_microsecond(engine: AsyncEngine) -> None:
    await upgrade(engine)
    paris = timezone(timedelta(hours=1))
    created = datetime(2026, 11, 25, 13, 0, 0, 123456, tzinfo=paris)
    async with engine.begin() as conn:
        await conn.execute(
            insert(digests).values(id="d1", cadence="daily", article_seqs="[]", status="sending", created_at=created)
        )
        stored = await conn.scalar(select(digests.c.created_at))
        earlier = await conn.scalar(select(digests.c.id).where(digests.c.created_at < created + timedelta(microseconds=1)))
        with pytest.raises(StatementError, match="naive datetime"):
            await conn.execute(select(digests.c.id).where(digests.c.created_at < datetime(2026, 11, 25)))
    assert stored == created and stored.tzinfo == UTC and stored.microsecond == 123456
    assert earlier == "d1"


async def test_search_folds_case_beyond_ascii_and_takes_wildcards_literally(engine: AsyncEngine) -> None:
    await upgrade(engine)
    prefs = Preferences(cadence=Cadence.DAILY)
    for address, name in [("emile@example.org", "Émile Zola"), ("ann_b@example.org", "Ann"),
                          ("annxb@example.org", "100% Ann")]:
        await create(engine, address, name=name, prefs=prefs, source=Source.CLI, confirmed=True, now=NOW)

    async def found(query: str) -> list[str]:
        return [s.email for s in await subscriber_store.search(engine, query=query)]

    assert await found("ÉMILE") == ["emile@example.org"]
    assert await found("ZOLA") == ["emile@example.org"]
    assert await found("EMILE@") == ["emile@example.org"]  # addresses are stored lower-cased
    assert await found("ann_") == ["ann_b@example.org"]  # "_" is no wildcard
    assert await found("0%") == ["annxb@example.org"]  # nor is "%"
    assert await subscriber_store.count(engine, query="ANN", status=Status.ACTIVE) == 2


async def test_ids_and_slugs_as_long_as_the_columns_hold_are_stored(engine: AsyncEngine) -> None:
    await upgrade(engine)
    longest = seed_like(id="x" * MAX_ID_LENGTH, slug="s" * MAX_SLUG_LENGTH)
    result = await article_ingest.ingest(engine, [longest], NOW, source="api")
    assert result.new == [article_ingest.Ingested.of(longest)]
    assert await article_store.by_slug(engine, longest.slug) == longest


async def test_a_reply_with_a_nul_character_is_recorded(engine: AsyncEngine) -> None:
    """A remote server's reply may hold anything; PostgreSQL refuses NUL in text."""
    await upgrade(engine)
    reader = await create(engine, "r@example.org", prefs=Preferences(cadence=Cadence.INSTANT),
                          source=Source.CLI, confirmed=True, now=NOW)
    async with engine.begin() as conn:
        await conn.execute(
            insert(digests).values(id="d1", cadence="instant", article_seqs=json.dumps([]), status="sending",
                                   created_at=NOW)
        )
        await conn.execute(
            insert(deliveries).values(digest_id="d1", subscriber_id=reader.id, state="pending", updated_at=NOW)
        )
    await ledger.record(engine, [{"digest": "d1", "sid": reader.id, "state": "failed", "attempts": 1,
                                  "retry_at": None, "last_reply": "550 no\x00such user"}], NOW)
    await ledger.pause(engine, "d1", "too many errors: 550 no\x00such user")
    async with engine.connect() as conn:
        reply = await conn.scalar(select(deliveries.c.last_reply))
        reason = await conn.scalar(select(digests.c.pause_reason))
    assert reply == "550 no\ufffdsuch user"
    assert reason == "too many errors: 550 no\ufffdsuch user"


async def test_two_scans_storing_the_same_new_article_at_once_publish_it_once(
    engine: AsyncEngine, database: Backend, tmp_path: Path
) -> None:
    await upgrade(engine)
    # A second engine on the same database: another process (a node, the CLI beside the daemon).
    other = create_engine(str(engine.url.render_as_string(hide_password=False)))
    article = seed_like(id="urn:test:race", slug="race")
    now = datetime.now(UTC)
    try:
        results = await asyncio.gather(
            *(article_ingest.ingest(e, [article], now, source="markdown:x") for e in (engine, other, engine, other))
        )
    finally:
        await other.dispose()
    assert sum(len(r.new) for r in results) == 1
    assert sum(r.unchanged for r in results) == 3
