"""APScheduler 3 jobs: they only wake the service up.

What is due is decided by the store (principle 3), so the in-memory job store is
enough.  Jobs are coroutines on the server's event loop (AsyncIOScheduler), with
``max_instances=1`` and ``coalesce`` so a slow scan never piles up, and a grace time
so a job that wakes up a little late still runs (the default is one second).
"""

from __future__ import annotations

from datetime import UTC, datetime, time
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
    jobs = [
        ("scan", publisher.scan_and_send_instant, IntervalTrigger(seconds=settings.scheduler.scan_interval)),
        # Daily and weekly digests go out in waves, at each subscriber's hour in their own
        # timezone; zones are offset by whole, half or quarter hours, so the planner wakes
        # every quarter of an hour (and at start, for a wave missed while down) and the
        # store says which waves are due (publisher.cadence).
        ("digests", partial(publisher.send, [Cadence.DAILY, Cadence.WEEKLY]), _quarter_hours(settings.digest.daily_at)),
        # Deferred messages (throttled, relay down) go again when due; a resumed or
        # interrupted digest is picked up too.  Cheap when there is nothing to do.
        ("retry", publisher.deliver, IntervalTrigger(seconds=min(settings.delivery.retry_base, 60.0))),
    ]
    at_start = {"scan", "digests"}
    for name, job, trigger in jobs:
        # (next_run_time=None would add the job paused, so it is only passed to run at once.)
        first_run = {"next_run_time": datetime.now(UTC)} if name in at_start else {}
        scheduler.add_job(publisher.run_job, trigger, args=[name, job], id=name, name=name, **first_run)
    return scheduler


def _quarter_hours(at: time) -> CronTrigger:
    """Every quarter of an hour on the minute of ``[digest] daily_at`` (08:10 → :10, :25, :40, :55)."""
    minutes = sorted((at.minute + 15 * k) % 60 for k in range(4))
    return CronTrigger(minute=",".join(map(str, minutes)), second=at.second, timezone=UTC)
