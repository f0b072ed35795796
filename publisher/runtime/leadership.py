"""Which node runs the schedule: a PostgreSQL advisory lock held on a dedicated connection.

Every daemon on a PostgreSQL database campaigns: it keeps one connection of its own
(outside the pool, so no query ever waits behind it and the pool never recycles it)
and asks ``pg_try_advisory_lock`` every third of ``[cluster] failover``.  The one that
gets the lock leads: it runs the scan, the digest planner and the feed fetcher.  The
lock belongs to the session, so it goes when the leader's connection goes:

* the leader process dies (a crash, kill -9): its socket closes, the server frees the
  lock at once, and a standby takes it at its next try (within failover / 3);
* the leader's host or network dies: the server learns it from TCP keepalives, set on
  the connection to give up within about two thirds of ``failover``; the standby
  takes over on its next try after that;
* the leader loses the database but lives on: its own check of the connection
  (every failover / 3, with that as the timeout) fails, and it steps down before a
  standby can have taken over.

Leadership saves work; it is not what keeps digests exactly-once.  Planning runs
under its own advisory transaction lock and the ledger decides what is due
(:mod:`publisher.digest.plan`), so even two leaders at once could not plan a digest twice,
and a new leader runs the planner at once: a wave due while nobody led goes out then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

LEADER_LOCK = 0x70756273  # "pubs": running the schedule


class Leadership:
    """Campaigns for the schedule until ``stop``; calls ``elected`` / ``deposed`` on changes."""

    def __init__(
        self,
        url: str,
        failover: float,
        elected: Callable[[], Awaitable[None]],
        deposed: Callable[[], Awaitable[None]],
    ) -> None:
        self.failover = failover
        self.every = failover / 3
        self.elected, self.deposed = elected, deposed
        self.leading = False
        idle, interval = max(1, int(failover / 3)), max(1, int(failover / 6))
        # A pool of its own that keeps nothing: the one connection lives as long as we hold it.
        self._engine: AsyncEngine = create_async_engine(
            url, poolclass=NullPool,
            connect_args={
                "timeout": self.every,
                "server_settings": {
                    "application_name": "publisher leadership",
                    # The server drops a vanished leader's session (and its lock) after
                    # about idle + 2 * interval seconds of silence.
                    "tcp_keepalives_idle": str(idle),
                    "tcp_keepalives_interval": str(interval),
                    "tcp_keepalives_count": "2",
                    "tcp_user_timeout": str(int(failover * 1000 / 2)),
                },
            },
        )
        self._conn: AsyncConnection | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Campaign (or, leading, check the lock's connection) every failover / 3 until ``stop``."""
        try:
            while not stop.is_set():
                await self._step()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.every)
        finally:
            await self._step_down("stopping")
            await self._engine.dispose()

    async def _step(self) -> None:
        try:
            async with asyncio.timeout(self.every):
                if self._conn is None:
                    self._conn = await self._engine.connect()
                if self.leading:
                    await self._conn.execute(text("SELECT 1"))
                else:
                    taken = await self._conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_LOCK})
                await self._conn.commit()  # never idle in a transaction: the lock is the session's
        except (TimeoutError, SQLAlchemyError, OSError) as exc:
            if self.leading:
                log.error("leadership: lost the database connection (%s); handing the schedule over", exc)
            else:
                log.warning("leadership: cannot reach the database to campaign: %s", exc)
            await self._step_down("connection lost")
            return
        if not self.leading and taken:
            self.leading = True
            log.info("leadership: this node now runs the schedule")
            await self.elected()

    async def _step_down(self, why: str) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # Closing the session frees the lock (an unlock first would race nothing more).
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()
        if self.leading:
            self.leading = False
            log.info("leadership: this node no longer runs the schedule (%s)", why)
            await self.deposed()
