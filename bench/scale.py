"""Delivery scaled out: ``publisher worker`` processes on PostgreSQL, one and then two, against smtp-sink.

The scaling issue's benchmark; it prints figures, it is not a test.  The question is
whether a second delivery node adds throughput on this 2-core machine (goal: two
workers send at least 1.5x as fast as one; one worker is bounded near 2,400 msgs/s by
aiosmtplib on one core, and the sink and PostgreSQL share both cores), and whether a
worker's memory stays flat with the size of the list (goal: peak RSS under 150 MB at
1,000,000 subscribers, and at most 10% above its figure at 100,000).

How: it starts Postfix's ``smtp-sink`` on loopback (installing Postfix and GNU time
with apt-get when they are missing, see bench/_postfix.py), writes a site with the
sample articles sending over ``--connections`` SMTP connections per worker to the sink,
and builds one base database per list size on the PostgreSQL server ``--postgres``:
migrations, N active ``instant`` subscribers (COPY: a million multi-row INSERTs would
take minutes), the articles scanned, ``VACUUM ANALYZE``.  Each run then:

1. copies the base (``CREATE DATABASE … TEMPLATE``), so every run starts from the
   same list and nothing of an earlier run is left;
2. plans the instant digest in this process (``Publisher.plan``, as the leader would;
   workers don't plan; planning also refreshes the ``deliveries`` statistics, without
   which PostgreSQL would claim each batch through the wrong index: about 1.1 s a claim
   of 500 at 200,000 subscribers instead of 20 ms) and checkpoints, none of which is
   timed;
3. starts the workers, each ``publisher --config … worker`` under GNU time (its own
   peak RSS and CPU seconds; see bench/delivery.py's ``run_child`` on why not wait4),
   with ``[cluster] poll_interval`` ``--poll-interval`` so they find the digest soon;
4. waits for the digest's ``finished`` status (a separate connection polls it, the
   sink's counter gives the first accepted message), giving up when no message was
   accepted for 2 minutes, a worker exits, or the deadline passes;
5. stops the workers with SIGTERM (to publisher, not to GNU time, which does not
   forward it) and checks that the sink accepted exactly N messages and that the
   ledger holds N ``sent`` rows: none lost, none sent twice.

Runs: one worker and two workers on ``--subscribers`` (1,000,000 by default), and one
worker on ``--rss-subscribers`` (100,000) for the memory comparison.  Messages per
second are the messages smtp-sink accepted over the wall time from the workers' spawn
to the digest's ``finished_at`` (start-up included); the rate from the first accepted
message to the end is printed beside it, so the start-up cost shows.

    .venv/bin/python bench/scale.py [--subscribers 1000000] [--rss-subscribers 100000]
        [--connections 16] [--poll-interval 0.5] [--timeout SECONDS]
        [--postgres postgresql://postgres@127.0.0.1:5432] [--keep DIR]

The databases are named ``publisher_bench_scale_<pid>_…`` and dropped at the end; a
later run drops those a killed run left.  With ``--keep`` the site and the workers'
logs stay in DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from _common import cpu_busy, log, work_dir
from _postfix import SmtpSink, ensure_tools
from delivery import FROM_ADDRESS, children, publisher_env, time_report, under_time

import publisher
from publisher.app import Publisher
from publisher.config import load_settings
from publisher.store.schema import subscribers
from subscribers.model import Cadence
from tests.support.sites import SAMPLE_CONTENT, write_config

# The scaling issue's goals.
SCALING_GOAL = 1.5  # two workers' rate over one's
RSS_LIMIT_MB = 150.0
RSS_GROWTH = 0.10  # peak RSS at --subscribers over --rss-subscribers

DB_PREFIX = "publisher_bench_scale_"
STALL_SECONDS = 120.0  # no message accepted for this long: something is wrong
TICK = 0.05  # seconds between looks at the sink's counter; the digest's status every DB_EVERY ticks
DB_EVERY = 10
STOP_SECONDS = 60.0  # a worker told to stop gets this long before it is killed
_SENT = re.compile(r"delivery run ended: (\d+) sent")
_PROBLEM = re.compile(r"\S+ \S+ (WARNING|ERROR|CRITICAL) ")  # a text log line: date, time, level
_DIGITS = re.compile(r"\d+")


class BenchError(Exception):
    """The run can't go on; the message says why."""


