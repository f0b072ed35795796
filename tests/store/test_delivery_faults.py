"""The delivery engine against an SMTP server that misbehaves (tests/smtp_faults.py).

Whatever the server does, once ``deliver(wait=True)`` returns every subscriber is either
``sent`` and was received exactly once, or ``failed`` with the server's reply in
``last_reply`` and was not received: none lost, none twice. Throttling (421 and friends,
a connection limit) slows a digest down but never fails a message.

Each received message is matched to its ledger row by its deterministic Message-ID,
``<digest-id.subscriber-id@sending-domain>``, and to its subscriber by the envelope.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections import Counter
from datetime import timedelta
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiosmtplib
import pytest
from sqlalchemy import select

from publisher import clock
from publisher.app import Publisher
from publisher.config import load_settings
from publisher.delivery import ledger
from publisher.delivery.ledger import Claimant
from publisher.delivery.model import DeliveryReport
from publisher.delivery.service import JOURNAL_DIR
from publisher.store.schema import deliveries, digests, subscribers
from subscribers.model import Cadence
from tests.support.delivery_sites import insert_subscribers, write_site
from tests.support.journals import killed_with_journal
from tests.support.sites import write_config
from tests.support.people import add_subscriber
from tests.support.smtp_faults import FaultServer, Stage, digest_recipient
from tests.support.smtp_server import HOST, SmtpServer
from tests.system.test_cli import run

DOMAIN = "news.example.org"  # the sending domain: write_config's from_address is brief@news.example.org
DEADLINE = 60.0  # seconds deliver(wait=True) may take before the test calls it stuck


def reader(i: int) -> str:
    return f"reader{i:03d}@example.org"


@dataclass
class Row:
    subscriber_id: int
    state: str
    attempts: int
    last_reply: str | None
    status: str  # the subscriber's


@dataclass
class Outcome:
    """What the store says after the engine is done, and how the engine got there."""

    rows: dict[str, Row]  # by address; every planned recipient of the (single) digest
    digests: dict[str, str]  # id -> status
    reports: list[DeliveryReport] = field(default_factory=list)
    seconds: float = 0.0  # from send() to deliver(wait=True) returning
    started: float = 0.0  # time.monotonic() at send(), to compare with the server's arrival times

    @property
    def digest_id(self) -> str:
        assert len(self.digests) == 1, self.digests
        return next(iter(self.digests))


async def send_digest(
    config: Path, addresses: list[str], before_send: Callable[[], None] | None = None
) -> Outcome:
    """Plan one instant digest for ``addresses`` and deliver it until it is finished or
    paused (``deliver(wait=True)``); returns the ledger as it then is."""
    publisher = Publisher(load_settings(config, environ={}))
    await publisher.start()
    try:
        await insert_subscribers(publisher.engine, addresses)
        await publisher.intake.scan()
        if before_send is not None:
            before_send()
        started = time.monotonic()
        first = await asyncio.wait_for(publisher.delivery.send([Cadence.INSTANT]), DEADLINE)
        last = await asyncio.wait_for(publisher.delivery.deliver(wait=True), DEADLINE)
        seconds = time.monotonic() - started
        async with publisher.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        subscribers.c.email, subscribers.c.status, deliveries.c.subscriber_id,
                        deliveries.c.state, deliveries.c.attempts, deliveries.c.last_reply,
                    ).join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                )
            ).all()
            digest_rows = (await conn.execute(select(digests.c.id, digests.c.status))).all()
    finally:
        await publisher.close()
    assert first.report is not None
    return Outcome(
        rows={r.email: Row(r.subscriber_id, r.state, r.attempts, r.last_reply, r.status) for r in rows},
        digests={d.id: d.status for d in digest_rows},
        reports=[first.report, last],
        seconds=seconds,
        started=started,
    )


def assert_exchange(server: FaultServer) -> None:
    """The client pipelined its commands exactly when the server offered PIPELINING."""
    assert (server.counters.pipelined > 0) == server.pipelining, server.counters


def assert_none_lost_none_twice(outcome: Outcome, server: FaultServer, addresses: list[str]) -> None:
    """Every recipient is ``sent`` and was received exactly once, or ``failed`` and was not
    received at all; every received message belongs to a ``sent`` row; and the exchange
    was the one the server offered."""
    assert_exchange(server)
    digest_id = outcome.digest_id
    states = Counter(r.state for r in outcome.rows.values())
    assert outcome.digests[digest_id] == "finished", f"digest {outcome.digests[digest_id]}, rows {dict(states)}"
    assert sorted(outcome.rows) == sorted(addresses), "every subscriber has one ledger row"
    open_rows = {a: r.state for a, r in outcome.rows.items() if r.state not in ("sent", "failed")}
    assert not open_rows, f"rows neither sent nor failed: {open_rows}"

    by_id = {row.subscriber_id: address for address, row in outcome.rows.items()}
    received: dict[str, int] = dict.fromkeys(addresses, 0)
    for message in server.accepted:
        parsed = digest_recipient(message.message_id)
        assert parsed is not None and message.message_id is not None, f"not a digest: {message}"
        assert message.message_id.endswith(f"@{DOMAIN}"), message.message_id
        got_digest, subscriber_id = parsed
        assert got_digest == digest_id, message
        assert message.rcpt_tos == (by_id[subscriber_id],), f"{message.message_id} went to {message.rcpt_tos}"
        received[by_id[subscriber_id]] += 1

    twice = {a: n for a, n in received.items() if n > 1}
    assert not twice, f"received more than once: {twice}"
    lost = [a for a, r in outcome.rows.items() if r.state == "sent" and received[a] == 0]
    assert not lost, f"marked sent but never received: {lost}"
    failed_yet_received = [a for a, r in outcome.rows.items() if r.state == "failed" and received[a]]
    assert not failed_yet_received, f"marked failed but received: {failed_yet_received}"

    sent = sum(1 for r in outcome.rows.values() if r.state == "sent")
    failed = sum(1 for r in outcome.rows.values() if r.state == "failed")
    assert sum(r.sent for r in outcome.reports) == sent
    assert sum(r.failed for r in outcome.reports) == failed
    assert digest_id in [d for r in outcome.reports for d in r.finished]


@pytest.fixture(params=[False, True], ids=["classic", "pipelined"])
def pipelining(request: pytest.FixtureRequest) -> bool:
    """Whether the relay offers PIPELINING: every fault, with the classic exchange and the pipelined one."""
    return bool(request.param)


# --- one digest through every kind of fault --------------------------------------------

N = 300

# Permanent refusals: the row fails with this reply; "no such user" also bounces the subscriber.
PERMANENT: dict[int, tuple[Stage, str, bool]] = {
    11: ("rcpt", "550 5.1.1 <reader011@example.org>: Recipient address rejected: User unknown", True),
    57: ("rcpt", "550 5.1.1 No such user here", True),
    102: ("rcpt", "551 5.1.6 User not local; please try <reader102@example.net>", True),
    148: ("rcpt", "553 5.1.3 The recipient address is not a valid RFC 5321 address", True),
    190: ("data", "552 5.2.2 Mailbox full, quota exceeded", False),
    233: ("data", "552 5.3.4 Message size exceeds fixed limit", False),
    261: ("data", "554 5.7.1 Message rejected as spam by content filter", False),
    279: ("data", "550 5.7.1 Message content refused by local policy", False),  # 550, but not about the address
}
# Temporary refusals that stop: the first `times` attempts get the reply, then the server accepts.
TEMPORARY: dict[int, tuple[Stage, str, int]] = {
    3: ("rcpt", "421 4.7.0 Too many connections, closing transmission channel", 1),
    29: ("rcpt", "450 4.2.1 Mailbox busy, try again later", 2),
    44: ("rcpt", "451 4.3.0 Temporary lookup failure", 3),
    68: ("rcpt", "452 4.2.2 Insufficient system storage", 1),
    91: ("rcpt", "454 4.7.1 Relay access temporarily unavailable", 2),
    120: ("data", "451 4.3.0 Error: queue file write error", 2),
    133: ("data", "452 4.3.1 Insufficient system storage", 1),
    177: ("data", "421 4.4.2 Timeout exceeded, closing connection", 1),
    205: ("rcpt", "451 4.7.1 Greylisted, please try again later", 1),
    244: ("data", "454 4.7.0 Temporary authentication failure", 1),
}
DROPPED = (16, 81, 214)  # connection cut in the middle of DATA, the first time
STALLED = (35, 166)  # end of DATA never answered, the first time
# A temporary reply that never stops and isn't throttling: failed after max_attempts.
NEVER = {255: "455 4.5.0 Server unable to accommodate parameters"}
MAX_ATTEMPTS = 4


def script_faults(server: FaultServer) -> None:
    for i, (stage, reply, _) in PERMANENT.items():
        server.fail(reader(i), reply, at=stage)
    for i, (stage, reply, times) in TEMPORARY.items():
        server.fail(reader(i), reply, at=stage, times=times)
    for i in DROPPED:
        server.drop(reader(i))
    for i in STALLED:
        server.stall(reader(i))
    for i, reply in NEVER.items():
        server.fail(reader(i), reply)


@pytest.mark.usefixtures("database")
async def test_every_subscriber_is_sent_once_or_failed_with_the_reply(tmp_path: Path, pipelining: bool) -> None:
    addresses = [reader(i) for i in range(1, N + 1)]
    with FaultServer(pipelining=pipelining) as server:
        script_faults(server)
        config = write_site(
            tmp_path, smtp_port=server.port, smtp="timeout = 2",
            retry_base=0.05, max_attempts=MAX_ATTEMPTS,
            # This test is about each message's outcome. Its retry passes hold only faulty
            # rows, so a digest-wide error ratio could pause it; pausing is not under test.
            max_error_ratio=1.0,
        )
        outcome = await send_digest(config, addresses)

    assert_none_lost_none_twice(outcome, server, addresses)
    rows = outcome.rows

    expected_failures = {reader(i): reply for i, (_, reply, _) in PERMANENT.items()} | {
        reader(i): reply for i, reply in NEVER.items()
    }
    failed = {a: r.last_reply for a, r in rows.items() if r.state == "failed"}
    assert sorted(failed) == sorted(expected_failures), "exactly the permanent refusals fail"
    for address, reply in expected_failures.items():
        code, _, text = reply.partition(" ")
        last = failed[address] or ""
        assert code in last and text in last, f"{address}: last_reply {last!r} lacks the server's {reply!r}"

    for i, (_, reply, bounces) in PERMANENT.items():
        assert rows[reader(i)].status == ("bounced" if bounces else "active"), (reply, rows[reader(i)])
    for i in NEVER:
        assert rows[reader(i)].status == "active"  # a temporary failure says nothing against the address
        assert 2 <= server.fired(reader(i)) <= MAX_ATTEMPTS, "retried, but no more than max_attempts"

    # The faults happened as scripted, and each temporary one was got over.
    for i, (_, _, times) in TEMPORARY.items():
        assert server.fired(reader(i)) == times and rows[reader(i)].state == "sent"
    for i in (*DROPPED, *STALLED):
        assert server.fired(reader(i)) == 1 and rows[reader(i)].state == "sent"
    assert server.counters.dropped == len(DROPPED)
    assert [s.client_hung_up for s in server.stalls] == [True] * len(STALLED), server.stalls
    assert sum(1 for r in rows.values() if r.state == "sent") == N - len(expected_failures)


@pytest.mark.usefixtures("database")
async def test_connections_reset_at_first_then_everything_goes(tmp_path: Path, pipelining: bool) -> None:
    addresses = [reader(i) for i in range(1, 101)]
    with FaultServer(pipelining=pipelining) as server:
        server.refuse_connections(5)  # reset before the greeting, as a relay restarting does
        config = write_site(tmp_path, smtp_port=server.port, smtp="timeout = 2", retry_base=0.05, max_attempts=10)
        outcome = await send_digest(config, addresses)

    assert_none_lost_none_twice(outcome, server, addresses)
    assert all(r.state == "sent" for r in outcome.rows.values())
    assert server.counters.sessions_refused == 5


@pytest.mark.usefixtures("database")
async def test_a_relay_not_accepting_mail_for_a_second(tmp_path: Path, pipelining: bool) -> None:
    addresses = [reader(i) for i in range(1, 101)]
    with FaultServer(pipelining=pipelining) as server:
        config = write_site(tmp_path, smtp_port=server.port, smtp="timeout = 2", retry_base=0.05, max_attempts=10)
        outcome = await send_digest(config, addresses, before_send=lambda: server.refuse_for(1.0))

    assert_none_lost_none_twice(outcome, server, addresses)
    assert all(r.state == "sent" for r in outcome.rows.values())
    assert server.counters.sessions_refused >= 1


# --- a relay refusing every message ---------------------------------------------------

SES_UNVERIFIED = (
    "554 Message rejected: Email address is not verified. The following identities failed "
    "the check in region US-EAST-1: brief@news.example.org"
)


@pytest.mark.slow  # runs the publisher in a subprocess
@pytest.mark.usefixtures("database")
async def test_a_relay_refusing_the_sender_pauses_the_digest_and_bounces_nobody(tmp_path: Path, pipelining: bool) -> None:
    """Amazon SES with an unverified sender answers 554 at the end of DATA to every message:
    the relay is broken, not the readers. Nobody is bounced, the digest pauses after a few
    identical replies with the reply as its reason, and once the relay is fixed
    ``publisher resume`` sends to everyone, once."""
    addresses = [reader(i) for i in range(1, 401)]
    with FaultServer(pipelining=pipelining) as server:
        server.fail_all(SES_UNVERIFIED, at="data")
        config = write_site(tmp_path, smtp_port=server.port, smtp="timeout = 2", retry_base=0.05)
        outcome = await send_digest(config, addresses)

        digest_id = outcome.digest_id
        assert outcome.digests[digest_id] == "paused"
        assert all(r.status == "active" for r in outcome.rows.values()), "nobody bounced or suppressed"
        assert not server.accepted
        assert server.counters.data_ends <= 5 + 8, "paused after a few identical replies (8 connections)"
        assert_exchange(server)
        status = run(config, "status")
        assert f"{digest_id} paused:" in status.stdout and SES_UNVERIFIED[4:] in status.stdout, status.stdout

        server.repair()
        resumed = run(config, "resume", digest_id, "--wait")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert f"resumed {digest_id}: sent 400," in resumed.stdout, resumed.stdout
    assert sorted(server.per_recipient().items()) == [(a, 1) for a in addresses], "everyone, once"


# --- the database locked in the middle of a send ---------------------------------------

LOCK_SECONDS = 8.0  # longer than a 0.2 s busy timeout and every pause between tries


def with_busy_timeout(config: Path, seconds: float) -> Path:
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[database]\n", f"[database]\nbusy_timeout = {seconds}\n", 1), encoding="utf-8")
    return config


@pytest.mark.slow  # runs the publisher in a subprocess
@pytest.mark.sqlite_only("another process holding the database-wide write lock is SQLite's fault")
@pytest.mark.usefixtures("database")
def test_a_database_locked_mid_send_loses_no_outcome_and_sends_nobody_twice(tmp_path: Path, pipelining: bool) -> None:
    """Another process holds SQLite's write lock far longer than the busy timeout while
    messages go out: their outcomes wait in memory and are written once the lock goes;
    nothing is sent twice, nothing is left in ``sending``."""
    addresses = [reader(i) for i in range(1, N + 1)]
    locked = threading.Event()

    def lock_the_database_midway() -> None:
        assert server.wait_for(N // 3, timeout=DEADLINE)
        with contextlib.closing(sqlite3.connect(tmp_path / "data" / "publisher.db", isolation_level=None)) as conn:
            conn.execute("BEGIN EXCLUSIVE")
            locked.set()
            time.sleep(LOCK_SECONDS)  # the lock is the fault under test, not a wait for something
            conn.execute("COMMIT")

    with FaultServer(pipelining=pipelining) as server:
        config = with_busy_timeout(write_site(tmp_path, smtp_port=server.port, smtp="timeout = 2"), 0.2)
        holder = threading.Thread(target=lock_the_database_midway)
        outcome = asyncio.run(send_digest(config, addresses, before_send=holder.start))
        holder.join()

    assert locked.is_set()
    assert_none_lost_none_twice(outcome, server, addresses)
    assert all(r.state == "sent" for r in outcome.rows.values())


@pytest.mark.usefixtures("database")
async def test_rows_this_process_claimed_and_left_are_taken_again_once_their_lease_lapses(
    tmp_path: Path, pipelining: bool,
) -> None:
    """A run of this process that ended without recording its claims (it stopped, or
    failed) leaves them ``sending``; a later run of the same process retakes them once
    their lease lapsed, rather than leaving them to a restart."""
    addresses = [reader(i) for i in range(1, 21)]
    with FaultServer(pipelining=pipelining) as server:
        config = write_site(tmp_path, smtp_port=server.port, smtp="timeout = 2", extra="[cluster]\nlease = 1\n")
        publisher = Publisher(load_settings(config, environ={}))
        await publisher.start()
        try:
            await insert_subscribers(publisher.engine, addresses)
            await publisher.intake.scan()
            await publisher.delivery.plan([Cadence.INSTANT])
            [digest] = await ledger.unfinished_digests(publisher.engine)
            left = await ledger.claim(publisher.engine, digest.id, 0, 10, clock.now(), publisher.delivery.claimant)
            report = await asyncio.wait_for(publisher.delivery.deliver(wait=True), DEADLINE)
        finally:
            await publisher.close()
    assert len(left) == 10
    assert report.sent == len(addresses) and digest.id in report.finished
    assert_exchange(server)
    assert sorted(server.per_recipient().items()) == [(a, 1) for a in addresses]


@pytest.mark.usefixtures("database")
async def test_a_dead_process_journal_is_replayed_and_its_other_claims_given_back_at_once(tmp_path: Path) -> None:
    """A process on this machine killed mid-send: what its journal says the relay accepted
    becomes ``sent`` without going again, and the rest it held is sent now, its hour-long
    lease not waited out.  On PostgreSQL, rows held by a node elsewhere (no journal here)
    wait for it; SQLite is one machine's, and its delivery lock already says the holder died."""
    addresses = [reader(i) for i in range(1, 21)]
    dead = Claimant("this-host:1:20260101T000000.000001", timedelta(hours=1))
    elsewhere = Claimant("other-host:2:20260101T000000.000002", timedelta(hours=1))
    with FaultServer() as server:
        config = write_site(tmp_path, smtp_port=server.port, smtp="timeout = 2", extra="[cluster]\nlease = 3600\n")
        publisher = Publisher(load_settings(config, environ={}))
        await publisher.start()
        try:
            ids = await insert_subscribers(publisher.engine, addresses)
            await publisher.intake.scan()
            await publisher.delivery.plan([Cadence.INSTANT])
            [digest] = await ledger.unfinished_digests(publisher.engine)
            held = await ledger.claim(publisher.engine, digest.id, 0, 10, clock.now(), dead)
            away = await ledger.claim(publisher.engine, digest.id, held[-1].subscriber_id, 3, clock.now(), elsewhere)
            went = [row.subscriber_id for row in held[:4]]  # accepted by the relay before the kill
            killed_with_journal(publisher.settings.storage.data_dir / JOURNAL_DIR, dead.id,
                                [(digest.id, sid) for sid in went])
            report = await asyncio.wait_for(publisher.delivery.deliver(), DEADLINE)
            left = await publisher.delivery.remaining()
            waiting = len(away) if publisher.settings.database.shared else 0
        finally:
            await publisher.close()
    received = server.per_recipient()
    email_of = {sid: address for address, sid in ids.items()}
    assert not {email_of[sid] for sid in went} & set(received)  # recorded from the journal, not sent again
    assert report.sent == len(addresses) - len(went) - waiting
    assert sorted(received.values()) == [1] * report.sent
    assert left.held == waiting and [(h.node, h.rows) for h in left.holders] == [(elsewhere.id, waiting)][:waiting]
    assert not list((tmp_path / "data" / JOURNAL_DIR).iterdir())  # replayed, and this process's closed


