"""A test client for the public pages that handles the CSRF cookie and form token by hand.

The test site's URL is https, so the CSRF cookie is ``Secure`` and a cookie jar would
not send it over the test server's plain http; an explicit Cookie header keeps what is
sent visible in each test.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import ClientResponse, DummyCookieJar, web
from aiohttp.test_utils import TestClient, TestServer

from publisher.app import Publisher
from publisher.web import api
from publisher.web.forms import COOKIE
from publisher.web.keys import PUBLISHER
from publisher.web.server import create_app

API_TOKEN = "test-api-token-0b9e4c61d2a84f7a"  # what the ``articles_api`` fixture sets
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class Visitor:
    """One browser: its CSRF cookie (once a page gave it one) and the last form token."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.cookie = ""
        self.token = ""

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return ({"Cookie": f"{COOKIE}={self.cookie}"} if self.cookie else {}) | (extra or {})

    async def get(self, path: str, **kwargs: Any) -> ClientResponse:
        response = await self.client.get(path, headers=self._headers(kwargs.pop("headers", None)), allow_redirects=False, **kwargs)
        if COOKIE in response.cookies:
            self.cookie = response.cookies[COOKIE].value
        if found := _TOKEN.search(await response.text()):
            self.token = found.group(1)
        return response

    async def post(self, path: str, data: dict[str, Any] | list[tuple[str, str]], *, csrf: bool = True,
                   headers: dict[str, str] | None = None) -> ClientResponse:
        fields = list(data.items()) if isinstance(data, dict) else list(data)
        if csrf:
            fields.append(("csrf_token", self.token))
        return await self.client.post(path, data=fields, headers=self._headers(headers), allow_redirects=False)


@asynccontextmanager
async def web_client(publisher: Publisher) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(publisher)), cookie_jar=DummyCookieJar()) as client:
        yield client


@asynccontextmanager
async def api_client(publisher: Publisher, token: str) -> AsyncIterator[TestClient]:
    """A client of the operator API alone that sends ``token`` with every request."""
    app = web.Application()
    app[PUBLISHER] = publisher
    api.add_api_routes(app)
    async with TestClient(TestServer(app), headers={"Authorization": f"Bearer {token}"}) as client:
        yield client
