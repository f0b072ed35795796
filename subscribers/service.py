"""The subscriber lifecycle: sign up, confirm, change preferences, leave, be erased.

``pending → active → unsubscribed``, plus ``bounced`` and ``complained`` (set by
delivery).  The rules that make it safe:

* Only ``active`` subscribers get digests; a subscriber becomes active by following
  the emailed confirmation link (double opt-in), or because an operator vouches for
  them (API with ``confirmed``, import, CLI).
* Leaving, bouncing or complaining puts the address on the suppression list.  An
  import or the API can't add a suppressed address again; only the person's own
  double opt-in lifts the entry.
* Erasing deletes the subscriber's row and ledger rows; only the hash of the address
  stays, on the suppression list.

Each function is one transaction, so the state and the suppression list never
disagree.

:class:`SubscriberService` (at the end) is what the front ends call: these rules
bound to the store's engine and the clock, the confirmation emails the lifecycle
sends, and the reads the web pages and the API show (so no handler opens a
connection itself).  The module functions stay the rules' one home while the CLI,
delivery and the bounce inbox call them with an engine.  The module is long because
of that: the rules, the bounce rules and their service read together;
the bounce rules can become ``subscribers/bounces.py`` once delivery and the inbox
call the service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import IO, TYPE_CHECKING, Literal, Protocol

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from publisher import clock
from publisher.config import Settings
from publisher.store.articles import all_tags
from publisher.store.db import begin_writing, transaction
from publisher.store.schema import deliveries, subscribers
from publisher.webhooks.events import LEAVING, EventType, forget_subscribers, subscriber_event
from subscribers import store
from subscribers.model import SUPPRESSING, Cadence, Preferences, Source, Status, Subscriber
from subscribers.validation import (
    SubscriberError,
    check_name,
    email_hash,
    normalize_email,
)

if TYPE_CHECKING:  # an import or an export loads its machinery (csv) when it runs, not every command
    from subscribers.bulk import ImportReport, ProgressCallback
    from subscribers.importer import ParsedImport
    from subscribers.tokens import Claim


class Suppressed(SubscriberError):
    """The address is on the suppression list: only its owner can sign up again."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(
            f"{address} is suppressed ({reason}); only its owner can subscribe again, through the sign-up page"
        )
        self.reason = reason


class AlreadySubscribed(SubscriberError):
    def __init__(self, subscriber: Subscriber) -> None:
        super().__init__(f"{subscriber.email} is already a subscriber ({subscriber.status})")
        self.subscriber = subscriber


@asynccontextmanager
async def _writing(engine: AsyncEngine, within: AsyncConnection | None) -> AsyncIterator[AsyncConnection]:
    """``within`` when the caller's transaction should hold the change too (the dashboard's
    audit row goes in the same commit), else a transaction of its own."""
    if within is not None:
        yield within
        return
    async with engine.begin() as conn:
        yield conn


async def _reload(conn: AsyncConnection, subscriber_id: int | None) -> Subscriber:
    found = None if subscriber_id is None else await store.get(conn, subscriber_id)
    assert found is not None, "a row updated in this transaction vanished"
    return found


async def known_topics(engine: AsyncEngine, configured: Iterable[str]) -> list[str]:
    """The topics a subscriber may choose: the site's ``[site] topics`` and every article tag."""
    async with engine.connect() as conn:
        tags = await all_tags(conn)
    return sorted({*configured, *tags}, key=str.casefold)


async def sign_up(
    engine: AsyncEngine, email: str, *, name: str, prefs: Preferences, source: Source, now: datetime
) -> tuple[Subscriber, bool]:
    """A double opt-in request; returns the subscriber and whether a confirmation is due.

    A new address, or one that is pending or has left, becomes ``pending`` with the
    choices just made (its suppression stays until it confirms).  An active
    subscriber is left exactly as they are, and False says to send them a link to
    their preferences instead: whoever filled in the form, nothing changes unless the
    mailbox owner acts.
    """
    address = normalize_email(email)
    values = {"name": check_name(name), **store.preference_values(prefs), "source": source.value, "created_at": now}
    try:
        return await _sign_up(engine, address, values)
    except IntegrityError:
        # The same address signed up by another request at the same moment (a double
        # click; PostgreSQL runs both at once): it exists now, so this one updates it.
        return await _sign_up(engine, address, values)


