"""The dashboard's gate over HTTP (real app, real store): every /admin/ URL refuses an anonymous
request, a viewer changes nothing, CSRF and Origin are checked, five failures lock an account,
no secret reaches a page, and the operators page does what it says (audited)."""

from __future__ import annotations

import re
from datetime import timedelta
from collections.abc import AsyncIterator
from typing import Any

import lxml.html
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from publisher import clock
from publisher.admin import totp
from publisher.admin.model import Actor, Role
from publisher.app import Publisher
from publisher.store.schema import audit_log, operators
from publisher.web.admin import gate
from publisher.web.security import PAGE_CSP
from publisher.web.server import create_app
from tests.support.admin import (
    PASSWORD, PLACEHOLDER, AdminVisitor, add_operator, admin_routes, pages, parameter_values, some_mail_sent,
)
from tests.support.web_client import API_TOKEN, web_client

# The sign-in steps are the only dashboard URLs open to a visitor without a session.
OPEN = {("GET", "/admin/sign-in"), ("POST", "/admin/sign-in"), ("GET", "/admin/sign-in/code"), ("POST", "/admin/sign-in/code")}
# Fields any dashboard form might take, so a refused POST is refused for who sent it, not for what.
ANY_FORM = {"email": "new@example.org", "role": "admin", "password": "a long enough password", "code": "123456"}


def admin_paths(publisher: Publisher) -> list[tuple[str, str, Any]]:
    """Every (method, path, handler) under /admin/ in the app's router; a placeholder is given "1"."""
    return [(method, PLACEHOLDER.sub("1", route), handler) for method, route, handler in admin_routes(create_app(publisher))]


@pytest.fixture
async def client(publisher: Publisher, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestClient]:
    monkeypatch.setenv("PUBLISHER_API_TOKEN", API_TOKEN)
    async with web_client(publisher) as client:
        yield client


async def counts(publisher: Publisher) -> tuple[int, int]:
    async with publisher.engine.connect() as conn:
        return (
            (await conn.execute(select(func.count()).select_from(operators))).scalar_one(),
            (await conn.execute(select(func.count()).select_from(audit_log))).scalar_one(),
        )


async def test_every_admin_url_refuses_an_anonymous_request(publisher: Publisher, client: TestClient) -> None:
    routes = admin_paths(publisher)
    assert {(method, path) for method, path, handler in routes if not hasattr(handler, "admin_role")} == OPEN
    gated = [(method, path, handler) for method, path, handler in routes if hasattr(handler, "admin_role")]
    assert ("GET", "/admin/") in {(method, path) for method, path, _ in gated} and ("POST", "/admin/operators/1/remove") in {(m, p) for m, p, _ in gated}
    await add_operator(publisher, "ann@example.org", Role.ADMIN)
    visitor = AdminVisitor(client)
    await visitor.get("/admin/sign-in")  # a CSRF cookie and token: refused for having no session, not for lacking them
    before = await counts(publisher)
    for method, path, handler in gated:
        if method == "GET":
            response = await visitor.get(path)
            assert response.headers["Cache-Control"] == "no-store"
            if handler.admin_passive:  # a page's own script reading figures: told, not sent to a form
                assert response.status == 401, path
                continue
            assert response.status == 303, path
            assert response.headers["Location"].startswith("/admin/sign-in?next="), path
        else:
            response = await visitor.post(path, ANY_FORM)
            assert response.status == 403, (method, path)
    assert await counts(publisher) == before


async def test_a_viewer_reads_but_can_change_nothing(publisher: Publisher, client: TestClient) -> None:
    await add_operator(publisher, "ann@example.org", Role.ADMIN)
    await add_operator(publisher, "vic@example.org", Role.VIEWER)
    viewer = AdminVisitor(client)
    assert (await viewer.sign_in("vic@example.org")).status == 303
    assert (await viewer.get("/admin/")).status == 200
    assert (await viewer.get("/admin/audit")).status == 200
    assert (await viewer.get("/admin/operators")).status == 403
    await viewer.get("/admin/")
    before = await counts(publisher)
    for method, path, handler in admin_paths(publisher):
        if method == "POST" and hasattr(handler, "admin_role") and handler.admin_role is not Role.VIEWER:
            response = await viewer.post(path, ANY_FORM)
            assert response.status == 403, path
    assert await counts(publisher) == before
    assert [o.role for o in await publisher.operators.every()] == [Role.ADMIN, Role.VIEWER]


