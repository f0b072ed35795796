"""The sitemap and robots.txt as documents: their structure, limits and base paths (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.robotparser import RobotFileParser

from lxml import etree

from publisher.web import crawlers

SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
WHEN = datetime(2024, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))


def _locations(body: bytes) -> list[str]:
    root = etree.fromstring(body)
    assert root.tag == f"{SITEMAP}urlset"
    return [url.findtext(f"{SITEMAP}loc") for url in root]


def test_the_sitemap_lists_the_site_pages_then_the_articles_with_utc_lastmod() -> None:
    site = "https://example.org/news/"
    body = crawlers.sitemap(site, [("b", WHEN), ("a", WHEN - timedelta(days=1))], ["climate"], page_size=1)
    assert body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert _locations(body) == [
        site, site + "archive", site + "archive?page=2", site + "tags/climate/", site + "articles/b", site + "articles/a",
    ]
    root = etree.fromstring(body)
    assert [url.findtext(f"{SITEMAP}lastmod") for url in root] == [
        "2024-03-01T10:30:00Z", None, None, None, "2024-03-01T10:30:00Z", "2024-02-29T10:30:00Z",
    ]


def test_the_sitemap_keeps_to_the_protocols_url_limit() -> None:
    articles = [(f"a-{n}", datetime(2024, 1, 1, tzinfo=UTC)) for n in range(crawlers.MAX_URLS)]
    locations = _locations(crawlers.sitemap("https://example.org/", articles, ["t"], page_size=1000))
    assert len(locations) == crawlers.MAX_URLS
    site_pages = 1 + 50 + 1  # the index, the archive's 50 pages, a tag's page
    assert locations[-1] == f"https://example.org/articles/a-{crawlers.MAX_URLS - site_pages - 1}"  # the newest fill up


def test_robots_rules_carry_the_base_path() -> None:
    text = crawlers.robots("https://example.org/news/").decode()
    robots = RobotFileParser()
    robots.parse(text.splitlines())
    assert robots.can_fetch("Bot", "https://example.org/news/articles/x")
    assert not robots.can_fetch("Bot", "https://example.org/news/unsubscribe/abcdefghijkl")
    assert not robots.can_fetch("Bot", "https://example.org/news/api/subscribers")
    assert "Sitemap: https://example.org/news/sitemap.xml" in text.splitlines()
