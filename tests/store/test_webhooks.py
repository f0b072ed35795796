"""Outgoing webhooks against a local receiver that fails the first tries (issue 19).

Every event arrives, its signature verifies, ids are unique, each subscriber's events
arrive in order, and nothing is lost across a restart of the daemon; an endpoint that
never answers 2xx delays no other and shows in the status.  Time is moved by the test
(``publisher.clock``), so retries come without waiting.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from publisher import clock
from publisher.app import Publisher
from publisher.cli import main
from publisher.config import ConfigError, Settings, load_settings
from publisher.delivery import ledger
from publisher.store.schema import digests, webhook_deliveries, webhook_events
from publisher.webhooks.dispatch import SIGNATURE_HEADER
from subscribers import service
from subscribers.importer import parse_csv
from subscribers.model import Preferences, Source, Status
from tests.support.people import add_subscriber
from tests.support.sites import write_config

SECRET_ENV = "PUBLISHER_TEST_WEBHOOK_SECRET"
SECRET = "whsec-test-only"


class Receiver:
    """An endpoint that answers 503 to the first ``fail_first`` tries of every event, then 204."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.tries: Counter[str] = Counter()
        self.acknowledged: list[dict[str, object]] = []  # in the order they were acknowledged
        self.bad_signatures = 0
        self.app = web.Application()
        self.app.router.add_post("/hook", self.hook)

    async def hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        fields = dict(part.split("=", 1) for part in request.headers[SIGNATURE_HEADER].split(","))
        expected = hmac.new(SECRET.encode(), f"{fields['t']}.".encode() + raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, fields["v1"]):
            self.bad_signatures += 1
            return web.Response(status=400)
        event = json.loads(raw)
        self.tries[event["id"]] += 1
        if self.tries[event["id"]] <= self.fail_first:
            return web.Response(status=503)
        self.acknowledged.append(event)
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    found = Receiver(fail_first=2)
    server = TestServer(found.app, host="127.0.0.1")
    await server.start_server()
    yield found, str(server.make_url("/hook"))
    await server.close()


@pytest.fixture
def moved_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[timedelta], None]:
    """Freeze the program's clock; the returned function moves it on."""
    moment = [datetime.now(UTC)]  # add_subscriber stamps the real time
    monkeypatch.setattr(clock, "now", lambda: moment[0])

    def advance(by: timedelta) -> None:
        moment[0] += by

    return advance


def hooks_settings(site_dir: Path, url: str, extra: str = "") -> Settings:
    config = write_config(site_dir, f"""
[[webhooks]]
url = "{url}"
secret_env = "{SECRET_ENV}"
retry_base = 60
retry_cap = 600
{extra}""")
    return load_settings(config, environ={SECRET_ENV: SECRET})


@pytest.fixture
async def hooked(
    site_dir: Path, receiver: tuple[Receiver, str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Publisher, Receiver, str]]:
    """A started publisher with one endpoint, the receiver (failing each event's first tries), and its URL."""
    found, url = receiver
    monkeypatch.setenv(SECRET_ENV, SECRET)
    publisher = Publisher(hooks_settings(site_dir, url))
    await publisher.start()
    try:
        yield publisher, found, url
    finally:
        await publisher.close()


async def drain(publisher: Publisher, advance: Callable[[timedelta], None], passes: int, until: str = "") -> None:
    """Dispatch passes, the clock moved past every backoff between them: ``passes`` of them,
    or (``until``) up to ``passes`` until that endpoint is owed nothing."""
    for _ in range(passes):
        await publisher.webhooks.send_due()
        advance(timedelta(minutes=11))
        if until and not any(s.pending for s in await publisher.webhooks.status() if s.url == until):
            return