async def test_a_form_without_the_right_token_or_from_another_site_is_refused(publisher: Publisher, client: TestClient) -> None:
    await add_operator(publisher, "ann@example.org", Role.ADMIN)
    admin = AdminVisitor(client)
    assert (await admin.sign_in("ann@example.org")).status == 303
    await admin.get("/admin/operators")
    before = await counts(publisher)
    assert (await admin.post("/admin/operators", ANY_FORM, csrf=False)).status == 403
    assert (await admin.post("/admin/operators", [*ANY_FORM.items(), ("csrf_token", "forged")], csrf=False)).status == 403
    assert (await admin.post("/admin/operators", ANY_FORM, headers={"Origin": "https://evil.example"})).status == 403
    assert (await admin.post("/admin/operators", ANY_FORM, headers={"Sec-Fetch-Site": "cross-site"})).status == 403
    assert (await admin.post("/admin/operators", ANY_FORM, headers={"Sec-Fetch-Site": "same-site"})).status == 403
    assert await counts(publisher) == before
    # The same form with its token, from our own page, goes through.
    added = await admin.post("/admin/operators", ANY_FORM, headers={"Origin": "https://news.example.org"})
    assert added.status == 303 and added.headers["Location"] == "/admin/operators?done=added"


async def test_the_session_cookie_is_httponly_strict_secure_and_for_the_dashboard_only(
    publisher: Publisher, client: TestClient
) -> None:
    await add_operator(publisher, "ann@example.org", Role.VIEWER)
    response = await AdminVisitor(client).sign_in("ann@example.org")
    cookie = response.cookies[gate.COOKIE]
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Strict" and cookie["path"] == "/admin/"
    assert not cookie["max-age"] and not cookie["expires"]  # gone with the browser; the server ends it sooner


async def test_five_failures_lock_the_account_with_the_same_answer_as_an_unknown_address(
    publisher: Publisher, client: TestClient
) -> None:
    await add_operator(publisher, "ann@example.org", Role.ADMIN)
    visitor = AdminVisitor(client)
    await visitor.get("/admin/sign-in")
    unknown = await visitor.post("/admin/sign-in", {"email": "ann@example.com", "password": PASSWORD})
    unknown_page = (await unknown.text()).replace("ann@example.com", "ADDRESS")
    for _ in range(5):
        wrong = await visitor.post("/admin/sign-in", {"email": "ann@example.org", "password": "not the password!"})
        assert wrong.status == 401
        assert (await wrong.text()).replace("ann@example.org", "ADDRESS") == unknown_page
    locked = await visitor.post("/admin/sign-in", {"email": "ann@example.org", "password": PASSWORD})
    assert locked.status == 401 and gate.COOKIE not in locked.cookies
    assert (await locked.text()).replace("ann@example.org", "ADDRESS") == unknown_page
    actions = [e.action for e in await publisher.operators.audit_page(20)]
    assert actions.count("sign_in.failed") == 6 and actions.count("sign_in.locked") == 1


async def test_sign_in_attempts_are_limited_per_client(make_settings: Any) -> None:
    publisher = Publisher(make_settings('[admin]\nsignin_rate_per_client = "3/hour"\n'))
    await publisher.start()
    try:
        async with web_client(publisher) as client:
            visitor = AdminVisitor(client)
            await visitor.get("/admin/sign-in")
            statuses = [
                (await visitor.post("/admin/sign-in", {"email": f"n{n}@example.org", "password": PASSWORD})).status
                for n in range(4)
            ]
            assert statuses == [401, 401, 401, 429]
    finally:
        await publisher.close()


