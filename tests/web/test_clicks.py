"""Aggregate click counts (``[tracking] clicks``): the digest's links through signed redirects.

A real digest is sent through the maildir transport and its links are followed through
the real application and store (SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import email.message
import email.policy
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.exc import OperationalError

from publisher.app import Publisher
from publisher.cli.report import text_lines
from publisher.config import Settings, TrackingSettings
from publisher.delivery.service import framer
from publisher.mail import message as message_module
from publisher.mail import render as render_module
from publisher.mail.message import DigestMessages
from publisher.mail.render import Personal, render_digest
from publisher.templating import make_environment
from publisher.tracking import service as tracking_service
from publisher.tracking.counts import click_counts
from publisher.tracking.links import ClickLinks
from subscribers.model import Cadence
from subscribers.tokens import Tokens
from tests.support.articles import seed_like
from tests.support.outbox import outbox_messages, plain_text
from tests.support.people import add_subscriber
from tests.support.web_client import web_client

COUNTING = '[tracking]\nclicks = "aggregate"\nclick_rate_per_client = "1000/minute"\n'
_HREF = re.compile(r'href="([^"]*)"')


@pytest.fixture
async def sent(make_settings: Callable[..., Settings]) -> AsyncIterator[tuple[Publisher, TestClient, str, email.message.EmailMessage]]:
    """A counting site that sent one digest to one reader: (publisher, client, digest id, the message)."""
    publisher = Publisher(make_settings(COUNTING))
    await publisher.start()
    await add_subscriber(publisher.engine, "ann@example.org", cadence=Cadence.INSTANT)
    await publisher.intake.scan()
    result = await publisher.delivery.send([Cadence.INSTANT])
    [message] = outbox_messages(publisher.settings)
    async with web_client(publisher) as client:
        yield publisher, client, result.planned[0].id, message
    await publisher.close()


def hrefs(message: email.message.EmailMessage) -> list[str]:
    part = message.get_body(("html",))
    assert part is not None
    return [link.replace("&amp;", "&") for link in _HREF.findall(part.get_content())]


def counted(message: email.message.EmailMessage) -> list[str]:
    """The digest's counted links, as paths with their query."""
    return [link.removeprefix("https://news.example.org") for link in hrefs(message) if "/c/" in link]


def target(path: str) -> str:
    return parse_qs(urlsplit(path).query)["u"][0]


async def test_the_digests_links_go_through_counted_redirects_except_the_personal_ones(
    sent: tuple[Publisher, TestClient, str, email.message.EmailMessage],
) -> None:
    publisher, _, digest_id, message = sent
    links = hrefs(message)
    tracked = counted(message)
    assert tracked and all(path.startswith(f"/c/{digest_id}/") for path in tracked)
    # The unsubscribe and preferences links are the reader's own, as they were.
    assert any(link.startswith("https://news.example.org/unsubscribe/") for link in links)
    assert any(link.startswith("https://news.example.org/preferences/") for link in links)
    untracked = [link for link in links if "/c/" not in link]
    assert all(urlsplit(link).path.startswith(("/unsubscribe/", "/preferences/")) for link in untracked)
    # No pixel or other image through the site's redirects, and nothing personal in a counted link.
    assert "/c/" not in "".join(re.findall(r'src="([^"]*)"', message.get_body(("html",)).get_content()))  # type: ignore[union-attr]
    assert not any("ann" in path or "unsubscribe" in path for path in tracked)
    # The same article linked from its title and "Read more" is one link, counted as one.
    to_articles = [path for path in tracked if "/articles/" in target(path)]
    assert len(to_articles) > len(set(to_articles)) == len({target(path) for path in to_articles})
    # The plain-text part is not rewritten: its reader sees the address they follow.
    text = plain_text(message)
    assert "/c/" not in text and target(to_articles[0]) in text


