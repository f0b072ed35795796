"""The schedule: when each job wakes the service up."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from publisher.app import Publisher
from publisher.config import Settings
from publisher.scheduler import build_scheduler


async def test_jobs_fire_at_the_configured_local_times(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        '[digest]\ndaily_at = 07:30:00\ntimezone = "America/New_York"\nweekly_day = "fri"\n'
        "[scheduler]\nscan_interval = 45\n"
    )
    scheduler = build_scheduler(Publisher(settings))
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"scan", "daily", "weekly", "retry"}

    after = datetime(2026, 3, 7, 13, 0, tzinfo=UTC)  # Saturday 08:00 in New York; DST starts on 8 March
    daily = jobs["daily"].trigger.get_next_fire_time(None, after)
    assert daily.astimezone(ZoneInfo("America/New_York")).timetuple()[:5] == (2026, 3, 8, 7, 30)
    assert daily.utcoffset().total_seconds() == -4 * 3600  # the local hour holds across the change
    weekly = jobs["weekly"].trigger.get_next_fire_time(None, after)
    assert weekly.astimezone(ZoneInfo("America/New_York")).timetuple()[:5] == (2026, 3, 13, 7, 30)
    assert jobs["scan"].trigger.interval.total_seconds() == 45
    assert jobs["retry"].trigger.interval.total_seconds() == 1  # the tests' retry_base: deferred rows go when due
