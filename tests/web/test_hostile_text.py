"""Hostile text from every source never breaks a feed, a page or a digest.

A character XML or an email header cannot carry (a C0 or C1 control, a noncharacter,
a lone surrogate) in any field of a Markdown file, a JSON or Markdown body posted to
the API, or an upstream feed item used to make the feed build and the digest raise.
These properties drive arbitrary Unicode, and every such character on purpose,
through each source and then through every renderer a reader sees.
"""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from xml.sax.saxutils import escape

import feedparser
import lxml.html
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from sqlalchemy import select, update

from publisher.app import Publisher
from publisher.config import DeliverySettings, Settings, SiteSettings
from publisher.content.upstream import parse_feed
from publisher.content.markdown import read_article
from publisher.content.model import Article
from publisher.feeds.build import build_feeds
from publisher.mail.message import build_message
from publisher.mail.render import Personal, render_digest
from publisher.store.schema import articles
from publisher.templating import make_environment
from publisher.web.api.articles import markdown_document
from publisher.web import metadata
from publisher.web.pages import SITE_FEEDS
from publisher.runtime import scheduler
from subscribers.model import Cadence
from tests.support.outbox import outbox_messages
from tests.support.people import add_subscriber
from tests.support.web_client import api_client

SITE = "https://news.example.org/"
FEED_URL = "https://blog.example.com/feed/"
NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
SETTINGS = Settings(
    site=SiteSettings(title="World Desk", url=SITE, postal_address="1 Example Street"),
    delivery=DeliverySettings(from_address="newsletter@news.example.org", from_name="World Desk"),
)
ENV = make_environment()
STRICT_XML = etree.XMLParser(resolve_entities=False, no_network=True)

C0 = [chr(c) for c in range(0x20)]
C1 = [chr(c) for c in range(0x7F, 0xA0)]
NONCHARACTERS = ["\ufffe", "\uffff"]
SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]
BIDI = [chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]]
HOSTILE = C0 + C1 + NONCHARACTERS + BIDI


def hostile_text(extra: list[str]) -> st.SearchStrategy[str]:
    """Arbitrary Unicode with the characters under test mixed in on purpose."""
    piece = st.one_of(st.text(max_size=8), st.sampled_from(HOSTILE + extra))
    return st.lists(piece, max_size=8).map("".join)


FILE_TEXT = hostile_text([])  # a UTF-8 file cannot hold a lone surrogate
ANY_TEXT = hostile_text(SURROGATES)  # a JSON escape or an XML character reference can
PROPERTY = settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def readers_see(article: Article) -> None:
    """Every artefact a reader gets from ``article`` is produced and valid."""
    docs = build_feeds([article], SETTINGS.site, 20, ENV)
    for path in ("feed.rss", "feed.atom"):
        etree.fromstring(docs[path].body, STRICT_XML)  # strict: raises on any XML error
        parsed = feedparser.parse(docs[path].body)
        assert not parsed.bozo, (path, parsed.get("bozo_exception"))
        assert len(parsed.entries) == 1
    assert len(json.loads(docs["feed.json"].body)["items"]) == 1
    page = ENV.get_template("web/article.html").render(
        article=article, tag_feeds=(), tag_pages=(), site=SETTINGS.site, base="/", feeds=SITE_FEEDS, extra_feeds=(),
        social=metadata.article_tags(article, SETTINGS.site),
        linked_data=metadata.article_linked_data(article, SETTINGS.site),
    )
    page.encode("utf-8")  # what aiohttp sends: a lone surrogate would raise here
    [block] = lxml.html.document_fromstring(page).xpath('//script[@type="application/ld+json"]')
    assert json.loads(block.text)["headline"] == article.title  # no text leaves (or breaks) the JSON-LD
    rendered = render_digest([article], SETTINGS, ENV, "2026-11-21-daily", "daily")
    who = Personal(name="Reader", email="reader@example.org", unsubscribe_url=f"{SITE}u/x", preferences_url=f"{SITE}p/x")
    raw = build_message(rendered, who, settings=SETTINGS, digest_id="2026-11-21-daily", subscriber_id=1, date=NOW)
    message = email.message_from_bytes(raw, policy=email.policy.strict)  # raises on a header defect
    assert isinstance(message, EmailMessage)
    assert not message.defects
    for name, value in message.items():
        assert not getattr(value, "defects", ()), (name, value)
    for subtype in ("plain", "html"):
        part = message.get_body((subtype,))
        assert part is not None and part.get_content()


def fields_of(article: Article) -> Iterator[str]:
    """Every text an article holds, nested parts included."""
    yield from (article.id, article.slug, article.title, article.subtitle, article.author, article.category,
                article.summary, article.body_html, article.canonical_url, *article.tags, *article.takeaways)
    for image in article.images:
        yield from (image.src, image.alt, image.caption)
    for quote in article.quotes:
        yield from (quote.text, quote.cite)
    for table in article.fact_tables:
        yield from (table.caption, table.sources, *table.header, *(cell for row in table.rows for cell in row))


