"""The schedule: when each job wakes the service up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.events import EVENT_JOB_MAX_INSTANCES
from apscheduler.triggers.interval import IntervalTrigger

from publisher.app import Publisher
from publisher.config import Settings
from publisher.runtime.scheduler import build_scheduler, schedule_jobs, schedule_node_jobs


async def test_jobs_wake_the_service_at_their_times(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        '[digest]\ndaily_at = 07:30:00\ntimezone = "America/New_York"\nweekly_day = "fri"\n'
        "[scheduler]\nscan_interval = 45\n"
    )
    publisher = Publisher(settings)
    scheduler = build_scheduler()

    async def beat() -> None:
        """Unused: the test only reads the triggers."""

    schedule_node_jobs(scheduler, publisher, beat, serves_web=False, at_start=True)
    # A worker: no schedule, no web.
    assert {job.id for job in scheduler.get_jobs()} == {"deliver", "heartbeat", "webhooks"}
    schedule_node_jobs(scheduler, publisher, beat, serves_web=True, at_start=False)
    schedule_jobs(scheduler, publisher, at_start=False)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"deliver", "heartbeat", "webhooks", "refresh", "scan", "digests", "purge"}

    # Digests: waves at each subscriber's local hour (publisher.digest.cadence), so the planner
    # wakes every quarter of an hour on the minute of daily_at, whatever the zone.
    wake = jobs["digests"].trigger
    after = datetime(2026, 3, 7, 13, 0, tzinfo=UTC)
    fires = []
    for _ in range(5):
        after = wake.get_next_fire_time(None, after + timedelta(seconds=1))
        fires.append(after.strftime("%H:%M"))
    assert fires == ["13:15", "13:30", "13:45", "14:00", "14:15"]
    assert jobs["scan"].trigger.interval.total_seconds() == 45
    # Deferred rows and other nodes' lapsed claims go when due: the tests' retry_base is 1 s.
    assert jobs["deliver"].trigger.interval.total_seconds() == 1


async def test_a_run_skipped_while_the_last_one_works_is_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A busy machine makes APScheduler skip a poll whose previous run still works; the run
    in progress does that work, so it must not show as a warning (``publisher status``)."""
    scheduler = build_scheduler()
    release, skipped = asyncio.Event(), asyncio.Event()

    async def long_poll() -> None:
        await release.wait()

    scheduler.add_listener(lambda event: skipped.set(), EVENT_JOB_MAX_INSTANCES)
    scheduler.add_job(long_poll, IntervalTrigger(seconds=0.05), id="poll", next_run_time=datetime.now(UTC))
    with caplog.at_level(logging.DEBUG, logger="apscheduler"):
        scheduler.start()
        try:
            await asyncio.wait_for(skipped.wait(), timeout=10)
        finally:
            release.set()
            scheduler.shutdown(wait=False)
    assert [r for r in caplog.records if "running instances" in r.getMessage()], "the skip is still logged"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