# --- throttling --------------------------------------------------------------------------


@pytest.mark.usefixtures("database")
async def test_throttling_relay_slows_the_digest_but_fails_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pipelining: bool
) -> None:
    addresses = [reader(i) for i in range(1, N + 1)]
    # Defaults for concurrency (8), max_attempts and the error ratio: throttling must not
    # fail a message nor pause the digest.
    with FaultServer(pipelining=pipelining) as plain:
        config = write_site(tmp_path / "plain", smtp_port=plain.port, smtp="timeout = 2", retry_base=0.05)
        unthrottled = await send_digest(config, addresses)
    assert_none_lost_none_twice(unthrottled, plain, addresses)

    with FaultServer(pipelining=pipelining) as server:
        server.throttle_every(10)  # 421 4.7.0 to every 10th message, and the connection closes
        server.limit_sessions(2)  # below [delivery] concurrency
        config = write_site(tmp_path / "throttled", smtp_port=server.port, smtp="timeout = 2", retry_base=0.05)
        throttled = await send_digest(config, addresses)

    assert_none_lost_none_twice(throttled, server, addresses)
    assert all(r.state == "sent" for r in throttled.rows.values()), "throttling failed nobody"
    assert all(r.status == "active" for r in throttled.rows.values())
    assert sum(r.failed for r in throttled.reports) == 0
    assert server.counters.throttled >= N // 10  # the relay did throttle
    assert server.counters.most_concurrent <= 2
    with capsys.disabled():
        print(
            f"\n[throttling] {N} messages: {unthrottled.seconds:.2f} s unthrottled "
            f"({plain.counters.sessions_opened} sessions), {throttled.seconds:.2f} s throttled "
            f"({server.counters.throttled} x 421 at DATA, {server.counters.sessions_over_limit} connections "
            f"over the limit of 2, {server.counters.sessions_opened} sessions)"
        )