# --- databases --------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    url: str  # postgresql://user@host:port, no database

    def dsn(self, db: str) -> str:
        return f"{self.url}/{db}"

    def sqlalchemy_url(self, db: str) -> str:
        return "postgresql+asyncpg://" + self.dsn(db).removeprefix("postgresql://")

    async def admin(self, sql: str) -> list[asyncpg.Record]:
        """``sql``'s rows, on the server's ``postgres`` database."""
        conn = await asyncpg.connect(self.dsn("postgres"))
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    async def create(self, db: str, template: str = "template0") -> None:
        await self.admin(f'CREATE DATABASE "{db}" TEMPLATE "{template}"')

    async def drop(self, db: str) -> None:
        await self.admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    async def drop_leftovers(self) -> None:
        """Drop the databases of earlier runs whose process is gone (killed before its cleanup)."""
        for (name,) in await self.admin("SELECT datname FROM pg_database"):
            pid = name.removeprefix(DB_PREFIX).partition("_")[0]
            if name.startswith(DB_PREFIX) and pid.isdigit() and not Path(f"/proc/{pid}").exists():
                log(f"dropping {name}, left by an earlier run")
                await self.drop(name)


SUBSCRIBER_COLUMNS = [
    "email", "name", "status", "cadence", "source", "created_at", "confirmed_at", "confirmed_source", "article_cursor",
]


def _subscriber_records(count: int) -> Iterator[tuple[object, ...]]:
    """user1..userN@example.org, as ``tests.delivery_sites.insert_subscribers`` adds them."""
    now = datetime.now(UTC)
    for n in range(1, count + 1):
        yield f"user{n}@example.org", "", "active", "instant", "cli", now, now, "cli", 0


async def build_base(server: Server, db: str, config: Path, count: int) -> float:
    """A database with the schema, ``count`` subscribers and the articles scanned; seconds taken."""
    started = time.perf_counter()
    await server.create(db)
    app = Publisher(load_settings(config, environ=node_env(server, db)))
    conn = await asyncpg.connect(server.dsn(db))
    try:
        await app.start()  # the migrations
        await conn.copy_records_to_table(
            subscribers.name, records=_subscriber_records(count), columns=SUBSCRIBER_COLUMNS
        )
        await app.intake.scan()
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
        await app.close()  # a template database must have no connections
    return time.perf_counter() - started


def node_env(server: Server, db: str) -> dict[str, str]:
    """The environment of a publisher process on ``db`` (the config file names no database)."""
    return publisher_env() | {"PUBLISHER_DATABASE__URL": server.sqlalchemy_url(db)}


async def plan_digest(server: Server, db: str, config: Path, expected: int) -> str:
    """Plan the instant digest in ``db`` (the leader's part); its id."""
    app = Publisher(load_settings(config, environ=node_env(server, db)))
    try:
        await app.start()
        planned = await app.delivery.plan([Cadence.INSTANT])
    finally:
        await app.close()
    if len(planned) != 1 or planned[0].recipients != expected:
        raise BenchError(f"expected one digest for {expected:,} subscribers, planned {planned}")
    return planned[0].id


def postgres_cpu() -> float:
    """CPU seconds the PostgreSQL server has used so far: its processes', and the postmaster's
    waited-for children's (the backends of connections already closed)."""
    processes: dict[int, tuple[int, int, int]] = {}  # pid: (parent pid, own ticks, waited-for children's)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, rest = stat.read_text().partition(") ")
        except OSError:  # gone meanwhile
            continue
        if head.endswith("(postgres"):
            fields = [int(f) for f in rest.split()[1:15]]  # ppid at 0; utime, stime, cutime, cstime at 10-13
            processes[int(stat.parent.name)] = (fields[0], fields[10] + fields[11], fields[12] + fields[13])
    ticks = sum(own + (waited if parent not in processes else 0) for parent, own, waited in processes.values())
    return ticks / os.sysconf("SC_CLK_TCK")


# --- workers ----------------------------------------------------------------------------


@dataclass
class Worker:
    name: str
    process: subprocess.Popen[bytes]  # GNU time
    pid: int  # publisher's, GNU time's child
    err_path: Path
    time_path: Path


