"""Which articles go into which digest, for whom: the digest plan.

Subscribers of a cadence are grouped by their cursor (the newest article already
planned for them) and their topics; each distinct set of new articles becomes one
digest, and the ledger gets one ``pending`` delivery row per subscriber through
``INSERT … SELECT`` (no subscriber list in memory).  Cursors then move to the newest
article, in the same transaction as the rows, so a second plan right after the first
finds nothing: each article reaches each subscriber once, whatever its published date says.

A plan is written in batches of subscriber ids (``PlanOptions.batch_size``), each its
own transaction under the planning lock, so that delivery starts on the first batch of
a 200,000-subscriber digest instead of after the whole plan.  The digests are
committed first with ``plan_cursor`` 0; each batch writes the rows of the next ids,
moves those subscribers' cursors (and wave slots) and the digests' ``plan_cursor``; the
last sets it to NULL (complete).  A subscriber has a row exactly when their cursor
moved, in one transaction: a plan that stops between batches (a crash, an error) loses
nobody and sends nobody anything twice.  A plan that fails closes its digests
(``plan_cursor`` NULL: they go to whom they hold); one whose process died is closed by
the first plan of its cadence ``STALE_PLAN`` later, which plans the others anew (a plan
meanwhile plans nothing: the one being written takes them); a planner whose digest was
closed stops at its next batch.

This module is long because the plan's steps (waves, groups, batches, recovery) share
one draft and one rule for who is due; split, that rule would be written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    and_,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from publisher.content.model import Article
from publisher.content.slug import slugify
from publisher.delivery.model import DeliveryState, DigestState
from publisher.digest.cadence import Schedule
from publisher.store.articles import newest_seq
from publisher.store.db import (
    Exclusive,
    analyze_after_bulk_insert,
    serialize,
    transaction,
)
from publisher.store.schema import (
    UTCDateTime,
    articles,
    deliveries,
    digests,
    subscribers,
)
from subscribers.model import Cadence, Status

log = logging.getLogger(__name__)


PLAN_BATCH = 5_000  # subscriber ids a plan's transaction spans
FIRST_BATCH = 500  # the first one's: delivery starts once it is written, as soon as may be

# A plan still unwritten this long after it began was left by a process that died.
STALE_PLAN = timedelta(minutes=10)


class PlanProgress:
    """A plan's batches as this process sees them: deliveries waiting for rows wake on
    each, and take their turn to write between two of them.

    :meth:`begun` is called when a plan's digests are committed (``planned`` holds them),
    ``batch_committed`` awaited after each batch of their rows commits; ``ended`` is set
    by whoever ran the plan when it returned or failed (a failed plan's digest waits for
    the next plan).

    With ``turns`` (SQLite, one writer at a time) each batch and each write of the
    delivery following the plan take :meth:`turn` first, so they alternate in the order
    they asked.  Without turns the plan's batches, back to back, hold the write lock
    nearly all the time, and SQLite's busy handler, which retries a waiting writer after
    sleeps of up to 100 ms, let the delivery's first claim in only once the whole plan
    was written (3 s for 200,000 subscribers).  PostgreSQL needs none: row locks.
    """

    def __init__(self, *, turns: bool) -> None:
        self._next = asyncio.Event()
        self.ended = False
        self.planned: list[PlannedDigest] = []
        self._turns = asyncio.Lock() if turns else None

    def begun(self, planned: list[PlannedDigest]) -> None:
        """A plan's digests are committed, their rows not yet: delivery renders them meanwhile."""
        self.planned.extend(planned)
        self._wake()

    async def batch_committed(self) -> None:
        self._wake()

    def _wake(self) -> None:
        self._next.set()
        self._next = asyncio.Event()

    def end(self) -> None:
        self.ended = True
        self._next.set()

    def next_batch(self) -> asyncio.Event:
        """Set when the next batch (or plan) begins, or the plan ends: take it before reading the ledger."""
        return self._next

    def turn(self) -> contextlib.AbstractAsyncContextManager[object]:
        """Held around one write transaction while the plan is writing (see the class)."""
        if self._turns is None or self.ended:
            return contextlib.nullcontext()
        return self._turns


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """What planning one cadence takes from ``[digest]``, built once by the caller.

    ``schedule`` is None for ``instant`` (due whenever there is something new); daily
    and weekly digests are due per send slot, and a slot older than ``grace`` is skipped.
    """

    max_articles: int
    schedule: Schedule | None = None
    grace: timedelta = timedelta(0)
    batch_size: int = PLAN_BATCH  # subscriber ids per committed batch of a plan
    # Plan these subscribers alone (None: everyone): a preview's rehearsal, which needs one
    # reader's digest or a sample's, not a million ledger rows.  What each of them gets is
    # what a plan of everyone gives them: a digest depends only on its reader's cursor,
    # topics and wave.  Only rehearsals (rolled back) narrow a plan.
    only: tuple[int, ...] | None = None


