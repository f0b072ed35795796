"""The URL map: every link it builds is answered by the route it registers (no database)."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from publisher import urls
from subscribers.tokens import Purpose, Tokens

SITE = "https://news.example.org/"
TOKEN = "7.0123456789abcdef.signature_-x"

ROUTES = [
    urls.INDEX, urls.ARTICLE, urls.DIGEST, urls.STYLESHEET, urls.IMAGES, urls.SITE_FEED, urls.TAG_FEED,
    urls.SUBSCRIBE, urls.CONFIRM, urls.PREFERENCES, urls.UNSUBSCRIBE, urls.HEALTHZ, urls.READYZ, urls.METRICS,
    urls.TAG, urls.ARCHIVE, urls.DIGESTS, urls.SITEMAP, urls.ROBOTS,
]


def _router() -> tuple[web.Application, dict[str, object]]:
    """An application answering each route with a handler of its own, and those handlers by pattern."""
    app = web.Application()
    handlers: dict[str, object] = {}
    for route in ROUTES:

        async def handler(request: web.Request) -> web.Response:
            return web.Response()

        handlers[route.pattern] = handler
        app.router.add_get(route.path, handler)
    return app, handlers


@pytest.mark.parametrize(
    ("link", "route"),
    [
        (urls.article(SITE, "a-slug-2"), urls.ARTICLE),
        (urls.digest(SITE, "daily-20240620T080000-3fa2c1"), urls.DIGEST),
        (urls.feed(SITE, "atom"), urls.SITE_FEED),
        (urls.feed(SITE, "json", "north-korea"), urls.TAG_FEED),
        (urls.absolute(SITE, urls.feed_path("rss", "climate")), urls.TAG_FEED),
        (urls.confirm(SITE, TOKEN), urls.CONFIRM),
        (urls.preferences(SITE, TOKEN), urls.PREFERENCES),
        (urls.unsubscribe(SITE, TOKEN), urls.UNSUBSCRIBE),
        (urls.subscribe(SITE), urls.SUBSCRIBE),
        (urls.image(SITE, "2024/chart.png"), urls.IMAGES),
        (SITE, urls.INDEX),
        (urls.tag(SITE, "north-korea"), urls.TAG),
        (urls.ARCHIVE.url(SITE), urls.ARCHIVE),
        (urls.DIGESTS.url(SITE), urls.DIGESTS),
        (urls.SITEMAP.url(SITE), urls.SITEMAP),
        (urls.ROBOTS.url(SITE), urls.ROBOTS),
    ],
)
async def test_each_link_is_answered_by_its_route(link: str, route: urls.Route) -> None:
    app, handlers = _router()
    assert link.startswith(SITE)
    request = make_mocked_request("GET", "/" + link.removeprefix(SITE), app=app)
    assert (await app.router.resolve(request)).handler is handlers[route.pattern]


@pytest.mark.parametrize("fmt", urls.FEED_FORMATS)
async def test_each_feed_format_is_routed(fmt: str) -> None:
    """The feed routes take their formats from urls.FEED_FORMATS: every one is answered,
    the site feed's plain route included."""
    app, handlers = _router()
    for link, route in [(urls.feed(SITE, fmt), urls.SITE_FEED), (urls.feed(SITE, fmt, "climate"), urls.TAG_FEED)]:
        request = make_mocked_request("GET", "/" + link.removeprefix(SITE), app=app)
        assert (await app.router.resolve(request)).handler is handlers[route.pattern]
    assert urls.SITE_FEED.fixed(format=fmt) == "/" + urls.feed_path(fmt) == f"/feed.{fmt}"


def test_links_keep_the_path_the_site_lives_under() -> None:
    site = "https://example.org/news/"
    assert urls.article(site, "hello") == "https://example.org/news/articles/hello"
    assert urls.base_path(site) == "/news/"
    assert urls.base_path(SITE) == "/"
    assert urls.SUBSCRIBE.under(urls.base_path(site)) == "/news/subscribe"
    assert urls.ARTICLE.path == "/articles/{slug:[a-z0-9][a-z0-9-]{0,299}}"


def test_a_value_is_one_path_segment() -> None:
    assert urls.digest(SITE, "a b/c") == SITE + "digests/a%20b%2Fc"


def test_token_links_open_the_page_of_their_purpose() -> None:
    tokens = Tokens("k" * 40)
    for purpose, build in [(Purpose.CONFIRM, urls.confirm), (Purpose.PREFERENCES, urls.preferences),
                           (Purpose.UNSUBSCRIBE, urls.unsubscribe)]:
        token = tokens.make(purpose, 7, "ann@example.org")
        assert tokens.link(SITE, purpose, 7, "ann@example.org") == build(SITE, token)
        assert tokens.read(purpose, build(SITE, token).rpartition("/")[2]).subscriber_id == 7
