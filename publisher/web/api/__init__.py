"""The operator's JSON API under ``/api/``: subscribers (list, read, add, change, erase,
export, import), bounces and complaints, the articles of the ``api`` source, and the
digests' reports.

Layered without cycles: :mod:`.http` (token, JSON errors, reading requests) at the
bottom, then :mod:`.subscribers`, :mod:`.imports` (which checks items as
``subscribers`` does), :mod:`.bounces`, :mod:`.articles` and :mod:`.digests`; this module
mounts them.
"""

from __future__ import annotations

from aiohttp import web

from publisher import urls
from publisher.web.api.articles import add_article_routes
from publisher.web.api.bounces import add_bounce_routes
from publisher.web.api.digests import add_digest_routes
from publisher.web.api.http import api_middleware, no_store, warn_if_disabled
from publisher.web.api.imports import add_import_routes
from publisher.web.api.subscribers import add_subscriber_routes


def add_api_routes(app: web.Application) -> None:
    """Mount the API at ``/api/`` as a sub-application with its own middleware and headers."""
    api = web.Application(middlewares=[api_middleware])
    add_subscriber_routes(api)
    add_import_routes(api)
    add_bounce_routes(api)
    add_article_routes(api)
    add_digest_routes(api)
    api.on_response_prepare.append(no_store)
    api.on_startup.append(warn_if_disabled)
    app.add_subapp(urls.API_PREFIX, api)
