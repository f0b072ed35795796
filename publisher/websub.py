"""WebSub (W3C) publisher pings: tell the hub which feeds changed, so it pushes them.

Readers subscribed at the hub get new entries within seconds instead of at their
next poll.  A ping is a form POST (``hub.mode=publish``, ``hub.url=<feed>``); the
hub then fetches the feed itself.  Pings run in the background after the feeds are
written: a slow or failing hub is retried with growing pauses and logged, and never
holds up publishing or the digests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from publisher import __version__
from publisher.config import WebSubSettings
from publisher.pacing import Backoff
from publisher.tasks import TaskTracker

log = logging.getLogger(__name__)


class HubPinger:
    """Pings one hub; :meth:`ping` returns at once, the pings run in ``tasks`` (a shutdown waits for them)."""

    def __init__(self, settings: WebSubSettings, tasks: TaskTracker, *, retry_base: float = 2.0) -> None:
        self.settings = settings
        self.tasks = tasks
        self._retry_base = retry_base

    def ping(self, feed_urls: Iterable[str]) -> None:
        """Announce each of ``feed_urls`` to the hub, in the background."""
        for url in feed_urls:
            self.tasks.spawn(self._announce(url))

    async def drain(self, timeout: float) -> bool:
        return await self.tasks.settle(timeout)  # delegate (wave 2)

    async def _announce(self, feed_url: str) -> bool:
        import aiohttp  # here: only a site with a hub needs the HTTP client (~10 MB)

        hub, settings = self.settings.hub, self.settings
        pause = Backoff(self._retry_base, limit=300.0)
        timeout = aiohttp.ClientTimeout(total=settings.timeout)
        headers = {"User-Agent": f"publisher/{__version__} (WebSub publisher)"}
        form = {"hub.mode": "publish", "hub.url": feed_url}
        problem = ""
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            for attempt in range(1, settings.attempts + 1):
                try:
                    async with session.post(hub, data=form) as response:
                        if response.status < 300:  # 204 No Content is the usual answer
                            log.info("WebSub: %s announced to %s", feed_url, hub)
                            return True
                        problem = f"HTTP {response.status} {(await response.text())[:200]!r}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    problem = str(exc) or type(exc).__name__
                if attempt < settings.attempts:
                    log.warning("WebSub: ping %d/%d for %s to %s failed (%s); retrying",
                                attempt, settings.attempts, feed_url, hub, problem)
                    await asyncio.sleep(pause.next_pause())
        log.error("WebSub: gave up announcing %s to %s after %d attempts: %s",
                  feed_url, hub, settings.attempts, problem)
        return False