async def test_no_secret_reaches_any_dashboard_page(publisher: Publisher, client: TestClient) -> None:
    ann = await add_operator(publisher, "ann@example.org", Role.ADMIN)
    bob = await add_operator(publisher, "bob@example.org", Role.EDITOR, "bob's long password")
    secret = await publisher.operators.enable_totp("ann@example.org", Actor("cli:test"))
    admin = AdminVisitor(client)
    assert (await admin.sign_in("ann@example.org", secret=secret)).status == 303
    secrets = [ann.password_hash, bob.password_hash, secret, API_TOKEN, publisher.tokens.secret_key, PASSWORD,
               "bob's long password", admin.session]
    assert all(secrets)
    listed = pages(create_app(publisher), await parameter_values(publisher))
    assert len(listed) >= 20 and not [page.route for page in listed if page.path is None]
    for path in [page.path for page in listed]:
        response = await admin.get(path)
        body = await response.text()
        assert response.status == 200, path  # every page of a row that exists: none is left unchecked as a 404
        policy = response.headers.get("Content-Security-Policy", PAGE_CSP)  # the previews' frames have their own
        assert "default-src 'none'" in policy and "script-src" not in policy, path  # still script-free
        leaked = [s for s in secrets if s in body or s in str(response.headers.get("Location", ""))]
        assert leaked == [], path


async def test_an_admin_adds_changes_and_removes_operators_and_the_audit_log_shows_it(
    publisher: Publisher, client: TestClient
) -> None:
    await add_operator(publisher, "ann@example.org", Role.ADMIN)
    admin = AdminVisitor(client)
    await admin.sign_in("ann@example.org")
    await admin.get("/admin/operators")
    short = await admin.post("/admin/operators", {"email": "bob@example.org", "role": "editor", "password": "short"})
    assert short.status == 422 and "at least 12 characters" in await short.text()
    added = await admin.post("/admin/operators", {"email": "bob@example.org", "role": "editor", "password": PASSWORD})
    assert added.status == 303
    page = await admin.get(added.headers["Location"])
    assert "The operator was added." in await page.text()
    bob = next(o for o in await publisher.operators.every() if o.email == "bob@example.org")
    assert (await admin.post(f"/admin/operators/{bob.id}/role", {"role": "admin"})).status == 303
    ann = next(o for o in await publisher.operators.every() if o.email == "ann@example.org")
    assert (await admin.post(f"/admin/operators/{bob.id}/remove", {})).status == 303
    last = await admin.post(f"/admin/operators/{ann.id}/remove", {})
    assert last.status == 422 and "last admin" in await last.text()
    assert (await admin.post("/admin/operators/999/remove", {})).status == 404
    audit = await (await admin.get("/admin/audit")).text()
    rows = re.findall(r"<tr>\s*<td><time[^>]*>[^<]*</time></td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>", audit)
    assert rows[:4] == [
        ("ann@example.org", "operator.remove", "bob@example.org"),
        ("ann@example.org", "operator.role", "bob@example.org"),
        ("ann@example.org", "operator.add", "bob@example.org"),
        ("ann@example.org", "sign_in", "ann@example.org"),
    ]


async def test_the_audit_log_pages_by_fifty(publisher: Publisher, client: TestClient) -> None:
    await add_operator(publisher, "ann@example.org", Role.ADMIN)
    for n in range(60):
        await publisher.operators.set_role("ann@example.org", Role.ADMIN, Actor(f"cli:{n}"))
    viewer = AdminVisitor(client)
    await viewer.sign_in("ann@example.org")
    first = await (await viewer.get("/admin/audit")).text()
    assert first.count("<tr>") == 51  # the header and fifty entries
    older = re.search(r'href="(/admin/audit\?before=\d+)"', first)
    assert older is not None
    second = await (await viewer.get(older.group(1))).text()
    assert second.count("<tr>") == 1 + 62 - 50 and "cli:0" in second and "cli:59" not in second
    assert (await viewer.get("/admin/audit?before=x")).status == 400


async def test_sign_in_comes_back_to_the_page_asked_for_and_never_to_another_site(
    publisher: Publisher, client: TestClient
) -> None:
    await add_operator(publisher, "ann@example.org", Role.ADMIN)
    visitor = AdminVisitor(client)
    asked = await visitor.get("/admin/audit")
    assert asked.headers["Location"] == "/admin/sign-in?next=/admin/audit"
    await visitor.get(asked.headers["Location"])
    back = await visitor.post("/admin/sign-in", {"email": "ann@example.org", "password": PASSWORD, "next": "/admin/audit"})
    assert back.headers["Location"] == "/admin/audit"
    for hostile in ("//evil.example/admin/", "https://evil.example/admin/", "/admin/\\\\evil.example", "/public"):
        other = AdminVisitor(visitor.client)
        await other.get("/admin/sign-in")
        response = await other.post("/admin/sign-in", {"email": "ann@example.org", "password": PASSWORD, "next": hostile})
        assert response.headers["Location"] == "/admin/", hostile


