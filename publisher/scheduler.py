"""APScheduler 3 jobs: they only wake the service up.

What is due is decided by the store (principle 3), so the in-memory job store is
enough.  Jobs are coroutines on the server's event loop (AsyncIOScheduler), with
``max_instances=1`` and ``coalesce`` so a slow scan never piles up, and a grace time
so a job that wakes up a little late still runs (the default is one second).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from publisher.app import Publisher
from subscribers.model import Cadence


def build_scheduler(publisher: Publisher) -> AsyncIOScheduler:
    settings = publisher.settings
    scheduler = AsyncIOScheduler(
        timezone=UTC, job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 3600}
    )
    at = settings.digest.daily_at
    zone = settings.digest.tz
    jobs = [
        ("scan", publisher.scan_and_send_instant, IntervalTrigger(seconds=settings.scheduler.scan_interval)),
        ("daily", partial(publisher.send, [Cadence.DAILY]), CronTrigger(hour=at.hour, minute=at.minute, timezone=zone)),
        (
            "weekly",
            partial(publisher.send, [Cadence.WEEKLY]),
            CronTrigger(day_of_week=settings.digest.weekly_day, hour=at.hour, minute=at.minute, timezone=zone),
        ),
        # Deferred messages (throttled, relay down) go again when due; a resumed or
        # interrupted digest is picked up too.  Cheap when there is nothing to do.
        ("retry", publisher.deliver, IntervalTrigger(seconds=min(settings.delivery.retry_base, 60.0))),
    ]
    for name, job, trigger in jobs:
        # (next_run_time=None would add the job paused, so it is only passed for the scan.)
        first_run = {"next_run_time": datetime.now(UTC)} if name == "scan" else {}
        scheduler.add_job(publisher.run_job, trigger, args=[name, job], id=name, name=name, **first_run)
    return scheduler
