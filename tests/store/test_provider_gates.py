"""Warm-up and circuit breakers per mailbox provider (publisher.delivery.gates), against a recording SMTP server.

Warm-up: over a frozen clock across days, each provider gets exactly the day's allowance,
in subscriber order, nothing lost and nothing twice.  Breakers: complaints imported with
``publisher bounces import`` pause that provider's deliveries with the reason, the others
go on, and ``publisher resume --provider`` lifts it.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from publisher import clock
from publisher.app import Publisher
from publisher.cli import main
from publisher.cli.context import ExitCode
from publisher.config import load_settings
from publisher.delivery.providers import provider_of
from publisher.store.schema import deliveries, provider_pauses, subscribers, webhook_events
from subscribers.model import Cadence
from tests.support.delivery_sites import insert_subscribers, write_site
from tests.support.running import with_publisher as run_with_publisher
from tests.support.smtp_faults import FaultServer, digest_recipient

FIXTURES = Path(__file__).parents[1] / "fixtures" / "bounces"
T = TypeVar("T")


async def ledger(publisher: Publisher) -> dict[str, tuple[str, str | None]]:
    """Every row of the ledger: address → (state, last reply)."""
    async with publisher.engine.connect() as conn:
        rows = await conn.execute(
            select(subscribers.c.email, deliveries.c.digest_id, deliveries.c.state, deliveries.c.last_reply)
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
        )
        return {f"{r.digest_id} {r.email}": (r.state, r.last_reply) for r in rows}


# --- warm-up ------------------------------------------------------------------------------

FIRST_DAY = 10  # the allowance per provider on day 1, doubling: 10, 20, 40, then the last 10
PER_PROVIDER = 80


@pytest.mark.usefixtures("database")
async def test_warm_up_sends_each_day_the_allowance_per_provider_in_subscriber_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moment = [datetime(2026, 12, 1, 9, 30, tzinfo=UTC)]
    monkeypatch.setattr(clock, "now", lambda: moment[0])
    # Interleaved by provider, so each claimed batch (of 16) holds several.
    addresses = [f"r{i:03d}@{domain}" for i in range(PER_PROVIDER) for domain in ("gmail.com", "yahoo.com")]
    addresses += [f"o{i}@example.org" for i in range(5)]  # "other": fewer than a day's allowance
    with FaultServer() as server:
        config = write_site(tmp_path, smtp_port=server.port, batch_size=16,
                            extra='[warmup]\nstart = "2026-12-01"\nfirst_day = 10\ngrowth = 2.0\nmax = 1000\n')
        publisher = Publisher(load_settings(config, environ={}))
        await publisher.start()
        try:
            ids = await insert_subscribers(publisher.engine, addresses)
            await publisher.intake.scan()
            await publisher.delivery.send([Cadence.INSTANT])
            received_by_day = []
            arrived_by_day: list[list[int]] = []  # subscriber ids
            for day in range(4):
                if day:
                    moment[0] += timedelta(days=1)
                    await publisher.delivery.deliver()
                await publisher.delivery.deliver()  # a second run the same day sends nothing more
                received_by_day.append(Counter(provider_of(a) for a in server.per_recipient().elements()))
                seen = [found[1] for m in server.snapshot() if (found := digest_recipient(m.message_id))]
                arrived_by_day.append(seen[sum(map(len, arrived_by_day)):])
            rows = await ledger(publisher)
            status = await asyncio.to_thread(invoke, config, "status")
        finally:
            await publisher.close()

    per_day = [received_by_day[0]] + [received_by_day[d] - received_by_day[d - 1] for d in range(1, 4)]
    assert [day["google"] for day in per_day] == [10, 20, 40, 10]
    assert [day["yahoo"] for day in per_day] == [10, 20, 40, 10]
    assert [day["other"] for day in per_day] == [5, 0, 0, 0]
    # Nothing lost, nothing twice, in the subscribers' order (their ids).
    assert server.per_recipient() == Counter(addresses)
    assert all(state == "sent" for state, _ in rows.values()), Counter(s for s, _ in rows.values())
    # Each day takes the next readers of each provider (any order within a day: several connections).
    for domain in ("gmail.com", "yahoo.com"):
        theirs = {ids[a] for a in addresses if a.endswith(domain)}
        days = [sorted(sid for sid in day if sid in theirs) for day in arrived_by_day]
        assert [sid for day in days for sid in day] == sorted(theirs)
    assert status.exit_code == 0, status.output
    # Day 4: 10 × 2³ = 80 is under max; nothing is left waiting.
    assert "warm-up day 4: 80 messages per provider today" in status.stdout
    assert "google: sent today 10 of 80, waiting 0" in status.stdout


# --- circuit breakers ----------------------------------------------------------------------


HOOK_SECRET = {"HOOK_SECRET": "s3cret"}
# An endpoint that wants the pause events: they are recorded in the outbox (nothing here sends them).
PAUSE_HOOK = '[[webhooks]]\nurl = "https://hooks.example/publisher"\nsecret_env = "HOOK_SECRET"\nevents = ["digest.paused"]\n'


def invoke(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(config), *args], env={"COLUMNS": "200"} | HOOK_SECRET)


def with_publisher(config: Path, work: Callable[[Publisher], Awaitable[T]]) -> T:
    return run_with_publisher(config, work, HOOK_SECRET)


def complaint_about(address: str) -> bytes:
    """Yahoo's ARF report (tests/fixtures/bounces) about ``address``."""
    return (FIXTURES / "yahoo_arf_complaint.eml").read_bytes().replace(b"complainer.jane@yahoo.com",
                                                                       address.encode())


