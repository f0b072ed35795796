"""The public archive pages and what every page must carry (security headers, feeds, lang)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from urllib.parse import urljoin, urlsplit
from xml.etree import ElementTree

import html5lib
import pytest
from aiohttp.test_utils import TestClient
from click.testing import CliRunner

from publisher import clock
from publisher.app import Publisher
from publisher.cli import main
from publisher.config import Settings, load_settings
from publisher.digest.plan import PlanOptions, plan
from publisher.store import articles as article_store
from publisher.store.ingest import ingest
from subscribers.model import Cadence
from tests.support.articles import seed_like
from tests.support.outbox import outbox_messages
from tests.support.people import add_subscriber
from tests.support.web_client import Visitor, web_client

PAGES = ["/", "/subscribe", "/preferences", "/articles/kim-russia-visit", "/no/such/page", "/confirm/junk-token-value"]


@pytest.fixture
async def client(publisher: Publisher) -> AsyncIterator[TestClient]:
    await publisher.intake.scan()
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
    assert (root.get("lang"), root.get("dir")) == ("en", "ltr")
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
    await ingest(publisher.engine, [seed_like(id="fresh", slug="fresh", title="A fresh article")], clock.now())
    [digest] = await plan(publisher.engine, Cadence.INSTANT, clock.now(), PlanOptions(max_articles=5))
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

    monkeypatch.setattr(article_store, "latest", broken)
    response = await client.get("/")
    assert response.status == 500
    body = await response.text()
    assert "Something went wrong" in body and "Traceback" not in body and "nonexistent" not in body


def image_sources(markup: str, base: str) -> set[str]:
    """Every ``<img src>`` of a page or an email, made absolute against ``base``."""
    return {urljoin(base, img.get("src", "")) for img in parse(markup).iter("img")}


async def assert_images_served(client: TestClient, site_url: str, sources: Iterable[str]) -> None:
    """Each image is on our site and the app answers it with an image."""
    for source in sources:
        assert source.startswith(site_url), f"{source} is not under the site URL {site_url}"
        response = await client.get(urlsplit(source).path)
        assert response.status == 200, f"{source}: {response.status}"
        assert response.content_type.startswith("image/"), f"{source}: {response.content_type}"


async def pages_images(client: TestClient, site_url: str) -> set[str]:
    """The images of the index and of every article page it links to."""
    index = parse(await (await client.get("/")).text())
    paths = ["/"] + [a.get("href", "") for a in index.iter("a") if a.get("href", "").startswith("/articles/")]
    found: set[str] = set()
    for path in paths:
        response = await client.get(path)
        assert response.status == 200
        found |= image_sources(await response.text(), urljoin(site_url, path))
    return found


async def test_every_image_of_the_pages_and_the_first_digest_is_served(publisher: Publisher, settings: Settings) -> None:
    await add_subscriber(publisher.engine, "ann@example.org", cadence=Cadence.INSTANT)
    await publisher.intake.scan()
    result = await publisher.delivery.send([Cadence.INSTANT])
    [message] = outbox_messages(settings)
    html = message.get_body(("html",))
    assert html is not None
    site_url = settings.site.url
    async with web_client(publisher) as client:
        in_pages = await pages_images(client, site_url)
        in_digest = image_sources(html.get_content(), site_url)
        view_in_browser = await client.get(f"/digests/{result.planned[0].id}")
        in_digest |= image_sources(await view_in_browser.text(), site_url)
        assert in_pages and in_digest
        await assert_images_served(client, site_url, in_pages | in_digest)


async def test_images_are_cached_and_only_files_are_served(client: TestClient, settings: Settings) -> None:
    images = settings.site.static_dir
    name = next(path.name for path in images.iterdir() if path.is_file())
    (images / ".hidden.png").write_bytes((images / name).read_bytes())
    (images.parent / "secret.txt").write_text("not for the web", encoding="utf-8")
    first = await client.get(f"/images/{name}")
    assert first.status == 200
    assert "max-age=" in first.headers["Cache-Control"]
    again = await client.get(f"/images/{name}", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304
    since = await client.get(f"/images/{name}", headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert since.status == 304
    for path in ("/images/", "/images", "/images/.hidden.png", "/images/../secret.txt", "/images/%2e%2e/secret.txt",
                 "/images/..%2fsecret.txt", "/images/no-such.png"):
        response = await client.get(path)
        assert response.status in (403, 404), path
        assert "not for the web" not in await response.text()


async def test_publisher_init_makes_a_site_whose_images_are_served(tmp_path: Path) -> None:
    site = tmp_path / "site"
    assert CliRunner().invoke(main, ["init", str(site)]).exit_code == 0
    settings = load_settings(site / "config.toml", environ={})
    service = Publisher(settings)
    await service.start()
    try:
        await service.intake.scan()
        async with web_client(service) as client:
            found = await pages_images(client, settings.site.url)
            assert found
            await assert_images_served(client, settings.site.url, found)
    finally:
        await service.close()
