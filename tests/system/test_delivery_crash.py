"""Crash safety: ``publisher send`` killed with SIGKILL five times, restarted each time.

A real subprocess sends one digest to 6,000 subscribers over ``CONCURRENCY`` SMTP
connections to an in-process server that records each message's Message-ID. At a
random point (seeded: after the server received a random 5-90 % of what was still
missing) the process is killed with SIGKILL; every row the ledger then says ``sent``
must have been received. After the fifth kill an uninterrupted ``publisher send``
resumes the digest.  Each run is ``send --wait``, and replays the killed run's journal
(:mod:`publisher.delivery.journal`) before it claims anything: the messages the relay
accepted become ``sent``, and the killed run's other claimed rows are taken over at
once (on PostgreSQL too: the journal's lock shows that their node died, so the lease,
here an hour, is not waited out). Then every subscriber was received at least once,
every row is ``sent``, and the duplicates are at most the messages on the wire at the
kills: one per connection, ``CONCURRENCY`` per kill (not the rows claimed, hundreds).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from publisher.app import Publisher
from publisher.config import load_settings
from tests.support.databases import rows
from tests.support.delivery_sites import insert_subscribers, write_site
from tests.support.smtp_faults import FaultServer, digest_recipient

pytestmark = [pytest.mark.usefixtures("database"), pytest.mark.slow]  # on SQLite and on PostgreSQL; subprocesses

SUBSCRIBERS = 6_000  # enough for five kill points spread over the send, each mid-batch
KILLS = 5
CONCURRENCY = 8  # connections: at most one message each in flight when the process dies
SEED = int(os.environ.get("PUBLISHER_CRASH_SEED", "20261125"))
RUN_DEADLINE = 120.0  # seconds a run may take to reach its kill point, or to finish


def start_send(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "publisher", "--config", str(config), "send", "--wait"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )


# Read the ledger from outside, as an operator would, while the sender may be running.
def ledger_states(site: Path) -> Counter[str]:
    return Counter(dict(rows(site, "SELECT state, count(*) FROM deliveries GROUP BY state")))


def sent_ids(site: Path) -> set[int]:
    return {sid for (sid,) in rows(site, "SELECT subscriber_id FROM deliveries WHERE state = 'sent'")}


def digest_statuses(site: Path) -> list[tuple[str, str]]:
    return [(ident, status) for ident, status in rows(site, "SELECT id, status FROM digests")]


async def prepare(config: Path, addresses: list[str]) -> dict[str, int]:
    publisher = Publisher(load_settings(config, environ={}))
    await publisher.start()  # the schema
    try:
        return await insert_subscribers(publisher.engine, addresses)
    finally:
        await publisher.close()


def test_killed_five_times_every_subscriber_received_and_duplicates_bounded_by_in_flight(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(SEED)
    addresses = [f"crash{i:05d}@example.org" for i in range(SUBSCRIBERS)]
    log = tmp_path / "send.log"
    kills: list[tuple[int, int, float]] = []  # (messages received when killed, rows left claimed, seconds)
    started = time.monotonic()
    with FaultServer(keep_content=False) as server:
        config = write_site(
            tmp_path, smtp_port=server.port, smtp="timeout = 10", retry_base=0.05, concurrency=CONCURRENCY,
            extra="[cluster]\nlease = 3600\n",  # a dead run's rows are taken over by its journal, not its lease
        )
        ids = asyncio.run(prepare(config, addresses))
        assert len(ids) == SUBSCRIBERS

        for kill in range(KILLS):
            run_started = time.monotonic()
            process = start_send(config, log)
            try:
                seen = server.snapshot()
                missing = SUBSCRIBERS - len({a.message_id for a in seen})
                target = len(seen) + rng.randint(max(1, missing * 5 // 100), max(1, missing * 90 // 100))
                deadline = time.monotonic() + RUN_DEADLINE
                # Wait for the server's count, checking now and then that the sender is alive.
                while not server.wait_for(target, timeout=0.2):
                    assert process.poll() is None, (
                        f"run {kill + 1} ended ({process.returncode}) before its kill point: "
                        + log.read_text(errors="replace")[-3000:]
                    )
                    assert time.monotonic() < deadline, f"run {kill + 1}: no kill point within {RUN_DEADLINE} s"
                process.send_signal(signal.SIGKILL)
            finally:
                if process.poll() is None:
                    process.kill()
                process.wait()
            assert process.returncode == -signal.SIGKILL, f"run {kill + 1} exited {process.returncode} by itself"
            claimed = ledger_states(tmp_path)["sending"]
            # The ledger never says "sent" before the server said 250: nothing is lost.
            received_ids = {parsed[1] for a in server.snapshot() if (parsed := digest_recipient(a.message_id))}
            unreceived = sent_ids(tmp_path) - received_ids
            assert not unreceived, f"kill {kill + 1}: {len(unreceived)} rows sent but never received"
            kills.append((len(server.accepted), claimed, round(time.monotonic() - run_started, 1)))

        final_started = time.monotonic()
        process = start_send(config, log)
        try:
            process.wait(timeout=RUN_DEADLINE)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        final_seconds = time.monotonic() - final_started
        assert process.returncode == 0, log.read_text(errors="replace")[-3000:]
        accepted = server.snapshot()

    states = ledger_states(tmp_path)
    digests = digest_statuses(tmp_path)
    assert len(digests) == 1, f"the restarts planned nothing new: {digests}"
    [(digest_id, status)] = digests
    assert status == "finished"
    assert states == Counter({"sent": SUBSCRIBERS}), states

    email_of = {sid: address for address, sid in ids.items()}
    received: Counter[int] = Counter()
    for message in accepted:
        parsed = digest_recipient(message.message_id)
        assert parsed is not None and parsed[0] == digest_id, message
        assert message.rcpt_tos == (email_of[parsed[1]],), message
        received[parsed[1]] += 1
    never = [email_of[sid] for sid in email_of if received[sid] == 0]
    assert not never, f"{len(never)} subscribers never received the digest, e.g. {never[:5]}"
    duplicates = sum(received.values()) - len(received)
    in_flight = KILLS * CONCURRENCY
    with capsys.disabled():
        print(
            f"\n[crash] seed {SEED}: {SUBSCRIBERS} subscribers, kills at (received, rows claimed, run s) {kills}; "
            f"final run {final_seconds:.1f} s; {len(accepted)} messages received, {duplicates} duplicates "
            f"<= {in_flight} on the wire ({KILLS} kills x {CONCURRENCY} connections); "
            f"{time.monotonic() - started:.1f} s in all"
        )
    assert duplicates <= in_flight


def test_a_plain_send_after_a_kill_replays_the_journal_and_takes_the_dead_runs_rows_at_once(tmp_path: Path) -> None:
    """The case of a cron job: ``send`` killed, then ``send`` again without ``--wait``.  The
    second replays the first's journal and takes back the rows it held although their
    lease has an hour to run (it knows their node died: the journal's lock was free), so
    it finishes the digest and exits 0, and the duplicates are the messages on the wire."""
    count = 3000
    addresses = [f"again{i:04d}@example.org" for i in range(count)]
    log = tmp_path / "send.log"
    with FaultServer(keep_content=False) as server:
        config = write_site(
            tmp_path, smtp_port=server.port, smtp="timeout = 10", retry_base=0.05, concurrency=CONCURRENCY,
            extra="[cluster]\nlease = 3600\n",
        )
        ids = asyncio.run(prepare(config, addresses))
        first = start_send(config, log)
        try:
            while not server.wait_for(count // 3, timeout=0.2):
                assert first.poll() is None, log.read_text(errors="replace")[-3000:]
        finally:
            first.kill()
            first.wait()
        claimed = ledger_states(tmp_path)["sending"]
        second = subprocess.run(
            [sys.executable, "-m", "publisher", "--config", str(config), "send"],
            capture_output=True, text=True, timeout=RUN_DEADLINE,
        )
        accepted = server.snapshot()
    assert second.returncode == 0, second.stdout + second.stderr
    assert claimed > CONCURRENCY  # the kill left claims to take back, more than the wire can hold
    assert ledger_states(tmp_path) == Counter({"sent": count})
    assert "died; its journal says" in second.stderr, second.stderr
    received = Counter(parsed[1] for a in accepted if (parsed := digest_recipient(a.message_id)))
    assert set(received) == set(ids.values())
    assert sum(received.values()) - count <= CONCURRENCY


def test_sigterm_during_a_send_loses_nothing_and_the_rest_goes_after_a_restart(tmp_path: Path) -> None:
    """The daemon stopped politely mid-digest: it finishes the messages in hand, exits 0,
    and the next start sends the rest; nobody is lost and, the stop being orderly, nobody
    gets it twice."""
    count = 4000
    addresses = [f"term{i:04d}@example.org" for i in range(count)]
    log = tmp_path / "daemon.log"
    with FaultServer(keep_content=False) as server:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config = write_site(
            tmp_path, smtp_port=server.port,
            smtp=f"timeout = 10\n[server]\nport = {port}\nshutdown_timeout = 20\n[scheduler]\nscan_interval = 3600",
        )
        ids = asyncio.run(prepare(config, addresses))

        def run_daemon() -> subprocess.Popen[bytes]:
            with log.open("ab") as out:
                return subprocess.Popen(
                    [sys.executable, "-m", "publisher", "--config", str(config), "run"],
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                )

        first = run_daemon()
        try:
            while not server.wait_for(count // 3, timeout=0.2):
                assert first.poll() is None, log.read_text(errors="replace")[-3000:]
            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=30) == 0
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        at_stop = len(server.snapshot())
        states = ledger_states(tmp_path)
        assert at_stop < count and states["sending"] == 0, (at_stop, states)  # nothing left in limbo
        assert states["sent"] == at_stop  # every message the server took is recorded, and only those

        second = run_daemon()
        try:
            while not server.wait_for(count, timeout=0.2):
                assert second.poll() is None, log.read_text(errors="replace")[-3000:]
            while ledger_states(tmp_path)["sent"] < count:  # the last outcomes reach the ledger
                assert second.poll() is None
                server.wait_for(count + 1, timeout=0.1)
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=30) == 0
        finally:
            if second.poll() is None:
                second.kill()
                second.wait()
        accepted = server.snapshot()

    received = Counter(parsed[1] for a in accepted if (parsed := digest_recipient(a.message_id)))
    assert set(received) == set(ids.values()) and max(received.values()) == 1
    assert "Traceback" not in log.read_text(errors="replace")
