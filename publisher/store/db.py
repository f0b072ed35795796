"""The async engine and the migrations applied on start.

SQLite (aiosqlite) is the embedded default: WAL and a busy timeout let the daemon and
a CLI command share the file (NOTES.md).  PostgreSQL (asyncpg) is a config change,
``[database] url = "postgresql+asyncpg://user@host/dbname"``: the same queries, the
same migrations.  Alembic runs on a sync connection borrowed from the async engine,
and is only imported when a migration is due: a start finds the schema current by one
query of ``alembic_version`` against the newest revision named in the migration files
(importing Alembic costs about a third of a command's memory and start-up time).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import IntEnum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, event, func, inspect, select, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

if TYPE_CHECKING:
    from alembic.config import Config

    from publisher.config import DatabaseSettings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _sqlite_setup(busy_timeout: float) -> Callable[[Any, Any], None]:
    """The set-up of each new SQLite connection; ``busy_timeout`` in seconds."""
    busy_ms = round(busy_timeout * 1000)

    def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms:d}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        # SQLite's lower() folds ASCII only; PostgreSQL's (in a UTF-8 database) folds every
        # letter.  Python's makes a search for "émile" find "Émile" on both.
        dbapi_connection.create_function("lower", 1, _lower, deterministic=True)

    return _sqlite_connect


# PostgreSQL: a few connections per process stay open (the daemon's web handlers,
# scheduler jobs and delivery share them), more are opened under load and closed
# after.  Pre-ping replaces connections the server closed (a restart, a failover, an
# idle timeout) before a query fails on them; recycling bounds a connection's age.
POSTGRES_POOL: dict[str, Any] = {
    "pool_size": 5,
    "max_overflow": 10,
    "pool_timeout": 30,
    "pool_recycle": 1800,
    "pool_pre_ping": True,
    "connect_args": {
        "timeout": 10,  # seconds to connect: an unreachable server is an error, not a hang
        "server_settings": {"application_name": "publisher"},  # seen in pg_stat_activity
    },
}


def create_engine(url: str, *, busy_timeout: float = 10.0) -> AsyncEngine:
    """An engine for ``url``; for a SQLite file, its directory is created first, and a
    write waits up to ``busy_timeout`` seconds for another connection's lock."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        _, _, path = url.partition(":///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_setup(busy_timeout))
        return engine
    if backend == "postgresql":
        return create_async_engine(url, **POSTGRES_POOL)
    return create_async_engine(url)


# A digest's rows go in with one INSERT ... SELECT.  PostgreSQL's planner learns of
# them at the next analyze, and autovacuum only analyzes after 10% of a table changed
# (never, where it is off); until then it claims them through ix_deliveries_state and
# sorts the whole digest for each batch: 1.1 s a claim of 500 at 200,000 rows instead
# of 18 ms once analyzed (bench/scale.py).  Smaller inserts don't move the plan.
ANALYZE_AFTER_ROWS = 1000


async def analyze_after_bulk_insert(engine: AsyncEngine, table: Table, rows: int) -> None:
    """Refresh PostgreSQL's statistics of ``table`` after ``rows`` were inserted at once."""
    if rows >= ANALYZE_AFTER_ROWS and engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(text(f"ANALYZE {table.name}"))


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config  # only where a migration runs or is asked about (see the module)

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


# The advisory lock key (PostgreSQL) of applying migrations; see also Exclusive.
_MIGRATION_LOCK = 0x7075626D  # "pubm": applying migrations


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to the newest migration (idempotent; run on every start).

    Several processes may start at once (nodes, a CLI command beside the daemon): the
    first takes a lock (an advisory lock on PostgreSQL, SQLite's write lock at once with
    ``BEGIN IMMEDIATE``), the others wait for it, then find the schema at head.  On
    both, the migrations run in that one transaction: all of them or none.
    """

    if await _at_head(engine):
        return

    def run(connection: Connection) -> None:
        from alembic import command

        command.upgrade(alembic_config(connection), "head")

    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        elif conn.dialect.name == "sqlite":
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
        await conn.run_sync(run)


@asynccontextmanager
async def transaction(engine: AsyncEngine, *, dry_run: bool = False) -> AsyncIterator[AsyncConnection]:
    """A connection in a transaction that commits at the end, or rolls back on an error
    or when ``dry_run`` (so a dry run sees its own changes, then leaves nothing)."""
    async with engine.connect() as conn:
        pending = await conn.begin()
        try:
            yield conn
        except BaseException:
            await pending.rollback()
            raise
        if dry_run:
            await pending.rollback()
        else:
            await pending.commit()


class Exclusive(IntEnum):
    """Work that must not run twice at once, by its PostgreSQL advisory lock key."""

    PLANNING = 0x7075626C  # "publ": planning digests
    INGEST = 0x70756269  # "pubi": storing articles
    WEBHOOKS = 0x70756277  # "pubw": registering webhook endpoints
    # 0x70756263 "pubc" is taken: publisher.store.aggregates.COUNTS_LOCK, by the counting triggers.


async def serialize(conn: AsyncConnection, work: Exclusive) -> None:
    """Wait for any other transaction doing ``work`` to end before this one reads anything.

    Two planners (two triggers, the CLI beside the daemon, two nodes) reading the same
    snapshot would plan the same subscribers twice; two scans would both store the
    same new article.  SQLite has one writer at a time: a write statement as the
    first of the transaction takes that lock at once (waiting out ``busy_timeout``),
    so the reads that follow see the other's result.  PostgreSQL gets a
    transaction-scoped advisory lock for this kind of work.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": int(work)})
    else:
        await begin_writing(conn)