async def test_every_event_arrives_signed_once_in_order_across_a_restart(
    site_dir: Path, receiver: tuple[Receiver, str], moved_clock: Callable[[timedelta], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found, url = receiver
    monkeypatch.setenv(SECRET_ENV, SECRET)
    dead = "http://127.0.0.1:9/never"  # nothing listens on the discard port: refused
    settings = hooks_settings(site_dir, url, f"""
[[webhooks]]
url = "{dead}"
secret_env = "{SECRET_ENV}"
events = ["subscriber.created"]
""")
    daemon = Publisher(settings)
    await daemon.start()
    await daemon.webhooks.send_due()  # the daemon's first pass registers the endpoints
    now = clock.now()
    ada = await add_subscriber(daemon.engine, "ada@example.org")  # created, confirmed
    bob, _ = await service.sign_up(daemon.engine, "bob@example.org", name="", prefs=Preferences(),
                                   source=Source.WEB, now=now)
    await service.confirm(daemon.engine, bob.id, now=now)
    await service.leave(daemon.engine, ada.id, now=now)
    await daemon.intake.scan()  # the sample articles: article.published each
    await drain(daemon, moved_clock, 2)  # every event tried twice, refused twice
    assert found.acknowledged == []
    await daemon.close()  # the daemon stops with everything still owed

    # While it is down, more happens (the CLI, the API on another node).
    cli = Publisher(settings)
    await cli.start()
    await service.record_bounce(cli.engine, email="bob@example.org", subscriber_id=None, kind="complaint",
                                now=now, soft_limit=3)
    await service.record_bounce(cli.engine, email="ada@example.org", subscriber_id=None, kind="hard",
                                now=now, soft_limit=3)  # ada already left: no event
    carol = await add_subscriber(cli.engine, "carol@example.org")
    await service.leave(cli.engine, carol.id, now=now, status=Status.BOUNCED)
    async with cli.engine.begin() as conn:
        await conn.execute(digests.insert().values(id="d1", cadence="instant", article_seqs="[]", status="sending",
                                                   created_at=now))
    await ledger.pause(cli.engine, "d1", "too many errors")
    await ledger.resume(cli.engine, "d1")
    await ledger.finish_if_done(cli.engine, "d1", now)
    await cli.close()

    daemon = Publisher(settings)  # the restart
    await daemon.start()
    try:
        await drain(daemon, moved_clock, 20, until=url)
        endpoints = {status.url: status for status in await daemon.webhooks.status()}
        async with daemon.engine.connect() as conn:
            owed = await conn.scalar(select(func.count()).select_from(webhook_deliveries))
            events_left = await conn.scalar(select(func.count()).select_from(webhook_events))
    finally:
        await daemon.close()

    assert found.bad_signatures == 0
    ids = [event["id"] for event in found.acknowledged]
    assert len(ids) == len(set(ids)), "an acknowledged event was acknowledged again"
    assert all(found.tries[i] == 3 for i in ids), "every event was tried until acknowledged, and no more"
    by_key: dict[str, list[object]] = {}
    for event in found.acknowledged:
        assert set(event) == {"id", "type", "created_at", "data"}
        data = event["data"]
        assert isinstance(data, dict)
        kind = str(event["type"]).partition(".")[0]
        by_key.setdefault(f"{kind}:{data['id']}", []).append(event["type"])
    assert by_key[f"subscriber:{ada.id}"] == ["subscriber.created", "subscriber.confirmed", "subscriber.unsubscribed"]
    assert by_key[f"subscriber:{bob.id}"] == ["subscriber.created", "subscriber.confirmed", "subscriber.complained"]
    assert by_key[f"subscriber:{carol.id}"] == ["subscriber.created", "subscriber.confirmed", "subscriber.bounced"]
    assert by_key["digest:d1"] == ["digest.paused", "digest.finished"]
    published = [key for key, types in by_key.items() if types == ["article.published"]]
    assert len(published) == 3  # the sample content's articles
    assert len(ids) == 9 + 2 + 3

    # The dead endpoint wanted subscriber.created only: still owed (3), shown failing; the live one owes nothing.
    assert owed == 3 and events_left == 3
    assert (endpoints[url].pending, endpoints[url].failing) == (0, 0)
    assert (endpoints[dead].pending, endpoints[dead].failing) == (3, 3)
    assert endpoints[dead].last_error and "Connect" in endpoints[dead].last_error


async def test_a_rolled_back_change_records_no_event(
    hooked: tuple[Publisher, Receiver, str], moved_clock: Callable[[timedelta], None]
) -> None:
    publisher, found, url = hooked
    await service.record_bounce(publisher.engine, email="nobody@example.org", subscriber_id=None, kind="hard",
                                now=clock.now(), soft_limit=3)  # nobody's: no subscriber event
    ada = await add_subscriber(publisher.engine, "ada@example.org")
    await service.record_bounce(publisher.engine, email=ada.email, subscriber_id=None, kind="hard",
                                now=clock.now(), soft_limit=3, dry_run=True)
    await drain(publisher, moved_clock, 10, until=url)
    assert [event["type"] for event in found.acknowledged] == ["subscriber.created", "subscriber.confirmed"]


async def test_an_erased_or_purged_subscriber_leaves_events_without_their_address(
    hooked: tuple[Publisher, Receiver, str], moved_clock: Callable[[timedelta], None]
) -> None:
    publisher, found, url = hooked
    ada = await add_subscriber(publisher.engine, "ada@example.org")
    bo = await service.create(publisher.engine, "bo@example.org", prefs=Preferences(), source=Source.API,
                              confirmed=False, now=clock.now())  # never confirms
    await publisher.webhooks.send_due()  # tried once, failed: all still owed
    assert await service.erase(publisher.engine, ada.id, now=clock.now())
    assert await service.purge_pending(publisher.engine, older_than=clock.now() + timedelta(days=1)) == 1
    async with publisher.engine.connect() as conn:
        stored = [json.loads(data) for data in (await conn.execute(select(webhook_events.c.data))).scalars()]
    await drain(publisher, moved_clock, 10, until=url)
    assert stored and all(data["email"] is None for data in stored)
    # Still owed, still sent: the endpoint learns what became of subscribers ada and bo, not who they were.
    assert {(event["type"], event["data"]["id"]) for event in found.acknowledged} == {  # type: ignore[index]
        ("subscriber.created", ada.id), ("subscriber.confirmed", ada.id), ("subscriber.created", bo.id)}
    assert not any("@" in json.dumps(event) for event in found.acknowledged)


def test_config_names_the_webhook_and_field_and_never_the_secret(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"""
[[webhooks]]
url = "https://hooks.example.org/in"
secret_env = "{SECRET_ENV}"

[[webhooks]]
url = "http://hooks.example.org/in"
secret_env = "{SECRET_ENV}"
events = ["subscriber.created"]

[[webhooks]]
url = "http://127.0.0.1:8000/in"
secret_env = "{SECRET_ENV}"
events = ["subscriber.renamed"]
""", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(config, environ={SECRET_ENV: SECRET})
    problems = "\n".join(raised.value.problems)
    assert "webhooks.1.url" in problems and "https" in problems
    assert "webhooks.2.events.0" in problems
    assert "webhooks.0" not in problems

    config.write_text(config.read_text().split("[[webhooks]]\nurl = \"http://hooks")[0], encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(config, environ={})
    assert raised.value.problems == [
        f"{config}: webhooks.0.secret_env: the environment variable {SECRET_ENV} is not set "
        "(it holds this endpoint's signing secret)"
    ]
    settings = load_settings(config, environ={SECRET_ENV: SECRET})
    assert SECRET not in settings.model_dump_json()
    assert str(settings.webhooks[0].url) == "https://hooks.example.org/in"


async def test_the_cli_sends_once_and_status_shows_each_endpoint(
    hooked: tuple[Publisher, Receiver, str], site_dir: Path
) -> None:
    publisher, found, url = hooked
    await add_subscriber(publisher.engine, "ada@example.org")
    config = str(site_dir / "config.toml")

    def cli(*args: str) -> Result:
        return CliRunner().invoke(main, ["--config", config, *args])

    # In a thread: the CLI runs its own event loop, and the receiver answers on this one.
    sent = await asyncio.to_thread(cli, "webhooks", "send")
    assert sent.exit_code == 4, sent.output  # the receiver refuses the first tries: still owed
    assert "0 events acknowledged, 1 attempts failed" in sent.output
    shown = await asyncio.to_thread(cli, "status")
    assert f"webhook {url}: 2 pending, 1 failing" in shown.output
    assert "last error" in shown.output and "HTTP 503" in shown.output
    assert SECRET not in sent.output + shown.output
    assert found.tries and not found.acknowledged


async def test_subscribers_added_by_an_import_are_announced_like_any_other(
    hooked: tuple[Publisher, Receiver, str], moved_clock: Callable[[timedelta], None]
) -> None:
    publisher, found, url = hooked
    await add_subscriber(publisher.engine, "bo@example.org")  # already there: an import leaves them be
    parsed = parse_csv("email,name\nbo@example.org,Bo\ncy@example.org,Cy\ndi@example.org,Di\n",
                       known_topics=[], default_timezone="UTC", default_cadence="daily")
    report = await publisher.subscribers.import_rows(parsed)
    assert report.created == 2
    ids = {email: found_one.id for email in ("cy@example.org", "di@example.org")
           if (found_one := await publisher.subscribers.find(email)) is not None}
    await drain(publisher, moved_clock, 10, until=url)
    imported = [(e["type"], e["data"]) for e in found.acknowledged if e["data"]["email"] != "bo@example.org"]
    assert sorted(imported, key=lambda event: (event[1]["email"], event[0])) == [
        (kind, {"id": ids[email], "email": email, "status": "active"})
        for email in ("cy@example.org", "di@example.org") for kind in ("subscriber.confirmed", "subscriber.created")
    ]
