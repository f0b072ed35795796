"""Where a delivery run's outcomes go: the ledger, in batches, and the run's report.

Outcomes are flushed every ``FLUSH_EVERY`` messages or ``FLUSH_SECONDS``, in one
transaction each, which also releases the rows' claims; a crash leaves in ``sending``
only the rows claimed but not yet recorded, and only those really sent can go out
twice.  The same lock orders the lease renewals of the rows still held: two
transactions of one run updating the same rows in different orders deadlock
(PostgreSQL then fails one of them).

A write the database refuses (a lock held for a minute, a failover) is tried again
for as long as the process lives (:func:`retrying`): these messages went out, and
losing their outcomes would send them again once the claim lapses.

Between two batches the journal (:mod:`publisher.delivery.journal`) is the record: each
message the transport accepted is written to it when its outcome is added, before the
sender goes on, and :func:`recover` puts a dead process's journal into the ledger
before anything is claimed.  So a kill -9 costs only the messages on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher import clock, metrics
from publisher.delivery import ledger
from publisher.delivery.journal import Journal, orphans
from publisher.delivery.model import DeliveryReport, DeliveryState
from publisher.delivery.pacing import Backoff
from publisher.logs import digest_context
from subscribers import service
from subscribers.service import BounceKind

log = logging.getLogger(__package__)  # "publisher.delivery", as the engine's lines

FLUSH_EVERY = 1_000  # outcomes per ledger transaction (each costs about 1.5 ms of CPU: at 200, 7 µs a message)
FLUSH_SECONDS = 0.5
PROGRESS_SECONDS = 5.0
RETRY_FIRST, RETRY_LIMIT = 0.1, 10.0  # seconds between tries of a ledger write after a database error

T = TypeVar("T")


async def retrying(what: str, write: Callable[[], Awaitable[T]]) -> T:
    """``write()`` until the database takes it, pausing longer after each error."""
    pause = Backoff(RETRY_FIRST, limit=RETRY_LIMIT)
    while True:
        try:
            return await write()
        except DBAPIError as exc:
            delay = pause.next_pause()
            log.warning("delivery: could not %s (%s); trying again in %.1fs", what, exc.orig or exc, delay)
            await asyncio.sleep(delay)


class Outcomes:
    """One run's outcomes: the rows it holds, the outcomes not yet written, the report."""

    def __init__(
        self, engine: AsyncEngine, *, soft_bounce_limit: int,
        progress: Callable[[DeliveryReport], None] | None = None, journal: Journal | None = None,
        turn: Callable[[], AbstractAsyncContextManager[object]] = contextlib.nullcontext,
    ) -> None:
        self.engine = engine
        self.journal = journal  # None: no crash record (a test's run, in-process)
        self.soft_bounce_limit = soft_bounce_limit
        self.progress = progress
        self._turn = turn  # taken around each write (a plan writing beside: see publisher.digest.plan.PlanProgress)
        self.report = DeliveryReport()
        self._held: dict[str, set[int]] = {}  # claimed rows not yet recorded, by digest
        # Outcomes not yet written: the messages sent (nearly all) as subscriber ids by
        # digest, no object per message; the other outcomes as the ledger's parameter sets.
        self._sent: dict[str, list[int]] = {}
        self._other: list[dict[str, object]] = []
        self._waiting = 0  # how many outcomes wait for the next flush
        self._bounced: list[tuple[int, BounceKind]] = []
        self._started = self._last_flush = self._last_log = time.monotonic()
        self._lock = asyncio.Lock()

    def hold(self, digest_id: str, subscriber_ids: list[int]) -> None:
        """Rows just claimed: held (their lease renewed) until their outcome is written."""
        self._held.setdefault(digest_id, set()).update(subscriber_ids)

    def add(
        self, digest_id: str, subscriber_id: int, state: DeliveryState, attempts: int, *,
        last_reply: str | None = None, retry_at: datetime | None = None,
    ) -> bool:
        """One row's outcome (``pending``: handed back untried), written with the next
        flush; whether that flush is due now (the caller awaits :meth:`flush` then).

        Not a coroutine: it runs once per message, and a message sent is in the journal
        when it returns (nothing can come between the write and the append: a flush
        takes both or neither).
        """
        if state == DeliveryState.SENT:
            if self.journal is not None:
                self.journal.accepted(digest_id, subscriber_id)
            sent = self._sent.get(digest_id)
            if sent is None:
                sent = self._sent[digest_id] = []
            sent.append(subscriber_id)
            self.report.sent += 1
        else:
            self._other.append({
                "digest": digest_id, "sid": subscriber_id, "state": state,
                "attempts": attempts, "retry_at": retry_at, "last_reply": last_reply,
            })
            if state != DeliveryState.PENDING:
                setattr(self.report, state, getattr(self.report, state) + 1)
        self._waiting += 1
        return self._waiting >= FLUSH_EVERY or time.monotonic() - self._last_flush >= FLUSH_SECONDS

    def bounce(self, subscriber_id: int, kind: BounceKind) -> None:
        """A refusal about the reader: their bounce is recorded with the next flush."""
        self._bounced.append((subscriber_id, kind))

    async def flush(self) -> None:
        """Write the outcomes gathered so far in one transaction; mark the bounces."""
        async with self._lock:
            sent, other, self._sent, self._other, self._waiting = self._sent, self._other, {}, [], 0
            segment = self.journal.rotate() if self.journal is not None else None  # exactly these outcomes' lines
            bounced, self._bounced = self._bounced, []
            self._last_flush = time.monotonic()
            now = clock.now()
            count = sum(map(len, sent.values())) + len(other)
            async with self._turn():
                await retrying(f"record {count} outcomes", lambda: ledger.record(self.engine, other, now, sent=sent))
            if self.journal is not None:
                self.journal.confirm(segment)
            for digest_id, ids in sent.items():
                self._held[digest_id].difference_update(ids)
            for outcome in other:
                self._held[str(outcome["digest"])].discard(int(outcome["sid"]))  # type: ignore[call-overload]
            counts = Counter(str(o["state"]) for o in other if o["state"] != DeliveryState.PENDING)
            counts[str(DeliveryState.SENT)] += count - len(other)
            for state, number in counts.items():
                metrics.messages(state, number)
            metrics.send_rate(self.report.handled / max(time.monotonic() - self._started, 1e-6))
            # A flush may come from any sender, in the context of the digest it was sending:
            # a bounce is the reader's, whichever digest found it, and its lines say no digest.
            with digest_context(None):
                for subscriber_id, kind in bounced:
                    async with self._turn():
                        await retrying("record a bounce", functools.partial(
                            service.record_bounce, self.engine, email=None, subscriber_id=subscriber_id, kind=kind,
                            now=now, soft_limit=self.soft_bounce_limit,
                        ))
        if self.progress is not None:
            self.progress(self.report)
        if time.monotonic() - self._last_log >= PROGRESS_SECONDS:
            self._last_log = time.monotonic()
            self.log_counts("delivery")

    async def renew(self, claimant: ledger.Claimant) -> None:
        """Renew the lease on the rows held (never while outcomes are written: see the module)."""
        async with self._lock:
            held = {digest: set(ids) for digest, ids in self._held.items() if ids}
            if not held:
                return
            try:
                async with self._turn():
                    await ledger.renew(self.engine, held, clock.now(), claimant)
            except Exception:  # the database is away: the next renewal may succeed before the lease lapses
                log.exception("delivery: could not renew the lease on %d rows", sum(map(len, held.values())))

    def log_counts(self, what: str) -> None:
        r = self.report
        with digest_context(None):  # counts for the whole run, whichever digest's outcome flushed them
            log.info("%s: %d sent, %d deferred, %d failed, %d cancelled",
                     what, r.sent, r.deferred, r.failed, r.cancelled)