@dataclass(frozen=True)
class PlannedDigest:
    id: str
    cadence: Cadence
    article_seqs: tuple[int, ...]  # newest first
    recipients: int


RESEND_PREFIX = "resend-"  # the id of a digest planned by plan_resend starts with it


def is_resend(digest_id: str) -> bool:
    """Whether the digest resends an article (to every cadence) rather than bringing news."""
    return digest_id.startswith(RESEND_PREFIX)


def digest_id(cadence: Cadence, now: datetime, seqs: tuple[int, ...]) -> str:
    """Sortable and readable in logs: ``instant-20261125T170500-3fa2c1``."""
    tag = hashlib.sha256(f"{cadence}:{now.isoformat()}:{seqs}".encode()).hexdigest()[:6]
    return f"{cadence}-{now:%Y%m%dT%H%M%S}-{tag}"


def matches_topics(tags: list[str], topics: list[str]) -> bool:
    if not topics:
        return True
    wanted = {slugify(t) for t in topics}
    return any(slugify(t) in wanted for t in tags)


async def _pick(
    conn: AsyncConnection, cursor: int, topics: list[str], max_articles: int
) -> tuple[int, ...]:
    rows = await conn.execute(
        select(articles.c.seq, articles.c.tags)
        .where(articles.c.seq > cursor, articles.c.removed_at.is_(None))
        .order_by(articles.c.seq.desc())
    )
    picked = [row.seq for row in rows if matches_topics(json.loads(row.tags), topics)]
    return tuple(picked[:max_articles])


async def plan(
    engine: AsyncEngine, cadence: Cadence, now: datetime, options: PlanOptions, *, dry_run: bool = False,
    progress: PlanProgress | None = None,
) -> list[PlannedDigest]:
    """Create the digests due for ``cadence`` now; with ``dry_run`` nothing is written.

    ``instant`` subscribers are due whenever there is something new.  Daily and
    weekly ones are due once per send slot in their own timezone (see
    :mod:`publisher.digest.cadence`): the waves whose slot has passed since their last
    digest.  A slot older than ``grace`` (the daemon was down) is skipped and logged;
    its articles wait for the next digest, as the cursor has not moved.

    The rows are written in batches (see the module's docstring), each in its
    ``progress``'s turn, which hears of each one committed.
    """
    if dry_run:
        async with transaction(engine, dry_run=True) as conn:
            return await plan_on(conn, cadence, now, options)
    async with transaction(engine) as conn:
        draft = await _begin(conn, cadence, now, options, alone=True)
        if draft is None:
            log.info("a plan of %s is being written elsewhere: it takes the subscribers due", cadence)
            return []
        if not draft.planned:  # nothing to deliver: the wave slots move at once
            await _write(conn, draft, 0, None)
            return []
        await conn.execute(update(digests).where(digests.c.id.in_(draft.ids)).values(plan_cursor=0))
    if progress is not None:  # delivery renders the digests while their first rows are written
        progress.begun(draft.planned)
    try:
        await _write_batches(engine, draft, cadence, options.batch_size, progress)
    except BaseException:
        with contextlib.suppress(Exception):  # closed now, or by the next plan once stale
            async with transaction(engine) as conn:
                await conn.execute(update(digests).where(digests.c.id.in_(draft.ids)).values(plan_cursor=None))
        raise
    await analyze_after_bulk_insert(engine, deliveries, sum(d.recipients for d in draft.planned))
    return draft.planned


