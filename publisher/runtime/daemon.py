"""``publisher run`` and ``publisher worker``: one asyncio process, a node of the service.

Roles.  A node that runs the schedule (scan, digest planner, feed fetcher) is the
*leader*; on SQLite the one daemon always is (the database's lock file keeps it
alone).  On PostgreSQL every ``publisher run`` campaigns for it
(:mod:`publisher.runtime.leadership`) and serves the web pages and feeds meanwhile as a
*standby*, rebuilding its feeds when the leader stored something.  Every node,
``publisher worker`` too (a *worker*: no web server, no schedule), delivers: it
looks at the ledger every ``[cluster] poll_interval`` and claims what is due.  Each
node writes a heartbeat (role, next jobs, send rate, recent errors) for ``publisher
status``.

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
import ipaddress
import logging
import signal
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from publisher import clock
from publisher.app import Publisher
from publisher.config import ConfigError, Settings
from publisher.delivery.locks import exclusive, holder
from publisher.runtime import nodes
from publisher.runtime.leadership import Leadership
from publisher.runtime.scheduler import (
    LEADER_JOBS,
    build_scheduler,
    scan_and_send_instant,
    schedule_jobs,
    schedule_node_jobs,
)
from publisher.runtime.state import JobName, NodeRole

if TYPE_CHECKING:  # the web server is imported by the daemon that serves, never by a worker
    from aiohttp import web

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


async def run_worker(settings: Settings, reload: Callable[[], Settings]) -> None:
    """A node that only delivers: no web server, no schedule (``publisher worker``)."""
    if not settings.database.shared:
        raise DaemonError(
            "publisher worker shares delivery with other nodes through PostgreSQL; on SQLite (one node) "
            "`publisher run` delivers by itself: set [database] url = \"postgresql+asyncpg://…\" to add workers"
        )
    publisher = Publisher(settings)
    try:
        _ = publisher.dkim  # a key that can't sign stops the start (DkimError), not every delivery
        await publisher.start()
        await _serve_until_stopped(_Node(publisher, NodeRole.WORKER), settings, reload)
    finally:
        await publisher.close()
    log.info("stopped")


def site_url_problem(settings: Settings) -> str | None:
    """Why [site] url can't be this daemon's address, when it is a local one on another port.

    Every link the site hands out (feeds, confirmation and unsubscribe emails) hangs
    off [site] url: on a test machine a port typed in one place and not the other
    makes them all lead nowhere.  A public URL is left alone (a proxy may serve it).
    """
    parts = urlsplit(settings.site.url)
    host = parts.hostname or ""
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name, not an address
        local = False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not local or port == settings.server.port:
        return None
    shown = f"[{host}]" if ":" in host else host
    fixed = urlunsplit(parts._replace(netloc=f"{shown}:{settings.server.port}"))
    return (
        f"[site] url is {settings.site.url} (port {port}), but this daemon listens on [server] port "
        f"{settings.server.port}: every link in the feeds and emails would lead nowhere; set [site] url = "
        f'"{fixed}" or [server] port = {port}'
    )


async def _run(settings: Settings, reload: Callable[[], Settings]) -> None:
    from publisher.i18n import language_warning

    for problem in (site_url_problem(settings), language_warning(settings.site.language)):
        if problem is not None:
            log.warning("%s", problem)
    publisher = Publisher(settings)
    _ = publisher.dkim  # a key that can't sign stops the start (DkimError), not every delivery
    await publisher.start()
    try:
        await publisher.shelf.build()
    except Exception:  # noqa: BLE001 - serving what can be served beats not starting
        # Nothing is served until a build succeeds: the next scan tries again (an empty
        # feed set is always rebuilt).
        log.exception("feeds could not be built at start; serving without them, the next scan tries again")
    from publisher.web.server import create_runner

    runner = create_runner(publisher)
    await runner.setup()
    try:
        await _listen(runner, settings)
        # SQLite has one daemon (the lock file above): it leads.  PostgreSQL nodes campaign.
        role = NodeRole.STANDBY if settings.database.shared else NodeRole.LEADER
        await _serve_until_stopped(_Node(publisher, role), settings, reload)
    finally:
        await runner.cleanup()
        await publisher.close()
    log.info("stopped")


async def _listen(runner: web.AppRunner, settings: Settings) -> None:
    from aiohttp import web

    host, port = settings.server.host, settings.server.port
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        raise DaemonError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another publisher running? change [server] port)"
        ) from None
    log.info("serving on http://%s:%d/", host, port)


class _Node:
    """This process's part: its schedule (leader jobs only while leading), heartbeat and watcher."""

    def __init__(self, publisher: Publisher, role: NodeRole) -> None:
        self.publisher = publisher
        self.state = publisher.node
        self.scheduler = build_scheduler()
        self.problems = nodes.RecentProblems()
        self.node = nodes.this_node(self.state.node_id, role, clock.now())
        self.watcher: asyncio.Task[None] | None = None
        self._last_beat = (time.monotonic(), self.state.sent_total)
        self._beating = asyncio.Lock()
        self.state.role = role

    @property
    def role(self) -> NodeRole:
        return self.state.role

    def schedule(self, *, at_start: bool) -> None:
        """(Re)add this node's jobs, timed by the current settings; a leader's too when leading."""
        schedule_node_jobs(
            self.scheduler, self.publisher, self.beat, serves_web=self.role != NodeRole.WORKER, at_start=at_start
        )
        if self.role == NodeRole.LEADER:
            schedule_jobs(self.scheduler, self.publisher, at_start=at_start)

    async def beat(self) -> None:
        async with self._beating:  # the job and an election's beat: one insert of this node's row
            await self._beat()

    async def _beat(self) -> None:
        now, sent = time.monotonic(), self.state.sent_total
        then, sent_then = self._last_beat
        self._last_beat = (now, sent)
        state: dict[str, Any] = {
            "jobs": {job.id: job.next_run_time for job in self.scheduler.get_jobs() if job.id in LEADER_JOBS},
            "last_scan_at": self.state.last_scan_at,
            "errors": list(self.problems.records),
            "sent": sent,
            "send_rate": round((sent - sent_then) / max(now - then, 1e-3), 1),
            "static_files_problem": self.publisher.shelf.static_files_problem,
        }
        await nodes.heartbeat(self.publisher.engine, self.node, self.role, state, clock.now())

    async def elected(self) -> None:
        self.state.role = NodeRole.LEADER
        schedule_jobs(self.scheduler, self.publisher, at_start=True)  # a wave due while nobody led goes out now
        self.start_watcher()
        await self.publisher.tasks.run(JobName.HEARTBEAT, self.beat)

    async def deposed(self) -> None:
        self.state.role = NodeRole.STANDBY
        self.publisher.on_next_release = None  # the new leader publishes scheduled articles
        for job in LEADER_JOBS:
            if self.scheduler.get_job(job) is not None:
                self.scheduler.remove_job(job)
        await self.stop_watcher()
        await self.publisher.tasks.run(JobName.HEARTBEAT, self.beat)

    def start_watcher(self) -> None:
        if self.watcher is None:
            from publisher.runtime.watch import watch_content  # the leader's alone: a worker never watches

            publisher = self.publisher

            async def job(told: frozenset[Path]) -> None:
                await publisher.tasks.run(JobName.WATCH, partial(scan_and_send_instant, publisher, told))

            self.watcher = asyncio.create_task(watch_content(publisher, job))

    async def stop_watcher(self) -> None:
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


