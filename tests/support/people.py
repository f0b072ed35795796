"""Active subscribers for tests, added the way an operator would (confirmed, from the CLI)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from subscribers import service
from subscribers.model import Cadence, Preferences, Source, Subscriber


async def add_subscriber(
    engine: AsyncEngine,
    address: str,
    *,
    name: str = "",
    cadence: Cadence = Cadence.INSTANT,
    topics: Sequence[str] = (),
) -> Subscriber:
    return await service.create(
        engine,
        address,
        name=name,
        prefs=Preferences(cadence=cadence, topics=tuple(topics)),
        source=Source.CLI,
        confirmed=True,
        now=datetime.now(UTC),
    )
