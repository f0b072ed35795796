"""Parsed subscriber rows into the store: a transaction of a few set-based queries per batch.

100,000 rows through :func:`subscribers.service.create` one by one would take minutes,
so an import is a thin loop of batches, each decided from two lookups (who exists,
who is suppressed) and written with one executemany INSERT and one UPDATE.

The rules are the lifecycle's (:mod:`subscribers.service`): an import is an operator
vouching for the addresses, so new ones become ``active`` at once, but a suppressed
address (left, bounced, complained, suppressed or erased) is never added back, and an
existing subscriber is left as they are unless the operator asks to update them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from publisher.store.schema import subscribers
from publisher.webhooks.events import about_subscriber, record_many, wanted
from publisher.webhooks.model import EventType
from subscribers import store
from subscribers.importer import ImportRow, ParsedImport, RowError
from subscribers.model import SUPPRESSING, Preferences, Source, Subscriber
from subscribers.validation import email_hash

BATCH_SIZE = 1000  # rows per transaction: under every database's bound-parameter limit

ProgressCallback = Callable[[int, int], None]  # (rows stored so far, rows to store)


@dataclass
class ImportReport:
    """What an import did (or, on a dry run, would do), for the operator's summary."""

    created: int = 0
    updated: int = 0
    existing: int = 0  # already subscribers, left as they were
    suppressed: int = 0  # on the suppression list: skipped
    merged: int = 0
    inactive: int = 0
    invalid: list[RowError] = field(default_factory=list)

    @property
    def invalid_rows(self) -> int:
        return len({error.line for error in self.invalid})

    def lines(self) -> list[tuple[str, int]]:
        """What happened to the file's rows, in words and numbers (the CLI's and the dashboard's summary)."""
        return [
            ("added as active subscribers", self.created),
            ("existing subscribers updated", self.updated),
            ("existing subscribers left unchanged", self.existing),
            ("suppressed addresses skipped", self.suppressed),
            ("duplicate rows merged", self.merged),
            ("not active in the file's status column, skipped", self.inactive),
            ("invalid rows skipped", self.invalid_rows),
        ]

    def add(self, other: ImportReport) -> None:
        """Count in one batch's outcome (the file's merged, inactive and invalid rows are counted once, up front)."""
        self.created += other.created
        self.updated += other.updated
        self.existing += other.existing
        self.suppressed += other.suppressed


@dataclass
class _BatchPlan:
    """What one batch does, decided from two lookups before anything is written."""

    new: list[ImportRow] = field(default_factory=list)
    updates: list[tuple[int, str, Preferences]] = field(default_factory=list)  # (id, name, preferences)
    counts: ImportReport = field(default_factory=ImportReport)  # this batch's part of the report


async def import_rows(
    engine: AsyncEngine,
    parsed: ParsedImport,
    *,
    now: datetime,
    update_existing: bool = False,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    batch_size: int = BATCH_SIZE,
) -> ImportReport:
    """Store ``parsed.rows``, a transaction per batch; the report counts what happened.

    New addresses become active subscribers (source and confirmation ``import``)
    whose first digest holds what is published after ``now``.  Existing subscribers
    are left alone, or with ``update_existing`` get the file's non-empty cells.  A
    suppressed address is skipped whatever the file says.  With ``dry_run`` the
    lookups run and the report is exact, but nothing is written.
    """
    report = ImportReport(merged=parsed.merged, inactive=parsed.inactive, invalid=list(parsed.errors))
    rows = parsed.rows
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        report.add(await _store_batch(engine, batch, now=now, update_existing=update_existing, dry_run=dry_run))
        if progress is not None:
            progress(start + len(batch), len(rows))
    return report


async def _store_batch(
    engine: AsyncEngine, batch: Sequence[ImportRow], *, now: datetime, update_existing: bool, dry_run: bool
) -> ImportReport:
    """One batch in one transaction, tried a second time if a sign-up raced an insert.

    Between the lookup and the insert someone may subscribe through the web with an
    address of the batch; the unique index then fails the insert, and the retry's
    lookup sees them as existing.
    """
    for attempt in (1, 2):
        try:
            async with engine.begin() as conn:
                plan = await _plan_batch(conn, batch, update_existing)
                if not dry_run:
                    await _write_batch(conn, plan, now)
                return plan.counts
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _plan_batch(conn: AsyncConnection, batch: Sequence[ImportRow], update_existing: bool) -> _BatchPlan:
    hashes = {row.email: email_hash(row.email) for row in batch}
    found = await store.existing(conn, list(hashes))
    suppressed = await store.suppressed_among(conn, list(hashes.values()))
    plan = _BatchPlan()
    for row in batch:
        current = found.get(row.email)
        if hashes[row.email] in suppressed or (current is not None and current.status in SUPPRESSING):
            plan.counts.suppressed += 1
        elif current is None:
            plan.new.append(row)
            plan.counts.created += 1
        elif update_existing and (change := _update_of(current, row)) is not None:
            plan.updates.append(change)
            plan.counts.updated += 1
        else:
            plan.counts.existing += 1
    return plan


def _update_of(current: Subscriber, row: ImportRow) -> tuple[int, str, Preferences] | None:
    """The row written over ``current``, or None when that changes nothing."""
    name, prefs = row.applied_to(current.name, current.preferences)
    if (name, prefs) == (current.name, current.preferences):
        return None
    return current.id, name, prefs


async def _write_batch(conn: AsyncConnection, plan: _BatchPlan, now: datetime) -> None:
    """One executemany INSERT and one executemany UPDATE for the whole batch."""
    if plan.new:
        active = await store.activation(conn, Source.IMPORT, now)
        await conn.execute(
            insert(subscribers),
            [
                {
                    "email": row.email,
                    "name": row.name,
                    **store.preference_values(row.preferences),
                    "source": Source.IMPORT.value,
                    "created_at": now,
                    **active,
                }
                for row in plan.new
            ],
        )
        # Announced as a sign-up and its confirmation are (an import makes them active at
        # once), in this transaction: a dry run or a failed batch announces nothing.
        announced = (EventType.SUBSCRIBER_CREATED, EventType.SUBSCRIBER_CONFIRMED)
        if await wanted(conn, *announced):
            # Their ids by one indexed read: an executemany INSERT … RETURNING goes a row at
            # a time on SQLite, eight times slower.
            ids = await store.ids_of(conn, [row.email for row in plan.new])
            await record_many(conn, [
                event for row in plan.new
                for event in about_subscriber(ids[row.email], row.email, str(active["status"]), *announced)
            ], now)
    if plan.updates:
        # Bound names must differ from the column names an UPDATE … SET already uses.
        changes = [(row_id, {"name": name, **store.preference_values(prefs)}) for row_id, name, prefs in plan.updates]
        stmt = (
            update(subscribers)
            .where(subscribers.c.id == bindparam("row_id"))
            .values({column: bindparam(f"new_{column}") for column in changes[0][1]})
        )
        await conn.execute(
            stmt, [{"row_id": row_id, **{f"new_{k}": v for k, v in values.items()}} for row_id, values in changes]
        )
