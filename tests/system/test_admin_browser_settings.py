"""The settings page and the operator's own account in a real browser, with the keyboard alone:
reach the settings page (DKIM record, readiness, a webhook outbox with events owed), then one's
account; change one's password and turn the second factor on.  axe-core finds no serious or
critical WCAG 2.1 A/AA violation on any of these pages at 1280 and 390 px, light and dark, and
none scrolls sideways.  Screenshots go to ``test-artifacts/admin/settings/``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from publisher import clock
from publisher.admin import passwords, totp
from publisher.admin.model import Role
from publisher.app import Publisher
from publisher.config import Settings, WebhookSettings
from publisher.mail.dkim_keys import write_private_key
from tests.support import browser as browser_support
from tests.support.admin import PASSWORD, add_operator
from tests.support.browser import serve_site
from tests.support.people import add_subscriber
from tests.support.smtp_server import SmtpServer
from tests.system.test_admin_browser import tab_to

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

pytest.importorskip("playwright.async_api")
pytestmark = browser_support.axe_test_marks("the pages are the same whichever store holds the accounts", timeout=300)

ARTIFACTS = browser_support.ADMIN_ARTIFACTS / "settings"
NEW_PASSWORD = "a new and long enough password"
# A long URL with a token in its query: the tables must wrap it at 390 px, and mask the token.
HOOK_URL = "https://hooks.example.org/publisher/events/incoming/newsletter?token=browser-test-token-1234567890"


@pytest.fixture
async def signing_site(
    make_settings: Callable[..., Settings], site_dir: Path, rsa_key: rsa.RSAPrivateKey,
) -> AsyncIterator[tuple[Publisher, SmtpServer, str]]:
    """The live site with DKIM configured and a webhook endpoint (no receiver: its events stay owed)."""
    key_file = write_private_key(site_dir / "dkim.pem", rsa_key)

    def settings(extra: str = "") -> Settings:
        made = make_settings(extra + f'[dkim]\nselector = "news2026"\ndomain = "news.example.org"\nkey_file = "{key_file}"\n')
        made.webhooks = [WebhookSettings(url=HOOK_URL, secret_env="PUBLISHER_TEST_UNSET_SECRET")]
        return made

    async with serve_site(settings) as site:
        yield site


async def test_an_operator_reads_the_settings_and_changes_their_password_by_keyboard(
    signing_site: tuple[Publisher, SmtpServer, str],
) -> None:
    publisher, _smtp, site_url = signing_site
    browser_support.fresh_artifacts(ARTIFACTS)
    await add_operator(publisher, "vic@example.org", Role.VIEWER)
    for n in range(3):
        await add_subscriber(publisher.engine, f"reader{n}@example.org")  # events owed to the webhook
    problems: list[str] = []

    async with browser_support.chromium_page(1280) as (_browser, page):
        await page.goto(site_url + "admin/settings")
        await page.get_by_role("heading", name="Sign in").wait_for()
        await tab_to(page, "email")
        await page.keyboard.type("vic@example.org")
        await page.keyboard.press("Tab")
        await page.keyboard.type(PASSWORD)
        await page.keyboard.press("Enter")

        await page.get_by_role("heading", name="Settings", exact=True).wait_for()
        main = await page.inner_text("main")
        assert "news2026._domainkey.news.example.org" in main and "browser-test-token" not in main
        assert "subscriber.created" in main and "token=•••" in main
        await browser_support.check_layouts(page, "01-settings", problems, ARTIFACTS)

        # The footer's link to one's account, then the password form, keys only.
        await tab_to(page, "Your account", limit=400)
        await page.keyboard.press("Enter")
        await page.get_by_role("heading", name="Your account").wait_for()
        await browser_support.check_layouts(page, "02-account", problems, ARTIFACTS)
        await tab_to(page, "current-password")
        await page.keyboard.type(PASSWORD)
        await page.keyboard.press("Tab")
        await page.keyboard.type(NEW_PASSWORD)
        await page.keyboard.press("Tab")
        await page.keyboard.type(NEW_PASSWORD)
        await page.keyboard.press("Enter")
        await page.get_by_text("Your password was changed.").wait_for()
        await browser_support.check_layouts(page, "03-password-changed", problems, ARTIFACTS)
        vic = (await publisher.operators.every())[0]
        assert passwords.verify(vic.password_hash, NEW_PASSWORD)

        # The second factor: the secret shown as text, a code typed back.
        await tab_to(page, "Set up the second factor")
        await page.keyboard.press("Enter")
        await page.get_by_role("heading", name="Turn on the second factor").wait_for()
        await browser_support.check_layouts(page, "04-second-factor", problems, ARTIFACTS)
        secret = re.sub(r"\s", "", await page.inner_text("#totp-secret"))
        await tab_to(page, "totp-code")
        await page.keyboard.type(totp.code_at(secret, totp.step_at(clock.now())))
        await page.keyboard.press("Enter")
        await page.get_by_text("The second factor is on").wait_for()
        await browser_support.check_layouts(page, "05-second-factor-on", problems, ARTIFACTS)
        assert (await publisher.operators.every())[0].totp_secret == secret
    assert problems == []
