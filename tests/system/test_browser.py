"""A real browser through the whole subscriber journey: subscribe, confirm, preferences, leave.

Debian's Chromium driven by Playwright (never ``playwright install``: the browser is
the system's, ``/usr/bin/chromium``).  The daemon's web application serves on a real
port, confirmation mail goes over SMTP to an in-process aiosmtpd server, and the
confirmation link is taken from the message that server received.  A screenshot of
every page is saved under ``test-artifacts/browser/`` (or ``$PUBLISHER_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import email
import email.policy
import re
import shutil

import pytest

from publisher.app import Publisher
from subscribers import store as subscriber_store
from subscribers.model import Cadence, Status
from tests.support import browser as browser_support
from tests.support.browser import CHROMIUM
from tests.support.smtp_server import SmtpServer

ARTIFACTS = browser_support.ARTIFACTS / "browser"

playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = [
    browser_support.needs_chromium,
    pytest.mark.slow,
    # One worker runs them all, one after the other: each writes its screenshots into ARTIFACTS.
    pytest.mark.xdist_group("browser"),
]


async def test_subscribe_confirm_change_preferences_and_unsubscribe(
    live_site: tuple[Publisher, SmtpServer, str],
) -> None:
    publisher, smtp, site_url = live_site
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)

    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1000, "height": 900}, java_script_enabled=False)

            async def shot(name: str) -> None:
                path = ARTIFACTS / f"{name}.png"
                await page.screenshot(path=str(path), full_page=True)
                assert path.stat().st_size > 1000

            await page.goto(site_url)
            await shot("01-index")
            await page.get_by_role("link", name="Subscribe", exact=True).first.click()
            await page.get_by_label("Email address").fill("reader@example.org")
            await page.get_by_label("Name").fill("Rea Der")
            await page.get_by_label("A weekly digest").check()
            await page.get_by_label("geopolitics").check()
            await shot("02-subscribe")
            await page.get_by_role("button", name="Subscribe").click()
            await page.get_by_role("heading", name="Check your inbox").wait_for()
            await shot("03-check-inbox")

            await publisher.tasks.settle(10)
            [received] = smtp.messages
            assert received.rcpt_tos == ["reader@example.org"]
            message = email.message_from_bytes(received.content, policy=email.policy.default)
            body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
            confirm_url = re.search(r"http://\S+/confirm/\S+", body).group(0)  # type: ignore[union-attr]

            await page.goto(confirm_url)
            await page.get_by_role("heading", name="Confirm your subscription").wait_for()
            await page.get_by_role("button", name="Confirm my subscription").click()
            await page.get_by_text("your subscription is confirmed").wait_for()
            await shot("04-confirmed-preferences")
            assert await page.get_by_label("A weekly digest").is_checked()

            await page.get_by_label("A daily digest").check()
            await page.get_by_label("Your time zone").select_option("Asia/Seoul")
            await page.get_by_label("Send daily and weekly digests at").select_option("7")
            await page.get_by_role("button", name="Save my choices").click()
            await page.get_by_text("Your choices are saved").wait_for()
            await shot("05-preferences-saved")

            async with publisher.engine.connect() as conn:
                saved = await subscriber_store.find(conn, "reader@example.org")
            assert saved is not None and saved.status == Status.ACTIVE
            assert (saved.cadence, saved.timezone, saved.preferences.send_hour, saved.topics) == (
                Cadence.DAILY, "Asia/Seoul", 7, ("geopolitics",),
            )

            await page.get_by_role("link", name="Unsubscribe").click()
            await page.get_by_role("heading", name="Unsubscribe").wait_for()
            await shot("06-unsubscribe")
            await page.get_by_role("button", name="Unsubscribe").click()
            await page.get_by_role("heading", name="You are unsubscribed").wait_for()
            await shot("07-unsubscribed")

            # Responsive: on a phone-sized screen the form fits without sideways scrolling.
            await page.set_viewport_size({"width": 360, "height": 740})
            await page.goto(site_url + "subscribe")
            await shot("08-subscribe-phone")
            assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        finally:
            await browser.close()

    async with publisher.engine.connect() as conn:
        left = await subscriber_store.find(conn, "reader@example.org")
    assert left is not None and left.status == Status.UNSUBSCRIBED


WIDE_TABLE_ARTICLE = """---
title: "Output of every co-op"
date: 2024-05-01T08:00:00Z
---

Before the table.

## Output by co-op

| Co-op | {header} |
| :--- | {rule} |
| Sunny Hill | {cells} |
| Ridge | {cells} |

After the table.
"""


async def test_a_wide_table_scrolls_on_a_phone_in_the_page_and_the_email(
    live_site: tuple[Publisher, SmtpServer, str],
) -> None:
    """At 390 px the page and the email keep their width; the table scrolls sideways in its box,
    cut off at the edge (which shows there is more), with right-aligned numbers."""
    from publisher.mail.render import Personal, render_digest
    from publisher.store.articles import latest

    publisher, _, site_url = live_site
    columns = range(1, 10)
    (publisher.settings.content.dir / "co-op-output.md").write_text(
        WIDE_TABLE_ARTICLE.format(
            header=" | ".join(f"Year {2015 + i}" for i in columns),
            rule=" | ".join("---:" for _ in columns),
            cells=" | ".join(f"{i * 1234567:,}" for i in columns),
        ),
        encoding="utf-8",
    )
    await publisher.intake.scan()
    [article] = [a for a in await latest(publisher.engine) if a.slug == "co-op-output"]
    digest = render_digest([article], publisher.settings, publisher.env, "instant-20240501T080000-000000", "daily")
    email_html, _ = digest.personalize(Personal("Rea", "rea@example.org", site_url + "u/t", site_url + "p/t"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    measure = """(selector) => {
        const table = document.querySelector(selector);
        const box = [table, ...(function* up(e) { while ((e = e.parentElement)) yield e; })(table)]
            .find((e) => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX));
        const number = table.querySelector('tbody tr td:last-child');
        const page = document.documentElement.scrollWidth;
        if (!box) return {page, overflowing: false, align: getComputedStyle(number).textAlign};
        box.scrollLeft = 40;
        return {page, overflowing: box.scrollWidth > box.clientWidth,
                scrolled: box.scrollLeft, boxRight: box.getBoundingClientRect().right,
                align: getComputedStyle(number).textAlign};
    }"""
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 390, "height": 800}, java_script_enabled=False)
            await page.goto(site_url + "articles/co-op-output")
            on_page = await page.evaluate(measure, ".article-body table")
            await page.screenshot(path=str(ARTIFACTS / "wide-table-page-390.png"), full_page=True)
            # A fresh page: set_content on the site's page would keep the site's CSP, which blocks inline styles.
            page = await browser.new_page(viewport={"width": 390, "height": 800}, java_script_enabled=False)
            await page.set_content(email_html)
            in_email = await page.evaluate(measure, "table.facts")
            await page.screenshot(path=str(ARTIFACTS / "wide-table-email-390.png"), full_page=True)
        finally:
            await browser.close()
    for where, seen in (("page", on_page), ("email", in_email)):
        assert seen["page"] <= 390, (where, seen)
        assert seen["overflowing"] and seen["scrolled"] > 0 and seen["boxRight"] <= 390, (where, seen)
        assert seen["align"] == "right", (where, seen)
