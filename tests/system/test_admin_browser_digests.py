"""The digests pages in a real browser: the list, a digest being sent and its cancel
confirmation pass axe-core (no serious or critical WCAG 2.1 A/AA violation) at 1280 and 390 px,
light and dark, without sideways scroll (screenshots in ``test-artifacts/admin/``); an admin
pauses and resumes the running digest with the keyboard alone, and a paused digest's messages
are not sent; and under the page's real Content-Security-Policy the live progress follows the
messages as the test sends them, without a reload.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from publisher import clock
from publisher.admin.model import Role
from publisher.app import Publisher
from publisher.delivery import ledger
from publisher.digest.plan import PlanOptions, plan
from publisher.store.ingest import ingest
from subscribers.model import Cadence
from tests.support import browser as browser_support
from tests.support.admin import PASSWORD, add_operator
from tests.support.articles import seed_like
from tests.support.people import add_subscriber
from tests.support.smtp_server import SmtpServer
from tests.system.test_admin_browser import WIDTHS, tab_to

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page

playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = browser_support.axe_test_marks("the pages are the same whichever store holds the digests", timeout=300)

ARTIFACTS = browser_support.ADMIN_ARTIFACTS / "digests"
READERS = 5
STATUS = "[data-status]"


async def signed_in(context: BrowserContext, site_url: str, path: str) -> Page:
    page = await context.new_page()
    await page.goto(site_url + path)
    await page.fill("#email", "ann@example.org")
    await page.fill("#password", PASSWORD)
    await page.keyboard.press("Enter")
    await page.get_by_role("heading", level=1).wait_for()
    return page


async def status_reads(page: Page, words: str) -> None:
    """Wait until the progress's status line says ``words`` (the page changes it, or it never does)."""
    await page.wait_for_function("(words) => document.querySelector('[data-status]').textContent.trim() === words",
                                 arg=words, timeout=20_000)


async def test_an_admin_pauses_and_resumes_a_running_digest_by_keyboard_and_watches_it_go_out(
    live_site: tuple[Publisher, SmtpServer, str],
) -> None:
    publisher, smtp, site_url = live_site
    for n in range(READERS):
        await add_subscriber(publisher.engine, f"reader{n}@example.org")
    await ingest(publisher.engine, [seed_like(id="fresh", slug="fresh", title="A fresh article")], clock.now())
    [digest] = await plan(publisher.engine, Cadence.INSTANT, clock.now(), PlanOptions(max_articles=5))
    await add_operator(publisher, "ann@example.org", Role.ADMIN)
    detail = f"admin/digests/{digest.id}"
    browser_support.fresh_artifacts(ARTIFACTS)
    problems: list[str] = []

    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(browser_support.CHROMIUM), args=["--no-sandbox"])
        try:
            # axe is the test's script, not the page's: this context lets it past the CSP.
            audited = await browser.new_context(bypass_csp=True, viewport={"width": WIDTHS[0], "height": 900})
            page = await signed_in(audited, site_url, "admin/digests")
            await page.get_by_role("heading", name="Digests").wait_for()
            await browser_support.check_layouts(page, "01-list", problems, ARTIFACTS, WIDTHS)

            await page.get_by_role("link", name=digest.id).click()
            await page.get_by_role("heading", name=f"Digest {digest.id}").wait_for()
            await browser_support.check_layouts(page, "02-sending", problems, ARTIFACTS, WIDTHS)

            await tab_to(page, "pause")
            await page.keyboard.press("Enter")
            await page.get_by_text("The digest is paused").wait_for()
            await browser_support.check_layouts(page, "03-paused", problems, ARTIFACTS, WIDTHS)
            assert (await publisher.delivery.digest_state(digest.id)).status == "paused"  # type: ignore[union-attr]
            await publisher.delivery.deliver()  # every node's delivery job: it takes none of a paused digest's
            assert smtp.messages == []

            await tab_to(page, "cancel")
            await page.keyboard.press("Enter")
            await page.get_by_role("heading", name=f"Cancel digest {digest.id}").wait_for()
            await browser_support.check_layouts(page, "04-cancel-confirm", problems, ARTIFACTS, WIDTHS)
            await tab_to(page, "Keep it")
            await page.keyboard.press("Enter")
            await page.get_by_role("heading", name=f"Digest {digest.id}").wait_for()

            await tab_to(page, "resume")
            await page.keyboard.press("Enter")
            await page.get_by_text("The digest is resumed").wait_for()
            assert (await publisher.delivery.digest_state(digest.id)).status == "sending"  # type: ignore[union-attr]

            # The live progress under the page's own CSP (no bypass): our script, polling our JSON.
            live = await browser.new_context(viewport={"width": WIDTHS[1], "height": 900})
            watched = await signed_in(live, site_url, detail)
            refused: list[str] = []
            watched.on("console", lambda message: refused.append(message.text)
                       if "Content Security Policy" in message.text else None)
            assert await watched.inner_text(STATUS) == f"Sending: 0 of {READERS} sent."
            overview = await live.new_page()
            await overview.goto(site_url + "admin/")
            await overview.get_by_role("heading", name="Overview").wait_for()

            # Two messages recorded as sent (as another node would), then the rest by a real run.
            claimed = await ledger.claim(publisher.engine, digest.id, 0, 2, clock.now(), publisher.delivery.claimant)
            await ledger.record(publisher.engine, [], clock.now(), sent={digest.id: [r.subscriber_id for r in claimed]})
            await status_reads(watched, f"Sending: 2 of {READERS} sent.")
            assert await watched.eval_on_selector("progress", "bar => [bar.value, bar.max]") == [2, READERS]
            await status_reads(overview, f"Sending: 2 of {READERS} sent.")
            await publisher.delivery.deliver()
            assert len(smtp.messages) == READERS - 2
            await status_reads(watched, f"Finished: {READERS} of {READERS} sent.")
            assert await watched.eval_on_selector("progress", "bar => [bar.value, bar.max]") == [READERS, READERS]
            assert await watched.get_attribute("[data-status]", "aria-live") == "polite"
            assert refused == []
        finally:
            await browser.close()
    assert problems == []
