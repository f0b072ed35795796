"""The delivery ledger: one row per (digest, subscriber), and the digests' own state.

``pending → sending → sent | deferred (retry_at, attempts, last_reply) | failed |
cancelled``.  A delivery run *claims* due rows a batch at a time (keyset-paged by
subscriber id, ``FOR UPDATE SKIP LOCKED``): they become ``sending``, ``claimed_by``
that run until ``lease_until``, which the run renews while it works.  Outcomes are
written back in batches (one transaction for many messages) and release the claim.
So several nodes share one digest without taking the same row twice, and a node that
dies leaves only its claimed rows, which another takes over when their lease lapses
(at once under SQLite's single-machine lock): the only messages that can go out
twice are those in flight at the crash.  A digest is ``finished`` when no row is
pending, sending or deferred; ``paused`` (with a reason) when the error ratio
tripped, until resumed.

This module is long because it is every query on the deliveries and digests tables
(claims, leases, outcomes, the operator's reads and corrections) in one place, so that
the rules of a row's life (what is due, what may be claimed) are written once.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from publisher import clock
from publisher.delivery.model import OPEN_STATES, DeliveryState, DigestState
from publisher.store.db import begin_writing
from publisher.store.schema import deliveries, digest_counts, digests, nodes, subscribers
from publisher.webhooks import events


def _storable(text: object) -> object:
    """Text as every backend keeps it: PostgreSQL refuses NUL characters in text, which
    SQLite would store (a remote server's reply may hold anything)."""
    return text.replace("\x00", "\ufffd") if isinstance(text, str) else text


def _retry_due(now: datetime) -> ColumnElement[bool]:
    return and_(deliveries.c.state == DeliveryState.DEFERRED, deliveries.c.retry_at <= now)


@dataclass(frozen=True)
class DigestSummary:
    """A digest as ``publisher status`` and ``publisher digests`` show it."""

    id: str
    cadence: str
    status: DigestState
    pause_reason: str | None
    created_at: datetime
    counts: dict[str, int]  # rows by state
    articles: int  # how many articles its messages carry (those sent carried what it held then)


async def unfinished_digests(engine: AsyncEngine) -> list[Row]:
    """Digests with rows still to deliver (not paused), oldest first."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(digests.c.id, digests.c.cadence, digests.c.created_at)
            .where(digests.c.status == DigestState.SENDING)
            .order_by(digests.c.created_at, digests.c.id)
        )
        return list(rows.all())


@dataclass(frozen=True)
class Claimant:
    """Who claims rows: one node's delivery, and how long its claims last unrenewed.

    ``exclusive``: this claimant holds the machine's delivery lock (SQLite, one node;
    :mod:`publisher.delivery.locks`), so a row some other claimant left in ``sending`` can only
    be left over from a process that died: it is taken over at once, not after its lease.

    Its own claims are taken again once their lease lapsed: one process runs one
    delivery at a time, a run records every outcome before its pass ends, and within a
    pass keyset paging never comes back to a row; so such a row was left by an earlier
    run of this process that ended without recording it (stopped, or failed).
    """

    id: str
    lease: timedelta
    exclusive: bool = False


def _claimable(now: datetime, claimant: Claimant) -> ColumnElement[bool]:
    """Rows a claimant may take: due (see :func:`_due`), or ``sending`` under a claim that lapsed."""
    abandoned = or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now)
    if claimant.exclusive:
        abandoned = or_(abandoned, deliveries.c.claimed_by.is_(None), deliveries.c.claimed_by != claimant.id)
    return or_(
        deliveries.c.state == DeliveryState.PENDING, _retry_due(now),
        and_(deliveries.c.state == DeliveryState.SENDING, abandoned),
    )


async def claim(
    engine: AsyncEngine, digest_id: str, after: int, limit: int, now: datetime, claimant: Claimant
) -> list[Row]:
    """Claim the next ``limit`` claimable rows after subscriber ``after`` (keyset paging).

    The rows are marked ``sending``, ``claimed_by`` the claimant until ``now + lease``,
    and returned with their subscribers' address, name and *current* status (an
    unsubscribe of a moment ago is seen), by subscriber id.  ``FOR UPDATE SKIP
    LOCKED`` lets nodes claim at the same moment without waiting for one another or
    taking the same row: each skips the rows another's claim has locked.  (SQLite has
    one writer at a time; its claim takes the write lock first instead.)

    Only a digest being sent gives rows: one paused or cancelled meanwhile (by the
    breakers, another node, or an operator) gives none, so every node's run stops
    taking its messages at its next batch (:func:`status` tells it why).
    """
    async with engine.begin() as conn:
        await begin_writing(conn)
        picked = (
            await conn.execute(
                select(deliveries.c.subscriber_id)
                .where(deliveries.c.digest_id == digest_id, deliveries.c.subscriber_id > after,
                       _claimable(now, claimant), _is_sending(digest_id))
                .order_by(deliveries.c.subscriber_id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).scalars().all()
        if not picked:
            return []
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.digest_id == digest_id, deliveries.c.subscriber_id.in_(picked))
            .values(
                state=DeliveryState.SENDING, claimed_by=claimant.id, lease_until=now + claimant.lease, updated_at=now,
            )
        )
        rows = await conn.execute(
            select(
                deliveries.c.subscriber_id, deliveries.c.attempts,
                subscribers.c.email, subscribers.c.name, subscribers.c.status, subscribers.c.cadence,
            )
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(deliveries.c.digest_id == digest_id, deliveries.c.subscriber_id.in_(picked))
            .order_by(deliveries.c.subscriber_id)
        )
        return list(rows.all())


def _is_sending(digest_id: str) -> ColumnElement[bool]:
    return exists().where(digests.c.id == digest_id, digests.c.status == DigestState.SENDING)


async def status(engine: AsyncEngine, digest_id: str) -> DigestState | None:
    """The digest's status now (None: no such digest)."""
    async with engine.connect() as conn:
        found = await conn.scalar(select(digests.c.status).where(digests.c.id == digest_id))
    return None if found is None else DigestState(found)