async def test_each_click_redirects_to_the_signed_target_and_is_counted(
    sent: tuple[Publisher, TestClient, str, email.message.EmailMessage],
) -> None:
    publisher, client, digest_id, message = sent
    first, second = list(dict.fromkeys(counted(message)))[:2]
    for path in (first, first, second, first):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 302 and response.headers["Location"] == target(path)
        assert "no-store" in response.headers["Cache-Control"]
    # A link scanner's HEAD is sent on but not counted.
    assert (await client.head(first, allow_redirects=False)).status == 302
    assert await click_counts(publisher.engine, digest_id) == [(target(first), 3), (target(second), 1)]
    assert await click_counts(publisher.engine, "another-digest") == []
    # `publisher report` and /api/digests/{id} show them.
    report = await publisher.digest_report(digest_id)
    assert report is not None
    assert report.as_json()["clicks"] == [{"url": target(first), "clicks": 3}, {"url": target(second), "clicks": 1}]
    assert f"       3 × {target(first)}" in text_lines(report)


async def test_concurrent_clicks_all_count(sent: tuple[Publisher, TestClient, str, email.message.EmailMessage]) -> None:
    publisher, client, digest_id, message = sent
    first, second = list(dict.fromkeys(counted(message)))[:2]
    paths = [first] * 30 + [second] * 10
    responses = await asyncio.gather(*(client.get(path, allow_redirects=False) for path in paths))
    assert [r.status for r in responses] == [302] * len(paths)
    assert await click_counts(publisher.engine, digest_id) == [(target(first), 30), (target(second), 10)]


