"""Several nodes on one PostgreSQL database: shared delivery, a worker killed, the leader killed.

The claims first, in process (two claimants, a lapsed lease, a renewal); then real
processes as operators run them: ``publisher worker`` x3 on one digest, one of them
killed with SIGKILL mid-way, and two ``publisher run`` daemons of which the leader is
killed.  The SMTP server is the in-process aiosmtpd one (tests.support.smtp_faults), counting
every accepted message by recipient.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import feedparser
import pytest
from sqlalchemy import select, text

from publisher import clock
from publisher.app import Publisher
from publisher.config import Settings, load_settings
from publisher.delivery.ledger import Claimant, claim, claimable, renew
from publisher.digest.plan import PlanOptions, plan
from publisher.runtime.leadership import LEADER_LOCK, Leadership
from publisher.store.schema import deliveries
from subscribers.model import Cadence
from tests.support.sites import write_config
from tests.support.databases import rows
from tests.support.delivery_sites import insert_subscribers, write_site
from tests.support.people import add_subscriber
from tests.support.smtp_faults import FaultServer
from tests.system.test_daemon import NEW_ARTICLE, free_port, get, wait_for

pytestmark = pytest.mark.slow  # subprocesses: the CLI, the daemon, the wheel

ON_POSTGRESQL = pytest.mark.postgresql_only("several nodes share one PostgreSQL database (SQLite is single-node)")
LONG = pytest.mark.timeout(600)  # tens of thousands of messages through a Python SMTP server
LEASE = timedelta(seconds=30)
SENT = re.compile(r"delivery run ended: (\d+) sent")


# --- claims, in process -------------------------------------------------------------


async def planned_digest(publisher: Publisher, count: int) -> str:
    for i in range(count):
        await add_subscriber(publisher.engine, f"c{i:02}@example.org", cadence=Cadence.INSTANT)
    await publisher.intake.scan()
    [digest] = await plan(publisher.engine, Cadence.INSTANT, clock.now(), PlanOptions(max_articles=20))
    return digest.id


@ON_POSTGRESQL
async def test_two_nodes_claim_disjoint_rows_and_a_lapsed_lease_is_taken_over(publisher: Publisher) -> None:
    digest = await planned_digest(publisher, 10)
    now = clock.now()
    a, b = Claimant("node-a", LEASE), Claimant("node-b", LEASE)

    first = await claim(publisher.engine, digest, 0, 4, now, a)
    second = await claim(publisher.engine, digest, 0, 100, now, b)
    assert len(first) == 4 and len(second) == 6
    assert not {r.subscriber_id for r in first} & {r.subscriber_id for r in second}
    assert await claim(publisher.engine, digest, 0, 100, now, b) == []  # a's claim is live
    assert not await claimable(publisher.engine, now, b)

    # a renews 20 s on: its claim now lasts until 50 s; b's lapses at 30 s.
    await renew(publisher.engine, {digest: {r.subscriber_id for r in first}}, now + timedelta(seconds=20), a)
    later = now + LEASE + timedelta(seconds=1)
    assert await claimable(publisher.engine, later, a)
    taken = await claim(publisher.engine, digest, 0, 100, later, a)
    assert [r.subscriber_id for r in taken] == [r.subscriber_id for r in second]  # b's, which lapsed
    async with publisher.engine.connect() as conn:
        holders = Counter((await conn.execute(select(deliveries.c.claimed_by))).scalars())
    assert holders == Counter({"node-a": 10})


@pytest.mark.sqlite_only("the single-machine takeover: SQLite's delivery lock makes any other claim a dead one")
async def test_on_sqlite_rows_a_dead_process_left_are_taken_over_at_once(publisher: Publisher) -> None:
    digest = await planned_digest(publisher, 3)
    now = clock.now()
    dead = await claim(publisher.engine, digest, 0, 100, now, Claimant("dead", LEASE, exclusive=True))
    assert len(dead) == 3
    again = await claim(publisher.engine, digest, 0, 100, now, Claimant("next", LEASE, exclusive=True))
    assert [r.subscriber_id for r in again] == [r.subscriber_id for r in dead]


@pytest.mark.sqlite_only("the refusal is SQLite's")
def test_a_worker_on_sqlite_is_refused_with_the_reason(site_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "publisher", "--config", str(site_dir / "config.toml"), "worker"],
        check=False, capture_output=True, text=True, timeout=60, env=os.environ | {"PUBLISHER_SECRET_KEY": "k"},
    )
    assert result.returncode != 0
    assert "PostgreSQL" in result.stderr and "postgresql+asyncpg://" in result.stderr


# --- real processes -------------------------------------------------------------------


def node_env(**settings: str) -> dict[str, str]:
    return os.environ | {"PUBLISHER_SECRET_KEY": "cluster-test-key"} | {
        f"PUBLISHER_{key}": value for key, value in settings.items()
    }


def start(config: Path, command: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "publisher", "--config", str(config), command],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env or node_env(),
        )


@contextmanager
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The nodes a test starts; any still running at the end are killed."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            process.wait()


def stop(process: subprocess.Popen[bytes], log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, log.read_text(errors="replace")[-3000:]


async def prepare_digest(config: Path, count: int) -> dict[str, int]:
    """``count`` instant subscribers and the digest of the sample articles for them, planned."""
    publisher = Publisher(load_settings(config, environ={"PUBLISHER_SECRET_KEY": "cluster-test-key"}))
    await publisher.start()
    try:
        ids = await insert_subscribers(publisher.engine, [f"n{i:05d}@example.org" for i in range(count)])
        await publisher.intake.scan()
        assert len(await publisher.delivery.plan([Cadence.INSTANT])) == 1
        return ids
    finally:
        await publisher.close()


def finished(site: Path, nodes: list[subprocess.Popen[bytes]], logs: list[Path]) -> bool:
    """Whether the digest is finished; fails at once, with its log, if a node ended."""
    for process, log in zip(nodes, logs, strict=True):
        assert process.poll() is None, f"{log.name} ended ({process.returncode}): " + log.read_text()[-3000:]
    return rows(site, "SELECT status FROM digests") == [("finished",)]


@ON_POSTGRESQL
@LONG
@pytest.mark.usefixtures("database")
def test_three_workers_deliver_a_30000_subscriber_digest_each_message_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    count = 30_000
    with FaultServer(keep_content=False) as server, processes() as nodes:
        config = write_site(tmp_path, smtp_port=server.port, extra="[cluster]\npoll_interval = 0.2\n")
        ids = asyncio.run(prepare_digest(config, count))
        # Planning refreshed the planner's statistics: claims go by the primary key from the first batch.
        assert rows(tmp_path, "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'deliveries'") \
            == [(True,)]
        started = time.monotonic()
        logs = [tmp_path / f"worker{n}.log" for n in range(3)]
        nodes.extend(start(config, "worker", log) for log in logs)
        wait_for(lambda: finished(tmp_path, nodes, logs), timeout=300, what="the digest to finish")
        seconds = time.monotonic() - started
        for process, log in zip(nodes, logs, strict=True):
            stop(process, log)
        received = server.per_recipient()

    assert set(received) == set(ids) and set(received.values()) == {1}  # everyone, exactly once
    assert rows(tmp_path, "SELECT state, count(*) FROM deliveries GROUP BY state") == [("sent", count)]
    shares = [sum(int(n) for n in SENT.findall(log.read_text())) for log in logs]
    assert sum(shares) == count and all(shares), shares  # the three shared the digest
    for log in logs:  # a delivery spans many polls, and that is no warning
        assert " WARNING " not in log.read_text() and " ERROR " not in log.read_text(), log.read_text()[-3000:]
    with capsys.disabled():
        print(f"\n[cluster] 3 workers, {count} messages in {seconds:.1f} s, shares {shares}")


@ON_POSTGRESQL
@LONG
@pytest.mark.usefixtures("database")
def test_a_worker_killed_mid_digest_leaves_its_batch_to_the_others_after_the_lease(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    count, lease = 10_000, 2
    with FaultServer(keep_content=False) as server, processes() as nodes:
        config = write_site(
            tmp_path, smtp_port=server.port, rate=1500, extra=f"[cluster]\npoll_interval = 0.2\nlease = {lease}\n"
        )
        ids = asyncio.run(prepare_digest(config, count))
        logs = [tmp_path / f"worker{n}.log" for n in range(3)]
        # The victim keeps its state (its journal) in a data directory of its own, as a node
        # on another host would: the others can't replay it and take its rows after the lease
        # (a node on this machine that dies is replayed at once: test_delivery_crash.py).
        victim = start(config, "worker", logs[0], env=node_env(STORAGE__DATA_DIR=str(tmp_path / "other-host")))
        nodes.append(victim)
        nodes.extend(start(config, "worker", log) for log in logs[1:])

        def victim_holds_rows() -> bool:
            return bool(rows(tmp_path, f"SELECT count(*) FROM deliveries WHERE claimed_by LIKE '%:{victim.pid}:%'")[0][0])

        wait_for(lambda: server.wait_for(count // 4, timeout=0.1) and victim_holds_rows(), timeout=120,
                 what="a quarter of the digest sent, the victim holding a batch")
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        killed_at = time.monotonic()
        [(in_flight,)] = rows(
            tmp_path, f"SELECT count(*) FROM deliveries WHERE state = 'sending' AND claimed_by LIKE '%:{victim.pid}:%'"
        )
        assert in_flight > 0
        wait_for(lambda: finished(tmp_path, nodes[1:], logs[1:]), timeout=300, what="the others to finish the digest")
        took = time.monotonic() - killed_at
        for process, log in zip(nodes[1:], logs[1:], strict=True):
            stop(process, log)
        received = server.per_recipient()

    assert set(received) == set(ids)  # nothing lost
    duplicates = sum(received.values()) - len(received)
    assert rows(tmp_path, "SELECT state, count(*) FROM deliveries GROUP BY state") == [("sent", count)]
    with capsys.disabled():
        print(f"\n[cluster] worker killed holding {in_flight} rows; {duplicates} duplicates; "
              f"the others finished {took:.1f} s later (lease {lease} s)")
    assert duplicates <= in_flight


@ON_POSTGRESQL
def test_when_the_leader_dies_a_standby_takes_the_schedule_within_failover(
    site_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failover = 3.0
    config = write_config(
        site_dir, f"[scheduler]\nscan_interval = 0.5\n[cluster]\nfailover = {failover}\npoll_interval = 0.2\n"
    )
    settings: Settings = load_settings(config, environ={})
    subprocess.run(
        [sys.executable, "-m", "publisher", "--config", str(config), "subscribers", "add", "reader@example.org",
         "--cadence", "instant"],
        check=True, capture_output=True, env=node_env(),
    )
    ports = [free_port(), free_port()]
    logs = [site_dir / "first.log", site_dir / "second.log"]
    outbox = settings.delivery.outbox

    def role_of(process: subprocess.Popen[bytes]) -> str | None:
        found = rows(site_dir, f"SELECT role FROM nodes WHERE pid = {process.pid}")
        return found[0][0] if found else None

    def last_scan(process: subprocess.Popen[bytes]) -> datetime:
        [(state,)] = rows(site_dir, f"SELECT state FROM nodes WHERE pid = {process.pid}")
        scanned = json.loads(state).get("last_scan_at")
        return datetime.fromisoformat(scanned) if scanned else datetime.min.replace(tzinfo=UTC)

    def messages() -> int:
        return len(list((outbox / "new").iterdir())) if (outbox / "new").is_dir() else 0

    def feed_titles(port: int) -> list[str]:
        status, _, body = get(f"http://127.0.0.1:{port}/feed.atom")
        return [entry.title for entry in feedparser.parse(body).entries] if status == 200 else []

    with processes() as nodes:
        nodes.append(start(config, "run", logs[0], node_env(SERVER__PORT=str(ports[0]))))
        wait_for(lambda: role_of(nodes[0]) == "leader", timeout=30, what="the first daemon to lead")
        nodes.append(start(config, "run", logs[1], node_env(SERVER__PORT=str(ports[1]))))
        wait_for(lambda: role_of(nodes[1]) == "standby", timeout=30, what="the second daemon to stand by")
        wait_for(lambda: messages() == 1, what="the first digest")
        assert len(feed_titles(ports[1])) == 3  # a standby serves the feeds too

        status = subprocess.run(
            [sys.executable, "-m", "publisher", "--config", str(config), "status"],
            capture_output=True, text=True, check=True, env=node_env(),
        ).stdout
        assert "nodes: 2 live (1 leader, 1 standby)" in status, status

        nodes[0].send_signal(signal.SIGKILL)
        nodes[0].wait()
        killed_at = time.monotonic()
        wait_for(lambda: role_of(nodes[1]) == "leader", timeout=failover * 3, what="the standby to lead")
        takeover = time.monotonic() - killed_at

        (site_dir / "content" / "harbour-bridge.md").write_text(NEW_ARTICLE, encoding="utf-8")
        wait_for(lambda: messages() == 2, what="the new article's digest from the new leader")
        sent_at = clock.now()
        wait_for(lambda: "The harbour bridge reopens early" in feed_titles(ports[1]), what="the new article's feed")
        # The new leader scans and plans again after that (its heartbeat says when) and sends nothing more.
        wait_for(lambda: last_scan(nodes[1]) > sent_at, timeout=30, what="another scan by the new leader")
        stop(nodes[1], logs[1])

    assert messages() == 2
    assert rows(site_dir, "SELECT count(*) FROM digests") == [(2,)]
    assert rows(site_dir, "SELECT state, count(*) FROM deliveries GROUP BY state") == [("sent", 2)]
    log = logs[1].read_text()
    assert "leadership: this node now runs the schedule" in log and "Traceback" not in log
    with capsys.disabled():
        print(f"\n[cluster] the standby led {takeover:.1f} s after the leader was killed (failover {failover} s)")
    assert takeover <= failover


@ON_POSTGRESQL
async def test_a_leader_that_loses_its_lock_connection_steps_down_and_one_node_leads_again(
    publisher: Publisher, settings: Settings
) -> None:
    """The database ends the leader's session (a restart, a failover, an idle killer):
    the leader notices at its next check and steps down, and the lock goes to one node."""
    events: list[tuple[str, str]] = []
    changed = asyncio.Condition()

    def candidate(name: str) -> Leadership:
        async def note(what: str) -> None:
            async with changed:
                events.append((name, what))
                changed.notify_all()

        return Leadership(settings.database.url, 1.5, partial(note, "elected"), partial(note, "deposed"))

    async def until(predicate: Callable[[], bool]) -> None:
        async with changed:
            await asyncio.wait_for(changed.wait_for(predicate), timeout=10)

    def leaders() -> list[str]:
        now: dict[str, bool] = {}
        for name, what in events:
            now[name] = what == "elected"
        return [name for name, leading in now.items() if leading]

    stop = asyncio.Event()
    first, second = candidate("first"), candidate("second")
    campaigns = [asyncio.create_task(first.run(stop))]
    await until(lambda: leaders() == ["first"])
    campaigns.append(asyncio.create_task(second.run(stop)))
    async with publisher.engine.connect() as conn:
        ended = await conn.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND objid = :key AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"key": LEADER_LOCK},
        )
    assert ended == 1  # the session holding the lock: the first's (the second campaigns on its own)
    await until(lambda: ("first", "deposed") in events and len(leaders()) == 1)
    stop.set()
    await asyncio.gather(*campaigns)
    assert not leaders(), events  # both handed the schedule back when stopping
