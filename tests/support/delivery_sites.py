"""Sites for delivery tests: a config that sends over SMTP to a test server, and many
subscribers inserted in bulk (``tests.support.people.add_subscriber`` goes through the service,
one transaction per person: right for a few, too slow for thousands)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.store.schema import subscribers
from tests.support.sites import SAMPLE_CONTENT, write_config
from tests.support.smtp_server import HOST


def write_site(root: Path, *, smtp_port: int, smtp: str = "", extra: str = "", **delivery: object) -> Path:
    """A site in ``root`` (the sample content, a config sending over SMTP to ``smtp_port``);
    returns the config path. ``delivery`` keys go in ``[delivery]``, ``smtp`` is more
    ``[smtp]`` lines (e.g. ``"timeout = 2"``), ``extra`` more tables."""
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "content").exists():
        shutil.copytree(SAMPLE_CONTENT, root / "content")
    settings = {"transport": "smtp", "retry_base": 0.05} | delivery
    return write_config(root, f'[smtp]\nhost = "{HOST}"\nport = {smtp_port}\n{smtp}\n{extra}', **settings)


async def insert_subscribers(engine: AsyncEngine, addresses: Sequence[str], *, chunk: int = 5000) -> dict[str, int]:
    """Active ``instant`` subscribers, as the CLI adds them, in a few multi-row INSERTs.

    Returns ``{address: subscriber id}``.
    """
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        for start in range(0, len(addresses), chunk):
            await conn.execute(
                insert(subscribers),
                [
                    {
                        "email": address, "name": "", "status": "active", "cadence": "instant",
                        "source": "cli", "created_at": now, "confirmed_at": now,
                        "confirmed_source": "cli", "article_cursor": 0,
                    }
                    for address in addresses[start:start + chunk]
                ],
            )
        rows = await conn.execute(select(subscribers.c.email, subscribers.c.id))
        wanted = set(addresses)
        return {row.email: row.id for row in rows if row.email in wanted}