@dataclass(frozen=True)
class WorkerFigures:
    name: str
    returncode: int
    peak_rss_mb: float
    cpu: float  # user + system seconds
    sent: int | None  # from its "delivery run ended" log lines (None: it logged none)
    problems: list[str]  # its WARNING / ERROR lines


def start_worker(config: Path, env: dict[str, str], log_dir: Path, name: str) -> Worker:
    err_path, time_path = log_dir / f"{name}.err", log_dir / f"{name}.time"
    command = [sys.executable, "-m", "publisher", "--config", str(config), "worker"]
    with (log_dir / f"{name}.out").open("wb") as out, err_path.open("wb") as err:
        # In the site directory, as bench/delivery.py's publisher_send (a PYTHONPATH checkout wins).
        process = subprocess.Popen(
            under_time(command, time_path), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
            cwd=config.parent,
        )
    deadline = time.monotonic() + 10
    while not (pids := children(process.pid)):
        if process.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"{name}: GNU time did not start publisher: {err_path.read_text(errors='replace')}")
        time.sleep(0.01)
    return Worker(name, process, pids[0], err_path, time_path)


def stop_workers(workers: list[Worker]) -> list[WorkerFigures]:
    """SIGTERM to each publisher (GNU time doesn't forward signals); each one's figures once it exited."""
    for worker in workers:
        _signal(worker.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    figures = []
    for worker in workers:
        try:
            returncode = worker.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"  {worker.name} did not stop within {STOP_SECONDS:g} s of SIGTERM: killed")
            _signal(worker.pid, signal.SIGKILL)
            returncode = worker.process.wait()
        peak_rss_mb, cpu = time_report(worker.time_path)
        text = worker.err_path.read_text(errors="replace")
        sent = [int(n) for n in _SENT.findall(text)]
        problems = [line for line in text.splitlines() if _PROBLEM.match(line)]
        figures.append(WorkerFigures(worker.name, returncode, peak_rss_mb, cpu, sum(sent) if sent else None, problems))
    return figures


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _kind(problem: str) -> str:
    """A log line without its date and time, its numbers as #: the lines of one kind look alike."""
    return _DIGITS.sub("#", problem.split(" ", 2)[2])


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- one run ----------------------------------------------------------------------------


@dataclass
class Run:
    subscribers: int
    workers: list[WorkerFigures]
    first: float  # seconds from the workers' spawn to the first message the sink accepted
    seconds: float  # ... to the digest's finished_at
    accepted: int  # messages the sink accepted during the run
    sessions: int  # SMTP sessions that ended during the run
    ledger: dict[str, int]  # the digest's rows by state
    sink_cpu: float
    postgres_cpu: float

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds

    @property
    def steady_rate(self) -> float:
        return self.accepted / (self.seconds - self.first)

    @property
    def exact(self) -> bool:
        return self.accepted == self.subscribers and self.ledger == {"sent": self.subscribers}

    @property
    def label(self) -> str:
        return f"{len(self.workers)} worker{'s' if len(self.workers) > 1 else ''}, {self.subscribers:,}"


@dataclass(frozen=True)
class Bench:
    server: Server
    config: Path
    sink: SmtpSink
    work: Path
    prefix: str  # of this run's database names
    timeout: float | None


async def measure_run(bench: Bench, base: str, count: int, workers: int) -> Run:
    db = f"{base}_{workers}w"
    await bench.server.create(db, template=base)
    try:
        digest_id = await plan_digest(bench.server, db, bench.config, count)
        log_dir = bench.work / db.removeprefix(bench.prefix)
        log_dir.mkdir()
        conn = await asyncpg.connect(bench.server.dsn(db))
        try:
            await conn.execute("CHECKPOINT")  # the copy's and the plan's writes, before the clock starts
            return await _timed_run(bench, conn, digest_id, count, workers, log_dir, node_env(bench.server, db))
        finally:
            await conn.close()
    finally:
        await bench.server.drop(db)


