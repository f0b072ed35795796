"""The databases the tests run on: a SQLite file per site, or a fresh PostgreSQL database per site.

Every test that uses the store runs on both backends: conftest's ``database`` fixture
is parametrized ``[sqlite]`` / ``[postgresql]`` and makes its backend the current one
here, so :func:`tests.support.sites.write_config` writes that backend's ``[database] url``.
On SQLite that is the file ``data/publisher.db`` inside the site directory, as
before.  On PostgreSQL each site directory gets its own database, created from
``template0`` under a unique name the first time a config is written for it and
dropped after the test: tests stay independent, and the migrations run on an empty
database every time, as on a first start.

The environment decides where the PostgreSQL variants run:

* ``PUBLISHER_TEST_POSTGRES_URL``: a database on the server to create the test
  databases on (the connection that runs ``CREATE DATABASE``), default
  ``postgresql://postgres@127.0.0.1:5432/postgres``; ``off`` turns the PostgreSQL
  variants off (they are skipped, saying so).
* ``PUBLISHER_REQUIRE_POSTGRES=1`` (CI): a server that can't be reached fails the
  PostgreSQL variants instead of skipping them.

Database administration runs on its own event loop in a thread (asyncpg, no other
driver): ``write_config`` is plain code, called from sync tests and from inside
async tests' running loops alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import socket
import sqlite3
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

T = TypeVar("T")

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SQLITE_URL = "sqlite+aiosqlite:///data/publisher.db"  # relative: resolved against the config file's directory
# Test databases are named publisher_test_<host>_<pid>_<worker>_<n>: a run killed before its
# cleanup leaves databases that a later run on the same host drops (their pid is gone).
# Under pytest-xdist every worker is a process of its own, with its own pid and its own
# PostgresServer; the worker's name (gw0, gw1, …) in the database name says whose it is.
PREFIX = "publisher_test_"
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


def postgres_url_setting() -> str | None:
    """The server URL the tests should use, or None when PostgreSQL tests are turned off."""
    value = os.environ.get("PUBLISHER_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL).strip()
    return None if value.lower() in ("", "off", "0", "no", "false") else value


def postgres_required() -> bool:
    return os.environ.get("PUBLISHER_REQUIRE_POSTGRES", "").strip().lower() in ("1", "yes", "true")


class Backend(Protocol):
    name: str

    def config_url(self, root: Path) -> str:
        """The ``[database] url`` for a config file in ``root``."""

    def url(self, root: Path) -> str:
        """The same database as an absolute URL (for settings or engines a test builds itself)."""

    def fetch(self, root: Path, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a plain SQL query on ``root``'s database, from outside the publisher
        (while a subprocess may be using it): backend-neutral SQL only."""

    def close(self) -> None:
        """Drop what this test created."""