async def _sign_up(engine: AsyncEngine, address: str, values: dict[str, object]) -> tuple[Subscriber, bool]:
    async with engine.begin() as conn:
        current = await store.find(conn, address)
        if current is None:
            new_id = await conn.scalar(
                insert(subscribers).values(email=address, status=Status.PENDING.value, **values).returning(subscribers.c.id)
            )
            created = await _reload(conn, new_id)
            await subscriber_event(conn, created, created.created_at, EventType.SUBSCRIBER_CREATED)
            return created, True
        if current.status == Status.ACTIVE:
            return current, False
        await conn.execute(
            update(subscribers).where(subscribers.c.id == current.id).values(status=Status.PENDING.value, **values)
        )
        return await _reload(conn, current.id), True


async def confirm(engine: AsyncEngine, subscriber_id: int, *, now: datetime) -> Subscriber | None:
    """Activate a pending subscriber (the confirmation link was followed).

    Idempotent: an active subscriber stays as they are.  A subscriber who left after
    the link was sent is not brought back by an old link; None if there is no one.
    """
    return (await activate(engine, subscriber_id, now=now))[0]


async def activate(engine: AsyncEngine, subscriber_id: int, *, now: datetime) -> tuple[Subscriber | None, bool]:
    """:func:`confirm`, and whether this call made them active (the one confirmation a welcome follows).

    The update only takes a row still pending: of two confirmations at once (a double
    click), the second waits for the first and then changes nothing (on SQLite it takes
    the write lock first, so it reads what the first wrote).
    """
    async with engine.begin() as conn:
        await begin_writing(conn)
        current = await store.get(conn, subscriber_id)
        if current is None or current.status != Status.PENDING:
            return current, False
        activated = await conn.execute(
            update(subscribers)
            .where(subscribers.c.id == subscriber_id, subscribers.c.status == Status.PENDING.value)
            .values(**await store.activation(conn, Source.WEB, now))
        )
        if activated.rowcount != 1:
            return await _reload(conn, subscriber_id), False
        await store.lift(conn, [email_hash(current.email)])
        confirmed = await _reload(conn, subscriber_id)
        await subscriber_event(conn, confirmed, now, EventType.SUBSCRIBER_CONFIRMED)
        return confirmed, True


async def create(
    engine: AsyncEngine,
    email: str,
    *,
    name: str = "",
    prefs: Preferences,
    source: Source,
    confirmed: bool,
    now: datetime,
) -> Subscriber:
    """Add a subscriber on an operator's word (API, CLI); ``confirmed`` skips double opt-in.

    Raises :class:`Suppressed` for a suppressed address and :class:`AlreadySubscribed`
    for a known one.
    """
    address = normalize_email(email)
    async with engine.begin() as conn:
        reason = await store.suppression(conn, email_hash(address))
        if reason is not None:
            raise Suppressed(address, reason)
        current = await store.find(conn, address)
        if current is not None:
            raise AlreadySubscribed(current)
        values: dict[str, object] = {
            "email": address, "name": check_name(name), **store.preference_values(prefs),
            "source": source.value, "created_at": now, "status": Status.PENDING.value,
        }
        if confirmed:
            values |= await store.activation(conn, source, now)
        new_id = await conn.scalar(insert(subscribers).values(**values).returning(subscribers.c.id))
        created = await _reload(conn, new_id)
        await subscriber_event(conn, created, now, EventType.SUBSCRIBER_CREATED,
                               *([EventType.SUBSCRIBER_CONFIRMED] if confirmed else []))
        return created


async def update_subscriber(
    engine: AsyncEngine, subscriber_id: int, *, name: str | None = None, prefs: Preferences | None = None,
    within: AsyncConnection | None = None,
) -> Subscriber | None:
    """Change the name and/or preferences (in ``within``'s transaction if given); None if there is no such subscriber."""
    values: dict[str, object] = {}
    if name is not None:
        values["name"] = check_name(name)
    if prefs is not None:
        values |= store.preference_values(prefs)
    async with _writing(engine, within) as conn:
        if values:
            await conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id).values(**values))
        return await store.get(conn, subscriber_id)