async def _timed_run(
    bench: Bench, conn: asyncpg.Connection, digest_id: str, count: int, workers: int, log_dir: Path,
    env: dict[str, str],
) -> Run:
    before, pg_before = bench.sink.mark(), postgres_cpu()
    started = time.time()
    running: list[Worker] = []
    try:
        for n in range(1, workers + 1):
            running.append(start_worker(bench.config, env, log_dir, f"worker{n}"))
        timeout = bench.timeout or 120 + count / 400  # 1,000,000: 44 min, ~6x one worker's time
        first, finished = await _wait_finished(bench.sink, before.messages, conn, digest_id, running, started, timeout)
    finally:
        figures = stop_workers(running)
    after = bench.sink.mark(before.messages + count)
    ledger = {r["state"]: r["count"] for r in await conn.fetch(
        "SELECT state, count(*) FROM deliveries WHERE digest_id = $1 GROUP BY state", digest_id
    )}
    return Run(
        subscribers=count, workers=figures, first=first, seconds=finished, accepted=after.messages - before.messages,
        sessions=after.sessions - before.sessions, ledger=ledger, sink_cpu=after.cpu - before.cpu,
        postgres_cpu=postgres_cpu() - pg_before,
    )


async def _wait_finished(
    sink: SmtpSink, accepted_before: int, conn: asyncpg.Connection, digest_id: str, workers: list[Worker],
    started: float, timeout: float,
) -> tuple[float, float]:
    """Seconds from ``started`` (time.time()) to the first accepted message and to the digest's finished_at."""
    first: float | None = None
    last_count, last_move = accepted_before, time.monotonic()
    deadline = last_move + timeout
    ticks = 0
    while True:
        await asyncio.sleep(TICK)
        ticks += 1
        count = sink.counters()[1]
        if first is None and count > accepted_before:
            first = time.time() - started
        for worker in workers:
            if worker.process.poll() is not None:
                raise BenchError(f"{worker.name} exited ({worker.process.returncode}) before the digest finished:\n"
                                 f"{_tail(worker.err_path)}")
        if count != last_count:
            last_count, last_move = count, time.monotonic()
        elif time.monotonic() - last_move > STALL_SECONDS:
            raise BenchError(f"no message accepted for {STALL_SECONDS:g} s ({count - accepted_before:,} so far); "
                             f"{workers[0].name}'s log ends:\n{_tail(workers[0].err_path)}")
        if time.monotonic() > deadline:
            raise BenchError(f"the digest did not finish within {timeout:.0f} s "
                             f"({count - accepted_before:,} messages accepted); raise --timeout?")
        if ticks % DB_EVERY:
            continue
        row = await conn.fetchrow("SELECT status, finished_at, pause_reason FROM digests WHERE id = $1", digest_id)
        if row["status"] == "paused":
            raise BenchError(f"the digest paused: {row['pause_reason']}")
        if row["status"] == "finished":
            if first is None:
                raise BenchError("the digest finished but the sink accepted no message")
            return first, row["finished_at"].timestamp() - started


# --- the whole benchmark ----------------------------------------------------------------


def write_site(site: Path, sink_port: int, connections: int, poll_interval: float) -> Path:
    """The sample content and a config sending to the sink; its database comes from the environment."""
    site.mkdir()
    shutil.copytree(SAMPLE_CONTENT, site / "content")
    extra = f'[smtp]\nhost = "127.0.0.1"\nport = {sink_port}\n\n[cluster]\npoll_interval = {poll_interval}\n'
    return write_config(
        site, extra, transport="smtp", from_address=FROM_ADDRESS, from_name="Bench Brief", concurrency=connections,
    )


