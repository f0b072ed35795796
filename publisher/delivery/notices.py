"""One-to-one emails a person triggers: the confirmation link, the link to preferences, the welcome.

They are sent in the background, off the request that caused them, so the sign-up
page answers in the same time whether or not an address is known and whether or not
the relay is slow (no enumeration by timing, no request held by SMTP).  A notice
that fails is logged with the subscriber's id (never the address); the person can
ask again from the page.  The page has already said "check your inbox", so work that
fails on the database (a full disk, a failover) is tried again with backoff
(``[subscribers] signup_attempts``, ``signup_retry_seconds``); what still fails is
logged as an error and counted in :attr:`Notices.given_up`, which ``/readyz`` shows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from functools import partial

import jinja2
from sqlalchemy.exc import SQLAlchemyError

from publisher import clock, i18n
from publisher.config import Settings
from publisher.logs import first_line
from publisher.mail.dkim import DkimSigner
from publisher.mail.message import build_notice
from publisher.mail.render import render_notice
from publisher.mail.transport import DeliveryError, make_transport
from publisher.tasks import TaskTracker
from subscribers.model import Subscriber
from subscribers.tokens import Purpose, Tokens

log = logging.getLogger(__name__)

Work = Callable[[], Coroutine[object, object, None]]  # makes a fresh attempt each call


class Notices:
    def __init__(
        self, settings: Settings, env: jinja2.Environment, tokens: Tokens, tasks: TaskTracker, *,
        signer: DkimSigner | None = None,
    ) -> None:
        self.settings = settings
        self.env = env
        self.tokens = tokens
        self.tasks = tasks  # the process's tracker: a shutdown waits for the notices in flight
        self.signer = signer
        self.given_up = 0  # background work abandoned after every attempt failed

    @property
    def _t(self) -> i18n.Translator:
        """The subjects' language: the site's (it may change with a reload)."""
        return i18n.Translator(self.settings.site.language)

    @property
    def confirm_max_age(self) -> float:
        """Seconds a confirmation link stays valid."""
        return self.settings.subscribers.confirm_within_hours * 3600

    def confirm_later(self, subscriber: Subscriber) -> None:
        self.later(partial(self.send_confirmation, subscriber), "sending a confirmation")

    async def send_confirmation(self, subscriber: Subscriber) -> None:
        url = self.tokens.link(self.settings.site.url, Purpose.CONFIRM, subscriber.id, subscriber.email)
        hours = self.settings.subscribers.confirm_within_hours
        await self._send(
            subscriber, "confirm", self._t.gettext("Confirm your subscription to %(site)s", site=self.settings.site.title),
            {"confirm_url": url, "valid_hours": f"{hours:g}"},
        )

    async def send_manage_link(self, subscriber: Subscriber) -> None:
        """The answer to a sign-up by an address that is already subscribed: its preferences link."""
        await self._send_preferences_link(
            subscriber, "manage", self._t.gettext("Your subscription to %(site)s", site=self.settings.site.title)
        )

    async def send_preferences_link(self, subscriber: Subscriber) -> None:
        """The link a reader asked for on the "lost your link?" form; it says just that."""
        await self._send_preferences_link(
            subscriber, "preferences_link",
            self._t.gettext("Your preferences link for %(site)s", site=self.settings.site.title),
        )

    async def _send_preferences_link(self, subscriber: Subscriber, template: str, subject: str) -> None:
        url = self.tokens.link(self.settings.site.url, Purpose.PREFERENCES, subscriber.id, subscriber.email)
        await self._send(subscriber, template, subject, {"preferences_url": url})

    async def send_welcome(self, subscriber: Subscriber) -> None:
        """The welcome after a confirmed sign-up (``[subscribers] welcome``): the list's first
        mail, so it carries the reader's unsubscribe and preferences links, and List-Unsubscribe."""
        unsubscribe_url, preferences_url = self.tokens.links(
            self.settings.site.url, subscriber.id, subscriber.email, Purpose.UNSUBSCRIBE, Purpose.PREFERENCES
        )
        await self._send(
            subscriber, "welcome", self._t.gettext("Welcome to %(site)s", site=self.settings.site.title),
            {"unsubscribe_url": unsubscribe_url, "preferences_url": preferences_url, "name": subscriber.name},
            unsubscribe_url=unsubscribe_url,
        )

    def later(self, work: Work, what: str) -> None:
        """Run ``work()`` after the current request has been answered; drained at shutdown.

        ``what`` names the work in the log ("storing a sign-up"); never put an
        address in it.
        """
        self.tasks.spawn(self._attempts(work, what))

    async def _attempts(self, work: Work, what: str) -> None:
        """``work()``, tried again with doubling waits while the database or the network fails."""
        attempts = self.settings.subscribers.signup_attempts
        wait = self.settings.subscribers.signup_retry_seconds
        for attempt in range(1, attempts + 1):
            try:
                await work()
                return
            except (SQLAlchemyError, OSError) as exc:
                if attempt == attempts:
                    self.given_up += 1
                    log.error("%s failed after %d attempts, given up: %s", what, attempts, first_line(exc))
                    return
                log.warning("%s failed (attempt %d of %d), retrying in %g s: %s",
                            what, attempt, attempts, wait, first_line(exc))
                await asyncio.sleep(wait)
                wait *= 2
            except Exception:  # a bug: trying again would fail the same way
                self.given_up += 1
                log.exception("%s failed", what)
                return

    async def _send(
        self, subscriber: Subscriber, template: str, subject: str, extra: dict[str, object], *,
        unsubscribe_url: str | None = None,
    ) -> None:
        site = self.settings.site
        context = {"site": site, "subject": subject, "email": subscriber.email, **extra}
        try:
            html, text = render_notice(self.env, template, context)
            message = build_notice(
                settings=self.settings, to_name=subscriber.name, to_email=subscriber.email,
                subject=subject, html=html, text=text, date=clock.now(), unsubscribe_url=unsubscribe_url,
            )
            if self.signer is not None:
                message = self.signer.sign(message)
            transport = make_transport(self.settings.delivery, self.settings.smtp)
            await transport.open()
            try:
                sender = self.settings.delivery.transactional_from or self.settings.delivery.from_address
                await transport.send(sender, subscriber.email, message)
            finally:
                await transport.close()
        except (DeliveryError, ValueError, OSError) as exc:
            log.warning("%s email to subscriber %d not sent: %s", template, subscriber.id, exc)
            return
        log.info("%s email sent to subscriber %d", template, subscriber.id)
