"""The public archive: the latest articles, one article, the archive and tags' pages a page
at a time, a digest's "view in browser" copy and the list of past digests; the sitemap and
robots.txt for crawlers.

Pages render from the store's Article model (never re-parsing content), so what a
reader sees here is what the feeds and the emails carry.  Each page also says what it is
to machines (:mod:`publisher.web.metadata`).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from publisher import i18n, urls
from publisher.content.model import Article
from publisher.content.slug import slugify, spelled_slugs
from publisher.feeds.build import FORMATS
from publisher.mail.render import Personal, digest_name, render_digest
from publisher.web import crawlers, metadata
from publisher.web.keys import PUBLISHER
from publisher.web.pages import render
from publisher.web.security import EMAIL_CSP

PAGE_SIZE = 30  # articles on the index and on each page of the archive and of a tag; digests a page
STYLESHEET = "web/site.css"
# Pictures rarely change and carry ETag/Last-Modified: a day, then a cheap revalidation.
IMAGES_CACHE_CONTROL = "public, max-age=86400"


async def index(request: web.Request) -> web.Response:
    publisher = request.app[PUBLISHER]
    site = publisher.settings.site
    latest = await publisher.intake.latest(PAGE_SIZE + 1)
    return render(request, "index.html", {
        "articles": latest[:PAGE_SIZE], "more": len(latest) > PAGE_SIZE,
        "social": metadata.site_tags(site, site.title, site.url), "linked_data": metadata.site_linked_data(site),
    })


async def article(request: web.Request) -> web.Response:
    publisher = request.app[PUBLISHER]
    found = await publisher.intake.by_slug(request.match_info["slug"])
    if found is None:
        raise web.HTTPNotFound()
    return article_page(request, found)


def article_page(request: web.Request, found: Article) -> web.Response:
    """The page of ``found`` as readers see it (its archive page; the dashboard's preview of it)."""
    site = request.app[PUBLISHER].settings.site
    tag_pages = tuple((tag, slug) for slug, tag in spelled_slugs(found.tags).items())
    return render(request, "article.html", {
        "article": found,
        "tag_feeds": tuple((tag, urls.feed_path("atom", slug)) for tag, slug in tag_pages),
        "tag_pages": tag_pages,
        "social": metadata.article_tags(found, site),
        "linked_data": metadata.article_linked_data(found, site),
    })


@dataclass(frozen=True)
class Page:
    """Where a reader is in a listing: page ``number`` of ``last``, and the paths of its neighbours."""

    number: int
    last: int
    previous: str  # "" on the first page
    next: str  # "" on the last

    @classmethod
    def of(cls, path: str, number: int, total: int) -> Page:
        last = crawlers.page_count(total, PAGE_SIZE)
        return cls(number, last, urls.page(path, number - 1) if number > 1 else "",
                   urls.page(path, number + 1) if number < last else "")


def page_number(request: web.Request) -> int:
    """The ``?page=`` asked for (1 without one); anything but a page number is a 404, as a
    page past the last one is: there is nothing at that address."""
    raw = request.query.get(urls.PAGE_PARAMETER, "1")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6 and int(raw) >= 1):
        raise web.HTTPNotFound()
    return int(raw)


async def archive(request: web.Request) -> web.Response:
    """Every published article, newest first, :data:`PAGE_SIZE` a page."""
    language = request.app[PUBLISHER].settings.site.language
    # TRANSLATORS: the heading of the page listing every article.
    return await _listing(request, "", i18n.Translator(language).gettext("Archive"))


async def tag(request: web.Request) -> web.Response:
    """One tag's articles, newest first, :data:`PAGE_SIZE` a page, with the tag's feeds."""
    return await _listing(request, request.match_info["slug"], "")


