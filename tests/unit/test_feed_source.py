"""The upstream feed source: parse_feed on real-looking WordPress and Ghost feeds, and
FeedFetcher against a real local HTTP server (conditional GET, limits, backoff)."""

from __future__ import annotations

import asyncio
import email.utils
import json
import socket
import time
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lxml.html  # type: ignore[import-untyped]
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler

from publisher.content import upstream as upstream_items
from publisher.content.upstream import parse_feed
from publisher.content.markdown import parse_article
from publisher.content.model import Article, ContentLimits, FactTable, Image, Problem, Quote, Severity
from publisher.sources.upstream import FeedFetcher, user_agent

FEEDS = Path(__file__).parents[1] / "fixtures" / "feeds"
WORDPRESS = (FEEDS / "wordpress.rss").read_bytes()
GHOST = (FEEDS / "ghost.atom").read_bytes()
WP_URL = "https://blog.example.org/feed/"
GHOST_URL = "https://notes.example.com/atom/"
NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
UA = user_agent("https://news.example.org/")


def by_slug(articles: list[Article]) -> dict[str, Article]:
    return {article.slug: article for article in articles}


def body_text(article: Article) -> str:
    """Every text node, blank-separated (so blocks never run together in assertions)."""
    root = lxml.html.fragment_fromstring(article.body_html, create_parent="div")
    return " ".join(" ".join(root.itertext()).split())


def body_tags(article: Article) -> set[str]:
    return {element.tag for element in lxml.html.fragment_fromstring(article.body_html, create_parent="div").iter()}


# --- parse_feed: WordPress RSS 2.0 --------------------------------------------------------


def test_wordpress_post_becomes_a_complete_article() -> None:
    scan = parse_feed(WORDPRESS, WP_URL, now=NOW)
    kim = by_slug(scan.articles)["kim-goes-to-vladivostok"]
    assert kim.id == "https://blog.example.org/?p=4101"  # the guid, not the link
    assert kim.title == "Kim Goes to Vladivostok: Does the Ukraine War Bind Two Outcasts Together?"
    assert kim.canonical_url == "https://blog.example.org/2023/09/14/kim-goes-to-vladivostok/"
    assert kim.author == "Foreign Desk"
    assert kim.tags == ("Analysis", "North Korea", "Russia")
    assert kim.published == kim.updated == datetime(2023, 9, 14, 9, 0, tzinfo=UTC)
    assert kim.takeaways == (
        "Moscow and Pyongyang appear to be discussing weapons for technology swaps",
        "Sanctions from the West are nudging both capitals toward each other",
        "Any bargain would ripple through Northeast Asian security",
    )
    assert kim.fact_tables == (
        FactTable(
            caption="The two economies side by side",
            header=("Indicator", "North Korea", "Russia"),
            rows=(
                ("GDP (Nominal, 2022)", "~$28 Billion (Estimate)", "$2.2 Trillion"),
                ("Military Expenditure (2022)", "A large share of GDP (no exact data)", "$86.4 Billion"),
                ("UN Sanctions", "Broad, aimed at nuclear and missile work", "Imposed over the war in Ukraine"),
                ("Key Exports", "Coal, textiles (largely illicit)", "Oil, gas, weapons"),
            ),
            sources="World Bank, SIPRI and UN reporting; estimates where no official figure exists.",
        ),
    )
    # The enclosure is the lead image; the body shows the same picture, with alt text and caption.
    assert kim.lead_image == Image(
        "https://blog.example.org/wp-content/uploads/2023/09/kim-train.jpg",
        "Kim Jong Un leaving his armoured train",
        "The North Korean leader arrives by rail in the Russian Far East.",
    )
    assert kim.images == (kim.lead_image,)
    assert kim.pull_quote == Quote(
        "Shared grievances against the current order are redrawing the map of who stands with whom.",
        "World Desk editors",
    )
    # The description's excerpt, without WordPress's "[…]" and "appeared first on" footer.
    assert kim.summary == (
        "A train ride to Russia’s Pacific coast tells us a lot about what two heavily sanctioned "
        "governments now want from each other."
    )
    assert kim.source_path == WP_URL


def test_wordpress_boilerplate_and_takeaways_leave_the_body() -> None:
    kim = by_slug(parse_feed(WORDPRESS, WP_URL, now=NOW).articles)["kim-goes-to-vladivostok"]
    text = body_text(kim)
    for gone in (
        "Key Takeaways", "Leave a Reply", "Your email address", "Post Comment", "appeared first on",
        "Share this", "Share on Facebook", "trackView", "Moscow and Pyongyang appear",
    ):  # fmt: skip
        assert gone not in text
    assert not body_tags(kim) & {"script", "form", "textarea", "input", "iframe", "style"}
    assert "twitter.com/intent" not in kim.body_html and "facebook.com/sharer" not in kim.body_html
    # What the reader came for stays, where the author put it.
    assert "Pyongyang lacks food, fuel and hard currency." in text
    assert "<table>" in kim.body_html and "<td>$86.4 Billion</td>" in kim.body_html
    assert "Data Sources:" in text
    assert text.endswith("the meeting shows how fast partnerships can shift once old ones fray.")