async def leave(
    engine: AsyncEngine, subscriber_id: int, *, now: datetime, status: Status = Status.UNSUBSCRIBED
) -> Subscriber | None:
    """Unsubscribe (or mark bounced/complained) and suppress the address, at once.

    Effective for every digest not yet handed to the transport: delivery checks each
    recipient's status when it sends.  Idempotent; None if there is no such subscriber.
    """
    if status not in SUPPRESSING:
        raise ValueError(f"{status} is not a way to leave")
    async with engine.begin() as conn:
        current = await store.get(conn, subscriber_id)
        if current is None:
            return None
        if current.status != status:
            await conn.execute(
                update(subscribers)
                .where(subscribers.c.id == subscriber_id)
                .values(status=status.value, unsubscribed_at=current.unsubscribed_at or now)
            )
        await store.suppress(conn, email_hash(current.email), status.value, now)
        left = await _reload(conn, subscriber_id)
        if current.status != status:
            await subscriber_event(conn, left, now, LEAVING[status.value])
        return left


async def suppress(
    engine: AsyncEngine, email: str, *, now: datetime, reason: str = "manual", within: AsyncConnection | None = None
) -> Subscriber | None:
    """Put an address on the suppression list; a subscriber with it is unsubscribed.

    Works for addresses that never subscribed too (an operator's do-not-mail list).
    Returns the subscriber it unsubscribed, if any.
    """
    address = normalize_email(email)
    async with _writing(engine, within) as conn:
        await store.suppress(conn, email_hash(address), reason, now)
        current = await store.find(conn, address)
        if current is None:
            return None
        if current.status in (Status.PENDING, Status.ACTIVE):
            await conn.execute(
                update(subscribers)
                .where(subscribers.c.id == current.id)
                .values(status=Status.UNSUBSCRIBED.value, unsubscribed_at=now)
            )
        left = await _reload(conn, current.id)
        if current.status in (Status.PENDING, Status.ACTIVE):
            await subscriber_event(conn, left, now, EventType.SUBSCRIBER_UNSUBSCRIBED)
        return left


async def erase(engine: AsyncEngine, subscriber_id: int, *, now: datetime, within: AsyncConnection | None = None) -> bool:
    """Delete the subscriber's personal data (their row, ledger rows, and address in webhook events); False if unknown.

    The address's hash stays on the suppression list, so an erased person is not
    re-added by a stale import; they can still sign up again themselves.
    """
    async with _writing(engine, within) as conn:
        current = await store.get(conn, subscriber_id)
        if current is None:
            return False
        await conn.execute(delete(deliveries).where(deliveries.c.subscriber_id == subscriber_id))
        await conn.execute(delete(subscribers).where(subscribers.c.id == subscriber_id))
        await store.suppress(conn, email_hash(current.email), "erased", now)
        await forget_subscribers(conn, [subscriber_id])
        return True


async def purge_pending(engine: AsyncEngine, *, older_than: datetime) -> int:
    """Delete the sign-ups never confirmed whose last request is older than ``older_than``; how many.

    Only those never confirmed: their address was never mailed but for the confirmation,
    so they have no ledger rows and no history to keep (a former subscriber who signed
    up again keeps their row).  Nothing is suppressed: they may sign up again.  Rechecked
    in the DELETE itself, so a confirmation at the same moment keeps its subscriber.
    """
    async with engine.begin() as conn:
        purged = (await conn.execute(
            delete(subscribers).where(
                subscribers.c.status == Status.PENDING.value, subscribers.c.confirmed_at.is_(None),
                subscribers.c.created_at < older_than,
            ).returning(subscribers.c.id)
        )).scalars().all()
        await forget_subscribers(conn, purged)
        return len(purged)


# --- bounces and complaints ------------------------------------------------------------

log = logging.getLogger(__name__)

BounceKind = Literal["hard", "soft", "complaint"]
BOUNCE_KINDS: tuple[BounceKind, ...] = ("hard", "soft", "complaint")
_STILL_MAILED = (Status.PENDING, Status.ACTIVE)