def assert_clean(article: Article) -> None:
    for text in fields_of(article):
        assert not set(text) & {*C0, *C1, *NONCHARACTERS, *SURROGATES} - {"\t", "\n", "\r"}, repr(text)
    for line in (article.title, article.author, *article.tags):
        assert not set(line) & {"\t", "\n", "\r"}, repr(line)


def markdown_body(text: str) -> str:
    """A body with ``text`` in a paragraph, the takeaways, an image, a quote and a table."""
    cell = text.replace("|", " ").replace("\n", " ").replace("\r", " ")
    return (
        f"First paragraph {text}\n\n## Key Takeaways\n\n- one {cell}\n- two\n\n"
        f"![alt {cell}](/media/a.png \"caption\")\n\n> quoted {cell}\n> — {cell}\n\n"
        f"## Figures {cell}\n\n| Head {cell} | B |\n| --- | --- |\n| {cell} | 2 |\n\nData Sources: {cell}\n"
    )


def front_matter(text: str) -> dict[str, object]:
    return {
        "id": f"urn:x:{text}", "title": f"Title {text}", "date": "2026-11-20T08:00:00Z", "subtitle": text,
        "author": f"A {text}", "tags": [f"t {text}"], "category": text, "summary": text,
        "takeaways": [f"take {text}"], "quote": {"text": f"q {text}", "cite": text},
        "images": [{"src": "/media/b.png", "alt": text, "caption": text}],
    }


@PROPERTY
@given(text=FILE_TEXT)
def test_hostile_markdown_file(text: str) -> None:
    """Escaped in the front matter (as YAML writes it) and raw in the body of a file."""
    document = f"---\n{yaml.safe_dump(front_matter(text), allow_unicode=True)}---\n{markdown_body(text)}"
    parsed = read_article(document.encode(), "content/hostile.md", SITE)
    assert parsed.article is not None, [str(p) for p in parsed.problems]
    assert_clean(parsed.article)
    readers_see(parsed.article)


@PROPERTY
@given(text=FILE_TEXT)
def test_hostile_raw_front_matter(text: str) -> None:
    """A control character typed into a front matter value does not make the file unreadable."""
    raw = text.replace("\n", " ").replace("\r", " ").replace("\x85", " ").replace("\u2028", " ").replace("\u2029", " ")
    document = f"---\ntitle: Title {json.dumps(raw, ensure_ascii=False)}\ndate: 2026-11-20\n---\nBody {raw}\n"
    parsed = read_article(document.encode(), "content/raw.md", SITE)
    assert parsed.article is not None, [str(p) for p in parsed.problems]
    assert_clean(parsed.article)
    readers_see(parsed.article)


@PROPERTY
@given(text=ANY_TEXT)
def test_hostile_api_json(text: str) -> None:
    """Every field of the API's JSON shape, lone surrogates included (JSON can escape them)."""
    body = json.loads(json.dumps({**front_matter(text), "body": markdown_body(text)}))
    parsed = read_article(markdown_document(body), "api", SITE, slug_from_title=True)
    assert parsed.article is not None, [str(p) for p in parsed.problems]
    assert_clean(parsed.article)
    readers_see(parsed.article)


def xml_text(text: str) -> str:
    """``text`` in XML character data, every character XML refuses as a character reference
    (as a careless upstream writes it: ``&#x1;``)."""
    return "".join(c if c.isascii() and c.isprintable() else f"&#x{ord(c):x};" for c in escape(text))


@PROPERTY
@given(text=ANY_TEXT)
def test_hostile_upstream_item(text: str) -> None:
    value = xml_text(text)
    feed = f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>Blog {value}</title><link>https://blog.example.com/</link>
