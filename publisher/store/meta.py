"""Small facts about the store itself, by key (the ``meta`` table)."""

from __future__ import annotations

import importlib

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.store.schema import meta

SITE_URL = "site_url"  # the [site] url the store's articles and feeds were last published under
READINESS_PROBE = "readiness_probe"  # when a node's /readyz last found the store writable


async def get(engine: AsyncEngine, key: str) -> str | None:
    async with engine.connect() as conn:
        return await conn.scalar(select(meta.c.value).where(meta.c.key == key))


async def put(engine: AsyncEngine, key: str, value: str) -> None:
    """Set ``key`` (an upsert: two nodes may set it at once)."""
    # The dialect's own insert, imported by name: a SQLite store never loads PostgreSQL's
    # dialect (2 MB), nor the other way round.
    upsert = importlib.import_module(f"sqlalchemy.dialects.{engine.dialect.name}").insert
    statement = upsert(meta).values(key=key, value=value)
    async with engine.begin() as conn:
        await conn.execute(statement.on_conflict_do_update(index_elements=[meta.c.key], set_={"value": value}))
