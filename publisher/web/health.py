"""Operations endpoints: liveness, readiness and Prometheus metrics.

* ``GET /healthz``: the process answers (no I/O): 200 ``{"status": "ok"}``.  For a
  liveness probe: restart the process when this fails.
* ``GET /readyz``: 200 only when the database answers ``SELECT 1`` and takes a write
  (a one-row upsert in ``meta``: a full disk or a read-only replica still answers
  reads) within :data:`DB_TIMEOUT` seconds, the schedule runs and the last content
  scan is recent (younger than ``max(3 × [scheduler] scan_interval, 60 s)``); otherwise
  503.  Both carry every check with its outcome, e.g. ``{"status": "not ready",
  "checks": {"database": {"ok": true, "detail": "SELECT 1 and a write in 2 ms"},
  "scheduler": {"ok": false, "detail": "the schedule is not running"}, ...},
  "lost_signups": 0}``.  ``lost_signups`` counts the sign-ups (and other work the pages
  leave for after their answer) this process gave up storing after its retries.  For
  a readiness probe or a load balancer: send no traffic while this fails.  Problems
  that don't stop the node serving are listed under ``warnings`` without changing the
  status, e.g. ``{"static_files": "cannot write the static feed files to …"}`` (the
  feeds are served from memory).
* ``GET /metrics``: :mod:`publisher.metrics` in Prometheus' text format; the queue depth
  gauge is refreshed from the ledger first (at most every :data:`QUEUE_DEPTH_EVERY`
  seconds, so a busy scraper costs one COUNT query per interval), and the messages by
  mailbox provider at most every :data:`PROVIDERS_EVERY` seconds.

These answer on the daemon's own port; behind a proxy keep ``/metrics`` and
``/readyz`` internal (deploy/nginx.conf does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from publisher import clock, metrics, urls
from publisher.app import Publisher
from publisher.logs import first_line
from publisher.runtime.state import NodeRole, NodeState
from publisher.web.keys import PUBLISHER

log = logging.getLogger(__name__)
T = TypeVar("T")

DB_TIMEOUT = 2.0  # seconds the database has to answer SELECT 1 and take the probe's write
MIN_SCAN_AGE = 60.0  # seconds: the shortest staleness limit, whatever scan_interval says
SCAN_INTERVALS = 3  # a scan is stale after this many intervals without one
QUEUE_DEPTH_EVERY = 5.0  # seconds between two ledger counts for /metrics
PROVIDERS_EVERY = 60.0  # seconds between two counts of the open digests' messages by provider (a GROUP BY) ...
PROVIDERS_TIMEOUT = 8.0  # ... which may take this long (about 2 s at 200,000 messages: bench/report.py)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    body = await readiness(request.app[PUBLISHER])
    return web.json_response(
        body,
        status=200 if body["status"] == "ready" else 503,
        headers={"Cache-Control": "no-store"},
    )


async def readiness(publisher: Publisher) -> dict[str, Any]:
    """The body of ``/readyz`` (see the module docstring); the dashboard's settings page shows it too."""
    checks = {
        "database": await _database(publisher),
        "scheduler": _scheduler(publisher.node),
        "scan": _scan(publisher.node, publisher.settings.scheduler.scan_interval, clock.now()),
    }
    ready = all(check["ok"] for check in checks.values())
    body: dict[str, Any] = {
        "status": "ready" if ready else "not ready", "checks": checks, "lost_signups": publisher.notices.given_up,
    }
    if publisher.shelf.static_files_problem is not None:  # served from memory all the same: not a reason to take no traffic
        body["warnings"] = {"static_files": publisher.shelf.static_files_problem}
    return body


