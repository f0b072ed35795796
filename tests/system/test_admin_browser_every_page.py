"""Every page of the dashboard, as each role, in Chromium.

The pages are not listed here: they are read from the app's router
(:func:`tests.support.admin.pages`: every GET route under ``/admin/`` behind the gate), so a
page added later is covered without a change to this test, and a route with a path parameter
this test has no value for fails it, named.  The parameters are filled by name with rows that
exist (a digest that was sent, a subscriber, an article, an operator), so no page is a 404.

Signed in as a viewer, an editor and an admin in turn, each page answers 200 to the roles its
gate allows (``admin_role``) and the "Not allowed" page (403) to the others; the menu lists the
sections the role may see, and only those; no page shows a form the role would be refused, a
viewer sees no POST form but signing out and their own account's, and an editor sees the
articles' and the preview's actions (resend, unpublish, test send).  A page that answers with
something else than HTML (a chart's SVG, the CSV export) is checked for its status alone.

axe-core finds no serious or critical WCAG 2.1 A/AA violation and no page scrolls sideways: as
an admin at 1280 and 390 px in the light and the dark scheme, with a screenshot of each
(``test-artifacts/admin/every-page/<role>-<page>-<width>-<scheme>.png``); as a viewer and an
editor at 1280 px, light.  About 40 s on a two-core machine.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest
from aiohttp.test_utils import make_mocked_request

from publisher import urls
from publisher.admin.model import Role
from publisher.app import Publisher
from publisher.web.admin import gate
from publisher.web.server import create_app
from tests.support import browser as browser_support
from tests.support.admin import PASSWORD, PLACEHOLDER, READER, Page, add_operator, pages, parameter_values
from tests.support.smtp_server import SmtpServer

if TYPE_CHECKING:
    from aiohttp import web
    from playwright.async_api import BrowserContext
    from playwright.async_api import Page as Tab

pytest.importorskip("playwright.async_api")
pytestmark = browser_support.axe_test_marks("the pages are the same whichever store holds the rows", timeout=600)

ARTIFACTS = browser_support.ADMIN_ARTIFACTS / "every-page"
WIDTHS = (1280, 390)
ROLES = (Role.VIEWER, Role.EDITOR, Role.ADMIN)
EMAILS = {Role.VIEWER: "vic@example.org", Role.EDITOR: "ed@example.org", Role.ADMIN: "ann@example.org"}
# What the router can't name: a query that shows more of a page (the preview with a digest: its test send),
# visited besides the page without it.
QUERIES = {urls.ADMIN_PREVIEW.path: f"?subscriber={READER}"}


def canonical(route: urls.Route) -> str:
    """A route as the router names it: ``/admin/articles/{article_id}/resend``."""
    return PLACEHOLDER.sub(r"{\1}", route.path)


# The only POST forms a viewer may see: signing out, and their own account's (password, second factor).
VIEWER_FORMS = frozenset(canonical(route) for route in (
    urls.ADMIN_SIGN_OUT, urls.ADMIN_ACCOUNT_PASSWORD, urls.ADMIN_ACCOUNT_TOTP_NEW, urls.ADMIN_ACCOUNT_TOTP_ON,
    urls.ADMIN_ACCOUNT_TOTP_OFF))
# What an editor may do that a viewer may not, seen on the article's record and the preview.
EDITOR_FORMS = frozenset(canonical(route) for route in (urls.ADMIN_ARTICLE_RESEND, urls.ADMIN_ARTICLE_UNPUBLISH,
                                                         urls.ADMIN_PREVIEW))
# A framed preview (what readers get, shown in the dashboard's frames) says so in its CSP.
FRAMED = "frame-ancestors 'self'"



def page_name(route: str) -> str:
    """A file name from a route: ``/admin/subscribers/{subscriber_id}`` → ``subscribers-subscriber_id``."""
    name = re.sub(r"[{}]", "", route.removeprefix("/admin/")).replace(".", "-").strip("/").replace("/", "-")
    return name or "overview"


def menu_for(role: Role) -> list[list[str | None]]:
    """The menu a role should see: its sections in order, each with its link (None: still to come)."""
    return [[label, route.path if route is not None else None] for label, route, needed in gate.SECTIONS
            if role.allows(needed)]


async def form_targets(app: web.Application, actions: list[str]) -> list[tuple[str, str | None, Role | None]]:
    """Each POST form's target: (its path, the route taking it and the role its gate asks for;
    None and None where no dashboard route takes it)."""
    found = []
    for action in actions:
        match = await app.router.resolve(make_mocked_request("POST", action))
        if match.http_exception is None and match.route.resource is not None:
            found.append((action, match.route.resource.canonical, getattr(match.handler, "admin_role", None)))
        else:
            found.append((action, None, None))
    return found


async def signed_in(context: BrowserContext, site_url: str, role: Role) -> Tab:
    tab = await context.new_page()
    await tab.goto(site_url + "admin/sign-in")
    await tab.fill("#email", EMAILS[role])
    await tab.fill("#password", PASSWORD)
    await tab.keyboard.press("Enter")
    await tab.get_by_role("heading", name="Overview").wait_for()
    return tab


async def visit_as(role: Role, context: BrowserContext, site_url: str, app: web.Application,
                   every: list[Page], problems: list[str]) -> set[str]:
    """Every page as ``role``: statuses, menu, forms, axe and width (see the module); the
    routes of the POST forms the role was shown."""
    tab = await signed_in(context, site_url, role)
    shown_forms: set[str] = set()
    allowed_pages: set[str] = set()
    for page in every:
        assert page.path is not None
        where = f"{role} {page.path}"
        expected = 200 if role.allows(page.role) else 403
        response = await context.request.get(site_url.rstrip("/") + page.path, max_redirects=0)
        kind = response.headers.get("content-type", "").split(";")[0]
        if response.status != expected:
            problems.append(f"{where}: answered {response.status}, not {expected}")
            continue
        if expected == 200:
            allowed_pages.add(page.path)
        if kind != "text/html":
            continue  # an image or a download: its status is what a role may see
        await tab.goto(site_url.rstrip("/") + page.path)
        framed = FRAMED in response.headers.get("content-security-policy", "")
        if expected == 403:
            heading = await tab.locator("h1").inner_text()
            if heading != "Not allowed":
                problems.append(f"{where}: refused with the heading {heading!r}, not the 'Not allowed' page")
        if not framed:
            menu = await tab.evaluate("""[...document.querySelectorAll("nav[aria-label='Dashboard'] li")].map(
                li => [li.textContent.trim(), li.querySelector('a')?.getAttribute('href') ?? null])""")
            if menu != menu_for(role):
                problems.append(f"{where}: the menu is {menu}, not {menu_for(role)}")
        actions = await tab.evaluate("""[...document.querySelectorAll('form')].filter(f => f.method === 'post')
            .map(f => new URL(f.action).pathname)""")
        for action, route, needed in await form_targets(app, actions):
            shown_forms.add(route or action)
            if needed is None or not role.allows(needed):
                problems.append(f"{where}: a form to {action}, which the {role} role may not post to")
            elif role is Role.VIEWER and route not in VIEWER_FORMS:
                problems.append(f"{where}: a viewer is shown a form to {action}")
        name = f"{role}-{page_name(page.route)}" + ("-query" if "?" in page.path else "")
        if role is Role.ADMIN:
            await browser_support.check_layouts(tab, name, problems, ARTIFACTS, WIDTHS)
        else:
            await browser_support.check_layouts(tab, name, problems, None, WIDTHS[:1], ("light",))
    for label, link in menu_for(role):
        if link is not None and link not in allowed_pages:
            problems.append(f"{role}: the menu's {label} ({link}) is not a page the role may see")
    await tab.close()
    return shown_forms


async def test_every_page_as_each_role(live_site: tuple[Publisher, SmtpServer, str]) -> None:
    publisher, _smtp, site_url = live_site
    browser_support.fresh_artifacts(ARTIFACTS)
    for role in ROLES:
        await add_operator(publisher, EMAILS[role], role)
    app = create_app(publisher)
    listed = pages(app, await parameter_values(publisher))
    unfilled = [f"{page.route} (no value for {', '.join(page.missing)})" for page in listed if page.path is None]
    assert not unfilled, "routes with a path parameter this test can't fill (add a row and its value): " + \
        "; ".join(unfilled)
    assert len(listed) >= 10 and {Role.VIEWER, Role.ADMIN} <= {page.role for page in listed}  # it found the dashboard
    every = listed + [replace(page, path=f"{page.path}{QUERIES[page.route]}")
                      for page in listed if page.route in QUERIES]
    assert len(every) == len(listed) + len(QUERIES)
    problems: list[str] = []
    forms: dict[Role, set[str]] = {}

    async with browser_support.chromium_page(WIDTHS[0]) as (browser, _page):
        for role in ROLES:
            # Its own context: its own cookies; the CSP bypassed for axe (the test's script, not the page's).
            context = await browser.new_context(bypass_csp=True, viewport={"width": WIDTHS[0], "height": 900})
            forms[role] = await visit_as(role, context, site_url, app, every, problems)
            await context.close()

    assert problems == [], "\n".join(problems)
    assert forms[Role.VIEWER] <= VIEWER_FORMS
    assert EDITOR_FORMS <= forms[Role.EDITOR] and not EDITOR_FORMS & forms[Role.VIEWER]
    assert forms[Role.EDITOR] < forms[Role.ADMIN]  # an admin sees all an editor does, and more