@dataclass(frozen=True, slots=True)
class BounceOutcome:
    """What :func:`record_bounce` did.

    ``subscriber`` is the subscriber the bounce concerned, as they are now (None when
    the address is nobody's); ``suppressed`` says whether the address is on the
    suppression list now, ``newly_suppressed`` whether this bounce put it there;
    ``soft_bounces`` is the subscriber's count of soft bounces (0 when none is kept).
    """

    kind: BounceKind
    subscriber: Subscriber | None
    suppressed: bool
    newly_suppressed: bool
    soft_bounces: int

    @property
    def known(self) -> bool:
        return self.subscriber is not None


async def record_bounce(
    engine: AsyncEngine,
    *,
    email: str | None,
    subscriber_id: int | None,
    kind: BounceKind,
    now: datetime,
    soft_limit: int,
    digest_id: str | None = None,
    diagnostic: str = "",
    dry_run: bool = False,
) -> BounceOutcome:
    """Apply a bounce or complaint that arrived after delivery (or at it), in one transaction.

    * ``hard``: the subscriber becomes ``bounced`` and the address is suppressed.
    * ``complaint``: the subscriber becomes ``complained`` and the address is suppressed.
    * ``soft``: the subscriber's ``soft_bounces`` count goes up by one; the
      ``soft_limit``-th makes them ``bounced`` (suppression reason ``bounced``).

    Who it concerns: the subscriber with the address ``email`` when one is given;
    otherwise the one with ``subscriber_id`` (a report that redacts the address but
    returns our Message-ID).  With ``digest_id`` too, the id is believed only if that
    digest was planned for that subscriber, so a forged report can't unsubscribe
    people by guessing small integers.

    A hard bounce or a complaint for an address that is nobody's still puts the
    address on the suppression list: it is harmless, and it protects the sender's
    reputation should the address be imported or added later.  A soft bounce for it
    changes nothing.  Subscribers who already left keep their status (their address
    is suppressed anyway) and count no soft bounces.

    Not done here: setting ``soft_bounces`` back to 0 after a delivery goes through
    (the schema's intent, "since the last delivery that went through"); delivery
    should do it when it records a sent message.

    ``dry_run`` works out the outcome and rolls everything back.  ``diagnostic``
    (the remote server's reply) is logged at debug level only: it usually quotes the
    address.  Raises :class:`SubscriberError` for an ``email`` that is not an address.
    """
    if kind not in BOUNCE_KINDS:
        raise ValueError(f"unknown bounce kind {kind!r}")
    if soft_limit < 1:
        raise ValueError("soft_limit must be at least 1")
    address = normalize_email(email) if email else None
    if address is None and subscriber_id is None:
        raise ValueError("a bounce needs an address or a subscriber id")
    async with transaction(engine, dry_run=dry_run) as conn:
        outcome = await _apply_bounce(conn, address, subscriber_id, digest_id, kind, now, soft_limit)
    _log_bounce(outcome, dry_run)
    if diagnostic:
        log.debug("%s: %s", outcome.kind, diagnostic[:500])
    return outcome


async def _bounced_subscriber(
    conn: AsyncConnection, address: str | None, subscriber_id: int | None, digest_id: str | None
) -> Subscriber | None:
    if address is not None:
        return await store.find(conn, address)
    assert subscriber_id is not None
    if digest_id is not None:
        planned = await conn.scalar(
            select(deliveries.c.subscriber_id).where(
                deliveries.c.digest_id == digest_id, deliveries.c.subscriber_id == subscriber_id
            )
        )
        if planned is None:
            return None
    return await store.get(conn, subscriber_id)


