"""Running a test's work against a site's store from a synchronous test (one that owns no event loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TypeVar

from publisher.app import Publisher
from publisher.config import load_settings

T = TypeVar("T")


def with_publisher(config: Path, work: Callable[[Publisher], Awaitable[T]], environ: Mapping[str, str] = {}) -> T:
    """Start a publisher on ``config`` (the environment ``environ``), run ``work`` with it, close it:
    what the CLI does around a command, for checks between CLI calls."""

    async def run() -> T:
        publisher = Publisher(load_settings(config, environ=dict(environ)))
        await publisher.start()
        try:
            return await work(publisher)
        finally:
            await publisher.close()

    return asyncio.run(run())
