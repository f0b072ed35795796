"""One-to-one emails a person triggers: the confirmation link, the link to preferences.

They are sent in the background, off the request that caused them, so the sign-up
page answers in the same time whether or not an address is known and whether or not
the relay is slow (no enumeration by timing, no request held by SMTP).  A notice
that fails is logged with the subscriber's id (never the address); the person can
ask again from the page.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime

import jinja2

from publisher.config import Settings
from publisher.mail.dkim import DkimSigner
from publisher.mail.message import build_notice
from publisher.mail.render import render_notice
from publisher.mail.transport import DeliveryError, make_transport
from subscribers.model import Subscriber
from subscribers.tokens import Purpose, Tokens

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class Notices:
    def __init__(
        self, settings: Settings, env: jinja2.Environment, tokens: Tokens, *,
        clock: Callable[[], datetime] = _now, signer: DkimSigner | None = None,
    ) -> None:
        self.settings = settings
        self.env = env
        self.tokens = tokens
        self.clock = clock
        self.signer = signer
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def confirm_max_age(self) -> float:
        """Seconds a confirmation link stays valid."""
        return self.settings.subscribers.confirm_within_hours * 3600

    def confirm_later(self, subscriber: Subscriber) -> None:
        self.later(self.send_confirmation(subscriber))

    async def send_confirmation(self, subscriber: Subscriber) -> None:
        url = self.tokens.link(self.settings.site.url, Purpose.CONFIRM, subscriber.id, subscriber.email)
        hours = self.settings.subscribers.confirm_within_hours
        await self._send(
            subscriber, "confirm", f"Confirm your subscription to {self.settings.site.title}",
            {"confirm_url": url, "valid_hours": f"{hours:g}"},
        )

    async def send_manage_link(self, subscriber: Subscriber) -> None:
        """The answer to a sign-up by an address that is already subscribed: its preferences link."""
        await self._send_preferences_link(subscriber, "manage", f"Your subscription to {self.settings.site.title}")

    async def send_preferences_link(self, subscriber: Subscriber) -> None:
        """The link a reader asked for on the "lost your link?" form; it says just that."""
        await self._send_preferences_link(
            subscriber, "preferences_link", f"Your preferences link for {self.settings.site.title}"
        )

    async def _send_preferences_link(self, subscriber: Subscriber, template: str, subject: str) -> None:
        url = self.tokens.link(self.settings.site.url, Purpose.PREFERENCES, subscriber.id, subscriber.email)
        await self._send(subscriber, template, subject, {"preferences_url": url})

    async def drain(self, timeout: float) -> bool:
        """Wait for notices still being sent; False if some outlived ``timeout``."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        return not pending

    def later(self, work: Coroutine[object, object, None]) -> None:
        """Run ``work`` after the current request has been answered; drained at shutdown."""
        task = asyncio.create_task(self._logged(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _logged(work: Coroutine[object, object, None]) -> None:
        try:
            await work
        except Exception:
            log.exception("background work for a subscriber failed")

    async def _send(self, subscriber: Subscriber, template: str, subject: str, extra: dict[str, object]) -> None:
        site = self.settings.site
        context = {"site": site, "subject": subject, "email": subscriber.email, **extra}
        try:
            html, text = render_notice(self.env, template, context)
            message = build_notice(
                settings=self.settings, to_name=subscriber.name, to_email=subscriber.email,
                subject=subject, html=html, text=text, date=self.clock(),
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
