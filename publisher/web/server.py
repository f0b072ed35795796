"""The aiohttp application: feeds, a small index page and the health check."""

from __future__ import annotations

from aiohttp import web

from publisher.app import Publisher
from publisher.web.feeds import FEEDS_PATTERN, respond
from publisher.web.keys import PUBLISHER


async def feed(request: web.Request) -> web.StreamResponse:
    doc = request.app[PUBLISHER].feeds.get(request.match_info["path"])
    if doc is None:
        raise web.HTTPNotFound(text="no such feed")
    return respond(doc, request)


async def index(request: web.Request) -> web.Response:
    publisher = request.app[PUBLISHER]
    template = publisher.env.get_template("web/index.html")
    html = template.render(site=publisher.settings.site, feeds=sorted(publisher.feeds))
    return web.Response(text=html, content_type="text/html")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(publisher: Publisher) -> web.Application:
    app = web.Application()
    app[PUBLISHER] = publisher
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/" + FEEDS_PATTERN, feed)
    return app