async def recover(engine: AsyncEngine, journal: Journal) -> int:
    """Before a run claims anything: put in the ledger what dead processes' journals (in
    ``journal``'s directory) and this process's own unconfirmed segments say was sent,
    and give a dead process's other claimed rows back at once.  How many rows became sent.

    A process on this machine that died (its journal unlocked) is known to be dead: its
    rows need not wait out their lease.  A node on another machine can't be known dead
    from here: its rows wait for the lease, and its journal is not seen.
    """
    now = clock.now()
    recovered = 0
    if leftovers := journal.leftovers():
        await retrying("record this process's journal", functools.partial(ledger.record, engine, [], now, sent=leftovers))
        journal.forget_leftovers()
        recovered += sum(map(len, leftovers.values()))
    with orphans(journal.directory) as dead:
        for orphan in dead:
            await retrying("replay a journal", functools.partial(ledger.record, engine, [], now, sent=orphan.accepted))
            released = await retrying("release a dead process's rows", functools.partial(
                ledger.release, engine, orphan.claimant, now
            ))
            sent = sum(map(len, orphan.accepted.values()))
            recovered += sent
            if sent or released:
                log.warning("delivery: %s died; its journal says %d message(s) went out (recorded as sent); "
                            "%d message(s) it held given back", orphan.claimant, sent, released)
    return recovered