async def test_signing_out_ends_the_session(publisher: Publisher, client: TestClient) -> None:
    await add_operator(publisher, "ann@example.org", Role.VIEWER)
    visitor = AdminVisitor(client)
    await visitor.sign_in("ann@example.org")
    token = visitor.session
    await visitor.get("/admin/")
    out = await visitor.post("/admin/sign-out", {})
    assert out.status == 303 and visitor.session == ""
    visitor.session = token  # a copy of the old cookie opens nothing
    assert (await visitor.get("/admin/")).status == 303


async def test_the_second_factor_is_asked_before_any_page_opens(publisher: Publisher, client: TestClient) -> None:
    await add_operator(publisher, "ann@example.org", Role.ADMIN)
    secret = await publisher.operators.enable_totp("ann@example.org", Actor("cli:test"))
    visitor = AdminVisitor(client)
    await visitor.get("/admin/sign-in")
    first = await visitor.post("/admin/sign-in", {"email": "ann@example.org", "password": PASSWORD})
    assert first.headers["Location"] == "/admin/sign-in/code"
    assert (await visitor.get("/admin/")).status == 303  # the password alone opens nothing
    await visitor.get("/admin/sign-in/code")
    wrong = await visitor.post("/admin/sign-in/code", {"code": "12345x"})
    assert wrong.status == 401 and "That code is not right" in await wrong.text()
    right = await visitor.post("/admin/sign-in/code", {"code": totp.code_at(secret, totp.step_at(clock.now()))})
    assert right.status == 303 and right.headers["Location"] == "/admin/"
    assert (await visitor.get("/admin/")).status == 200


async def test_an_idle_session_sends_the_next_page_to_the_sign_in(
    publisher: Publisher, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_operator(publisher, "ann@example.org", Role.VIEWER)
    visitor = AdminVisitor(client)
    await visitor.sign_in("ann@example.org")
    assert (await visitor.get("/admin/")).status == 200
    later = clock.now() + timedelta(minutes=30)
    monkeypatch.setattr(clock, "now", lambda: later)
    response = await visitor.get("/admin/audit")
    assert response.status == 303 and response.headers["Location"] == "/admin/sign-in?next=/admin/audit"


async def test_a_page_s_own_progress_reads_don_t_keep_an_idle_session_alive(
    publisher: Publisher, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tab left open on a running digest polls its progress every few seconds; that is not
    the operator at work: the session still ends after [admin] session_idle_minutes."""
    await add_operator(publisher, "ann@example.org", Role.VIEWER)
    await some_mail_sent(publisher)
    [digest] = await publisher.delivery.states()
    progress = f"/admin/digests/{digest.id}/progress"
    visitor = AdminVisitor(client)
    await visitor.sign_in("ann@example.org")
    start = clock.now()
    for minutes in (10, 20, 29):
        monkeypatch.setattr(clock, "now", lambda minutes=minutes: start + timedelta(minutes=minutes))
        assert (await visitor.get(progress)).status == 200
    monkeypatch.setattr(clock, "now", lambda: start + timedelta(minutes=31))
    assert (await visitor.get(progress)).status == 401  # the script stops here
    assert (await visitor.get("/admin/")).status == 303


async def test_the_overview_shows_the_counts_kept_as_things_change(publisher: Publisher, client: TestClient) -> None:
    """Subscribers by status and the messages of the last hours, read from the counts, in tables."""
    await add_operator(publisher, "vic@example.org", Role.VIEWER)
    await some_mail_sent(publisher)
    viewer = AdminVisitor(client)
    assert (await viewer.sign_in("vic@example.org")).status == 303
    page = lxml.html.fromstring(await (await viewer.get("/admin/")).text())
    tables = {table.findtext("caption"): [[cell.text_content().strip() for cell in row] for row in table.iter("tr")]
              for table in page.iter("table")}
    assert ["active", "3"] in tables["Subscribers by status now"] and ["pending", "1"] in tables["Subscribers by status now"]
    [sent_column] = [i for i, cell in enumerate(next(iter(
        tables["Messages per hour by outcome, last 48 hours (hours without any left out)"]))) if cell == "sent"]
    hours = tables["Messages per hour by outcome, last 48 hours (hours without any left out)"][1:]
    assert sum(int(row[sent_column].replace(",", "")) for row in hours) == 3
