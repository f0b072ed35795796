"""The CLI's one seam to the data: what a command needs that no single service call gives yet.

Commands parse, call and print.  Two kinds of work they need have no service method
to call yet; rather than have each command open connections and call store functions
itself, that work lives here, one function each:

- compositions of more than one step (scan, plan and deliver; resume and deliver;
  resend, then count what is left), which belong to the delivery service;
- reads of the stores (ledger, nodes, articles, subscribers, the schema's revision),
  which belong to the service that owns each store.

Each function's docstring names the service method it stands in for ("Moves to");
once that method exists, the command calls it and the function goes.  Nothing here
prints: what to show is the command's business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from publisher import clock
from publisher.delivery import ledger
from publisher.runtime import nodes
from publisher.app import Publisher
from publisher.delivery.service import SendResult
from publisher.config import Settings
from publisher.content.model import Article
from publisher.delivery.model import DeliveryReport
from publisher.digest.plan import PlannedDigest
from publisher.store import articles as article_store
from publisher.store.articles import ArticleState, StoredArticle
from publisher.store.db import create_engine, revisions, upgrade
from subscribers import store as subscriber_store
from subscribers.model import Cadence, Status, Subscriber
from subscribers.validation import email_hash

Revision = tuple[str | None, str]  # (the database's migration revision or None if empty, the newest one)


# --- sending: compositions of the delivery steps ------------------------------------------


@dataclass(frozen=True)
class DuePlan:
    """What ``publisher send`` planned, and how many messages are due now (its progress bar's total)."""

    planned: list[PlannedDigest]
    nothing_due: str  # why nothing was planned ("" when something was)
    due: int


async def plan_due(publisher: Publisher, cadence: Cadence) -> DuePlan:
    """Scan the content, plan ``cadence``'s digests due now and count the messages due.

    Moves to: ``DeliveryService.plan`` after ``Intake.scan`` (the root's send sequence),
    with the count from a ``DeliveryService.due_count()`` (today ``ledger.due_count``).
    """
    await publisher.intake.scan()
    planned = await publisher.delivery.plan([cadence])
    nothing_due = "" if planned else await publisher.delivery.why_nothing_due(cadence)
    return DuePlan(planned, nothing_due, await ledger.due_count(publisher.engine, clock.now()))


async def deliver_pending(
    publisher: Publisher, *, wait: bool, progress: Callable[[DeliveryReport], None] | None = None
) -> tuple[DeliveryReport, ledger.Remaining]:
    """Deliver everything due, and what is left after (for the exit code).

    Moves to: ``DeliveryService.deliver`` and ``DeliveryService.remaining()`` (today
    ``ledger.remaining``).
    """
    report = await publisher.delivery.deliver(wait=wait, progress=progress)
    return report, await ledger.remaining(publisher.engine)


async def resume(publisher: Publisher, digest_id: str, *, wait: bool) -> DeliveryReport | None:
    """Continue a paused digest and deliver; None if ``digest_id`` is not a paused digest.

    Moves to: a ``DeliveryService.resume(digest_id, wait=)`` (today ``ledger.resume``,
    then ``deliver``).
    """
    if not await ledger.resume(publisher.engine, digest_id):
        return None
    return await publisher.delivery.deliver(wait=wait)


async def resend(publisher: Publisher, reference: str, *, dry_run: bool) -> tuple[SendResult, ledger.Remaining | None]:
    """Resend an article, and what is left after (None on a dry run: nothing was sent).

    Moves to: ``DeliveryService.resend`` and ``DeliveryService.remaining()``.
    """
    result = await publisher.delivery.resend(reference, dry_run=dry_run)
    return result, None if dry_run else await ledger.remaining(publisher.engine)


# --- reads for status, digests and articles -----------------------------------------------


@dataclass(frozen=True)
class Overview:
    """What ``publisher status`` shows."""

    nodes: list[nodes.Node]  # the live ones
    scheduled: list[Article]
    totals: dict[str, int]  # messages of unfinished digests by state
    digests: list[ledger.DigestSummary]


async def overview(publisher: Publisher) -> Overview:
    """The live nodes, the scheduled articles, the deliveries to do and the latest digests.

    Moves to: the runtime's ``nodes.live`` read through ``NodeState``'s owner, the
    intake's (or ``FeedShelf``'s) scheduled articles, and ``DeliveryService.totals()``
    and ``DeliveryService.states()`` (today ``nodes.live``, ``article_store.scheduled``,
    ``ledger.totals``, ``ledger.states``).
    """
    return Overview(
        await nodes.live(publisher.engine, clock.now()),
        await article_store.scheduled(publisher.engine),
        await ledger.totals(publisher.engine),
        await ledger.states(publisher.engine),
    )


async def digest_states(publisher: Publisher, limit: int) -> list[ledger.DigestSummary]:
    """The newest digests with their messages by state.  Moves to: ``DeliveryService.states(limit=)``."""
    return await ledger.states(publisher.engine, limit=limit)


async def stored_articles(publisher: Publisher, state: ArticleState) -> list[Article]:
    """The published articles, newest first, or the scheduled ones (``state``).

    Moves to: the intake service's article reads (today ``article_store.latest`` and
    ``article_store.scheduled``).
    """
    read = article_store.scheduled if state == ArticleState.SCHEDULED else article_store.latest
    return await read(publisher.engine)


async def stored_article(publisher: Publisher, article_id: str) -> StoredArticle | None:
    """One article with its state, first sighting and digests.  Moves to: the intake service
    (today ``article_store.find``)."""
    return await article_store.find(publisher.engine, article_id)


# --- reads of the subscribers --------------------------------------------------------------


async def subscriber_page(
    publisher: Publisher, *, query: str, status: Status | None, after: int, limit: int
) -> tuple[list[Subscriber], int]:
    """Up to ``limit`` subscribers with an id above ``after``, and how many match in all.

    The store's search returns a page of at most its own size, so this asks again from
    the last id until ``limit`` rows are in or none are left.  Moves to:
    ``SubscriberService`` (a ``page(query=, status=, after=, limit=)`` and ``count``;
    today ``subscriber_store.search`` and ``subscriber_store.count``).
    """
    rows: list[Subscriber] = []
    last = after
    while len(rows) < limit and (
        page := await subscriber_store.search(
            publisher.engine, query=query, status=status, after=last, limit=limit - len(rows)
        )
    ):
        rows += page
        last = page[-1].id
    return rows, await subscriber_store.count(publisher.engine, query=query, status=status)


async def find_subscriber(publisher: Publisher, address: str) -> Subscriber | None:
    """The subscriber with this (normalized) address.  Moves to: ``SubscriberService.find``
    (today a connection and ``subscriber_store.find``)."""
    async with publisher.engine.connect() as conn:
        return await subscriber_store.find(conn, address)


async def subscriber_record(publisher: Publisher, address: str) -> tuple[Subscriber | None, str | None]:
    """The subscriber with this address and why the address is suppressed (None: it isn't).

    Moves to: ``SubscriberService`` (a ``find`` and a ``suppression(address)``; today one
    connection, ``subscriber_store.find`` and ``subscriber_store.suppression``).
    """
    async with publisher.engine.connect() as conn:
        return (await subscriber_store.find(conn, address),
                await subscriber_store.suppression(conn, email_hash(address)))


# --- the schema, without a Publisher -------------------------------------------------------


async def schema_revisions(settings: Settings) -> Revision:
    """The database's migration revision and the newest one; changes nothing.

    Opens an engine of its own: ``publisher db`` must work where a Publisher would
    migrate on start.  Moves to: ``publisher.store.db`` (a function taking the
    ``[database]`` settings).
    """
    engine = create_engine(settings.database.url, busy_timeout=settings.database.busy_timeout)
    try:
        return await revisions(engine)
    finally:
        await engine.dispose()


async def migrate(settings: Settings) -> tuple[Revision, Revision]:
    """Apply the migrations not yet applied: the revisions before and after.  Moves to: ``publisher.store.db``."""
    engine = create_engine(settings.database.url, busy_timeout=settings.database.busy_timeout)
    try:
        before = await revisions(engine)
        await upgrade(engine)
        return before, await revisions(engine)
    finally:
        await engine.dispose()
