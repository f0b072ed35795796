"""The aiohttp application: public pages, subscription pages, the operator API and dashboard, feeds, health.

Pages are Jinja2 templates from ``templates/web/`` through aiohttp-jinja2, on the same
environment as the emails (one set of overrides for operators).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from aiohttp.http import HttpProcessingError

from publisher import urls
from publisher.app import Publisher
from publisher.web.admin import add_admin_routes
from publisher.web.api import add_api_routes
from publisher.web.clicks import add_click_routes
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

log = logging.getLogger(__name__)

# The largest body any route takes: a bulk import through the API.  Forms read with
# a much smaller cap of their own (publisher.web.forms).
MAX_BODY = 10 * 1024 * 1024


def create_app(publisher: Publisher) -> web.Application:
    return _build(publisher)[0]


def create_runner(publisher: Publisher) -> web.AppRunner:
    """The daemon's runner: feeds are answered before the application (see FeedsFirstRunner).

    ``[server] idle_timeout`` is aiohttp's ``keepalive_timeout``: in aiohttp 3.14 its
    timer starts when a connection opens and again after each response, and bytes
    arriving in between do not move it, so it also cuts off a client that never
    finishes its request headers.  ``[server] max_connections`` bounds how many such
    clients can be waiting at once (see :class:`ConnectionCap`).
    """
    app, feeds = _build(publisher)
    server = publisher.settings.server
    return FeedsFirstRunner(
        app, feeds, max_connections=server.max_connections,
        handle_signals=False, access_log=None, keepalive_timeout=server.idle_timeout,
        logger=ClientErrorLogger(logging.getLogger("aiohttp.server")),
    )


class ClientErrorLogger(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger, with a client's malformed request as one INFO line.

    aiohttp logs every request its parser rejects (a bad header, a line too long)
    with ``logger.exception``: a traceback per probe from the internet, at ERROR.
    That is the client's mistake, already answered with a 400; the line keeps who
    sent it and why.  Every other exception keeps its traceback.
    """

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            lines = exc_info.message.strip().splitlines()
            reason = lines[0].rstrip(":") if lines else ""
            self.info(f"{msg}: %d %s", *args, exc_info.code, reason)
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)


LowLevelHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class FeedsFirstRunner(web.AppRunner):
    """Answers GET and HEAD for a feed before the application's router and middlewares.

    A feed is the hot path of the site (every reader polls it, most get a 304), and its
    responses are prepared once per feed, security headers included; the router,
    the error-page middleware and the response hook cost a third more CPU per request
    than a bare aiohttp handler (bench/feeds.py).  Everything else, unknown feeds
    included (their 404 page), goes to the application as usual.

    Built on aiohttp's public runner API: after :meth:`setup` the runner's ``server``
    (a low-level :class:`web.Server`) holds the application's handler in its public
    ``request_handler``; the feeds' handler is put in front of it, as a low-level
    handler taking a :class:`web.BaseRequest`.  ``tests/test_ops_web.py`` fails if a
    version of aiohttp stops routing requests through that attribute (then a feed
    request would reach the application's middlewares), and ``pyproject.toml`` allows
    only the aiohttp versions that test has passed on.
    """

    def __init__(self, app: web.Application, feeds: FeedRoutes, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._feeds = feeds
        self._max_connections = max_connections

    async def setup(self) -> None:
        await super().setup()
        server = self.server
        assert server is not None  # setup made it
        ConnectionCap(server, self._max_connections)
        server.request_handler = feeds_first(self._feeds, server.request_handler)


def feeds_first(feeds: FeedRoutes, application: LowLevelHandler) -> LowLevelHandler:
    """A low-level handler that answers a known feed itself and hands every other request to ``application``."""
    prepared = feeds.prepared

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        if request.method in _FEED_METHODS:
            feed = prepared(request.path[1:])
            if feed is not None:
                return feed.respond(request)
        return await application(request)

    return handler

_FEED_METHODS = frozenset({"GET", "HEAD"})

# The whole answer to a connection past the cap: sent before any request is read.
_FULL_BODY = b"Too many connections; retry soon.\n"
_FULL = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nConnection: close\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s" % (len(_FULL_BODY), _FULL_BODY)
)


class ConnectionCap:
    """Answers 503 and closes each connection past ``limit`` open at once.

    aiohttp's server has no connection limit.  Its ``Server`` is told of every
    connection opening and closing (``connection_made`` / ``connection_lost``, called
    by each connection's protocol); this wraps those two on the instance to count.
    ``connection_lost`` runs before the socket is closed, so a client that sees its
    connection end has already been counted out.
    """

    def __init__(self, server: web.Server, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._full = False  # logged once per episode of being full, not per refusal
        self._made, self._lost = server.connection_made, server.connection_lost
        server.connection_made = self.connection_made  # type: ignore[method-assign]
        server.connection_lost = self.connection_lost  # type: ignore[method-assign]

    def connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        self._made(handler, transport)
        self.open += 1
        if self.open <= self.limit:
            self._full = False
            return
        if not self._full:
            self._full = True
            log.warning("%d connections open, the most [server] max_connections allows: refusing new ones", self.limit)
        transport.write(_FULL)
        # Closed on the next turn of the loop: the handler starts its task after this
        # returns, and on Python 3.11 that task must not find the connection lost already.
        asyncio.get_running_loop().call_soon(handler.force_close)

    def connection_lost(self, handler: web.RequestHandler, exc: BaseException | None = None) -> None:
        self.open -= 1
        self._lost(handler, exc)


def _build(publisher: Publisher) -> tuple[web.Application, FeedRoutes]:
    https = urls.is_https(publisher.settings.site.url)
    app = web.Application(middlewares=[error_middleware(error_page)], client_max_size=MAX_BODY)
    app[PUBLISHER] = publisher
    app[aiohttp_jinja2.APP_KEY] = publisher.env
    app[CSRF] = CsrfSigner(publisher.tokens.secret_key, secure_cookie=https)
    add_security_headers(app, https=https)
    add_public_routes(app)
    add_subscription_routes(app)
    add_click_routes(app)
    add_api_routes(app)
    add_health_routes(app)
    add_admin_routes(app)
    # The feeds' responses carry the security headers in a header set prepared once per
    # feed, so the response hook has nothing to add (publisher.web.feeds, bench/feeds.py).
    feeds = FeedRoutes(publisher.shelf, extra_headers=security_headers(https=https), response_class=SecuredResponse)
    feeds.add_routes(app)
    return app, feeds