<item><title>Quarterly results {value} are in</title><link>https://blog.example.com/2026/q3/</link>
<guid isPermaLink="false">q3-{value}</guid><pubDate>Fri, 20 Nov 2026 08:00:00 +0000</pubDate>
<dc:creator>Ann {value}</dc:creator><category>tag {value}</category>
<description>Summary {value}</description>
<content:encoded><![CDATA[<p>Body {text.replace("]]>", "")}</p><figure><img src="/a.png" alt="{escape(text, {'"': "&quot;"})}"><figcaption>{escape(text)}</figcaption></figure><table><caption>{escape(text)}</caption><tr><th>{escape(text)}</th></tr><tr><td>1</td></tr></table>]]></content:encoded>
</item></channel></rss>"""
    scan = parse_feed(feed.encode("utf-8", "surrogatepass"), FEED_URL, now=NOW)
    # Nothing may raise; an item is read or reported, never lost in silence.
    assert len(scan.articles) + len(scan.problems) >= 1, scan
    for article in scan.articles:
        assert_clean(article)
        readers_see(article)


@pytest.mark.parametrize("character", ["\x01", "\x0b", "\x1f", "\x7f", "\ufffe"])
def test_an_upstream_title_with_a_control_character_is_published_without_it(character: str) -> None:
    feed = f"""<rss version="2.0"><channel><title>Blog</title><item>
<title>Quarterly results&#x{ord(character):x}; are in</title><link>https://blog.example.com/q3/</link>
<pubDate>Fri, 20 Nov 2026 08:00:00 +0000</pubDate><description>Revenue rose.</description></item></channel></rss>"""
    [article] = parse_feed(feed.encode(), FEED_URL, now=NOW).articles
    docs = build_feeds([article], SETTINGS.site, 20, ENV)
    titles = {feedparser.parse(docs[path].body).entries[0].title for path in ("feed.rss", "feed.atom")}
    assert titles == {"Quarterly results are in"}


def test_windows_1252_controls_become_the_characters_meant() -> None:
    document = "---\ntitle: \"\x93Quoted\x94 \x96 and more\x85\"\ndate: 2026-11-20\n---\nBody\n"
    article = read_article(document.encode(), "content/cp1252.md", SITE).article
    assert article is not None and article.title == "“Quoted” – and more…"


# --- end to end: the API and an upstream feed into a running publisher ---------------------

TOKEN = "test-api-token-hostile-5f1c"


async def test_hostile_articles_from_the_api_and_a_feed_are_published_and_sent(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What used to stop the feed build for every article: a control character in a
    posted title, a lone surrogate in a body, ``&#x1;`` in an upstream title."""
    upstream = """<rss version="2.0"><channel><title>Blog</title><item>
<title>Quarterly results&#x1; are in</title><link>https://blog.example.com/q3/</link>
<pubDate>Fri, 20 Nov 2026 08:00:00 +0000</pubDate><description>Revenue&#xD800; rose.</description></item></channel></rss>"""

    async def feed(request: web.Request) -> web.Response:
        return web.Response(text=upstream, content_type="application/rss+xml")

    app = web.Application()
    app.router.add_get("/feed/", feed)
    monkeypatch.setenv("PUBLISHER_API_TOKEN", TOKEN)
    async with TestServer(app) as server:
        settings = make_settings(
            f'[[sources]]\ntype = "api"\n\n[[sources]]\ntype = "feed"\nurl = "{server.make_url("/feed/")}"\n'
        )
        publisher = Publisher(settings)
        await publisher.start()
        try:
            await add_subscriber(publisher.engine, "reader@example.org", cadence=Cadence.INSTANT)
            async with api_client(publisher, TOKEN) as client:
                posted = {"title": "Port\x01 traffic\tup", "date": "2026-11-21T09:00:00Z", "author": "Ann\x1b",
                          "body": "Volumes \ud800 rose.\x0c"}
                response = await client.post("/api/articles", data=json.dumps(posted),
                                             headers={"Content-Type": "application/json"})
                assert response.status == 201, await response.text()
            await scheduler.fetch_and_send_instant(publisher)
            await publisher.tasks.settle()
            feeds = {path: publisher.shelf.docs[path].body for path in ("feed.rss", "feed.atom")}
        finally:
            await publisher.close()
    for path, body in feeds.items():
        etree.fromstring(body, STRICT_XML)
        titles = {entry.title for entry in feedparser.parse(body).entries}
        assert {"Port traffic up", "Quarterly results are in"} <= titles, (path, titles)
    messages = outbox_messages(settings)
    assert messages
    for message in messages:
        raw = message.as_bytes(policy=email.policy.SMTP)
        assert not email.message_from_bytes(raw, policy=email.policy.strict).defects


async def test_an_article_stored_before_cleaning_no_longer_stops_the_start(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row an older version stored with a control character in it is cleaned as it is read:
    the feeds build at start (they used to raise, and the daemon exited)."""
    settings = make_settings('[[sources]]\ntype = "api"\n')
    publisher = Publisher(settings)
    await publisher.start()
    try:
        monkeypatch.setenv("PUBLISHER_API_TOKEN", TOKEN)
        async with api_client(publisher, TOKEN) as client:
            posted = {"title": "Stored long ago", "date": "2026-11-21T09:00:00Z", "body": "Text."}
            response = await client.post("/api/articles", json=posted)
            assert response.status == 201, await response.text()
        async with publisher.engine.begin() as conn:
            row = (await conn.execute(select(articles.c.id, articles.c.data))).one()
            dirty = json.loads(row.data) | {"title": "Stored\x01 long\x0b ago"}
            await conn.execute(update(articles).where(articles.c.id == row.id).values(data=json.dumps(dirty)))
    finally:
        await publisher.close()
    restarted = Publisher(settings)
    await restarted.start()
    try:
        await restarted.shelf.build()  # what the daemon does as it starts
        body = restarted.shelf.docs["feed.atom"].body
    finally:
        await restarted.close()
    etree.fromstring(body, STRICT_XML)
    assert [entry.title for entry in feedparser.parse(body).entries] == ["Stored long ago"]
