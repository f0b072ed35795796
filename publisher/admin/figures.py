"""The operator dashboard's figures, each read in time independent of the list's size.

Every count comes from the aggregates the database keeps (:mod:`publisher.store.aggregates`):
a read costs O(days), O(hours) or O(hours × domains), never a scan of the subscribers or
the ledger, so the overview stays instant at a million subscribers and ten million ledger
rows (``bench/dashboard.py`` times it).  The rest is small by nature: live nodes (a row
each), the digests table's unfinished digests, the soonest scheduled articles.

The pages (another part of the dashboard) format these; nothing here renders.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.delivery import gate_store
from publisher.delivery.gates import Breakers, provider_tallies
from publisher.delivery.model import OPEN_STATES, DigestState
from publisher.runtime import nodes
from publisher.runtime.state import JobName, NodeRole
from publisher.store import articles
from publisher.store.schema import digest_counts, digests, message_counts, subscriber_counts
from subscribers.model import Cadence, Status

if TYPE_CHECKING:
    from publisher.config import Settings
    from publisher.content.model import Article
    from publisher.delivery.providers import Providers

DEFAULT_WINDOW = timedelta(days=7)  # the rates' window when the breakers are off ([breakers] window's default)


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Subscribers:
    """Subscribers by status now, and per day of the last ``days`` how many of each status
    changed to it that day (confirmed: ``active``; left: ``unsubscribed``, ``bounced``,
    ``complained``; signed up, not yet confirmed: ``pending``) and still are."""

    by_status: dict[str, int]
    days: list[tuple[datetime, dict[str, int]]]  # oldest first, every day of the range

    @property
    def changes(self) -> list[Change]:
        """Per day, oldest first, the changes as the overview shows them (its table and its chart)."""
        return [Change(day, by.get(Status.ACTIVE, 0), by.get(Status.PENDING, 0), sum(by.get(s, 0) for s in LEFT))
                for day, by in self.days]


LEFT = (Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED)  # the statuses of a reader who left


@dataclass(frozen=True)
class Change:
    """One day's new subscribers: confirmed, signed up (not yet confirmed), and those who left."""

    day: datetime
    confirmed: int
    pending: int
    left: int


async def subscribers(engine: AsyncEngine, now: datetime, days: int = 30) -> Subscribers:
    """O(days the store has existed × statuses): one row per day and status."""
    first = _day(now) - timedelta(days=days - 1)
    per_day: dict[datetime, dict[str, int]] = defaultdict(dict)
    async with engine.connect() as conn:
        totals = await conn.execute(
            select(subscriber_counts.c.status, func.sum(subscriber_counts.c.n)).group_by(subscriber_counts.c.status)
        )
        by_status = {status: int(n) for status, n in totals if n}
        for day, status, n in await conn.execute(
            select(subscriber_counts.c.day, subscriber_counts.c.status, subscriber_counts.c.n)
            .where(subscriber_counts.c.day >= first)
        ):
            if n:
                per_day[day][status] = int(n)
    return Subscribers(by_status, [(first + timedelta(days=i), per_day.get(first + timedelta(days=i), {}))
                                   for i in range(days)])


async def messages_per_hour(engine: AsyncEngine, now: datetime, hours: int = 48) -> list[tuple[datetime, dict[str, int]]]:
    """Per hour of the last ``hours`` (oldest first, every hour), the ledger rows whose last
    change fell in it, by the state it left them in: sent, deferred, failed, cancelled, …"""
    first = _hour(now) - timedelta(hours=hours - 1)
    per_hour: dict[datetime, dict[str, int]] = defaultdict(dict)
    async with engine.connect() as conn:
        for hour, state, n in await conn.execute(
            select(message_counts.c.hour, message_counts.c.state, message_counts.c.n)
            .where(message_counts.c.hour >= first)
        ):
            if n:
                per_hour[hour][state] = int(n)
    return [(first + timedelta(hours=i), per_hour.get(first + timedelta(hours=i), {})) for i in range(hours)]


@dataclass(frozen=True)
class DigestProgress:
    """A digest not finished (sending or paused) and its ledger rows by state."""

    id: str
    cadence: str
    status: str
    pause_reason: str | None
    created_at: datetime
    by_state: dict[str, int]


@dataclass(frozen=True)
class Queue:
    """Ledger rows still to deliver, by state (paused digests' rows included), and the
    digests being sent or paused, newest first."""

    by_state: dict[str, int]
    digests: list[DigestProgress]

    @property
    def total(self) -> int:
        return sum(self.by_state.values())


