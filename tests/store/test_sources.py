"""Every source into one store: Markdown directories, an upstream feed, and the ingest API."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import feedparser
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from publisher.feeds import build as feeds_build
from publisher.app import Publisher
from publisher.config import Settings
from publisher.content.markdown import ParsedFile, read_article
from publisher.digest.resend import UnknownArticle
from publisher.feeds.build import FeedDocument
from publisher.web.api import articles as api_articles
from publisher.runtime import scheduler
from subscribers.model import Cadence
from tests.support.outbox import outbox_messages
from tests.support.people import add_subscriber
from tests.system.test_daemon import NEW_ARTICLE
from tests.support.web_client import API_TOKEN, api_client

FEEDS = Path(__file__).parents[1] / "fixtures" / "feeds"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def atom_titles(publisher: Publisher) -> list[str]:
    return [e.title for e in feedparser.parse(publisher.shelf.docs["feed.atom"].body).entries]


# --- Markdown: new, edited, removed ------------------------------------------------------


async def test_a_deleted_file_leaves_the_feeds_and_coming_back_is_not_news(publisher: Publisher) -> None:
    await add_subscriber(publisher.engine, "ann@example.org")
    article = publisher.settings.content.dir / "harbour-bridge.md"
    article.write_text(NEW_ARTICLE, encoding="utf-8")
    await publisher.intake.scan()
    assert "The harbour bridge reopens early" in atom_titles(publisher)

    article.unlink()
    removed = await publisher.intake.scan()
    assert removed.removed == ["harbour-bridge-reopens"]
    assert "The harbour bridge reopens early" not in atom_titles(publisher)

    article.write_text(NEW_ARTICLE, encoding="utf-8")
    back = await publisher.intake.scan()
    assert (back.new, [a.id for a in back.updated]) == ([], ["harbour-bridge-reopens"])
    assert "The harbour bridge reopens early" in atom_titles(publisher)


async def test_a_broken_file_removes_nothing(publisher: Publisher) -> None:
    article = publisher.settings.content.dir / "harbour-bridge.md"
    article.write_text(NEW_ARTICLE, encoding="utf-8")
    await publisher.intake.scan()
    article.write_text("---\ntitle: [unclosed\n---\n", encoding="utf-8")  # mid-edit
    result = await publisher.intake.scan()
    assert result.removed == [] and "The harbour bridge reopens early" in atom_titles(publisher)


# --- an upstream feed --------------------------------------------------------------------


@pytest.fixture
async def blog() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A WordPress-shaped RSS feed that honours If-None-Match; yields its URL and the requests' headers."""
    body = (FEEDS / "wordpress.rss").read_bytes()
    seen: list[dict[str, str]] = []

    async def feed(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304)
        return web.Response(body=body, content_type="application/rss+xml", headers={"ETag": '"v1"'})

    app = web.Application()
    app.router.add_get("/feed/", feed)
    async with TestServer(app) as server:
        yield str(server.make_url("/feed/")), seen


async def test_an_upstream_feed_is_fetched_published_sent_and_then_not_modified(
    make_settings: Callable[..., Settings], blog: tuple[str, list[dict[str, str]]]
) -> None:
    url, seen = blog
    settings = make_settings(
        f'[[sources]]\ntype = "markdown"\ndir = "content"\n\n'
        f'[[sources]]\ntype = "feed"\nurl = "{url}"\ninterval = 0.001\n'
    )
    publisher = Publisher(settings)
    await publisher.start()
    try:
        await publisher.intake.scan()
        await add_subscriber(publisher.engine, "reader@example.org", cadence=Cadence.INSTANT)
        await scheduler.fetch_and_send_instant(publisher)
        titles = atom_titles(publisher)
        [digest] = outbox_messages(settings)
        again = await publisher.intake.fetch_feeds()
    finally:
        await publisher.close()

    upstream = {"Kim Goes to Vladivostok: Does the Ukraine War Bind Two Outcasts Together?", "What the West Can Still Do"}
    assert upstream <= set(titles) and len(titles) >= 3 + len(upstream)  # beside the sample articles
    assert "Vladivostok" in digest.get_body(("html",)).get_content()
    assert seen[0]["User-Agent"].startswith("publisher/")
    assert seen[-1].get("If-None-Match") == '"v1"' and not again.changed  # a 304: nothing to do
    assert list((settings.storage.data_dir / "upstream").glob("*.json"))  # validators survive a restart


