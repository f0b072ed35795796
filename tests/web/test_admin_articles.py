"""The dashboard's articles, previews and test sends over HTTP (real app, real store, the
maildir outbox as the transport): what each role sees and may do, the confirmation step of
a resend and an unpublishing, their audit rows, a test send that is mailed and never
recorded as delivered, hostile content escaped and no preview able to run a script."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote, urlencode

import lxml.html
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from publisher.admin.model import Role
from publisher.app import Publisher
from publisher.store.schema import audit_log, deliveries, digests
from publisher.web.security import EMAIL_CSP, PAGE_CSP
from tests.support.admin import AdminVisitor, add_operator
from tests.support.outbox import outbox_messages
from tests.support.people import add_subscriber
from tests.support.web_client import web_client

KIM = "2023-09-kim-russia-visit"
KIM_PAGE = f"/admin/articles/{KIM}"
NO_TAKEAWAYS = "2024-03-transit-ridership"  # the sample article without a takeaways list
SCHEDULED = """---
id: "later-piece"
title: "A piece for later"
date: 2099-01-01T09:00:00Z
tags: [climate]
---
The city will publish its plan. It covers 12 districts and 40,000 homes. Residents can comment.
"""
DRAFT = """---
id: "draft-piece"
title: "A draft in progress"
date: 2024-01-01T09:00:00Z
draft: true
---
Not ready yet. The editor is still checking 3 figures. It will be published next week.
"""
HOSTILE = """---
id: "hostile-piece"
title: "<script>alert('title')</script> & <b>bold</b>"
date: 2024-05-01T09:00:00Z
tags: ["<img src=x onerror=alert(1)>"]
---
A body with <script>alert('body')</script> and <img src="x" onerror="alert('img')"> and
<a href="javascript:alert('link')">a link</a>. It has 3 sentences. The last one is here.
"""


@pytest.fixture
async def client(publisher: Publisher) -> AsyncIterator[TestClient]:
    async with web_client(publisher) as client:
        yield client


async def _site(publisher: Publisher, *files: tuple[str, str]) -> None:
    """The sample articles (and ``files``) stored, one instant subscriber signed up before them."""
    content = Path(publisher.settings.markdown_dirs[0])
    for name, text in files:
        (content / name).write_text(text, encoding="utf-8")
    await add_subscriber(publisher.engine, "reader@example.org")
    await publisher.intake.scan()


async def _signed_in(client: TestClient, publisher: Publisher, email: str, role: Role) -> AdminVisitor:
    await add_operator(publisher, email, role)
    visitor = AdminVisitor(client)
    assert (await visitor.sign_in(email)).status == 303
    return visitor


async def _count(publisher: Publisher, table: object) -> int:
    async with publisher.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()  # type: ignore[arg-type]


async def _actions(publisher: Publisher) -> list[tuple[str, str, str]]:
    return [(e.action, e.target, e.operator) for e in await publisher.operators.audit_page(50)]


def _tree(body: str) -> lxml.html.HtmlElement:
    return lxml.html.fromstring(body)


async def test_each_state_is_listed_and_a_viewer_sees_records_and_previews_but_no_action(
    publisher: Publisher, client: TestClient
) -> None:
    await _site(publisher, ("later.md", SCHEDULED), ("draft.md", DRAFT))
    viewer = await _signed_in(client, publisher, "vic@example.org", Role.VIEWER)
    listed = await viewer.get("/admin/articles")
    assert listed.status == 200
    page = _tree(await listed.text())
    titles = [a.text_content() for a in page.xpath("//table/tbody/tr/td[1]/a")]
    # The three samples, newest first by date (city heat plan 2024-06, transit 2024-03, Kim 2023-09).
    assert titles[2] == "Kim Jong Un in Russia: Is the War in Ukraine Forging a New Axis?" and len(titles) == 3
    assert "A piece for later" not in titles and "A draft in progress" not in titles
    assert page.xpath("//nav//a[@aria-current='page']")[0].text_content() == "Articles"
    scheduled = _tree(await (await viewer.get("/admin/articles?state=scheduled")).text())
    assert [a.text_content() for a in scheduled.xpath("//table/tbody//a")] == ["A piece for later"]
    drafts = _tree(await (await viewer.get("/admin/articles?state=draft")).text())
    assert [a.text_content() for a in drafts.xpath("//table/tbody//a")] == ["A draft in progress"]
    assert "draft.md" in drafts.text_content()
    for path in ("/admin/articles/later-piece", "/admin/articles/draft-piece", KIM_PAGE):
        shown = await viewer.get(path)
        assert shown.status == 200, path
        body = await shown.text()
        assert "frame-src 'self'" in shown.headers["Content-Security-Policy"]
        tree = _tree(body)
        frames = tree.xpath("//iframe")
        assert sorted(int(f.get("width")) for f in frames) == [390, 390, 700, 700]
        assert all(f.get("sandbox") == "" for f in frames), "a preview frame may run scripts"
        assert not tree.xpath("//form[contains(@action, '/resend') or contains(@action, '/unpublish')]"), path
        for frame in frames:
            framed = await viewer.get(frame.get("src"))
            assert framed.status == 200 and framed.headers["X-Frame-Options"] == "SAMEORIGIN"
            assert framed.headers["Cache-Control"] == "no-store"
            assert "frame-ancestors 'self'" in framed.headers["Content-Security-Policy"]
    kim = _tree(await (await viewer.get(KIM_PAGE)).text())
    assert "2023-09-14 09:00" in kim.text_content() and "may be negotiating weapons transfers" in kim.text_content()
    assert kim.xpath("//pre[@class='email-text']") and "Kim Jong Un" in kim.xpath("//pre[@class='email-text']")[0].text_content()


async def test_an_article_without_takeaways_shows_the_suggested_ones(publisher: Publisher, client: TestClient) -> None:
    from publisher.content.takeaways import suggest

    await _site(publisher)
    viewer = await _signed_in(client, publisher, "vic@example.org", Role.VIEWER)
    page = _tree(await (await viewer.get(f"/admin/articles/{NO_TAKEAWAYS}")).text())
    found = await publisher.intake.find(NO_TAKEAWAYS)
    assert found is not None and not found.article.takeaways
    shown = [li.text_content() for li in page.xpath("//ul[@class='suggested']/li")]
    assert shown and shown == list(suggest(found.article))
    assert not _tree(await (await viewer.get(KIM_PAGE)).text()).xpath("//ul[@class='suggested']")


async def test_the_framed_previews_are_the_page_and_the_email_as_sent(publisher: Publisher, client: TestClient) -> None:
    await _site(publisher)
    viewer = await _signed_in(client, publisher, "vic@example.org", Role.VIEWER)
    page = await viewer.get(f"{KIM_PAGE}/page")
    assert page.headers["Content-Security-Policy"] == PAGE_CSP.replace("frame-ancestors 'none'", "frame-ancestors 'self'")
    assert "<article" in await page.text()
    email = await viewer.get(f"{KIM_PAGE}/email")
    assert email.headers["Content-Security-Policy"] == EMAIL_CSP.replace("frame-ancestors 'none'", "frame-ancestors 'self'")
    framed = await email.text()
    # The digest's own template for one article, to the made-up reader (its personal parts filled in).
    assert "Kim Jong Un in Russia" in framed and "reader@example.com" in framed and "{{" not in framed
    assert (await viewer.get("/admin/articles/no-such-article")).status == 404
    assert (await viewer.get("/admin/articles/no-such-article/email")).status == 404


async def test_bad_query_parameters_are_refused_with_400(publisher: Publisher, client: TestClient) -> None:
    await _site(publisher)
    viewer = await _signed_in(client, publisher, "vic@example.org", Role.VIEWER)
    for path in ("/admin/articles?state=removed", "/admin/articles?state=bogus", "/admin/articles?after=%%%",
                 "/admin/articles?after=bm90IGpzb24", "/admin/articles?after=WyJ4IiwieSJd",
                 "/admin/articles?after=WyIyMDI0LTAxLTAxVDAwOjAwOjAwIiwgIjUiXQ",  # a date without its offset
                 "/admin/articles?state=scheduled&after=WyIyMDI0LTAxLTAxVDAwOjAwOjAwIiwgIjUiXQ",
                 "/admin/preview?cadence=monthly", "/admin/preview/email?cadence=hourly"):
        assert (await viewer.get(path)).status == 400, path


async def test_a_framed_preview_with_nothing_to_show_says_why_in_the_frame(publisher: Publisher, client: TestClient) -> None:
    await _site(publisher)
    viewer = await _signed_in(client, publisher, "vic@example.org", Role.VIEWER)
    for who in ("nobody@example.org", "<script>alert(1)</script>@example.org"):
        response = await viewer.get("/admin/preview/email?" + urlencode({"subscriber": who}))
        body = await response.text()
        assert response.status == 200 and "Nothing to preview: " in body, who
        assert "<script>" not in body and "frame-ancestors 'self'" in response.headers["Content-Security-Policy"]


async def test_the_published_list_pages_by_keyset(publisher: Publisher, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from publisher.web.admin import articles

    monkeypatch.setattr(articles, "PAGE", 2)
    await _site(publisher)
    viewer = await _signed_in(client, publisher, "vic@example.org", Role.VIEWER)
    first = await (await viewer.get("/admin/articles")).text()
    shown = re.findall(r'<a href="/admin/articles/([^"?]+)">', first)
    following = re.search(r'href="(/admin/articles\?state=published&amp;after=[^"]+)"', first)
    assert len(shown) == 2 and following
    second = await (await viewer.get(following.group(1).replace("&amp;", "&"))).text()
    rest = re.findall(r'<a href="/admin/articles/([^"?]+)">', second)
    assert len(rest) == 1 and set(shown + rest) == {KIM, NO_TAKEAWAYS, "2024-06-city-heat-plan"}
    assert "Next page" not in second and "First page" in second


async def test_a_viewer_can_not_resend_unpublish_or_test_send(publisher: Publisher, client: TestClient) -> None:
    await _site(publisher)
    viewer = await _signed_in(client, publisher, "vic@example.org", Role.VIEWER)
    await viewer.get(KIM_PAGE)
    before = (await _count(publisher, digests), await _count(publisher, audit_log))
    for path, form in ((f"{KIM_PAGE}/resend", {"confirmed": "yes"}), (f"{KIM_PAGE}/unpublish", {"confirmed": "yes"}),
                       ("/admin/preview", {"to": "vic@example.org", "cadence": "instant"})):
        assert (await viewer.post(path, form)).status == 403, path
    assert (await _count(publisher, digests), await _count(publisher, audit_log)) == before
    assert (await publisher.intake.find(KIM)).state == "published"  # type: ignore[union-attr]
    assert outbox_messages(publisher.settings) == []
    preview = _tree(await (await viewer.get("/admin/preview?cadence=instant")).text())
    assert preview.xpath("//iframe") and not preview.xpath("//form[@method='post']//*[@id='to']")


async def test_a_resend_asks_first_then_mails_everyone_it_matches_and_is_audited(
    publisher: Publisher, client: TestClient
) -> None:
    await _site(publisher)
    await add_subscriber(publisher.engine, "second@example.org", topics=["russia"])
    await add_subscriber(publisher.engine, "elsewhere@example.org", topics=["cooking"])
    editor = await _signed_in(client, publisher, "ed@example.org", Role.EDITOR)
    await editor.get(KIM_PAGE)
    asked = await editor.post(f"{KIM_PAGE}/resend", {})
    assert asked.status == 200
    text = _tree(await asked.text()).text_content()
    assert "will be mailed again to 2 subscriber(s)" in text  # reader (all topics) and second (russia)
    assert await _count(publisher, digests) == 0 and ("article.resend", KIM, "ed@example.org") not in await _actions(publisher)
    done = await editor.post(f"{KIM_PAGE}/resend", {"confirmed": "yes"})
    assert done.status == 303 and done.headers["Location"] == f"{KIM_PAGE}?done=resent"
    assert ("article.resend", KIM, "ed@example.org") in await _actions(publisher)
    [entry] = [e for e in await publisher.operators.audit_page(50) if e.action == "article.resend"]
    assert entry.detail["recipients"] == 2 and str(entry.detail["digest"]).startswith("resend-")
    assert await publisher.tasks.settle(30)
    sent = sorted(m["To"] for m in outbox_messages(publisher.settings))
    assert sent == ["reader@example.org", "second@example.org"]
    assert "The article is being sent again." in await (await editor.get(done.headers["Location"])).text()


async def test_unpublishing_asks_first_then_takes_the_article_out_of_the_feed(
    publisher: Publisher, client: TestClient
) -> None:
    await _site(publisher)
    editor = await _signed_in(client, publisher, "ed@example.org", Role.EDITOR)
    assert "kim-russia-visit" in await (await client.get("/feed.atom")).text()
    await editor.get(KIM_PAGE)
    asked = await editor.post(f"{KIM_PAGE}/unpublish", {})
    assert asked.status == 200 and "will be gone from the feeds and pages" in await asked.text()
    assert (await publisher.intake.find(KIM)).state == "published"  # type: ignore[union-attr]
    done = await editor.post(f"{KIM_PAGE}/unpublish", {"confirmed": "yes"})
    assert done.status == 303
    assert (await publisher.intake.find(KIM)).state == "removed"  # type: ignore[union-attr]
    assert ("article.unpublish", KIM, "ed@example.org") in await _actions(publisher)
    assert "kim-russia-visit" not in await (await client.get("/feed.atom")).text()
    assert (await client.get("/articles/kim-russia-visit")).status == 404
    # Once down, there is nothing left to do to it: no action, and a second POST is refused.
    after = _tree(await (await editor.get(KIM_PAGE)).text())
    assert not after.xpath("//form[contains(@action, '/unpublish')]")
    assert (await editor.post(f"{KIM_PAGE}/unpublish", {"confirmed": "yes"})).status == 409


async def test_a_test_send_goes_to_the_outbox_marked_never_to_the_ledger_and_is_audited(
    publisher: Publisher, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_subscriber(publisher.engine, "reader@example.org")  # before the articles: they are news to them
    editor = await _signed_in(client, publisher, "ed@example.org", Role.EDITOR)
    page = await editor.get("/admin/preview")
    assert page.status == 200 and not _tree(await page.text()).xpath("//iframe")  # nothing made until asked
    shown = await editor.get("/admin/preview?cadence=&subscriber=reader%40example.org")
    tree = _tree(await shown.text())
    assert "to reader@example.org" in tree.text_content()
    assert tree.xpath("//*[@id='to']")[0].get("value") == "ed@example.org"  # the operator's own address by default
    frames = tree.xpath("//iframe")
    assert sorted(int(f.get("width")) for f in frames) == [390, 700]
    with monkeypatch.context() as patched:  # the frames show the copy the page made: no second plan
        patched.setattr(publisher.delivery, "next_copy", None)
        framed = await editor.get(frames[0].get("src"))
        assert framed.status == 200 and "reader@example.org" in await framed.text()
    assert tree.xpath("//pre[@class='email-text']")
    sent = await editor.post("/admin/preview", {"subscriber": "reader@example.org", "cadence": "", "to": "desk@example.org"})
    assert sent.status == 303 and sent.headers["Location"].startswith("/admin/preview?")
    [message] = outbox_messages(publisher.settings)
    assert message["To"].endswith("desk@example.org>") or message["To"] == "desk@example.org"
    assert message["Subject"].startswith("[TEST] ") and message["X-Publisher-Test"] == "yes"
    assert await _count(publisher, deliveries) == 0 and await _count(publisher, digests) == 0
    assert ("digest.test_send", "desk@example.org", "ed@example.org") in await _actions(publisher)
    assert "The test copy was sent." in await (await editor.get(sent.headers["Location"])).text()


async def test_a_preview_with_nothing_to_show_says_why(publisher: Publisher, client: TestClient) -> None:
    editor = await _signed_in(client, publisher, "ed@example.org", Role.EDITOR)
    nobody = _tree(await (await editor.get("/admin/preview?cadence=&subscriber=nobody%40example.org")).text())
    assert "nobody@example.org is not a subscriber" in nobody.text_content() and not nobody.xpath("//iframe")
    refused = await editor.post("/admin/preview", {"subscriber": "nobody@example.org", "to": "desk@example.org"})
    assert refused.status == 422 and outbox_messages(publisher.settings) == []
    assert not [a for a in await _actions(publisher) if a[0] == "digest.test_send"]


async def test_hostile_article_content_is_escaped_and_no_preview_can_run_a_script(
    publisher: Publisher, client: TestClient
) -> None:
    await _site(publisher, ("hostile.md", HOSTILE))
    viewer = await _signed_in(client, publisher, "vic@example.org", Role.VIEWER)
    listed = await (await viewer.get("/admin/articles")).text()
    assert "<script>alert('title')" not in listed and "&lt;script&gt;" in listed
    assert "<img src=x onerror" not in listed
    path = "/admin/articles/hostile-piece"
    page = await viewer.get(path)
    body = await page.text()
    assert "<script" not in body.replace("&lt;script", "") and "onerror=" not in body.replace("onerror=alert(1)&gt;", "")
    assert "script-src" not in page.headers["Content-Security-Policy"]
    for suffix in ("/page", "/email"):
        framed = await viewer.get(path + suffix)
        framed_body = await framed.text()
        assert "<script>alert" not in framed_body and "javascript:" not in framed_body, suffix
        policy = framed.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy, suffix
    assert all(f.get("sandbox") == "" for f in _tree(body).xpath("//iframe"))


async def test_an_article_id_that_is_a_url_has_its_pages(publisher: Publisher, client: TestClient) -> None:
    ident = "https://news.example.org/stories/with/slashes"
    await _site(publisher, ("url-id.md", SCHEDULED.replace('"later-piece"', f'"{ident}"')))
    viewer = await _signed_in(client, publisher, "vic@example.org", Role.VIEWER)
    listed = await (await viewer.get("/admin/articles?state=scheduled")).text()
    href = "/admin/articles/" + quote(ident, safe="")
    assert f'href="{href}"' in listed
    assert (await viewer.get(href)).status == 200
    assert (await viewer.get(href + "/email")).status == 200


async def test_a_scheduled_article_taken_off_the_schedule_never_goes_out(publisher: Publisher, client: TestClient) -> None:
    await _site(publisher, ("later.md", SCHEDULED))
    editor = await _signed_in(client, publisher, "ed@example.org", Role.EDITOR)
    page = _tree(await (await editor.get("/admin/articles/later-piece")).text())
    assert page.xpath("//form[contains(@action, '/unpublish')]") and not page.xpath("//form[contains(@action, '/resend')]")
    assert (await editor.post("/admin/articles/later-piece/resend", {"confirmed": "yes"})).status == 409
    done = await editor.post("/admin/articles/later-piece/unpublish", {"confirmed": "yes"})
    assert done.status == 303 and done.headers["Location"] == "/admin/articles?state=scheduled&done=unpublished"
    assert await publisher.intake.find("later-piece") is None
    listed = await (await editor.get(done.headers["Location"])).text()
    assert "The article was unpublished." in listed and "A piece for later" not in listed
    assert ("article.unpublish", "later-piece", "ed@example.org") in await _actions(publisher)


@pytest.mark.parametrize("role", [Role.EDITOR, Role.ADMIN])
async def test_editors_and_admins_see_the_actions_and_the_test_send(
    publisher: Publisher, client: TestClient, role: Role
) -> None:
    await _site(publisher)
    visitor = await _signed_in(client, publisher, f"{role}@example.org", role)
    page = _tree(await (await visitor.get(KIM_PAGE)).text())
    assert [form.get("action") for form in page.xpath("//main//form[@method='post']")] == [
        f"{KIM_PAGE}/resend", f"{KIM_PAGE}/unpublish"]
    assert all(form.xpath(".//input[@name='csrf_token']") for form in page.xpath("//form[@method='post']"))
    preview = _tree(await (await visitor.get("/admin/preview?cadence=instant")).text())
    assert preview.xpath("//form[@method='post']//*[@id='to']/@value") == [f"{role}@example.org"]
