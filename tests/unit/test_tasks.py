"""The one background-task tracker: what a shutdown and a test's settle wait for."""

from __future__ import annotations

import asyncio

import pytest

from publisher.tasks import TaskTracker


async def test_a_long_lived_task_is_waited_for_only_while_it_runs_a_job() -> None:
    """The scheduler's, the watcher's and an election's tasks outlive their jobs: once
    the job is done, a drain must not wait for the task that ran it."""
    tasks = TaskTracker()
    job_done, release = asyncio.Event(), asyncio.Event()

    async def job() -> None:
        job_done.set()

    async def long_lived() -> None:
        await tasks.run("beat", job)
        await release.wait()  # e.g. a campaign going on after its election's heartbeat

    runner = asyncio.create_task(long_lived())
    await job_done.wait()
    await asyncio.sleep(0)
    assert await tasks.drain(0.1)
    release.set()
    await runner


async def test_drain_waits_for_running_jobs_and_starts_no_new_one() -> None:
    tasks = TaskTracker()
    ran: list[str] = []
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(0.05)
        ran.append("slow")

    async def late() -> None:
        ran.append("late")

    tasks.later("slow", slow)
    await started.wait()
    assert await tasks.drain(5)
    assert ran == ["slow"] and tasks.stopping.is_set()
    await tasks.run("late", late)  # skipped: the process is stopping
    assert ran == ["slow"]


async def test_settle_waits_without_stopping_and_reports_a_timeout() -> None:
    tasks = TaskTracker()
    release = asyncio.Event()
    tasks.spawn(release.wait())
    assert not await tasks.settle(0.05)  # still running: False, and it goes on
    release.set()
    assert await tasks.settle(5)
    assert not tasks.stopping.is_set()


async def test_a_failing_job_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    tasks = TaskTracker()

    async def broken() -> None:
        raise RuntimeError("boom")

    await tasks.run("broken", broken)
    assert "job broken failed" in caplog.text
