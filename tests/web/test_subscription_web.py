"""The subscription pages over HTTP: sign-up, confirmation, preferences, unsubscribe.

Every flow goes through the real application (aiohttp test server), the real store
(SQLite and PostgreSQL) and the maildir transport; links are taken from the emails it wrote.
"""

from __future__ import annotations

import email.message
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import html5lib
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from itsdangerous import TimestampSigner
from sqlalchemy import select

from publisher import clock
from publisher.app import Publisher
from publisher.config import Settings
from publisher.digest.plan import PlanOptions, plan
from publisher.store.ingest import ingest
from publisher.store.schema import deliveries, suppressions
from subscribers import service
from subscribers import store as subscriber_store
from subscribers.model import Cadence, Preferences, Status, Subscriber
from subscribers.tokens import Purpose
from subscribers.validation import email_hash
from tests.support.articles import seed_like
from tests.support.databases import read_only_engine
from tests.support.outbox import link_in, outbox_messages
from tests.support.people import add_subscriber
from tests.support.web_client import Visitor, web_client

GENEROUS = '[subscribers]\nsignup_rate_per_client = "1000/hour"\nsignup_rate_per_address = "1000/hour"\n'


@pytest.fixture
async def site(make_settings: Callable[..., Settings]) -> AsyncIterator[tuple[Publisher, TestClient]]:
    publisher = Publisher(make_settings(GENEROUS))
    await publisher.start()
    await publisher.intake.scan()
    async with web_client(publisher) as client:
        yield publisher, client
    await publisher.close()


async def subscriber(publisher: Publisher, address: str) -> Subscriber | None:
    """The subscriber as stored once the work a page left for after its answer is done."""
    await publisher.tasks.settle(10)
    async with publisher.engine.connect() as conn:
        return await subscriber_store.find(conn, address)


async def publish_fresh(publisher: Publisher) -> None:
    """A new article after everyone subscribed, so a digest is due."""
    await ingest(publisher.engine, [seed_like(id="fresh", slug="fresh", title="Fresh")], clock.now())


async def mail_to(publisher: Publisher, address: str) -> list[email.message.EmailMessage]:
    await publisher.tasks.settle(10)
    return [m for m in outbox_messages(publisher.settings) if m["To"].addresses[0].addr_spec == address]


async def sign_up(visitor: Visitor, address: str, **fields: str | list[str]) -> str:
    page = await visitor.get("/subscribe")
    assert page.status == 200
    data: list[tuple[str, str]] = [("email", address), ("cadence", "daily")]
    for name, value in fields.items():
        data += [(name, v) for v in value] if isinstance(value, list) else [(name, value)]
    response = await visitor.post("/subscribe", data)
    assert response.status == 200, await response.text()
    return await response.text()


async def confirm(visitor: Visitor, path: str) -> ClientResponse:
    """What a person does with the emailed link: open it, press the page's one button."""
    page = await visitor.get(path)
    assert page.status == 200, await page.text()
    assert "Confirm my subscription" in await page.text()
    return await visitor.post(path, {})


async def test_sign_up_confirm_and_land_on_preferences(site: tuple[Publisher, TestClient]) -> None:
    publisher, client = site
    visitor = Visitor(client)
    body = await sign_up(visitor, "Ann@Example.org", name="Ann", topics=["Geopolitics"])
    assert "Check your inbox" in body
    pending = await subscriber(publisher, "ann@example.org")
    assert pending is not None and pending.status == Status.PENDING and pending.topics == ("geopolitics",)

    [confirmation] = await mail_to(publisher, "ann@example.org")
    assert "List-Unsubscribe" not in confirmation  # transactional, not bulk
    confirm_path = link_in(confirmation, "/confirm/")
    assert "ann" not in confirm_path.lower()  # the token never holds the address
    response = await confirm(visitor, confirm_path)
    assert response.status == 303
    location = response.headers["Location"]
    assert location.startswith("/preferences/") and location.endswith("?confirmed=1")
    page = await visitor.get(location)
    assert page.status == 200
    assert "your subscription is confirmed" in await page.text()

    active = await subscriber(publisher, "ann@example.org")
    assert active is not None and active.status == Status.ACTIVE
    assert active.confirmed_source == "web" and active.confirmed_at is not None
    # Following the link again is harmless: it leads to the preferences.
    again = await visitor.get(confirm_path)
    assert again.status == 303 and again.headers["Location"].startswith("/preferences/")
    assert (await visitor.post(confirm_path, {})).status == 303