async def measure(args: argparse.Namespace, work: Path, sink_exe: str) -> None:
    server = Server(args.postgres.rstrip("/"))
    await server.drop_leftovers()
    busy_before = cpu_busy()
    if busy_before > 0.1:
        log(f"warning: {busy_before:.0%} of the CPUs are busy before the start: the figures will be low and noisy")
    prefix = f"{DB_PREFIX}{os.getpid()}_"
    big, small = f"{prefix}{args.subscribers}", f"{prefix}{args.rss_subscribers}"
    bench_started = time.perf_counter()
    with SmtpSink(sink_exe, work / "smtp-sink.counters") as sink:
        log(f"smtp-sink on 127.0.0.1:{sink.port}: {' '.join(sink.command)}")
        config = write_site(work / "site", sink.port, args.connections, args.poll_interval)
        bench = Bench(server, config, sink, work, prefix, args.timeout)
        try:
            bases = {}
            for base, count in ((small, args.rss_subscribers), (big, args.subscribers)):
                bases[count] = await build_base(server, base, config, count)
                log(f"base database of {count:,} subscribers built in {bases[count]:.1f} s")
            runs = []
            for base, count, workers in ((small, args.rss_subscribers, 1), (big, args.subscribers, 1),
                                         (big, args.subscribers, 2)):
                log(f"run: {workers} worker(s), {count:,} subscribers")
                runs.append(await measure_run(bench, base, count, workers))
                log(f"  {runs[-1].rate:,.0f} msgs/s ({runs[-1].accepted:,} in {runs[-1].seconds:.1f} s)")
        finally:
            for base in (small, big):
                await server.drop(base)
    postgres = await _describe_server(server)
    report(args, runs, bases, postgres, busy_before, time.perf_counter() - bench_started)


async def _describe_server(server: Server) -> str:
    [(version, autovacuum)] = await server.admin(
        "SELECT current_setting('server_version'), current_setting('autovacuum')"
    )
    return f"PostgreSQL {version} (autovacuum {autovacuum})"


# --- the report -------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    """How a figure stands against its goal (a benchmark reports; it does not fail)."""
    return "met" if ok else "not met"


def cpu_ceiling(run: Run) -> str:
    """What the machine's CPUs allow at ``run``'s CPU cost per message (workers, sink and PostgreSQL)."""
    worker, sink, postgres = (seconds / run.accepted for seconds in (
        sum(w.cpu for w in run.workers), run.sink_cpu, run.postgres_cpu
    ))
    cores = os.cpu_count() or 1
    ceiling = cores / (worker + sink + postgres)
    return (f"CPU per message with {run.label}: worker {worker * 1e6:.0f} + sink {sink * 1e6:.0f} + PostgreSQL "
            f"{postgres * 1e6:.0f} µs; at that cost {cores} CPUs send at most {ceiling:,.0f} msgs/s, "
            f"{ceiling / run.rate:.2f}x its rate")