@pytest.mark.usefixtures("database")
async def test_a_relay_that_keeps_throttling_ends_the_pass_instead_of_holding_it(tmp_path: Path, pipelining: bool) -> None:
    """A relay answering 451 to everything would keep one run (and the delivery lock) for
    hours, each connection resting longer after each throttle: after a few throttles the
    pass ends, the rest deferred without an attempt counted; the next pass continues."""
    addresses = [reader(i) for i in range(1, 201)]
    with FaultServer(pipelining=pipelining) as server:
        server.fail_all("451 4.7.1 Rate limited, please try again later")
        config = write_site(tmp_path, smtp_port=server.port, smtp="timeout = 2", retry_base=1)
        publisher = Publisher(load_settings(config, environ={}))
        await publisher.start()
        try:
            await insert_subscribers(publisher.engine, addresses)
            await publisher.intake.scan()
            first = await asyncio.wait_for(publisher.delivery.send([Cadence.INSTANT]), 20)
            tried = sum(server.counters.rcpt_attempts.values())
            async with publisher.engine.connect() as conn:
                rows = (await conn.execute(select(deliveries.c.state, deliveries.c.attempts))).all()
            server.repair()
            last = await asyncio.wait_for(publisher.delivery.deliver(wait=True), DEADLINE)
        finally:
            await publisher.close()

    assert first.report is not None and first.report.failed == 0 and first.report.sent == 0
    assert tried <= 8 * 3, f"{tried} messages tried against a relay that throttles everything"
    assert {state for state, _ in rows} <= {"deferred", "pending"}
    assert sum(attempts for _, attempts in rows) == tried, "an attempt counted only for a message tried"
    assert last.sent == len(addresses) and last.failed == 0
    assert sorted(server.per_recipient().items()) == [(a, 1) for a in addresses], "everyone, once"
    assert_exchange(server)


