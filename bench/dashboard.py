"""The dashboard's figures at a million subscribers: each read's median and p95 against the goals.

Issue 21: "every page < 300 ms p95 on both [backends]; the overview < 100 ms", its counts
from aggregates, not scans.  This fills a fresh database per backend (PostgreSQL: a new
database on the local server, by COPY; SQLite: a file, by executemany in big
transactions) with N subscribers and M ledger rows over 90 days (one daily digest a
day, sent over two hours; the last one still sending), with the triggers off while it
fills; then recounts the aggregates (``publisher db rebuild-aggregates``'s
:func:`publisher.store.aggregates.rebuild`, timed: what an operator waits for at that
size) and installs the triggers again.  Then it times every read of
:mod:`publisher.admin.figures` (``--calls`` each, median and p95), the overview as a
whole, and, for scale, the scans the aggregates replace (a count of subscribers by
status, of ledger rows by state), a few times each; then every page of the dashboard
over HTTP, signed in as an admin, the charts included (``--calls`` each: every GET
route behind the dashboard's gate, found in the app's router, its path parameters
filled from the seeded data: see ``bench/_dashboard_pages.py``), each against its goal,
PASS or FAIL.  Last, the send path's database work (claims and outcome batches of
``--send-rows`` rows, no SMTP) with the counting triggers, with them while another
process serves the dashboard and loads every one of its pages (but the downloads and the
digest previews) every ``--every`` seconds, and without them.  A download (the subscriber
export) is timed to its first byte: it streams for as long as the list is long.

Subscribers' domains: 75% at the big providers' domains, 25% spread over 2,000 others,
the long tail that makes per-domain rows (``domain_counts``) outnumber providers.

    .venv/bin/python bench/dashboard.py [--backend both|postgresql|sqlite] [--scale 1.0]
        [--calls 50] [--send-rows 100000] [--send-runs 4] [--every 1.0]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres] [--keep DIR]

Defaults are the issue's sizes: PostgreSQL 1,000,000 subscribers and 10,000,000 ledger rows,
SQLite 100,000 and 1,000,000; ``--scale 0.01`` makes all four a hundredth.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text

from _common import compile_project, cpu_busy, log, work_dir
from _dashboard_pages import Operator, add_operator, served
from publisher import clock, urls
from publisher.admin import figures
from publisher.app import Publisher
from publisher.config import Settings
from publisher.store import aggregates
from tests.support.admin import pages

OVERVIEW_GOAL_MS = 100.0
PAGE_GOAL_MS = 300.0
OVERVIEW_PATH = "/admin/"
CONTENT = Path(__file__).resolve().parents[1] / "content"  # the sample articles: the article pages' subject
DAYS = 90
BIG_DOMAINS = {  # share of all subscribers
    "gmail.com": 0.33, "outlook.com": 0.08, "hotmail.com": 0.07, "yahoo.com": 0.08, "icloud.com": 0.05,
    "gmx.de": 0.03, "web.de": 0.03, "orange.fr": 0.03, "aol.com": 0.02, "proton.me": 0.01, "comcast.net": 0.02,
}
TAIL_DOMAINS = 2_000
STATUSES = (("active", 0.80), ("pending", 0.05), ("unsubscribed", 0.10), ("bounced", 0.03), ("complained", 0.02))
SENT_SHARE, FAILED_SHARE = 0.97, 0.01  # of a finished digest's rows; the rest cancelled


@dataclass(frozen=True)
class Sizes:
    subscribers: int
    ledger: int


def _domains(rng: random.Random, count: int) -> list[str]:
    big, weights = list(BIG_DOMAINS), list(BIG_DOMAINS.values())
    tail_share = 1.0 - sum(weights)
    names = rng.choices(big + ["tail"], weights + [tail_share], k=count)
    return [name if name != "tail" else f"company{rng.randrange(TAIL_DOMAINS)}.example" for name in names]


def subscriber_rows(size: int, now: datetime, seed: int = 21) -> Iterator[tuple[Any, ...]]:
    """(id, email, status, created_at, confirmed_at, unsubscribed_at) per subscriber."""
    rng = random.Random(seed)
    domains = _domains(rng, size)
    statuses, weights = zip(*STATUSES)
    for i, status in enumerate(rng.choices(statuses, weights, k=size), start=1):
        created = now - timedelta(days=rng.uniform(0, 365))
        confirmed = None if status == "pending" else min(now, created + timedelta(minutes=rng.uniform(1, 600)))
        left = None if status in ("active", "pending") else now - timedelta(days=rng.uniform(0, DAYS))
        if left is not None and confirmed is not None and left < confirmed:
            left = confirmed
        yield i, f"reader{i}@{domains[i - 1]}", status, created, confirmed, left


def digest_days(now: datetime) -> list[datetime]:
    today = now.replace(hour=8, minute=0, second=0, microsecond=0)
    if today > now:
        today -= timedelta(days=1)
    return [today - timedelta(days=DAYS - 1 - d) for d in range(DAYS)]


def ledger_rows(sizes: Sizes, now: datetime, seed: int = 22) -> Iterator[tuple[Any, ...]]:
    """(digest_id, subscriber_id, state, attempts, updated_at) per ledger row: M/90 a day."""
    rng = random.Random(seed)
    days = digest_days(now)
    per_digest = sizes.ledger // len(days)
    for d, day in enumerate(days):
        digest_id = f"daily-{day:%Y%m%d}"
        last = d == len(days) - 1
        for k in range(per_digest):
            subscriber_id = (d * 7919 + k) % sizes.subscribers + 1
            at = day + timedelta(hours=2 * k / per_digest)
            roll = rng.random()
            if last and k > per_digest // 2:  # today's digest: half sent, the rest queued
                state = "pending" if roll < 0.9 else "deferred"
            else:
                state = "sent" if roll < SENT_SHARE else "failed" if roll < SENT_SHARE + FAILED_SHARE else "cancelled"
            yield digest_id, subscriber_id, state, 0 if state == "pending" else 1, min(at, now)


def digest_rows(now: datetime) -> list[tuple[Any, ...]]:
    days = digest_days(now)
    return [(f"daily-{day:%Y%m%d}", "daily", "[]", "sending" if d == len(days) - 1 else "finished", day,
             None if d == len(days) - 1 else day + timedelta(hours=2)) for d, day in enumerate(days)]


def node_rows(now: datetime) -> list[tuple[Any, ...]]:
    state = {"send_rate": 2400.0, "sent": 123456, "jobs": {"digests": (now + timedelta(minutes=7)).isoformat()},
             "errors": [{"at": now.isoformat(timespec="seconds"), "level": "WARNING", "message": "a warning"}]}
    return [(f"bench:{pid}:x", "bench", pid, "leader" if pid == 1 else "worker", now, now, json.dumps(state))
            for pid in (1, 2)]


def _chunks(rows: Iterator[tuple[Any, ...]], size: int = 50_000) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- filling -----------------------------------------------------------------------------------------------

async def fill_postgresql(url: str, sizes: Sizes, now: datetime) -> None:
    """COPY the rows in (asyncpg's copy_records_to_table), the triggers off."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            for chunk in _chunks(subscriber_rows(sizes.subscribers, now)):
                await conn.copy_records_to_table(
                    "subscribers",
                    records=[(i, email, "", status, "daily", "import", created, confirmed, left)
                             for i, email, status, created, confirmed, left in chunk],
                    columns=["id", "email", "name", "status", "cadence", "source", "created_at", "confirmed_at",
                             "unsubscribed_at"],
                )
            await conn.execute("SELECT setval(pg_get_serial_sequence('subscribers', 'id'), max(id)) FROM subscribers")
            await conn.copy_records_to_table(
                "digests", records=digest_rows(now),
                columns=["id", "cadence", "article_seqs", "status", "created_at", "finished_at"],
            )
            for n, chunk in enumerate(_chunks(ledger_rows(sizes, now), 200_000)):
                await conn.copy_records_to_table(
                    "deliveries", records=chunk,
                    columns=["digest_id", "subscriber_id", "state", "attempts", "updated_at"],
                )
                if n % 10 == 9:
                    log(f"  {(n + 1) * 200_000:,} ledger rows")
            await conn.copy_records_to_table(
                "nodes", records=node_rows(now), columns=["id", "host", "pid", "role", "started_at", "seen_at", "state"],
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def _sqlite_time(moment: datetime | None) -> str | None:
    """As SQLAlchemy stores a datetime in SQLite (naive UTC)."""
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def fill_sqlite(path: Path, sizes: Sizes, now: datetime) -> None:
    """executemany in big transactions, the triggers off."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            for chunk in _chunks(subscriber_rows(sizes.subscribers, now)):
                conn.executemany(
                    "INSERT INTO subscribers (id, email, name, status, cadence, source, created_at, confirmed_at, "
                    "unsubscribed_at) VALUES (?, ?, '', ?, 'daily', 'import', ?, ?, ?)",
                    [(i, email, status, _sqlite_time(c), _sqlite_time(f), _sqlite_time(u))
                     for i, email, status, c, f, u in chunk],
                )
            conn.executemany(
                "INSERT INTO digests (id, cadence, article_seqs, status, created_at, finished_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(*row[:4], _sqlite_time(row[4]), _sqlite_time(row[5])) for row in digest_rows(now)],
            )
            for chunk in _chunks(ledger_rows(sizes, now), 200_000):
                conn.executemany(
                    "INSERT INTO deliveries (digest_id, subscriber_id, state, attempts, updated_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(*row[:4], _sqlite_time(row[4])) for row in chunk],
                )
            conn.executemany(
                "INSERT INTO nodes (id, host, pid, role, started_at, seen_at, state) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(*row[:4], _sqlite_time(row[4]), _sqlite_time(row[5]), row[6]) for row in node_rows(now)],
            )
        conn.execute("ANALYZE")
    finally:
        conn.close()


# --- timing ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Timing:
    name: str
    median_ms: float
    p95_ms: float
    goal_ms: float | None  # p95 limit
    problem: str = ""  # why it was not timed (a page that did not answer 200, a parameter without a value)

    @property
    def verdict(self) -> str:
        if self.problem:
            return "FAIL"
        return "-" if self.goal_ms is None else "PASS" if self.p95_ms < self.goal_ms else "FAIL"


async def timed(name: str, call: Callable[[], Awaitable[object]], calls: int, goal_ms: float | None) -> Timing:
    await call()  # warm: the first call pays for connections and statement caches
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    p95 = seconds[min(len(seconds) - 1, round(0.95 * (len(seconds) - 1)))]
    return Timing(name, statistics.median(seconds) * 1000, p95 * 1000, goal_ms)


async def time_pages(publisher: Publisher, calls: int, values: dict[str, str]) -> list[Timing]:
    """Every page of the dashboard over HTTP, signed in as an admin: ``calls`` loads each
    (goal :data:`PAGE_GOAL_MS`, the overview :data:`OVERVIEW_GOAL_MS`)."""
    found = []
    async with served(publisher) as (app, base), Operator(base) as operator:
        await operator.sign_in()
        for page in pages(app, values):
            name = f"page {page.route}"
            goal = OVERVIEW_GOAL_MS if page.route == OVERVIEW_PATH else PAGE_GOAL_MS
            if page.path is None:
                found.append(Timing(name, 0.0, 0.0, goal, f"no value for {', '.join(page.missing)}"))
                continue
            if await operator.download(page.path):  # a file streamed whole: timed to its first byte
                name, load = f"{name} (first byte)", operator.first_byte
            else:
                load = operator.get
            status = await load(page.path)
            if status != 200:
                found.append(Timing(name, 0.0, 0.0, goal, f"{page.path} answered {status}"))
                continue
            found.append(await timed(name, lambda path=page.path, load=load: load(path), calls, goal))
    return found


async def page_values(publisher: Publisher, sizes: Sizes, now: datetime) -> dict[str, str]:
    """What fills the pages' path parameters (``bench/_dashboard_pages.PARAMETERS``): the
    newest seeded digest (being sent), the subscriber in the middle of the ids, a sample
    article (stored here: the fill seeds none), the bench's operator."""
    await publisher.intake.scan()
    article = next(iter(await publisher.intake.latest(1)), None)
    values = {"digest_id": f"daily-{digest_days(now)[-1]:%Y%m%d}", "subscriber_id": str(sizes.subscribers // 2 + 1),
              "id": await add_operator(publisher)}
    if article is not None:
        values["article_id"] = article.id
    return values


async def measure(publisher: Publisher, calls: int, values: dict[str, str]) -> list[Timing]:
    engine, providers, settings = publisher.engine, publisher.providers, publisher.settings
    now = clock.now()
    live = await figures.live_nodes(engine, now)
    reads: list[tuple[str, Callable[[], Awaitable[object]], float | None]] = [
        ("subscribers by status + 30 days", lambda: figures.subscribers(engine, now), PAGE_GOAL_MS),
        ("subscribers by status + 90 days", lambda: figures.subscribers(engine, now, days=90), PAGE_GOAL_MS),
        ("messages per hour, 48 h", lambda: figures.messages_per_hour(engine, now), PAGE_GOAL_MS),
        ("queue + unfinished digests", lambda: figures.queue(engine), PAGE_GOAL_MS),
        ("provider rates (breakers' window)", lambda: figures.provider_rates(engine, providers, settings, now),
         PAGE_GOAL_MS),
        ("live nodes", lambda: figures.live_nodes(engine, now), PAGE_GOAL_MS),
        ("next digests and articles", lambda: figures.upcoming(engine, settings, live, now), PAGE_GOAL_MS),
        ("overview (all of the above once)", lambda: figures.overview(engine, providers, settings, now),
         OVERVIEW_GOAL_MS),
    ]
    found = [await timed(name, call, calls, goal) for name, call, goal in reads]

    async def scan(sql: str) -> None:
        async with engine.connect() as conn:
            (await conn.execute(text(sql))).all()

    scans = [("scan: subscribers by status", "SELECT status, count(*) FROM subscribers GROUP BY status"),
             ("scan: ledger rows by state", "SELECT state, count(*) FROM deliveries GROUP BY state")]
    for name, sql in scans:
        found.append(await timed(name, lambda sql=sql: scan(sql), 3, None))
    return found + await time_pages(publisher, calls, values)


# --- sending while a dashboard refreshes --------------------------------------------------------------------

def bench_settings(url: str, work: Path) -> Settings:
    return Settings.model_validate({"database": {"url": url}, "storage": {"data_dir": str(work)},
                                    "content": {"dir": str(CONTENT)}, "site": {"title": "The Meridian Brief"}})


async def refresher(spec: str, every: float) -> None:
    """``--refresher``: an open dashboard, in a process of its own as the web server is:
    the dashboard served, signed in, and every one of its pages (not the downloads, nor the
    digest previews, which plan) loaded
    every ``every`` seconds, until killed.  ``spec`` is JSON: the database URL, the work directory and
    the pages' parameter values."""
    given = json.loads(spec)
    publisher = Publisher(bench_settings(given["url"], Path(given["work"])))
    await publisher.start()
    try:
        async with served(publisher) as (app, base), Operator(base) as operator:
            await operator.sign_in()
            # An open dashboard saves no file and rehearses no plan (a preview is an editor's click).
            paths = [page.path for page in pages(app, given["values"])
                     if page.path is not None and not page.path.startswith(urls.ADMIN_PREVIEW.path)
                     and not await operator.download(page.path)]
            for path in paths:
                await operator.get(path)
            print("ready", flush=True)
            while True:
                await asyncio.sleep(every)
                for path in paths:
                    await operator.get(path)
    finally:
        await publisher.close()


async def send_rate(publisher: Publisher, rows: int, label: str) -> float:
    """Ledger rows a delivery run claims and records as sent per second (500 a batch, the
    engine's claims and outcome batches, no SMTP): the database's part of sending."""
    from publisher.delivery import ledger
    from publisher.store.db import analyze_after_bulk_insert
    from publisher.store.schema import deliveries

    engine, digest = publisher.engine, f"bench-{label}"
    now = clock.now()
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO digests (id, cadence, article_seqs, status, created_at) "
                                "VALUES (:id, 'daily', '[]', 'sending', :now)"), {"id": digest, "now": now})
        await conn.execute(text("INSERT INTO deliveries (digest_id, subscriber_id, state, attempts, updated_at) "
                                "SELECT :id, id, 'pending', 0, :now FROM subscribers WHERE id <= :rows"),
                           {"id": digest, "now": now, "rows": rows})
    await analyze_after_bulk_insert(engine, deliveries, rows)
    claimant = ledger.Claimant(label, timedelta(minutes=5))
    started, after, done = time.perf_counter(), 0, 0
    while claimed := await ledger.claim(engine, digest, after, 500, clock.now(), claimant):
        ids = [row.subscriber_id for row in claimed]
        await ledger.record(engine, [], clock.now(), sent={digest: ids})
        after, done = ids[-1], done + len(ids)
    return done / (time.perf_counter() - started)


async def sending_cost(publisher: Publisher, spec: str, rows: int, every: float, runs: int) -> list[tuple[str, float]]:
    """The send path's rate with the counting triggers, alone and while another process
    loads every dashboard page every ``every`` seconds (the issue: "sending at full speed
    slows by < 5% while a dashboard is open and refreshing"), alternated ``runs`` times
    (medians); then once without the triggers, for their own cost."""
    alone, watched = [], []

    async def watched_run(run: int) -> float:
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--refresher", spec, "--every", str(every), stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            await process.stdout.readline()  # "ready": its start-up is not a dashboard refreshing
            return await send_rate(publisher, rows, f"watched{run}")
        finally:
            process.terminate()
            await process.wait()

    for run in range(runs):
        # Each run leaves the ledger bigger (and autovacuum busier): which goes first alternates.
        if run % 2:
            watched.append(await watched_run(run))
            alone.append(await send_rate(publisher, rows, f"alone{run}"))
        else:
            alone.append(await send_rate(publisher, rows, f"alone{run}"))
            watched.append(await watched_run(run))
    rates = [("triggers on", statistics.median(alone)),
             (f"triggers on, every page loaded every {every:g} s", statistics.median(watched))]
    async with publisher.engine.begin() as conn:
        await conn.run_sync(aggregates.drop)
    rates.append(("triggers off (no aggregates), one run", await send_rate(publisher, rows, "off")))
    async with publisher.engine.begin() as conn:
        await conn.run_sync(aggregates.rebuild)
        await conn.run_sync(aggregates.create)
    return rates


# --- one backend -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Options:
    calls: int
    send_rows: int  # 0: don't measure the send path
    send_runs: int
    every: float
    postgres_url: str
    screenshots: Path | None = None  # photograph the README's pages here (bench/_dashboard_shots.py)


async def run_backend(
    backend: str, sizes: Sizes, options: Options, work: Path
) -> tuple[list[Timing], list[tuple[str, float]]]:
    now = clock.now()
    database = f"publisher_bench_dashboard_{int(time.time())}"
    if backend == "postgresql":
        admin = await asyncpg.connect(options.postgres_url)
        await admin.execute(f'CREATE DATABASE "{database}" TEMPLATE template0')
        await admin.close()
        base = options.postgres_url.rsplit("/", 1)[0]
        url = f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{database}"
        raw_url = f"{base}/{database}"
    else:
        url = f"sqlite+aiosqlite:///{work / 'dashboard.db'}"
    settings = bench_settings(url, work)
    try:
        publisher = Publisher(settings)
        await publisher.start()  # migrates: tables and triggers
        try:
            async with publisher.engine.begin() as conn:
                await conn.run_sync(aggregates.drop)
            log(f"{backend}: filling {sizes.subscribers:,} subscribers and {sizes.ledger:,} ledger rows")
            started = time.perf_counter()
            if backend == "postgresql":
                await fill_postgresql(raw_url, sizes, now)
            else:
                await asyncio.to_thread(fill_sqlite, work / "dashboard.db", sizes, now)
            filled = time.perf_counter() - started
            started = time.perf_counter()
            async with publisher.engine.begin() as conn:
                await conn.run_sync(aggregates.rebuild)
                await conn.run_sync(aggregates.create)
            rebuilt = time.perf_counter() - started
            log(f"{backend}: filled in {filled:.1f} s, aggregates recounted in {rebuilt:.1f} s; timing")
            print(f"{backend}: {sizes.subscribers:,} subscribers, {sizes.ledger:,} ledger rows over {DAYS} days: "
                  f"filled in {filled:.1f} s; rebuild-aggregates {rebuilt:.1f} s")
            values = await page_values(publisher, sizes, now)
            timings = await measure(publisher, options.calls, values)
            if options.screenshots is not None:
                await photograph(publisher, values, options.screenshots)
            spec = json.dumps({"url": url, "work": str(work), "values": values})
            sending = [] if not options.send_rows else await sending_cost(
                publisher, spec, min(options.send_rows, sizes.subscribers), options.every, options.send_runs)
            return timings, sending
        finally:
            await publisher.close()
    finally:
        if backend == "postgresql":
            admin = await asyncpg.connect(options.postgres_url)
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}"')
            await admin.close()


