"""The dashboard's articles and previews in a real browser: the list, an article's record with its
framed previews, and the next digest's preview page; axe-core finds no serious or critical WCAG 2.1
A/AA violation on them at 1280 and 390 px, light and dark, and none scrolls sideways.  An editor
previews a subscriber's next digest and test-sends it with the keyboard alone: it reaches the test
SMTP server marked as a test, and the ledger stays empty.  Screenshots go to ``test-artifacts/admin/articles/``.
"""

from __future__ import annotations

import email
import email.policy
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select

from publisher.admin.model import Role
from publisher.app import Publisher
from publisher.store.schema import deliveries
from tests.support import browser as browser_support
from tests.support.admin import PASSWORD, add_operator
from tests.support.people import add_subscriber
from tests.support.smtp_server import SmtpServer
from tests.system.test_admin_browser import WIDTHS, tab_to

if TYPE_CHECKING:
    from playwright.async_api import Page

pytest.importorskip("playwright.async_api")
pytestmark = browser_support.axe_test_marks("the pages are the same whichever store holds the articles", timeout=300)

ARTIFACTS = browser_support.ADMIN_ARTIFACTS / "articles"
NEWS = """---
id: "fresh-news"
title: "Fresh news for the preview"
date: 2024-07-01T09:00:00Z
tags: [climate]
---
The council approved the plan on Monday. It funds 14 cooling centres. Work starts in August.
"""


async def frames_loaded(page: Page, count: int) -> None:
    """Wait until ``count`` preview frames have loaded a document of their own."""
    await page.wait_for_function(
        "(n) => [...document.querySelectorAll('iframe')].filter((f) => f.contentDocument === null"
        " || f.contentDocument.readyState === 'complete').length >= n", arg=count,
    )
    for frame in page.frames[1:]:
        await frame.wait_for_load_state()


async def follow(page: Page, link: str, heading: str) -> None:
    """Tab to ``link``, press Enter, and wait for the page with ``heading``."""
    await tab_to(page, link)
    await page.keyboard.press("Enter")
    await page.get_by_role("heading", name=heading).wait_for()


async def frame_shots(page: Page, name: str) -> None:
    """A screenshot of each framed preview as it shows in the viewport (a full-page screenshot
    leaves out frames drawn by another renderer process, as sandboxed ones are)."""
    figures = page.locator("figure.preview")
    for n in range(await figures.count()):
        path = ARTIFACTS / f"{name}-frame-{n + 1}.png"
        await figures.nth(n).screenshot(path=str(path))
        assert path.stat().st_size > 1000


async def test_an_editor_reads_articles_and_previews_and_test_sends_a_digest_by_keyboard(
    live_site: tuple[Publisher, SmtpServer, str],
) -> None:
    publisher, smtp, site_url = live_site
    browser_support.fresh_artifacts(ARTIFACTS)
    await add_operator(publisher, "ed@example.org", Role.EDITOR)
    await add_subscriber(publisher.engine, "reader@example.org")
    # New since the reader signed up: their next digest holds it (a preview scans, as a send does).
    (Path(publisher.settings.markdown_dirs[0]) / "fresh-news.md").write_text(NEWS, encoding="utf-8")
    problems: list[str] = []

    async with browser_support.chromium_page(WIDTHS[0]) as (browser, page):
        await page.goto(site_url + "admin/")
        await tab_to(page, "email")
        await page.keyboard.type("ed@example.org")
        await page.keyboard.press("Tab")
        await page.keyboard.type(PASSWORD)
        await page.keyboard.press("Enter")
        await page.get_by_role("heading", name="Overview").wait_for()

        await follow(page, "Articles", "Articles")
        await browser_support.check_layouts(page, "01-list", problems, ARTIFACTS)
        await follow(page, "Kim Jong Un in Russia: Is the War in Ukraine Forging a New Axis?", "As the email")
        await frames_loaded(page, 4)
        assert await page.locator("iframe[sandbox='']").count() == 4
        await browser_support.check_layouts(page, "02-article", problems, ARTIFACTS)
        await frame_shots(page, "02-article")

        await follow(page, "Preview", "Preview the next digest")
        await browser_support.check_layouts(page, "03-preview-form", problems, ARTIFACTS)
        await tab_to(page, "subscriber")
        await page.keyboard.type("reader@example.org")
        await page.keyboard.press("Enter")
        await page.get_by_role("heading", name="The digest").wait_for()
        assert "to reader@example.org" in await page.inner_text("main")
        await frames_loaded(page, 2)
        await browser_support.check_layouts(page, "04-preview", problems, ARTIFACTS)
        await frame_shots(page, "04-preview")

        await tab_to(page, "to")
        assert await page.input_value("#to") == "ed@example.org"  # the operator's own address
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent.trim()") == "Send the test copy"
        await page.keyboard.press("Enter")
        await page.get_by_text("The test copy was sent.").wait_for()
        await browser_support.check_layouts(page, "05-test-sent", problems, ARTIFACTS)

        # Under the pages' own policies (no bypass): the frames load and show what they preview.
        enforced = await browser.new_context(viewport={"width": WIDTHS[0], "height": 900})
        await enforced.add_cookies(await page.context.cookies())
        strict = await enforced.new_page()
        await strict.goto(site_url + "admin/articles/2023-09-kim-russia-visit")
        await frames_loaded(strict, 4)
        shown = [await frame.content() for frame in strict.frames[1:]]
        assert len(shown) == 4 and all("Kim Jong Un in Russia" in html for html in shown)

    [sent] = smtp.messages
    message = email.message_from_bytes(sent.content, policy=email.policy.default)
    assert sent.rcpt_tos == ["ed@example.org"]
    assert message["Subject"].startswith("[TEST] ") and message["X-Publisher-Test"] == "yes"
    assert "Fresh news for the preview" in message.get_body(("plain",)).get_content()
    async with publisher.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(deliveries))).scalar_one() == 0
    assert [e.action for e in await publisher.operators.audit_page(5)][0] == "digest.test_send"
    assert problems == []
