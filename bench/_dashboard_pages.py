"""The dashboard's pages as a signed-in operator loads them, for ``bench/dashboard.py``.

Which pages: :func:`tests.support.admin.pages`, the listing the dashboard's tests use
(every GET route of the daemon's app whose handler passed the gate), imported rather
than copied, as other benches import ``tests.support``: one listing, so a page the
tests cover is a page the bench times.  A page added to the dashboard later is timed
with no change here, its path parameters filled by name (:data:`PARAMETERS`) from
what the bench seeded; a parameter without a value is reported, not guessed.  The
charts are pages of their own (one plain route each).

How: the app is served on a free port of this machine (as ``publisher run`` serves it)
and :class:`Operator` signs in through the sign-in form, as a browser does, keeping the
CSRF and session cookies itself (they are ``Secure`` on an https site; the bench's is
http, but a cookie jar also refuses a bare IP address).
"""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from publisher.app import Publisher

HOST = "127.0.0.1"
# The path parameters the dashboard's routes use (the house rule), and what the bench fills each with.
PARAMETERS = {
    "digest_id": "the digest being sent (the newest seeded)",
    "subscriber_id": "a subscriber in the middle of the id range",
    "article_id": "a stored sample article",
    "id": "the bench's operator",
}
OPERATOR_EMAIL = "bench@example.org"
OPERATOR_PASSWORD = "the bench operator's password"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def served(publisher: Publisher) -> AsyncIterator[tuple[web.Application, str]]:
    """The daemon's web app for ``publisher`` on a free local port: (app, its base URL)."""
    from publisher.web.server import create_app

    app = create_app(publisher)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, HOST, port).start()
    try:
        yield app, f"http://{HOST}:{port}"
    finally:
        await runner.cleanup()


async def add_operator(publisher: Publisher) -> str:
    """The bench's admin (once per database): its id, the ``id`` of the operators' routes."""
    from publisher.admin.model import Actor, Role

    found = next((o for o in await publisher.operators.every() if o.email == OPERATOR_EMAIL), None)
    if found is None:
        found = await publisher.operators.add(OPERATOR_EMAIL, Role.ADMIN, OPERATOR_PASSWORD, Actor("cli:bench"))
    return str(found.id)


class Operator:
    """One signed-in browser on the dashboard at ``base`` (its two cookies kept by hand)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies: dict[str, str] = {}
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())

    async def __aenter__(self) -> Operator:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.session.close()

    def _keep(self, response: aiohttp.ClientResponse) -> None:
        self.cookies.update({name: morsel.value for name, morsel in response.cookies.items()})

    def _headers(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{name}={value}" for name, value in self.cookies.items())}

    async def sign_in(self, email: str = OPERATOR_EMAIL, password: str = OPERATOR_PASSWORD) -> None:
        async with self.session.get(self.base + "/admin/sign-in", headers=self._headers()) as form:
            self._keep(form)
            token = _TOKEN.search(await form.text())
        if token is None:
            raise RuntimeError("the sign-in page has no form token")
        data = {"email": email, "password": password, "csrf_token": token.group(1)}
        async with self.session.post(self.base + "/admin/sign-in", data=data, headers=self._headers(),
                                     allow_redirects=False) as signed:
            self._keep(signed)
            if signed.status != 303 or "publisher_admin" not in self.cookies:
                raise RuntimeError(f"signing in as {email} answered {signed.status}")

    async def get(self, path: str) -> int:
        """Load ``path`` whole, as a browser would; its status."""
        async with self.session.get(self.base + path, headers=self._headers(), allow_redirects=False) as response:
            await response.read()
            return response.status

    async def download(self, path: str) -> bool:
        """Whether ``path`` answers with a file to save (``Content-Disposition: attachment``)."""
        async with self.session.get(self.base + path, headers=self._headers(), allow_redirects=False) as response:
            return response.headers.get("Content-Disposition", "").startswith("attachment")

    async def first_byte(self, path: str) -> int:
        """Request ``path`` until its body's first bytes arrive, then hang up (a download of every
        subscriber streams for as long as the list is long: what an operator waits for is its start)."""
        async with self.session.get(self.base + path, headers=self._headers(), allow_redirects=False) as response:
            await response.content.readany()
            response.close()
            return response.status
