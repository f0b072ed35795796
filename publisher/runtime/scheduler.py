"""APScheduler 3 jobs: they only wake the service up; the jobs that compose services.

What is due is decided by the store (principle 3), so the in-memory job store is
enough.  Jobs are coroutines on the server's event loop (AsyncIOScheduler), with
``max_instances=1`` and ``coalesce`` so a slow scan never piles up, and a grace time
so a job that wakes up a little late still runs (the default is one second).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime, time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from publisher import clock
from publisher.runtime.nodes import HEARTBEAT_SECONDS
from publisher.runtime.state import JobName
from subscribers.model import Cadence

if TYPE_CHECKING:  # the root imports this module for its jobs' delegates
    from publisher.app import Publisher

PURGE_EVERY = 24 * 3600  # seconds between two purges of sign-ups never confirmed (and one at the start)
# The jobs only the leader runs (see publisher.runtime.daemon); every node delivers and beats.
LEADER_JOBS = (JobName.SCAN, JobName.DIGESTS, JobName.FEEDS, JobName.RELEASE, JobName.PURGE)


async def scan_and_send_instant(publisher: Publisher, told: Collection[Path] | None = None) -> None:
    """The leader's periodic job (and the watcher's, ``told`` the paths it saw change):
    new articles go at once to ``instant`` subscribers.

    Planning asks the store what is due, whatever this scan found: an article
    stored by the API or a feed just before a shutdown still goes out.
    """
    await publisher.intake.scan(told)
    await publisher.delivery.send([Cadence.INSTANT])


async def fetch_and_send_instant(publisher: Publisher) -> None:
    """The leader's upstream feeds job: like :func:`scan_and_send_instant`."""
    if (await publisher.intake.fetch_feeds()).new:
        await publisher.delivery.send([Cadence.INSTANT])


