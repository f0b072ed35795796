"""The service: the steps of one pass of data, for the CLI and the daemon alike.

``Publisher`` owns the store engine, the template environment and the current
feeds.  Each method is one step (scan, build feeds, plan, deliver) and is safe to
call again: the store decides what is new, so a repeated or duplicate trigger does
nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from functools import cached_property, partial
from typing import Any
from urllib.parse import urljoin

import jinja2

from publisher import clock
from publisher.config import ConfigError, Settings
from publisher.content.model import Article, FactTable, Image, Quote, ScanResult
from publisher.delivery.ledger import Claimant
from publisher.delivery.model import DeliveryReport
from publisher.delivery.notices import Notices
from publisher.delivery.service import (
    SAMPLE_READER,
    DeliveryService,
    DigestCopy,
    DroppedArticle,
    Rehearsal,
    SendResult,
)
from publisher.digest.plan import PlannedDigest
from publisher.feeds.build import CONTENT_TEMPLATE as FEED_CONTENT_TEMPLATE
from publisher.feeds.build import FeedDocument
from publisher.feeds.shelf import FeedShelf
from publisher.feeds.websub import HubPinger
from publisher.mail.dkim import DkimSigner
from publisher.mail.render import render_digest, render_notice
from publisher.runtime import nodes
from publisher.runtime.state import NodeRole, NodeState
from publisher.secrets import load_secret_key
from publisher.sources.intake import Intake
from publisher.store import meta
from publisher.store.articles import IngestResult
from publisher.store.db import create_engine, upgrade
from publisher.tasks import Job, TaskTracker
from publisher.templating import make_environment, make_loader, template_error
from subscribers.model import Cadence
from subscribers.service import SubscriberService
from subscribers.tokens import Tokens

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return clock.now()  # delegate (wave 2): the CLI, the API and the tests still import it


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


# The notices (publisher.delivery.notices) and the values each one's template gets besides site, subject and email.
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
        # Every background task of this process (jobs, notices, pings): one drain at shutdown.
        self.tasks = TaskTracker()
        # This process as a node (role, last scan, messages sent): set by the runtime and
        # the services, read by /readyz and the heartbeat.
        self.node = NodeState(nodes.node_id(clock.now()))
        self._tokens: Tokens | None = None
        self._notices: Notices | None = None
        self.shelf = FeedShelf(settings, self.engine, self.env, self.tasks)
        self.intake = Intake(
            settings, self.engine, self.shelf, later=self.tasks.later, on_scanned=self.node.scanned,
            on_next_release=self._next_release, on_new_articles=self._send_instant,
        )
        self.subscribers = SubscriberService(self.engine, lambda: self.settings, lambda: self.notices)
        # Told when the earliest scheduled article is due (None: none) after every ingest:
        # the leader's schedule wakes up then (publisher.runtime.scheduler).
        self.on_next_release: Callable[[datetime | None], None] | None = None
        self.delivery = DeliveryService(
            self.engine, settings, self.env, tokens=lambda: self.tokens, dkim=lambda: self.dkim,
            stopping=self.tasks.stopping, scan_into=lambda conn: self.intake.scan_markdown(into=conn),
            node_id=self.node.node_id, on_sent=self._count_sent,
        )

    def _count_sent(self, count: int) -> None:
        self.node.sent_total += count

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
        self.delivery.settings = self.settings
        self.env.loader = make_loader(settings.site.templates_dir)
        self.shelf.settings = self.intake.settings = self.settings
        self.__dict__["dkim"] = signer  # replaces the cached property's value
        # Each service keeps the settings it runs on; its next run reads the new ones.
        self.shelf.hub.settings = self.settings.websub
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
            self._notices = Notices(self.settings, self.env, self.tokens, self.tasks, signer=self.dkim)
        return self._notices

    def check_content(self) -> list[ScanResult]:  # delegate (wave 2)
        return self.intake.check_content()

    async def scan(self) -> IngestResult:  # delegate (wave 2)
        return await self.intake.scan()

    async def fetch_feeds(self) -> IngestResult:  # delegate (wave 2)
        return await self.intake.fetch_feeds()

    async def accept(self, articles: Sequence[Article], *, withdrawn: Sequence[str] = ()) -> IngestResult:  # delegate (wave 2)
        return await self.intake.accept(articles, withdrawn=withdrawn)

    async def unpublish(self, article_id: str) -> bool:  # delegate (wave 2)
        return await self.intake.unpublish(article_id)

    async def publish_due(self) -> None:  # delegate (wave 2)
        await self.intake.publish_due()

    def _next_release(self, at: datetime | None) -> None:
        """Intake's report of the next scheduled article, passed to whoever listens now (the leader's schedule)."""
        if self.on_next_release is not None:
            self.on_next_release(at)

    async def _send_instant(self) -> None:
        await self.send([Cadence.INSTANT])

    @property
    def feeds(self) -> dict[str, FeedDocument]:  # delegate (wave 2)
        return self.shelf.docs

    @feeds.setter
    def feeds(self, docs: dict[str, FeedDocument]) -> None:  # delegate (wave 2)
        self.shelf.docs = docs

    @property
    def hub(self) -> HubPinger:  # delegate (wave 2)
        return self.shelf.hub

    @hub.setter
    def hub(self, hub: HubPinger) -> None:  # delegate (wave 2)
        self.shelf.hub = hub

    @property
    def static_files_problem(self) -> str | None:  # delegate (wave 2)
        return self.shelf.static_files_problem

    async def build_feeds(self, *, announce: bool = True) -> None:  # delegate (wave 2)
        await self.shelf.build(announce=announce)

    async def refresh_feeds(self) -> None:  # delegate (wave 2)
        await self.shelf.refresh()

    # --- delivery: the DeliveryService (self.delivery) does it ---------------------------------

    @property
    def claimant(self) -> Claimant:  # delegate (wave 2)
        return self.delivery.claimant

    async def plan(self, *a: Any, **k: Any) -> list[PlannedDigest]:  # delegate (wave 2)
        return await self.delivery.plan(*a, **k)

    def rehearse(self, cadence: Cadence) -> AbstractAsyncContextManager[Rehearsal]:  # delegate (wave 2)
        return self.delivery.rehearse(cadence)

    async def why_nothing_due(self, cadence: Cadence) -> str:  # delegate (wave 2)
        return await self.delivery.why_nothing_due(cadence)

    async def next_copy(self, *a: Any, **k: Any) -> DigestCopy:  # delegate (wave 2)
        return await self.delivery.next_copy(*a, **k)

    async def send_test(self, *a: Any, **k: Any) -> DigestCopy:  # delegate (wave 2)
        return await self.delivery.send_test(*a, **k)

    async def send(self, *a: Any, **k: Any) -> SendResult:  # delegate (wave 2)
        return await self.delivery.send(*a, **k)

    async def resend(self, *a: Any, **k: Any) -> SendResult:  # delegate (wave 2)
        return await self.delivery.resend(*a, **k)

    async def deliver(self, *a: Any, **k: Any) -> DeliveryReport:  # delegate (wave 2)
        return await self.delivery.deliver(*a, **k)

    async def deliver_due(self) -> None:  # delegate (wave 2)
        await self.delivery.deliver_due()

    async def cancel_digest(self, *a: Any, **k: Any) -> tuple[int, int]:  # delegate (wave 2)
        return await self.delivery.cancel_digest(*a, **k)

    async def drop_from_digest(self, *a: Any, **k: Any) -> DroppedArticle:  # delegate (wave 2)
        return await self.delivery.drop_from_digest(*a, **k)

    async def scan_and_send_instant(self) -> None:
        from publisher.runtime import scheduler  # the schedule's jobs; a command need not load APScheduler
        await scheduler.scan_and_send_instant(self)  # delegate (wave 2)

    async def fetch_and_send_instant(self) -> None:
        from publisher.runtime import scheduler
        await scheduler.fetch_and_send_instant(self)  # delegate (wave 2)

    @property
    def node_id(self) -> str:
        return self.node.node_id  # delegate (wave 2)

    @property
    def role(self) -> NodeRole:
        return self.node.role  # delegate (wave 2)

    @property
    def last_scan_at(self) -> datetime | None:
        return self.node.last_scan_at  # delegate (wave 2)

    @last_scan_at.setter
    def last_scan_at(self, at: datetime | None) -> None:
        self.node.last_scan_at = at  # delegate (wave 2)

    @property
    def scheduler_running(self) -> bool:
        return self.node.scheduler_running  # delegate (wave 2)

    @scheduler_running.setter
    def scheduler_running(self, running: bool) -> None:
        self.node.scheduler_running = running  # delegate (wave 2)

    @property
    def sent_total(self) -> int:
        return self.node.sent_total  # delegate (wave 2)

    @sent_total.setter
    def sent_total(self, total: int) -> None:
        self.node.sent_total = total  # delegate (wave 2)

    @property
    def stopping(self) -> asyncio.Event:
        return self.tasks.stopping  # delegate (wave 2)

    async def settle(self) -> None:
        await self.tasks.settle()  # delegate (wave 2)

    def later(self, name: str, job: Job) -> None:
        self.tasks.later(name, job)  # delegate (wave 2)

    async def run_job(self, name: str, job: Job) -> None:
        await self.tasks.run(name, job)  # delegate (wave 2)

    async def drain(self, timeout: float) -> bool:
        return await self.tasks.drain(timeout)  # delegate (wave 2)
