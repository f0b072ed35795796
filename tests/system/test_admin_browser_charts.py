"""The overview's charts in a real browser: signed in with the keyboard alone, the overview shows
every chart beside its table, each image drawn (under the page's own CSP, not bypassed), and a
chart opened on its own is styled by its ``<style>`` (allowed by hash) with no CSP complaint, in
the light and the dark scheme.  axe-core finds no serious or critical violation at 1280 and
390 px in either scheme, and the page never scrolls sideways.  Screenshots go to
``test-artifacts/admin/charts/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import insert

from publisher import clock, urls
from publisher.admin.model import Role
from publisher.app import Publisher
from publisher.delivery import gate_store
from publisher.store.schema import deliveries, digests
from subscribers.model import Cadence
from tests.support import browser as browser_support
from tests.support.admin import PASSWORD, add_operator
from tests.support.browser import CHROMIUM
from tests.support.people import add_subscriber
from tests.support.smtp_server import SmtpServer

if TYPE_CHECKING:
    from playwright.async_api import Page

playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = browser_support.axe_test_marks("the charts are the same whichever store holds the counts", timeout=300)

ARTIFACTS = browser_support.ADMIN_ARTIFACTS / "charts"
WIDTHS = (1280, 390)
LIGHT_TEXT, DARK_TEXT = "rgb(31, 41, 51)", "rgb(228, 231, 235)"  # the charts' text: site.css's --fg of each scheme


async def seed(publisher: Publisher) -> None:
    """Something in every chart: readers, a sent digest, a paused one half done, a paused provider."""
    ids = [(await add_subscriber(publisher.engine, f"r{n}@example.org")).id for n in range(6)]
    await publisher.intake.scan()
    await publisher.delivery.send([Cadence.INSTANT])
    now = clock.now()
    async with publisher.engine.begin() as conn:
        await conn.execute(insert(digests).values(id="daily-paused", cadence="daily", article_seqs="[]",
                                                  status="paused", pause_reason="by the test", created_at=now))
        await conn.execute(insert(deliveries), [
            {"digest_id": "daily-paused", "subscriber_id": i, "state": "sent" if n < 2 else "pending", "attempts": 0,
             "updated_at": now} for n, i in enumerate(ids)])
    await gate_store.pause(publisher.engine, "google", "complaints 0.50% reached 0.30%", now)


async def images_drawn(page: Page) -> dict[str, bool]:
    return dict(await page.evaluate(
        "[...document.querySelectorAll('main img')].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])"))


async def test_the_overview_shows_its_charts_beside_their_tables_in_both_schemes(
    live_site: tuple[Publisher, SmtpServer, str],
) -> None:
    publisher, _smtp, site_url = live_site
    browser_support.fresh_artifacts(ARTIFACTS)
    await add_operator(publisher, "vic@example.org", Role.VIEWER)
    await seed(publisher)
    problems: list[str] = []
    refused: list[str] = []

    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            # The page's CSP as it is: the charts must be drawn under it.
            context = await browser.new_context(viewport={"width": WIDTHS[0], "height": 900})
            page = await context.new_page()
            page.on("console", lambda message: refused.append(message.text)
                    if "Content Security Policy" in message.text else None)
            await page.goto(site_url + "admin/")
            await page.get_by_role("heading", name="Sign in").wait_for()
            await page.keyboard.press("Tab")  # the skip link, then the fields in order
            while await page.evaluate("document.activeElement.id") != "email":
                await page.keyboard.press("Tab")
            await page.keyboard.type("vic@example.org")
            await page.keyboard.press("Tab")
            await page.keyboard.type(PASSWORD)
            await page.keyboard.press("Enter")
            await page.get_by_role("heading", name="Overview").wait_for()
            await page.wait_for_load_state("networkidle")

            drawn = await images_drawn(page)
            assert drawn == {urls.ADMIN_CHART.fixed(chart=name): True for name in urls.ADMIN_CHARTS}
            for name in urls.ADMIN_CHARTS:
                alt = await page.get_attribute(f"img[src$='/{name}.svg']", "alt")
                assert alt is not None and alt.endswith("the numbers are in the table next to it")
            # Side by side at 1280 px: the chart (its title on top) is level with its table's box, to its right.
            for name in ("subscribers", "messages"):
                beside = await page.evaluate(
                    """name => { const figure = document.querySelector(`img[src$='/${name}.svg']`).closest('figure');
                                 const table = figure.closest('.figure-pair').querySelector('.table-wrap');
                                 const a = figure.getBoundingClientRect(), b = table.getBoundingClientRect();
                                 return a.left >= b.right && Math.abs(a.top - b.top) < 40; }""", name)
                assert beside, name

            # A chart opened on its own: its <style> applies (the text is the scheme's, not the default black).
            for scheme, colour in (("light", LIGHT_TEXT), ("dark", DARK_TEXT)):
                await page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
                await page.goto(site_url + "admin/charts/complaints.svg")
                fill = await page.evaluate("getComputedStyle(document.querySelector('text')).fill")
                assert fill == colour, (scheme, fill)
                await page.screenshot(path=str(ARTIFACTS / f"complaints-alone-{scheme}.png"))
            assert await page.locator("text").filter(has_text="pause 0.30%").count() == 1

            # axe is the test's script, not the page's: it needs the CSP bypassed (same session).
            axe_context = await browser.new_context(bypass_csp=True, storage_state=await context.storage_state(),
                                                    viewport={"width": WIDTHS[0], "height": 900})
            axe_page = await axe_context.new_page()
            await axe_page.goto(site_url + "admin/")
            await axe_page.get_by_role("heading", name="Overview").wait_for()
            await axe_page.wait_for_load_state("networkidle")
            await browser_support.check_layouts(axe_page, "overview", problems, ARTIFACTS, WIDTHS)
        finally:
            await browser.close()
    assert refused == []
    assert problems == []