async def claimable(engine: AsyncEngine, now: datetime, claimant: Claimant) -> bool:
    """Whether the claimant could claim any row of an active digest now."""
    async with engine.connect() as conn:
        found = await conn.scalar(
            select(deliveries.c.subscriber_id)
            .join(digests, digests.c.id == deliveries.c.digest_id)
            .where(digests.c.status == DigestState.SENDING, _claimable(now, claimant))
            .limit(1)
        )
    return found is not None


async def renew(engine: AsyncEngine, held: dict[str, set[int]], now: datetime, claimant: Claimant) -> None:
    """Extend the claimant's lease on the rows it still holds (``{digest id: subscriber ids}``)."""
    async with engine.begin() as conn:
        for digest_id, ids in held.items():
            if ids:
                await conn.execute(
                    update(deliveries)
                    .where(
                        deliveries.c.digest_id == digest_id, deliveries.c.subscriber_id.in_(sorted(ids)),
                        deliveries.c.state == DeliveryState.SENDING, deliveries.c.claimed_by == claimant.id,
                    )
                    .values(lease_until=now + claimant.lease)
                )


async def record(
    engine: AsyncEngine, outcomes: Sequence[dict[str, object]], now: datetime,
    *, sent: Mapping[str, Sequence[int]] | None = None,
) -> None:
    """Write outcomes (``digest``, ``sid``, ``state``, ``attempts``, ``retry_at``, ``last_reply``)
    and the messages ``sent`` (subscriber ids by digest) at once.

    Nearly every outcome is "sent", and those only differ by subscriber: a delivery
    run passes them as ``sent``, no parameter set per message, and one UPDATE per
    digest marks them all (``attempts + 1``; the relay's 250 reply is not kept).
    Parameter sets per row, the other states, cost about 20 µs a message, as much
    as building it.  A row already ``sent`` stays as it is: a journal replayed after a
    crash (:mod:`publisher.delivery.journal`) may name rows whose batch did reach the
    ledger, and the replay must not count their attempt twice.
    """
    by_digest: dict[str, list[int]] = {digest: list(ids) for digest, ids in (sent or {}).items() if ids}
    other = []
    for outcome in outcomes:
        if outcome["state"] == DeliveryState.SENT:
            by_digest.setdefault(str(outcome["digest"]), []).append(int(outcome["sid"]))  # type: ignore[call-overload]
        else:
            other.append(outcome | {"last_reply": _storable(outcome.get("last_reply"))})
    if not by_digest and not other:
        return
    sent = by_digest
    async with engine.begin() as conn:
        for digest_id, ids in sent.items():
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.digest_id == digest_id, deliveries.c.subscriber_id.in_(ids),
                       deliveries.c.state != DeliveryState.SENT)
                .values(
                    state=DeliveryState.SENT, attempts=deliveries.c.attempts + 1, retry_at=None, last_reply=None,
                    updated_at=now, claimed_by=None, lease_until=None,
                )
            )
        if other:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.digest_id == bindparam("digest"), deliveries.c.subscriber_id == bindparam("sid"))
                .values(
                    state=bindparam("state"),
                    attempts=bindparam("attempts"),
                    retry_at=bindparam("retry_at"),
                    last_reply=bindparam("last_reply"),
                    updated_at=now,
                    claimed_by=None,
                    lease_until=None,
                ),
                other,
            )
        delivered = [sid for ids in sent.values() for sid in ids]
        if delivered:  # soft bounces count "since the last delivery that went through"
            await conn.execute(
                update(subscribers)
                .where(subscribers.c.id.in_(delivered), subscribers.c.soft_bounces > 0)
                .values(soft_bounces=0)
            )