async def test_a_slow_upstream_feed_does_not_hold_up_the_markdown_scan(
    make_settings: Callable[..., Settings],
) -> None:
    """The fetch (network, parsing) happens outside the lock a scan and the API take to store."""
    asked, answer = asyncio.Event(), asyncio.Event()
    body = (FEEDS / "wordpress.rss").read_bytes()

    async def slow_feed(request: web.Request) -> web.Response:
        asked.set()
        await answer.wait()
        return web.Response(body=body, content_type="application/rss+xml")

    app = web.Application()
    app.router.add_get("/feed/", slow_feed)
    async with TestServer(app) as server:
        settings = make_settings(
            f'[[sources]]\ntype = "markdown"\ndir = "content"\n\n'
            f'[[sources]]\ntype = "feed"\nurl = "{server.make_url("/feed/")}"\n'
        )
        publisher = Publisher(settings)
        await publisher.start()
        try:
            fetching = asyncio.create_task(publisher.intake.fetch_feeds())
            await asyncio.wait_for(asked.wait(), 5)
            (settings.content.dir / "harbour-bridge.md").write_text(NEW_ARTICLE, encoding="utf-8")
            scanned = await asyncio.wait_for(publisher.intake.scan(), 5)  # waited for the feed's answer before
            scanned_while_fetching = not fetching.done()
            answer.set()
            fetched = await fetching
        finally:
            await publisher.close()
    assert scanned_while_fetching
    assert "harbour-bridge-reopens" in [article.id for article in scanned.new]
    assert "What the West Can Still Do" in [article.title for article in fetched.new]


# --- the ingest API ----------------------------------------------------------------------


async def test_markdown_posted_to_the_api_is_published_once_and_an_edit_is_not_news(
    articles_api: TestClient, publisher: Publisher, settings: Settings
) -> None:
    await add_subscriber(publisher.engine, "reader@example.org")
    headers = {"Content-Type": "text/markdown"}
    response = await articles_api.post("/api/articles", data=NEW_ARTICLE.encode(), headers=headers)
    assert response.status == 201
    created = await response.json()
    assert created == {
        "id": "harbour-bridge-reopens", "slug": "the-harbour-bridge-reopens-early",
        "url": "https://news.example.org/articles/the-harbour-bridge-reopens-early", "status": "new",
    }
    assert "The harbour bridge reopens early" in atom_titles(publisher)
    await publisher.tasks.settle()  # the instant digest goes out in the background
    assert len(outbox_messages(settings)) == 1

    edited = NEW_ARTICLE.replace("three weeks", "four weeks")
    again = await articles_api.post("/api/articles", data=edited.encode(), headers=headers)
    assert again.status == 200 and (await again.json())["status"] == "updated"
    assert len(outbox_messages(settings)) == 1


async def test_json_posted_to_the_api(articles_api: TestClient, publisher: Publisher) -> None:
    article = {
        "id": "urn:cms:4711", "title": "Port traffic in figures", "date": "2026-11-21T09:00:00Z",
        "tags": ["trade"], "takeaways": ["Container volumes rose", "Bulk cargo fell"],
        "body": "| Port | Change |\n| --- | --- |\n| North | +4% |\n\nData Sources: port authority figures.\n",
    }
    response = await articles_api.post("/api/articles", json=article)
    assert response.status == 201, await response.text()
    await publisher.tasks.settle()
    items = {item["title"]: item for item in json.loads(publisher.shelf.docs["feed.json"].body)["items"]}
    posted = items["Port traffic in figures"]
    assert posted["tags"] == ["trade"] and "Container volumes rose" in posted["content_html"]
    assert "<table>" in posted["content_html"] and "port authority figures" in posted["content_html"]