async def _write_batches(
    engine: AsyncEngine, draft: _Draft, cadence: Cadence, size: int, progress: PlanProgress | None
) -> None:
    """Write the plan of ``draft`` batch by batch, each in its own transaction."""
    after: int | None = 0
    span = min(size, FIRST_BATCH)
    while after is not None:
        async with progress.turn() if progress is not None else contextlib.nullcontext(), transaction(engine) as conn:
            await serialize(conn, Exclusive.PLANNING)
            if not await _still_planning(conn, draft, after):
                log.warning("plan of %s stopped: another plan closed its digest(s) %s", cadence, ", ".join(draft.ids))
                break
            upper = await _batch_end(conn, after, span)
            await _write(conn, draft, after, upper)
            await conn.execute(update(digests).where(digests.c.id.in_(draft.ids)).values(plan_cursor=upper))
        after, span = upper, size
        if progress is not None:
            await progress.batch_committed()


async def plan_on(conn: AsyncConnection, cadence: Cadence, now: datetime, options: PlanOptions) -> list[PlannedDigest]:
    """:func:`plan` in the caller's transaction, in one batch (a dry run or a preview rolls it back)."""
    draft = await _begin(conn, cadence, now, options)
    assert draft is not None  # not ``alone``: always a draft
    await _write(conn, draft, 0, None)
    return draft.planned


@dataclass
class _Draft:
    """A plan begun: its digests, and what each batch of subscribers needs to be written."""

    top: int  # the newest article: where the planned subscribers' cursors move
    now: datetime
    active: tuple[ColumnElement[bool], ...]  # the cadence's active subscribers
    due: tuple[ColumnElement[bool], ...]  # those of them to plan
    waves: list[tuple[datetime, ColumnElement[bool]]]  # (slot, members) of daily and weekly waves
    groups: list[tuple[str | None, int, str]] = field(default_factory=list)  # (digest id or None, cursor, topics)
    planned: list[PlannedDigest] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [digest.id for digest in self.planned]


async def _begin(
    conn: AsyncConnection, cadence: Cadence, now: datetime, options: PlanOptions, *, alone: bool = False
) -> _Draft | None:
    """Take the planning lock, find the due subscribers' groups and insert their digests.

    ``alone``: None if another plan of ``cadence`` is being written (not stale).
    """
    if cadence != Cadence.INSTANT and options.schedule is None:
        raise ValueError(f"planning {cadence} digests needs the schedule")
    await serialize(conn, Exclusive.PLANNING)
    if alone and await _plan_going(conn, cadence, now):
        return None
    top = await newest_seq(conn)
    active = _active(cadence, options.only)
    waves: list[tuple[datetime, ColumnElement[bool]]] = []
    wave: ColumnElement[bool] = true()
    if options.schedule is not None:
        waves = await _due_waves(conn, cadence, now, options.schedule, options.grace, active)
        wave = or_(*(members for _, members in waves)) if waves else false()
    draft = _Draft(top, now, active, (*active, wave, subscribers.c.article_cursor < top), waves)
    await _group(conn, draft, cadence, options.max_articles)
    return draft


async def _plan_going(conn: AsyncConnection, cadence: Cadence, now: datetime) -> bool:
    """Whether another plan of ``cadence`` is being written.  One begun more than
    ``STALE_PLAN`` ago stopped (its process died): it is closed, and goes to whom it
    holds; whoever it misses has not moved their cursor, and this plan takes them."""
    closed = await conn.execute(
        update(digests)
        .where(digests.c.cadence == cadence, digests.c.plan_cursor.is_not(None),
               digests.c.created_at < now - STALE_PLAN)
        .values(plan_cursor=None)
    )
    if closed.rowcount:
        log.warning("%d %s digest(s) left part-planned were closed; this plan takes their other subscribers",
                    closed.rowcount, cadence)
    going = await conn.scalar(
        select(func.count()).where(digests.c.cadence == cadence, digests.c.plan_cursor.is_not(None))
    )
    return bool(going)