YAHOO = [f"reader{i:03d}@yahoo.com" for i in range(250)]
OTHERS = [f"reader{i:03d}@example.org" for i in range(50)]


@pytest.mark.usefixtures("database")
def test_complaints_pause_one_provider_until_resumed(tmp_path: Path) -> None:
    with FaultServer() as server:
        config = write_site(tmp_path, smtp_port=server.port, extra="[breakers]\nmin_messages = 100\n" + PAUSE_HOOK)

        async def first_digest(publisher: Publisher) -> None:
            await insert_subscribers(publisher.engine, YAHOO + OTHERS)
            await publisher.intake.scan()
            await publisher.delivery.send([Cadence.INSTANT])

        with_publisher(config, first_digest)
        assert server.per_recipient() == Counter(YAHOO + OTHERS)

        # One complaint of 250 messages to Yahoo: 0.4%, past the 0.3% pause.
        report = tmp_path / "complaint.eml"
        report.write_bytes(complaint_about(YAHOO[7]))
        imported = invoke(config, "bounces", "import", str(report))
        assert imported.exit_code == 0, imported.output

        resent = invoke(config, "resend", "city-heat-plan")
        assert resent.exit_code == ExitCode.REMAINING, resent.output  # Yahoo's readers wait
        # The others got the second digest; Yahoo's readers did not, and their rows wait.
        assert server.per_recipient() == Counter(YAHOO + OTHERS * 2)
        rows = with_publisher(config, ledger)
        held = {key: reply for key, (state, reply) in rows.items() if state == "deferred"}
        assert len(held) == 249 and all(key.endswith("@yahoo.com") for key in held)
        assert all(reply and reply.startswith("held: provider yahoo is paused: complaints 0.40% (1 of 250")
                   for reply in held.values()), next(iter(held.values()))

        async def pauses(publisher: Publisher) -> list[tuple[str, str | None]]:
            async with publisher.engine.connect() as conn:
                found = await conn.execute(select(provider_pauses.c.provider, provider_pauses.c.reason))
                return [tuple(row) for row in found]  # type: ignore[misc]

        [(provider, reason)] = with_publisher(config, pauses)
        assert provider == "yahoo" and reason and reason.startswith("complaints 0.40%")
        status = invoke(config, "status")
        assert "provider yahoo paused since" in status.stdout
        digest_id = resent.stdout.split(" as ", 1)[1].split()[0]
        assert "249 × held: provider yahoo is paused: complaints 0.40%" in invoke(config, "report", digest_id).stdout
        assert "publisher resume --provider yahoo" in status.stdout

        async def pause_events(publisher: Publisher) -> list[tuple[str, dict[str, str]]]:
            async with publisher.engine.connect() as conn:
                found = await conn.execute(select(webhook_events.c.type, webhook_events.c.data))
                return [(kind, json.loads(data)) for kind, data in found]

        # The digest being sent is announced paused, once, naming the provider and why.
        [(kind, data)] = with_publisher(config, pause_events)
        assert kind == "digest.paused" and data["id"] == digest_id and data["provider"] == "yahoo"
        assert data["reason"] == reason

        resumed = invoke(config, "resume", "--provider", "yahoo")
        assert resumed.exit_code == 0, resumed.output
        # Sent now, once each; the old complaint does not pause Yahoo again.
        expected = Counter(YAHOO * 2 + OTHERS * 2)
        expected[YAHOO[7]] -= 1  # complained: not sent the second digest
        assert server.per_recipient() == expected
        assert with_publisher(config, pauses) == [("yahoo", None)]
        assert "paused" not in invoke(config, "status").stdout
        assert invoke(config, "resume", "--provider", "yahoo").exit_code == 1  # nothing paused now
