"""WebSub: feeds name the hub, and changed feeds are announced to it (a local hub stub)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import feedparser
import pytest
from aiohttp import web

from publisher.app import Publisher
from publisher.config import Settings
from publisher.feeds.websub import HubPinger
from tests.system.test_daemon import NEW_ARTICLE


@dataclass
class Hub:
    """Records publish pings; answers 503 to the first ``failures`` of them."""

    url: str = ""
    failures: int = 0
    pings: list[dict[str, str]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.content_types.append(request.content_type)
        self.pings.append(dict(await request.post()))  # type: ignore[arg-type]
        status = 503 if len(self.pings) <= self.failures else 204
        self.answered.append(status)
        return web.Response(status=status)


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    recorder = Hub()
    app = web.Application()
    app.router.add_post("/hub", recorder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    recorder.url = f"http://127.0.0.1:{port}/hub"
    yield recorder
    await runner.cleanup()


async def started(make_settings: Callable[..., Settings], hub_url: str) -> Publisher:
    publisher = Publisher(make_settings(f'[websub]\nhub = "{hub_url}"\nattempts = 3\n'))
    publisher.shelf.hub = HubPinger(publisher.settings.websub, publisher.tasks, retry_base=0.01)
    await publisher.start()
    return publisher


async def test_changed_feeds_are_announced_and_a_failed_ping_is_retried(
    make_settings: Callable[..., Settings], hub: Hub
) -> None:
    hub.failures = 1
    publisher = await started(make_settings, hub.url)
    try:
        await publisher.intake.scan()  # the first build: nothing to announce yet
        assert await publisher.tasks.drain(5) and hub.pings == []
        before = dict(publisher.shelf.docs)
        (publisher.settings.content.dir / "harbour-bridge.md").write_text(NEW_ARTICLE, encoding="utf-8")
        await publisher.intake.scan()
        assert await publisher.tasks.drain(10)
    finally:
        await publisher.close()

    site = publisher.settings.site.url
    changed = {site + path for path, doc in publisher.shelf.docs.items() if path not in before or before[path].etag != doc.etag}
    assert {site + "feed.atom", site + "feed.rss", site + "feed.json", site + "tags/infrastructure/feed.atom"} <= changed
    assert {site + "tags/russia/feed.atom"}.isdisjoint(changed)  # an untouched tag's feed is not announced
    assert all(p["hub.mode"] == "publish" for p in hub.pings)
    assert set(hub.content_types) == {"application/x-www-form-urlencoded"}
    announced = [p["hub.url"] for p, status in zip(hub.pings, hub.answered, strict=True) if status == 204]
    assert sorted(announced) == sorted(changed)  # each once, the refused one included after its retry
    assert hub.answered.count(503) == 1 and len(hub.pings) == len(changed) + 1

    for path in ("feed.atom", "feed.rss"):
        links = feedparser.parse(publisher.shelf.docs[path].body).feed.links
        assert {"rel": "hub", "href": hub.url} in [{"rel": k["rel"], "href": k["href"]} for k in links]


async def test_an_unreachable_hub_never_holds_up_publishing(make_settings: Callable[..., Settings]) -> None:
    publisher = await started(make_settings, "http://127.0.0.1:9/hub")  # discard port: refused
    try:
        await publisher.intake.scan()
        (publisher.settings.content.dir / "harbour-bridge.md").write_text(NEW_ARTICLE, encoding="utf-8")
        result = await asyncio.wait_for(publisher.intake.scan(), timeout=10)
        assert [a.slug for a in result.new] == ["harbour-bridge"]
        assert await publisher.tasks.drain(10)  # gave up after its attempts, logged
    finally:
        await publisher.close()