async def release(engine: AsyncEngine, claimant_id: str, now: datetime) -> int:
    """Give back at once every row ``claimant_id`` still holds, as ``pending``: it is known
    to be dead (its journal's lock was free), so its lease need not be waited out.
    How many rows were given back."""
    async with engine.begin() as conn:
        released = await conn.execute(
            update(deliveries)
            .where(deliveries.c.state == DeliveryState.SENDING, deliveries.c.claimed_by == claimant_id)
            .values(state=DeliveryState.PENDING, claimed_by=None, lease_until=None, updated_at=now)
        )
        return released.rowcount


async def being_planned(engine: AsyncEngine, digest_id: str) -> bool:
    """Whether the digest's plan is still being written (more rows may come: see
    :mod:`publisher.digest.plan`)."""
    async with engine.connect() as conn:
        cursor = await conn.scalar(select(digests.c.plan_cursor).where(digests.c.id == digest_id))
    return cursor is not None


async def finish_if_done(engine: AsyncEngine, digest_id: str, now: datetime) -> bool:
    """Finish the digest if its plan is complete and no row of it is left to deliver.

    The plan is read first: its last batch writes rows and completes it in one
    transaction, so rows counted after a complete plan are all of them.
    """
    async with engine.begin() as conn:
        if await conn.scalar(select(digests.c.plan_cursor).where(digests.c.id == digest_id)) is not None:
            return False
        open_rows = await conn.scalar(
            select(func.count()).where(deliveries.c.digest_id == digest_id, deliveries.c.state.in_(OPEN_STATES))
        )
        if open_rows:
            return False
        finished = await conn.execute(
            update(digests)
            .where(digests.c.id == digest_id, digests.c.status != DigestState.FINISHED)
            .values(status=DigestState.FINISHED, finished_at=now, pause_reason=None)
        )
        if finished.rowcount:
            await events.record(conn, events.EventType.DIGEST_FINISHED, {"id": digest_id}, f"digest:{digest_id}",
                                now)
        return True


async def next_retry(engine: AsyncEngine) -> datetime | None:
    """When a row of an active digest can next be claimed: the earliest deferred row's
    retry, or the earliest claim's lease, this node's own included (None: neither)."""
    async with engine.connect() as conn:
        retry = await conn.scalar(
            select(func.min(deliveries.c.retry_at))
            .join(digests, digests.c.id == deliveries.c.digest_id)
            .where(deliveries.c.state == DeliveryState.DEFERRED, digests.c.status == DigestState.SENDING)
        )
        lease = await conn.scalar(
            select(func.min(deliveries.c.lease_until))
            .join(digests, digests.c.id == deliveries.c.digest_id)
            .where(deliveries.c.state == DeliveryState.SENDING, digests.c.status == DigestState.SENDING)
        )
    return min((when for when in (retry, lease) if when is not None), default=None)


def _in(engine: AsyncEngine, within: AsyncConnection | None) -> AbstractAsyncContextManager[AsyncConnection]:
    """Where an operator's correction is written: a transaction of its own, or ``within``
    one already begun (the dashboard's, which also writes the audit row, so that the change
    and its record stand or fall together: :meth:`publisher.admin.service.OperatorService.audited`)."""
    return engine.begin() if within is None else contextlib.nullcontext(within)


