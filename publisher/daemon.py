"""``publisher run``: one asyncio process with the scheduler and the web server.

We run our own ``AppRunner`` (not ``web.run_app``) because the scheduler and the
service must start and stop around the server, so the signal handlers are ours too
(NOTES.md).  On SIGTERM or Ctrl-C: stop taking new work, let the delivery run in
progress finish the message in hand (the rest of its batch goes back to pending),
then close the server and the store, within ``[server] shutdown_timeout``.  On
SIGHUP: read the config file again and apply it without closing a connection; a
config with errors is logged and the running one stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from publisher import nodes
from publisher.app import Publisher
from publisher.config import ConfigError, Settings
from publisher.locks import exclusive, holder
from publisher.scheduler import build_scheduler, schedule_jobs
from publisher.watch import watch_content
from publisher.web.server import create_runner

log = logging.getLogger(__name__)


class DaemonError(Exception):
    """The daemon can't start; the message says why and what to change."""


async def run_daemon(settings: Settings, reload: Callable[[], Settings]) -> None:
    """Run until SIGTERM/SIGINT; on SIGHUP, ``reload()`` (raises ConfigError) gives the new settings."""
    database = settings.database.sqlite_file
    if database is None:
        await _run(settings, reload)
        return
    # SQLite is one machine's database: one daemon on it, or both would run the schedule.
    lock = database.with_name(database.name + ".daemon.lock")
    with exclusive(lock) as taken:
        if not taken:
            raise DaemonError(
                f"another publisher daemon (pid {holder(lock) or 'unknown'}) is already running on {database}; "
                "stop it first (SQLite allows one daemon per database; several nodes need PostgreSQL)"
            )
        await _run(settings, reload)


async def _run(settings: Settings, reload: Callable[[], Settings]) -> None:
    publisher = Publisher(settings)
    await publisher.start()
    await publisher.build_feeds()
    runner = create_runner(publisher)
    await runner.setup()
    try:
        await _listen(runner, settings)
        await _serve_until_stopped(publisher, settings, reload)
    finally:
        await runner.cleanup()
        await publisher.close()
    log.info("stopped")


async def _listen(runner: web.AppRunner, settings: Settings) -> None:
    host, port = settings.server.host, settings.server.port
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        raise DaemonError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another publisher running? change [server] port)"
        ) from None
    log.info("serving on http://%s:%d/", host, port)


async def _serve_until_stopped(publisher: Publisher, settings: Settings, reload: Callable[[], Settings]) -> None:
    """Run the schedule until SIGTERM/SIGINT, then drain the job in progress; SIGHUP reloads."""
    scheduler = build_scheduler(publisher)
    problems = nodes.RecentProblems()
    logging.getLogger().addHandler(problems)
    node = nodes.this_node("daemon", datetime.now(UTC))

    async def beat() -> None:
        state = {
            "jobs": {job.id: job.next_run_time for job in scheduler.get_jobs() if job.id != "heartbeat"},
            "last_scan_at": publisher.last_scan_at,
            "errors": list(problems.records),
        }
        await nodes.heartbeat(publisher.engine, node, state, datetime.now(UTC))

    scheduler.add_job(
        publisher.run_job, IntervalTrigger(seconds=nodes.HEARTBEAT_SECONDS), args=["heartbeat", beat],
        id="heartbeat", name="heartbeat", next_run_time=datetime.now(UTC),
    )
    scheduler.start()
    publisher.scheduler_running = True
    watcher = asyncio.create_task(
        watch_content(publisher, partial(publisher.run_job, "watch", publisher.scan_and_send_instant))
    )
    stop = asyncio.Event()
    reloads: set[asyncio.Task[None]] = set()

    def on_hangup() -> None:
        task = asyncio.create_task(_reload(publisher, scheduler, reload))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    try:
        await stop.wait()
        log.info("stopping: finishing the delivery in progress")
        # Pause first: APScheduler's shutdown cancels running coroutine jobs, so it comes
        # only after the job in progress has had its chance to finish.
        scheduler.pause()
        drained = await publisher.drain(settings.server.shutdown_timeout)
        await asyncio.sleep(0)  # a job submitted just before the pause starts, sees "stopping", returns
        scheduler.shutdown(wait=False)
        publisher.scheduler_running = False
        watcher.cancel()  # it ends by itself once "stopping" is set; this makes it immediate
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        if not drained:
            log.warning("delivery still busy after %ss; its rows stay resumable", settings.server.shutdown_timeout)
        await nodes.leave(publisher.engine, node)
    finally:
        logging.getLogger().removeHandler(problems)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)


async def _reload(publisher: Publisher, scheduler: AsyncIOScheduler, load: Callable[[], Settings]) -> None:
    """SIGHUP: read the config again and use it; a bad one leaves the running one in place.

    Connections stay open (the server is not restarted); the job in progress
    finishes with the settings it started with.
    """
    log.info("SIGHUP: reloading the configuration")
    try:
        settings = await asyncio.to_thread(load)
        needs_restart = publisher.reconfigure(settings)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("reload refused, the running configuration stays: %s", problem)
        return
    except (OSError, ValueError) as exc:
        log.error("reload refused, the running configuration stays: %s", exc)
        return
    schedule_jobs(scheduler, publisher, at_start=False)
    for key in needs_restart:
        log.warning("reload: %s changed; it applies at the next restart", key)
    await publisher.build_feeds()  # the site's title, URLs or feed templates may have changed
    log.info("reloaded the configuration and templates")