async def test_a_link_scanner_fetching_the_confirmation_link_confirms_nothing(
    site: tuple[Publisher, TestClient],
) -> None:
    publisher, client = site
    visitor = Visitor(client)
    await sign_up(visitor, "ann@example.org")
    [confirmation] = await mail_to(publisher, "ann@example.org")
    path = link_in(confirmation, "/confirm/")
    # Mail security scanners send HEAD and GET (no cookie) to every link in a message.
    assert (await client.head(path, allow_redirects=False)).status == 200
    scanned = await client.get(path, allow_redirects=False)
    assert scanned.status == 200 and "Confirm my subscription" in await scanned.text()
    still = await subscriber(publisher, "ann@example.org")
    assert still is not None and still.status == Status.PENDING
    # A POST without the page's form token (a scanner that submits forms) is refused.
    assert (await Visitor(client).post(path, {}, csrf=False)).status == 403
    assert (await subscriber(publisher, "ann@example.org")).status == Status.PENDING  # type: ignore[union-attr]
    # The person presses the page's button.
    done = await confirm(visitor, path)
    assert done.status == 303 and done.headers["Location"].endswith("?confirmed=1")
    active = await subscriber(publisher, "ann@example.org")
    assert active is not None and active.status == Status.ACTIVE


class _OnRetry(logging.Handler):
    """Calls ``action`` once, when the first retry of background work is logged."""

    def __init__(self, action: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self.action: Callable[[], None] | None = action

    def emit(self, record: logging.LogRecord) -> None:
        if self.action is not None and "retrying" in record.getMessage():
            self.action, action = None, self.action
            action()


async def test_a_sign_up_while_the_database_refuses_writes_is_stored_once_it_recovers(
    make_settings: Callable[..., Settings],
) -> None:
    publisher = Publisher(make_settings(GENEROUS + "signup_retry_seconds = 0.01\n"))
    await publisher.start()
    writable = publisher.engine
    failing = read_only_engine(publisher.settings.database.url)
    publisher.engine = publisher.subscribers.engine = failing

    def freed() -> None:  # the disk is freed
        publisher.engine = publisher.subscribers.engine = writable

    handler = _OnRetry(freed)
    logging.getLogger("publisher").addHandler(handler)
    try:
        async with web_client(publisher) as client:
            await sign_up(Visitor(client), "ann@example.org")
            stored = await subscriber(publisher, "ann@example.org")
            assert stored is not None and stored.status == Status.PENDING
            assert len(await mail_to(publisher, "ann@example.org")) == 1
            assert (await (await client.get("/readyz")).json())["lost_signups"] == 0
    finally:
        logging.getLogger("publisher").removeHandler(handler)
        await failing.dispose()
        await publisher.close()


async def test_a_sign_up_the_database_never_takes_is_logged_and_counted_in_readyz(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    publisher = Publisher(make_settings(GENEROUS + "signup_attempts = 3\nsignup_retry_seconds = 0.01\n"))
    await publisher.start()
    writable = publisher.engine
    publisher.engine = publisher.subscribers.engine = read_only_engine(publisher.settings.database.url)
    try:
        async with web_client(publisher) as client:
            body = await sign_up(Visitor(client), "ann@example.org")
            assert "Check your inbox" in body
            assert await publisher.tasks.settle(10)
            retries = [r for r in caplog.records if "retrying" in r.getMessage()]
            assert [r.levelno for r in retries] == [logging.WARNING] * 2
            [given_up] = [r for r in caplog.records if r.levelno == logging.ERROR]
            assert "after 3 attempts" in given_up.getMessage() and "ann@" not in given_up.getMessage()
            ready = await (await client.get("/readyz")).json()
            assert ready["lost_signups"] == 1
            assert ready["checks"]["database"]["ok"] is False
    finally:
        await publisher.engine.dispose()
        publisher.engine = publisher.subscribers.engine = writable
        await publisher.close()
    async with publisher.engine.connect() as conn:
        assert await subscriber_store.find(conn, "ann@example.org") is None


async def test_forms_without_a_valid_csrf_token_are_refused(site: tuple[Publisher, TestClient]) -> None:
    publisher, client = site
    visitor = Visitor(client)
    await visitor.get("/subscribe")
    no_token = await visitor.post("/subscribe", {"email": "eve@example.org"}, csrf=False)
    assert no_token.status == 403
    assert "form has expired" in await no_token.text()
    visitor.token = visitor.token[:-2] + ("AA" if not visitor.token.endswith("AA") else "BB")
    assert (await visitor.post("/subscribe", {"email": "eve@example.org"})).status == 403
    # The right token with another visitor's (missing) cookie is refused as well.
    stranger = Visitor(client)
    stranger.token = (await _token_of(client))
    assert (await stranger.post("/subscribe", {"email": "eve@example.org"})).status == 403
    assert await subscriber(publisher, "eve@example.org") is None


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another party too
    ],
)
async def test_a_cross_site_form_post_is_refused_even_with_a_valid_token(
    site: tuple[Publisher, TestClient], headers: dict[str, str]
) -> None:
    publisher, client = site
    visitor = Visitor(client)
    await visitor.get("/subscribe")
    refused = await visitor.post("/subscribe", {"email": "eve@example.org"}, headers=headers)
    assert refused.status == 403
    assert "did not come from this site" in await refused.text()  # the page says why, in the site's language
    assert await subscriber(publisher, "eve@example.org") is None


