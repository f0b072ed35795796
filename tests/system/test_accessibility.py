"""Every public page and every email kind, rendered for real, checked by axe-core in Chromium.

The site runs on a real port (:func:`tests.support.browser.serve_site`); the pages are reached
the way a reader reaches them (the sign-up form, the links in the emails), and the emails are
the HTML parts the SMTP server received: the notices, and a digest sent to an instant
subscriber (whose "view in browser" page is checked too); a digest of every article is
rendered and personalized as the sender does, with its hidden preheader.  Each one is checked at 700 px and at 390 px, in the
light and the dark colour scheme, against axe-core's WCAG 2.0/2.1 A and AA rules; a violation
of impact "serious" or "critical" fails the test, naming the page, the rule and the elements,
as do headings out of order (axe's best-practice rules for headings and landmarks) and a page
wider than the screen.  The counts of every state (WCAG violations by impact, structure rules
by rule) go to ``test-artifacts/accessibility/axe-counts.json``, beside a screenshot of each.

The test adds an article in Arabic to the sample content, so a right-to-left block inside an
English page and digest is checked too, and that it is laid out from the right.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from collections import Counter
from email.message import EmailMessage
from collections.abc import Callable
from typing import TYPE_CHECKING

import lxml.html
import pytest

from publisher import clock
from publisher.app import Publisher
from publisher.config import Settings
from publisher.content.language import direction
from publisher.store.articles import latest
from subscribers import service
from subscribers.model import Cadence, Preferences, Source
from tests.support import browser as browser_support
from tests.support.browser import BLOCKING_IMPACTS, CHROMIUM, Violation, axe_violations
from tests.support.people import add_subscriber
from tests.support.smtp_server import SmtpServer

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = browser_support.axe_test_marks("pages and emails are the same whichever store holds the site", timeout=600)

ARTIFACTS = browser_support.ARTIFACTS / "accessibility"
WIDTHS = (700, 390)
# Best practices outside the WCAG tags that the issue asks for too: headings in order under one
# <h1>, and a page's content inside its landmarks.  Not for an email: a mail client shows it inside
# its own page, whose landmarks (its <main>) it must not duplicate.
EMAIL_STRUCTURE_RULES = ("heading-order", "empty-heading", "page-has-heading-one")
PAGE_STRUCTURE_RULES = (*EMAIL_STRUCTURE_RULES, "landmark-one-main", "region")
SCHEMES = ("light", "dark")

ARABIC_ARTICLE = """---
title: "المدينة تزرع أربعة آلاف شجرة"
subtitle: "خطة للظل والماء قبل ذروة الصيف"
author: "مكتب الأخبار المحلية"
date: 2024-06-05T08:00:00Z
lang: ar
tags: climate
takeaways:
  - "اثنتا عشرة مكتبة تصبح مراكز تبريد"
  - "تنبيهات نصية عند صدور تحذير من الحر"
---

صوّت مجلس المدينة على خطة تجعل المكتبات مراكز تبريد وتضيف آلاف الأشجار.

## الأرقام

| الحي | الأشجار |
| :--- | ---: |
| الشمال | 1,200 |
| الجنوب | 2,800 |

