"""Running daemons ("nodes") report themselves in the store, for ``publisher status``.

``publisher status`` is another process: it can't ask the daemon's scheduler when
each job runs next, nor see its log.  So the daemon writes a heartbeat row every few
seconds with that state (next runs, last scan, recent errors), and status reads the
rows seen lately.  A node that stops cleanly deletes its row; one that died is simply
no longer seen.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.runtime.state import NodeRole
from publisher.store.schema import nodes

HEARTBEAT_SECONDS = 10.0
STALE_AFTER = timedelta(seconds=3 * HEARTBEAT_SECONDS)  # not seen for this long: not running
FORGET_AFTER = timedelta(days=1)


class RecentProblems(logging.Handler):
    """The last warnings and errors logged in this process (what status shows as "last errors")."""

    def __init__(self, size: int = 10) -> None:
        super().__init__(logging.WARNING)
        self.records: deque[dict[str, str]] = deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append({
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="seconds"),
            "level": record.levelname,
            "message": record.getMessage()[:500],
        })


@dataclass(frozen=True)
class Node:
    id: str
    host: str
    pid: int
    role: NodeRole
    started_at: datetime
    seen_at: datetime
    state: dict[str, Any]


def node_id(started_at: datetime) -> str:
    """This process's id as a node: ``host:pid:start`` (unique even when a pid is reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{started_at:%Y%m%dT%H%M%S.%f}"


def this_node(id: str, role: NodeRole, started_at: datetime) -> Node:
    return Node(id, socket.gethostname(), os.getpid(), role, started_at, started_at, {})


async def heartbeat(engine: AsyncEngine, node: Node, role: NodeRole, state: dict[str, Any], now: datetime) -> None:
    """Record that ``node`` is alive in ``role``, with ``state`` (JSON-ready)."""
    data = json.dumps(state, sort_keys=True, default=str)
    async with engine.begin() as conn:
        seen = await conn.execute(
            update(nodes).where(nodes.c.id == node.id).values(seen_at=now, role=role, state=data)
        )
        if not seen.rowcount:
            await conn.execute(
                insert(nodes).values(
                    id=node.id, host=node.host, pid=node.pid, role=role,
                    started_at=node.started_at, seen_at=now, state=data,
                )
            )
        # Nodes that died without leaving (kill -9, a lost host) are forgotten after a day.
        await conn.execute(delete(nodes).where(nodes.c.seen_at < now - FORGET_AFTER))


async def leave(engine: AsyncEngine, node: Node) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(nodes).where(nodes.c.id == node.id))


async def live(engine: AsyncEngine, now: datetime) -> list[Node]:
    """The nodes seen within :data:`STALE_AFTER`, oldest first."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(nodes).where(nodes.c.seen_at >= now - STALE_AFTER).order_by(nodes.c.started_at)
        )
        return [
            Node(r.id, r.host, r.pid, NodeRole(r.role), r.started_at, r.seen_at, json.loads(r.state)) for r in rows
        ]