class _SkippedRunIsNoNews(logging.Filter):
    """APScheduler warns when a job's time comes while its previous run still works.

    Every job here asks the store what is due, so the run in progress does the work the
    skipped one would have done: nothing is lost, and as a WARNING it would show in
    ``publisher status`` as a problem whenever the machine is busy.  Logged at DEBUG.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and "maximum number of running instances reached" in str(record.msg):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


_APSCHEDULER_LOG = logging.getLogger("apscheduler.scheduler")
_APSCHEDULER_LOG.addFilter(_SkippedRunIsNoNews())


def build_scheduler() -> AsyncIOScheduler:
    """A scheduler with no jobs yet (:func:`schedule_node_jobs`, :func:`schedule_jobs`)."""
    return AsyncIOScheduler(
        timezone=UTC, job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 3600}
    )


def schedule_node_jobs(
    scheduler: AsyncIOScheduler, publisher: Publisher, beat: Callable[[], Awaitable[None]], *, serves_web: bool,
    at_start: bool,
) -> None:
    """Add (or, on a reload, replace) the jobs every node runs, leader or not; at the
    start they also run at once.

    * ``deliver``: claim and send what is due (new digests, deferred messages whose
      time has come, a resumed digest, another node's lapsed claims), every
      ``[cluster] poll_interval``; a cheap look at the ledger when there is nothing.
      A delivery lasts many polls: a second instance may start, sees the run in
      progress and returns at once (with one instance, APScheduler would log a
      "skipped" warning at every poll, which ``publisher status`` shows as an error).
    * ``heartbeat``: this node's row for ``publisher status``.
    * ``webhooks``: send the events due to ``[[webhooks]]`` (publisher.webhooks), every
      ``[cluster] poll_interval``.
    * ``refresh`` (nodes serving the web): rebuild the feeds when another node stored
      articles (the leader's own scans rebuild them as they go).
    """
    settings = publisher.settings
    jobs: list[tuple[str, Callable[[], Awaitable[object]], float, int]] = [
        (JobName.DELIVER, publisher.delivery.deliver_due, min(settings.cluster.poll_interval, settings.delivery.retry_base), 2),
        (JobName.HEARTBEAT, beat, HEARTBEAT_SECONDS, 1),
        (JobName.WEBHOOKS, publisher.webhooks.send_due, settings.cluster.poll_interval, 1),
    ]
    if serves_web:
        jobs.append((JobName.REFRESH, publisher.shelf.refresh, settings.cluster.poll_interval, 1))
    for name, job, seconds, instances in jobs:
        scheduler.add_job(
            publisher.tasks.run, IntervalTrigger(seconds=seconds), args=[name, job], id=name, name=name,
            replace_existing=True, max_instances=instances, **_first_run(at_start),
        )


def schedule_jobs(scheduler: AsyncIOScheduler, publisher: Publisher, *, at_start: bool) -> None:
    """Add (or, on a reload, replace) the leader's jobs, timed by ``publisher.settings``.

    ``at_start`` (a start, or a node just elected): the scan and the digest planner
    also run at once (a wave missed while no daemon led goes out now, within the
    grace period).  A replaced job's run in progress is not interrupted.
    """
    settings = publisher.settings
    scan_every = IntervalTrigger(seconds=settings.scheduler.scan_interval)
    jobs = [
        (JobName.SCAN, partial(scan_and_send_instant, publisher), scan_every),
        # Daily and weekly digests go out in waves, at each subscriber's hour in their own
        # timezone; zones are offset by whole, half or quarter hours, so the planner wakes
        # every quarter of an hour and the store says which waves are due (publisher.digest.cadence).
        (JobName.DIGESTS, partial(publisher.delivery.send, [Cadence.DAILY, Cadence.WEEKLY]),
         _quarter_hours(settings.digest.daily_at)),
    ]
    if settings.feed_sources:
        # Each feed has its own interval and backoff; the job only asks which are due.
        every = min(60.0, *(source.interval for source in settings.feed_sources))
        jobs.append((JobName.FEEDS, partial(fetch_and_send_instant, publisher), IntervalTrigger(seconds=every)))
    elif scheduler.get_job(JobName.FEEDS) is not None:  # a reload removed the last feed source
        scheduler.remove_job(JobName.FEEDS)
    if settings.subscribers.purge_pending_age is not None:
        jobs.append((JobName.PURGE, publisher.subscribers.purge_pending, IntervalTrigger(seconds=PURGE_EVERY)))
    elif scheduler.get_job(JobName.PURGE) is not None:  # a reload turned the purge off
        scheduler.remove_job(JobName.PURGE)
    for name, job, trigger in jobs:
        scheduler.add_job(
            publisher.tasks.run, trigger, args=[name, job], id=name, name=name, replace_existing=True,
            **_first_run(at_start),
        )
    publisher.on_next_release = partial(arm_release, scheduler, publisher)


def arm_release(scheduler: AsyncIOScheduler, publisher: Publisher, at: datetime | None) -> None:
    """Wake the leader when the earliest scheduled article is due (``release``), so it goes
    out on time without waiting for a scan; re-armed after every ingest."""
    if at is None:
        if scheduler.get_job(JobName.RELEASE) is not None:
            scheduler.remove_job(JobName.RELEASE)
        return
    scheduler.add_job(
        publisher.tasks.run, DateTrigger(run_date=max(at, clock.now())), args=[JobName.RELEASE, publisher.intake.publish_due],
        id=JobName.RELEASE, name=JobName.RELEASE, replace_existing=True,
    )


def _first_run(at_start: bool) -> dict[str, datetime]:
    """Run at once at the start; on a reload, at the trigger's next time.

    (``next_run_time=None`` would add the job paused, so it is only passed to run at once.)
    """
    return {"next_run_time": clock.now()} if at_start else {}


def _quarter_hours(at: time) -> CronTrigger:
    """Every quarter of an hour on the minute of ``[digest] daily_at`` (08:10 → :10, :25, :40, :55)."""
    minutes = sorted((at.minute + 15 * k) % 60 for k in range(4))
    return CronTrigger(minute=",".join(map(str, minutes)), second=at.second, timezone=UTC)