# --- the fault server itself ---------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\nmid.dle\r\n.\r\nlast\r\n",
        b"Subject: long\r\n\r\n" + b"x" * 998 + b"\r\n",
        b"Subject: longer\r\n\r\n" + b"x" * 999 + b"\r\n",
        b"Subject: longest\r\n\r\n" + b"x" * 1000 + b"\r\n",
        b"Subject: too long\r\n\r\n" + b"y" * 1200 + b"\r\n",
        b"Subject: no final line break\r\n\r\nend",
    ],
    ids=["empty", "dot-stuffing", "998-byte-line", "999-byte-line", "1000-byte-line", "1200-byte-line", "no-final-crlf"],
)
async def test_fault_server_reads_data_as_aiosmtpd_does(body: bytes) -> None:
    """FaultServer reads DATA in blocks (for speed); what it accepts, refuses and records
    must be what aiosmtpd's own line-by-line reading gives."""
    results = []
    for server_class in (SmtpServer, FaultServer):
        with server_class() as server:
            client = aiosmtplib.SMTP(hostname=HOST, port=server.port, start_tls=False, timeout=5)
            await client.connect()
            try:
                reply = await client.sendmail("from@example.org", ["to@example.org"], body)
                outcome = f"{reply[1].split(':')[0]}"
            except aiosmtplib.SMTPDataError as exc:
                outcome = f"{exc.code} {exc.message}"
            finally:
                client.close()
            results.append((outcome, [m.content for m in server.messages]))
    assert results[1] == results[0]