async def _still_planning(conn: AsyncConnection, draft: _Draft, after: int) -> bool:
    """Whether every digest of ``draft`` still stands where its last batch left it."""
    ours = await conn.scalar(
        select(func.count()).where(digests.c.id.in_(draft.ids), digests.c.plan_cursor == after)
    )
    return ours == len(draft.ids)


async def _batch_end(conn: AsyncConnection, after: int, size: int) -> int | None:
    """The last subscriber id of the batch after ``after``; None when that batch is the last.

    A batch spans ``size`` subscriber ids, due or not: the primary key finds its end
    in a read of ``size`` keys.  Counting only the due subscribers walked the whole
    plan index and sorted what it found, for each batch: 40 ms a batch, most of a
    200,000-subscriber plan's time.
    """
    last: int | None = await conn.scalar(
        select(subscribers.c.id).where(subscribers.c.id > after).order_by(subscribers.c.id).offset(size - 1).limit(1)
    )
    return last


def _active(cadence: Cadence, only: tuple[int, ...] | None = None) -> tuple[ColumnElement[bool], ...]:
    """The cadence's active subscribers (of ``only``, when a preview narrows the plan)."""
    mine = (subscribers.c.status == Status.ACTIVE, subscribers.c.cadence == cadence)
    return mine if only is None else (*mine, subscribers.c.id.in_(only))


Wave = tuple[datetime, ColumnElement[bool], tuple[object, ...]]  # (slot, members, (timezone, hour[, weekday]))


async def preview_sample(
    conn: AsyncConnection, cadence: Cadence, now: datetime, options: PlanOptions, size: int
) -> tuple[int, ...]:
    """Ids of up to ``size`` subscribers of ``cadence`` due now, the oldest cursors first:
    whom a cadence's preview plans (``PlanOptions.only``) instead of everyone.

    A topic-free reader gets the newest ``max_articles`` articles after their cursor, as
    many as anyone with that cursor or a newer one gets.  So when the sample holds a
    topic-free subscriber, the longest digest of the sample is as long as the longest of
    a plan of everyone; and it holds every subscriber with an older cursor, whatever
    their topics.  What it gives up: among digests of equal length (different topics),
    the one with most recipients is picked by the sample's counts, not everyone's; and
    which readers of one cursor are in the sample is the index's order (their digests
    differ only by topics).

    Reads the waves as a plan does (a pass over the cadence's active subscribers' wave
    columns), then ``size`` entries of the plan index in cursor order; writes nothing.
    """
    top = await newest_seq(conn)
    wave: ColumnElement[bool] = true()
    if options.schedule is not None:
        due, _ = await _waves(conn, cadence, now, options.schedule, options.grace, _active(cadence))
        wave = or_(*(members for _, members, _ in due)) if due else false()
    ids = await conn.scalars(
        select(subscribers.c.id)
        .where(*_active(cadence), wave, subscribers.c.article_cursor < top)
        .order_by(subscribers.c.article_cursor)  # ix_subscribers_plan's order: no sort of everyone due
        .limit(size)
    )
    return tuple(ids)


async def _due_waves(
    conn: AsyncConnection, cadence: Cadence, now: datetime, schedule: Schedule, grace: timedelta,
    active: tuple[ColumnElement[bool], ...],
) -> list[tuple[datetime, ColumnElement[bool]]]:
    """``(slot, members)`` of each wave of ``active`` whose latest slot is due now (see
    :func:`_waves`); the members of a wave whose slot is past ``grace`` skip it, logged."""
    due, skipped = await _waves(conn, cadence, now, schedule, grace, active)
    for slot, members, wave in skipped:
        moved = await conn.execute(update(subscribers).where(*active, members).values(last_slot=slot))
        if moved.rowcount:
            timezone, hour = wave[0], wave[1]
            log.warning(
                "%s digest of %s (%s, %s) skipped for %d subscriber(s): %s late, past the grace period; "
                "their articles go in the next one",
                cadence, slot.isoformat(), timezone, "default hour" if hour is None else f"{hour}h",
                moved.rowcount, now - slot,
            )
    return [(slot, members) for slot, members, _ in due]