def test_wordpress_post_with_paragraph_takeaways_and_a_ragged_table() -> None:
    west = by_slug(parse_feed(WORDPRESS, WP_URL, now=NOW).articles)["what-the-west-can-still-do"]
    assert west.canonical_url == "https://blog.example.org/2023/09/20/what-the-west-can-still-do/"  # was relative
    assert west.takeaways == (
        "Condemnation came fast, and so did threats of new sanctions",
        "Confrontation alone risks cementing the partnership",
    )
    # No <thead>: the first row is the header; the long row widens the table, nothing is lost.
    assert west.fact_tables == (
        FactTable(
            caption="Options on the Table",
            header=("Tool", "Aim", "Risk", ""),
            rows=(
                ("Secondary sanctions", "Raise the cost of brokering deals", "", ""),
                ("Talks with Pyongyang", "Lower tensions", "Seen as a reward", "contested"),
            ),
            sources="World Desk reporting.",
        ),
    )
    # media:content is the lead image; the emoji and the tracking pixel are not images of the article.
    assert west.images == (Image("https://cdn.example.org/images/un-chamber.jpg"),)
    assert "pixel.example.net" not in west.body_html
    assert 'href="https://blog.example.org/tag/diplomacy/"' in west.body_html  # resolved against the link
    text = body_text(west)
    assert "Key Takeaways" not in text and "Confrontation alone" not in text
    assert "Leave a Reply" not in text and "Your email address" not in text and "LinkedIn" not in text
    # A description without content:encoded-style markup is the summary as it stands.
    assert west.summary == "Pressure alone may push the two partners closer. A mix of pressure and talks might not."


def test_items_without_dates_take_the_channel_date() -> None:
    articles = by_slug(parse_feed(WORDPRESS, WP_URL, now=NOW).articles)
    last_build = datetime(2023, 9, 22, 8, 30, tzinfo=UTC)
    for slug in ("what-the-west-can-still-do", "briefing-a-world-in-flux"):
        assert (articles[slug].published, articles[slug].updated) == (last_build, last_build)
    briefing = articles["briefing-a-world-in-flux"]
    assert briefing.id == briefing.canonical_url == "https://blog.example.org/2023/09/21/briefing-a-world-in-flux/"
    # Only a description: it is the body, and its first paragraph the summary.
    assert briefing.summary == "Alliances are being rearranged faster than at any time in a generation."
    assert "More voices could mean more friction." in body_text(briefing)


def test_duplicate_guid_and_an_item_without_link_are_reported_and_the_rest_kept() -> None:
    scan = parse_feed(WORDPRESS, WP_URL, now=NOW)
    assert [a.slug for a in scan.articles] == [  # newest first
        "briefing-a-world-in-flux", "what-the-west-can-still-do", "kim-goes-to-vladivostok",
    ]  # fmt: skip
    assert scan.problems == [
        Problem(
            WP_URL, 0,
            "item 4 (https://blog.example.org/?p=4101): duplicate id 'https://blog.example.org/?p=4101' (also item 1)",
        ),
        Problem(WP_URL, 0, "item 5 (no id): no guid, id or link"),
    ]  # fmt: skip
    # The first of the two keeps its content: the republished copy did not replace it.
    assert by_slug(scan.articles)["kim-goes-to-vladivostok"].published.day == 14


def test_a_guid_longer_than_the_store_holds_is_reported_and_a_long_slug_cut() -> None:
    long_guid = "https://blog.example.org/?p=" + "9" * 1000
    long_link = "https://blog.example.org/" + "-".join(["word"] * 100) + "/"
    rss = f"""<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title><link>https://blog.example.org/</link>
<item><title>Too long</title><guid>{long_guid}</guid><link>https://blog.example.org/too-long/</link></item>
<item><title>Long link</title><guid>https://blog.example.org/?p=2</guid><link>{long_link}</link></item>
</channel></rss>""".encode()
    scan = parse_feed(rss, WP_URL, now=NOW)
    assert scan.problems == [Problem(WP_URL, 0, f"item 1 ({long_guid}): guid longer than 1000 characters")]
    [article] = scan.articles
    assert len(article.slug) <= 300 and article.slug.startswith("word-word") and not article.slug.endswith("-")


