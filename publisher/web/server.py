"""The aiohttp application: public pages, subscription pages, the operator API, feeds, health.

Pages are Jinja2 templates from ``templates/web/`` through aiohttp-jinja2, on the same
environment as the emails (one set of overrides for operators).
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from publisher.app import Publisher
from publisher.web.api import add_api_routes
from publisher.web.feeds import FeedRoutes
from publisher.web.forms import CsrfSigner
from publisher.web.health import add_health_routes
from publisher.web.keys import PUBLISHER
from publisher.web.pages import CSRF, error_page
from publisher.web.public import add_public_routes
from publisher.web.security import (
    SecuredResponse,
    add_security_headers,
    error_middleware,
    security_headers,
)
from publisher.web.subscription import add_subscription_routes

# The largest body any route takes: a bulk import through the API.  Forms read with
# a much smaller cap of their own (publisher.web.forms).
MAX_BODY = 10 * 1024 * 1024


def create_app(publisher: Publisher) -> web.Application:
    return _build(publisher)[0]


def create_runner(publisher: Publisher) -> web.AppRunner:
    """The daemon's runner: feeds are answered before the application (see FeedsFirstRunner)."""
    app, feeds = _build(publisher)
    return FeedsFirstRunner(app, feeds, handle_signals=False, access_log=None)


class FeedsFirstRunner(web.AppRunner):
    """Answers GET and HEAD for a feed before the application's router and middlewares.

    A feed is the hot path of the site (every reader polls it, most get a 304), and its
    responses are prepared once per feed, security headers included; the router,
    the error-page middleware and the response hook cost a third more CPU per request
    than a bare aiohttp handler (bench/feeds.py).  Everything else, unknown feeds
    included (their 404 page), goes to the application as usual.
    """

    def __init__(self, app: web.Application, feeds: FeedRoutes, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._feeds = feeds

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        application = server.request_handler
        prepared = self._feeds.prepared

        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            if request.method in _FEED_METHODS:
                feed = prepared(request.path[1:])
                if feed is not None:
                    return feed.respond(request)
            return await application(request)

        server.request_handler = handler
        return server


_FEED_METHODS = frozenset({"GET", "HEAD"})


def _build(publisher: Publisher) -> tuple[web.Application, FeedRoutes]:
    https = publisher.settings.site.url.startswith("https://")
    app = web.Application(middlewares=[error_middleware(error_page)], client_max_size=MAX_BODY)
    app[PUBLISHER] = publisher
    app[aiohttp_jinja2.APP_KEY] = publisher.env
    app[CSRF] = CsrfSigner(publisher.tokens.secret_key, secure_cookie=https)
    add_security_headers(app, https=https)
    add_public_routes(app)
    add_subscription_routes(app)
    add_api_routes(app)
    add_health_routes(app)
    # The feeds' responses carry the security headers in a header set prepared once per
    # feed, so the response hook has nothing to add (publisher.web.feeds, bench/feeds.py).
    feeds = FeedRoutes(publisher, extra_headers=security_headers(https=https), response_class=SecuredResponse)
    feeds.add_routes(app)
    return app, feeds