async def _waves(
    conn: AsyncConnection, cadence: Cadence, now: datetime, schedule: Schedule, grace: timedelta,
    active: tuple[ColumnElement[bool], ...],
) -> tuple[list[Wave], list[Wave]]:
    """The (timezone, hour[, weekday]) waves of ``active`` with a slot to plan: those due
    now, and those whose slot is older than ``grace`` (skipped).

    Members are the wave's subscribers not yet planned for that slot and who were
    already subscribed at it (a newcomer waits for their first slot).  Weekly waves
    are also split by the subscribers' own weekday; a daily reader's changes nothing.
    """
    keys = [subscribers.c.timezone, subscribers.c.send_hour]
    if cadence == Cadence.WEEKLY:
        keys.append(subscribers.c.send_weekday)
    groups = await conn.execute(
        select(*keys)
        .where(*active)
        .group_by(*keys)
        # GROUP BY has no order of its own (PostgreSQL hashes): the same waves, the same order, anywhere.
        .order_by(*(key.nulls_first() for key in keys))
    )
    due: list[Wave] = []
    skipped: list[Wave] = []
    for row in groups.all():
        timezone, hour, *own_day = row
        weekday = own_day[0] if own_day else None
        slot = schedule.slot(cadence, timezone, hour, now, weekday)
        members = and_(
            *(_is(key, value) for key, value in zip(keys, row, strict=True)),
            or_(
                subscribers.c.last_slot < slot,
                and_(
                    subscribers.c.last_slot.is_(None),
                    func.coalesce(subscribers.c.confirmed_at, subscribers.c.created_at) < slot,
                ),
            ),
        )
        (due if now - slot <= grace else skipped).append((slot, members, tuple(row)))
    return due, skipped


def _is(column: ColumnElement[object], value: object) -> ColumnElement[bool]:
    """``column = value``, where a None value (a default setting) is SQL's IS NULL."""
    return column.is_(None) if value is None else column == value


async def _group(conn: AsyncConnection, draft: _Draft, cadence: Cadence, max_articles: int) -> None:
    """Group the due subscribers by (cursor, topics) and insert a digest per distinct set of articles."""
    groups = await conn.execute(
        select(subscribers.c.article_cursor, subscribers.c.topics, func.count())
        .where(*draft.due)
        .group_by(subscribers.c.article_cursor, subscribers.c.topics)
    )
    by_articles: dict[tuple[int, ...], list[tuple[int, str, int]]] = defaultdict(list)
    for cursor, topics, count in groups.all():
        seqs = await _pick(conn, cursor, json.loads(topics), max_articles)
        if seqs:
            by_articles[seqs].append((cursor, topics, count))
        else:  # nothing new for them: their cursor moves without a digest
            draft.groups.append((None, cursor, topics))
    for seqs, members in sorted(by_articles.items()):
        ident = digest_id(cadence, draft.now, seqs)
        await conn.execute(
            insert(digests).values(
                id=ident, cadence=cadence, article_seqs=json.dumps(seqs), status=DigestState.SENDING,
                created_at=draft.now,
            )
        )
        draft.groups.extend((ident, cursor, topics) for cursor, topics, _ in members)
        draft.planned.append(PlannedDigest(ident, cadence, seqs, sum(m[2] for m in members)))


