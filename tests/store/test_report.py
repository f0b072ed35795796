"""``publisher report`` and ``GET /api/digests``: a digest's messages by state and mailbox provider.

The digest is written into the ledger directly (one row per reader, in the state a
delivery run would have left it); the readers' bounces, complaints and unsubscribes
go through the subscriber service, as delivery and bounce reports record them.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert

from publisher import clock, metrics
from publisher.app import Publisher
from publisher.cli import main
from publisher.config import Settings, load_settings
from publisher.delivery import gate_store
from publisher.delivery.report import STATES, shown_reply
from publisher.store.schema import deliveries, digests
from subscribers import service
from tests.support.people import add_subscriber
from tests.support.sites import write_config
from tests.support.web_client import API_TOKEN, api_client, web_client

DIGEST = "daily-20261206T080000-abc123"
PROVIDERS = '[providers]\ncorp = ["corp.example"]\n'
USER_UNKNOWN = "550 5.1.1 <{}>: Recipient address rejected: User unknown"

# Each reader: their ledger row's state, the last reply, and what they did after it.
READERS = {
    "ann@gmail.com": ("sent", None, None),
    "bo@gmail.com": ("sent", None, "unsubscribed"),
    "cy@gmail.com": ("sent", None, "complaint"),
    "di@gmail.com": ("failed", USER_UNKNOWN.format("di@gmail.com"), "hard"),
    "ed@hotmail.co.uk": ("failed", "552 5.2.2 Mailbox full", None),
    "fay@outlook.com": ("deferred", "421 4.7.0 Try again later", None),
    "gus@yahoo.com": ("pending", None, None),
    "hal@corp.example": ("sent", None, None),
    "ivy@example.org": ("cancelled", "the reader left", None),
    "jo@example.org": ("failed", USER_UNKNOWN.format("jo@example.org"), "hard"),
    "kim@example.org": ("cancelled", "the reader left", "left before"),  # unsubscribed before the digest
}

EXPECTED_STATES = dict.fromkeys(STATES, 0) | {
    "planned": 11, "sent": 4, "failed": 3, "deferred": 1, "pending": 1, "cancelled": 2,
    "bounced_hard": 2, "bounced_soft": 1, "complained": 1, "unsubscribed": 1,
}
EXPECTED_PROVIDERS = {
    "google": {"planned": 4, "sent": 3, "failed": 1, "bounced_hard": 1, "complained": 1, "unsubscribed": 1},
    "other": {"planned": 3, "cancelled": 2, "failed": 1, "bounced_hard": 1},
    "microsoft": {"planned": 2, "failed": 1, "deferred": 1, "bounced_soft": 1},
    "corp": {"planned": 1, "sent": 1},
    "yahoo": {"planned": 1, "pending": 1},
}


async def plan_mixed_digest(publisher: Publisher) -> None:
    """:data:`READERS`' digest, planned an hour ago, and what they did since."""
    now = clock.now()
    planned = now - timedelta(hours=1)
    ids = {address: (await add_subscriber(publisher.engine, address)).id for address in READERS}
    await service.leave(publisher.engine, ids["kim@example.org"], now=planned - timedelta(hours=1))
    async with publisher.engine.begin() as conn:
        await conn.execute(insert(digests).values(id=DIGEST, cadence="daily", article_seqs="[]",
                                                  status="sending", created_at=planned))
        await conn.execute(insert(deliveries), [
            {"digest_id": DIGEST, "subscriber_id": ids[address], "state": state, "last_reply": reply,
             "attempts": 0 if state == "pending" else 1, "updated_at": planned}
            for address, (state, reply, _after) in READERS.items()
        ])
    for address, (_state, _reply, after) in READERS.items():
        if after == "unsubscribed":
            await service.leave(publisher.engine, ids[address], now=now)
        elif after in ("hard", "complaint"):
            await service.record_bounce(publisher.engine, email=address, subscriber_id=None, kind=after,
                                        now=now, soft_limit=3)


def full(counts: dict[str, int]) -> dict[str, int]:
    return dict.fromkeys(STATES, 0) | counts


async def test_the_report_counts_every_outcome_per_provider(make_settings: object) -> None:
    publisher = Publisher(make_settings(PROVIDERS))  # type: ignore[operator]
    await publisher.start()
    try:
        await plan_mixed_digest(publisher)
        report = await publisher.digest_report(DIGEST)
        assert await publisher.digest_report("daily-nope") is None
    finally:
        await publisher.close()
    assert report is not None
    assert report.states == EXPECTED_STATES
    assert report.providers == {name: full(counts) for name, counts in EXPECTED_PROVIDERS.items()}
    assert list(report.providers) == list(EXPECTED_PROVIDERS)  # most planned first, then by name
    assert report.replies[0] == ("550 5.1.1 <address>: Recipient address rejected: User unknown", 2)
    assert {reply for reply, _count in report.replies} == {
        "550 5.1.1 <address>: Recipient address rejected: User unknown", "552 5.2.2 Mailbox full",
        "421 4.7.0 Try again later",
    }


def test_shown_replies_hide_addresses_and_fit_one_line() -> None:
    assert shown_reply("550 <Ann.B+x@Mail.example.org>:\n  no such user") == "550 <address>: no such user"
    assert len(shown_reply("x" * 1000)) == 200


def cli(site_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(site_dir / "config.toml"), *args])


