"""What became of one digest's messages, in all and per mailbox provider (``publisher report``, ``/api/digests``).

Read-only queries on the ledger and the subscribers, kept apart from
:mod:`publisher.delivery.ledger` (the rules of a row's life) because nothing here
changes a row.  The counts (:data:`STATES`):

* ``planned``: every row of the digest; then each row's ledger state (``pending``,
  ``sending``, ``sent``, ``deferred``, ``failed``, ``cancelled``);
* ``bounced_hard``: readers who became ``bounced`` since the digest was planned (their
  relay refused the address, a bounce report came back, or soft bounces reached
  ``[delivery] soft_bounce_limit``);
* ``bounced_soft``: failed messages whose reply reads as a soft bounce (mailbox full, a
  policy block: :func:`publisher.mail.replies.failure_kind`) to readers not suppressed;
* ``complained``, ``unsubscribed``: readers who complained or left since the digest was
  planned (whichever message made them: the ledger does not say which one they read).

Soft bounces that reports bring later are counted on the reader (``soft_bounces``),
not on a digest, so they do not show here.

It scales with the digest: the rows are grouped by recipient domain and state in the
database (one row per domain, state and reader status comes back, streamed), and only
the failed and deferred rows' replies are read one by one; the domains become
providers here (:class:`publisher.delivery.providers.Providers`).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, String, case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from publisher.delivery.model import DeliveryState, DigestState
from publisher.delivery.providers import Providers
from publisher.mail.replies import failure_kind
from publisher.store.aggregates import SETTLED
from publisher.store.schema import deliveries, digest_domain_counts, digests, subscribers
from publisher.tracking.counts import click_counts
from subscribers.model import Status

STATES = (
    "planned", *(s.value for s in DeliveryState), "bounced_hard", "bounced_soft", "complained", "unsubscribed",
)
_LEDGER_STATES = tuple(s.value for s in DeliveryState)
# A reader's status since the digest was planned, and the count it goes to.
_LEFT = {Status.BOUNCED: "bounced_hard", Status.COMPLAINED: "complained", Status.UNSUBSCRIBED: "unsubscribed"}
COMMONEST = 5  # replies listed
MAX_REPLY = 200  # characters of a reply shown
STREAM_ROWS = 1000  # rows fetched at a time
_ADDRESS = re.compile(r"<?[^\s<>()\[\]\"',;:]+@[A-Za-z0-9.-]+>?")  # with its angle brackets, if any


class email_domain(FunctionElement[str]):
    """The part of an address after its ``@`` (addresses are stored normalized: one ``@``)."""

    type = String()
    inherit_cache = True
    name = "email_domain"


@compiles(email_domain, "sqlite")
def _sqlite_domain(element: email_domain, compiler: SQLCompiler, **kw: Any) -> str:
    address = compiler.process(element.clauses, **kw)
    return f"substr({address}, instr({address}, '@') + 1)"


@compiles(email_domain, "postgresql")
def _postgresql_domain(element: email_domain, compiler: SQLCompiler, **kw: Any) -> str:
    return f"split_part({compiler.process(element.clauses, **kw)}, '@', 2)"


@dataclass
class DigestReport:
    """One digest's counts (:data:`STATES`) in all and per provider, and its commonest replies."""

    id: str
    cadence: str
    status: str
    pause_reason: str | None
    created_at: datetime
    finished_at: datetime | None
    states: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    providers: dict[str, dict[str, int]] = field(default_factory=dict)  # most planned first
    replies: list[tuple[str, int]] = field(default_factory=list)  # commonest first
    # ``[tracking] clicks = "aggregate"``: (link, clicks) of each link followed, in the digest's order.
    clicks: list[tuple[str, int]] = field(default_factory=list)

    def add(self, provider: str, state: str, count: int) -> None:
        self.states[state] += count
        self.providers.setdefault(provider, dict.fromkeys(STATES, 0))[state] += count

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "cadence": self.cadence, "status": self.status, "pause_reason": self.pause_reason,
            "created_at": self.created_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
            "states": self.states, "providers": self.providers,
            "replies": [{"reply": reply, "count": count} for reply, count in self.replies],
            "clicks": [{"url": url, "clicks": clicks} for url, clicks in self.clicks],
        }


def shown_reply(reply: str) -> str:
    """A reply as reports group it: addresses replaced by ``<address>`` (so one refusal to
    many readers is one line, and no address is shown), on one line, cut."""
    return " ".join(_ADDRESS.sub("<address>", reply).split())[:MAX_REPLY]


def _by_domain(rows: ColumnElement[bool]) -> Select[tuple[str, str, str | None, int]]:
    """The ledger ``rows`` counted by recipient domain, state, and the reader's status if
    they left since their digest was planned (else None), streamed."""
    domain = email_domain(subscribers.c.email)
    # Compared in SQL, without a parameter: PostgreSQL groups only by the very same expression.
    left = case((subscribers.c.unsubscribed_at >= digests.c.created_at, subscribers.c.status), else_=None)
    return (
        select(domain, deliveries.c.state, left, func.count())
        .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
        .join(digests, digests.c.id == deliveries.c.digest_id)
        .where(rows)
        .group_by(domain, deliveries.c.state, left)
        .execution_options(yield_per=STREAM_ROWS)
    )