async def photograph(publisher: Publisher, values: dict[str, str], directory: Path) -> None:
    from _dashboard_shots import take

    async with served(publisher) as (_app, base):
        written = await take(base, values, directory)
    log(f"screenshots: {', '.join(str(path) for path in written)}")


def report(backend: str, timings: list[Timing], sending: list[tuple[str, float]]) -> None:
    width = max(42, *(len(t.name) + 1 for t in timings))
    print(f"{'read or page (' + backend + ')':<{width}} {'median ms':>10} {'p95 ms':>8} {'goal p95':>9} "
          f"{'p95/goal':>9}  verdict")
    for t in timings:
        if t.problem:
            print(f"{t.name:<{width}} {'-':>10} {'-':>8} {t.goal_ms or 0:>9.0f} {'-':>9}  FAIL: {t.problem}")
            continue
        goal = f"{t.goal_ms:.0f}" if t.goal_ms is not None else "-"
        ratio = f"{t.p95_ms / t.goal_ms:.2f}" if t.goal_ms is not None else "-"
        print(f"{t.name:<{width}} {t.median_ms:>10.2f} {t.p95_ms:>8.2f} {goal:>9} {ratio:>9}  {t.verdict}")
    overview = next(t for t in timings if t.name.startswith("overview"))
    scans = [t for t in timings if t.name.startswith("scan")]
    failed = [t.name for t in timings if t.verdict == "FAIL"]
    page_count = sum(t.name.startswith("page ") for t in timings)
    print(f"goals (p95 < goal: every page {PAGE_GOAL_MS:.0f} ms, the overview {OVERVIEW_GOAL_MS:.0f} ms; "
          f"{page_count} pages, the charts among them): "
          f"{'PASS, all met' if not failed else 'FAIL: ' + ', '.join(failed)}; a scan of subscribers or the ledger "
          f"costs {max(s.median_ms for s in scans) / overview.median_ms:.0f}x the whole overview's reads")
    if sending:
        base = sending[0][1]
        print(f"send path ({backend}): ledger rows claimed and recorded as sent, 500 a batch, no SMTP")
        for name, rate in sending:
            print(f"  {name:<48} {rate:>10,.0f} rows/s  {rate / base:>6.2f}x")
        watched = sending[1][1] / base
        print(f"  goal: sending slows by < 5% while the dashboard refreshes: it slowed by {1 - watched:.1%} "
              f"({'PASS' if watched > 0.95 else 'FAIL'}; medians, noisy on a busy machine)")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("both", "postgresql", "sqlite"), default="both")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size (default 1.0: the issue's)")
    parser.add_argument("--calls", type=int, default=50, help="calls per read; figures are median and p95")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a server database to CREATE the bench database from (it is dropped at the end)")
    parser.add_argument("--keep", type=Path, help="keep the SQLite database in this directory")
    parser.add_argument("--send-rows", type=int, default=100_000,
                        help="ledger rows per send-path run (0: skip the send path; default 100,000)")
    parser.add_argument("--send-runs", type=int, default=4,
                        help="send-path runs alone and watched, alternated; figures are medians (default 4)")
    parser.add_argument("--every", type=float, default=1.0,
                        help="seconds between the open dashboard's loads of all its pages while sending")
    parser.add_argument("--screenshots", type=Path, metavar="DIR",
                        help="also photograph the README's dashboard pages into DIR (Chromium; e.g. docs/dashboard)")
    parser.add_argument("--refresher", metavar="JSON", help=argparse.SUPPRESS)  # the refreshing process
    args = parser.parse_args()
    if args.refresher:
        asyncio.run(refresher(args.refresher, args.every))
        return
    compile_project()
    busy = cpu_busy()
    if busy > 0.5:
        log(f"warning: {busy:.0%} of the CPUs are busy before the start: the figures will be high and noisy")
    sizes = {"postgresql": Sizes(round(1_000_000 * args.scale), round(10_000_000 * args.scale)),
             "sqlite": Sizes(round(100_000 * args.scale), round(1_000_000 * args.scale))}
    backends = ("postgresql", "sqlite") if args.backend == "both" else (args.backend,)
    started = time.perf_counter()
    for backend in backends:
        with work_dir(f"dashboard-{backend}", args.keep) as work:
            options = Options(args.calls, args.send_rows, args.send_runs, args.every, args.postgres_url,
                              args.screenshots)
            timings, sending = asyncio.run(run_backend(backend, sizes[backend], options, work))
        report(backend, timings, sending)
    print(f"benchmark wall time: {time.perf_counter() - started:.0f} s; CPUs busy before the start: {busy:.0%}")


if __name__ == "__main__":
    main()
