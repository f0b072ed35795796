"""The service: the steps of one pass of data, for the CLI and the daemon alike.

``Publisher`` owns the store engine, the template environment and the current
feeds.  Each method is one step (scan, build feeds, plan, deliver) and is safe to
call again: the store decides what is new, so a repeated or duplicate trigger does
nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property, partial
from typing import Any
from urllib.parse import urljoin

import jinja2
from sqlalchemy.ext.asyncio import AsyncConnection

from publisher import ledger, metrics, nodes
from publisher.config import ConfigError, Settings
from publisher.content.model import Article, FactTable, Image, Quote
from publisher.content.sources import ScanResult, scan_directory
from publisher.delivery import Deliverer, DeliveryReport, personal_values
from publisher.digest import (
    PlannedDigest,
    digest_id,
    find_article,
    plan,
    plan_on,
    plan_resend,
    planned_for,
    why_nothing_due,
)
from publisher.feeds import CONTENT_TEMPLATE as FEED_CONTENT_TEMPLATE
from publisher.feeds import FeedDocument, build_feeds, write_feeds
from publisher.ledger import Claimant, claimable, unfinished_digests
from publisher.locks import exclusive, holder
from publisher.logs import digest_context
from publisher.mail.dkim import DkimSigner
from publisher.mail.message import DigestMessages
from publisher.mail.render import render_digest, render_notice
from publisher.mail.transport import DeliveryError, Transport, make_transport
from publisher.notices import Notices
from publisher.pacing import Backoff
from publisher.secrets import load_secret_key
from publisher.sources.intake import API_SOURCE, Intake
from publisher.store import articles as article_store
from publisher.store import digests as digest_store
from publisher.store import meta
from publisher.store.articles import IngestResult
from publisher.store.db import create_engine, transaction, upgrade
from publisher.templating import make_environment, make_loader, template_error
from publisher.websub import HubPinger
from subscribers import store as subscriber_store
from subscribers.model import Cadence, Status, Subscriber
from subscribers.service import SubscriberService
from subscribers.tokens import Tokens
from subscribers.validation import normalize_email

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class SendResult:
    planned: list[PlannedDigest] = field(default_factory=list)
    report: DeliveryReport | None = None  # None on a dry run
    article_id: str = ""  # a resend's article, however the operator named it


@dataclass
class Rehearsal:
    """A send that will be rolled back (:meth:`Publisher.rehearse`): read it through ``conn``."""

    conn: AsyncConnection
    now: datetime
    scan: IngestResult
    planned: list[PlannedDigest]
    nothing_due: str = ""  # why nothing was planned (see :func:`publisher.digest.why_nothing_due`)


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
    article_count: int


class DigestNotOpen(LookupError):
    """No unfinished digest has this id (or it doesn't hold the article); the message says which."""


@dataclass(frozen=True)
class DroppedArticle:
    """What ``publisher digests drop-article`` did to a digest."""

    article_id: str
    left: int  # articles the digest still holds
    to_send: int  # its messages still to send, now without the article
    cancelled: int | None = None  # it was the last article: the digest was cancelled, these messages with it


CANCELLED_BY_OPERATOR = "cancelled by the operator"
SAMPLE_READER = ("Sample Reader", "reader@example.com")  # a preview's made-up subscriber (RFC 2606 domain)


def template_problems(settings: Settings, env: jinja2.Environment) -> list[str]:
    """Every template that can't be used, as ``file:line: Error: message`` (empty: all fine).

    Each email, feed and web template is compiled; the digest (HTML, text, subject;
    new and resent), the one-to-one notices and the feed content are also rendered
    with a sample article, so a template that compiles but fails on real values (an
    undefined name, a missing unsubscribe link) is caught before a delivery or a
    page needs it.  Web pages are only compiled: they render per request.
    """
    problems: dict[str, None] = {}  # ordered, and a template failing in two renders is named once

    def attempt(render: Callable[[], object]) -> None:
        try:
            render()
        except Exception as exc:  # noqa: BLE001 - whatever a template raises is the operator's to fix
            problems[template_error(exc)] = None

    for name in env.list_templates(filter_func=_is_template):
        attempt(partial(env.get_template, name))
    article = _sample_article(settings.site.url)
    for cadence in Cadence:
        for resend in (False, True):
            attempt(partial(render_digest, [article], settings, env, "check", cadence, resend=resend))
    attempt(lambda: env.get_template(FEED_CONTENT_TEMPLATE).render(article=article))
    for notice, extra in NOTICE_SAMPLES.items():
        context = {"site": settings.site, "subject": "Sample subject", "email": SAMPLE_READER[1], **extra}
        attempt(partial(render_notice, env, notice, context))
    return list(problems)


def _is_template(name: str) -> bool:
    """The templates the service renders: emails, feed content and web pages (not init's files or CSS)."""
    return name.startswith(("email/", "feed/", "web/")) and name.endswith((".html", ".txt"))


def _sample_article(site_url: str) -> Article:
    """An article with every field a template may show, for :func:`template_problems`."""
    when = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    return Article(
        id="sample-article", slug="sample-article", title="A sample article", published=when, updated=when,
        canonical_url=urljoin(site_url, "sample-article/"), subtitle="Its subtitle", author="A. Writer",
        tags=("sample",), category="Analysis",
        images=(Image(urljoin(site_url, "images/sample.png"), "A sample picture", "Caption"),),
        summary="What it says, in a sentence.", takeaways=("One point", "Another point"),
        quotes=(Quote("A quotation.", "Someone"),), body_html="<p>The body.</p>",
        fact_tables=(FactTable("Figures", ("Year", "Value"), (("2025", "1"),), sources="A source"),),
    )


# The notices (publisher.notices) and the values each one's template gets besides site, subject and email.
NOTICE_SAMPLES: dict[str, dict[str, object]] = {
    "confirm": {"confirm_url": "https://example.com/confirm/token", "valid_hours": "48"},
    "manage": {"preferences_url": "https://example.com/preferences/token"},
    "preferences_link": {"preferences_url": "https://example.com/preferences/token"},
}


class Publisher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_engine(settings.database.url, busy_timeout=settings.database.busy_timeout)
        self.env = make_environment(settings.site.templates_dir)
        self.feeds: dict[str, FeedDocument] = {}
        self.stopping = asyncio.Event()
        # One delivery run at a time in this process: two runs would both pick up the
        # rows the other has marked "sending".
        self._delivery_lock = asyncio.Lock()
        self._scan_lock = asyncio.Lock()
        self._fetch_lock = asyncio.Lock()  # one upstream fetch at a time (a fetcher's rule), outside _scan_lock
        self._feeds_lock = asyncio.Lock()  # one feed build at a time
        self._tokens: Tokens | None = None
        self._notices: Notices | None = None
        self._jobs: set[asyncio.Task[object]] = set()
        self._background: set[asyncio.Task[None]] = set()
        self.intake = Intake(self.engine, lambda: self.settings)
        self.subscribers = SubscriberService(self.engine, lambda: self.settings, lambda: self.notices)
        self.hub = HubPinger(settings.websub)
        self.last_scan_at: datetime | None = None  # when the last scan finished (readiness, status)
        self.scheduler_running = False  # set by the daemon while its schedule runs
        # This process as a node: its claims on deliveries and its heartbeat carry this id.
        self.node_id = nodes.node_id(utcnow())
        self.sent_total = 0  # messages this process delivered (its send rate, in publisher status)
        self.role = "cli"  # leader | standby | worker, set by publisher.daemon
        self._feeds_revision: tuple[object, ...] | None = None  # the store's, when the feeds were built
        # Why the static feed files could not be written at the last build (None: they were).
        # Best effort: the feeds are served from memory whatever happens to the copies.
        self.static_files_problem: str | None = None
        # Told when the earliest scheduled article is due (None: none) after every ingest:
        # the leader's schedule wakes up then (publisher.scheduler).
        self.on_next_release: Callable[[datetime | None], None] | None = None

    def reconfigure(self, settings: Settings) -> list[str]:
        """Use ``settings`` from now on (SIGHUP); the settings that only a restart can change.

        Everything reads ``self.settings`` when it runs, so a new rate, schedule, site
        title or template directory applies to the next job, while the job in progress
        finishes as it started.  The database, the data directory and the listening
        address stay until a restart.  Raises ValueError (the DKIM key can't be used)
        before changing anything, and ConfigError naming each template file and line that
        can't be used (:func:`template_problems`): the running templates stay.
        """
        signer = DkimSigner.from_settings(settings.dkim)
        if problems := template_problems(settings, make_environment(settings.site.templates_dir)):
            raise ConfigError(problems)
        old = self.settings
        fixed = {
            "database.url": (old.database.url, settings.database.url),
            "storage.data_dir": (old.storage.data_dir, settings.storage.data_dir),
            "server.host": (old.server.host, settings.server.host),
            "server.port": (old.server.port, settings.server.port),
        }
        self.settings = settings.model_copy(
            update={"database": old.database, "storage": old.storage, "server": old.server}
        )
        self.env.loader = make_loader(settings.site.templates_dir)
        self.__dict__["dkim"] = signer  # replaces the cached property's value
        if self._notices is not None:  # it reads these when it sends
            self._notices.settings, self._notices.signer = self.settings, signer
        return [key for key, (before, after) in fixed.items() if before != after]

    async def start(self) -> None:
        """Apply migrations (idempotent) so every command sees the current schema; warn
        when [site] url is not the one the store's articles were published under."""
        await upgrade(self.engine)
        published_under = await meta.get(self.engine, meta.SITE_URL)
        if published_under is not None and published_under != self.settings.site.url:
            log.warning(
                "[site] url is %s, but this store's articles and feeds were published under %s: the next scan "
                "rewrites every article's canonical URL and feed entry id to the new address (feed readers may "
                "show every article again as new, and links to the old address stop matching); if that is not "
                "what you want, set [site] url back to %s",
                self.settings.site.url, published_under, published_under,
            )

    async def close(self) -> None:
        await self.intake.close()
        await self.engine.dispose()

    @property
    def tokens(self) -> Tokens:
        if self._tokens is None:
            self._tokens = Tokens(load_secret_key(self.settings.storage.data_dir))
        return self._tokens

    @cached_property
    def dkim(self) -> DkimSigner | None:
        """The DKIM signer (None when ``[dkim]`` is not configured); the key is read once."""
        return DkimSigner.from_settings(self.settings.dkim)

    @property
    def notices(self) -> Notices:
        if self._notices is None:
            self._notices = Notices(self.settings, self.env, self.tokens, signer=self.dkim)
        return self._notices

    def check_content(self) -> list[ScanResult]:
        """Every Markdown directory read as a scan reads it, without the store (``publisher check``)."""
        site_url, limits = self.settings.site.url, self.settings.content.limits
        return [scan_directory(directory, site_url, limits=limits) for directory in self.settings.markdown_dirs]

    async def scan(self) -> IngestResult:
        """Read the Markdown directories, store what is new, edited or removed, rebuild feeds if needed.

        A broken article is logged as ``path:line: message`` and skipped; the others
        are published.
        """
        async with self._scan_lock:  # the watcher and the interval scan may both fire
            started = time.perf_counter()
            result = await self.intake.scan_markdown()
            await self._published(result)
            metrics.scan_finished(time.perf_counter() - started)
            self.last_scan_at = utcnow()
            return result

    async def fetch_feeds(self) -> IngestResult:
        """Fetch the upstream feeds that are due; store and publish what is new.

        The fetch (network and parsing, seconds for a slow or big feed) runs outside the
        scan lock: a Markdown scan or an article POSTed to the API waits only for the store.
        """
        async with self._fetch_lock:
            fetched = await self.intake.fetch_feeds()
            async with self._scan_lock:
                result = await self.intake.store_feeds(fetched)
                await self._published(result)
            return result

    async def accept(self, articles: Sequence[Article], *, withdrawn: Sequence[str] = ()) -> IngestResult:
        """Articles POSTed to the API (and the ids of those now posted as drafts, which
        are unpublished); new ones go to instant subscribers in the background."""
        async with self._scan_lock:
            result = await self.intake.store(articles, API_SOURCE, withdrawn=withdrawn)
            await self._published(result)
        if result.new:
            self.later("instant", partial(self.send, [Cadence.INSTANT]))
        return result

    async def unpublish(self, article_id: str) -> bool:
        """Take an article down (``publisher articles remove``, ``DELETE /api/articles/…``)
        and rebuild the feeds; False if no published or scheduled article has this id."""
        async with self._scan_lock:
            found = await article_store.unpublish(self.engine, article_id, utcnow())
            if found:
                await self._published(IngestResult(removed=[article_id]))
        return found

    async def publish_due(self) -> None:
        """The leader's job at a scheduled article's time: publish what is due (feeds, the
        WebSub ping) and send it to instant subscribers."""
        async with self._scan_lock:
            result = await self.intake.release()
            await self._published(result)
        if result.new:
            await self.send([Cadence.INSTANT])

    async def _published(self, result: IngestResult) -> None:
        metrics.articles_published(len(result.new))
        if result.changed or not self.feeds:
            await self.build_feeds()
        if self.on_next_release is not None:
            self.on_next_release(await article_store.next_release(self.engine))

    async def build_feeds(self, *, announce: bool = True) -> None:
        """Render every feed from the store, write the static copies, tell the WebSub hub
        (unless not ``announce``: the node that stored the change has told it)."""
        async with self._feeds_lock:  # the build runs in threads: two at once could finish out of order
            await self._build_feeds(announce)

    async def _build_feeds(self, announce: bool) -> None:
        site, hub = self.settings.site, self.settings.websub.hub
        revision = await article_store.revision(self.engine)
        published = await article_store.latest(self.engine)
        before = self.feeds
        # In a thread: rendering hundreds of documents takes long enough to stall every request.
        self.feeds = await asyncio.to_thread(
            build_feeds, published, site, self.settings.feeds.max_entries, self.env, hub=hub,
            max_tag_feeds=self.settings.feeds.max_tag_feeds, max_entry_bytes=self.settings.feeds.max_entry_bytes,
        )
        self._feeds_revision = revision
        await self._write_static_copies()
        if await meta.get(self.engine, meta.SITE_URL) != site.url:  # published under this URL from now on
            await meta.put(self.engine, meta.SITE_URL, site.url)
        if hub and before and announce:  # the first build after a start only restates what the hub has seen
            changed = [path for path, doc in self.feeds.items() if path not in before or before[path].etag != doc.etag]
            self.hub.settings = self.settings.websub
            self.hub.ping(urljoin(site.url, path) for path in changed)

    async def _write_static_copies(self) -> None:
        """Write the feeds to ``[site] output_dir`` for nginx or a CDN, as a best effort.

        A directory that is read-only, full or not a directory never stops serving (the
        feeds are in memory) nor sending: the problem is logged once each time it
        changes, and shown in ``/readyz`` and ``publisher status`` until a write succeeds.
        """
        output_dir = self.settings.site.output_dir
        try:
            await asyncio.to_thread(write_feeds, self.feeds, output_dir)
        except OSError as exc:
            problem = (f"cannot write the static feed files to {output_dir}: {exc.strerror or exc} "
                       f"({exc.filename or output_dir}); the feeds are still served by the daemon")
            if problem != self.static_files_problem:
                log.error("%s", problem)
            self.static_files_problem = problem
            return
        if self.static_files_problem is not None:
            log.info("feeds: the static feed files are written to %s again", output_dir)
        self.static_files_problem = None
        log.info("feeds: %d files in %s", len(self.feeds), output_dir)

    async def refresh_feeds(self) -> None:
        """Rebuild the feeds if the store's articles changed since they were built (by
        another node: a standby serves what the leader stored)."""
        if await article_store.revision(self.engine) != self._feeds_revision:
            await self.build_feeds(announce=False)

    def _plan_options(self, cadence: Cadence) -> dict[str, Any]:
        """The digest settings :func:`publisher.digest.plan` takes for ``cadence``."""
        settings = self.settings.digest
        return {
            "max_articles": settings.max_articles,
            "schedule": None if cadence == Cadence.INSTANT else settings.schedule,
            "grace": timedelta(hours=settings.grace_hours),
        }

    async def plan(self, cadences: Sequence[Cadence], *, dry_run: bool = False) -> list[PlannedDigest]:
        """Create the digests due for ``cadences`` now (with ``dry_run``, only say which)."""
        now = utcnow()
        result: list[PlannedDigest] = []
        for cadence in cadences:
            planned = await plan(self.engine, cadence, now, dry_run=dry_run, **self._plan_options(cadence))
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
    async def rehearse(self, cadence: Cadence) -> AsyncIterator[Rehearsal]:
        """What ``publisher send`` would do now, in a transaction that is rolled back after.

        The Markdown sources are scanned and ``cadence``'s digests planned exactly as
        a real send does, inside one transaction: the caller reads the planned
        digests and ledger rows from it, and afterwards nothing is left (no article
        stored, no feed written, no cursor moved, no ledger row).
        """
        now = utcnow()
        async with transaction(self.engine, dry_run=True) as conn:
            scan = await self.intake.scan_markdown(into=conn)
            planned = await plan_on(conn, cadence, now, **self._plan_options(cadence))
            for digest in planned:
                with digest_context(digest.id):
                    log.info("digest %s: (dry run) %d articles for %d subscribers",
                             digest.id, len(digest.article_seqs), digest.recipients)
            reason = "" if planned else await why_nothing_due(
                conn, cadence, now, self._plan_options(cadence)["schedule"]
            )
            yield Rehearsal(conn, now, scan, planned, reason)

    async def why_nothing_due(self, cadence: Cadence) -> str:
        """Why a plan of ``cadence`` found nothing now, and what to do (``publisher send``)."""
        async with self.engine.connect() as conn:
            return await why_nothing_due(conn, cadence, utcnow(), self._plan_options(cadence)["schedule"])

    async def next_copy(
        self, cadence: Cadence | None = None, *, subscriber: str | None = None, article: str | None = None,
        to: str | None = None, test: bool = False,
    ) -> DigestCopy:
        """The copy of the next digest that ``subscriber`` (an address) would get if
        ``publisher send`` ran now, or a made-up reader's copy of the biggest digest due
        (or of ``article``, a reference :func:`publisher.digest.find_article` takes).

        Planned in a rehearsal (:meth:`rehearse`), so nothing is stored and no cursor
        moves.  ``to`` addresses the copy to someone else; ``test`` marks it as a test
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
        async with self.rehearse(cadence) as rehearsal:
            ident, seqs = await self._next_digest(rehearsal, cadence, reader, article)
            articles = await article_store.by_seq(rehearsal.conn, seqs)
        name, email = (reader.name, reader.email) if reader else SAMPLE_READER
        personal = personal_values(self.tokens, self.settings.site.url, reader.id if reader else 0,
                                   name, normalize_email(to) if to else email)
        rendered = render_digest(articles, self.settings, self.env, ident, cadence)
        if test:
            ident = f"test-{ident}"
            rendered = dataclasses.replace(rendered, subject=f"[TEST] {rendered.subject}")
        message = DigestMessages(rendered, settings=self.settings, digest_id=ident, date=utcnow()).build(
            personal, reader.id if reader else 0
        )
        if test:  # prepended: a header field anywhere in the header block is as good, and framing stays in one place
            message = b"X-Publisher-Test: yes\r\n" + message
        html, text = rendered.personalize(personal)
        return DigestCopy(rendered.subject, html, text, message, personal.email, len(articles))

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

    async def send_test(self, to: str, *, cadence: Cadence | None = None, article: str | None = None) -> DigestCopy:
        """Send one copy of the next digest (or of ``article``) to ``to``, marked as a test,
        through the configured transport: outside the ledger, no cursor moves.

        Raises :class:`NothingToPreview`, and DeliveryError when the transport can't be
        reached or refuses the message.
        """
        copy = await self.next_copy(cadence, article=article, to=to, test=True)
        message = copy.message if self.dkim is None else self.dkim.sign(copy.message)
        transport = make_transport(self.settings.delivery, self.settings.smtp)
        try:
            await transport.open()
            await transport.send(self.settings.delivery.from_address, copy.recipient, message)
        finally:
            await transport.close()
        return copy

    async def send(self, cadences: Sequence[Cadence], *, dry_run: bool = False) -> SendResult:
        """Plan the digests due for ``cadences`` and deliver everything still pending."""
        result = SendResult(planned=await self.plan(cadences, dry_run=dry_run))
        if not dry_run:
            result.report = await self.deliver()
        return result

    async def resend(self, reference: str, *, dry_run: bool = False) -> SendResult:
        """Send the article ``reference`` names (id, slug, URL or feed entry id) again to
        everyone whose topics it matches (``publisher resend``).

        Raises :class:`publisher.digest.UnknownArticle`.
        """
        digest, article = await plan_resend(
            self.engine, reference, utcnow(), site_url=self.settings.site.url, dry_run=dry_run
        )
        with digest_context(digest.id):
            log.info("digest %s: %sresending %s to %d subscribers", digest.id, "(dry run) " if dry_run else "",
                     article.id, digest.recipients)
        result = SendResult(planned=[digest], article_id=article.id)
        if not dry_run:
            metrics.digest_planned(digest.cadence)
            result.report = await self.deliver()
        return result

    async def deliver(
        self, *, wait: bool = False, progress: Callable[[DeliveryReport], None] | None = None
    ) -> DeliveryReport:
        """Hand every due ledger row to the transport (resumes interrupted digests).

        With ``wait``, also wait out deferred rows until every digest is finished or
        paused.  One run at a time within this process (an asyncio lock).  On
        PostgreSQL, processes and nodes share the rows through claims with a lease
        (:func:`publisher.ledger.claim`).  SQLite is one machine's: one process
        delivers at a time, by a file lock in the data directory (see
        :mod:`publisher.locks`), and takes over at once what a dead one left.
        """
        async with self._delivery_lock:
            claimant = self.claimant
            if not claimant.exclusive:
                return await self._deliver_unfinished(wait, progress, claimant)
            lock_path = self.settings.storage.data_dir / "delivery.lock"
            with exclusive(lock_path) as taken:
                if not taken:
                    log.info("another process (pid %s) is delivering; leaving the ledger to it", holder(lock_path))
                    return DeliveryReport()
                return await self._deliver_unfinished(wait, progress, claimant)

    async def cancel_digest(self, digest_id: str, reason: str = CANCELLED_BY_OPERATOR) -> tuple[int, int]:
        """Finish a digest now (``publisher digests cancel``): ``(messages cancelled, already sent)``.

        Raises :class:`DigestNotOpen` for an unknown or finished digest.
        """
        before = await ledger.state(self.engine, digest_id)
        if before is None:
            raise DigestNotOpen(f"no digest {digest_id!r} (see `publisher digests list`)")
        cancelled = await ledger.cancel(self.engine, digest_id, reason, utcnow())
        if cancelled is None:
            raise DigestNotOpen(f"digest {digest_id} is already finished: nothing to cancel")
        with digest_context(digest_id):
            log.info("digest %s: %s; %d message(s) cancelled", digest_id, reason, cancelled)
        return cancelled, before.counts.get("sent", 0)

    async def drop_from_digest(self, digest_id: str, reference: str) -> DroppedArticle:
        """Take an article (a reference :func:`publisher.digest.find_article` takes) out of the
        messages a digest has still to send; a digest left empty is cancelled.

        Raises :class:`publisher.digest.UnknownArticle` and :class:`DigestNotOpen`.
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
        to_send = sum(after.counts.get(state, 0) for state in ledger.OPEN_STATES) if after else 0
        with digest_context(digest_id):
            log.info("digest %s: dropped article %s; %d left", digest_id, found.id, len(left))
        return DroppedArticle(found.id, len(left), to_send)

    @property
    def claimant(self) -> Claimant:
        """This process's claims on deliveries; on SQLite, made under the delivery file lock."""
        lease = timedelta(seconds=self.settings.cluster.lease)
        return Claimant(self.node_id, lease, exclusive=not self.settings.database.shared)

    async def deliver_due(self) -> None:
        """The nodes' delivery job: deliver if a row can be claimed now (one cheap query if not).

        A run already going in this process is left alone: it is busy, and the next
        look finds what it did not take.
        """
        if not self._delivery_lock.locked() and await claimable(self.engine, utcnow(), self.claimant):
            await self.deliver()

    async def _deliver_unfinished(
        self, wait: bool, progress: Callable[[DeliveryReport], None] | None, claimant: Claimant
    ) -> DeliveryReport:
        if not await unfinished_digests(self.engine):
            return DeliveryReport()  # no connection to the relay when there is nothing to send
        probe = await self._reach_relay(wait)
        if probe is None:
            return DeliveryReport()
        if isinstance(probe, DeliveryError):
            return DeliveryReport(unreachable=f"cannot reach the {self._transport_name()}: {probe}")
        spare = [probe]  # the first connection is the one that just proved the relay works

        def transports() -> Transport:
            return spare.pop() if spare else make_transport(self.settings.delivery, self.settings.smtp)

        sent_before = self.sent_total

        def track(report: DeliveryReport) -> None:
            self.sent_total = sent_before + report.sent
            if progress is not None:
                progress(report)

        deliverer = Deliverer(
            self.engine, self.settings, self.env, self.tokens, transports,
            stop=self.stopping, progress=track, signer=self.dkim, claimant=claimant,
        )
        try:
            return await deliverer.run(wait=wait)
        finally:
            for unused in spare:
                await unused.close()

    def _transport_name(self) -> str:
        """Where messages go, as the operator configured it (for error messages)."""
        if self.settings.delivery.transport == "smtp":
            return f"SMTP relay at {self.settings.smtp.host}:{self.settings.smtp.port}"
        return f"maildir outbox {self.settings.delivery.outbox}"

    async def _reach_relay(self, wait: bool) -> Transport | DeliveryError | None:
        """An open transport; the error when the relay can't be reached (and not ``wait``-ing);
        None when the service stops while waiting.

        A relay that is down or misconfigured leaves every row pending, untouched (no
        attempt is counted against any subscriber); with ``wait`` it is tried again with
        growing pauses until it answers or the service stops.
        """
        pause = Backoff(self.settings.delivery.retry_base, limit=60.0)
        while True:
            probe = make_transport(self.settings.delivery, self.settings.smtp)
            try:
                await probe.open()
                return probe
            except DeliveryError as exc:
                log.error("delivery postponed: cannot reach the %s: %s", self._transport_name(), exc)
                if not wait:
                    return exc
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=pause.next_pause())
            if self.stopping.is_set():
                return None

    async def scan_and_send_instant(self) -> None:
        """The daemon's periodic job: new articles go at once to ``instant`` subscribers.

        Planning asks the store what is due, whatever this scan found: an article
        stored by the API or a feed just before a shutdown still goes out.
        """
        await self.scan()
        await self.send([Cadence.INSTANT])

    async def fetch_and_send_instant(self) -> None:
        """The daemon's upstream feeds job: like :meth:`scan_and_send_instant`."""
        if (await self.fetch_feeds()).new:
            await self.send([Cadence.INSTANT])

    async def settle(self) -> None:
        """Wait for the background jobs started so far (tests, and the CLI before it exits)."""
        while self._background:
            await asyncio.wait(set(self._background))

    def later(self, name: str, job: Callable[[], Awaitable[object]]) -> None:
        """Run ``job`` as a tracked background job (a shutdown waits for it)."""
        task = asyncio.create_task(self.run_job(name, job))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def run_job(self, name: str, job: Callable[[], Awaitable[object]]) -> None:
        """Run one scheduled job; tracked so a shutdown can wait for it, logged if it fails."""
        if self.stopping.is_set():
            return
        task = asyncio.current_task()
        if task is not None:
            self._jobs.add(task)
        try:
            await job()
        except asyncio.CancelledError:
            # Only a shutdown that outlived shutdown_timeout cancels a job; what it left
            # in the ledger is resumed at the next start, so this is news, not a crash.
            log.warning("job %s interrupted by shutdown; its work resumes at the next start", name)
        except Exception:
            log.exception("job %s failed; it will run again at its next time", name)
        finally:
            self._jobs.discard(task)  # type: ignore[arg-type]

    async def drain(self, timeout: float) -> bool:
        """Stop taking work and wait for running jobs and notices; False if they outlived ``timeout``."""
        self.stopping.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        jobs_done = True
        if self._jobs or self._background:
            _, pending = await asyncio.wait(self._jobs | self._background, timeout=timeout)
            jobs_done = not pending
        notices_done = self._notices is None or await self._notices.drain(max(0.0, deadline - loop.time()))
        pings_done = await self.hub.drain(max(0.0, deadline - loop.time()))
        return jobs_done and notices_done and pings_done