async def open_by_provider(engine: AsyncEngine, providers: Providers) -> dict[str, dict[str, int]]:
    """The messages of every digest not finished (sending or paused), by provider and ledger
    state (``publisher_provider_messages``); providers with none are left out."""
    counts: dict[str, dict[str, int]] = {}
    async with engine.connect() as conn:
        rows = await conn.stream(_by_domain(digests.c.status != DigestState.FINISHED))
        async for row_domain, state, _status, count in rows:
            counts.setdefault(providers.of(row_domain), dict.fromkeys(_LEDGER_STATES, 0))[state] += count
    return counts


async def digest_report(engine: AsyncEngine, digest_id: str, providers: Providers) -> DigestReport | None:
    """The report of digest ``digest_id``; None if there is no such digest."""
    async with engine.connect() as conn:
        found = (await conn.execute(
            select(digests.c.id, digests.c.cadence, digests.c.status, digests.c.pause_reason,
                   digests.c.created_at, digests.c.finished_at).where(digests.c.id == digest_id)
        )).first()
        if found is None:
            return None
        report = DigestReport(*found)
        grouped = await conn.stream(_by_domain(deliveries.c.digest_id == digest_id))
        async for row_domain, state, status, count in grouped:
            provider = providers.of(row_domain)
            report.add(provider, "planned", count)
            report.add(provider, state, count)
            if status in _LEFT:
                report.add(provider, _LEFT[status], count)
        replies: Counter[str] = Counter()
        failing = await conn.stream(
            select(subscribers.c.email, deliveries.c.state, deliveries.c.last_reply, subscribers.c.status)
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(deliveries.c.digest_id == digest_id,
                   deliveries.c.state.in_((DeliveryState.FAILED, DeliveryState.DEFERRED)),
                   deliveries.c.last_reply.is_not(None))
            .execution_options(yield_per=STREAM_ROWS)
        )
        async for address, state, reply, status in failing:
            replies[shown_reply(reply)] += 1
            if state == DeliveryState.FAILED and status != Status.BOUNCED and failure_kind("", reply) == "soft":
                report.add(providers.of(address), "bounced_soft", 1)
    report.providers = dict(sorted(report.providers.items(), key=lambda item: (-item[1]["planned"], item[0])))
    report.replies = replies.most_common(COMMONEST)
    report.clicks = await click_counts(engine, digest_id)
    return report


@dataclass(frozen=True)
class Failure:
    """A message of a digest that failed: to whom, after how many attempts, and the last reply."""

    subscriber_id: int
    email: str
    attempts: int
    reply: str  # as :func:`shown_reply` shows it
    at: datetime


async def failures(engine: AsyncEngine, digest_id: str, after: int, limit: int) -> list[Failure]:
    """The digest's failed messages after subscriber ``after``, by subscriber id, ``limit`` of them
    (keyset paging).  The rows are the digest's, reached by its index (``ix_deliveries_state``:
    digest and state), so a page costs the digest's failures at most, never the ledger's size."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(deliveries.c.subscriber_id, subscribers.c.email, deliveries.c.attempts, deliveries.c.last_reply,
                   deliveries.c.updated_at)
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(deliveries.c.digest_id == digest_id, deliveries.c.state == DeliveryState.FAILED,
                   deliveries.c.subscriber_id > after)
            .order_by(deliveries.c.subscriber_id)
            .limit(limit)
        )
        return [Failure(sid, email, attempts, shown_reply(reply or ""), at) for sid, email, attempts, reply, at in rows]


async def kept_by_provider(engine: AsyncEngine, digest_id: str, providers: Providers) -> dict[str, dict[str, int]]:
    """The digest's settled messages (sent, deferred, failed, cancelled: :data:`publisher.store.
    aggregates.SETTLED`) by provider and state, most first, from the counts the database keeps
    (``digest_domain_counts``): O(domains it went to), whatever its size."""
    counts: dict[str, dict[str, int]] = {}
    async with engine.connect() as conn:
        for domain, state, n in await conn.execute(
            select(digest_domain_counts.c.domain, digest_domain_counts.c.state, digest_domain_counts.c.n)
            .where(digest_domain_counts.c.digest_id == digest_id, digest_domain_counts.c.n != 0)
        ):
            by_state = counts.setdefault(providers.of(domain), dict.fromkeys(SETTLED, 0))
            by_state[state] += int(n)
    return dict(sorted(counts.items(), key=lambda item: (-sum(item[1].values()), item[0])))


REPLY_SAMPLE = 5000  # failed and deferred messages whose replies the dashboard counts, at most


async def commonest_replies(engine: AsyncEngine, digest_id: str, limit: int) -> list[tuple[str, int]]:
    """The ``limit`` commonest replies to the digest's failed and deferred messages (as
    :func:`shown_reply` groups them), over :data:`REPLY_SAMPLE` of them at most.  Only those
    rows are read, reached by the digest's index (``ix_deliveries_state``), without its
    readers: a bounded read however large the digest and however many failed (about
    70 ms at the bound, most of it grouping the replies)."""
    replies: Counter[str] = Counter()
    async with engine.connect() as conn:
        rows = await conn.stream(
            select(deliveries.c.last_reply)
            .where(deliveries.c.digest_id == digest_id,
                   deliveries.c.state.in_((DeliveryState.FAILED, DeliveryState.DEFERRED)),
                   deliveries.c.last_reply.is_not(None))
            .limit(REPLY_SAMPLE)
            .execution_options(yield_per=STREAM_ROWS)
        )
        async for (reply,) in rows:
            replies[shown_reply(reply)] += 1
    return replies.most_common(limit)