def test_publisher_report_in_text_json_and_csv(site_dir: Path) -> None:
    write_config(site_dir, PROVIDERS)
    settings = load_settings(site_dir / "config.toml", environ={})

    async def setup(settings: Settings) -> None:
        publisher = Publisher(settings)
        await publisher.start()
        try:
            await plan_mixed_digest(publisher)
        finally:
            await publisher.close()

    asyncio.run(setup(settings))

    as_json = cli(site_dir, "report", DIGEST, "--format", "json")
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.output)
    assert body["states"] == EXPECTED_STATES
    assert body["providers"] == {name: full(counts) for name, counts in EXPECTED_PROVIDERS.items()}
    assert body["id"] == DIGEST and body["status"] == "sending" and body["replies"][0]["count"] == 2

    as_csv = cli(site_dir, "report", DIGEST, "--format", "csv")
    assert as_csv.exit_code == 0, as_csv.output
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert list(rows[0]) == ["provider", *STATES]
    assert [row["provider"] for row in rows] == ["all", *EXPECTED_PROVIDERS]
    assert {state: int(rows[0][state]) for state in STATES} == EXPECTED_STATES
    assert int(rows[1]["complained"]) == 1 and int(rows[3]["bounced_soft"]) == 1

    text = cli(site_dir, "report", DIGEST)
    assert text.exit_code == 0, text.output
    assert f"digest {DIGEST}: daily, sending" in text.output
    assert ("11 message(s) planned: 4 sent, 1 still to send, 1 deferred (to be tried again), 3 failed, "
            "2 cancelled") in text.output
    assert ("since it was planned: 2 hard bounce(s) (address suppressed), 1 soft bounce(s), 1 complaint(s), "
            "1 unsubscribed") in text.output
    google = next(line.split() for line in text.output.splitlines() if line.strip().startswith("google"))
    assert google == ["google", "4", "0", "0", "3", "0", "1", "0", "1", "0", "1", "1"]
    assert "2 × 550 5.1.1 <address>: Recipient address rejected: User unknown" in text.output
    assert "@" not in text.output.split("commonest replies")[1]

    unknown = cli(site_dir, "report", "daily-nope")
    assert unknown.exit_code == 1
    assert "there is no digest 'daily-nope'" in unknown.output
    listed = cli(site_dir, "report")
    assert listed.exit_code == 0 and DIGEST in listed.output and "publisher report DIGEST" in listed.output


async def test_the_api_reports_digests_to_the_token_holder(
    make_settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBLISHER_API_TOKEN", API_TOKEN)
    publisher = Publisher(make_settings(PROVIDERS))  # type: ignore[operator]
    await publisher.start()
    try:
        await plan_mixed_digest(publisher)
        async with api_client(publisher, "wrong-token") as stranger:
            for path in ("/api/digests", f"/api/digests/{DIGEST}"):
                response = await stranger.get(path)
                assert response.status == 401, path
        async with api_client(publisher, API_TOKEN) as client:
            response = await client.get(f"/api/digests/{DIGEST}")
            assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
            body = await response.json()
            assert body["states"] == EXPECTED_STATES
            assert body["providers"]["google"] == full(EXPECTED_PROVIDERS["google"])
            assert set(body) == {"id", "cadence", "status", "pause_reason", "created_at", "finished_at",
                                 "states", "providers", "replies", "clicks"}
            missing = await client.get("/api/digests/daily-nope")
            assert missing.status == 404 and "daily-nope" in (await missing.json())["error"]
            listed = await client.get("/api/digests", params={"limit": "5"})
            assert listed.status == 200
            [digest] = (await listed.json())["digests"]
            assert digest["id"] == DIGEST and digest["messages"]["sent"] == 4
            bad = await client.get("/api/digests", params={"limit": "0", "status": "x"})
            assert bad.status == 422
            assert {p["field"] for p in (await bad.json())["problems"]} == {"limit", "status"}
    finally:
        await publisher.close()


async def test_metrics_count_the_open_digests_messages_per_provider(make_settings: object) -> None:
    publisher = Publisher(make_settings(PROVIDERS))  # type: ignore[operator]
    await publisher.start()
    try:
        await plan_mixed_digest(publisher)
        async with web_client(publisher) as client:
            response = await client.get("/metrics")
            assert response.status == 200
            text = await response.text()
    finally:
        await publisher.close()
    [family] = [f for f in text_string_to_metric_families(text) if f.name == "publisher_provider_messages"]
    by_provider = {(s.labels["provider"], s.labels["state"]): s.value for s in family.samples}
    assert by_provider[("google", "sent")] == 3 and by_provider[("google", "failed")] == 1
    assert by_provider[("corp", "sent")] == 1 and by_provider[("yahoo", "pending")] == 1
    assert by_provider[("microsoft", "deferred")] == 1 and by_provider[("other", "cancelled")] == 2
    assert {state for _provider, state in by_provider} == set(metrics.LEDGER_STATES)


async def test_metrics_show_which_providers_a_breaker_paused(make_settings: object) -> None:
    publisher = Publisher(make_settings(PROVIDERS))  # type: ignore[operator]
    await publisher.start()
    try:
        now = clock.now()
        await gate_store.pause(publisher.engine, "yahoo", "complaints 0.40% reached 0.30%", now)
        await gate_store.pause(publisher.engine, "google", "hard bounces 6% reached 5%", now)
        await gate_store.resume(publisher.engine, ["google"], now)
        async with web_client(publisher) as client:
            text = await (await client.get("/metrics")).text()
    finally:
        await publisher.close()
    [family] = [f for f in text_string_to_metric_families(text) if f.name == "publisher_provider_paused"]
    assert {s.labels["provider"]: s.value for s in family.samples} == {"yahoo": 1, "google": 0}