> الحر هو أخطر ظاهرة جوية في مدينتنا.
> -- مسؤولة الصحة العامة
"""


# The widths of the left and right borders of the element a selector finds, as the browser laid it out.
QUOTE_SIDES = """(selector) => {
    const style = getComputedStyle(document.querySelector(selector));
    return {left: style.borderLeftWidth, right: style.borderRightWidth};
}"""


def html_part(message_bytes: bytes) -> str:
    message = email.message_from_bytes(message_bytes, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("html",))
    assert body is not None, "the email has no HTML part"
    return str(body.get_content())


def link_in(message_bytes: bytes, path: str) -> str:
    """The first link to ``path`` (e.g. "confirm/") in the email's text part."""
    message = email.message_from_bytes(message_bytes, policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return re.search(rf"http://\S+/{path}\S+", text).group(0)  # type: ignore[union-attr]


class Checker:
    """Runs axe on one state of a page at every width and scheme, keeping what it found."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, dict[str, int]]] = {}
        self.blocking: list[str] = []
        self.structure: list[str] = []

    async def check(self, page: Page, name: str, structure: tuple[str, ...] = PAGE_STRUCTURE_RULES) -> None:
        for width in WIDTHS:
            await page.set_viewport_size({"width": width, "height": 900})
            # Reflow (WCAG 1.4.10): nothing makes the whole page scroll sideways; a wide table
            # scrolls inside its own box.
            scroll_width = await page.evaluate("document.documentElement.scrollWidth")
            if scroll_width > width:
                self.blocking.append(f"{name} {width}px: the page is {scroll_width}px wide and scrolls sideways")
            for scheme in SCHEMES:
                await page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
                state = f"{name} {width}px {scheme}"
                self.record(state, await axe_violations(page), await axe_violations(page, structure))
                await page.screenshot(path=str(ARTIFACTS / f"{name}-{width}-{scheme}.png"), full_page=True)
        await page.emulate_media(color_scheme="light")

    def record(self, state: str, violations: list[Violation], structure: list[Violation]) -> None:
        """Keep the elements of each WCAG violation by impact and of each structure rule broken,
        and the descriptions of what fails the test."""
        by_impact, by_rule = Counter[str](), Counter[str]()
        for violation in violations:
            by_impact[violation.impact] += len(violation.targets)
            if violation.impact in BLOCKING_IMPACTS:
                self.blocking.append(f"{state}: {violation.describe()}")
        for violation in structure:
            by_rule[violation.rule] += len(violation.targets)
            self.structure.append(f"{state}: {violation.describe()}")
        self.counts[state] = {"wcag": dict(by_impact), "structure": dict(by_rule)}


async def email_page(browser: Browser, html: str) -> Page:
    """A fresh page holding an email's HTML, as a webmail client's frame would."""
    page = await browser.new_page(viewport={"width": WIDTHS[0], "height": 900})
    await page.set_content(html)
    return page


async def test_every_page_and_email_passes_axe_in_both_schemes_and_widths(
    live_site: tuple[Publisher, SmtpServer, str],
) -> None:
    from publisher.mail.render import Personal, render_digest

    publisher, smtp, site_url = live_site
    browser_support.fresh_artifacts(ARTIFACTS)
    # An instant subscriber from before the Arabic article: its digest is sent for real, and read online.
    await add_subscriber(publisher.engine, "instant@example.org")
    (publisher.settings.content.dir / "ashjar.md").write_text(ARABIC_ARTICLE, encoding="utf-8")
    await publisher.intake.scan()
    articles = await latest(publisher.engine)
    assert "ar" in {article.lang for article in articles}
    checker = Checker()

    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            # The pages forbid scripts (Content-Security-Policy); axe is the test's, not the page's.
            context = await browser.new_context(bypass_csp=True, viewport={"width": WIDTHS[0], "height": 900})
            page = await context.new_page()

            await page.goto(site_url)
            await checker.check(page, "index")
            for article in articles:
                await page.goto(f"{site_url}articles/{article.slug}")
                await checker.check(page, f"article-{article.lang or 'site'}-{article.slug}"[:60])
            # The Arabic article's page is mirrored: its quote's rule on the right, where it starts.
            await page.goto(f"{site_url}articles/ashjar")
            assert await page.evaluate(QUOTE_SIDES, "article[lang=ar][dir=rtl] blockquote") == {"left": "0px", "right": "4px"}

            await page.goto(site_url + "subscribe")
            await checker.check(page, "subscribe")
            await page.get_by_role("button", name="Subscribe").click()  # no address: the form's errors
            await page.get_by_role("alert").wait_for()
            await checker.check(page, "subscribe-errors")
            await page.get_by_label("Email address").fill("reader@example.org")
            await page.get_by_role("button", name="Subscribe").click()
            await page.get_by_role("heading", name="Check your inbox").wait_for()
            await checker.check(page, "check-inbox")

            await publisher.tasks.settle(10)
            [confirm_mail] = smtp.messages
            await page.goto(link_in(confirm_mail.content, "confirm/"))
            await checker.check(page, "confirm")
            await page.get_by_role("button", name="Confirm my subscription").click()
            await page.get_by_text("your subscription is confirmed").wait_for()
            await checker.check(page, "preferences-confirmed")

            await publisher.tasks.settle(10)
            [welcome_mail] = smtp.messages[1:]
            unsubscribe_url = link_in(welcome_mail.content, "unsubscribe/")
            await page.goto(site_url + "subscribe")  # once more: the "already subscribed" email
            await page.get_by_label("Email address").fill("reader@example.org")
            await page.get_by_role("button", name="Subscribe").click()
            await page.get_by_role("heading", name="Check your inbox").wait_for()
            await page.goto(site_url + "preferences")
            await checker.check(page, "preferences-request")
            await page.get_by_label("Email address").fill("reader@example.org")
            await page.get_by_role("button", name="Email me a link").click()
            await page.get_by_role("heading", name="Check your inbox").wait_for()
            await publisher.tasks.settle(10)
            [manage_mail, link_mail] = smtp.messages[2:]

            await page.goto(unsubscribe_url)
            await checker.check(page, "unsubscribe")
            await page.get_by_role("button", name="Unsubscribe").click()
            await page.get_by_role("heading", name="You are unsubscribed").wait_for()
            await checker.check(page, "unsubscribed")

            await page.goto(site_url + "archive")
            await checker.check(page, "archive")
            await page.goto(site_url + "tags/geopolitics/")
            await checker.check(page, "tag")
            await page.goto(site_url + "confirm/not-a-real-token-at-all")
            await checker.check(page, "link-problem")
            response = await page.goto(site_url + "articles/no-such-article")
            assert response is not None and response.status == 404
            await checker.check(page, "error-404")

            await publisher.delivery.send([Cadence.INSTANT])
            await publisher.tasks.settle(10)
            [sent_digest] = [m for m in smtp.messages if m.rcpt_tos == ["instant@example.org"]]
            await page.goto(link_in(sent_digest.content, "digests/"))
            await checker.check(page, "digest-view-in-browser", EMAIL_STRUCTURE_RULES)
            await page.goto(site_url + "digests/")
            await checker.check(page, "past-digests")

            digest = render_digest(articles, publisher.settings, publisher.env, "daily-20240605T080000-000000", "daily")
            digest_html, _ = digest.personalize(
                Personal("Rea", "reader@example.org", site_url + "u/t", site_url + "p/t")
            )
            assert digest.preheader and digest.preheader in digest_html
            page = await email_page(browser, digest_html)
            assert await page.evaluate(QUOTE_SIDES, "td.article[lang=ar][dir=rtl] .quote") == {"left": "0px", "right": "4px"}
            assert await page.evaluate(QUOTE_SIDES, "td.article:not([lang]) .quote") == {"left": "4px", "right": "0px"}
            # The same digest from a site whose language reads right to left: mirrored as a whole.
            settings = publisher.settings.model_copy(deep=True)
            settings.site.language = "ar"
            rtl_html, _ = render_digest(
                articles, settings, publisher.env, "daily-20240605T080000-000000", "daily"
            ).personalize(Personal("Rea", "reader@example.org", site_url + "u/t", site_url + "p/t"))
            page = await email_page(browser, rtl_html)
            assert await page.evaluate(QUOTE_SIDES, "td.article .quote") == {"left": "0px", "right": "4px"}
            for name, html in (
                ("email-digest", digest_html), ("email-digest-sent", html_part(sent_digest.content)),
                ("email-digest-rtl-site", rtl_html), ("email-confirm", html_part(confirm_mail.content)),
                ("email-welcome", html_part(welcome_mail.content)), ("email-manage", html_part(manage_mail.content)),
                ("email-preferences-link", html_part(link_mail.content)),
            ):
                (ARTIFACTS / f"{name}.html").write_text(html, encoding="utf-8")
                root = lxml.html.document_fromstring(html)
                expected = ("ar", "rtl") if name.endswith("rtl-site") else ("en", "ltr")
                assert (root.get("lang"), root.get("dir")) == expected, name
                await checker.check(await email_page(browser, html), name, EMAIL_STRUCTURE_RULES)
        finally:
            await browser.close()

    (ARTIFACTS / "axe-counts.json").write_text(json.dumps(checker.counts, indent=1, sort_keys=True), encoding="utf-8")
    assert not checker.blocking, "serious or critical accessibility problems (axe-core, reflow):\n" + "\n".join(checker.blocking)
    assert not checker.structure, "headings or landmarks out of order:\n" + "\n".join(checker.structure)


@pytest.mark.parametrize("language", ["de", "fr", "es", "ar"])
async def test_every_language_passes_axe_on_its_pages_and_emails(
    make_settings: Callable[..., Settings], language: str
) -> None:
    """The site in each shipped language besides English: translated text changes lengths (a
    German word, an Arabic line read from the right), so the layout is checked again, with the
    same rules, on the pages and the emails a reader meets first."""
    checker = Checker()
    (ARTIFACTS / language).mkdir(parents=True, exist_ok=True)
    async with browser_support.serve_site(make_settings, language) as (publisher, smtp, site_url):
        await add_subscriber(publisher.engine, "instant@example.org")
        (publisher.settings.content.dir / "ashjar.md").write_text(ARABIC_ARTICLE, encoding="utf-8")
        await publisher.intake.scan()  # new to the subscriber: an instant digest
        await publisher.delivery.send([Cadence.INSTANT])
        newcomer = await service.create(publisher.engine, "new@example.org", prefs=Preferences(), source=Source.API,
                                        confirmed=False, now=clock.now())
        await publisher.notices.send_confirmation(newcomer)
        await publisher.tasks.settle(10)
        articles = await latest(publisher.engine)
        async with playwright_api.async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            try:
                context = await browser.new_context(bypass_csp=True, viewport={"width": WIDTHS[0], "height": 900})
                page = await context.new_page()
                pages = {"index": "", "article": f"articles/{articles[0].slug}", "subscribe": "subscribe",
                         "archive": "archive", "tag": "tags/geopolitics/", "past-digests": "digests/"}
                for name, path in pages.items():
                    await page.goto(site_url + path)
                    root = lxml.html.document_fromstring(await page.content())
                    assert (root.get("lang"), root.get("dir")) == (language, direction(language)), name
                    await checker.check(page, f"{language}/{name}")
                await page.goto(site_url + "subscribe")
                await page.locator("form button[type=submit]").click()  # no address: the form's errors
                await page.get_by_role("alert").wait_for()
                await checker.check(page, f"{language}/subscribe-errors")
                for message in smtp.messages:
                    html = html_part(message.content)
                    root = lxml.html.document_fromstring(html)
                    assert (root.get("lang"), root.get("dir")) == (language, direction(language))
                    kind = "digest" if message.rcpt_tos == ["instant@example.org"] else "confirm"
                    await checker.check(await email_page(browser, html), f"{language}/email-{kind}",
                                        EMAIL_STRUCTURE_RULES)
            finally:
                await browser.close()
    assert len(smtp.messages) == 2
    assert not checker.blocking, "serious or critical accessibility problems (axe-core, reflow):\n" + "\n".join(checker.blocking)
    assert not checker.structure, "headings or landmarks out of order:\n" + "\n".join(checker.structure)
