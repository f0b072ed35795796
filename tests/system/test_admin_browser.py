"""The dashboard in a real browser, with the keyboard alone: sign in with the password and the
second factor, reach the overview, the audit log and the operators page; axe-core finds no
serious or critical WCAG 2.1 A/AA violation on any of them at 1280 and 390 px, in the light and
the dark scheme, and no page scrolls sideways.  Screenshots go to ``test-artifacts/admin/walk/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from publisher import clock
from publisher.admin import totp
from publisher.admin.model import Role
from publisher.app import Publisher
from tests.support import browser as browser_support
from tests.support.admin import PASSWORD, SETUP, add_operator
from tests.support.smtp_server import SmtpServer

if TYPE_CHECKING:
    from playwright.async_api import Page

pytest.importorskip("playwright.async_api")
pytestmark = browser_support.axe_test_marks("the pages are the same whichever store holds the accounts", timeout=300)

ARTIFACTS = browser_support.ADMIN_ARTIFACTS / "walk"
WIDTHS = (1280, 390)


async def focused(page: Page) -> str:
    """What has the keyboard focus: its id, or its text."""
    return str(await page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))


async def tab_to(page: Page, text: str, limit: int = 40) -> None:
    """Press Tab until the element with ``text`` (or that id) has the focus."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await focused(page) == text:
            return
    raise AssertionError(f"{text!r} can't be reached with Tab")


async def check(page: Page, name: str, problems: list[str]) -> None:
    await browser_support.check_layouts(page, name, problems, ARTIFACTS, WIDTHS)


async def test_an_admin_signs_in_with_a_code_and_walks_the_dashboard_by_keyboard(
    live_site: tuple[Publisher, SmtpServer, str],
) -> None:
    publisher, _smtp, site_url = live_site
    browser_support.fresh_artifacts(ARTIFACTS)
    await add_operator(publisher, "ann@example.org", Role.ADMIN)
    await add_operator(publisher, "vic@example.org", Role.VIEWER)
    secret = await publisher.operators.enable_totp("ann@example.org", SETUP)
    problems: list[str] = []

    async with browser_support.chromium_page(WIDTHS[0]) as (_browser, page):
        await page.goto(site_url + "admin/")
        await page.get_by_role("heading", name="Sign in").wait_for()
        assert page.url == site_url + "admin/sign-in?next=/admin/"
        await check(page, "01-sign-in", problems)
        await tab_to(page, "email")
        await page.keyboard.type("ann@example.org")
        await page.keyboard.press("Tab")
        await page.keyboard.type("not the password")
        await page.keyboard.press("Enter")
        await page.get_by_role("alert").wait_for()
        await check(page, "02-sign-in-failed", problems)

        await tab_to(page, "password")
        await page.keyboard.type(PASSWORD)
        await page.keyboard.press("Enter")
        await page.get_by_role("heading", name="Sign in: code").wait_for()
        await check(page, "03-code", problems)
        await tab_to(page, "code")
        await page.keyboard.type(totp.code_at(secret, totp.step_at(clock.now())))
        await page.keyboard.press("Enter")

        await page.get_by_role("heading", name="Overview").wait_for()
        assert "Signed in as ann@example.org, admin." in await page.inner_text("main")
        await check(page, "04-overview", problems)

        await tab_to(page, "Audit log")
        await page.keyboard.press("Enter")
        await page.get_by_role("heading", name="Audit log").wait_for()
        assert await page.get_by_role("cell", name="sign_in.failed").count() == 1
        await check(page, "05-audit", problems)

        await tab_to(page, "Operators")
        await page.keyboard.press("Enter")
        await page.get_by_role("heading", name="Operators", exact=True).wait_for()
        await check(page, "06-operators", problems)
        # Change the viewer's role with the keyboard: its select, then its button.
        await tab_to(page, f"role-{(await publisher.operators.every())[1].id}")
        await page.keyboard.press("ArrowDown")  # viewer → editor, without opening the list
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")
        await page.get_by_text("The role was changed.").wait_for()
        await check(page, "07-role-changed", problems)
        assert [o.role for o in await publisher.operators.every()] == [Role.ADMIN, Role.EDITOR]

        await tab_to(page, "Sign out")
        await page.keyboard.press("Enter")
        await page.get_by_role("heading", name="Sign in").wait_for()
    assert problems == []
