"""Which articles go into which digest, for whom: the digest plan.

Planning is one transaction over the store.  Subscribers of a cadence are grouped by
their cursor (the newest article already planned for them) and their topics; each
distinct set of new articles becomes one digest, and the ledger gets one ``pending``
delivery row per subscriber through ``INSERT … SELECT`` (no subscriber list in
memory).  Cursors then move to the newest article, in the same transaction, so a
second plan right after the first finds nothing: each article reaches each
subscriber once, whatever its published date says.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    and_,
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


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """What planning one cadence takes from ``[digest]``, built once by the caller.

    ``schedule`` is None for ``instant`` (due whenever there is something new); daily
    and weekly digests are due per send slot, and a slot older than ``grace`` is skipped.
    """

    max_articles: int
    schedule: Schedule | None = None
    grace: timedelta = timedelta(0)


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
    engine: AsyncEngine, cadence: Cadence, now: datetime, options: PlanOptions, *, dry_run: bool = False
) -> list[PlannedDigest]:
    """Create the digests due for ``cadence`` now; with ``dry_run`` nothing is written.

    ``instant`` subscribers are due whenever there is something new.  Daily and
    weekly ones are due once per send slot in their own timezone (see
    :mod:`publisher.digest.cadence`): the waves whose slot has passed since their last
    digest.  A slot older than ``grace`` (the daemon was down) is skipped and logged;
    its articles wait for the next digest, as the cursor has not moved.
    """
    async with transaction(engine, dry_run=dry_run) as conn:
        planned = await plan_on(conn, cadence, now, options)
    if not dry_run:
        await analyze_after_bulk_insert(engine, deliveries, sum(d.recipients for d in planned))
    return planned


async def plan_on(conn: AsyncConnection, cadence: Cadence, now: datetime, options: PlanOptions) -> list[PlannedDigest]:
    """:func:`plan` in the caller's transaction (a dry run or a preview rolls it back)."""
    if cadence != Cadence.INSTANT and options.schedule is None:
        raise ValueError(f"planning {cadence} digests needs the schedule")
    await serialize(conn, Exclusive.PLANNING)
    return await _plan_due(conn, cadence, now, options)


async def _plan_due(conn: AsyncConnection, cadence: Cadence, now: datetime, options: PlanOptions) -> list[PlannedDigest]:
    if options.schedule is None:
        return await _plan(conn, cadence, now, options.max_articles, true())
    waves = await _due_waves(conn, cadence, now, options.schedule, options.grace)
    if not waves:
        return []
    planned = await _plan(conn, cadence, now, options.max_articles, or_(*(members for _, members in waves)))
    for slot, members in waves:  # after the cursors: ``members`` reads last_slot
        await conn.execute(
            update(subscribers).where(*_active(cadence), members).values(last_slot=slot)
        )
    return planned


def _active(cadence: Cadence) -> tuple[ColumnElement[bool], ...]:
    return subscribers.c.status == Status.ACTIVE, subscribers.c.cadence == cadence


async def _due_waves(
    conn: AsyncConnection, cadence: Cadence, now: datetime, schedule: Schedule, grace: timedelta
) -> list[tuple[datetime, ColumnElement[bool]]]:
    """``(slot, members)`` of each (timezone, hour[, weekday]) wave whose latest slot is due now.

    Members are the wave's subscribers not yet planned for that slot and who were
    already subscribed at it (a newcomer waits for their first slot).  Weekly waves
    are also split by the subscribers' own weekday; a daily reader's changes nothing.
    """
    keys = [subscribers.c.timezone, subscribers.c.send_hour]
    if cadence == Cadence.WEEKLY:
        keys.append(subscribers.c.send_weekday)
    groups = await conn.execute(
        select(*keys)
        .where(*_active(cadence))
        .group_by(*keys)
        # GROUP BY has no order of its own (PostgreSQL hashes): the same waves, the same order, anywhere.
        .order_by(*(key.nulls_first() for key in keys))
    )
    waves = []
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
        if now - slot <= grace:
            waves.append((slot, members))
            continue
        skipped = await conn.execute(update(subscribers).where(*_active(cadence), members).values(last_slot=slot))
        if skipped.rowcount:
            log.warning(
                "%s digest of %s (%s, %s) skipped for %d subscriber(s): %s late, past the grace period; "
                "their articles go in the next one",
                cadence, slot.isoformat(), timezone, "default hour" if hour is None else f"{hour}h",
                skipped.rowcount, now - slot,
            )
    return waves


def _is(column: ColumnElement[object], value: object) -> ColumnElement[bool]:
    """``column = value``, where a None value (a default setting) is SQL's IS NULL."""
    return column.is_(None) if value is None else column == value


async def _plan(
    conn: AsyncConnection, cadence: Cadence, now: datetime, max_articles: int, wave: ColumnElement[bool]
) -> list[PlannedDigest]:
    top = await newest_seq(conn)
    due = (*_active(cadence), wave, subscribers.c.article_cursor < top)
    groups = await conn.execute(
        select(subscribers.c.article_cursor, subscribers.c.topics, func.count())
        .where(*due)
        .group_by(subscribers.c.article_cursor, subscribers.c.topics)
    )
    by_articles: dict[tuple[int, ...], list[tuple[int, str, int]]] = defaultdict(list)
    for cursor, topics, count in groups.all():
        seqs = await _pick(conn, cursor, json.loads(topics), max_articles)
        if seqs:
            by_articles[seqs].append((cursor, topics, count))

    planned = []
    for seqs, members in sorted(by_articles.items()):
        ident = digest_id(cadence, now, seqs)
        await conn.execute(
            insert(digests).values(
                id=ident, cadence=cadence, article_seqs=json.dumps(seqs), status=DigestState.SENDING, created_at=now
            )
        )
        for cursor, topics, _ in members:
            await conn.execute(
                insert(deliveries).from_select(
                    ["digest_id", "subscriber_id", "state", "attempts", "updated_at"],
                    select(
                        literal(ident),
                        subscribers.c.id,
                        literal(DeliveryState.PENDING.value),
                        literal(0),
                        literal(now, UTCDateTime()),
                    ).where(*due, subscribers.c.article_cursor == cursor, subscribers.c.topics == topics),
                )
            )
        planned.append(PlannedDigest(ident, cadence, seqs, sum(m[2] for m in members)))
    await conn.execute(update(subscribers).where(*due).values(article_cursor=top))
    return planned


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