async def _write(conn: AsyncConnection, draft: _Draft, after: int, upper: int | None) -> None:
    """Plan the subscribers with ids in (``after``, ``upper``]: their rows, cursors and wave slots.

    Only subscribers still in a group found at the start move: one whose cursor or
    topics changed since waits for the next plan, with no row.
    """
    in_batch = (subscribers.c.id > after, true() if upper is None else subscribers.c.id <= upper)
    for ident, cursor, topics in draft.groups:
        if ident is None:
            continue
        await conn.execute(
            insert(deliveries).from_select(
                ["digest_id", "subscriber_id", "state", "attempts", "updated_at"],
                select(
                    literal(ident),
                    subscribers.c.id,
                    literal(DeliveryState.PENDING.value),
                    literal(0),
                    literal(draft.now, UTCDateTime()),
                ).where(*draft.due, *in_batch, subscribers.c.article_cursor == cursor, subscribers.c.topics == topics),
            )
        )
    if draft.groups:
        grouped = or_(*(
            and_(subscribers.c.article_cursor == cursor, subscribers.c.topics == topics)
            for _, cursor, topics in draft.groups
        ))
        await conn.execute(update(subscribers).where(*draft.due, *in_batch, grouped).values(article_cursor=draft.top))
    for slot, members in draft.waves:  # after the cursors: ``members`` reads last_slot
        await conn.execute(update(subscribers).where(*draft.active, members, *in_batch).values(last_slot=slot))


async def planned_for(
    conn: AsyncConnection, subscriber_id: int, planned: Sequence[PlannedDigest]
) -> PlannedDigest | None:
    """The digest of ``planned`` that holds ``subscriber_id``'s delivery, if any."""
    by_id = {digest.id: digest for digest in planned}
    ident = await conn.scalar(
        select(deliveries.c.digest_id)
        .where(deliveries.c.subscriber_id == subscriber_id, deliveries.c.digest_id.in_(list(by_id)))
    )
    return None if ident is None else by_id[ident]


async def why_nothing_due(conn: AsyncConnection, cadence: Cadence, now: datetime, schedule: Schedule | None) -> str:
    """Why planning ``cadence`` now found nothing, and what the operator can do.

    Asked after a plan came back empty, which surprises most after an import:
    imported and added subscribers start at the newest article, so nothing is new to
    them until the next one is published.
    """
    counts = dict(
        (await conn.execute(
            select(subscribers.c.cadence, func.count()).where(subscribers.c.status == Status.ACTIVE)
            .group_by(subscribers.c.cadence)
        )).all()
    )
    active = counts.get(cadence, 0)
    if not active:
        others = [f"{n} {other}" for other, n in sorted(counts.items()) if other != cadence]
        elsewhere = f" ({', '.join(others)}: `publisher send --cadence {sorted(set(counts))[0]}`)" if others else ""
        return (f"nothing new to send: there are no active {cadence} subscribers{elsewhere}; "
                "add some with `publisher subscribers add` or `publisher subscribers import`")
    newest = (
        await conn.execute(
            select(articles.c.data).where(articles.c.removed_at.is_(None))
            .order_by(articles.c.published.desc(), articles.c.seq.desc()).limit(1)
        )
    ).first()
    if newest is None:
        return "nothing new to send: no article is published yet (`publisher check`, then `publisher build`)"
    top = await newest_seq(conn)
    waiting = (
        await conn.execute(
            select(subscribers.c.timezone, subscribers.c.send_hour, func.count())
            .where(*_active(cadence), subscribers.c.article_cursor < top)
            .group_by(subscribers.c.timezone, subscribers.c.send_hour)
        )
    ).all()
    if waiting and schedule is not None:
        due = min(schedule.next_slot(cadence, timezone, hour, now) for timezone, hour, _ in waiting)
        return (f"nothing due now: {sum(n for _, _, n in waiting)} of the {active} active {cadence} subscribers "
                f"have new articles for their next digest, not due until {due:%Y-%m-%d %H:%M} UTC")
    article = Article.from_dict(json.loads(newest.data))
    readers = f"the {active} active {cadence} subscriber{'s have' if active != 1 else ' has'}"
    return (f"nothing new to send: {readers} every published article "
            f"(newest: {article.title}, {article.published:%Y-%m-%d}); publish a new article, "
            "or `publisher resend ID` to send one again")
