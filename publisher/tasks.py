"""The one tracker of background work: jobs, notices and pings a shutdown waits for.

The daemon's scheduled jobs, the articles sent to instant subscribers after an API
call, confirmation emails sent after a sign-up is answered and WebSub pings all run
as asyncio tasks nobody awaits.  Each must finish (or be reported) before the
process exits, and a failure must be logged, not lost in an unretrieved task.  So
they all start here, and :meth:`TaskTracker.drain` waits for every one of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[object]]


class TaskTracker:
    """Starts and tracks background tasks; :meth:`drain` waits for them at shutdown."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()  # set by drain: no new job starts after it
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, object]) -> asyncio.Task[Any]:
        """Run ``work`` in the background, tracked; it handles its own errors."""
        task = asyncio.create_task(work)
        self._track(task)
        return task

    def later(self, name: str, job: Job) -> None:
        """Run ``job`` in the background as :meth:`run` runs it."""
        self.spawn(self.run(name, job))

    async def run(self, name: str, job: Job) -> None:
        """Run one job (a scheduled one, or one :meth:`later` started): tracked, so a
        shutdown waits for it; logged if it fails; not started once stopping."""
        if self.stopping.is_set():
            return
        # The task running the job (APScheduler's, the watcher's, an election's) is
        # tracked for as long as the job runs: those tasks outlive their jobs.
        task = asyncio.current_task()
        adopted = task is not None and task not in self._tasks
        if adopted:
            self._tasks.add(task)  # type: ignore[arg-type]
        try:
            await job()
        except asyncio.CancelledError:
            # Only a shutdown that outlived shutdown_timeout cancels a job; what it left
            # in the ledger is resumed at the next start, so this is news, not a crash.
            log.warning("job %s interrupted by shutdown; its work resumes at the next start", name)
        except Exception:
            log.exception("job %s failed; it will run again at its next time", name)
        finally:
            if adopted:
                self._tasks.discard(task)  # type: ignore[arg-type]

    async def settle(self, timeout: float | None = None) -> bool:
        """Wait for the background work started so far (tests, and the CLI before it exits),
        without stopping anything; False if some outlived ``timeout`` (it goes on)."""
        try:
            async with asyncio.timeout(timeout):
                current = asyncio.current_task()
                while pending := {task for task in self._tasks if task is not current}:
                    await asyncio.wait(pending)
        except TimeoutError:
            return False
        return True

    async def drain(self, timeout: float) -> bool:
        """Stop starting jobs and wait for the running ones; False if some outlived ``timeout``."""
        self.stopping.set()
        current = asyncio.current_task()
        pending = {task for task in self._tasks if task is not current}
        if not pending:
            return True
        _, still_running = await asyncio.wait(pending, timeout=timeout)
        return not still_running

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