async def _apply_bounce(
    conn: AsyncConnection,
    address: str | None,
    subscriber_id: int | None,
    digest_id: str | None,
    kind: BounceKind,
    now: datetime,
    soft_limit: int,
) -> BounceOutcome:
    reason = (Status.COMPLAINED if kind == "complaint" else Status.BOUNCED).value
    current = await _bounced_subscriber(conn, address, subscriber_id, digest_id)
    if current is None:
        if address is None:
            return BounceOutcome(kind, None, False, False, 0)
        already = await store.suppression(conn, email_hash(address)) is not None
        if kind == "soft":
            return BounceOutcome(kind, None, already, False, 0)
        await store.suppress(conn, email_hash(address), reason, now)
        return BounceOutcome(kind, None, True, not already, 0)

    key = email_hash(current.email)
    already = await store.suppression(conn, key) is not None
    row = subscribers.c
    count = await conn.scalar(select(row.soft_bounces).where(row.id == current.id)) or 0
    if kind == "soft":
        if current.status not in _STILL_MAILED:
            return BounceOutcome(kind, current, already, False, count)
        count = await conn.scalar(
            update(subscribers).where(row.id == current.id)
            .values(soft_bounces=row.soft_bounces + 1).returning(row.soft_bounces)
        ) or 0
        if count < soft_limit:
            return BounceOutcome(kind, await _reload(conn, current.id), already, False, count)
    if current.status in _STILL_MAILED:
        await conn.execute(
            update(subscribers).where(row.id == current.id)
            .values(status=reason, unsubscribed_at=current.unsubscribed_at or now)
        )
        await subscriber_event(conn, await _reload(conn, current.id), now, LEAVING[reason])
    await store.suppress(conn, key, reason, now)
    return BounceOutcome(kind, await _reload(conn, current.id), True, not already, count)


def _log_bounce(outcome: BounceOutcome, dry_run: bool) -> None:
    """One line per change, naming the subscriber by id: no address (nor the reply that quotes it) in logs."""
    counted = outcome.kind == "soft" and outcome.subscriber is not None and outcome.subscriber.status in _STILL_MAILED
    if not outcome.newly_suppressed and not counted:
        return
    who = f"subscriber {outcome.subscriber.id}" if outcome.subscriber else "an address that is no subscriber's"
    what = "suppressed" if outcome.newly_suppressed else f"soft bounce {outcome.soft_bounces}"
    kind = "complaint" if outcome.kind == "complaint" else f"{outcome.kind} bounce"
    log.info("%s%s for %s: %s", "(dry run) " if dry_run else "", kind, who, what)


# --- the service the front ends call ---------------------------------------------------


class Notifier(Protocol):
    """The one-to-one emails of the lifecycle (``publisher.notices.Notices``), sent in the background."""

    @property
    def confirm_max_age(self) -> float: ...

    def later(self, work: Callable[[], Awaitable[None]], what: str) -> None: ...

    def confirm_later(self, subscriber: Subscriber) -> None: ...

    async def send_confirmation(self, subscriber: Subscriber) -> None: ...

    async def send_manage_link(self, subscriber: Subscriber) -> None: ...

    async def send_preferences_link(self, subscriber: Subscriber) -> None: ...

    async def send_welcome(self, subscriber: Subscriber) -> None: ...


@dataclass(frozen=True, slots=True)
class Page:
    """One keyset page of a listing: pass ``next_after`` back as ``after`` until it is None."""

    subscribers: list[Subscriber]
    next_after: int | None
    total: int


