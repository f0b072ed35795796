"""The delivery service: plan digests, send them, and what the operator does around a send.

Everything the CLI, the daemon and the API ask of delivery goes through
:class:`DeliveryService`: plan the digests due, deliver the ledger (one run at a time
in this process; on SQLite, one process at a time by a file lock), preview or test
the next digest without recording anything, resend an article, cancel a digest or
take an article out of one.

Each delivery run reads the current ``settings`` once, into a frozen
:class:`~publisher.delivery.model.DeliveryConfig` that it hands to the
:class:`~publisher.mail.transport.TransportPool` and the
:class:`~publisher.delivery.engine.Deliverer`: a SIGHUP during a run applies to the next.
The service takes its collaborators explicitly and imports nothing of the runtime:
what the node should know (messages sent) goes out through ``on_sent``.

This module is long because it is the whole of delivery the front ends see (plan, send,
deliver; the previews and test sends, which render exactly as a delivery does; the
operator's corrections; the reads of the ledger that status, metrics and the exit
codes show; the bounce mailbox), each method short and built on the modules below it,
so no front end opens a connection or calls the ledger itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from publisher import clock, metrics
from publisher.config import Settings
from publisher.content.model import Article
from publisher.delivery import ledger
from publisher.delivery.journal import Journal
from publisher.delivery.ledger import Claimant, DigestSummary, Remaining
from publisher.delivery.locks import exclusive, holder
from publisher.delivery.model import OPEN_STATES, DeliveryConfig, DeliveryReport, DeliveryState, DigestState
from publisher.delivery.outcomes import recover
from publisher.delivery.pacing import Backoff
from publisher.delivery.providers import Providers
from publisher.digest.plan import (
    PlannedDigest,
    PlanOptions,
    PlanProgress,
    digest_id,
    plan,
    plan_on,
    planned_for,
    preview_sample,
    why_nothing_due,
)
from publisher.digest.resend import FoundArticle, find_article, plan_resend, plan_resend_on, resend_audience
from publisher.logs import digest_context
from publisher.store import articles as article_store
from publisher.store import digests as digest_store
from publisher.store.ingest import IngestResult
from publisher.store.db import transaction
from publisher.store.digests import PastDigest, StoredDigest
from subscribers import store as subscriber_store
from subscribers.model import Cadence, Status, Subscriber
from subscribers.validation import normalize_email

if TYPE_CHECKING:  # the sending machinery is imported when there is something to render or send
    import jinja2

    from publisher.delivery.engine import Framer
    from publisher.delivery.gates import Overview as GatesOverview
    from publisher.delivery.inbox import BounceImportReport, Inbox
    from publisher.delivery.report import Failure
    from publisher.mail.dkim import DkimSigner
    from subscribers.tokens import Tokens

log = logging.getLogger(__name__)

CANCELLED_BY_OPERATOR = "cancelled by the operator"
JOURNAL_DIR = "journal"  # under [storage] data_dir: each delivering process's journal (publisher.delivery.journal)
SAMPLE_READER = ("Sample Reader", "reader@example.com")  # a preview's made-up subscriber (RFC 2606 domain)
# The subscribers a cadence's preview plans (publisher.digest.plan.preview_sample): enough
# to hold a topic-free reader in all but odd lists, few enough to plan in milliseconds.
PREVIEW_SAMPLE = 1_000

# Scans the Markdown sources into an open transaction (a rehearsal's scan, rolled back with it).
ScanInto = Callable[[AsyncConnection], Awaitable[IngestResult]]


@dataclass
class SendResult:
    planned: list[PlannedDigest] = field(default_factory=list)
    report: DeliveryReport | None = None  # None on a dry run
    article_id: str = ""  # a resend's article, however the operator named it


@dataclass
class Rehearsal:
    """A send that will be rolled back (:meth:`DeliveryService.rehearse`): read it through ``conn``.

    A preview's rehearsal plans some subscribers only: ``planned``'s recipients count those.
    """

    conn: AsyncConnection
    now: datetime
    scan: IngestResult
    planned: list[PlannedDigest]
    nothing_due: str = ""  # why nothing was planned (see :func:`publisher.digest.plan.why_nothing_due`)


class NothingToPreview(LookupError):
    """There is no digest to preview or test now; the message says why."""


@dataclass(frozen=True)
class DigestCopy:
    """One reader's copy of a digest, made by the delivery's own rendering and framing,
    and recorded nowhere (``publisher preview``, ``publisher send --test``)."""

    subject: str
    html: str
    text: str
    message: bytes  # the wire bytes (CRLF), as the transport would get them
    recipient: str
    articles: tuple[Article, ...]  # the digest's, as stored
    headlines: int = 0  # the last articles shown as title and link only, for the HTML to stay under Gmail's clipping
    html_bytes: int = 0  # the HTML part's size as it travels (quoted-printable)

    @property
    def article_count(self) -> int:
        return len(self.articles)


class DigestNotOpen(LookupError):
    """No unfinished digest has this id (or it doesn't hold the article); the message says which."""


@dataclass(frozen=True)
class DroppedArticle:
    """What ``publisher digests drop-article`` did to a digest."""

    article_id: str
    left: int  # articles the digest still holds
    to_send: int  # its messages still to send, now without the article
    cancelled: int | None = None  # it was the last article: the digest was cancelled, these messages with it


def framer(settings: Settings, env: jinja2.Environment, tokens: Tokens) -> Framer:
    """How a run renders and frames a digest: with these templates and settings (and,
    with ``[tracking] clicks = "aggregate"``, links signed with ``tokens``)."""
    from publisher.mail.message import DigestMessages
    from publisher.mail.render import render_digest
    from publisher.tracking.links import click_links

    clicks = click_links(settings, tokens)

    def frame(articles: Sequence[Article], ident: str, cadence: str, resend: bool, date: datetime) -> DigestMessages:
        rendered = render_digest(articles, settings, env, ident, cadence, resend=resend, clicks=clicks)
        return DigestMessages(rendered, settings=settings, digest_id=ident, date=date)

    return frame


class DeliveryService:
    """Plans and delivers digests; the operator's previews, test sends, resends and cancels."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        env: jinja2.Environment,
        *,
        tokens: Callable[[], Tokens],
        dkim: Callable[[], DkimSigner | None],
        providers: Callable[[], Providers],
        stopping: asyncio.Event,
        scan_into: ScanInto,
        node_id: str,
        on_sent: Callable[[int], None] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings  # replaced on SIGHUP; each run reads it once
        self.env = env
        self._tokens = tokens  # read when used: the key file is only needed once something is signed
        self._dkim = dkim
        self._providers = providers  # the publisher's table, rebuilt when the settings are reloaded
        self.stopping = stopping
        self._scan_into = scan_into
        self.node_id = node_id
        self._on_sent = on_sent
        # One delivery run at a time in this process: two runs would both pick up the
        # rows the other has marked "sending".
        self._lock = asyncio.Lock()
        self._journal: Journal | None = None  # opened by the first run; this process's crash record

    @property
    def journal(self) -> Journal:
        """This process's journal of messages sent, in ``<data_dir>/journal`` (kept until :meth:`close`)."""
        if self._journal is None:
            self._journal = Journal.open(self.settings.storage.data_dir / JOURNAL_DIR, self.node_id)
        return self._journal

    def close(self) -> None:
        """This process stops: its journal goes, every outcome being in the ledger (no run is going)."""
        if self._journal is not None and not self._lock.locked():
            self._journal.close()
            self._journal = None

    @property
    def claimant(self) -> Claimant:
        """This process's claims on deliveries; on SQLite, made under the delivery file lock."""
        lease = timedelta(seconds=self.settings.cluster.lease)
        return Claimant(self.node_id, lease, exclusive=not self.settings.database.shared)

    # --- planning -------------------------------------------------------------------------

    def _plan_options(self, cadence: Cadence) -> PlanOptions:
        """The digest settings :func:`publisher.digest.plan.plan` takes for ``cadence``."""
        settings = self.settings.digest
        return PlanOptions(
            max_articles=settings.max_articles,
            schedule=None if cadence == Cadence.INSTANT else settings.schedule,
            grace=timedelta(hours=settings.grace_hours),
        )

    async def plan(
        self, cadences: Sequence[Cadence], *, dry_run: bool = False, progress: PlanProgress | None = None
    ) -> list[PlannedDigest]:
        """Create the digests due for ``cadences`` now (with ``dry_run``, only say which);
        ``progress`` hears of each batch written."""
        now = clock.now()
        result: list[PlannedDigest] = []
        for cadence in cadences:
            planned = await plan(
                self.engine, cadence, now, self._plan_options(cadence), dry_run=dry_run, progress=progress
            )
            for digest in planned:
                if not dry_run:
                    metrics.digest_planned(digest.cadence)
                with digest_context(digest.id):
                    log.info(
                        "digest %s: %s%d articles for %d subscribers",
                        digest.id, "(dry run) " if dry_run else "", len(digest.article_seqs), digest.recipients,
                    )
            result.extend(planned)
        return result

    @contextlib.asynccontextmanager
    async def rehearse(
        self, cadence: Cadence, *, only: Sequence[int] | None = None, sample: int | None = None
    ) -> AsyncIterator[Rehearsal]:
        """What ``publisher send`` would do now, in a transaction that is rolled back after.

        The Markdown sources are scanned and ``cadence``'s digests planned exactly as
        a real send does, inside one transaction: the caller reads the planned
        digests and ledger rows from it, and afterwards nothing is left (no article
        stored, no feed written, no cursor moved, no ledger row).

        ``publisher send --dry-run`` plans everyone, to count them.  A preview needs one
        copy, and a plan of a million subscribers takes seconds, on SQLite holding the
        write lock that sending waits for: ``only`` plans these subscriber ids alone
        (each gets what a plan of everyone gives them), ``sample`` that many due
        subscribers, the oldest cursors first (see
        :func:`publisher.digest.plan.preview_sample`).
        """
        now = clock.now()
        options = self._plan_options(cadence)
        async with transaction(self.engine, dry_run=True) as conn:
            scan = await self._scan_into(conn)
            narrowed = only is not None or sample is not None
            if narrowed:
                ids = tuple(only) if only is not None else await preview_sample(conn, cadence, now, options, sample or 0)
                options = dataclasses.replace(options, only=ids)
            planned = await plan_on(conn, cadence, now, options)
            for digest in planned:
                with digest_context(digest.id):
                    log.info("digest %s: (%s) %d articles for %d subscribers", digest.id,
                             "preview: some subscribers planned" if narrowed else "dry run",
                             len(digest.article_seqs), digest.recipients)
            reason = "" if planned else await why_nothing_due(conn, cadence, now, options.schedule)
            yield Rehearsal(conn, now, scan, planned, reason)

    async def why_nothing_due(self, cadence: Cadence) -> str:
        """Why a plan of ``cadence`` found nothing now, and what to do (``publisher send``)."""
        async with self.engine.connect() as conn:
            return await why_nothing_due(conn, cadence, clock.now(), self._plan_options(cadence).schedule)

    # --- copies recorded nowhere ----------------------------------------------------------

    async def next_copy(
        self, cadence: Cadence | None = None, *, subscriber: str | None = None, article: str | None = None,
        to: str | None = None, test: bool = False,
    ) -> DigestCopy:
        """The copy of the next digest that ``subscriber`` (an address) would get if
        ``publisher send`` ran now, or a made-up reader's copy of the biggest digest due
        (or of ``article``, a reference :func:`publisher.digest.resend.find_article` takes).

        Planned in a rehearsal (:meth:`rehearse`), so nothing is stored and no cursor
        moves; only ``subscriber`` is planned, or without one a sample of the cadence's
        subscribers due (:data:`PREVIEW_SAMPLE`, the oldest cursors first), so the copy
        is quick at any size; a cadence's copy is that of the biggest digest of the
        sample (see :func:`publisher.digest.plan.preview_sample` for when that can
        differ from a plan of everyone's).  ``to`` addresses the copy to someone else; ``test`` marks it as a test
        (subject prefixed "[TEST] ", header ``X-Publisher-Test: yes``).  Raises
        :class:`NothingToPreview` saying why there is none, and ValueError for an address
        that is not one.
        """
        reader = None
        if subscriber is not None:
            address = normalize_email(subscriber)
            async with self.engine.connect() as conn:
                reader = await subscriber_store.find(conn, address)
            if reader is None:
                raise NothingToPreview(f"{address} is not a subscriber (see `publisher subscribers list`)")
            if reader.status != Status.ACTIVE:
                raise NothingToPreview(f"{address} is {reader.status}: they get no digests")
        cadence = cadence or (reader.cadence if reader else Cadence.INSTANT)
        narrowing = {"only": (reader.id,)} if reader is not None else {"sample": PREVIEW_SAMPLE}
        async with self.rehearse(cadence, **narrowing) as rehearsal:
            ident, seqs = await self._next_digest(rehearsal, cadence, reader, article)
            articles = await article_store.by_seq(rehearsal.conn, seqs)
        return self._copy(articles, ident, cadence, reader, to=to, test=test)

    def article_copy(self, article: Article) -> DigestCopy:
        """A made-up reader's copy of ``article`` alone, as an instant digest would mail it
        (the dashboard's preview of an article, whatever its state); nothing is planned."""
        return self._copy([article], digest_id(Cadence.INSTANT, clock.now(), (0,)), Cadence.INSTANT, None)

    def _copy(
        self, articles: Sequence[Article], ident: str, cadence: Cadence, reader: Subscriber | None, *,
        to: str | None = None, test: bool = False,
    ) -> DigestCopy:
        """``reader``'s copy (a made-up reader's without one) of the digest ``ident`` of
        ``articles``, rendered and framed as a delivery does (see :meth:`next_copy`)."""
        from publisher.delivery.engine import personal_values
        from publisher.mail.message import DigestMessages
        from publisher.mail.render import render_digest

        name, email = (reader.name, reader.email) if reader else SAMPLE_READER
        personal = personal_values(self._tokens(), self.settings.site.url, reader.id if reader else 0,
                                   name, normalize_email(to) if to else email)
        rendered = render_digest(articles, self.settings, self.env, ident, cadence)
        if test:
            ident = f"test-{ident}"
            rendered = dataclasses.replace(rendered, subject=f"[TEST] {rendered.subject}")
        message = DigestMessages(rendered, settings=self.settings, digest_id=ident, date=clock.now()).build(
            personal, reader.id if reader else 0
        )
        if test:  # prepended: a header field anywhere in the header block is as good, and framing stays in one place
            message = b"X-Publisher-Test: yes\r\n" + message
        html, text = rendered.personalize(personal)
        return DigestCopy(rendered.subject, html, text, message, personal.email, tuple(articles),
                          headlines=rendered.headlines, html_bytes=rendered.html_bytes)

    async def _next_digest(
        self, rehearsal: Rehearsal, cadence: Cadence, reader: Subscriber | None, article: str | None
    ) -> tuple[str, tuple[int, ...]]:
        """``(digest id, article seqs)`` of the copy :meth:`next_copy` makes."""
        if article is not None:
            found = await find_article(rehearsal.conn, article, self.settings.site.url)
            seqs = (found.seq,)
            return digest_id(cadence, rehearsal.now, seqs), seqs
        if reader is not None:
            theirs = await planned_for(rehearsal.conn, reader.id, rehearsal.planned)
            if theirs is None:
                why = rehearsal.nothing_due or "every article they would get has gone out to them"
                raise NothingToPreview(f"nothing to preview for {reader.email} ({cadence}): {why}")
            return theirs.id, theirs.article_seqs
        if not rehearsal.planned:
            raise NothingToPreview(f"nothing to preview: {rehearsal.nothing_due}")
        biggest = max(rehearsal.planned, key=lambda digest: (len(digest.article_seqs), digest.recipients))
        return biggest.id, biggest.article_seqs

    async def send_test(
        self, to: str, *, cadence: Cadence | None = None, article: str | None = None, subscriber: str | None = None,
    ) -> DigestCopy:
        """Send one copy of the next digest (or of ``article``; ``subscriber``'s copy: see
        :meth:`next_copy`) to ``to``, marked as a test, through the configured transport:
        outside the ledger, no cursor moves.

        Raises :class:`NothingToPreview`, and DeliveryError when the transport can't be
        reached or refuses the message.
        """
        from publisher.mail.transport import make_transport

        copy = await self.next_copy(cadence, subscriber=subscriber, article=article, to=to, test=True)
        signer = self._dkim()
        message = copy.message if signer is None else signer.sign(copy.message)
        transport = make_transport(self.settings.delivery, self.settings.smtp)
        try:
            await transport.open()
            await transport.send(self.settings.delivery.from_address, copy.recipient, message)
        finally:
            await transport.close()
        return copy

    # --- sending --------------------------------------------------------------------------

    async def send(
        self, cadences: Sequence[Cadence], *, dry_run: bool = False, wait: bool = False,
        progress: Callable[[DeliveryReport], None] | None = None,
        on_planned: Callable[[list[PlannedDigest]], None] | None = None,
    ) -> SendResult:
        """Plan the digests due for ``cadences`` and deliver everything still pending.

        Delivery starts once the plan's digests are written (or it ended), rendering
        them while their first rows are, and follows the plan's batches as they commit:
        the first message of a large digest goes out before its whole plan is written.
        ``on_planned`` hears of the digests planned then; ``wait`` and ``progress`` are
        :meth:`deliver`'s.
        """
        if dry_run:
            return SendResult(planned=await self.plan(cadences, dry_run=True))
        plan_progress = PlanProgress(turns=not self.settings.database.shared)
        planning = asyncio.create_task(self._plan_then_end(cadences, plan_progress))
        begun = asyncio.create_task(plan_progress.next_batch().wait())
        await asyncio.wait({planning, begun}, return_when=asyncio.FIRST_COMPLETED)
        begun.cancel()
        if planning.done():  # failed, or found nothing: delivery waits for nothing of it
            planned = planning.result()
            if on_planned is not None:
                on_planned(planned)
            return SendResult(planned=planned, report=await self.deliver(wait=wait, progress=progress))
        if on_planned is not None:
            on_planned(list(plan_progress.planned))
        try:
            report = await self.deliver(wait=wait, progress=progress, planning=plan_progress)
        finally:
            planned = await planning
        return SendResult(planned=planned, report=report)

    async def _plan_then_end(self, cadences: Sequence[Cadence], progress: PlanProgress) -> list[PlannedDigest]:
        """:meth:`plan` that tells ``progress`` it ended, however it ends."""
        try:
            return await self.plan(cadences, progress=progress)
        finally:
            progress.end()

    async def resend(self, reference: str, *, dry_run: bool = False) -> SendResult:
        """Send the article ``reference`` names (id, slug, URL or feed entry id) again to
        everyone whose topics it matches (``publisher resend``).

        Raises :class:`publisher.digest.resend.UnknownArticle`.
        """
        digest, article = await plan_resend(
            self.engine, reference, clock.now(), site_url=self.settings.site.url, dry_run=dry_run
        )
        self._resent(digest, article.id, dry_run=dry_run)
        result = SendResult(planned=[digest], article_id=article.id)
        if not dry_run:
            result.report = await self.deliver()
        return result

    async def resend_on(self, conn: AsyncConnection, reference: str) -> PlannedDigest:
        """Plan a resend (see :meth:`resend`) in the caller's transaction (the dashboard's,
        which records it); a delivery run (:meth:`deliver`) sends it once that commits."""
        digest, article = await plan_resend_on(conn, reference, clock.now(), site_url=self.settings.site.url)
        self._resent(digest, article.id, dry_run=False)
        return digest

    async def resend_audience(self, reference: str) -> tuple[FoundArticle, int]:
        """The article ``reference`` names and how many subscribers a resend would go to now."""
        return await resend_audience(self.engine, reference, self.settings.site.url)

    @staticmethod
    def _resent(digest: PlannedDigest, article_id: str, *, dry_run: bool) -> None:
        with digest_context(digest.id):
            log.info("digest %s: %sresending %s to %d subscribers", digest.id, "(dry run) " if dry_run else "",
                     article_id, digest.recipients)
        if not dry_run:
            metrics.digest_planned(digest.cadence)

    async def deliver(
        self, *, wait: bool = False, progress: Callable[[DeliveryReport], None] | None = None,
        planning: PlanProgress | None = None,
    ) -> DeliveryReport:
        """Hand every due ledger row to the transport (resumes interrupted digests).

        With ``wait``, also wait out deferred rows until every digest is finished or
        paused.  One run at a time within this process (an asyncio lock).  On
        PostgreSQL, processes and nodes share the rows through claims with a lease
        (:func:`publisher.delivery.ledger.claim`).  SQLite is one machine's: one process
        delivers at a time, by a file lock in the data directory (see
        :mod:`publisher.delivery.locks`), and takes over at once what a dead one left.
        ``planning``: this process's plan still writing rows, which the run follows.
        """
        async with self._lock:
            claimant = self.claimant
            if not claimant.exclusive:
                return await self._deliver_unfinished(wait, progress, claimant, planning)
            lock_path = self.settings.storage.data_dir / "delivery.lock"
            with exclusive(lock_path) as taken:
                if not taken:
                    log.info("another process (pid %s) is delivering; leaving the ledger to it", holder(lock_path))
                    return DeliveryReport()
                return await self._deliver_unfinished(wait, progress, claimant, planning)

    async def deliver_due(self) -> None:
        """The nodes' delivery job: deliver if a row can be claimed now (one cheap query if not).

        A run already going in this process is left alone: it is busy, and the next
        look finds what it did not take.  The journals of processes on this machine that
        died are replayed first: the rows they held become claimable at once.
        """
        if self._lock.locked():
            return
        await recover(self.engine, self.journal)
        if await ledger.claimable(self.engine, clock.now(), self.claimant):
            await self.deliver()

    async def _deliver_unfinished(
        self, wait: bool, progress: Callable[[DeliveryReport], None] | None, claimant: Claimant,
        planning: PlanProgress | None = None,
    ) -> DeliveryReport:
        await recover(self.engine, self.journal)  # before any claim: what a dead process sent is sent
        if not await ledger.unfinished_digests(self.engine):
            return DeliveryReport()  # no connection to the relay when there is nothing to send
        from publisher.delivery.engine import Deliverer
        from publisher.delivery.gates import Gates
        from publisher.mail.transport import DeliveryError, TransportPool, make_transport

        config = DeliveryConfig.from_settings(self.settings)
        providers = self._providers()
        pool = TransportPool(partial(make_transport, config, config.smtp), config.concurrency,
                             name=config.transport_name)
        async with pool:
            # A relay that is down or misconfigured leaves every row pending, untouched; with
            # ``wait`` it is tried again with growing pauses until it answers or the service stops.
            pauses = Backoff(config.retry_base, limit=60.0).next_pause if wait else None
            try:
                if not await pool.open(self.stopping, pauses):
                    return DeliveryReport()
            except DeliveryError as exc:
                return DeliveryReport(unreachable=f"cannot reach the {config.transport_name}: {exc}")
            deliverer = Deliverer(
                self.engine, config, framer(self.settings, self.env, self._tokens()), self._tokens(), pool,
                stop=self.stopping, progress=self._tracking(progress), signer=self._dkim(), claimant=claimant,
                journal=self.journal, planning=planning, plan_poll=self.settings.cluster.poll_interval,
                providers=providers,
                gates=Gates.from_settings(self.engine, providers, self.settings.warmup, self.settings.breakers),
            )
            return await deliverer.run(wait=wait)

    def _tracking(self, progress: Callable[[DeliveryReport], None] | None) -> Callable[[DeliveryReport], None]:
        """A run's progress callback that also tells ``on_sent`` of each message sent."""
        counted = 0

        def track(report: DeliveryReport) -> None:
            nonlocal counted
            if self._on_sent is not None and report.sent > counted:
                self._on_sent(report.sent - counted)
            counted = report.sent
            if progress is not None:
                progress(report)

        return track

    async def resume(self, digest_id: str, *, wait: bool = False) -> DeliveryReport | None:
        """Continue a paused digest and deliver (``publisher resume``); None, delivering
        nothing, if ``digest_id`` is not a paused digest."""
        if not await self.reopen(digest_id):
            return None
        return await self.deliver(wait=wait)

    async def reopen(self, digest_id: str, *, within: AsyncConnection | None = None) -> bool:
        """Let a paused digest be sent again, without delivering here: the nodes' delivery
        job takes its rows (the dashboard's resume; ``publisher resume`` then delivers).
        False if ``digest_id`` is not a paused digest."""
        return await ledger.resume(self.engine, digest_id, within=within)

    async def pause_digest(self, digest_id: str, reason: str, *, within: AsyncConnection | None = None) -> bool:
        """Pause a digest being sent (an operator's pause, ``reason`` naming them): every node
        stops taking its messages at its next batch, until it is resumed.  False if
        ``digest_id`` is not a digest being sent."""
        return await ledger.pause(self.engine, digest_id, reason, within=within)

    async def resume_providers(self, providers: list[str] | None, *, wait: bool = False) -> list[str]:
        """Lift the breakers' pause of ``providers`` (None: all) and deliver (``publisher resume
        --provider``); the providers resumed (none: nothing delivered).  Only complaints and
        bounces after now count towards their breakers from now on."""
        from publisher.delivery import gate_store

        resumed = await gate_store.resume(self.engine, providers, clock.now())
        if resumed:
            await self.deliver(wait=wait)
        return resumed

    # --- reads of the ledger --------------------------------------------------------------

    async def gates(self) -> GatesOverview:
        """The warm-up's day and the providers' breakers (``publisher status``)."""
        from publisher.delivery.gates import overview

        return await overview(self.engine, self._providers(), self.settings.warmup,
                              self.settings.breakers, clock.now())

    async def due_count(self) -> int:
        """Messages due now (a send's progress total, the queue depth gauge)."""
        return await ledger.due_count(self.engine, clock.now())

    async def remaining(self) -> Remaining:
        """What a delivery run left, and why (the CLI's exit code and advice)."""
        return await ledger.remaining(self.engine)

    async def totals(self) -> dict[str, int]:
        """Messages of the unfinished digests by state."""
        return await ledger.totals(self.engine)

    async def states(
        self, *, limit: int = 20, status: DigestState | None = None, before: str | None = None,
    ) -> list[DigestSummary]:
        """The newest ``limit`` digests (in ``status``; after digest ``before``) with their messages by state."""
        return await ledger.states(self.engine, limit=limit, status=status, before=before)

    async def digest_state(self, digest_id: str) -> DigestSummary | None:
        """One digest with its messages by state (from the kept counts); None if there is none."""
        return await ledger.state(self.engine, digest_id)

    async def failures(self, digest_id: str, *, after: int = 0, limit: int = 50) -> list[Failure]:
        """A page of a digest's failed messages with their replies, by subscriber id after ``after``."""
        from publisher.delivery.report import failures

        return await failures(self.engine, digest_id, after, limit)

    async def by_provider(self, digest_id: str) -> dict[str, dict[str, int]]:
        """A digest's messages by mailbox provider and state, from the kept counts."""
        from publisher.delivery.report import kept_by_provider

        return await kept_by_provider(self.engine, digest_id, self._providers())

    async def replies(self, digest_id: str, *, limit: int = 10) -> list[tuple[str, int]]:
        """The commonest replies to a digest's failed and deferred messages, commonest first."""
        from publisher.delivery.report import commonest_replies

        return await commonest_replies(self.engine, digest_id, limit)

    async def stored_digest(self, digest_id: str) -> StoredDigest | None:
        """A digest with the articles it carries that are still published (its "view in browser" copy)."""
        return await digest_store.load(self.engine, digest_id)

    async def past_digests(self, *, limit: int, offset: int) -> tuple[list[PastDigest], int]:
        """A page of the digests sent to someone, newest first, and how many there are (the public list)."""
        return await digest_store.past(self.engine, limit, offset)

    # --- the operator's corrections -------------------------------------------------------

    async def cancel_digest(
        self, digest_id: str, reason: str = CANCELLED_BY_OPERATOR, *, within: AsyncConnection | None = None,
    ) -> tuple[int, int]:
        """Finish a digest now (``publisher digests cancel``): ``(messages cancelled, already sent)``.

        Raises :class:`DigestNotOpen` for an unknown or finished digest.
        """
        before = await ledger.state(self.engine, digest_id)
        if before is None:
            raise DigestNotOpen(f"no digest {digest_id!r} (see `publisher digests list`)")
        cancelled = await ledger.cancel(self.engine, digest_id, reason, clock.now(), within=within)
        if cancelled is None:
            raise DigestNotOpen(f"digest {digest_id} is already finished: nothing to cancel")
        with digest_context(digest_id):
            log.info("digest %s: %s; %d message(s) cancelled", digest_id, reason, cancelled)
        return cancelled, before.counts.get(DeliveryState.SENT, 0)

    async def drop_from_digest(self, digest_id: str, reference: str) -> DroppedArticle:
        """Take an article (a reference :func:`publisher.digest.resend.find_article` takes) out of the
        messages a digest has still to send; a digest left empty is cancelled.

        Raises :class:`publisher.digest.resend.UnknownArticle` and :class:`DigestNotOpen`.
        """
        async with self.engine.connect() as conn:
            found = await find_article(conn, reference, self.settings.site.url)
        left = await digest_store.drop_article(self.engine, digest_id, found.seq)
        if left is None:
            raise DigestNotOpen(
                f"{found.id} is not in digest {digest_id!r}, or that digest is finished (see `publisher digests list`)"
            )
        if not left:
            cancelled, _ = await self.cancel_digest(
                digest_id, f"{CANCELLED_BY_OPERATOR}: its last article {found.id} was dropped"
            )
            return DroppedArticle(found.id, 0, 0, cancelled)
        after = await ledger.state(self.engine, digest_id)
        to_send = sum(after.counts.get(state, 0) for state in OPEN_STATES) if after else 0
        with digest_context(digest_id):
            log.info("digest %s: dropped article %s; %d left", digest_id, found.id, len(left))
        return DroppedArticle(found.id, len(left), to_send)

    async def import_bounces(
        self, inbox: Inbox, *, dry_run: bool = False, mark_seen_after: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> BounceImportReport:
        """Record the bounces and complaints of a mailbox (``publisher bounces import``), by
        this run's ``sending_domain`` and ``[delivery] soft_bounce_limit``."""
        from publisher.delivery.inbox import import_bounces

        settings = self.settings
        return await import_bounces(
            self.engine, inbox, sending_domain=settings.sending_domain,
            soft_limit=settings.delivery.soft_bounce_limit, now=clock.now(), dry_run=dry_run,
            mark_seen_after=mark_seen_after, progress=progress,
        )
