"""What the public site tells machines: schema.org JSON-LD, Open Graph and Twitter card tags,
the sitemap, robots.txt, tags' pages, the paged archive and the list of past digests."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.robotparser import RobotFileParser
from xml.etree import ElementTree

import pytest
from aiohttp.test_utils import TestClient
from lxml import etree

from publisher import clock
from publisher.app import Publisher
from publisher.config import Settings
from publisher.digest.plan import PlanOptions, plan
from publisher.store.ingest import ingest
from publisher.web.public import PAGE_SIZE
from subscribers.model import Cadence
from tests.support.articles import seed_like
from tests.support.people import add_subscriber
from tests.support.web_client import web_client
from tests.web.test_public_pages import parse

SITE = "https://news.example.org/"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
HOSTILE_TITLE = 'Break </script><script>alert("x")</script> & <!-- out'


@pytest.fixture
async def client(publisher: Publisher) -> AsyncIterator[TestClient]:
    await publisher.intake.scan()
    async with web_client(publisher) as test_client:
        yield test_client


async def _page(client: TestClient, path: str) -> ElementTree.Element:
    response = await client.get(path)
    assert response.status == 200, path
    return parse(await response.text())


def _linked_data(root: ElementTree.Element) -> dict[str, Any]:
    [block] = [s for s in root.iter("script") if s.get("type") == "application/ld+json"]
    return json.loads(block.text or "")


def _meta(root: ElementTree.Element) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for meta in root.iter("meta"):
        if name := meta.get("property") or meta.get("name"):
            found.setdefault(name, []).append(meta.get("content", ""))
    return found


def _links(root: ElementTree.Element, rel: str) -> list[str]:
    return [link.get("href", "") for link in root.iter("link") if link.get("rel") == rel]


async def _store(publisher: Publisher, *articles: Any) -> None:
    """Store articles as a source does, then build the feeds (and so their index, which the
    listings read), as the intake does after a change."""
    await ingest(publisher.engine, list(articles), clock.now())
    await publisher.shelf.build()


# --- article pages ---------------------------------------------------------------------------


async def test_an_article_page_carries_a_news_article_in_json_ld(client: TestClient) -> None:
    data = _linked_data(await _page(client, "/articles/kim-russia-visit"))
    assert data["@context"] == "https://schema.org"
    assert data["@type"] == "NewsArticle"
    assert data["headline"] == "Kim Jong Un in Russia: Is the War in Ukraine Forging a New Axis?"
    url = SITE + "articles/kim-russia-visit"
    assert data["url"] == url and data["mainEntityOfPage"] == {"@type": "WebPage", "@id": url}
    assert datetime.fromisoformat(data["datePublished"]) == datetime(2023, 9, 14, 9, 0, tzinfo=UTC)
    assert datetime.fromisoformat(data["dateModified"]) >= datetime.fromisoformat(data["datePublished"])
    assert data["author"] == {"@type": "Person", "name": "Foreign Desk"}
    assert data["publisher"]["@type"] == "Organization" and data["publisher"]["url"] == SITE
    assert data["image"] == [SITE + "images/kim-arrives.png", SITE + "images/putin-hosts-kim.png"]
    assert data["inLanguage"] == "en"
    assert data["keywords"] == ["geopolitics", "north-korea", "russia"]
    assert data["articleSection"] == "Analysis"
    assert data["abstract"][0] == "North Korea and Russia may be negotiating weapons transfers"
    assert len(data["abstract"]) == 3
    kinds = [part["@type"] for part in data["hasPart"]]
    assert kinds[0] == "Quotation" and "Table" in kinds
    assert data["hasPart"][0]["text"].startswith("Two governments with common interests")


async def test_a_hostile_title_cannot_leave_the_json_ld(client: TestClient, publisher: Publisher) -> None:
    await _store(publisher, seed_like(id="hostile", slug="hostile", title=HOSTILE_TITLE,
                                      summary='"quoted" <b>summary</b>'))
    response = await client.get("/articles/hostile")
    markup = await response.text()
    assert "</script><script>" not in markup
    root = parse(markup)  # strict: the page is still valid HTML
    assert [s.get("type") for s in root.iter("script")] == ["application/ld+json"]
    data = _linked_data(root)
    assert data["headline"] == HOSTILE_TITLE
    assert _meta(root)["og:title"] == [HOSTILE_TITLE]
    assert _meta(root)["og:description"] == ['"quoted" <b>summary</b>']


async def test_an_article_page_has_open_graph_and_twitter_card_tags(client: TestClient) -> None:
    meta = _meta(await _page(client, "/articles/kim-russia-visit"))
    assert meta["og:type"] == ["article"]
    assert meta["og:title"] == ["Kim Jong Un in Russia: Is the War in Ukraine Forging a New Axis?"]
    assert meta["og:url"] == [SITE + "articles/kim-russia-visit"]
    assert meta["og:image"] == [SITE + "images/kim-arrives.png"]
    assert meta["og:image:alt"] == ["Kim Jong Un arriving in Russia"]
    assert meta["og:description"][0]
    assert meta["og:site_name"] == ["Test Brief"]
    assert datetime.fromisoformat(meta["article:published_time"][0]) == datetime(2023, 9, 14, 9, 0, tzinfo=UTC)
    assert meta["article:tag"] == ["geopolitics", "north-korea", "russia"]
    assert meta["twitter:card"] == ["summary_large_image"]
    assert meta["twitter:image"] == meta["og:image"]


async def test_the_index_describes_the_website(client: TestClient) -> None:
    root = await _page(client, "/")
    meta = _meta(root)
    assert meta["og:type"] == ["website"] and meta["og:url"] == [SITE] and meta["twitter:card"] == ["summary"]
    data = _linked_data(root)
    assert data["@context"] == "https://schema.org" and data["@type"] == "WebSite" and data["url"] == SITE


async def test_an_article_links_its_tags_pages(client: TestClient) -> None:
    root = await _page(client, "/articles/kim-russia-visit")
    hrefs = {a.get("href") for a in root.iter("a")}
    assert {"/tags/geopolitics/", "/tags/north-korea/", "/tags/russia/"} <= hrefs


# --- tags' pages and the archive ----------------------------------------------------------------


async def test_a_tags_page_lists_its_articles_only(client: TestClient) -> None:
    root = await _page(client, "/tags/north-korea/")
    articles = {a.get("href") for a in root.iter("a") if (a.get("href") or "").startswith("/articles/")}
    assert articles == {"/articles/kim-russia-visit"}
    assert "/tags/north-korea/feed.atom" in _links(root, "alternate")
    assert _links(root, "canonical") == [SITE + "tags/north-korea/"]
    assert (await client.get("/tags/no-such-tag/")).status == 404


def _article(n: int, tag: str) -> Any:
    published = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=n)
    return seed_like(id=f"story-{n}", slug=f"story-{n}", title=f"Story {n}", tags=(tag,), published=published,
                     updated=published, canonical_url=f"{SITE}articles/story-{n}")


async def test_the_archive_is_paged_with_prev_and_next(client: TestClient, publisher: Publisher) -> None:
    await _store(publisher, *(_article(n, "Paging") for n in range(2 * PAGE_SIZE + 5)))  # and the 3 samples
    total = 2 * PAGE_SIZE + 5 + 3
    seen: list[str] = []
    for number, prev, following in ((1, None, "/archive?page=2"), (2, "/archive", "/archive?page=3"),
                                    (3, "/archive?page=2", None)):
        root = await _page(client, "/archive" if number == 1 else f"/archive?page={number}")
        assert _links(root, "prev") == ([prev] if prev else [])
        assert _links(root, "next") == ([following] if following else [])
        pager = {a.get("rel"): a.get("href") for a in root.iter("a") if a.get("rel") in ("prev", "next")}
        assert pager == {rel: href for rel, href in (("prev", prev), ("next", following)) if href}
        listed = [a.get("href") for a in root.iter("a") if (a.get("href") or "").startswith("/articles/")]
        assert len(listed) == min(PAGE_SIZE, total - len(seen))
        seen += listed
    stories = [path for path in seen if path.startswith("/articles/story-")]
    assert stories == [f"/articles/story-{n}" for n in reversed(range(2 * PAGE_SIZE + 5))]  # newest first
    assert len(set(seen)) == total
    for path in ("/archive?page=4", "/archive?page=0", "/archive?page=x", "/archive?page=-1"):
        assert (await client.get(path)).status == 404, path
    # The index shows the first page and leads to the second.
    index = await _page(client, "/")
    assert "/archive?page=2" in {a.get("href") for a in index.iter("a")}
    tag_page = await _page(client, "/tags/paging/?page=3")
    assert _links(tag_page, "prev") == ["/tags/paging/?page=2"] and _links(tag_page, "next") == []


# --- crawlers --------------------------------------------------------------------------------


def _sitemap_locations(body: bytes) -> list[str]:
    return [loc.text or "" for loc in etree.fromstring(body).iter(f"{SITEMAP}loc")]


async def test_the_sitemap_lists_the_pages_by_the_sitemaps_protocol(client: TestClient, publisher: Publisher) -> None:
    await _store(publisher, dataclasses.replace(_article(1, "A & B <tag>"), updated=datetime(2024, 2, 1, 12, tzinfo=UTC)))
    response = await client.get("/sitemap.xml")
    assert response.status == 200 and response.content_type == "application/xml"
    body = await response.read()
    root = etree.fromstring(body)
    assert root.tag == f"{SITEMAP}urlset"
    locations: dict[str, str | None] = {}
    for url in root:
        assert url.tag == f"{SITEMAP}url"
        assert {child.tag for child in url} <= {f"{SITEMAP}loc", f"{SITEMAP}lastmod"}
        loc = url.findtext(f"{SITEMAP}loc")
        assert loc and loc.startswith(SITE) and len(loc) < 2048
        locations[loc] = url.findtext(f"{SITEMAP}lastmod")
    assert len(locations) == len(root)  # each once
    for lastmod in filter(None, locations.values()):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lastmod)
    assert locations[SITE + "articles/story-1"] == "2024-02-01T12:00:00Z"
    assert SITE + "articles/kim-russia-visit" in locations and SITE in locations
    assert SITE + "archive" in locations
    assert {SITE + "tags/a-b-tag/", SITE + "tags/north-korea/"} <= set(locations)
    again = await client.get("/sitemap.xml", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status == 304
    await _store(publisher, _article(2, "Later"))  # the sitemap kept is made again once the feeds are
    changed = await client.get("/sitemap.xml", headers={"If-None-Match": response.headers["ETag"]})
    assert changed.status == 200 and changed.headers["ETag"] != response.headers["ETag"]
    assert SITE + "articles/story-2" in _sitemap_locations(await changed.read())


async def test_robots_txt_keeps_crawlers_off_personal_links_and_names_the_sitemap(client: TestClient) -> None:
    response = await client.get("/robots.txt")
    assert response.status == 200 and response.content_type == "text/plain"
    text = await response.text()
    assert f"Sitemap: {SITE}sitemap.xml" in text.splitlines()
    robots = RobotFileParser()
    robots.parse(text.splitlines())
    for allowed in ("", "articles/kim-russia-visit", "tags/russia/", "archive?page=2", "feed.atom", "digests/"):
        assert robots.can_fetch("AnyBot", SITE + allowed), allowed
    for private in ("subscribe", "confirm/abcdefghijkl", "preferences/abcdefghijkl", "preferences",
                    "unsubscribe/abcdefghijkl", "c/daily-1/3?u=x&s=y", "api/subscribers", "metrics"):
        assert not robots.can_fetch("AnyBot", SITE + private), private


# --- past digests ------------------------------------------------------------------------------


async def test_the_past_digests_are_listed_with_their_view_in_browser_copies(
    client: TestClient, publisher: Publisher
) -> None:
    empty = await _page(client, "/digests/")
    assert "No digest has been sent yet." in "".join(empty.itertext())
    await add_subscriber(publisher.engine, "ann@example.org", cadence=Cadence.INSTANT)
    await _store(publisher, seed_like(id="fresh", slug="fresh", title="A fresh article"))
    [digest] = await plan(publisher.engine, Cadence.INSTANT, clock.now(), PlanOptions(max_articles=5))
    planned = await _page(client, "/digests/")  # planned, nothing sent yet: not listed
    assert f"/digests/{digest.id}" not in {a.get("href") for a in planned.iter("a")}
    await publisher.delivery.deliver()
    root = await _page(client, "/digests/")
    hrefs = [a.get("href") for a in root.iter("a")]
    assert f"/digests/{digest.id}" in hrefs
    assert "A fresh article" in "".join(root.itertext())
    assert (await client.get(f"/digests/{digest.id}")).status == 200
    assert (await client.get("/digests/?page=2")).status == 404


async def test_a_tags_page_is_headed_with_the_topics_display_name_and_links_only_feeds_that_exist(
    make_settings: Callable[..., Settings],
) -> None:
    publisher = Publisher(make_settings(
        '[feeds]\nmax_tag_feeds = 0\n[site.topic_names]\nNorth-Korea = "North Korea & the peninsula"\n'
    ))
    await publisher.start()
    try:
        await publisher.intake.scan()
        async with web_client(publisher) as client:
            root = await _page(client, "/tags/north-korea/")
            assert [h.text for h in root.iter("h1")] == ["North Korea & the peninsula"]
            assert not [href for href in _links(root, "alternate") if href.startswith("/tags/")]  # no tag has feeds
            root = await _page(client, "/tags/russia/")
            assert [h.text for h in root.iter("h1")] == ["russia"]  # a tag without a name shows as it is
    finally:
        await publisher.close()
