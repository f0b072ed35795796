"""The aiohttp application: public pages, subscription pages, the operator API, feeds, health.

Pages are Jinja2 templates from ``templates/web/`` through aiohttp-jinja2, on the same
environment as the emails (one set of overrides for operators).
"""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from publisher.app import Publisher
from publisher.web.api import add_api_routes
from publisher.web.feeds import FEEDS_PATTERN, respond
from publisher.web.forms import CsrfSigner
from publisher.web.keys import PUBLISHER
from publisher.web.pages import CSRF, error_page
from publisher.web.public import add_public_routes
from publisher.web.security import add_security_headers, error_middleware
from publisher.web.subscription import add_subscription_routes

# The largest body any route takes: a bulk import through the API.  Forms read with
# a much smaller cap of their own (publisher.web.forms).
MAX_BODY = 10 * 1024 * 1024


async def feed(request: web.Request) -> web.StreamResponse:
    doc = request.app[PUBLISHER].feeds.get(request.match_info["path"])
    if doc is None:
        raise web.HTTPNotFound(text="no such feed")
    return respond(doc, request)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(publisher: Publisher) -> web.Application:
    https = publisher.settings.site.url.startswith("https://")
    app = web.Application(middlewares=[error_middleware(error_page)], client_max_size=MAX_BODY)
    app[PUBLISHER] = publisher
    app[aiohttp_jinja2.APP_KEY] = publisher.env
    app[CSRF] = CsrfSigner(publisher.tokens.secret_key, secure_cookie=https)
    add_security_headers(app, https=https)
    add_public_routes(app)
    add_subscription_routes(app)
    add_api_routes(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/" + FEEDS_PATTERN, feed)
    return app