# --- one digest's trouble stays with it ------------------------------------------------------------

UNTAGGED = "---\nid: {id}\ntitle: {title}\ndate: {date}\n---\n\nBody of {title}.\n"
TAGGED = "---\nid: {id}\ntitle: {title}\ndate: {date}\ntags: [harbour]\n---\n\nBody of {title}.\n"


def digests_of(config: Path) -> Publisher:
    return Publisher(load_settings(config, environ={}))


async def statuses(publisher: Publisher) -> dict[str, tuple[str, str | None]]:
    async with publisher.engine.connect() as conn:
        rows = await conn.execute(select(digests.c.id, digests.c.status, digests.c.pause_reason))
        return {r.id: (r.status, r.pause_reason) for r in rows}


@pytest.mark.usefixtures("database")
async def test_a_digest_that_cannot_be_rendered_is_paused_with_the_reason_and_later_ones_go_out(
    tmp_path: Path,
) -> None:
    from tests.support.outbox import outbox_messages

    config = write_config(tmp_path)
    config.write_text(config.read_text().replace('output_dir = "public"', 'output_dir = "public"\ntemplates_dir = "tpl"'))
    (tmp_path / "tpl" / "email").mkdir(parents=True)
    # An operator's subject template that assumes every article is tagged.
    (tmp_path / "tpl" / "email" / "subject.txt").write_text("{{ articles[0].tags[0] }}: {{ articles[0].title }}\n")
    content = tmp_path / "content"
    content.mkdir()
    publisher = digests_of(config)
    await publisher.start()
    try:
        await add_subscriber(publisher.engine, "ann@example.org")
        (content / "untagged.md").write_text(UNTAGGED.format(id="untagged", title="No tags here", date="2026-01-01T08:00:00Z"))
        await publisher.intake.scan()
        [broken] = await publisher.delivery.plan([Cadence.INSTANT])
        (content / "tagged.md").write_text(TAGGED.format(id="tagged", title="Harbour opens", date="2026-01-02T08:00:00Z"))
        await publisher.intake.scan()
        [fine] = await publisher.delivery.plan([Cadence.INSTANT])

        report = await publisher.delivery.deliver()

        assert report.sent == 1 and report.paused == [broken.id]
        [message] = outbox_messages(publisher.settings)
        assert message["Subject"] == "harbour: Harbour opens"
        found = await statuses(publisher)
        assert found[fine.id] == ("finished", None)
        status, reason = found[broken.id]
        assert status == "paused"
        assert "cannot render the digest" in reason and "email/subject.txt" in reason and "no element 0" in reason

        await publisher.delivery.deliver()  # a later run leaves it paused, and goes on with the rest
        assert (await statuses(publisher))[broken.id][0] == "paused"
    finally:
        await publisher.close()


@pytest.mark.usefixtures("database")
async def test_a_digest_holding_a_stored_article_that_cannot_be_read_is_paused_naming_it(tmp_path: Path) -> None:
    from tests.support.outbox import outbox_messages
    from tests.web.test_ops_web import store_unreadable_article

    config = write_config(tmp_path)
    content = tmp_path / "content"
    content.mkdir()
    publisher = digests_of(config)
    await publisher.start()
    try:
        await add_subscriber(publisher.engine, "ann@example.org")
        await store_unreadable_article(publisher.engine, "damaged-row")
        [broken] = await publisher.delivery.plan([Cadence.INSTANT])
        (content / "tagged.md").write_text(TAGGED.format(id="tagged", title="Harbour opens", date="2026-01-02T08:00:00Z"))
        await publisher.intake.scan()
        [fine] = await publisher.delivery.plan([Cadence.INSTANT])

        report = await publisher.delivery.deliver()

        assert report.sent == 1 and report.paused == [broken.id]
        assert [m["Subject"] for m in outbox_messages(publisher.settings)] == ["Harbour opens"]
        status, reason = (await statuses(publisher))[broken.id]
        assert status == "paused" and "stored article damaged-row can't be read" in reason
    finally:
        await publisher.close()
