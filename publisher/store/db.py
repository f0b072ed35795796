"""The async engine and the migrations applied on start.

SQLite is the embedded default: WAL and a busy timeout let the daemon and a CLI
command share the file (NOTES.md).  Alembic runs on a sync connection borrowed from
the async engine, so the same migrations serve SQLite and, later, PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    """An engine for ``url``; for a SQLite file, its directory is created first."""
    if url.startswith("sqlite"):
        _, _, path = url.partition(":///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to the newest migration (idempotent; run on every start)."""

    def run(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), "head")

    async with engine.begin() as conn:
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


# The advisory lock key of work that must not run twice at once (planning digests).
_PLANNING_LOCK = 0x7075626C  # "publ"


async def serialize_planning(conn: AsyncConnection) -> None:
    """Wait for any other planner's transaction to end before this one reads anything.

    Two planners (two triggers, the CLI beside the daemon) reading the same snapshot
    would plan the same subscribers twice.  SQLite has one writer at a time: a write
    statement as the first of the transaction takes that lock at once (waiting out
    ``busy_timeout``), so the reads that follow see the other planner's result.
    PostgreSQL gets a transaction-scoped advisory lock.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PLANNING_LOCK})
    else:
        await conn.execute(text("UPDATE digests SET status = status WHERE 0 = 1"))
