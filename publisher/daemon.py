"""``publisher run``: one asyncio process with the scheduler and the web server.

We run our own ``AppRunner`` (not ``web.run_app``) because the scheduler and the
service must start and stop around the server, so the signal handlers are ours too
(NOTES.md).  On SIGTERM or Ctrl-C: stop taking new work, let the delivery run in
progress finish the message in hand (the rest of its batch goes back to pending),
then close the server and the store, within ``[server] shutdown_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from functools import partial

from aiohttp import web

from publisher.app import Publisher
from publisher.config import Settings
from publisher.locks import exclusive, holder
from publisher.scheduler import build_scheduler
from publisher.watch import watch_content
from publisher.web.server import create_app

log = logging.getLogger(__name__)


class DaemonError(Exception):
    """The daemon can't start; the message says why and what to change."""


async def run_daemon(settings: Settings) -> None:
    database = settings.database.sqlite_file
    if database is None:
        await _run(settings)
        return
    # SQLite is one machine's database: one daemon on it, or both would run the schedule.
    lock = database.with_name(database.name + ".daemon.lock")
    with exclusive(lock) as taken:
        if not taken:
            raise DaemonError(
                f"another publisher daemon (pid {holder(lock) or 'unknown'}) is already running on {database}; "
                "stop it first (SQLite allows one daemon per database; several nodes need PostgreSQL)"
            )
        await _run(settings)


async def _run(settings: Settings) -> None:
    publisher = Publisher(settings)
    await publisher.start()
    await publisher.build_feeds()
    runner = web.AppRunner(create_app(publisher), handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await _listen(runner, settings)
        await _serve_until_stopped(publisher, settings)
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


async def _serve_until_stopped(publisher: Publisher, settings: Settings) -> None:
    """Run the schedule until SIGTERM/SIGINT, then drain the job in progress."""
    scheduler = build_scheduler(publisher)
    scheduler.start()
    publisher.scheduler_running = True
    watcher = asyncio.create_task(
        watch_content(publisher, partial(publisher.run_job, "watch", publisher.scan_and_send_instant))
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
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
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