class SQLiteSites:
    name = "sqlite"

    def config_url(self, root: Path) -> str:
        return SQLITE_URL

    def url(self, root: Path) -> str:
        return f"sqlite+aiosqlite:///{root.resolve() / 'data' / 'publisher.db'}"

    def fetch(self, root: Path, sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(root / "data" / "publisher.db", timeout=10) as conn:
            return list(conn.execute(sql).fetchall())

    def close(self) -> None:
        pass


class PostgresSites:
    """One fresh database per site directory on ``server``, all dropped by :meth:`close`."""

    name = "postgresql"

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.databases: dict[Path, str] = {}

    def database(self, root: Path) -> str:
        root = root.resolve()
        if root not in self.databases:
            self.databases[root] = self.server.create()
        return self.databases[root]

    def config_url(self, root: Path) -> str:
        return self.url(root)

    def url(self, root: Path) -> str:
        return self.server.url(self.database(root))

    def fetch(self, root: Path, sql: str) -> list[tuple[Any, ...]]:
        return self.server.fetch(self.database(root), sql)

    def close(self) -> None:
        for name in self.databases.values():
            self.server.drop(name)
        self.databases.clear()


_current: Backend = SQLiteSites()


def current() -> Backend:
    """The backend of the running test (SQLite for tests not parametrized by ``database``)."""
    return _current


def use(backend: Backend) -> None:
    global _current
    _current = backend


class PostgresServer:
    """A PostgreSQL server to create and drop test databases on, from any thread.

    Creating a database is quick (~30 ms from ``template0``); dropping one takes
    longer, so drops are queued on their own connection and only waited for at the
    end of the session.
    """

    def __init__(self, admin_url: str) -> None:
        url = make_url(admin_url)
        if url.get_backend_name() != "postgresql":
            raise ValueError(f"PUBLISHER_TEST_POSTGRES_URL must be a postgresql:// URL, not {admin_url!r}")
        self._url: URL = url.set(drivername="postgresql")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="postgres-admin", daemon=True)
        self._thread.start()
        self._counter = itertools.count(1)
        self._drops: list[Future[None]] = []
        self._create_conn: asyncpg.Connection | None = None
        self._drop_conn: asyncpg.Connection | None = None
        self._drop_lock: asyncio.Lock | None = None

    def describe(self) -> str:
        return self._url.render_as_string(hide_password=True)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _dsn(self, database: str | None = None) -> str:
        url = self._url if database is None else self._url.set(database=database)
        return url.render_as_string(hide_password=False)

    def connect(self) -> None:
        """Open the admin connections (raises OSError or asyncpg errors when the server can't be used)."""

        async def connect() -> None:
            self._create_conn = await asyncpg.connect(self._dsn(), timeout=5)
            self._drop_conn = await asyncpg.connect(self._dsn(), timeout=5)
            self._drop_lock = asyncio.Lock()

        self._run(connect(), timeout=15)
        self._drop_stale()

    def _drop_stale(self) -> None:
        """Drop databases left by earlier runs on this host whose process is gone."""
        assert self._create_conn is not None
        names = self._run(self._create_conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1",
                                                  f"{PREFIX}{_HOST}_%"))
        for (name,) in names:
            pid = name.removeprefix(f"{PREFIX}{_HOST}_").partition("_")[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                self.drop(name)

    def url(self, database: str) -> str:
        """The URL the publisher uses for ``database`` (asyncpg)."""
        return self._url.set(drivername="postgresql+asyncpg", database=database).render_as_string(hide_password=False)

    def create(self) -> str:
        """A new, empty database; returns its name."""
        assert self._create_conn is not None, "connect() first"
        name = f"{PREFIX}{_HOST}_{os.getpid()}_{_WORKER}_{next(self._counter)}"
        self._run(self._create_conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\''))
        return name

    def drop(self, name: str) -> None:
        """Drop ``name`` soon (its connections are ended: a killed subprocess may have left some)."""

        async def drop() -> None:
            assert self._drop_conn is not None and self._drop_lock is not None
            async with self._drop_lock:
                await self._drop_conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        self._drops.append(asyncio.run_coroutine_threadsafe(drop(), self._loop))

    def fetch(self, database: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
        async def fetch() -> list[tuple[Any, ...]]:
            conn = await asyncpg.connect(self._dsn(database), timeout=10)
            try:
                return [tuple(row) for row in await conn.fetch(sql, *args)]
            finally:
                await conn.close()

        return self._run(fetch())

    def close(self) -> None:
        """Wait for the queued drops, then close the connections and the loop."""
        problems: list[BaseException] = []
        for drop in self._drops:
            try:
                drop.result(120)
            except Exception as exc:  # noqa: BLE001 - report every failed drop, not just the first
                problems.append(exc)
        self._drops.clear()

        async def close() -> None:
            for conn in (self._create_conn, self._drop_conn):
                if conn is not None:
                    await conn.close()

        try:
            self._run(close(), timeout=15)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15)
            self._loop.close()
        if problems:
            raise RuntimeError(f"could not drop {len(problems)} test database(s): {problems[0]!r}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def rows(root: Path, sql: str) -> Sequence[tuple[Any, ...]]:
    """A plain SQL query on the database of the site in ``root``, for the current backend."""
    return current().fetch(root, sql)


def read_only_engine(url: str) -> AsyncEngine:
    """An engine on the database at ``url`` that reads but can't write.

    What a store looks like when its disk is full or read-only, or after a failover
    left a replica behind: ``SELECT 1`` answers, every write fails.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return create_async_engine(f"sqlite+aiosqlite:///file:{parsed.database}?mode=ro&uri=true")
    return create_async_engine(url, connect_args={"server_settings": {"default_transaction_read_only": "on"}})