async def begin_writing(conn: AsyncConnection) -> None:
    """On SQLite, take the write lock now, as the transaction's first statement.

    A SQLite transaction that reads first and writes later fails at once ("database
    is locked") if another connection wrote in between; one that starts with a write
    waits its turn (``busy_timeout``) instead.  PostgreSQL needs nothing: row locks.
    """
    if conn.dialect.name == "sqlite":
        await conn.execute(text("UPDATE digests SET status = status WHERE 0 = 1"))


Revision = tuple[str | None, str]  # (the database's migration revision or None when empty, the newest one)

# The lines of a migration file that name it and its parent(s): ``revision = "0010"``,
# ``down_revision = "0009"`` (or None, or a tuple where branches merge).
_REVISION_LINE = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+)$", re.MULTILINE)
_QUOTED = re.compile(r"""["']([^"']+)["']""")


@cache
def _head_in_files() -> str | None:
    """The newest migration's revision, read from the files without importing Alembic:
    the one revision no other names as its parent; None unless there is exactly one
    (then Alembic itself decides)."""
    named, parents = set(), set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for key, value in _REVISION_LINE.findall(path.read_text(encoding="utf-8")):
            (named if key == "revision" else parents).update(_QUOTED.findall(value))
    heads = named - parents
    return heads.pop() if len(heads) == 1 else None


def _stored_revisions(connection: Connection) -> set[str]:
    """The revisions in the database's ``alembic_version`` (empty for a new database)."""
    if not inspect(connection).has_table("alembic_version"):
        return set()
    return set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


async def _at_head(engine: AsyncEngine) -> bool:
    """Whether the schema is at the newest migration: one query, Alembic not imported."""
    head = _head_in_files()
    if head is None:
        return False
    async with engine.connect() as conn:
        return await conn.run_sync(_stored_revisions) == {head}


async def revisions(engine: AsyncEngine) -> Revision:
    """``(the database's migration revision or None when empty, the newest one there is)``."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        current = await conn.run_sync(read)
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None  # there are migrations in the package
    return current, head


@asynccontextmanager
async def _engine_of(database: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    """An engine of its own for ``publisher db``, disposed after: it must work where
    starting a Publisher would migrate first."""
    engine = create_engine(database.url, busy_timeout=database.busy_timeout)
    try:
        yield engine
    finally:
        await engine.dispose()


async def schema_revisions(database: DatabaseSettings) -> Revision:
    """:func:`revisions` of the ``[database]`` settings' store; changes nothing."""
    async with _engine_of(database) as engine:
        return await revisions(engine)


async def migrate(database: DatabaseSettings) -> tuple[Revision, Revision]:
    """Apply the migrations the ``[database]`` settings' store has not had yet: the revisions before and after."""
    async with _engine_of(database) as engine:
        before = await revisions(engine)
        await upgrade(engine)
        return before, await revisions(engine)


async def rebuild_aggregates(database: DatabaseSettings) -> dict[str, int]:
    """Migrate, then recount the dashboard's aggregates from the base tables
    (:func:`publisher.store.aggregates.rebuild`); the subscribers by status counted."""
    from publisher.store import aggregates
    from publisher.store.schema import subscriber_counts

    async with _engine_of(database) as engine:
        await upgrade(engine)
        async with engine.begin() as conn:
            await conn.run_sync(aggregates.rebuild)
            rows = await conn.execute(
                select(subscriber_counts.c.status, func.sum(subscriber_counts.c.n)).group_by(subscriber_counts.c.status)
            )
            return {status: int(n) for status, n in rows if n}


async def ping(engine: AsyncEngine) -> None:
    """``SELECT 1``: the database answers (readiness); raises the driver's error if not."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
