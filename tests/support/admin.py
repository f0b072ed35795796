"""What the dashboard's tests share: a visitor for the aiohttp test client, operators, seeded
mail, and the list of the dashboard's pages read from the app's router.

:class:`AdminVisitor`, as :class:`tests.support.web_client.Visitor` (whose explicit Cookie
header it extends with ``publisher_admin``): the test site is https, so both cookies are
``Secure`` and a cookie jar would not send them to the test server's plain http.

:func:`admin_routes` and :func:`pages` are the one listing of the dashboard's routes: the
gate's tests, the every-page browser test and ``bench/dashboard.py`` (which imports it, as
other benches import ``tests.support``) all cover a page added later without a change.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import ClientResponse, web
from sqlalchemy import select

from publisher import clock
from publisher.admin import totp
from publisher.admin.model import Actor, Operator, Role
from publisher.app import Publisher
from publisher.store.schema import digests
from publisher.web.admin.gate import COOKIE as SESSION_COOKIE
from publisher.web.forms import COOKIE as CSRF_COOKIE
from subscribers import service
from subscribers.model import Cadence, Preferences, Source
from tests.support.articles import markdown_article
from tests.support.people import add_subscriber
from tests.support.web_client import Visitor

PASSWORD = "a long enough password"
READER = "r0@example.org"  # one of some_mail_sent's readers
SETUP = Actor("cli:test-setup")
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
# A path parameter: {name} (aiohttp's canonical form) or {name:regex} (publisher.urls' patterns).
PLACEHOLDER = re.compile(r"\{(\w+)(?::(?:[^{}]|\{[^{}]*\})*)?\}")


class AdminVisitor(Visitor):
    """One browser on the dashboard: both cookies, and the last page's form token."""

    session = ""

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        cookies = [f"{name}={value}" for name, value in ((CSRF_COOKIE, self.cookie), (SESSION_COOKIE, self.session)) if value]
        return ({"Cookie": "; ".join(cookies)} if cookies else {}) | (extra or {})

    def _keep(self, response: ClientResponse) -> None:
        if SESSION_COOKIE in response.cookies:
            self.session = response.cookies[SESSION_COOKIE].value

    async def get(self, path: str, **kwargs: Any) -> ClientResponse:
        response = await super().get(path, **kwargs)
        self._keep(response)
        return response

    async def post(self, path: str, data: dict[str, Any] | list[tuple[str, str]], *, csrf: bool = True,
                   headers: dict[str, str] | None = None) -> ClientResponse:
        response = await super().post(path, data, csrf=csrf, headers=headers)
        self._keep(response)
        if CSRF_COOKIE in response.cookies:
            self.cookie = response.cookies[CSRF_COOKIE].value
        if found := _TOKEN.search(await response.text()):
            self.token = found.group(1)
        return response

    async def sign_in(self, email: str, password: str = PASSWORD, *, secret: str | None = None) -> ClientResponse:
        """Through the sign-in page (and the code page, given the operator's TOTP ``secret``)."""
        await self.get("/admin/sign-in")
        response = await self.post("/admin/sign-in", {"email": email, "password": password})
        if secret is not None and response.status == 303:
            await self.get("/admin/sign-in/code")
            response = await self.post("/admin/sign-in/code", {"code": totp.code_at(secret, totp.step_at(clock.now()))})
        return response


async def add_operator(publisher: Publisher, email: str, role: Role, password: str = PASSWORD) -> Operator:
    return await publisher.operators.add(email, role, password, SETUP)


async def some_mail_sent(publisher: Publisher) -> None:
    """Something for the overview to count: three confirmed readers and one pending, the
    sample articles stored and the instant digest sent to the three (``r0``…``r2@example.org``)."""
    for n in range(3):
        await add_subscriber(publisher.engine, f"r{n}@example.org")
    await service.create(publisher.engine, "p@example.org", prefs=Preferences(), source=Source.API, confirmed=False,
                         now=clock.now())
    await publisher.intake.scan()
    await publisher.delivery.send([Cadence.INSTANT])


def admin_routes(app: web.Application) -> list[tuple[str, str, Callable[..., Any]]]:
    """Every (method, route, handler) under ``/admin/`` in ``app``'s router, in its order; the
    route in aiohttp's canonical form, its parameters by name (``/admin/subscribers/{subscriber_id}``).
    HEAD is left out: aiohttp answers it with the GET's handler."""
    found = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/admin/") and route.method != "HEAD":
            found.append((route.method, path, route.handler))
    return found


@dataclass(frozen=True)
class Page:
    """A dashboard page: its route, the role its gate asks for, and the path to load (None when
    a parameter has no value: ``missing`` names it)."""

    route: str
    role: Role
    path: str | None
    missing: tuple[str, ...] = ()


def fill(route: str, values: Mapping[str, str]) -> tuple[str | None, tuple[str, ...]]:
    """``route`` with each parameter replaced by its value (percent-encoded as one path
    segment), or None and the parameters ``values`` has no value for."""
    missing = tuple(name for name in PLACEHOLDER.findall(route) if name not in values)
    if missing:
        return None, missing
    return PLACEHOLDER.sub(lambda match: quote(values[match.group(1)], safe=""), route), ()


def pages(app: web.Application, values: Mapping[str, str]) -> list[Page]:
    """Every page of the dashboard in ``app``'s router: each GET route whose handler passed the
    gate (:func:`publisher.web.admin.gate.guarded` marks it with ``admin_role``; the sign-in
    steps have none, sign-out is a POST), its parameters filled by name from ``values``."""
    found = []
    for method, route, handler in admin_routes(app):
        if method == "GET" and hasattr(handler, "admin_role"):
            found.append(Page(route, handler.admin_role, *fill(route, values)))
    return found


async def parameter_values(publisher: Publisher) -> dict[str, str]:
    """A row that exists for each path parameter the dashboard's routes use (the house rule):
    a digest sent (of an article stored after its readers signed up), a reader, an article,
    the editor; and an article stored since, for the next digest's preview."""
    content = Path(publisher.settings.markdown_dirs[0])
    (content / "fresh-news.md").write_text(markdown_article("fresh-news", "Fresh news"), encoding="utf-8")
    await some_mail_sent(publisher)
    # And one stored since: the next digest has something to preview.
    (content / "next-news.md").write_text(markdown_article("next-news", "Next news"), encoding="utf-8")
    await publisher.intake.scan()
    async with publisher.engine.connect() as conn:
        newest = select(digests.c.id).order_by(digests.c.created_at.desc()).limit(1)
        digest_id = (await conn.execute(newest)).scalar_one()
    subscriber = await publisher.subscribers.find(READER)
    [article] = await publisher.intake.latest(1)
    editor = next(o for o in await publisher.operators.every() if o.role is Role.EDITOR)
    assert subscriber is not None
    return {"digest_id": digest_id, "subscriber_id": str(subscriber.id), "article_id": article.id, "id": str(editor.id)}
