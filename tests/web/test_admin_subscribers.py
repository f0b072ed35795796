"""The dashboard's subscribers pages over HTTP (real app, real store): viewers and editors read
and change nothing; admins change preferences, suppress, erase (leaving the address nowhere,
the audit log included), import a CSV with a line-by-line report and export, each audited;
the list reads by index; hostile text is escaped."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import event, func, insert, select

from publisher.admin.model import Role
from publisher.app import Publisher
from publisher.store.schema import audit_log, deliveries, digests, subscribers, suppressions
from publisher.web.api.imports import MAX_IMPORT_BODY
from subscribers.model import Cadence, Status
from subscribers.validation import email_hash
from tests.support.admin import AdminVisitor, add_operator
from tests.support.people import add_subscriber
from tests.support.web_client import web_client

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def client(publisher: Publisher) -> AsyncIterator[TestClient]:
    async with web_client(publisher) as client:
        yield client


async def signed_in(publisher: Publisher, client: TestClient, role: Role) -> AdminVisitor:
    email = f"{role.value}@example.org"
    await add_operator(publisher, email, role)
    visitor = AdminVisitor(client)
    assert (await visitor.sign_in(email)).status == 303
    return visitor


async def upload(visitor: AdminVisitor, content: bytes, *, csrf: bool = True, **fields: str) -> aiohttp.ClientResponse:
    """POST the import form as a browser does: multipart, the file and the form token."""
    form = aiohttp.FormData()
    if csrf:
        form.add_field("csrf_token", visitor.token)
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("file", content, filename="list.csv", content_type="text/csv")
    response = await visitor.client.post("/admin/subscribers/import", data=form, headers=visitor._headers(),
                                         allow_redirects=False)
    await response.read()
    return response


async def audit_rows(publisher: Publisher) -> list[tuple[str, str, str]]:
    async with publisher.engine.connect() as conn:
        rows = await conn.execute(select(audit_log.c.action, audit_log.c.target, audit_log.c.detail)
                                  .where(audit_log.c.action.like("subscriber.%")).order_by(audit_log.c.id))
        return [tuple(row) for row in rows]


async def table_count(publisher: Publisher, table: Any) -> int:
    async with publisher.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def test_viewers_and_editors_read_but_change_import_export_and_erase_nothing(
    publisher: Publisher, client: TestClient
) -> None:
    ann = await add_subscriber(publisher.engine, "ann@example.org", cadence=Cadence.DAILY)
    record = f"/admin/subscribers/{ann.id}"
    for role in (Role.VIEWER, Role.EDITOR):
        visitor = await signed_in(publisher, client, role)
        listing = await visitor.get("/admin/subscribers")
        assert listing.status == 200 and "ann@example.org" in await listing.text()
        page = await visitor.get(record)
        html = await page.text()
        assert page.status == 200 and "ann@example.org" in html
        assert "Erase" not in html and "/preferences" not in html and "Import subscribers" not in html
        before = (await table_count(publisher, audit_log), await publisher.subscribers.get(ann.id))
        form = {"cadence": "weekly", "confirm": "yes", "erase": "yes"}
        for action in ("preferences", "suppress", "erase"):
            assert (await visitor.post(f"{record}/{action}", form)).status == 403, (role, action)
        assert (await visitor.get("/admin/subscribers/import")).status == 403
        assert (await upload(visitor, b"email\nnew@example.org\n")).status == 403
        export = await visitor.get("/admin/subscribers/export")
        assert export.status == 403 and "ann@example.org" not in await export.text()
        assert (await table_count(publisher, audit_log), await publisher.subscribers.get(ann.id)) == before
        assert await publisher.subscribers.find("new@example.org") is None


async def test_the_list_shows_the_kept_totals_searches_by_address_start_filters_and_pages(
    publisher: Publisher, client: TestClient
) -> None:
    for n in range(55):
        await add_subscriber(publisher.engine, f"user{n:02d}@example.org", cadence=Cadence.WEEKLY if n % 2 else Cadence.DAILY)
    await add_subscriber(publisher.engine, "bo@example.org")
    await add_subscriber(publisher.engine, "abo@example.org")
    gone = await add_subscriber(publisher.engine, "gone@example.org")
    await publisher.subscribers.leave(gone.id)
    admin = await signed_in(publisher, client, Role.ADMIN)

    first = await (await admin.get("/admin/subscribers")).text()
    assert "Subscribers by status" in first and ">57<" in first.replace(",", "")  # active, from subscriber_counts
    assert len(re.findall(r'href="/admin/subscribers/\d+"', first)) == 50
    assert first.index("gone@example.org") < first.index("abo@example.org")  # newest first
    following = re.search(r'href="([^"]*after=\d+)">Next page', first)
    assert following is not None
    second = await (await admin.get(following.group(1).replace("&amp;", "&"))).text()
    assert "user00@example.org" in second and "Next page" not in second and "First page" in second

    found = await (await admin.get("/admin/subscribers?q=BO")).text()
    assert "bo@example.org" in found and "abo@example.org" not in found
    weekly = await (await admin.get("/admin/subscribers?cadence=weekly&status=active")).text()
    assert "user01@example.org" in weekly and "user00@example.org" not in weekly
    left = await (await admin.get("/admin/subscribers?status=unsubscribed")).text()
    assert "gone@example.org" in left and "bo@example.org" not in left
    for bad in ("status=gone", "cadence=hourly", "after=x", "q=a%00b", "q=" + "a" * 400):
        response = await admin.get("/admin/subscribers?" + bad)
        assert response.status == 400, bad


async def test_the_list_search_and_record_read_by_index_never_a_scan(publisher: Publisher, client: TestClient) -> None:
    ann = await add_subscriber(publisher.engine, "ann@example.org")
    admin = await signed_in(publisher, client, Role.ADMIN)
    seen: list[tuple[str, Any]] = []

    def remember(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and re.search(r"\b(subscribers|deliveries)\b", statement):
            seen.append((statement, parameters))

    event.listen(publisher.engine.sync_engine, "before_cursor_execute", remember)
    try:
        for path in ("/admin/subscribers", "/admin/subscribers?status=active", "/admin/subscribers?cadence=daily",
                     "/admin/subscribers?status=active&cadence=instant&after=99", "/admin/subscribers?q=an",
                     f"/admin/subscribers?q=an&status=active&after={ann.id}", f"/admin/subscribers/{ann.id}"):
            assert (await admin.get(path)).status == 200, path
    finally:
        event.remove(publisher.engine.sync_engine, "before_cursor_execute", remember)
    assert len(seen) >= 10
    postgres = publisher.engine.dialect.name == "postgresql"
    async with publisher.engine.begin() as conn:
        if postgres:  # a planner with ten rows would rather read them all: ask what it does with many
            await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        for statement, parameters in seen:
            explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
            plan = " / ".join(str(row[-1]) for row in await conn.exec_driver_sql(explain + statement, parameters))
            if re.search(r"SCAN (subscribers|deliveries)\b|Seq Scan", plan):
                # Only the unfiltered list may walk the table: along its key, stopping at the LIMIT.
                assert "WHERE" not in statement and "LIMIT" in statement, (statement, plan)
            assert "TEMP B-TREE" not in plan and "Sort" not in plan, (statement, plan)  # a sort reads every match
            if "LIKE" in statement:
                assert ("subscribers_email_key" if postgres else "sqlite_autoindex_subscribers_1") in plan, plan


async def test_an_admin_changes_preferences_and_suppresses_audited_by_id(publisher: Publisher, client: TestClient) -> None:
    publisher.settings.site.topics = ["economy", "science"]  # type: ignore[misc]
    ann = await add_subscriber(publisher.engine, "ann@example.org", cadence=Cadence.DAILY)
    admin = await signed_in(publisher, client, Role.ADMIN)
    record = f"/admin/subscribers/{ann.id}"
    await admin.get(record)

    refused = await admin.post(f"{record}/preferences", {"cadence": "hourly", "send_hour": "", "send_weekday": ""})
    assert refused.status == 422 and (await publisher.subscribers.get(ann.id)) == ann
    saved = await admin.post(f"{record}/preferences", [("cadence", "weekly"), ("topics", "science"),
                                                       ("send_hour", "7"), ("send_weekday", "tue")])
    assert saved.status == 303 and saved.headers["Location"] == record + "?done=preferences"
    changed = await publisher.subscribers.get(ann.id)
    assert changed is not None and changed.cadence == Cadence.WEEKLY and changed.topics == ("science",)
    assert (changed.preferences.send_hour, changed.preferences.send_weekday) == (7, "tue")
    assert "The preferences were saved." in await (await admin.get(saved.headers["Location"])).text()

    unticked = await admin.post(f"{record}/suppress", {})
    assert unticked.status == 422 and "Tick the box" in await unticked.text()
    assert (await publisher.subscribers.get(ann.id)).status == Status.ACTIVE  # type: ignore[union-attr]
    assert (await admin.post(f"{record}/suppress", {"confirm": "yes"})).status == 303
    assert (await publisher.subscribers.get(ann.id)).status == Status.UNSUBSCRIBED  # type: ignore[union-attr]
    assert await publisher.subscribers.suppression("ann@example.org") == "manual"
    rows = await audit_rows(publisher)
    assert [(action, target) for action, target, _ in rows] == [
        ("subscriber.preferences", f"subscriber #{ann.id}"), ("subscriber.suppress", f"subscriber #{ann.id}"),
    ]
    assert json.loads(rows[0][2]) == {"cadence": "weekly", "topics": ["science"], "send_hour": 7, "send_weekday": "tue"}


async def test_erasure_leaves_the_address_on_no_page_and_in_no_audit_row(publisher: Publisher, client: TestClient) -> None:
    ann = await add_subscriber(publisher.engine, "erase.me@example.org", name="Erase Me")
    await ledger_row(publisher, ann.id, "sent", None)
    admin = await signed_in(publisher, client, Role.ADMIN)
    record = f"/admin/subscribers/{ann.id}"
    await admin.get(record)
    assert (await admin.post(f"{record}/preferences", {"cadence": "weekly"})).status == 303
    unticked = await admin.post(f"{record}/erase", {})
    assert unticked.status == 422 and await publisher.subscribers.get(ann.id) is not None

    erased = await admin.post(f"{record}/erase", {"erase": "yes"})
    assert erased.status == 303 and erased.headers["Location"] == "/admin/subscribers?done=erased"
    gone_page = await (await admin.get(erased.headers["Location"])).text()
    assert "The subscriber was erased" in gone_page
    assert (await admin.get(record)).status == 404
    for path in ("/admin/subscribers", "/admin/subscribers?q=erase", "/admin/audit", "/admin/"):
        html = await (await admin.get(path)).text()
        assert "erase.me" not in html and "Erase Me" not in html, path
    async with publisher.engine.connect() as conn:
        logged = " ".join(" ".join(map(str, row)) for row in await conn.execute(select(audit_log)))
        assert (await conn.execute(select(func.count()).select_from(deliveries))).scalar_one() == 0
        hashes = set((await conn.execute(select(suppressions.c.email_hash))).scalars())
    assert "erase.me" not in logged and f"subscriber #{ann.id}" in logged
    assert [action for action, _, _ in await audit_rows(publisher)] == ["subscriber.preferences", "subscriber.erase"]
    assert email_hash("erase.me@example.org") in hashes
    assert await publisher.subscribers.get(ann.id) is None


async def ledger_row(publisher: Publisher, subscriber_id: int, state: str, reply: str | None) -> None:
    async with publisher.engine.begin() as conn:
        await conn.execute(insert(digests).values(id="daily-20260302T090000-abc123", cadence="daily",
                                                  article_seqs="[]", status="finished", created_at=NOW))
        await conn.execute(insert(deliveries).values(digest_id="daily-20260302T090000-abc123", subscriber_id=subscriber_id,
                                                     state=state, attempts=1, last_reply=reply, updated_at=NOW))


async def test_the_record_shows_the_history_and_escapes_hostile_text(publisher: Publisher, client: TestClient) -> None:
    hostile = await add_subscriber(publisher.engine, "o&hara@example.org", name='<script>alert("x")</script>')
    await ledger_row(publisher, hostile.id, "failed", "550 <b>no such user</b>")
    viewer = await signed_in(publisher, client, Role.VIEWER)
    html = await (await viewer.get(f"/admin/subscribers/{hostile.id}")).text()
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "o&amp;hara@example.org" in html and "&lt;b&gt;no such user&lt;/b&gt;" in html
    words = text_of(html)
    assert "Signed up (by cli)" in words and "Confirmed (by cli)" in words
    assert "daily-20260302T090000-abc123" in words and "failed" in words
    listing = await (await viewer.get("/admin/subscribers?q=o%26")).text()
    assert "<script>alert" not in listing and "o&amp;hara@example.org" in listing


CSV = (
    "email,name,cadence\n"
    "new@example.org,New One,daily\n"
    "not an address,Bad,daily\n"
    "ann@example.org,Ann,weekly\n"
    "late@example.org,Late,hourly\n"
    'evil@example.org,"<img src=x onerror=alert(1)>",weekly\n'
).encode()


async def test_an_import_reports_each_rejected_line_and_imports_the_rest(publisher: Publisher, client: TestClient) -> None:
    await add_subscriber(publisher.engine, "ann@example.org")
    admin = await signed_in(publisher, client, Role.ADMIN)
    await admin.get("/admin/subscribers/import")
    assert (await upload(admin, CSV, csrf=False)).status == 403
    assert await publisher.subscribers.find("new@example.org") is None

    response = await upload(admin, CSV)
    html = await response.text()
    assert response.status == 200
    rejected = re.findall(r'<tr><td class="num">(\d+)</td><td>(\w+)</td><td>([^<]*)</td></tr>', html)
    assert [(line, column) for line, column, _ in rejected] == [("3", "email"), ("5", "cadence")]
    assert "hourly" in rejected[1][2]
    words = text_of(html)
    assert "added as active subscribers 2" in words and "existing subscribers left unchanged 1" in words
    assert "invalid rows skipped 2" in words
    assert "<img src=x" not in html
    assert (await publisher.subscribers.find("new@example.org")) is not None
    assert (await publisher.subscribers.find("evil@example.org")).name == "<img src=x onerror=alert(1)>"  # type: ignore[union-attr]
    ((action, target, detail),) = await audit_rows(publisher)
    assert (action, target) == ("subscriber.import", "CSV")
    assert json.loads(detail)["added as active subscribers"] == 2 and "example.org" not in detail

    bulk = b"email\n" + b"".join(f"bulk{n:04d}@example.org\n".encode() for n in range(4000))  # 88 KB: past the forms' 16
    assert "added as active subscribers 4000" in text_of(await (await upload(admin, bulk)).text())
    too_big = await upload(admin, b"email\n" + b"big@example.org\n" * (MAX_IMPORT_BODY // 16 + 5000))
    assert too_big.status == 413 and await publisher.subscribers.find("big@example.org") is None
    unreadable = await upload(admin, b"name,cadence\nAnn,daily\n")
    assert unreadable.status == 422 and "Line 1: no &#39;email&#39; column" in await unreadable.text()
    checked = await upload(admin, b"email\ndry@example.org\n", dry_run="yes")
    assert "nothing was changed" in await checked.text() and await publisher.subscribers.find("dry@example.org") is None
    assert len(await audit_rows(publisher)) == 2  # the two imports that stored rows


async def test_an_export_streams_the_csv_to_admins_and_is_audited(publisher: Publisher, client: TestClient) -> None:
    await add_subscriber(publisher.engine, "ann@example.org", name="=cmd()")
    gone = await add_subscriber(publisher.engine, "gone@example.org")
    await publisher.subscribers.leave(gone.id)
    admin = await signed_in(publisher, client, Role.ADMIN)
    response = await admin.get("/admin/subscribers/export?status=active&format=csv")
    body = await response.text()
    assert response.status == 200 and response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="subscribers-active.csv"'
    assert response.headers["Cache-Control"] == "no-store"
    lines = body.splitlines()
    assert lines[0].startswith("email,name,cadence") and len(lines) == 2
    assert lines[1].startswith("ann@example.org,'=cmd()")
    every = await (await admin.get("/admin/subscribers/export?format=jsonl")).text()
    assert [json.loads(line)["email"] for line in every.splitlines()] == ["ann@example.org", "gone@example.org"]
    assert (await admin.get("/admin/subscribers/export?format=xml")).status == 400
    assert (await admin.get("/admin/subscribers/export?status=nobody")).status == 400
    assert [(a, json.loads(d)) for a, _, d in await audit_rows(publisher)] == [
        ("subscriber.export", {"format": "csv", "status": "active"}), ("subscriber.export", {"format": "jsonl", "status": "any"}),
    ]


async def test_the_menu_links_the_subscribers_section(publisher: Publisher, client: TestClient) -> None:
    viewer = await signed_in(publisher, client, Role.VIEWER)
    html = await (await viewer.get("/admin/subscribers")).text()
    assert '<a href="/admin/subscribers" aria-current="page">Subscribers</a>' in html
    assert (await viewer.get("/admin/subscribers/999")).status == 404
    assert await table_count(publisher, subscribers) == 0
