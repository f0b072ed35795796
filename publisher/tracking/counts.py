"""The click counts in the store (``link_clicks``): one row per clicked link per digest.

A click is one UPSERT, so concurrent clicks on one link (two web workers, two nodes on
PostgreSQL) add up without a read or a lock held between statements.
"""

from __future__ import annotations

import importlib

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.store.schema import link_clicks


async def count_click(engine: AsyncEngine, digest_id: str, n: int, url: str) -> None:
    """Add one click to link ``n`` of digest ``digest_id`` (whose target is ``url``)."""
    # The dialect's own insert, imported by name (as publisher.store.meta does): a SQLite
    # store never loads PostgreSQL's dialect, nor the other way round.
    insert = importlib.import_module(f"sqlalchemy.dialects.{engine.dialect.name}").insert
    statement = insert(link_clicks).values(digest_id=digest_id, n=n, url=url, clicks=1)
    statement = statement.on_conflict_do_update(
        index_elements=[link_clicks.c.digest_id, link_clicks.c.n], set_={"clicks": link_clicks.c.clicks + 1}
    )
    async with engine.begin() as conn:
        await conn.execute(statement)


async def click_counts(engine: AsyncEngine, digest_id: str) -> list[tuple[str, int]]:
    """``(url, clicks)`` of each link of digest ``digest_id`` that was clicked, in the digest's order.

    A link nobody followed has no row, so it is not listed.  For ``publisher report``.
    """
    row = link_clicks.c
    async with engine.connect() as conn:
        result = await conn.execute(select(row.url, row.clicks).where(row.digest_id == digest_id).order_by(row.n))
        return [(url, clicks) for url, clicks in result]