def test_ids_and_content_are_stable_across_fetches() -> None:
    first = parse_feed(WORDPRESS, WP_URL, now=NOW)
    again = parse_feed(WORDPRESS, WP_URL, now=NOW + timedelta(hours=1))
    assert [(a.id, a.content_hash()) for a in first.articles] == [(a.id, a.content_hash()) for a in again.articles]


# --- parse_feed: Ghost-style Atom with XHTML content ----------------------------------------


def test_atom_xhtml_entry() -> None:
    scan = parse_feed(GHOST, GHOST_URL, now=NOW)
    assert scan.problems == [] and scan.title == "Northeast Asia Notes"
    post = by_slug(scan.articles)["shells-for-satellites"]
    assert post.id == "tag:notes.example.com,2023:post-77"
    assert post.title == "Shells for Satellites? Reading the Summit"  # type="html" title, as text
    assert post.canonical_url == "https://notes.example.com/shells-for-satellites/"
    assert post.published == datetime(2023, 9, 18, 5, 30, tzinfo=UTC)
    assert post.updated == datetime(2023, 9, 19, 8, 0, tzinfo=UTC)
    assert post.published.tzinfo is not None
    assert post.author == "Mina Park"
    assert post.tags == ("Defence", "russia")
    assert post.summary == "Neither side has published terms, but the likely trade is easy to sketch."
    # A lower-case heading, with a line of introduction before its numbered list.
    assert post.takeaways == (
        "Russia wants artillery ammunition in volume",
        "North Korea wants help with satellites, submarines and missiles",
    )
    assert post.images == (
        Image("https://notes.example.com/content/images/summit-thumb.jpg"),  # media:thumbnail leads
        Image(
            "https://notes.example.com/shells-for-satellites/images/summit-table.jpg",
            "Delegations at the summit table",
            "The two delegations meet.",
        ),
    )
    assert post.pull_quote == Quote(
        "Quantity has a quality all of its own on this front.", "A retired artillery officer"
    )
    assert post.fact_tables == (
        FactTable(
            caption="Beyond Weapons",  # the nearest heading above the table
            header=("Area", "What could change"),
            rows=(
                ("Energy", "Russian oil and gas ease fuel shortages"),
                ("Trade", "More goods north, a new outlet for Russian exports"),
                ("Diplomatic cover at the UN Security Council", ""),  # colspan="2"
            ),
            sources="Notes research desk",
        ),
    )
    text = body_text(post)
    assert "Key takeaways" not in text and "In short:" not in text and "artillery ammunition" not in text
    assert text.startswith("Neither government has said what was agreed")
    assert "<em>munitions</em>" in post.body_html
    assert "xmlns" not in post.body_html


def test_atom_missing_dates_and_plain_text_content() -> None:
    articles = by_slug(parse_feed(GHOST, GHOST_URL, now=NOW).articles)
    only_updated = articles["only-an-update-date"]
    assert only_updated.published == only_updated.updated == datetime(2023, 9, 21, 8, 0, tzinfo=UTC)
    assert "form" not in body_tags(only_updated) and "input" not in body_tags(only_updated)
    assert only_updated.author == "Notes Staff"  # Atom: the feed's author stands for the entry's
    undated = articles["no-dates-at-all"]
    assert undated.published == undated.updated == datetime(2023, 9, 25, 12, 0, tzinfo=UTC)  # the feed's updated
    assert undated.body_html == "<p>Plain text content &amp; no markup.</p>"


def test_no_date_anywhere_means_now_and_updated_is_never_before_published() -> None:
    rss = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><link>https://x.example/</link>
    <item><title>Undated</title><link>https://x.example/undated</link></item>
    <item><title>Backwards</title><link>https://x.example/backwards</link>
      <pubDate>Tue, 02 Jan 2024 00:00:00 +0000</pubDate>
      <dc:date xmlns:dc="http://purl.org/dc/elements/1.1/">2024-01-01T00:00:00Z</dc:date></item>
    </channel></rss>"""
    articles = by_slug(parse_feed(rss, "https://x.example/feed", now=NOW).articles)
    assert articles["undated"].published == articles["undated"].updated == NOW
    backwards = articles["backwards"]
    assert backwards.published == backwards.updated == datetime(2024, 1, 2, tzinfo=UTC)
    # Reused from the last parse, an undated item still takes this parse's date.
    items = upstream_items.ParsedItems()
    parse_feed(rss, "https://x.example/feed", now=NOW, items=items)
    later = NOW + timedelta(hours=1)
    again = by_slug(parse_feed(rss, "https://x.example/feed", now=later, items=items).articles)
    assert again["undated"].published == again["undated"].updated == later
    assert again["backwards"] == backwards


def one_item(html: str) -> Article:
    """The one article of an RSS feed whose item's body is ``html``."""
    rss = (
        '<?xml version="1.0"?><rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        "<channel><title>T</title><link>https://x.example/</link><item><title>Item</title>"
        f"<link>https://x.example/item</link><content:encoded><![CDATA[{html}]]></content:encoded></item>"
        "</channel></rss>"
    )
    (article,) = parse_feed(rss.encode(), "https://x.example/feed", now=NOW).articles
    return article


