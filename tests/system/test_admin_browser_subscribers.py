"""The subscribers pages in a real browser: the list, a search, a record and the CSV import,
each with axe-core finding no serious or critical violation at 1280 and 390 px, light and
dark, and no sideways scroll; an admin searches, opens a record and imports a CSV file with
the keyboard alone, and reads the import's line-by-line report.  Screenshots go to
``test-artifacts/admin/subscribers/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from publisher.admin.model import Role
from publisher.app import Publisher
from subscribers.model import Cadence
from tests.support import browser as browser_support
from tests.support.admin import PASSWORD, add_operator
from tests.support.people import add_subscriber
from tests.support.smtp_server import SmtpServer
from tests.system.test_admin_browser import WIDTHS, tab_to
from tests.web.test_admin_subscribers import ledger_row

if TYPE_CHECKING:
    from playwright.async_api import Page

pytest.importorskip("playwright.async_api")
pytestmark = browser_support.axe_test_marks("the pages are the same whichever store holds the subscribers", timeout=300)

ARTIFACTS = browser_support.ADMIN_ARTIFACTS / "subscribers"
IMPORT = (
    "email,name,cadence\n"
    "new.reader@example.org,New Reader,daily\n"
    "not an address,Broken,daily\n"
    "late@example.org,Late,hourly\n"
)


async def press(page: Page, key: str, times: int = 1) -> None:
    for _ in range(times):
        await page.keyboard.press(key)


async def test_an_admin_searches_opens_a_record_and_imports_a_csv_by_keyboard(
    live_site: tuple[Publisher, SmtpServer, str], tmp_path: Path,
) -> None:
    publisher, _smtp, site_url = live_site
    browser_support.fresh_artifacts(ARTIFACTS)
    await add_operator(publisher, "ann@example.org", Role.ADMIN)
    for n in range(12):
        await add_subscriber(publisher.engine, f"reader{n:02d}@example.org", name=f"Reader {n}", cadence=Cadence.DAILY)
    anna = await add_subscriber(publisher.engine, "anna.long-address.for-the-phone-width@example.org",
                                name="Anna <b>Bold</b>", cadence=Cadence.WEEKLY)
    await ledger_row(publisher, anna.id, "failed", "550 5.1.1 <anna.long-address.for-the-phone-width@example.org>: "
                                                   "Recipient address rejected: User unknown in virtual mailbox table")
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text(IMPORT, encoding="utf-8")
    problems: list[str] = []

    async with browser_support.chromium_page(WIDTHS[0]) as (_browser, page):
        await page.goto(site_url + "admin/sign-in")
        await page.fill("#email", "ann@example.org")
        await page.fill("#password", PASSWORD)
        await page.keyboard.press("Enter")
        await page.get_by_role("heading", name="Overview").wait_for()

        await tab_to(page, "Subscribers")
        await page.keyboard.press("Enter")
        await page.get_by_role("heading", name="Subscribers", exact=True).wait_for()
        await browser_support.check_layouts(page, "01-list", problems, ARTIFACTS)

        await tab_to(page, "q")
        await page.keyboard.type("ANNA")
        await page.keyboard.press("Enter")
        found = page.get_by_role("table", name="Addresses starting with “anna”, by address")
        await found.wait_for()
        assert await found.get_by_role("row").count() == 2  # the header and Anna
        await browser_support.check_layouts(page, "02-search", problems, ARTIFACTS)

        await tab_to(page, anna.email)
        await page.keyboard.press("Enter")
        await page.get_by_role("heading", name=f"Subscriber #{anna.id}").wait_for()
        record = await page.inner_text("main")
        assert "Anna <b>Bold</b>" in record and "User unknown" in record  # shown as text, not markup
        await browser_support.check_layouts(page, "03-record", problems, ARTIFACTS)

        await tab_to(page, "All subscribers")
        await page.keyboard.press("Enter")
        await page.get_by_role("heading", name="Subscribers", exact=True).wait_for()
        await tab_to(page, "Import subscribers from a CSV file")
        await page.keyboard.press("Enter")
        await page.get_by_role("heading", name="Import subscribers").wait_for()
        await browser_support.check_layouts(page, "04-import", problems, ARTIFACTS)

        await tab_to(page, "file")
        await page.locator("#file:focus").set_input_files(str(csv_file))  # the focused input: the OS's file chooser
        await tab_to(page, "Import")
        await page.keyboard.press("Enter")
        await page.get_by_role("table", name="Rejected lines").wait_for()
        report = await page.inner_text("main")
        assert "2 line(s) rejected" in report
        rejected = page.get_by_role("table", name="Rejected lines")
        assert [await cell.inner_text() for cell in await rejected.locator("tbody td:first-child").all()] == ["3", "4"]
        await browser_support.check_layouts(page, "05-import-report", problems, ARTIFACTS)
    assert await publisher.subscribers.find("new.reader@example.org") is not None
    assert problems == []