async def queue(engine: AsyncEngine, limit: int = 20) -> Queue:
    """O(hours with open rows × open states) for the counts; the unfinished digests from
    the digests table, their progress from ``digest_counts``."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(message_counts.c.state, func.sum(message_counts.c.n))
            .where(message_counts.c.state.in_(OPEN_STATES)).group_by(message_counts.c.state)
        )
        by_state = {state: int(n) for state, n in rows if n}
        unfinished = (await conn.execute(
            select(digests.c.id, digests.c.cadence, digests.c.status, digests.c.pause_reason, digests.c.created_at)
            .where(digests.c.status != DigestState.FINISHED)
            .order_by(digests.c.created_at.desc(), digests.c.id.desc()).limit(limit)
        )).all()
        progress: dict[str, dict[str, int]] = {row.id: {} for row in unfinished}
        if progress:
            for digest_id, state, n in await conn.execute(
                select(digest_counts.c.digest_id, digest_counts.c.state, digest_counts.c.n)
                .where(digest_counts.c.digest_id.in_(list(progress)))
            ):
                if n:
                    progress[digest_id][state] = int(n)
    return Queue(by_state, [DigestProgress(row.id, row.cadence, row.status, row.pause_reason, row.created_at,
                                           progress[row.id]) for row in unfinished])


@dataclass(frozen=True)
class ProviderRate:
    """One provider's complaint and hard-bounce rates over the breakers' window, against
    their thresholds (0: off), and the breakers' verdict."""

    provider: str
    sent: int
    complaints: int
    hard_bounces: int
    paused: str | None  # the pause's reason while paused
    verdict: str | None  # the warning or pause the breakers would give now (None: all is well or too few sent)

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sent if self.sent else 0.0

    @property
    def hard_bounce_rate(self) -> float:
        return self.hard_bounces / self.sent if self.sent else 0.0


@dataclass(frozen=True)
class Rates:
    window: timedelta
    breakers: Breakers | None  # the thresholds; None: the breakers are off
    providers: list[ProviderRate]  # most messages sent first


async def provider_rates(engine: AsyncEngine, providers: Providers, settings: Settings, now: datetime) -> Rates:
    """O(hours of the window × domains mailed in them), as the breakers judge them."""
    breakers = Breakers.from_settings(settings.breakers)
    window = breakers.window if breakers is not None else DEFAULT_WINDOW
    tallies = await provider_tallies(engine, providers, window, now)
    paused = {row.provider: row.reason for row in await gate_store.pauses(engine) if row.reason}
    found = []
    for provider in sorted({*tallies.sent, *tallies.complaints, *tallies.hard_bounces, *paused},
                           key=lambda p: (-tallies.sent[p], p)):
        sent, complaints, bounces = tallies.sent[provider], tallies.complaints[provider], tallies.hard_bounces[provider]
        judgement = None if breakers is None else breakers.judge(provider, sent, complaints, bounces)
        found.append(ProviderRate(provider, sent, complaints, bounces, paused.get(provider),
                                  None if judgement is None else judgement.reason))
    return Rates(window, breakers, found)


@dataclass(frozen=True)
class NodeFigures:
    """A live node: its role, send rate (messages/s over its last heartbeat) and its recent errors."""

    id: str
    role: str
    send_rate: float
    sent: int
    seen_at: datetime
    errors: list[dict[str, str]]
    jobs: dict[str, Any]  # a leader's next job runs (ISO times)


async def live_nodes(engine: AsyncEngine, now: datetime) -> list[NodeFigures]:
    """One row per node seen lately (:func:`publisher.runtime.nodes.live`)."""
    return [
        NodeFigures(node.id, str(node.role), float(node.state.get("send_rate", 0)), int(node.state.get("sent", 0)),
                    node.seen_at, list(node.state.get("errors", [])), dict(node.state.get("jobs", {})))
        for node in await nodes.live(engine, now)
    ]


@dataclass(frozen=True)
class Upcoming:
    """What goes out next: the site's next daily and weekly slots (``[digest]``; a reader's
    own hour, zone or weekday moves theirs), the planner's next wake-up on the leader, and
    the soonest scheduled articles."""

    daily: datetime
    weekly: datetime
    planner: str | None  # ISO time of the leader's next digests job (None: no leader running)
    articles: list[Article]


async def upcoming(engine: AsyncEngine, settings: Settings, live: list[NodeFigures], now: datetime,
                   limit: int = 5) -> Upcoming:
    schedule = settings.digest.schedule
    planner = next((node.jobs.get(JobName.DIGESTS) for node in live if node.role == NodeRole.LEADER), None)
    return Upcoming(
        schedule.next_slot(Cadence.DAILY, schedule.timezone, None, now),
        schedule.next_slot(Cadence.WEEKLY, schedule.timezone, None, now),
        None if planner is None else str(planner),
        await articles.scheduled(engine, limit),
    )


@dataclass(frozen=True)
class Overview:
    """Everything the dashboard's overview page shows."""

    subscribers: Subscribers
    messages: list[tuple[datetime, dict[str, int]]]
    queue: Queue
    rates: Rates
    nodes: list[NodeFigures]
    upcoming: Upcoming

    @property
    def errors(self) -> list[dict[str, str]]:
        """The live nodes' recent warnings and errors, newest first."""
        return sorted((error | {"node": node.id} for node in self.nodes for error in node.errors),
                      key=lambda error: error.get("at", ""), reverse=True)


async def overview(engine: AsyncEngine, providers: Providers, settings: Settings, now: datetime) -> Overview:
    """The overview page's figures (each function above once)."""
    live = await live_nodes(engine, now)
    return Overview(
        await subscribers(engine, now), await messages_per_hour(engine, now), await queue(engine),
        await provider_rates(engine, providers, settings, now), live, await upcoming(engine, settings, live, now),
    )