async def _listing(request: web.Request, tag_slug: str, heading: str) -> web.Response:
    publisher = request.app[PUBLISHER]
    site = publisher.settings.site
    number = page_number(request)
    articles, total, spelled = await publisher.shelf.listing(
        tag_slug, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE
    )
    if (tag_slug and not total) or (number > 1 and not articles):
        raise web.HTTPNotFound()
    route = urls.TAG.relative(slug=tag_slug) if tag_slug else urls.ARCHIVE.relative()
    # A tag's page is headed as the sign-up form names the topic ([site.topic_names], matched by slug).
    heading = heading or next((name for tag, name in site.topic_names.items() if slugify(tag) == tag_slug), spelled)
    canonical = urls.page(urls.absolute(site.url, route), number)
    # A tag's feeds, when it has them ([feeds] max_tag_feeds gives feeds to the busiest tags only).
    feeds = tuple((fmt.media_type, fmt.label, path) for fmt in FORMATS.values()
                  if (path := urls.feed_path(fmt.name, tag_slug)) in publisher.shelf.docs)
    return render(request, "listing.html", {
        "heading": heading, "articles": articles, "page": Page.of(urls.base_path(site.url) + route, number, total),
        "canonical_url": canonical, "listing_feeds": feeds if tag_slug else (),
        "social": metadata.site_tags(site, f"{heading} · {site.title}", canonical),
    })


async def past_digests(request: web.Request) -> web.Response:
    """The digests sent so far, newest first, each linking its "view in browser" copy."""
    publisher = request.app[PUBLISHER]
    site = publisher.settings.site
    number = page_number(request)
    found, total = await publisher.delivery.past_digests(limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
    if number > 1 and not found:
        raise web.HTTPNotFound()
    canonical = urls.page(urls.DIGESTS.url(site.url), number)
    title = i18n.Translator(site.language).gettext("Past digests")
    return render(request, "digests.html", {
        "digests": found, "page": Page.of(urls.DIGESTS.under(urls.base_path(site.url)), number, total),
        # A heading starts with its digest's name: "Daily digest of …" (only the first letter raised).
        "names": {cadence: (name := digest_name(cadence, site.language))[:1].upper() + name[1:]
                  for cadence in {d.cadence for d in found}},
        "canonical_url": canonical, "social": metadata.site_tags(site, f"{title} · {site.title}", canonical),
    })


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


@dataclass(frozen=True)
class Document:
    """A document made once and served as it is, with a strong ETag (a digest of its bytes,
    computed once) that answers ``If-None-Match`` with a 304."""

    body: bytes
    content_type: str
    cache_control: str
    etag: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "etag", '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"')

    async def handle(self, request: web.Request) -> web.Response:
        headers = {"ETag": self.etag, "Cache-Control": self.cache_control}
        if self.etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        return web.Response(body=self.body, content_type=self.content_type, charset="utf-8", headers=headers)


class Sitemap:
    """``/sitemap.xml``: the index, the archive's and tags' pages, the articles (newest first).

    Made again only when the feeds were rebuilt from another state of the store (their
    index is what it lists) or the site's URL changed: 10,000 articles make a 1.2 MB
    document in about 0.2 s, which would otherwise hold up every request each time.
    """

    def __init__(self) -> None:
        self._made_for: tuple[object, ...] | None = None
        self._document: Document | None = None

    async def handle(self, request: web.Request) -> web.Response:
        publisher = request.app[PUBLISHER]
        state = (publisher.settings.site.url, publisher.shelf.revision)
        if self._document is None or state != self._made_for or publisher.shelf.revision is None:
            articles, tags = await publisher.shelf.site_map(crawlers.MAX_URLS)
            body = crawlers.sitemap(publisher.settings.site.url, articles, tags, PAGE_SIZE)
            self._document, self._made_for = Document(body, "application/xml", "public, max-age=300"), state
        return await self._document.handle(request)


async def robots(request: web.Request) -> web.Response:
    site_url = request.app[PUBLISHER].settings.site.url  # read per request: a reload may change it
    return await Document(crawlers.robots(site_url), "text/plain", "public, max-age=3600").handle(request)


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
    app.router.add_get(urls.ARCHIVE.path, archive)
    app.router.add_get(urls.TAG.path, tag)
    app.router.add_get(urls.DIGESTS.path, past_digests)
    app.router.add_get(urls.DIGEST.path, digest)
    app.router.add_get(urls.SITEMAP.path, Sitemap().handle)
    app.router.add_get(urls.ROBOTS.path, robots)
    app.router.add_get(urls.STYLESHEET.path, Document(source.encode(), "text/css", "public, max-age=3600").handle)
    app.router.add_get(urls.IMAGES.path, image)