async def test_same_origin_form_posts_and_cross_site_one_click_unsubscribes_pass(
    site: tuple[Publisher, TestClient],
) -> None:
    publisher, client = site
    visitor = Visitor(client)
    await visitor.get("/subscribe")
    site_url = urlsplit(publisher.settings.site.url)
    site_origin = f"{site_url.scheme}://{site_url.netloc}"
    for headers in (
        {"Origin": site_origin, "Sec-Fetch-Site": "same-origin"},
        {"Origin": f"http://{client.host}:{client.port}"},  # reached by address, not the site's name
        # Our no-referrer policy makes browsers send this with every POST, our own included.
        {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
    ):
        assert (await visitor.post("/subscribe", {"email": "ann@example.org"}, headers=headers)).status == 200
    sub = await add_subscriber(publisher.engine, "bob@example.org")
    token = publisher.tokens.make(Purpose.UNSUBSCRIBE, sub.id, sub.email)
    # Mailbox providers send RFC 8058's POST from their own origin, without cookies.
    response = await client.post(
        f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"},
        headers={"Origin": "https://mail.example", "Sec-Fetch-Site": "cross-site"}, allow_redirects=False,
    )
    assert response.status == 200
    gone = await subscriber(publisher, "bob@example.org")
    assert gone is not None and gone.status == Status.UNSUBSCRIBED


async def _token_of(client: TestClient) -> str:
    other = Visitor(client)
    await other.get("/subscribe")
    return other.token


async def test_the_answer_is_byte_identical_for_known_and_unknown_addresses(
    site: tuple[Publisher, TestClient],
) -> None:
    publisher, client = site
    await add_subscriber(publisher.engine, "known@example.org")
    visitor = Visitor(client)
    await visitor.get("/subscribe")
    answers = []
    for address in ("known@example.org", "unknown@example.org"):
        response = await visitor.post("/subscribe", {"email": address, "cadence": "daily"})
        answers.append((response.status, await response.read(), sorted(
            (k, v) for k, v in response.headers.items() if k not in ("Date", "Content-Length")
        )))
    assert answers[0] == answers[1]
    # What differs is only the email: the known address is told it is already subscribed.
    [known] = await mail_to(publisher, "known@example.org")
    [unknown] = await mail_to(publisher, "unknown@example.org")
    assert "/preferences/" in link_in(known, "/preferences/")
    assert link_in(unknown, "/confirm/")
    still = await subscriber(publisher, "known@example.org")
    assert still is not None and still.status == Status.ACTIVE and still.cadence == Cadence.INSTANT


async def test_the_honeypot_answers_like_success_and_does_nothing(site: tuple[Publisher, TestClient]) -> None:
    publisher, client = site
    visitor = Visitor(client)
    body = await sign_up(visitor, "bot@example.org", website="https://spam.example")
    assert "Check your inbox" in body
    assert await subscriber(publisher, "bot@example.org") is None
    assert await mail_to(publisher, "bot@example.org") == []


async def test_invalid_input_is_shown_back_escaped_with_its_error(site: tuple[Publisher, TestClient]) -> None:
    publisher, client = site
    visitor = Visitor(client)
    await visitor.get("/subscribe")
    response = await visitor.post(
        "/subscribe",
        [("email", '"><script>alert(1)</script>'), ("name", "<b>Ann</b>"), ("cadence", "hourly"), ("topics", "Nope")],
    )
    assert response.status == 422
    body = await response.text()
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;" in body
    assert "<b>Ann</b>" not in body
    for field in ("email", "cadence", "topics"):
        assert f'id="{field}-error"' in body, field
    assert 'aria-invalid="true"' in body
    assert await subscriber_store.count(publisher.engine) == 0


async def test_an_address_needing_smtputf8_is_refused_at_sign_up_with_why(site: tuple[Publisher, TestClient]) -> None:
    publisher, client = site
    visitor = Visitor(client)
    await visitor.get("/subscribe")
    response = await visitor.post("/subscribe", {"email": "jöran@example.org"})
    assert response.status == 422
    error = html5lib.parse(await response.text(), namespaceHTMLElements=False).find(".//*[@id='email-error']")
    assert error is not None
    message = "".join(error.itertext())
    assert "before the @" in message and "use another address" in message
    assert await subscriber_store.count(publisher.engine) == 0
    assert outbox_messages(publisher.settings) == []
    # A non-ASCII domain is fine: it travels as IDNA (xn--) in plain SMTP.
    assert (await visitor.post("/subscribe", {"email": "ann@bücher.example"})).status == 200


async def test_oversized_fields_and_bodies_are_refused(site: tuple[Publisher, TestClient]) -> None:
    _, client = site
    visitor = Visitor(client)
    await visitor.get("/subscribe")
    assert (await visitor.post("/subscribe", {"email": "a" * 400 + "@example.org"})).status == 413
    assert (await visitor.post("/subscribe", {"email": "a@example.org", "name": "x" * 20_000})).status == 413


async def test_flooding_gets_429_with_retry_after(make_settings: Callable[..., Settings]) -> None:
    publisher = Publisher(make_settings(
        '[subscribers]\nsignup_rate_per_client = "4/hour"\nsignup_rate_per_address = "2/hour"\n'
    ))
    await publisher.start()
    try:
        async with web_client(publisher) as client:
            visitor = Visitor(client)
            await visitor.get("/subscribe")
            statuses = [
                (await visitor.post("/subscribe", {"email": "target@example.org"})).status for _ in range(3)
            ]
            assert statuses == [200, 200, 429]  # per target address
            assert (await visitor.post("/subscribe", {"email": "other@example.org"})).status == 200
            flooded = await visitor.post("/subscribe", {"email": "third@example.org"})
            assert flooded.status == 429  # per client: the fifth attempt this hour
            assert 0 < int(flooded.headers["Retry-After"]) <= 3600
            assert "Too many attempts" in await flooded.text()
            await publisher.tasks.settle(10)
            assert len(outbox_messages(publisher.settings)) == 3  # the 429s sent nothing
    finally:
        await publisher.close()


async def test_an_expired_confirmation_link_offers_a_new_one(
    site: tuple[Publisher, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher, client = site
    visitor = Visitor(client)
    await sign_up(visitor, "late@example.org")
    pending = await subscriber(publisher, "late@example.org")
    assert pending is not None
    # A link signed three days ago (the default validity is 48 hours).
    signed_at = int(time.time()) - 3 * 86400
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: signed_at)
    old = publisher.tokens.make(Purpose.CONFIRM, pending.id, pending.email)
    monkeypatch.undo()

    expired = await visitor.get(f"/confirm/{old}")
    assert expired.status == 410
    assert "Email me a new link" in await expired.text()
    still = await subscriber(publisher, "late@example.org")
    assert still is not None and still.status == Status.PENDING

    resend = await visitor.post("/confirm", {"token": old})
    assert resend.status == 200
    mails = await mail_to(publisher, "late@example.org")
    assert len(mails) == 2
    first, second = (link_in(m, "/confirm/") for m in mails)
    assert (await confirm(visitor, second)).status == 303
    assert (await visitor.get(first)).headers["Location"].endswith("?confirmed=1")  # confirmed already


@pytest.mark.parametrize("mangle", ["tamper", "wrong-purpose", "junk"])
async def test_bad_links_get_a_clear_page_not_a_traceback(site: tuple[Publisher, TestClient], mangle: str) -> None:
    publisher, client = site
    sub = await add_subscriber(publisher.engine, "ann@example.org")
    token = publisher.tokens.make(Purpose.CONFIRM, sub.id, sub.email)
    path = {
        "tamper": f"/confirm/{token[:-3]}xyz",
        "wrong-purpose": f"/confirm/{publisher.tokens.make(Purpose.UNSUBSCRIBE, sub.id, sub.email)}",
        "junk": "/confirm/not-a-real-token-at-all",
    }[mangle]
    response = await Visitor(client).get(path)
    assert response.status == 400
    body = await response.text()
    assert "This link does not work" in body and "Traceback" not in body
    assert 'href="/subscribe"' in body


async def test_preferences_change_cadence_topics_timezone_and_hour(site: tuple[Publisher, TestClient]) -> None:
    publisher, client = site
    sub = await add_subscriber(publisher.engine, "ann@example.org", cadence=Cadence.DAILY)
    path = "/" + publisher.tokens.link("https://x/", Purpose.PREFERENCES, sub.id, sub.email).split("/", 3)[3]
    visitor = Visitor(client)
    page = await visitor.get(path)
    assert page.status == 200 and "ann@example.org" in await page.text()
    assert page.headers["Cache-Control"] == "private, no-store"

    saved = await visitor.post(path, [
        ("action", "save"), ("name", "Ann B"), ("cadence", "weekly"), ("topics", "GeoPolitics"),
        ("timezone", "Asia/Seoul"), ("send_hour", "7"),
    ])
    assert saved.status == 303 and saved.headers["Location"].endswith("?saved=1")
    changed = await subscriber(publisher, "ann@example.org")
    assert changed is not None
    assert (changed.name, changed.cadence, changed.topics, changed.timezone, changed.preferences.send_hour) == (
        "Ann B", Cadence.WEEKLY, ("geopolitics",), "Asia/Seoul", 7,
    )

    bad = await visitor.post(path, [("action", "save"), ("cadence", "daily"), ("timezone", "Mars/Olympus"),
                                    ("send_hour", "25")])
    assert bad.status == 422
    body = await bad.text()
    assert 'id="timezone-error"' in body and 'id="send_hour-error"' in body
    unchanged = await subscriber(publisher, "ann@example.org")
    assert unchanged == changed
    assert (await visitor.post(path, [("action", "save"), ("cadence", "daily")], csrf=False)).status == 403


def page_tree(markup: str) -> ElementTree.Element:
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(markup)


async def preferences_path(publisher: Publisher, sub: Subscriber) -> str:
    return "/" + publisher.tokens.link("https://x/", Purpose.PREFERENCES, sub.id, sub.email).split("/", 3)[3]


def utc_offset(zone: str) -> str:
    minutes = int(datetime.now(UTC).astimezone(ZoneInfo(zone)).utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
    return f"UTC{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


async def test_the_time_zone_choice_is_canonical_grouped_by_region_with_offsets(
    site: tuple[Publisher, TestClient],
) -> None:
    publisher, client = site
    sub = await add_subscriber(publisher.engine, "ann@example.org", cadence=Cadence.DAILY)
    # An alias from the API or an old import: still shown, and selected.
    await service.update_subscriber(publisher.engine, sub.id, prefs=Preferences(Cadence.DAILY, timezone="US/Eastern"))
    page = await Visitor(client).get(await preferences_path(publisher, sub))
    [select] = [s for s in page_tree(await page.text()).iter("select") if s.get("id") == "timezone"]
    selected = [o.get("value") for o in select.iter("option") if o.get("selected") is not None]
    assert selected == ["US/Eastern"]

    groups = select.findall("optgroup")
    assert len(groups) >= 8
    regions = [group.get("label", "") for group in groups]
    assert regions == sorted(regions) and "Europe" in regions and "America" in regions
    offered: set[str] = set()
    for group in groups:
        values = [option.get("value", "") for option in group.findall("option")]
        assert values == sorted(values)
        for option, value in zip(group.findall("option"), values, strict=True):
            assert value.startswith(group.get("label", "") + "/")
            assert option.text == f"{value} ({utc_offset(value)})"
        offered |= set(values)
    assert {"Europe/Berlin", "Europe/Kyiv", "America/Argentina/Buenos_Aires", "Asia/Kolkata"} <= offered
    odd = {"Factory", "localtime", "posixrules", "GB", "US/Eastern", "US/Pacific", "Europe/Kiev",
           "America/Buenos_Aires", "Asia/Calcutta", "Etc/GMT+5"}
    assert not offered & odd
    assert not any(re.match(r"(Etc|US|SystemV)/", value) for value in offered)
    assert all(len(ZoneInfo(value).key) for value in offered)  # each one loads


async def test_topics_show_their_display_names_and_store_the_tag(make_settings: Callable[..., Settings]) -> None:
    names = '[site.topic_names]\nnorth-korea = "North Korea & the peninsula"\nenergy = "Energy"\n'
    publisher = Publisher(make_settings(GENEROUS + names))
    await publisher.start()
    try:
        await publisher.intake.scan()
        async with web_client(publisher) as client:
            visitor = Visitor(client)
            form = page_tree(await (await visitor.get("/subscribe")).text())
            labels = {label.get("for"): label.text for label in form.iter("label")}
            offered = {box.get("value"): labels[box.get("id")] for box in form.iter("input") if box.get("name") == "topics"}
            assert offered["north-korea"] == "North Korea & the peninsula"
            assert offered["energy"] == "Energy"  # named in the config, not yet an article tag
            assert offered["russia"] == "russia"  # a tag without a name shows as it is
            await sign_up(visitor, "ann@example.org", topics=["north-korea", "energy"])
            pending = await subscriber(publisher, "ann@example.org")
            assert pending is not None and pending.topics == ("energy", "north-korea")
            page = page_tree(await (await visitor.get(await preferences_path(publisher, pending))).text())
            labels = {label.get("for"): label.text for label in page.iter("label")}
            ticked = {labels[box.get("id")] for box in page.iter("input")
                      if box.get("name") == "topics" and box.get("checked") is not None}
            assert ticked == {"North Korea & the peninsula", "Energy"}
    finally:
        await publisher.close()


async def test_weekly_readers_choose_their_weekday(site: tuple[Publisher, TestClient]) -> None:
    publisher, client = site
    sub = await add_subscriber(publisher.engine, "ann@example.org", cadence=Cadence.WEEKLY)
    path = await preferences_path(publisher, sub)
    visitor = Visitor(client)
    page = page_tree(await (await visitor.get(path)).text())
    [select] = [s for s in page.iter("select") if s.get("id") == "send_weekday"]
    labels = {label.get("for"): label.text for label in page.iter("label")}
    assert "weekly" in labels["send_weekday"].lower()
    options = {o.get("value"): o.text for o in select.iter("option")}
    assert options[""] == "The usual day (Monday)"  # [digest] weekly_day of the test site
    assert [o.get("value") for o in select.iter("option") if o.get("selected") is not None] == [""]

    fields = [("action", "save"), ("cadence", "weekly"), ("timezone", "UTC"), ("send_hour", "")]
    saved = await visitor.post(path, [*fields, ("send_weekday", "thu")])
    assert saved.status == 303
    changed = await subscriber(publisher, "ann@example.org")
    assert changed is not None and changed.preferences.send_weekday == "thu"
    page = page_tree(await (await visitor.get(path)).text())
    [select] = [s for s in page.iter("select") if s.get("id") == "send_weekday"]
    assert [o.text for o in select.iter("option") if o.get("selected") is not None] == ["Thursday"]

    bad = await visitor.post(path, [*fields, ("send_weekday", "someday")])
    assert bad.status == 422 and 'id="send_weekday-error"' in await bad.text()
    assert (await subscriber(publisher, "ann@example.org")) == changed
    await visitor.post(path, [*fields, ("send_weekday", "")])
    back = await subscriber(publisher, "ann@example.org")
    assert back is not None and back.preferences.send_weekday is None


async def test_one_click_unsubscribe_per_rfc_8058(site: tuple[Publisher, TestClient]) -> None:
    publisher, client = site
    sub = await add_subscriber(publisher.engine, "ann@example.org")
    await add_subscriber(publisher.engine, "bob@example.org")
    # A digest is planned for both; Ann leaves before delivery.
    await publish_fresh(publisher)
    await plan(publisher.engine, Cadence.INSTANT, clock.now(), PlanOptions(max_articles=5))

    token = publisher.tokens.make(Purpose.UNSUBSCRIBE, sub.id, sub.email)
    # The mailbox provider's POST: no cookie, no CSRF token, just the RFC 8058 body.
    response = await client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"},
                                 allow_redirects=False)
    assert response.status == 200
    gone = await subscriber(publisher, "ann@example.org")
    assert gone is not None and gone.status == Status.UNSUBSCRIBED and gone.unsubscribed_at is not None
    async with publisher.engine.connect() as conn:
        suppressed = await conn.scalar(select(suppressions.c.reason).where(
            suppressions.c.email_hash == email_hash("ann@example.org")))
    assert suppressed == "unsubscribed"

    report = await publisher.delivery.deliver()
    assert (report.sent, report.cancelled) == (1, 1)
    async with publisher.engine.connect() as conn:
        state = await conn.scalar(select(deliveries.c.state).where(deliveries.c.subscriber_id == sub.id))
    assert state == "cancelled"


async def test_unsubscribe_page_asks_first_and_a_plain_post_needs_the_form_token(
    site: tuple[Publisher, TestClient],
) -> None:
    publisher, client = site
    sub = await add_subscriber(publisher.engine, "ann@example.org")
    path = f"/unsubscribe/{publisher.tokens.make(Purpose.UNSUBSCRIBE, sub.id, sub.email)}"
    visitor = Visitor(client)
    page = await visitor.get(path)
    assert page.status == 200 and "<button" in await page.text()
    still = await subscriber(publisher, "ann@example.org")
    assert still is not None and still.status == Status.ACTIVE  # a GET (link scanner) changes nothing
    assert (await visitor.post(path, {}, csrf=False)).status == 403
    done = await visitor.post(path, {})
    assert done.status == 200 and "You are unsubscribed" in await done.text()
    left = await subscriber(publisher, "ann@example.org")
    assert left is not None and left.status == Status.UNSUBSCRIBED


async def test_coming_back_after_unsubscribing_takes_a_new_double_opt_in(site: tuple[Publisher, TestClient]) -> None:
    publisher, client = site
    sub = await add_subscriber(publisher.engine, "ann@example.org")
    await service.leave(publisher.engine, sub.id, now=clock.now())
    # Neither the API path nor an import can bring the address back ...
    with pytest.raises(service.Suppressed):
        await add_subscriber(publisher.engine, "ann@example.org")
    # ... but Ann herself can, by confirming from her mailbox.
    visitor = Visitor(client)
    await sign_up(visitor, "ann@example.org")
    again = await subscriber(publisher, "ann@example.org")
    assert again is not None and again.status == Status.PENDING
    [confirmation] = await mail_to(publisher, "ann@example.org")
    assert (await confirm(visitor, link_in(confirmation, "/confirm/"))).status == 303
    back = await subscriber(publisher, "ann@example.org")
    assert back is not None and back.status == Status.ACTIVE
    async with publisher.engine.connect() as conn:
        assert await subscriber_store.suppression(conn, email_hash("ann@example.org")) is None


async def test_the_lost_link_form_answers_alike_and_mails_only_subscribers(
    site: tuple[Publisher, TestClient],
) -> None:
    publisher, client = site
    await add_subscriber(publisher.engine, "ann@example.org")
    visitor = Visitor(client)
    assert (await visitor.get("/preferences")).status == 200
    known = await visitor.post("/preferences", {"email": "ann@example.org"})
    unknown = await visitor.post("/preferences", {"email": "nobody@example.org"})
    assert (known.status, await known.read()) == (unknown.status, await unknown.read())
    [mail] = await mail_to(publisher, "ann@example.org")
    assert link_in(mail, "/preferences/")
    assert await mail_to(publisher, "nobody@example.org") == []


async def test_links_in_a_delivered_digest_work(site: tuple[Publisher, TestClient]) -> None:
    publisher, client = site
    await add_subscriber(publisher.engine, "ann@example.org")
    await publish_fresh(publisher)
    await publisher.delivery.send([Cadence.INSTANT])
    [digest] = [m for m in await mail_to(publisher, "ann@example.org") if "List-Unsubscribe" in m]

    header = str(digest["List-Unsubscribe"])
    https_url = header.split("<", 1)[1].split(">", 1)[0]
    assert urlsplit(https_url).scheme == "https" and "mailto:" in header
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    visitor = Visitor(client)
    preferences = await visitor.get(link_in(digest, "/preferences/"))
    assert preferences.status == 200 and "ann@example.org" in await preferences.text()
    view = await visitor.get(link_in(digest, "/digests/"))
    assert view.status == 200 and "Fresh" in await view.text()
    assert "ann@example.org" not in await view.text()
    one_click = await client.post(urlsplit(https_url).path, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status == 200
    left = await subscriber(publisher, "ann@example.org")
    assert left is not None and left.status == Status.UNSUBSCRIBED


async def test_the_lost_link_email_says_what_was_asked_for(site: tuple[Publisher, TestClient]) -> None:
    """Asking for one's preferences link is not asking to subscribe: the email must say which."""
    publisher, client = site
    await add_subscriber(publisher.engine, "ann@example.org")
    visitor = Visitor(client)
    await visitor.get("/preferences")
    await visitor.post("/preferences", {"email": "ann@example.org"})
    [mail] = await mail_to(publisher, "ann@example.org")
    parts = [mail.get_body((kind,)) for kind in ("plain", "html")]
    texts = [" ".join(part.get_content().split()) for part in parts if part is not None]
    assert len(texts) == 2
    for text in texts:
        assert "asked for a link to your preferences" in text
        assert "subscribe" not in text.replace("unsubscribe", "").replace("subscribed", "").lower()
    assert "preferences" in mail["Subject"].lower()
    await sign_up(visitor, "ann@example.org")  # the address is already subscribed
    mails = await mail_to(publisher, "ann@example.org")
    assert len(mails) == 2
    assert any("already" in m.get_body(("plain",)).get_content() for m in mails)  # type: ignore[union-attr]