async def test_a_tampered_link_is_refused_and_never_redirects(
    sent: tuple[Publisher, TestClient, str, email.message.EmailMessage],
) -> None:
    publisher, client, digest_id, message = sent
    path = counted(message)[0]
    route, query = path.split("?")
    signature = parse_qs(query)["s"][0]
    n = int(route.rsplit("/", 1)[1])
    signer = ClickLinks(publisher.tokens, publisher.settings.site.url)

    def with_query(route: str, **values: str) -> str:
        return f"{route}?{urlencode(values)}"

    tampered = {
        "another target": with_query(route, u="https://evil.example/", s=signature),
        "scheme-relative": with_query(route, u="//evil.example/", s=signature),
        "javascript": with_query(route, u="javascript:alert(1)", s=signature),
        "another digest": path.replace(f"/c/{digest_id}/", "/c/instant-19990101T000000-000000/"),
        "another number": path.replace(f"/c/{digest_id}/{n}", f"/c/{digest_id}/{n + 1}"),
        "bad signature": with_query(route, u=target(path), s=signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")),
        "no signature": with_query(route, u=target(path)),
        "nothing": route,
        # Signed with our key, yet not a place to send a browser.
        "signed javascript": urlsplit(signer.url(digest_id, n, "javascript:alert(1)")).path
        + "?" + urlsplit(signer.url(digest_id, n, "javascript:alert(1)")).query,
    }
    for what, bad in tampered.items():
        response = await client.get(bad, allow_redirects=False)
        assert response.status == 400, what
        assert "Location" not in response.headers, what
        assert "This link does not work" in await response.text(), what
    # A signature made with another secret key is not ours either.
    foreign = ClickLinks(Tokens("another-key"), publisher.settings.site.url).url(digest_id, n, "https://evil.example/")
    assert (await client.get(foreign.removeprefix("https://news.example.org"), allow_redirects=False)).status == 400
    assert (await client.get(f"/c/{digest_id}/x1?u=https://evil.example/", allow_redirects=False)).status == 404
    assert await click_counts(publisher.engine, digest_id) == []


async def test_clicks_past_the_clients_rate_still_redirect_uncounted(make_settings: Callable[..., Settings]) -> None:
    publisher = Publisher(make_settings('[tracking]\nclicks = "aggregate"\nclick_rate_per_client = "2/minute"\n'))
    await publisher.start()
    try:
        link = ClickLinks(publisher.tokens, publisher.settings.site.url).url("d1", 1, "https://example.org/a")
        async with web_client(publisher) as client:
            for _ in range(4):
                response = await client.get(link.removeprefix("https://news.example.org"), allow_redirects=False)
                assert response.status == 302 and response.headers["Location"] == "https://example.org/a"
        assert await click_counts(publisher.engine, "d1") == [("https://example.org/a", 2)]
    finally:
        await publisher.close()


async def test_a_store_that_fails_loses_the_click_never_the_readers_way_on(
    sent: tuple[Publisher, TestClient, str, email.message.EmailMessage], monkeypatch: pytest.MonkeyPatch,
) -> None:
    publisher, client, digest_id, message = sent
    path = counted(message)[0]

    async def failing(*_: object) -> None:
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(tracking_service, "count_click", failing)
    response = await client.get(path, allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == target(path)
    assert await click_counts(publisher.engine, digest_id) == []


# --- the rewrite itself ----------------------------------------------------------------

_DATE = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
_READER = Personal(name="Ann", email="ann@example.org", unsubscribe_url="https://news.example.org/unsubscribe/t0ken-123",
                   preferences_url="https://news.example.org/preferences/t0ken-123")


def _fixed_randomness(monkeypatch: pytest.MonkeyPatch) -> None:
    """The render's nonce and the MIME boundary, the only random bytes of a message, made fixed."""
    for module in (render_module, message_module):
        monkeypatch.setattr(module.secrets, "token_hex", lambda n=16: "0" * (2 * n))


def test_with_clicks_off_a_digest_is_byte_identical_to_one_rendered_without_tracking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fixed_randomness(monkeypatch)
    env = make_environment(None)
    tokens = Tokens("test-secret-key")
    articles = [seed_like(id="a1", slug="a1", title="One"), seed_like(id="a2", slug="a2", title="Two")]
    untracked = DigestMessages(
        render_digest(articles, Settings(), env, "daily-1", "daily"), settings=Settings(), digest_id="daily-1", date=_DATE
    ).build(_READER, 7)
    off = framer(Settings(), env, tokens)(articles, "daily-1", "daily", False, _DATE).build(_READER, 7)
    assert off == untracked
    counting = Settings(tracking=TrackingSettings(clicks="aggregate"))
    on = framer(counting, env, tokens)(articles, "daily-1", "daily", False, _DATE).build(_READER, 7)
    html = email.message_from_bytes(on, policy=email.policy.default).get_body(("html",))
    assert html is not None and "http://127.0.0.1:8080/c/daily-1/1?u=" in html.get_content()


def test_the_rewrite_leaves_personal_mailto_and_non_http_links_alone() -> None:
    links = ClickLinks(Tokens("k"), "https://news.example.org/")
    nonce = "abc123"
    html = (
        '<p><a href="https://example.org/x?a=1&amp;b=2">x</a>'
        '<a title="see href=&quot;https://no.example/&quot; here" class="c" href="https://example.org/y">y</a>'
        '<a href="__publisher_unsubscribe_url_abc123__">u</a>'
        '<a href="https://news.example.org/go?who=__publisher_email_abc123__">p</a>'
        '<a href="mailto:ed@example.org">m</a><a href="javascript:alert(1)">j</a><a href="/relative">r</a>'
        '<a href="https://example.org/x?a=1&amp;b=2">x again</a><img src="https://example.org/pic.png"></p>'
    )
    out = links.rewrite(html, digest_id="d1", keep=nonce)
    found = [h.replace("&amp;", "&") for h in _HREF.findall(out)]
    assert found[0] == links.url("d1", 1, "https://example.org/x?a=1&b=2")
    assert found[1] == links.url("d1", 2, "https://example.org/y")
    assert found[2:7] == [
        "__publisher_unsubscribe_url_abc123__", "https://news.example.org/go?who=__publisher_email_abc123__",
        "mailto:ed@example.org", "javascript:alert(1)", "/relative",
    ]
    assert found[7] == found[0]  # the same target is the same link
    assert 'title="see href=&quot;https://no.example/&quot; here"' in out
    assert 'src="https://example.org/pic.png"' in out
