"""Sign-ups never confirmed are deleted after ``[subscribers] purge_pending_after`` (daemon job, CLI)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from publisher import clock
from publisher.app import Publisher
from publisher.cli import main
from publisher.config import load_settings
from publisher.runtime.scheduler import build_scheduler, schedule_jobs
from subscribers import service
from subscribers.model import Preferences, Source, Status
from tests.support.people import add_subscriber
from tests.support.sites import write_config


async def sign_up(publisher: Publisher, address: str, days_ago: int) -> int:
    subscriber, _ = await service.sign_up(publisher.engine, address, name="", prefs=Preferences(),
                                          source=Source.WEB, now=clock.now() - timedelta(days=days_ago))
    return subscriber.id


async def sign_ups(publisher: Publisher) -> None:
    """Two stale sign-ups, a fresh one, an old active subscriber, and a former one who signed up again."""
    await sign_up(publisher, "stale@example.org", 31)
    await sign_up(publisher, "older@example.org", 400)
    await sign_up(publisher, "fresh@example.org", 29)
    await add_subscriber(publisher.engine, "active@example.org")
    former = await add_subscriber(publisher.engine, "former@example.org")
    await service.leave(publisher.engine, former.id, now=clock.now())
    await sign_up(publisher, "former@example.org", 60)


async def addresses(publisher: Publisher) -> dict[str, str]:
    page = await publisher.subscribers.page(limit=100)
    return {s.email: s.status for s in page.subscribers}


async def test_stale_sign_ups_are_purged_and_logged(
    make_settings: object, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = Publisher(make_settings())  # type: ignore[operator]
    await publisher.start()
    try:
        await sign_ups(publisher)
        with caplog.at_level(logging.INFO, logger="subscribers.service"):
            assert await publisher.subscribers.purge_pending() == 2
        assert "purged 2 sign-up(s) not confirmed within 30d" in caplog.text
        assert await addresses(publisher) == {
            "fresh@example.org": Status.PENDING, "active@example.org": Status.ACTIVE,
            "former@example.org": Status.PENDING,
        }
        assert await publisher.subscribers.purge_pending() == 0
        # They may sign up again: nothing was suppressed.
        assert await publisher.subscribers.suppression("stale@example.org") is None
    finally:
        await publisher.close()


async def test_the_purge_is_a_leader_job_unless_it_is_off(make_settings: object) -> None:
    for extra, scheduled in (("", True), ('[subscribers]\npurge_pending_after = "0"\n', False),
                             ("[subscribers]\npurge_pending_after = 0\n", False)):
        publisher = Publisher(make_settings(extra))  # type: ignore[operator]
        scheduler = build_scheduler()
        schedule_jobs(scheduler, publisher, at_start=False)
        assert (scheduler.get_job("purge") is not None) is scheduled, extra
        if not scheduled:
            assert await publisher.subscribers.purge_pending() is None


def test_subscribers_purge_on_the_command_line(site_dir: Path) -> None:
    async def setup() -> None:
        publisher = Publisher(load_settings(site_dir / "config.toml", environ={}))
        await publisher.start()
        try:
            await sign_ups(publisher)
        finally:
            await publisher.close()

    asyncio.run(setup())
    config = str(site_dir / "config.toml")
    purged = CliRunner().invoke(main, ["--config", config, "subscribers", "purge"])
    assert purged.exit_code == 0, purged.output
    assert "purged 2 sign-up(s) not confirmed within 30d" in purged.output
    write_config(site_dir, '[subscribers]\npurge_pending_after = "0"\n')
    off = CliRunner().invoke(main, ["--config", config, "subscribers", "purge"])
    assert off.exit_code == 1 and "purge_pending_after is off" in off.output