async def _serve_until_stopped(node: _Node, settings: Settings, reload: Callable[[], Settings]) -> None:
    """Run the node until SIGTERM/SIGINT, then drain the job in progress; SIGHUP reloads."""
    publisher, scheduler = node.publisher, node.scheduler
    logging.getLogger().addHandler(node.problems)
    node.schedule(at_start=True)
    scheduler.start()
    publisher.node.scheduler_running = True
    if node.role == NodeRole.LEADER:
        node.start_watcher()
    stop = asyncio.Event()
    campaign = None
    if node.role == NodeRole.STANDBY:
        leadership = Leadership(settings.database.url, settings.cluster.failover, node.elected, node.deposed)
        campaign = asyncio.create_task(leadership.run(stop))

    def on_hangup() -> None:
        publisher.tasks.later(JobName.RELOAD, partial(_reload, node, reload))

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
        drained = await publisher.tasks.drain(settings.server.shutdown_timeout)
        await asyncio.sleep(0)  # a job submitted just before the pause starts, sees "stopping", returns
        if campaign is not None:
            await campaign  # hands the schedule over at once, not after failover
        scheduler.shutdown(wait=False)
        publisher.node.scheduler_running = False
        await node.stop_watcher()  # it ends by itself once "stopping" is set; this makes it immediate
        if not drained:
            log.warning("delivery still busy after %ss; its rows stay resumable", settings.server.shutdown_timeout)
        await nodes.leave(publisher.engine, node.node)
    finally:
        logging.getLogger().removeHandler(node.problems)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)


async def _reload(node: _Node, load: Callable[[], Settings]) -> None:
    """SIGHUP: read the config again and use it; a bad one leaves the running one in place.

    Connections stay open (the server is not restarted); the job in progress
    finishes with the settings it started with.
    """
    log.info("SIGHUP: reloading the configuration")
    publisher = node.publisher
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
    node.schedule(at_start=False)
    for key in needs_restart:
        log.warning("reload: %s changed; it applies at the next restart", key)
    if node.role != NodeRole.WORKER:
        await publisher.shelf.build()  # the site's title, URLs or feed templates may have changed
    log.info("reloaded the configuration and templates")
