"""The operator API over HTTP: token, JSON errors, every route, through the real store.

The app is built the way ``create_app`` mounts the API (a bare application holding
the publisher), so these tests don't depend on the public pages.  Emails are read
back from the maildir outbox the default transport writes.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import json
import logging
import mailbox
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from publisher import clock
from publisher.app import Publisher
from publisher.config import Settings
from publisher.store.schema import subscribers as subscribers_table
from publisher.web.api import http as api_http
from subscribers import service
from subscribers import store as subscriber_store
from subscribers.tokens import Purpose
from tests.support.web_client import api_client

TOKEN = "test-api-token-5f0c2b7e9a1d4c38"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEFAULTS = '[subscribers]\ndefault_cadence = "weekly"\n\n[digest]\ntimezone = "Europe/Paris"\n'


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Defaults unlike the models' (daily, UTC), so that the API's use of them shows."""
    return make_settings(DEFAULTS)


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PUBLISHER_API_TOKEN", TOKEN)
    return TOKEN


@pytest.fixture
async def client(publisher: Publisher, token: str) -> AsyncIterator[TestClient]:
    """A client that sends the token with every request; the store holds the sample articles' tags."""
    await publisher.intake.scan()
    async with api_client(publisher, token) as test_client:
        yield test_client


async def anonymous(client: TestClient, method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
    """A request without the client's default Authorization header."""
    async with aiohttp.ClientSession() as session:
        response = await session.request(method, client.make_url(path), **kwargs)
        await response.read()
        return response


async def create(client: TestClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/subscribers", json={"confirmed": True, **fields})
    assert response.status == 201, await response.text()
    return await response.json()


def fields_of(body: dict[str, Any]) -> set[str | None]:
    return {p["field"] for p in body["problems"]}


def outbox(settings: Settings) -> list[email.message.EmailMessage]:
    if not settings.delivery.outbox.exists():
        return []
    box = mailbox.Maildir(settings.delivery.outbox, factory=None, create=False)
    return [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in box.iterkeys()]


# --- the gate --------------------------------------------------------------------------


async def test_no_token_or_a_wrong_one_is_401_and_never_logged(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": "Bearer"}, {"Authorization": f"Bearer {TOKEN}x"}):
        response = await anonymous(client, "GET", "/api/subscribers", headers=headers)
        assert response.status == 401, headers
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="publisher"')
        assert response.headers["Cache-Control"] == "no-store"
        body = await response.json()
        assert body["error"] and body["problems"] == []
    # An unknown path says 401 too: without the token, nothing about the routes shows.
    assert (await anonymous(client, "GET", "/api/no-such-thing")).status == 401
    # The scheme is case-insensitive (RFC 7235).
    ok = await anonymous(client, "GET", "/api/subscribers", headers={"Authorization": f"bearer {TOKEN}"})
    assert ok.status == 200
    assert TOKEN not in caplog.text and "wrong-token" not in caplog.text


@pytest.mark.parametrize("value", [None, "", "   "])
async def test_without_a_configured_token_the_api_is_disabled(
    client: TestClient, publisher: Publisher, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("PUBLISHER_API_TOKEN")
    else:
        monkeypatch.setenv("PUBLISHER_API_TOKEN", value)
    for headers in (AUTH, {"Authorization": "Bearer "}, {}):
        response = await anonymous(client, "GET", "/api/subscribers", headers=headers)
        assert response.status == 503
        assert "PUBLISHER_API_TOKEN" in (await response.json())["error"]
    assert (await anonymous(client, "POST", "/api/subscribers", json={"email": "a@example.org"})).status == 503
    assert await subscriber_store.count(publisher.engine) == 0


async def test_unknown_routes_and_methods_answer_json(client: TestClient) -> None:
    for path in ("/api/nothing", "/api/subscribers/abc", "/api/subscribers/1234567890123456789012", "/api/subscribers/7"):
        response = await client.get(path)
        assert response.status == 404, path
        assert response.content_type == "application/json"
        assert response.headers["Cache-Control"] == "no-store"
    response = await client.put("/api/subscribers", json={})
    assert response.status == 405
    assert "POST" in response.headers["Allow"]
    assert (await response.json())["error"]


# --- create and read -------------------------------------------------------------------


async def test_create_confirmed_uses_site_defaults_and_sends_nothing(
    client: TestClient, publisher: Publisher, settings: Settings
) -> None:
    response = await client.post("/api/subscribers", json={"email": " Ann@Example.ORG ", "confirmed": True})
    assert response.status == 201
    created = await response.json()
    assert created["email"] == "ann@example.org"
    assert created["status"] == "active" and created["confirmed_source"] == "api" and created["source"] == "api"
    assert (created["cadence"], created["timezone"], created["topics"], created["send_hour"]) == (
        "weekly", "Europe/Paris", [], None,
    )
    assert response.headers["Location"] == f"/api/subscribers/{created['id']}"
    assert response.headers["Cache-Control"] == "no-store"
    fetched = await client.get(response.headers["Location"])
    assert fetched.status == 200 and await fetched.json() == created
    assert await publisher.tasks.settle(5)
    assert outbox(settings) == []


async def test_create_with_every_field(client: TestClient) -> None:
    created = await create(
        client, email="bo@example.org", name="  Bo   Li ", cadence="Instant",
        topics=["Russia", "climate", "russia"], timezone="Asia/Tokyo", send_hour=7,
    )
    assert created["name"] == "Bo Li"
    assert created["cadence"] == "instant"
    assert created["topics"] == ["climate", "russia"]  # known spellings, sorted, unique
    assert (created["timezone"], created["send_hour"]) == ("Asia/Tokyo", 7)


async def test_pending_creation_sends_the_confirmation_email(
    client: TestClient, publisher: Publisher, settings: Settings
) -> None:
    response = await client.post("/api/subscribers", json={"email": "cy@example.org", "name": "Cy"})
    assert response.status == 201
    created = await response.json()
    assert created["status"] == "pending" and created["confirmed_at"] is None
    assert await publisher.tasks.settle(5)
    [message] = outbox(settings)
    assert message["To"].addresses[0].addr_spec == "cy@example.org"
    text = message.get_body(("plain",))
    assert text is not None
    match = re.search(re.escape(settings.site.url) + r"confirm/(\S+)", text.get_content())
    assert match, text.get_content()
    claim = publisher.tokens.read(Purpose.CONFIRM, match.group(1))
    assert claim.subscriber_id == created["id"] and claim.matches("cy@example.org")


async def test_validation_lists_every_problem(client: TestClient, publisher: Publisher) -> None:
    response = await client.post("/api/subscribers", json={
        "email": "not-an-address", "name": 42, "cadence": "hourly", "topics": ["no-such-topic"],
        "timezone": "Mars/Olympus", "send_hour": 24, "confirmed": "yes", "colour": "blue",
    })
    assert response.status == 422
    body = await response.json()
    assert fields_of(body) == {
        "email", "name", "cadence", "topics", "timezone", "send_hour", "confirmed", "colour",
    }
    assert all(p["message"] for p in body["problems"])
    assert await subscriber_store.count(publisher.engine) == 0

    missing = await (await client.post("/api/subscribers", json={"name": "Nobody"})).json()
    assert fields_of(missing) == {"email"}
    for bad_hour in (7.5, True, "seven"):
        hour = await client.post("/api/subscribers", json={"email": "h@example.org", "send_hour": bad_hour})
        assert hour.status == 422 and fields_of(await hour.json()) == {"send_hour"}
    not_object = await client.post("/api/subscribers", json=["a@example.org"])
    assert not_object.status == 422 and fields_of(await not_object.json()) == {None}


async def test_bodies_that_are_not_json_or_too_large(client: TestClient) -> None:
    broken = await client.post("/api/subscribers", data=b'{"email": ', headers={"Content-Type": "application/json"})
    assert broken.status == 400 and "JSON" in (await broken.json())["error"]
    nan = await client.post("/api/subscribers", data=b'{"email": "n@example.org", "send_hour": NaN}',
                            headers={"Content-Type": "application/json"})
    assert nan.status == 400
    form = await client.post("/api/subscribers", data={"email": "f@example.org"})
    assert form.status == 415
    big = await client.post("/api/subscribers", json={"email": "b@example.org", "name": "x" * api_http.MAX_JSON_BODY})
    assert big.status == 413 and (await big.json())["error"]


async def test_known_and_suppressed_addresses_are_409(client: TestClient, publisher: Publisher) -> None:
    first = await create(client, email="dee@example.org")
    again = await client.post("/api/subscribers", json={"email": "DEE@example.org"})
    assert again.status == 409
    body = await again.json()
    assert body["code"] == "already_subscribed" and body["id"] == first["id"]

    await service.suppress(publisher.engine, "eve@example.org", now=clock.now(), reason="bounced")
    suppressed = await client.post("/api/subscribers", json={"email": "eve@example.org", "confirmed": True})
    assert suppressed.status == 409
    body = await suppressed.json()
    assert body["code"] == "suppressed" and body["reason"] == "bounced"
    assert await subscriber_store.count(publisher.engine) == 1


# --- list ------------------------------------------------------------------------------


async def test_paging_with_next_after_yields_everyone_once(client: TestClient, publisher: Publisher) -> None:
    made = [(await create(client, email=f"reader{i}@example.org"))["id"] for i in range(7)]
    await create(client, email="other@example.net", name="Walker")
    seen: list[int] = []
    after: int | None = 0
    pages = 0
    while after is not None:
        response = await client.get("/api/subscribers", params={"q": "reader", "limit": "3", "after": str(after)})
        assert response.status == 200
        body = await response.json()
        assert body["total"] == 7
        seen += [s["id"] for s in body["subscribers"]]
        after = body["next_after"]
        pages += 1
    assert seen == made
    assert pages == 3  # 3 + 3 + 1: the last page says so itself, no empty page after it

    exactly = await (await client.get("/api/subscribers", params={"q": "reader", "limit": "7"})).json()
    assert len(exactly["subscribers"]) == 7 and exactly["next_after"] is None

    by_name = await (await client.get("/api/subscribers", params={"q": "walk"})).json()
    assert [s["email"] for s in by_name["subscribers"]] == ["other@example.net"]

    await service.leave(publisher.engine, made[0], now=clock.now())
    left = await (await client.get("/api/subscribers", params={"status": "unsubscribed"})).json()
    assert [s["id"] for s in left["subscribers"]] == [made[0]] and left["total"] == 1
    everyone = await (await client.get("/api/subscribers")).json()
    assert everyone["total"] == 8 and len(everyone["subscribers"]) == 8 and everyone["next_after"] is None


async def test_a_search_matches_its_text_literally_never_everyone(client: TestClient) -> None:
    await create(client, email="ann@example.org", name="Ann")
    await create(client, email="bo_b@example.org", name="100% Bob")
    for q, found in (("%", ["bo_b@example.org"]), ("_", ["bo_b@example.org"]), ("n_", []), ("0%", ["bo_b@example.org"])):
        body = await (await client.get("/api/subscribers", params={"q": q})).json()
        assert [s["email"] for s in body["subscribers"]] == found and body["total"] == len(found), q
    # A control character can't be in an address or a name: a search for one is refused.
    for q in ("\x00", "ann\x00", "\n"):
        response = await client.get("/api/subscribers", params={"q": q})
        assert response.status == 422, repr(q)
        problems = (await response.json())["problems"]
        assert fields_of({"problems": problems}) == {"q"} and "control character" in problems[0]["message"]


async def test_bad_list_parameters_are_all_reported(client: TestClient) -> None:
    response = await client.get(
        "/api/subscribers", params={"limit": "501", "after": "-1", "status": "gone", "sort": "email"}
    )
    assert response.status == 422
    assert fields_of(await response.json()) == {"limit", "after", "status", "sort"}
    for params in ({"limit": "0"}, {"limit": "ten"}, {"after": "9" * 5000}, {"q": "x" * 300}):
        assert (await client.get("/api/subscribers", params=params)).status == 422, params
    assert (await client.get("/api/subscribers", params={"limit": "500"})).status == 200


# --- update ----------------------------------------------------------------------------


async def test_patch_changes_only_what_it_names(client: TestClient) -> None:
    created = await create(client, email="fay@example.org", name="Fay", cadence="daily", send_hour=6)
    url = f"/api/subscribers/{created['id']}"
    response = await client.patch(url, json={"cadence": "weekly", "topics": "russia|climate"})
    assert response.status == 200
    changed = await response.json()
    assert changed["cadence"] == "weekly" and changed["topics"] == ["climate", "russia"]
    assert changed["name"] == "Fay" and changed["send_hour"] == 6  # untouched
    renamed = await (await client.patch(url, json={"name": "Fay Wong", "send_hour": None})).json()
    assert renamed["name"] == "Fay Wong" and renamed["send_hour"] is None and renamed["cadence"] == "weekly"
    assert await (await client.get(url)).json() == renamed

    bad = await client.patch(url, json={"cadence": "never", "timezone": "Nowhere", "email": "x@example.org"})
    assert bad.status == 422
    assert fields_of(await bad.json()) == {"cadence", "timezone", "email"}
    assert await (await client.get(url)).json() == renamed  # nothing half-applied
    assert (await client.patch("/api/subscribers/999999", json={"name": "Ghost"})).status == 404


async def test_patch_can_unsubscribe_but_never_reactivate(client: TestClient, publisher: Publisher) -> None:
    created = await create(client, email="gil@example.org")
    url = f"/api/subscribers/{created['id']}"
    refused = await client.patch(url, json={"status": "bounced"})
    assert refused.status == 422 and fields_of(await refused.json()) == {"status"}
    left = await client.patch(url, json={"status": "unsubscribed"})
    assert left.status == 200
    body = await left.json()
    assert body["status"] == "unsubscribed" and body["unsubscribed_at"]
    for status in ("active", "pending"):
        again = await client.patch(url, json={"status": status})
        assert again.status == 422
    assert (await (await client.get(url)).json())["status"] == "unsubscribed"
    # Leaving suppressed the address: the API can't add it back either.
    recreate = await client.post("/api/subscribers", json={"email": "gil@example.org", "confirmed": True})
    assert recreate.status == 409 and (await recreate.json())["code"] == "suppressed"


# --- delete ----------------------------------------------------------------------------


async def test_delete_erases_the_row_and_keeps_the_address_suppressed(
    client: TestClient, publisher: Publisher
) -> None:
    keep = await create(client, email="keep@example.org")
    gone = await create(client, email="hal@example.org", name="Hal")
    response = await client.delete(f"/api/subscribers/{gone['id']}")
    assert response.status == 204 and await response.read() == b""
    async with publisher.engine.connect() as conn:
        rows = (await conn.execute(select(func.count()).select_from(subscribers_table)
                                   .where(subscribers_table.c.email == "hal@example.org"))).scalar_one()
        assert rows == 0
        assert await subscriber_store.get(conn, keep["id"]) is not None
    assert (await client.get(f"/api/subscribers/{gone['id']}")).status == 404
    assert (await client.delete(f"/api/subscribers/{gone['id']}")).status == 404
    again = await client.post("/api/subscribers", json={"email": "hal@example.org", "confirmed": True})
    assert again.status == 409
    body = await again.json()
    assert body["code"] == "suppressed" and body["reason"] == "erased"


# --- export ----------------------------------------------------------------------------


async def test_export_streams_json_lines_in_batches(
    client: TestClient, publisher: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages: list[int] = []
    original = subscriber_store.batches

    async def small_batches(*args: Any, **kwargs: Any) -> AsyncIterator[list[Any]]:
        async for page in original(*args, **{**kwargs, "size": 2}):
            pages.append(len(page))
            yield page

    monkeypatch.setattr(subscriber_store, "batches", small_batches)
    made = [await create(client, email=f"x{i}@example.org", name="Zoë Ñ") for i in range(5)]
    await service.leave(publisher.engine, made[1]["id"], now=clock.now())

    response = await client.get("/api/subscribers/export")
    assert response.status == 200
    assert response.content_type == "application/x-ndjson"
    assert response.headers["Transfer-Encoding"] == "chunked"  # streamed, not built whole
    assert response.headers["Cache-Control"] == "no-store"
    lines = (await response.read()).decode("utf-8").splitlines()
    async with publisher.engine.connect() as conn:
        expected = [(await subscriber_store.get(conn, s["id"])).to_dict() for s in made]  # type: ignore[union-attr]
    assert [json.loads(line) for line in lines] == expected
    assert pages == [2, 2, 1]

    active = await client.get("/api/subscribers/export", params={"status": "active"})
    assert [json.loads(line)["id"] for line in (await active.text()).splitlines()] == [
        s["id"] for s in made if s["id"] != made[1]["id"]
    ]
    assert (await client.get("/api/subscribers/export", params={"status": "nope"})).status == 422


# --- import ----------------------------------------------------------------------------


async def test_import_json_reports_each_item_and_carries_on(client: TestClient, publisher: Publisher) -> None:
    existing = await create(client, email="old@example.org", name="Old")
    await service.suppress(publisher.engine, "spam@example.org", now=clock.now(), reason="complained")
    items = [
        {"email": "new1@example.org", "name": "New One", "topics": ["russia"]},
        {"email": "broken", "cadence": "yearly", "extra": 1},
        42,
        {"email": "spam@example.org"},
        {"email": "OLD@example.org", "name": "Renamed?"},
        {"email": "new2@example.org", "send_hour": 8},
        {"email": "new2@example.org", "cadence": "instant"},
    ]
    response = await client.post("/api/subscribers/import", json=items)
    assert response.status == 200
    report = await response.json()
    assert (report["created"], report["existing"], report["suppressed"], report["merged"]) == (2, 1, 1, 1)
    assert {(p["index"], p["field"]) for p in report["invalid"]} == {
        (1, "email"), (1, "cadence"), (1, "extra"), (2, None),
    }

    found = {s["email"]: s for s in (await (await client.get("/api/subscribers")).json())["subscribers"]}
    assert set(found) == {"old@example.org", "new1@example.org", "new2@example.org"}
    assert found["old@example.org"] == existing  # left as it was
    new1, new2 = found["new1@example.org"], found["new2@example.org"]
    assert new1["status"] == "active" and new1["source"] == "import" and new1["confirmed_source"] == "import"
    assert new1["topics"] == ["russia"] and new1["cadence"] == "weekly"  # the site's default
    assert (new2["send_hour"], new2["cadence"]) == (8, "instant")  # two items merged
    assert await publisher.tasks.settle(5)


async def test_an_export_imports_back(client: TestClient, publisher: Publisher) -> None:
    first = await create(client, email="a1@example.org", topics=["climate"])
    await client.post("/api/subscribers", json={"email": "p1@example.org"})  # pending
    lines = (await (await client.get("/api/subscribers/export")).text()).splitlines()
    assert (await client.delete(f"/api/subscribers/{first['id']}")).status == 204
    async with publisher.engine.begin() as conn:  # a fresh database, as far as a1 is concerned
        await subscriber_store.lift(conn, [service.email_hash("a1@example.org")])
    report = await (await client.post("/api/subscribers/import", json=[json.loads(x) for x in lines])).json()
    assert (report["created"], report["inactive"], report["invalid"]) == (1, 1, [])
    back = await (await client.get("/api/subscribers", params={"q": "a1@"})).json()
    assert back["subscribers"][0]["topics"] == ["climate"]
    assert await publisher.tasks.settle(5)


async def test_import_csv_and_bad_import_bodies(client: TestClient) -> None:
    csv_body = "email;name;cadence\nivy@example.org;Ivy;daily\nnot-an-address;X;daily\n"
    response = await client.post(
        "/api/subscribers/import", data=csv_body.encode(), headers={"Content-Type": "text/csv; charset=utf-8"}
    )
    assert response.status == 200
    report = await response.json()
    assert report["created"] == 1
    assert [(p["line"], p["field"]) for p in report["invalid"]] == [(3, "email")]
    no_email = await client.post("/api/subscribers/import", data=b"name\nIvy\n", headers={"Content-Type": "text/csv"})
    assert no_email.status == 422 and (await no_email.json())["line"] == 1
    assert (await client.post("/api/subscribers/import", json={"email": "x@example.org"})).status == 422
    assert (await client.post("/api/subscribers/import", data=b"<xml/>",
                              headers={"Content-Type": "application/xml"})).status == 415


async def test_an_export_that_fails_half_way_is_cut_off_not_ended(
    client: TestClient, publisher: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = [await create(client, email=f"y{i}@example.org") for i in range(3)]

    async def failing_batches(*args: Any, **kwargs: Any) -> AsyncIterator[list[Any]]:
        async with publisher.engine.connect() as conn:
            yield [await subscriber_store.get(conn, made[0]["id"])]
        raise RuntimeError("the database went away")

    monkeypatch.setattr(subscriber_store, "batches", failing_batches)
    response = await client.get("/api/subscribers/export")
    assert response.status == 200  # the headers were already sent when it failed
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()


async def test_mounted_in_the_whole_application(publisher: Publisher, token: str) -> None:
    """Through ``create_app``: its middleware and headers leave the API's answers intact."""
    from publisher.web.server import create_app

    async with TestClient(TestServer(create_app(publisher))) as full:
        denied = await full.get("/api/subscribers")
        assert denied.status == 401 and denied.content_type == "application/json"
        assert denied.headers["WWW-Authenticate"].startswith('Bearer realm="publisher"')
        created = await full.post("/api/subscribers", json={"email": "w@example.org", "confirmed": True}, headers=AUTH)
        assert created.status == 201
        listed = await full.get("/api/subscribers", headers=AUTH)
        assert listed.headers["Cache-Control"] == "no-store"
        assert [s["email"] for s in (await listed.json())["subscribers"]] == ["w@example.org"]
        assert (await full.get("/api/nothing", headers=AUTH)).content_type == "application/json"