async def pause(engine: AsyncEngine, digest_id: str, reason: str, *, within: AsyncConnection | None = None) -> bool:
    """Pause a digest being sent, with ``reason``; False if no digest with this id is being sent.

    Every node's delivery stops claiming its rows at once (:func:`claim`); the rows
    already handed to a connection finish their attempt.
    """
    async with _in(engine, within) as conn:
        paused = await conn.execute(
            update(digests)
            .where(digests.c.id == digest_id, digests.c.status == DigestState.SENDING)
            .values(status=DigestState.PAUSED, pause_reason=_storable(reason))
        )
        if paused.rowcount:
            await events.record(conn, events.EventType.DIGEST_PAUSED, {"id": digest_id, "reason": reason},
                                f"digest:{digest_id}", clock.now())
        return paused.rowcount > 0


async def resume(engine: AsyncEngine, digest_id: str, *, within: AsyncConnection | None = None) -> bool:
    """Let a paused digest go on; False if there is no paused digest with this id."""
    async with _in(engine, within) as conn:
        result = await conn.execute(
            update(digests)
            .where(digests.c.id == digest_id, digests.c.status == DigestState.PAUSED)
            .values(status=DigestState.SENDING, pause_reason=None)
        )
        return result.rowcount > 0


async def states(
    engine: AsyncEngine, *, limit: int = 20, status: DigestState | None = None, before: str | None = None,
) -> list[DigestSummary]:
    """The newest digests with their rows by state (``publisher status``, ``digests list``, the
    dashboard): only those in ``status`` if given; ``before``: those after digest ``before`` in
    this order (keyset paging: a page reads ``limit`` digests however many there are)."""
    query = select(*_SUMMARY).order_by(digests.c.created_at.desc(), digests.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(digests.c.status == status)
    if before is not None:  # after ``before`` in (created_at, id) descending; nothing if it is unknown
        mark = select(digests.c.created_at).where(digests.c.id == before).scalar_subquery()
        query = query.where(or_(digests.c.created_at < mark, and_(digests.c.created_at == mark, digests.c.id < before)))
    return await _summaries(engine, query)


async def state(engine: AsyncEngine, digest_id: str) -> DigestSummary | None:
    """One digest with its rows counted by state; None if there is no digest with this id."""
    found = await _summaries(engine, select(*_SUMMARY).where(digests.c.id == digest_id))
    return found[0] if found else None


_SUMMARY = (digests.c.id, digests.c.cadence, digests.c.status, digests.c.pause_reason, digests.c.created_at,
            digests.c.article_seqs)


async def _summaries(engine: AsyncEngine, query: Select[Any]) -> list[DigestSummary]:
    """The digests ``query`` picks, their rows by state from the counts the database keeps
    (``digest_counts``, :mod:`publisher.store.aggregates`): a few rows each, never a count
    of the ledger."""
    async with engine.connect() as conn:
        recent = (await conn.execute(query)).all()
        counts: dict[str, dict[str, int]] = {row.id: {} for row in recent}
        if recent:
            for found_id, row_state, count in await conn.execute(
                select(digest_counts.c.digest_id, digest_counts.c.state, digest_counts.c.n)
                .where(digest_counts.c.digest_id.in_(list(counts)), digest_counts.c.n != 0)
            ):
                counts[found_id][row_state] = int(count)
    return [
        DigestSummary(
            r.id, r.cadence, DigestState(r.status), r.pause_reason, r.created_at, counts[r.id],
            len(json.loads(r.article_seqs)),
        )
        for r in recent
    ]


async def cancel(
    engine: AsyncEngine, digest_id: str, reason: str, now: datetime, *, within: AsyncConnection | None = None,
) -> int | None:
    """Finish a digest now with ``reason``: its rows not yet sent become ``cancelled``
    (those sent stay sent).  How many were cancelled; None if it is already finished
    or there is no such digest.

    A row a run is sending at this moment is cancelled too; that run then records
    what really happened to it (sent stays the truth).
    """
    async with _in(engine, within) as conn:
        finished = await conn.execute(
            update(digests)
            .where(digests.c.id == digest_id, digests.c.status != DigestState.FINISHED)
            .values(status=DigestState.FINISHED, finished_at=now, pause_reason=_storable(reason))
        )
        if not finished.rowcount:
            return None
        await events.record(conn, events.EventType.DIGEST_FINISHED, {"id": digest_id, "cancelled": reason},
                            f"digest:{digest_id}", now)
        cancelled = await conn.execute(
            update(deliveries)
            .where(deliveries.c.digest_id == digest_id, deliveries.c.state.in_(OPEN_STATES))
            .values(state=DeliveryState.CANCELLED, retry_at=None, last_reply=_storable(reason), updated_at=now,
                    claimed_by=None, lease_until=None)
        )
        return cancelled.rowcount


async def due_count(engine: AsyncEngine, now: datetime) -> int:
    """How many rows of active digests are due now, on any node: never tried, claimed (being
    sent, or left by a node that died), or deferred until now.  The queue's depth (the size
    of a progress bar, the queue depth gauge), not what one may claim (that is
    :func:`_claimable`).  The open rows come from the kept counts (``digest_counts``): a gauge
    read every few seconds must not count a million pending rows each time; only the
    deferred rows whose retry is due are counted, by the digest's state index."""
    async with engine.connect() as conn:
        sending = digests.c.status == DigestState.SENDING
        open_rows = await conn.scalar(
            select(func.sum(digest_counts.c.n))
            .join(digests, digests.c.id == digest_counts.c.digest_id)
            .where(sending, digest_counts.c.state.in_((DeliveryState.PENDING, DeliveryState.SENDING)))
        )
        retries = await conn.scalar(
            select(func.count())
            .select_from(deliveries.join(digests, digests.c.id == deliveries.c.digest_id))
            .where(sending, _retry_due(now))
        )
    return int(open_rows or 0) + int(retries or 0)


async def totals(engine: AsyncEngine) -> dict[str, int]:
    """Rows by state over every digest not finished (what is still to do, and what failed in it),
    from the kept counts (``digest_counts``): a few rows per unfinished digest, not its messages."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(digest_counts.c.state, func.sum(digest_counts.c.n))
            .join(digests, digests.c.id == digest_counts.c.digest_id)
            .where(digests.c.status != DigestState.FINISHED, digest_counts.c.n != 0)
            .group_by(digest_counts.c.state)
        )
        return {state: int(count) for state, count in rows}


@dataclass(frozen=True)
class Holder:
    """A node holding rows of active digests: how many, until when, and its last heartbeat."""

    node: str  # its claimant id, ``host:pid:start``
    rows: int
    until: datetime | None  # the latest of its leases: every row is free by then unless it renews them
    seen_at: datetime | None  # its last heartbeat (None: no daemon with this id, e.g. a ``publisher send``)


@dataclass(frozen=True)
class Remaining:
    """What a delivery run left to do in the active digests, and when it can next be tried."""

    pending: int = 0  # not tried: another process was delivering, or the run was stopped
    deferred: int = 0  # temporary failures, tried again from ``next_retry``
    next_retry: datetime | None = None
    held: int = 0  # claimed by another node (being sent, or left by a dead one until its lease lapses)
    holders: tuple[Holder, ...] = ()  # who holds them, most rows first

    @property
    def total(self) -> int:
        return self.pending + self.deferred + self.held


async def remaining(engine: AsyncEngine) -> Remaining:
    """The rows of active (not paused) digests still open, by why they are (``publisher send``'s exit code)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(deliveries.c.state, func.count(), func.min(deliveries.c.retry_at))
            .join(digests, digests.c.id == deliveries.c.digest_id)
            .where(digests.c.status == DigestState.SENDING, deliveries.c.state.in_(OPEN_STATES))
            .group_by(deliveries.c.state)
        )
        by_state = {state: (count, retry) for state, count, retry in rows}
        holders = await conn.execute(
            select(deliveries.c.claimed_by, func.count(), func.max(deliveries.c.lease_until), nodes.c.seen_at)
            .join(digests, digests.c.id == deliveries.c.digest_id)
            .outerjoin(nodes, nodes.c.id == deliveries.c.claimed_by)
            .where(digests.c.status == DigestState.SENDING, deliveries.c.state == DeliveryState.SENDING)
            .group_by(deliveries.c.claimed_by, nodes.c.seen_at)
            .order_by(func.count().desc(), deliveries.c.claimed_by)
        )
        held_by = tuple(Holder(str(node), count, until, seen) for node, count, until, seen in holders)
    pending, deferred, held = (
        by_state.get(state, (0, None))
        for state in (DeliveryState.PENDING, DeliveryState.DEFERRED, DeliveryState.SENDING)
    )
    return Remaining(
        pending=pending[0], deferred=deferred[0], next_retry=deferred[1], held=held[0],
        holders=held_by,
    )