class SubscriberService:
    """The subscriber lifecycle and the reads the front ends show, on one engine and the clock.

    ``settings`` is replaced by the composition root on a reload (SIGHUP); ``notices``
    is read when used (a callable): the notices load the secret key only when first needed.
    """

    def __init__(self, engine: AsyncEngine, settings: Settings, notices: Callable[[], Notifier]) -> None:
        self.engine = engine
        self.settings = settings
        self._notices = notices

    @property
    def notices(self) -> Notifier:
        return self._notices()

    # --- reads ---

    def defaults(self) -> Preferences:
        """A new subscriber's preferences before they say otherwise: the site's settings."""
        settings = self.settings
        return Preferences(cadence=Cadence(settings.subscribers.default_cadence), timezone=settings.digest.timezone)

    async def known_topics(self) -> list[str]:
        """The topics a subscriber may choose: the site's ``[site] topics`` and every article tag."""
        return await known_topics(self.engine, self.settings.site.offered_topics)

    async def get(self, subscriber_id: int) -> Subscriber | None:
        async with self.engine.connect() as conn:
            return await store.get(conn, subscriber_id)

    async def find(self, email: str) -> Subscriber | None:
        """The subscriber with this (normalized) address."""
        async with self.engine.connect() as conn:
            return await store.find(conn, email)

    async def holder(self, claim: Claim) -> Subscriber | None:
        """The subscriber a genuine token names, if they still exist and still own the address."""
        found = await self.get(claim.subscriber_id)
        return found if found is not None and claim.matches(found.email) else None

    async def suppression(self, email: str) -> str | None:
        """Why the (normalized) address is suppressed, or None if it is not."""
        async with self.engine.connect() as conn:
            return await store.suppression(conn, email_hash(email))

    async def page(self, *, query: str = "", status: Status | None = None, after: int = 0, limit: int) -> Page:
        """One keyset page of those whose address or name contains ``query``, and their total.

        The store answers at most :data:`subscribers.store.PAGE_LIMIT` rows a query; a
        longer page (the CLI's ``--limit`` has no ceiling) asks again from the last id
        until ``limit`` rows are in or none are left.
        """
        found: list[Subscriber] = []
        while len(found) < limit:
            wanted = limit - len(found)
            rows = await store.search(
                self.engine, query=query, status=status, after=found[-1].id if found else after, limit=wanted
            )
            found += rows
            if len(rows) < min(wanted, store.PAGE_LIMIT):
                break
        # Look one row ahead so that next_after is None exactly on the last page.
        more = len(found) == limit and bool(
            await store.search(self.engine, query=query, status=status, after=found[-1].id, limit=1)
        )
        total = await store.count(self.engine, query=query, status=status)
        return Page(found, found[-1].id if more else None, total)

    async def listing(
        self, *, prefix: str = "", status: Status | None = None, cadence: Cadence | None = None,
        after: int | None = None, limit: int,
    ) -> list[Subscriber]:
        """One page of the dashboard's list, every read by index (see :func:`subscribers.store.newest`
        and :func:`subscribers.store.by_prefix`): newest first, or by address when searching for
        addresses that start with ``prefix``.  ``after`` is the id of the previous page's last row."""
        async with self.engine.connect() as conn:
            if not prefix:
                return await store.newest(conn, status=status, cadence=cadence, before=after, limit=limit)
            last = None
            if after is not None:
                previous = await store.get(conn, after)
                if previous is None:  # erased since: the page it ended is gone
                    return []
                last = previous.email
            return await store.by_prefix(conn, prefix, status=status, cadence=cadence, after=last, limit=limit)

    def batches(self, *, status: Status | None = None) -> AsyncIterator[list[Subscriber]]:
        """Every subscriber (with ``status``), in id order, a batch at a time: an export's stream."""
        return store.batches(self.engine, status=status)

    async def export(self, out: IO[str], *, fmt: Literal["csv", "jsonl"], status: Status | None = None) -> int:
        """Write every subscriber (with ``status``) to ``out`` as CSV (re-importable) or JSON Lines; how many."""
        written = 0
        async for text, rows in self.export_chunks(fmt=fmt, status=status):
            out.write(text)
            written += rows
        return written

    def export_chunks(
        self, *, fmt: Literal["csv", "jsonl"], status: Status | None = None
    ) -> AsyncIterator[tuple[str, int]]:
        """The export a page at a time, as (text, subscribers in it): what a streamed download sends."""
        from subscribers.export import chunks

        return chunks(self.engine, fmt=fmt, status=status)

    # --- the lifecycle ---

    def sign_up_later(self, email: str, *, name: str, prefs: Preferences, what: str) -> None:
        """A double opt-in request from the web, stored and answered by email in the background.

        After the response: its timing then says nothing about whether the address
        was known (an insert costs more than finding a row).
        """
        self.notices.later(partial(self._sign_up_and_notify, email, name, prefs), what)

    async def _sign_up_and_notify(self, email: str, name: str, prefs: Preferences) -> None:
        subscriber, needs_confirmation = await sign_up(
            self.engine, email, name=name, prefs=prefs, source=Source.WEB, now=clock.now()
        )
        if needs_confirmation:
            await self.notices.send_confirmation(subscriber)
        else:
            await self.notices.send_manage_link(subscriber)

    def preferences_link_later(self, email: str) -> None:
        """Email the holder of ``email`` a link to their preferences, if it is a subscriber's (in the background)."""
        self.notices.later(partial(self._send_link_if_known, email), "looking up a preferences link")

    async def _send_link_if_known(self, email: str) -> None:
        if (subscriber := await self.find(email)) is not None:
            await self.notices.send_preferences_link(subscriber)

    @property
    def confirm_max_age(self) -> float:
        """Seconds a confirmation link stays valid."""
        return self.notices.confirm_max_age

    def confirm_again(self, subscriber: Subscriber) -> None:
        """Send a pending subscriber a fresh confirmation link (in the background)."""
        self.notices.confirm_later(subscriber)

    async def confirm(self, subscriber_id: int) -> Subscriber | None:
        """Activate a pending subscriber; one who became active by it is welcomed by email
        (``[subscribers] welcome``), in the background: a welcome that can't be sent
        never undoes the confirmation."""
        confirmed, activated = await activate(self.engine, subscriber_id, now=clock.now())
        if activated and confirmed is not None and self.settings.subscribers.welcome:
            notices = self.notices
            notices.later(partial(notices.send_welcome, confirmed), f"welcoming subscriber {confirmed.id}")
        return confirmed

    async def create(
        self, email: str, *, name: str = "", prefs: Preferences, source: Source, confirmed: bool
    ) -> Subscriber:
        """Add a subscriber on an operator's word; an unconfirmed one is sent the double opt-in email."""
        created = await create(
            self.engine, email, name=name, prefs=prefs, source=source, confirmed=confirmed, now=clock.now()
        )
        if not confirmed:
            self.notices.confirm_later(created)
        return created

    async def update(
        self, subscriber_id: int, *, name: str | None = None, prefs: Preferences | None = None,
        within: AsyncConnection | None = None,
    ) -> Subscriber | None:
        return await update_subscriber(self.engine, subscriber_id, name=name, prefs=prefs, within=within)

    async def leave(self, subscriber_id: int, *, status: Status = Status.UNSUBSCRIBED) -> Subscriber | None:
        return await leave(self.engine, subscriber_id, now=clock.now(), status=status)

    async def suppress(
        self, email: str, *, reason: str = "manual", within: AsyncConnection | None = None
    ) -> Subscriber | None:
        return await suppress(self.engine, email, now=clock.now(), reason=reason, within=within)

    async def erase(self, subscriber_id: int, *, within: AsyncConnection | None = None) -> bool:
        return await erase(self.engine, subscriber_id, now=clock.now(), within=within)

    async def purge_pending(self) -> int | None:
        """Delete the sign-ups not confirmed within ``[subscribers] purge_pending_after`` (the
        daemon's daily job, ``publisher subscribers purge``); how many, None when it is off."""
        age = self.settings.subscribers.purge_pending_age
        if age is None:
            return None
        purged = await purge_pending(self.engine, older_than=clock.now() - age)
        log.info("purged %d sign-up(s) not confirmed within %s", purged, self.settings.subscribers.purge_pending_after)
        return purged

    async def parse_csv(self, data: bytes) -> ParsedImport:
        """A subscriber CSV checked against the site's topics and defaults, in a thread (100,000
        rows take seconds of CPU; the pages keep answering).  Raises
        :class:`subscribers.importer.ImportFileError` for a file that can't be read at all."""
        from subscribers.importer import parse_csv

        known = await self.known_topics()
        return await asyncio.to_thread(
            partial(parse_csv, data, known_topics=known, default_timezone=self.settings.digest.timezone,
                    default_cadence=self.settings.subscribers.default_cadence)
        )

    async def import_rows(
        self, parsed: ParsedImport, *, update_existing: bool = False, dry_run: bool = False,
        progress: ProgressCallback | None = None,
    ) -> ImportReport:
        """Store an import's parsed rows (see :func:`subscribers.bulk.import_rows`)."""
        from subscribers.bulk import import_rows

        return await import_rows(
            self.engine, parsed, now=clock.now(), update_existing=update_existing, dry_run=dry_run, progress=progress
        )

    async def record_bounce(self, email: str, kind: BounceKind, *, diagnostic: str = "") -> BounceOutcome:
        """A bounce or complaint reported for an address (``[delivery] soft_bounce_limit`` applies)."""
        return await record_bounce(
            self.engine, email=email, subscriber_id=None, kind=kind, now=clock.now(),
            soft_limit=self.settings.delivery.soft_bounce_limit, diagnostic=diagnostic,
        )
