"""The public archive: the latest articles, one article, a digest's "view in browser" copy.

Pages render from the store's Article model (never re-parsing content), so what a
reader sees here is what the feeds and the emails carry.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from aiohttp import web

from publisher import i18n, urls
from publisher.content.slug import slugify
from publisher.mail.render import Personal, render_digest
from publisher.web.keys import PUBLISHER
from publisher.web.pages import render
from publisher.web.security import EMAIL_CSP

ARCHIVE_SIZE = 30
STYLESHEET = "web/site.css"
# Pictures rarely change and carry ETag/Last-Modified: a day, then a cheap revalidation.
IMAGES_CACHE_CONTROL = "public, max-age=86400"


async def index(request: web.Request) -> web.Response:
    publisher = request.app[PUBLISHER]
    latest = await publisher.intake.latest(ARCHIVE_SIZE)
    return render(request, "index.html", {"articles": latest})


async def article(request: web.Request) -> web.Response:
    publisher = request.app[PUBLISHER]
    found = await publisher.intake.by_slug(request.match_info["slug"])
    if found is None:
        raise web.HTTPNotFound()
    tag_feeds = tuple((tag, urls.feed_path("atom", slugify(tag))) for tag in found.tags if slugify(tag))
    return render(request, "article.html", {"article": found, "tag_feeds": tag_feeds})


async def digest(request: web.Request) -> web.Response:
    """The "view in browser" copy: the digest as sent, with no one's personal links.

    Anyone with the link may read it (it only holds published articles), so the
    personal parts point to the pages where readers manage their own subscription.
    """
    publisher = request.app[PUBLISHER]
    stored = await publisher.delivery.stored_digest(request.match_info["digest_id"])
    if stored is None or not stored.articles:
        raise web.HTTPNotFound()
    manage = urls.preferences_request(publisher.settings.site.url)
    rendered = render_digest(stored.articles, publisher.settings, publisher.env, stored.id, stored.cadence)
    t = i18n.Translator(publisher.settings.site.language)
    # TRANSLATORS: the reader, where a digest says "… because %(email)s subscribed to %(site)s": its web copy has no address.
    reader = t.pgettext("view in browser", "you")
    html, _ = rendered.personalize(Personal(name="", email=reader, unsubscribe_url=manage, preferences_url=manage))
    response = web.Response(text=html, content_type="text/html")
    response.headers["Content-Security-Policy"] = EMAIL_CSP
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


class Stylesheet:
    """``/assets/site.css`` from the template directories (so operators can override it)."""

    def __init__(self, source: str) -> None:
        self.body = source.encode("utf-8")
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'

    async def handle(self, request: web.Request) -> web.Response:
        headers = {"ETag": self.etag, "Cache-Control": "public, max-age=3600"}
        if self.etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        return web.Response(body=self.body, content_type="text/css", charset="utf-8", headers=headers)


async def image(request: web.Request) -> web.FileResponse:
    """A file of ``[site] static_dir``: only regular files inside it, never a listing or a dotfile.

    Read from the settings on every request, so a reload (SIGHUP) that moves the
    directory applies at once.  aiohttp's FileResponse answers conditional requests
    (ETag, Last-Modified → 304) and ranges, and sets the type from the file's suffix.
    """
    root = request.app[PUBLISHER].settings.site.static_dir
    found = await asyncio.get_running_loop().run_in_executor(None, _static_file, root, request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound()
    return web.FileResponse(found, headers={"Cache-Control": IMAGES_CACHE_CONTROL})


def _static_file(root: Path, name: str) -> Path | None:
    """``name`` (the decoded URL path under ``/images/``, :data:`publisher.urls.IMAGES`) as a regular file inside ``root``, else None.

    Dot segments ("..", ".git", ".env") are refused before touching the disk, and the
    resolved path must still be inside ``root``, so a symlink can't lead out of it.
    """
    parts = name.split("/")
    if any(not part or part.startswith(".") or "\\" in part or "\0" in part for part in parts):
        return None
    try:
        base = root.resolve(strict=True)
        path = base.joinpath(*parts).resolve(strict=True)
    except OSError:
        return None
    return path if path.is_relative_to(base) and path.is_file() else None


def add_public_routes(app: web.Application) -> None:
    publisher = app[PUBLISHER]
    loader = publisher.env.loader
    assert loader is not None
    source, _, _ = loader.get_source(publisher.env, STYLESHEET)
    app.router.add_get(urls.INDEX.path, index)
    app.router.add_get(urls.ARTICLE.path, article)
    app.router.add_get(urls.DIGEST.path, digest)
    app.router.add_get(urls.STYLESHEET.path, Stylesheet(source).handle)
    app.router.add_get(urls.IMAGES.path, image)


