"""The public archive pages and what every page must carry (security headers, feeds, lang)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from xml.etree import ElementTree

import html5lib
import pytest
from aiohttp.test_utils import TestClient

from publisher.app import Publisher, utcnow
from publisher.digest import plan
from publisher.store.articles import ingest
from publisher.web import public
from subscribers.model import Cadence
from tests.articles import seed_like
from tests.people import add_subscriber
from tests.web_client import Visitor, web_client

PAGES = ["/", "/subscribe", "/preferences", "/articles/kim-russia-visit", "/no/such/page", "/confirm/junk-token-value"]


@pytest.fixture
async def client(publisher: Publisher) -> AsyncIterator[TestClient]:
    await publisher.scan()
    async with web_client(publisher) as test_client:
        yield test_client


def parse(markup: str) -> ElementTree.Element:
    """The page's <html> element, parsed strictly: a page that is not valid HTML fails here."""
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(markup)


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_has_security_headers_lang_and_feed_links(client: TestClient, path: str) -> None:
    response = await Visitor(client).get(path)
    assert response.status in (200, 400, 404)
    headers = response.headers
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "script-src" not in headers["Content-Security-Policy"]  # no script may run at all
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Strict-Transport-Security"]  # the test site is https
    root = parse(await response.text())
    assert root.get("lang") == "en"
    alternates = {(link.get("type"), link.get("href")) for link in root.iter("link") if link.get("rel") == "alternate"}
    assert {
        ("application/rss+xml", "/feed.rss"), ("application/atom+xml", "/feed.atom"),
        ("application/feed+json", "/feed.json"),
    } <= alternates
    assert "Traceback" not in await response.text()


async def test_every_form_control_has_a_label(client: TestClient) -> None:
    for path in ("/subscribe", "/preferences"):
        root = parse(await (await Visitor(client).get(path)).text())
        labelled = {label.get("for") for label in root.iter("label")}
        controls = [
            c for c in root.iter() if c.tag in ("input", "select") and c.get("type") not in ("hidden", "radio", "checkbox")
        ]
        assert controls
        for control in controls:
            assert control.get("id") in labelled, control.attrib


async def test_index_lists_the_latest_articles(client: TestClient) -> None:
    response = await client.get("/")
    body = await response.text()
    assert response.status == 200
    assert response.headers["Cache-Control"] == "public, max-age=60"
    assert "Set-Cookie" not in response.headers  # no form, no cookie: cacheable
    for slug in ("kim-russia-visit", "city-heat-plan", "transit-ridership"):
        assert f'href="/articles/{slug}"' in body


async def test_article_page_shows_takeaways_quote_and_fact_table(client: TestClient) -> None:
    response = await client.get("/articles/kim-russia-visit")
    assert response.status == 200
    body = await response.text()
    assert "Key takeaways" in body
    assert "<blockquote>" in body
    assert "<table>" in body and "<th>" in body
    assert 'rel="canonical" href="https://news.example.org/articles/kim-russia-visit"' in body
    assert 'href="/tags/north-korea/feed.atom"' in body  # the article's topics are feeds too
    assert (await client.get("/articles/no-such-article")).status == 404


async def test_view_in_browser_shows_the_digest_without_anyones_links(client: TestClient, publisher: Publisher) -> None:
    await add_subscriber(publisher.engine, "ann@example.org", cadence=Cadence.INSTANT)
    await ingest(publisher.engine, [seed_like(id="fresh", slug="fresh", title="A fresh article")], utcnow())
    [digest] = await plan(publisher.engine, Cadence.INSTANT, utcnow(), max_articles=5)
    response = await client.get(f"/digests/{digest.id}")
    assert response.status == 200
    body = await response.text()
    assert "A fresh article" in body
    assert "ann@example.org" not in body and "/unsubscribe/" not in body
    assert "style-src 'unsafe-inline'" in response.headers["Content-Security-Policy"]
    assert (await client.get("/digests/instant-20000101T000000-000000")).status == 404


async def test_the_stylesheet_is_served_with_validators(client: TestClient) -> None:
    first = await client.get("/assets/site.css")
    assert first.status == 200 and first.content_type == "text/css"
    again = await client.get("/assets/site.css", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304


async def test_an_unexpected_error_is_a_plain_500_page(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: object) -> None:
        raise RuntimeError("secret detail from /nonexistent")

    monkeypatch.setattr(public.article_store, "latest", broken)
    response = await client.get("/")
    assert response.status == 500
    body = await response.text()
    assert "Something went wrong" in body and "Traceback" not in body and "nonexistent" not in body