def report(
    args: argparse.Namespace, runs: list[Run], bases: dict[int, float], postgres: str, busy_before: float,
    elapsed: float,
) -> None:
    small, one, two = runs
    print()
    print(f"Scaling benchmark: publisher worker on {postgres}, {args.connections} SMTP connections per "
          f"worker, smtp-sink on loopback, {os.cpu_count()} CPUs ({busy_before:.0%} busy before the start)")
    print(f"publisher measured: {Path(publisher.__file__).parent}; [cluster] poll_interval {args.poll_interval:g} s")
    print("base databases built in " + ", ".join(f"{s:.1f} s ({n:,} subscribers)" for n, s in bases.items())
          + "; each run plans its digest on a fresh copy first (not timed)")
    print()
    header = (f"{'run':24} {'msgs/s':>7} {'from 1st msg':>12} {'1st msg at':>10} {'wall s':>8} "
              f"{'sink CPU':>8} {'PG CPU':>7} {'sessions':>8}  exact")
    print(header)
    print("-" * len(header))
    for run in runs:
        print(f"{run.label:24} {run.rate:7,.0f} {run.steady_rate:12,.0f} {run.first:9.2f}s {run.seconds:8.1f} "
              f"{run.sink_cpu / run.seconds:8.0%} {run.postgres_cpu / run.seconds:7.0%} {run.sessions:8,}  "
              f"{'yes' if run.exact else 'NO'}")
    print("msgs/s: accepted by smtp-sink / wall time from the workers' spawn to the digest finished; from 1st msg:")
    print("the same from the first accepted message; CPU: CPU time / wall time, 100% = one core; PG: the whole server")
    print()
    header = (f"{'run':24} {'worker':8} {'sent':>9} {'peak RSS':>9} {'CPU s':>7} {'CPU/wall':>8} {'exit':>4}  "
              "log problems")
    print(header)
    print("-" * len(header))
    for run in runs:
        for w in run.workers:
            sent = "?" if w.sent is None else f"{w.sent:,}"
            print(f"{run.label:24} {w.name:8} {sent:>9} {w.peak_rss_mb:6.1f} MB {w.cpu:7.1f} "
                  f"{w.cpu / run.seconds:8.0%} {w.returncode:>4}  {len(w.problems)}")
    print("sent: from the worker's \"delivery run ended\" log lines; MB: 10^6 bytes (GNU time's peak RSS); CPU: from")
    print("spawn to exit, start-up and the stop after the digest finished included; log problems: WARNING and worse")
    for run in runs:
        kinds = Counter(_kind(line) for w in run.workers for line in w.problems)
        for kind, times in kinds.most_common(5):
            print(f"  {run.label}: {times} x {kind}")
    print()
    print("each message once:")
    for run in runs:
        ledger = ", ".join(f"{n:,} {state}" for state, n in sorted(run.ledger.items()))
        state = "exactly N, none lost, none twice" if run.exact else "MISMATCH"
        print(f"  {run.label:24} sink accepted {run.accepted:,} of {run.subscribers:,}; ledger {ledger}: {state}")
    print()
    ratio = two.rate / one.rate
    peak_big = max(w.peak_rss_mb for run in (one, two) for w in run.workers)
    peak_small = small.workers[0].peak_rss_mb
    growth = peak_big / peak_small - 1
    print("goals (the scaling issue):")
    print(f"  2 workers / 1 worker at {args.subscribers:,}: {ratio:.2f}x (goal >= {SCALING_GOAL:g}x): "
          f"{verdict(ratio >= SCALING_GOAL)}  (from the first message: {two.steady_rate / one.steady_rate:.2f}x)")
    print(f"    {cpu_ceiling(one)}")
    print(f"  highest peak RSS of a worker at {args.subscribers:,}: {peak_big:.1f} MB (limit {RSS_LIMIT_MB:g} MB): "
          f"{verdict(peak_big < RSS_LIMIT_MB)}")
    print(f"  peak RSS at {args.subscribers:,} over {args.rss_subscribers:,} ({peak_small:.1f} MB): {growth:+.1%} "
          f"(limit +{RSS_GROWTH:.0%}): {verdict(growth <= RSS_GROWTH)}")
    print(f"  every message accepted exactly once in every run: {verdict(all(r.exact for r in runs))}")
    print()
    print("for the README:")
    print()
    print("| run | msgs/s | from the first message | peak RSS per worker |")
    print("| --- | ---: | ---: | ---: |")
    for run in runs:
        rss = " / ".join(f"{w.peak_rss_mb:.1f} MB" for w in run.workers)
        print(f"| {run.label} subscribers | {run.rate:,.0f} | {run.steady_rate:,.0f} | {rss} |")
    print()
    print(f"benchmark wall time: {elapsed:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000, help="the digest's size (default 1,000,000)")
    parser.add_argument("--rss-subscribers", type=int, default=100_000,
                        help="the smaller list of the RSS comparison, one worker (default 100,000)")
    parser.add_argument(
        "--connections", type=int, default=16,
        help="[delivery] concurrency of each worker (default 16: with 8, two workers sharing the cores with the "
        "sink wait on its replies; see the README)",
    )
    parser.add_argument("--poll-interval", type=float, default=0.5,
                        help="[cluster] poll_interval: how soon a worker finds the digest (default 0.5 s)")
    parser.add_argument("--timeout", type=float,
                        help="seconds a run may take (default 120 + 1 per 400 subscribers)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432",
                        help="the PostgreSQL server, without a database (a superuser: it creates databases)")
    parser.add_argument("--keep", type=Path, help="keep the site and the workers' logs in this directory")
    args = parser.parse_args()
    if min(args.subscribers, args.rss_subscribers, args.connections) < 1 or args.poll_interval <= 0:
        parser.error("--subscribers, --rss-subscribers, --connections and --poll-interval must be positive")
    if args.subscribers == args.rss_subscribers:
        parser.error("--subscribers and --rss-subscribers must differ")
    if not args.postgres.startswith("postgresql://"):
        parser.error("--postgres: a postgresql://user@host:port URL")

    sink_exe, _source = ensure_tools()
    with work_dir("scale", args.keep) as work:
        try:
            asyncio.run(measure(args, work, sink_exe))
        except BenchError as exc:
            sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
