"""The composition root: the one place that builds the services and wires them together.

A command or the daemon makes one :class:`Publisher` from the settings; it holds the
store engine, the template environment, the background-task tracker, this process's
node facts, and the services named for the step of the data's way they do:

* ``intake`` (:mod:`publisher.sources.intake`): articles in, from Markdown, upstream
  feeds and the API; scheduled ones released;
* ``shelf`` (:mod:`publisher.feeds.shelf`): the current feed documents, built from the
  store, written as static files, announced to the WebSub hub;
* ``delivery`` (:mod:`publisher.delivery.service`): digests planned, rendered and sent;
* ``subscribers`` (:mod:`subscribers.service`): the subscriber lifecycle and its reads;
* ``webhooks`` (:mod:`publisher.webhooks.dispatch`): the events' outbox sent to ``[[webhooks]]``.
* ``clicks`` (:mod:`publisher.tracking.service`): the counted redirects of digest links.
* ``operators`` (:mod:`publisher.admin.service`): the dashboard's accounts, sessions and audit log.

The services get their collaborators here, explicitly, and report what the node
should know through callbacks wired here (a finished scan, messages sent, the next
scheduled article).  Front ends (CLI, web, API) and the runtime call the services;
besides the composition, this object answers only the few reads about the process and
its store that belong to no service (the live nodes, the readiness probe), so no front
end opens a connection itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

from publisher import clock, i18n
from publisher.config import ConfigError, Settings
from publisher.delivery.providers import Providers
from publisher.delivery.service import DeliveryService
from publisher.feeds.shelf import FeedShelf
from publisher.runtime import nodes
from publisher.runtime.state import NodeState
from publisher.secrets import load_secret_key
from publisher.sources.intake import Intake
from publisher.store import meta
from publisher.store.db import create_engine, ping, upgrade
from publisher.tasks import TaskTracker
from publisher.templating import make_environment, make_loader
from publisher.tracking.service import ClickTracking
from publisher.webhooks.dispatch import Webhooks
from subscribers.model import Cadence
from subscribers.service import SubscriberService

if TYPE_CHECKING:  # imported when first used: a command that signs, links or notifies nothing loads none
    from publisher.admin.service import OperatorService
    from publisher.delivery.notices import Notices
    from publisher.delivery.report import DigestReport
    from publisher.mail.dkim import DkimSigner
    from subscribers.tokens import Tokens

log = logging.getLogger(__name__)


class Publisher:
    """The services of one process, built from ``settings`` (see the module's docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_engine(settings.database.url, busy_timeout=settings.database.busy_timeout)
        self.env = make_environment(settings.site.templates_dir, settings.site.language)
        # Every background task of this process (jobs, notices, pings): one drain at shutdown.
        self.tasks = TaskTracker()
        # This process as a node (role, last scan, messages sent): set by the runtime and
        # the services, read by /readyz, the heartbeat and `publisher status`.
        self.node = NodeState(nodes.node_id(clock.now()))
        self._tokens: Tokens | None = None
        self._notices: Notices | None = None
        self._operators: OperatorService | None = None
        self.shelf = FeedShelf(settings, self.engine, self.env, self.tasks)
        self.intake = Intake(
            settings, self.engine, self.shelf, later=self.tasks.later, on_scanned=self.node.scanned,
            on_next_release=self._next_release, on_new_articles=self._send_instant,
        )
        # The mailbox providers recipients are grouped by (built-in table and [providers]).
        self.providers = Providers(settings.providers)
        self.subscribers = SubscriberService(self.engine, settings, lambda: self.notices)
        self.delivery = DeliveryService(
            self.engine, settings, self.env, tokens=lambda: self.tokens, dkim=lambda: self.dkim,
            providers=lambda: self.providers,
            stopping=self.tasks.stopping, scan_into=lambda conn: self.intake.scan_markdown(into=conn),
            node_id=self.node.node_id, on_sent=self._count_sent,
        )
        self.webhooks = Webhooks(self.engine, settings, self.node.node_id, self.tasks.stopping)
        self.clicks = ClickTracking(self.engine, settings, lambda: self.tokens)
        # Told when the earliest scheduled article is due (None: none) after every ingest:
        # the leader's schedule wakes up then (publisher.runtime.scheduler).
        self.on_next_release: Callable[[datetime | None], None] | None = None

    def _count_sent(self, count: int) -> None:
        self.node.sent_total += count

    def reconfigure(self, settings: Settings) -> list[str]:
        """Use ``settings`` from now on (SIGHUP); the settings that only a restart can change.

        Each service builds what a run needs from its ``settings`` when the run starts, so a new rate, schedule, site
        title or template directory applies to the next job, while the job in progress
        finishes as it started.  The database, the data directory and the listening
        address stay until a restart.  Raises ValueError (the DKIM key can't be used)
        before changing anything, and ConfigError naming each template file and line that
        can't be used (:func:`template_problems`): the running templates stay.
        """
        from publisher.mail.dkim import DkimSigner
        from publisher.template_check import template_problems

        signer = DkimSigner.from_settings(settings.dkim)
        if problems := template_problems(settings, make_environment(settings.site.templates_dir, settings.site.language)):
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
        i18n.install(self.env, settings.site.language)
        self.providers = Providers(self.settings.providers)
        self.__dict__["dkim"] = signer  # replaces the cached property's value
        # Each service keeps the settings it runs on; its next run reads the new ones.
        for service in (self.intake, self.shelf, self.delivery, self.subscribers, self.webhooks, self.clicks):
            service.settings = self.settings
        self.shelf.hub.settings = self.settings.websub
        if self._operators is not None:
            self._operators.settings = self.settings
        if self._notices is not None:  # it reads these when it sends
            self._notices.settings, self._notices.signer = self.settings, signer
        return [key for key, (before, after) in fixed.items() if before != after]

    async def start(self) -> None:
        """Apply migrations (idempotent) so every command sees the current schema; warn
        when [site] url is not the one the store's articles were published under."""
        await upgrade(self.engine)
        # Before any command records an event: an endpoint added to the config since the
        # daemon last ran gets the events of this command too.
        await self.webhooks.register()
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
        self.delivery.close()
        await self.webhooks.close()
        await self.engine.dispose()

    # --- reads about the process and its store (no service owns them) ---

    async def live_nodes(self) -> list[nodes.Node]:
        """The nodes with a recent heartbeat, wherever they run on this database (``publisher status``)."""
        return await nodes.live(self.engine, clock.now())

    async def database_answers(self) -> None:
        """Raise the driver's error unless the database answers a query (``/readyz``)."""
        await ping(self.engine)

    async def database_takes_writes(self) -> None:
        """Raise the driver's error unless the database takes a write (``/readyz``): a full
        disk or a read-only replica still answers queries."""
        await meta.put(self.engine, meta.READINESS_PROBE, clock.now().isoformat())

    async def provider_pauses(self) -> dict[str, bool]:
        """Every provider a breaker paused: True while paused, False once resumed (``/metrics``)."""
        from publisher.delivery import gate_store

        return {row.provider: row.reason is not None for row in await gate_store.pauses(self.engine)}

    async def digest_report(self, digest_id: str) -> DigestReport | None:
        """One digest's messages by state and mailbox provider (``publisher report``, ``/api/digests/…``);
        None if there is no such digest."""
        from publisher.delivery.report import digest_report

        return await digest_report(self.engine, digest_id, self.providers)

    async def open_by_provider(self) -> dict[str, dict[str, int]]:
        """The messages of the digests not finished, by mailbox provider and state (``/metrics``)."""
        from publisher.delivery.report import open_by_provider

        return await open_by_provider(self.engine, self.providers)

    @property
    def operators(self) -> OperatorService:
        """The dashboard's accounts, sessions and audit log (:mod:`publisher.admin`): built at first
        use, so a command that signs nobody in never loads the password hasher."""
        if self._operators is None:
            from publisher.admin.service import OperatorService

            self._operators = OperatorService(self.engine, self.settings)
        return self._operators

    @property
    def tokens(self) -> Tokens:
        if self._tokens is None:
            from subscribers.tokens import Tokens

            self._tokens = Tokens(load_secret_key(self.settings.storage.data_dir))
        return self._tokens

    @cached_property
    def dkim(self) -> DkimSigner | None:
        """The DKIM signer (None when ``[dkim]`` is not configured); the key is read once."""
        if not self.settings.dkim.enabled:
            return None  # without importing the signer and its crypto library
        from publisher.mail.dkim import DkimSigner

        return DkimSigner.from_settings(self.settings.dkim)

    @property
    def notices(self) -> Notices:
        if self._notices is None:
            from publisher.delivery.notices import Notices

            self._notices = Notices(self.settings, self.env, self.tokens, self.tasks, signer=self.dkim)
        return self._notices

    def _next_release(self, at: datetime | None) -> None:
        """Intake's report of the next scheduled article, passed to whoever listens now (the leader's schedule)."""
        if self.on_next_release is not None:
            self.on_next_release(at)

    async def _send_instant(self) -> None:
        await self.delivery.send([Cadence.INSTANT])