def markdown_file(body: str) -> Article:
    return parse_article(f"---\ntitle: T\ndate: 2024-01-02\n---\n{body}".encode(), "t.md", "https://x.example/")


# The rules of publisher.content.extract, as an upstream feed's HTML and as Markdown:
# each variant is recognised by both parsers.
@pytest.mark.parametrize("line", ["— Someone Smart", "—Someone Smart", "– Someone Smart", "-- Someone Smart"])
def test_a_quote_names_its_speaker_with_the_same_dashes_upstream_and_in_markdown(line: str) -> None:
    from_feed = one_item(f"<blockquote><p>A new landscape.</p><p>{line}</p></blockquote>")
    from_markdown = markdown_file(f"> A new landscape.\n>\n> {line}\n")
    for article in (from_feed, from_markdown):
        assert article.pull_quote == Quote("A new landscape.", "Someone Smart")


@pytest.mark.parametrize("label", ["Source:", "Sources:", "Data Sources:", "data sources :"])
def test_a_table_names_its_sources_with_the_same_labels_upstream_and_in_markdown(label: str) -> None:
    from_feed = one_item(f"<table><tr><th>A</th></tr><tr><td>1</td></tr></table><p>{label} World Bank</p>")
    from_markdown = markdown_file(f"| A |\n| - |\n| 1 |\n\n{label} World Bank\n")
    for article in (from_feed, from_markdown):
        assert [table.sources for table in article.fact_tables] == ["World Bank"]


def test_not_a_feed_is_one_problem() -> None:
    page = b"<!doctype html><html><head><title>Blog</title></head><body><p>Hello<br></body></html>"
    scan = parse_feed(page, WP_URL, now=NOW)
    assert not scan.is_feed and scan.articles == []
    assert len(scan.problems) == 1
    assert str(scan.problems[0]).startswith(f"{WP_URL}:0: not an RSS or Atom feed")


def test_an_empty_feed_is_a_feed_even_with_a_charset_quarrel() -> None:
    rss = '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Café</title></channel></rss>'
    scan = parse_feed(rss.encode(), WP_URL, now=NOW, content_type="text/xml")  # text/xml means us-ascii
    assert scan.is_feed and scan.title == "Café" and scan.articles == [] and scan.problems == []


def test_article_text_that_looks_like_boilerplate_stays() -> None:
    rss = b"""<rss version="2.0"><channel><title>T</title><item><title>Shares</title>
    <link>https://x.example/shares</link><guid isPermaLink="false">s-1</guid><description><![CDATA[
    <h2 id="market-share">Market share</h2><p class="correspondent">Our correspondent reports.</p>
    <h2>One thought on the summit</h2><p>It changed little.</p>
    <p>The post office stayed open.</p>]]></description></item></channel></rss>"""
    (article,) = parse_feed(rss, "https://x.example/feed", now=NOW).articles
    assert body_text(article) == (
        "Market share Our correspondent reports. One thought on the summit It changed little. "
        "The post office stayed open."
    )


def test_one_broken_item_does_not_stop_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    sanitize = upstream_items.sanitize_html

    def fail_on_one(markup: str, base_url: str) -> str:
        if base_url.endswith("/what-the-west-can-still-do/"):
            raise ValueError("simulated parser crash")
        return sanitize(markup, base_url)

    monkeypatch.setattr(upstream_items, "sanitize_html", fail_on_one)
    scan = parse_feed(WORDPRESS, WP_URL, now=NOW)
    assert [a.slug for a in scan.articles] == ["briefing-a-world-in-flux", "kim-goes-to-vladivostok"]
    assert Problem(
        WP_URL, 0, "item 2 (https://blog.example.org/?p=4117): cannot read it: ValueError: simulated parser crash"
    ) in scan.problems


def test_unsafe_link_is_reported() -> None:
    rss = b"""<rss version="2.0"><channel><title>T</title>
    <item><title>Bad</title><guid isPermaLink="false">b-1</guid><link>javascript:alert(1)</link></item>
    <item><title>Good</title><guid isPermaLink="false">g-1</guid><link>https://x.example/good</link></item>
    </channel></rss>"""
    scan = parse_feed(rss, "https://x.example/feed", now=NOW)
    assert [a.id for a in scan.articles] == ["g-1"]
    assert scan.problems == [
        Problem("https://x.example/feed", 0, "item 1 (b-1): link 'javascript:alert(1)' is not an http(s) URL")
    ]


# --- FeedFetcher against a real server ------------------------------------------------------