async def _database(publisher: Publisher) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(DB_TIMEOUT):
            await publisher.database_answers()
    except TimeoutError:
        return {"ok": False, "detail": f"SELECT 1 did not answer within {DB_TIMEOUT:g} s"}
    except (SQLAlchemyError, OSError) as exc:  # the driver's errors, wrapped or not
        return {"ok": False, "detail": f"SELECT 1 failed: {first_line(exc)}"}
    try:
        async with asyncio.timeout(DB_TIMEOUT - (time.perf_counter() - started)):
            await publisher.database_takes_writes()
    except TimeoutError:
        return {"ok": False, "detail": f"a write did not finish within {DB_TIMEOUT:g} s"}
    except (SQLAlchemyError, OSError) as exc:
        return {"ok": False, "detail": f"a write failed: {first_line(exc)}"}
    return {"ok": True, "detail": f"SELECT 1 and a write in {(time.perf_counter() - started) * 1000:.0f} ms"}


def _scheduler(node: NodeState) -> dict[str, Any]:
    if node.scheduler_running:
        return {"ok": True, "detail": "the schedule is running"}
    return {"ok": False, "detail": "the schedule is not running"}


def _scan(node: NodeState, scan_interval: float, now: datetime) -> dict[str, Any]:
    if node.role == NodeRole.STANDBY:
        return {"ok": True, "detail": "standby: the leader scans; this node serves what it stored"}
    limit = max(SCAN_INTERVALS * scan_interval, MIN_SCAN_AGE)
    last = node.last_scan_at
    if last is None:
        return {"ok": False, "detail": "no scan has finished yet", "max_age_seconds": limit}
    age = (now - last) / timedelta(seconds=1)
    detail = {"last_scan_at": last.isoformat(), "age_seconds": round(age, 1), "max_age_seconds": limit}
    if age > limit:
        return {"ok": False, "detail": f"the last scan finished {age:.0f} s ago (limit {limit:g} s)"} | detail
    return {"ok": True, "detail": f"the last scan finished {age:.0f} s ago"} | detail


class Gauge(Generic[T]):
    """Refreshes a gauge from the store, at most every ``every`` seconds: ``read`` asks the
    publisher (within ``timeout`` seconds), ``record`` sets the gauge; after an error the
    gauge keeps its last value."""

    def __init__(
        self, what: str, read: Callable[[Publisher], Awaitable[T]], record: Callable[[T], None], *,
        every: float, timeout: float = DB_TIMEOUT,
    ) -> None:
        self.what, self.read, self.record, self.every, self.timeout = what, read, record, every, timeout
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def refresh(self, publisher: Publisher) -> None:
        async with self._lock:  # concurrent scrapes share one query
            now = time.monotonic()
            if now < self._next:
                return
            self._next = now + self.every
            try:
                async with asyncio.timeout(self.timeout):
                    value = await self.read(publisher)
            except (TimeoutError, SQLAlchemyError, OSError) as exc:
                log.warning("metrics: cannot %s: %s", self.what, first_line(exc))
                return
            self.record(value)


def _due_count(publisher: Publisher) -> Awaitable[int]:
    return publisher.delivery.due_count()


def _open_by_provider(publisher: Publisher) -> Awaitable[dict[str, dict[str, int]]]:
    return publisher.open_by_provider()


def _provider_pauses(publisher: Publisher) -> Awaitable[dict[str, bool]]:
    return publisher.provider_pauses()


GAUGES_KEY = web.AppKey("gauges", list[Gauge[Any]])


async def metrics_page(request: web.Request) -> web.Response:
    for gauge in request.app[GAUGES_KEY]:
        await gauge.refresh(request.app[PUBLISHER])
    body, content_type = metrics.render()
    return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


def add_health_routes(app: web.Application) -> None:
    app[GAUGES_KEY] = [
        Gauge("count the due ledger rows", _due_count, metrics.queue_depth, every=QUEUE_DEPTH_EVERY),
        Gauge("count the messages by provider", _open_by_provider, metrics.provider_messages,
              every=PROVIDERS_EVERY, timeout=PROVIDERS_TIMEOUT),
        Gauge("read the provider pauses", _provider_pauses, metrics.provider_pauses, every=QUEUE_DEPTH_EVERY),
    ]
    app.router.add_get(urls.HEALTHZ.path, healthz)
    app.router.add_get(urls.READYZ.path, readyz)
    app.router.add_get(urls.METRICS.path, metrics_page)
