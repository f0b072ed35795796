"""The welcome email after a confirmed sign-up (``[subscribers] welcome``), through the real pages and outbox."""

from __future__ import annotations

import asyncio
import email.message
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from publisher.app import Publisher
from publisher.config import Settings
from publisher.templating import make_loader
from publisher import clock
from subscribers import service
from subscribers.model import Preferences, Source, Status
from tests.support.outbox import link_in, outbox_messages, plain_text
from tests.support.web_client import Visitor, web_client
from tests.web.test_subscription_web import GENEROUS, confirm, sign_up, subscriber


@pytest.fixture
def make_site(make_settings: Callable[..., Settings]) -> Callable[[str], AsyncIterator[tuple[Publisher, TestClient]]]:
    """A site whose ``[subscribers]`` table ends with ``extra``."""

    async def site(extra: str = "") -> AsyncIterator[tuple[Publisher, TestClient]]:
        publisher = Publisher(make_settings(GENEROUS + extra))
        await publisher.start()
        async with web_client(publisher) as client:
            yield publisher, client
        await publisher.close()

    return site


async def mail(publisher: Publisher) -> list[email.message.EmailMessage]:
    await publisher.tasks.settle(10)
    return outbox_messages(publisher.settings)


def welcomes(messages: list[email.message.EmailMessage]) -> list[email.message.EmailMessage]:
    return [m for m in messages if m["Subject"].startswith("Welcome")]


async def signed_up(publisher: Publisher, visitor: Visitor, address: str = "ann@example.org") -> str:
    """Sign up at the page; the path of the emailed confirmation link."""
    await sign_up(visitor, address, name="Ann")
    [confirmation] = await mail(publisher)
    return link_in(confirmation, "/confirm/")


async def test_a_confirmed_subscriber_is_welcomed_once(make_site: Callable[[str], AsyncIterator[tuple[Publisher, TestClient]]]) -> None:
    async for publisher, client in make_site(""):
        publisher.settings.delivery.transactional_from = "hello@news.example.org"
        visitor = Visitor(client)
        path = await signed_up(publisher, visitor)
        assert welcomes(await mail(publisher)) == []  # signing up is not subscribing
        assert (await confirm(visitor, path)).status == 303
        [welcome] = welcomes(await mail(publisher))
        assert welcome["Subject"] == "Welcome to Test Brief"
        assert welcome["From"].addresses[0].addr_spec == "hello@news.example.org"  # the transactional stream
        assert welcome["To"].addresses[0].addr_spec == "ann@example.org"
        # The list's first mail: the reader's own links, in the body and in List-Unsubscribe (RFC 8058).
        unsubscribe = "https://news.example.org" + link_in(welcome, "/unsubscribe/")
        preferences = link_in(welcome, "/preferences/")
        assert welcome["List-Unsubscribe"].startswith(f"<{unsubscribe}>")
        assert "mailto:brief@news.example.org?subject=unsubscribe" in welcome["List-Unsubscribe"]
        assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        html = welcome.get_body(("html",))
        assert html is not None
        body = html.get_content()
        assert unsubscribe in body and preferences in body and 'lang="en"' in body
        assert "Welcome, Ann!" in plain_text(welcome)
        # The links work: they are the reader's.
        assert (await visitor.get(preferences)).status == 200
        # Confirming again (the link followed twice, the button pressed again) welcomes no one again.
        assert (await visitor.get(path)).status == 303
        assert (await visitor.post(path, {})).status == 303
        assert len(welcomes(await mail(publisher))) == 1


async def test_no_welcome_when_switched_off(make_site: Callable[[str], AsyncIterator[tuple[Publisher, TestClient]]]) -> None:
    async for publisher, client in make_site("welcome = false\n"):
        visitor = Visitor(client)
        path = await signed_up(publisher, visitor)
        assert (await confirm(visitor, path)).status == 303
        assert welcomes(await mail(publisher)) == []
        found = await subscriber(publisher, "ann@example.org")
        assert found is not None and found.status == Status.ACTIVE


async def test_the_welcome_template_can_be_overridden(
    make_site: Callable[[str], AsyncIterator[tuple[Publisher, TestClient]]], site_dir: Path,
) -> None:
    override = site_dir / "tpl" / "email"
    override.mkdir(parents=True)
    (override / "welcome.txt").write_text(
        "{% autoescape false %}Glad you are here, {{ email }}.\nLeave: {{ unsubscribe_url }}\n{% endautoescape %}\n"
    )
    async for publisher, client in make_site(""):
        publisher.env.loader = make_loader(site_dir / "tpl")  # what [site] templates_dir does
        visitor = Visitor(client)
        path = await signed_up(publisher, visitor)
        assert (await confirm(visitor, path)).status == 303
        [welcome] = welcomes(await mail(publisher))
        assert plain_text(welcome).startswith("Glad you are here, ann@example.org.")
        html = welcome.get_body(("html",))
        assert html is not None and "Choose what I receive" in html.get_content()  # the built-in HTML still


async def test_a_welcome_that_fails_never_undoes_the_confirmation(
    make_site: Callable[[str], AsyncIterator[tuple[Publisher, TestClient]]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    async for publisher, client in make_site("signup_attempts = 1\n"):
        async def broken(*_: object) -> None:
            raise OSError("relay refused the connection")

        monkeypatch.setattr(publisher.notices, "send_welcome", broken)
        visitor = Visitor(client)
        path = await signed_up(publisher, visitor)
        assert (await confirm(visitor, path)).status == 303
        await publisher.tasks.settle(10)
        found = await subscriber(publisher, "ann@example.org")
        assert found is not None and found.status == Status.ACTIVE
        assert publisher.notices.given_up == 1


async def test_of_confirmations_at_once_exactly_one_activates(publisher: Publisher) -> None:
    """The one a welcome follows: a double click (two requests at once) welcomes once."""
    pending, _ = await service.sign_up(
        publisher.engine, "ann@example.org", name="Ann", prefs=Preferences(), source=Source.WEB, now=clock.now()
    )
    outcomes = await asyncio.gather(*(service.activate(publisher.engine, pending.id, now=clock.now()) for _ in range(5)))
    assert sorted(activated for _, activated in outcomes) == [False] * 4 + [True]
    assert all(found is not None and found.status == Status.ACTIVE for found, _ in outcomes)