@dataclass
class Upstream:
    """A blog's web server whose behaviour each route chooses; it records what it was sent."""

    server: TestServer
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    never: asyncio.Event = field(default_factory=asyncio.Event)
    feed: bytes = WORDPRESS  # what /always-200 serves

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def headers_of(self, path: str) -> list[dict[str, str]]:
        return [headers for seen, headers in self.requests if seen == path]


ETAG = '"wp-feed-4117"'
LAST_MODIFIED = "Fri, 22 Sep 2023 08:30:00 GMT"
TEN_MB = 10 * 1024 * 1024


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    app = web.Application()
    state: Upstream

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        state.requests.append((request.path, dict(request.headers)))
        state.calls[request.path] = state.calls.get(request.path, 0) + 1
        return await handler(request)

    app.middlewares.append(record)

    async def wordpress(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == ETAG:
            return web.Response(status=304, headers={"ETag": ETAG})
        headers = {"ETag": ETAG, "Last-Modified": LAST_MODIFIED}
        return web.Response(body=WORDPRESS, content_type="application/rss+xml", charset="utf-8", headers=headers)

    async def always_200(request: web.Request) -> web.Response:  # ignores conditional GET
        return web.Response(body=state.feed, content_type="application/rss+xml", headers={"ETag": ETAG})

    async def ghost(request: web.Request) -> web.Response:
        return web.Response(body=GHOST, content_type="application/atom+xml")

    async def flaky(request: web.Request) -> web.Response:
        if state.calls[request.path] == 1:
            return web.Response(status=500, text="database is down")
        return web.Response(body=WORDPRESS, content_type="application/rss+xml")

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=502, text="bad gateway")

    async def throttled(request: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": "120"})

    async def unavailable(request: web.Request) -> web.Response:
        when = email.utils.format_datetime(NOW + timedelta(minutes=10), usegmt=True)
        return web.Response(status=503, headers={"Retry-After": when})

    async def slow(request: web.Request) -> web.Response:
        await state.never.wait()  # set only at teardown: the client must give up by itself
        return web.Response(body=WORDPRESS)

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})  # chunked: no length
        await response.prepare(request)
        chunk = b"<!-- filler -->\n" * 4096  # 64 KiB
        try:
            for _ in range(TEN_MB // len(chunk)):
                await response.write(chunk)
        except ConnectionError:
            return response
        await response.write_eof()
        return response

    async def huge_declared(request: web.Request) -> web.Response:
        return web.Response(body=b" " * TEN_MB, content_type="application/rss+xml")

    async def hop(request: web.Request) -> web.Response:
        left = int(request.match_info["left"])
        if left == 0:
            return web.Response(body=WORDPRESS, content_type="application/rss+xml")
        raise web.HTTPFound(f"/hop/{left - 1}")

    async def html_page(request: web.Request) -> web.Response:
        return web.Response(text="<html><body><h1>Not here</h1>", content_type="text/html", headers={"ETag": '"p"'})

    app.router.add_get("/feed/", wordpress)
    app.router.add_get("/atom/", ghost)
    app.router.add_get("/always-200", always_200)
    app.router.add_get("/flaky", flaky)
    app.router.add_get("/broken", broken)
    app.router.add_get("/throttled", throttled)
    app.router.add_get("/unavailable", unavailable)
    app.router.add_get("/slow", slow)
    app.router.add_get("/huge", huge)
    app.router.add_get("/huge-declared", huge_declared)
    app.router.add_get("/hop/{left}", hop)
    app.router.add_get("/page", html_page)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    state = Upstream(server)
    yield state
    state.never.set()
    await server.close()


def fetcher(url: str, **options: object) -> FeedFetcher:
    return FeedFetcher(url, user_agent=UA, clock=lambda: NOW, **options)  # type: ignore[arg-type]


async def test_fetch_parses_then_conditional_get_is_304(upstream: Upstream) -> None:
    async with fetcher(upstream.url("/feed/")) as source:
        first = await source.fetch()
        assert first.ok and first.status == 200 and first.scan is not None
        assert [a.slug for a in first.scan.articles] == [
            "briefing-a-world-in-flux", "what-the-west-can-still-do", "kim-goes-to-vladivostok",
        ]  # fmt: skip
        # Relative links resolve against where the feed really is.
        assert first.scan.articles[1].canonical_url == upstream.url("/2023/09/20/what-the-west-can-still-do/")
        assert (first.validators.etag, first.validators.last_modified) == (ETAG, LAST_MODIFIED)
        source.commit(first)
        second = await source.fetch()
    assert second.unchanged and second.scan is None and second.status == 304
    sent = upstream.headers_of("/feed/")
    assert "If-None-Match" not in sent[0]
    assert sent[1]["If-None-Match"] == ETAG and sent[1]["If-Modified-Since"] == LAST_MODIFIED
    assert all(headers["User-Agent"] == "publisher/0.1.0 (+https://news.example.org/)" for headers in sent)


async def test_validators_are_used_only_once_committed(upstream: Upstream) -> None:
    """Until the caller has stored the articles, a refetch must return them again."""
    async with fetcher(upstream.url("/feed/")) as source:
        assert (await source.fetch()).status == 200
        assert (await source.fetch()).status == 200
    assert all("If-None-Match" not in headers for headers in upstream.headers_of("/feed/"))


async def test_an_unchanged_item_is_not_parsed_again_and_a_changed_one_is(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that answers 200 with the same bytes costs no item parsing the second time."""
    parsed: list[str] = []
    parse_item = upstream_items._article

    def counted(entry: Any, item_id: str, *args: Any) -> tuple[Article, list[str]]:
        parsed.append(item_id)
        return parse_item(entry, item_id, *args)

    monkeypatch.setattr(upstream_items, "_article", counted)
    async with fetcher(upstream.url("/always-200")) as source:
        first = await source.fetch()
        source.commit(first)
        assert first.scan is not None and len(first.scan.articles) == 3
        items = len(parsed)
        second = await source.fetch()
        assert second.status == 200 and second.scan is not None
        assert parsed[items:] == []  # the same bytes: no item parsed again
        assert second.scan.articles == first.scan.articles
        assert second.scan.problems == first.scan.problems
        upstream.feed = WORDPRESS.replace(b"When Kim Jong Un stepped", b"When Kim Jong Un, as ever, stepped", 1)
        third = await source.fetch()
    assert third.scan is not None
    assert parsed[items:] == ["https://blog.example.org/?p=4101"]  # only the edited item
    kim = by_slug(third.scan.articles)["kim-goes-to-vladivostok"]
    assert "as ever" in body_text(kim)
    assert [a for a in third.scan.articles if a.id != kim.id] == [a for a in first.scan.articles if a.id != kim.id]


async def test_atom_feed_over_http(upstream: Upstream) -> None:
    async with fetcher(upstream.url("/atom/")) as source:
        result = await source.fetch()
    assert result.ok and result.scan is not None and result.scan.problems == []
    slugs = {a.slug for a in result.scan.articles}
    assert slugs == {"shells-for-satellites", "only-an-update-date", "no-dates-at-all"}


async def test_state_file_keeps_validators_and_backoff_across_restarts(upstream: Upstream, tmp_path: Path) -> None:
    state = tmp_path / "state" / "blog.json"
    async with fetcher(upstream.url("/feed/"), state_path=state) as source:
        source.commit(await source.fetch())
    assert json.loads(state.read_text())["etag"] == ETAG
    async with fetcher(upstream.url("/feed/"), state_path=state) as restarted:
        assert (await restarted.fetch()).unchanged
    # Another URL in the config: the old validators do not apply.
    async with fetcher(upstream.url("/throttled"), state_path=state) as other:
        assert other.validators.etag == ""
        failed = await other.fetch()
    async with fetcher(upstream.url("/throttled"), state_path=state) as restarted:
        assert restarted.retry_at == failed.retry_at == NOW + timedelta(seconds=120)
        assert not restarted.due(NOW)


async def test_server_error_backs_off_then_success_resets(upstream: Upstream) -> None:
    async with fetcher(upstream.url("/flaky"), backoff_base=60) as source:
        failed = await source.fetch()
        assert not failed.ok and failed.status == 500 and failed.scan is None
        assert failed.error == "HTTP 500 Internal Server Error"
        assert failed.retry_at is not None
        assert NOW + timedelta(seconds=30) <= failed.retry_at <= NOW + timedelta(seconds=60)  # jittered
        assert not source.due(NOW) and source.due(failed.retry_at)
        recovered = await source.fetch()
        assert recovered.ok and recovered.scan is not None and len(recovered.scan.articles) == 3
        assert recovered.retry_at is None and source.retry_at is None and source.due(NOW)


async def test_backoff_grows_with_each_failure_in_a_row(upstream: Upstream) -> None:
    async with fetcher(upstream.url("/broken"), backoff_base=60, backoff_limit=200) as source:
        pauses = []
        for _ in range(4):
            result = await source.fetch()
            assert result.error == "HTTP 502 Bad Gateway" and result.retry_at is not None
            pauses.append((result.retry_at - NOW).total_seconds())
    for pause, ceiling in zip(pauses, [60, 120, 200, 200]):
        assert ceiling / 2 <= pause <= ceiling


async def test_429_honours_retry_after_seconds(upstream: Upstream) -> None:
    async with fetcher(upstream.url("/throttled"), backoff_base=60) as source:
        result = await source.fetch()
    assert result.status == 429 and result.error == "HTTP 429 Too Many Requests"
    assert result.retry_at == NOW + timedelta(seconds=120)
    assert not source.due(NOW + timedelta(seconds=119)) and source.due(NOW + timedelta(seconds=120))


async def test_503_honours_retry_after_http_date(upstream: Upstream) -> None:
    async with fetcher(upstream.url("/unavailable"), backoff_base=60) as source:
        result = await source.fetch()
    assert result.status == 503 and result.retry_at == NOW + timedelta(minutes=10)


async def test_a_stalled_server_times_out(upstream: Upstream) -> None:
    started = time.monotonic()
    async with fetcher(upstream.url("/slow"), timeout=0.5, connect_timeout=0.5) as source:
        result = await source.fetch()
    assert result.error == "no complete response within 0.5 s"
    assert result.status is None and result.retry_at is not None
    assert time.monotonic() - started < 5


async def test_a_streamed_10_mb_response_fails_cleanly_at_the_limit(upstream: Upstream) -> None:
    """No Content-Length to go by: reading stops at the limit, the whole body is never held."""
    async with fetcher(upstream.url("/huge")) as source:
        tracemalloc.start()
        try:
            result = await source.fetch()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert not result.ok and result.scan is None and result.retry_at is not None
    assert result.error == "response is larger than the 5,242,880 byte limit"
    assert peak < 9 * 1024 * 1024  # about 6 MB here, the server's side included


async def test_a_declared_10_mb_response_is_refused_before_reading(upstream: Upstream) -> None:
    async with fetcher(upstream.url("/huge-declared")) as source:
        result = await source.fetch()
    assert result.error == "response of 10,485,760 bytes is larger than the 5,242,880 byte limit"
    assert result.status == 200 and result.scan is None and result.retry_at is not None


async def test_redirects_are_followed_up_to_the_limit(upstream: Upstream) -> None:
    async with fetcher(upstream.url("/hop/5"), max_redirects=5) as source:
        followed = await source.fetch()
    assert followed.ok and followed.url == upstream.url("/hop/0")
    async with fetcher(upstream.url("/hop/6"), max_redirects=5) as source:
        too_many = await source.fetch()
    assert too_many.error == "more than 5 redirects" and too_many.retry_at is not None
    assert upstream.calls.get("/hop/0") == 1  # the longer chain never reached the end


async def test_an_html_page_is_an_error_and_its_validators_are_not_kept(upstream: Upstream) -> None:
    async with fetcher(upstream.url("/page")) as source:
        result = await source.fetch()
        source.commit(result)
        assert result.status == 200 and result.error.startswith("not an RSS or Atom feed")
        assert result.retry_at is not None and source.validators.etag == ""


async def test_connection_refused_is_a_network_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with fetcher(f"http://127.0.0.1:{port}/feed") as source:
        result = await source.fetch()
    assert result.error.startswith("network error: ") and result.status is None and result.retry_at is not None


async def test_a_shared_session_is_not_closed(upstream: Upstream) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with fetcher(upstream.url("/atom/"), session=session) as source:
            assert (await source.fetch()).ok
        assert not session.closed


def test_script_and_style_in_an_upstream_title_or_excerpt_are_not_text() -> None:
    atom = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><id>urn:t</id>
    <updated>2024-02-01T00:00:00Z</updated><entry><id>urn:e1</id>
    <title type="html">Solar &lt;script&gt;alert('x')&lt;/script&gt;co-ops</title>
    <link href="https://x.example/solar"/><updated>2024-02-01T00:00:00Z</updated>
    <summary type="html">Grew &lt;style&gt;p{color:red}&lt;/style&gt;fast.</summary>
    <content type="html">&lt;p&gt;Body &lt;script&gt;steal()&lt;/script&gt;text.&lt;/p&gt;</content>
    </entry></feed>"""
    (article,) = parse_feed(atom, "https://x.example/feed", now=NOW).articles
    assert article.title == "Solar co-ops"
    assert article.summary == "Grew fast."
    assert body_text(article) == "Body text."


def test_upstream_table_alignment_from_align_or_text_align() -> None:
    rss = b"""<rss version="2.0"><channel><title>T</title><item><title>Output</title>
    <link>https://x.example/output</link><guid isPermaLink="false">o-1</guid><description><![CDATA[
    <table><thead><tr><th>Co-op</th><th style="text-align: right">Members</th><th align="center">Status</th>
    <th style="color: red">Note</th></tr></thead>
    <tbody><tr><td>Ridge</td><td style="TEXT-ALIGN:right;">87</td><td align="center">planned</td><td>small</td></tr></tbody>
    </table>]]></description></item></channel></rss>"""
    (article,) = parse_feed(rss, "https://x.example/feed", now=NOW).articles
    assert article.fact_tables[0].align == ("", "right", "center", "")
    body = lxml.html.fragment_fromstring(article.body_html, create_parent="div")
    for row in body.iter("tr"):
        assert [cell.get("align") for cell in row] == [None, "right", "center", None]
        assert all(cell.get("style") is None for cell in row)


# --- limits: hostile sizes cost bounded work ---------------------------------------------


def _hostile_feed(tables: int = 0, rows: int = 1, tags: int = 0) -> bytes:
    """One item with ``tables`` tables after one heading (the worst case for captions) and ``tags`` categories."""
    table = "<table><tr><th>Year</th><th>Output</th></tr>" + "".join(
        f"<tr><td>{2000 + r}</td><td>{r} MW</td></tr>" for r in range(rows)
    ) + "</table>"
    body = "<h2>Figures</h2><p>Intro.</p>" + table * tables
    categories = "".join(f"<category>tag {n}</category>" for n in range(tags))
    return f"""<rss version="2.0"><channel><title>T</title>
    <item><title>Big</title><guid isPermaLink="false">big-1</guid><link>https://x.example/big</link>{categories}
    <description><![CDATA[{body}]]></description></item>
    <item><title>Small</title><guid isPermaLink="false">small-1</guid><link>https://x.example/small</link></item>
    </channel></rss>""".encode()


def _cpu_seconds(data: bytes, limits: ContentLimits) -> float:
    """The least CPU time of three parses (the machine is shared: the minimum is the parse's own)."""
    timings = []
    for _ in range(3):
        started = time.process_time()
        parse_feed(data, "https://x.example/feed", now=NOW, limits=limits)
        timings.append(time.process_time() - started)
    return min(timings)


def test_many_upstream_tables_parse_in_linear_time() -> None:
    """15 times the tables take about 15 times as long, not 100 (each caption was a search back)."""
    every_table = ContentLimits(max_tables=10_000)
    small = _cpu_seconds(_hostile_feed(tables=200), every_table)
    large = _cpu_seconds(_hostile_feed(tables=3000), every_table)
    assert large < 45 * small, (small, large)
    big = parse_feed(_hostile_feed(tables=3000), "https://x.example/feed", now=NOW, limits=every_table).articles[0]
    assert {table.caption for table in big.fact_tables} == {"Figures"}


def test_upstream_tables_tags_and_cells_past_the_limits_are_left_out_with_warnings() -> None:
    limits = ContentLimits(max_tables=3, max_tags=5, max_table_cells=50)
    scan = parse_feed(_hostile_feed(tables=4, rows=100, tags=1500), "https://x.example/feed", now=NOW, limits=limits)
    assert [a.id for a in scan.articles] == ["big-1", "small-1"]  # the others are not held up
    big = scan.articles[0]
    assert big.tags == ("tag 0", "tag 1", "tag 2", "tag 3", "tag 4")
    assert len(big.fact_tables) == 3 and big.body_html.count("<table") == 4
    assert {(len(t.rows), t.more_rows) for t in big.fact_tables} == {(24, 76)}
    assert all(p.severity == Severity.WARNING for p in scan.problems)
    messages = [str(p) for p in scan.problems]
    assert "https://x.example/feed:0: warning: item 1 (big-1): 1500 tags: only the first 5 are kept " \
           "([content] max_tags = 5)" in messages
    assert any("item 1 (big-1): 4 tables: only the first 3 are fact tables" in m for m in messages)
    assert any("item 1 (big-1): table 1 has more than 50 cells: emails show its first 24 rows" in m for m in messages)


def test_a_huge_upstream_title_is_cut_with_a_warning() -> None:
    feed = f"""<rss version="2.0"><channel><title>Blog</title><item><title>{"Results " * 125_000}</title>
<link>https://blog.example.com/huge/</link><pubDate>Fri, 20 Nov 2026 08:00:00 +0000</pubDate>
<description>Revenue rose.</description></item></channel></rss>"""
    scan = parse_feed(feed.encode(), WP_URL, now=NOW, limits=ContentLimits(max_title_length=120))
    [article] = scan.articles
    assert len(article.title) <= 120 and article.title.endswith("Results…")
    [problem] = scan.problems
    assert problem.severity == Severity.WARNING and "title is longer than 120 characters" in problem.message


def test_an_unparseable_image_url_drops_the_image_not_the_item() -> None:
    feed = b"""<rss version="2.0"><channel><title>Blog</title><item><title>Broken image</title>
<link>https://blog.example.com/broken/</link><pubDate>Fri, 20 Nov 2026 08:00:00 +0000</pubDate>
<description>&lt;p&gt;Text.&lt;img src="http://[oops/a.png" alt="a"&gt;&lt;/p&gt;</description></item></channel></rss>"""
    scan = parse_feed(feed, WP_URL, now=NOW)
    [article] = scan.articles
    assert article.title == "Broken image" and article.images == () and not scan.problems