async def test_every_problem_comes_back_as_422(articles_api: TestClient) -> None:
    response = await articles_api.post("/api/articles", json={"date": "yesterday-ish", "tags": 5, "body": "x"})
    assert response.status == 422
    messages = [p["message"] for p in (await response.json())["problems"]]
    assert len(messages) >= 2 and any("title" in m for m in messages), messages
    markdown = await articles_api.post("/api/articles", data=b"---\ndate: 2026-11-21\n---\n", headers={"Content-Type": "text/markdown"})
    assert markdown.status == 422
    assert any(p["message"].startswith("line ") for p in (await markdown.json())["problems"])
    wrong_type = await articles_api.post("/api/articles", data=b"<html>", headers={"Content-Type": "text/html"})
    assert wrong_type.status == 415


async def test_the_api_source_can_be_turned_off(make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLISHER_API_TOKEN", API_TOKEN)
    publisher = Publisher(make_settings('[[sources]]\ntype = "markdown"\ndir = "content"\n'))
    await publisher.start()
    try:
        async with api_client(publisher, API_TOKEN) as client:
            response = await client.post("/api/articles", data=NEW_ARTICLE.encode(), headers={"Content-Type": "text/markdown"})
            assert response.status == 404
    finally:
        await publisher.close()


# --- resending an edited article -----------------------------------------------------------


async def test_an_edit_is_not_resent_unless_the_operator_asks(publisher: Publisher, settings: Settings) -> None:
    await add_subscriber(publisher.engine, "all@example.org")
    await add_subscriber(publisher.engine, "trade@example.org", topics=["trade"])
    article = publisher.settings.content.dir / "harbour-bridge.md"
    article.write_text(NEW_ARTICLE, encoding="utf-8")
    await scheduler.scan_and_send_instant(publisher)
    assert len(outbox_messages(settings)) == 1  # only the subscriber of every topic

    article.write_text(NEW_ARTICLE.replace("three weeks", "four weeks"), encoding="utf-8")
    await scheduler.scan_and_send_instant(publisher)
    assert len(outbox_messages(settings)) == 1  # an edit updates the feeds, sends nothing

    dry = await publisher.delivery.resend("harbour-bridge-reopens", dry_run=True)
    assert dry.planned[0].recipients == 1 and dry.report is None
    result = await publisher.delivery.resend("harbour-bridge-reopens")
    assert result.planned[0].id.startswith("resend-") and result.report is not None and result.report.sent == 1
    messages = outbox_messages(settings)
    [resent] = [m for m in messages if "<resend-" in str(m["Message-ID"])]
    assert len(messages) == 2 and "four weeks" in resent.get_body(("plain",)).get_content()
    with pytest.raises(UnknownArticle):
        await publisher.delivery.resend("no-such-article")


async def test_the_api_answers_other_requests_while_it_parses_an_article(
    articles_api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A huge article took the event loop for seconds (every request waited): it is parsed in a thread.

    The parse is held until another request has been answered; on the event loop that
    request could only be answered after the parse gave up waiting.
    """
    started, answered = threading.Event(), threading.Event()
    answered_during_parse: list[bool] = []

    def held_parse(*args: Any, **kwargs: Any) -> ParsedFile:
        started.set()
        answered_during_parse.append(answered.wait(timeout=5))
        return read_article(*args, **kwargs)

    monkeypatch.setattr(api_articles, "read_article", held_parse)
    posting = asyncio.create_task(
        articles_api.post("/api/articles", data=NEW_ARTICLE.encode(), headers={"Content-Type": "text/markdown"})
    )
    await asyncio.to_thread(started.wait, 5)
    listing = await articles_api.get("/api/articles")
    answered.set()
    assert listing.status == 200
    assert (await posting).status == 201
    assert answered_during_parse == [True]


async def test_feeds_are_built_off_the_event_loop(publisher: Publisher, monkeypatch: pytest.MonkeyPatch) -> None:
    """Building hundreds of feed documents stalled the web server: the build runs in a thread.

    The build is held until the event loop has run something else; on the loop it never could.
    """
    started, answered = threading.Event(), threading.Event()
    loop_ran_during_build: list[bool] = []
    real_build = feeds_build.build_feeds  # the shelf imports it from there when it builds

    def held_build(*args: Any, **kwargs: Any) -> dict[str, FeedDocument]:
        started.set()
        loop_ran_during_build.append(answered.wait(timeout=5))
        return real_build(*args, **kwargs)

    monkeypatch.setattr(feeds_build, "build_feeds", held_build)
    building = asyncio.create_task(publisher.shelf.build())
    await asyncio.to_thread(started.wait, 5)
    answered.set()
    await building
    assert loop_ran_during_build == [True]
    assert "feed.atom" in publisher.shelf.docs


async def test_bad_urls_and_dates_are_422_naming_the_field(articles_api: TestClient) -> None:
    base = {"title": "Hostile", "date": "2026-11-21T09:00:00Z", "body": "Text."}
    cases = {
        "canonical_url": {**base, "canonical_url": "javascript:alert(1)"},
        "image": {**base, "image": "data:image/png;base64,iVBORw0KGgo="},
        "date": {**base, "date": "9999-12-31T23:59:59-14:00"},
    }
    for field, article in cases.items():
        response = await articles_api.post("/api/articles", json=article)
        assert response.status == 422, (field, await response.text())
        [problem] = (await response.json())["problems"]
        assert problem["message"].startswith(f"{field} "), problem
    markdown = b"+++\ntitle = \"Hostile\"\ndate = 9999-12-31T23:59:59-14:00\n+++\nText.\n"
    response = await articles_api.post("/api/articles", data=markdown, headers={"Content-Type": "text/markdown"})
    assert response.status == 422
    assert (await response.json())["problems"][0]["message"].startswith("line 3: date ")


async def test_a_deeply_nested_article_is_422_not_500(articles_api: TestClient) -> None:
    deep = "[" * 900 + "]" * 900
    body = f'{{"title": "Deep", "date": "2026-11-21T09:00:00Z", "tags": {deep}, "body": "x"}}'
    response = await articles_api.post("/api/articles", data=body.encode(), headers={"Content-Type": "application/json"})
    assert response.status == 422, await response.text()
    assert (await response.json())["problems"], await response.text()
    quoted = "---\ntitle: Deep\ndate: 2026-11-21\n---\n" + "> " * 5000 + "x\n"
    response = await articles_api.post("/api/articles", data=quoted.encode(), headers={"Content-Type": "text/markdown"})
    assert response.status in {201, 422}, await response.text()


UNDATED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Undated blog</title><link>https://undated.example/</link>
<lastBuildDate>{built}</lastBuildDate>
<item><title>A post without a date</title><link>https://undated.example/post/</link>
<description>{text}</description></item></channel></rss>"""


async def test_an_undated_upstream_item_keeps_its_first_seen_date(make_settings: Callable[..., Settings]) -> None:
    """Dated "now" at every fetch, it used to be stored as an edit each time; an edit
    of its text is still one, dated when it was seen."""
    served = {"built": "Fri, 20 Nov 2026 08:00:00 +0000", "text": "First text."}

    async def feed(request: web.Request) -> web.Response:
        return web.Response(text=UNDATED.format(**served), content_type="application/rss+xml")

    app = web.Application()
    app.router.add_get("/feed/", feed)
    async with TestServer(app) as server:
        url = str(server.make_url("/feed/"))
        settings = make_settings(f'[[sources]]\ntype = "feed"\nurl = "{url}"\ninterval = 0.001\n')
        publisher = Publisher(settings)
        await publisher.start()
        try:
            first = await publisher.intake.fetch_feeds()
            served["built"] = "Sat, 21 Nov 2026 08:00:00 +0000"  # a new build, the item as it was
            again = await publisher.intake.fetch_feeds()
            served["text"] = "Edited text."
            edited = await publisher.intake.fetch_feeds()
        finally:
            await publisher.close()

    [article] = first.new
    assert not again.new and not again.updated, again
    [changed] = edited.updated
    assert changed.published == article.published and changed.updated > article.published
    entry = next(e for e in feedparser.parse(publisher.shelf.docs["feed.atom"].body).entries if e.title == article.title)
    assert "Edited text." in entry.summary
