"""The digest preview at scale: ``next_copy`` for a subscriber and for a cadence, against the page goal.

``publisher preview``, ``publisher send --test`` and the dashboard's ``/admin/preview``
(its framed email and its test send) make their copy with
:meth:`publisher.delivery.service.DeliveryService.next_copy`, planned in a rehearsal
rolled back.  This fills a database as ``bench/dashboard.py`` does (every subscriber
daily, none planned since: all of the 80% active are due, with the sample articles
new to them) and times, ``--calls`` each (median and p95): a chosen subscriber's copy,
a cadence's copy (a made-up reader's copy of the biggest digest due), and for scale
the whole rehearsal ``publisher send --dry-run`` makes (everyone planned).  On SQLite
it also times a one-row write made from another connection while a preview runs: the
wait for the write lock the rehearsal holds, which a send would also wait out.

    .venv/bin/python bench/preview.py [--backend both|postgresql|sqlite] [--scale 1.0] [--calls 20]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]

Default sizes: 100,000 subscribers (1,000,000 ledger rows) on both backends.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from sqlalchemy import text

from _common import compile_project, cpu_busy, log, work_dir
from dashboard import PAGE_GOAL_MS, Sizes, Timing, bench_settings, fill_postgresql, fill_sqlite, timed
from publisher import clock
from publisher.app import Publisher
from publisher.config import Settings
from publisher.store import aggregates
from subscribers.model import Cadence

GRACE_HOURS = 24 * 7  # today's daily slot is due whenever the bench runs


async def _reader(publisher: Publisher) -> str:
    """An active subscriber in the middle of the ids: their copy is the one timed."""
    async with publisher.engine.connect() as conn:
        email: str = await conn.scalar(text(
            "SELECT email FROM subscribers WHERE status = 'active' AND id >= "
            "(SELECT max(id) / 2 FROM subscribers) ORDER BY id LIMIT 1"
        ))
    return email


async def _dry_run(publisher: Publisher) -> int:
    """``publisher send --dry-run``'s rehearsal: everyone planned; the recipients it counts."""
    async with publisher.delivery.rehearse(Cadence.DAILY) as rehearsal:
        return sum(digest.recipients for digest in rehearsal.planned)


async def _blocked_write(publisher: Publisher, preview: Callable[[], Awaitable[object]]) -> float:
    """Milliseconds a one-row write from another connection waits while ``preview`` runs
    (started just after it); on SQLite, the write lock the rehearsal holds."""
    task = asyncio.create_task(preview())
    await asyncio.sleep(0.005)
    started = time.perf_counter()
    async with publisher.engine.begin() as conn:
        await conn.execute(text("UPDATE digests SET status = status WHERE id = 'none'"))
    waited = (time.perf_counter() - started) * 1000
    await task
    return waited


async def run_backend(backend: str, sizes: Sizes, calls: int, postgres_url: str, work: Path) -> list[Timing]:
    now = clock.now()
    database = f"publisher_bench_preview_{int(time.time())}"
    if backend == "postgresql":
        admin = await asyncpg.connect(postgres_url)
        await admin.execute(f'CREATE DATABASE "{database}" TEMPLATE template0')
        await admin.close()
        base = postgres_url.rsplit("/", 1)[0]
        url, raw_url = f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{database}", f"{base}/{database}"
    else:
        url = f"sqlite+aiosqlite:///{work / 'preview.db'}"
    settings = bench_settings(url, work)
    settings = Settings.model_validate(
        settings.model_dump(mode="json") | {"digest": {"grace_hours": GRACE_HOURS}}
    )
    try:
        publisher = Publisher(settings)
        await publisher.start()
        try:
            async with publisher.engine.begin() as conn:
                await conn.run_sync(aggregates.drop)
            log(f"{backend}: filling {sizes.subscribers:,} subscribers and {sizes.ledger:,} ledger rows")
            if backend == "postgresql":
                await fill_postgresql(raw_url, sizes, now)
            else:
                await asyncio.to_thread(fill_sqlite, work / "preview.db", sizes, now)
            async with publisher.engine.begin() as conn:
                await conn.run_sync(aggregates.rebuild)
                await conn.run_sync(aggregates.create)
            await publisher.intake.scan()  # the sample articles: new to every subscriber
            reader = await _reader(publisher)
            delivery = publisher.delivery
            recipients = await _dry_run(publisher)
            log(f"{backend}: {recipients:,} subscribers due; timing")
            found = [
                await timed("next_copy(subscriber)", lambda: delivery.next_copy(subscriber=reader), calls,
                            PAGE_GOAL_MS),
                await timed("next_copy(cadence daily)", lambda: delivery.next_copy(Cadence.DAILY), calls,
                            PAGE_GOAL_MS),
                await timed(f"send --dry-run rehearsal ({recipients:,} planned)", lambda: _dry_run(publisher),
                            max(3, calls // 4), None),
            ]
            if backend == "sqlite":
                for name, preview in (("subscriber", lambda: delivery.next_copy(subscriber=reader)),
                                      ("cadence", lambda: delivery.next_copy(Cadence.DAILY))):
                    waits = sorted([await _blocked_write(publisher, preview) for _ in range(max(3, calls // 4))])
                    found.append(Timing(f"a write waits, {name} preview running", waits[len(waits) // 2],
                                        waits[-1], None))
            return found
        finally:
            await publisher.close()
    finally:
        if backend == "postgresql":
            admin = await asyncpg.connect(postgres_url)
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}"')
            await admin.close()


def report(backend: str, sizes: Sizes, timings: list[Timing]) -> None:
    print(f"{backend}, {sizes.subscribers:,} subscribers (all daily):")
    print(f"  {'call':<48} {'median ms':>10} {'p95 ms':>9} {'goal p95':>9}  verdict")
    for t in timings:
        goal = f"{t.goal_ms:.0f}" if t.goal_ms is not None else "-"
        print(f"  {t.name:<48} {t.median_ms:>10.1f} {t.p95_ms:>9.1f} {goal:>9}  {t.verdict}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("both", "postgresql", "sqlite"), default="both")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the sizes (default 1.0: 100,000)")
    parser.add_argument("--calls", type=int, default=20, help="calls per figure; median and p95 (max when few)")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    compile_project()
    busy = cpu_busy()
    if busy > 0.5:
        log(f"warning: {busy:.0%} of the CPUs are busy before the start: the figures will be high and noisy")
    sizes = Sizes(round(100_000 * args.scale), round(1_000_000 * args.scale))
    for backend in ("postgresql", "sqlite") if args.backend == "both" else (args.backend,):
        with work_dir(f"preview-{backend}", None) as work:
            report(backend, sizes, asyncio.run(run_backend(backend, sizes, args.calls, args.postgres_url, work)))
    print(f"CPUs busy before the start: {busy:.0%}")


if __name__ == "__main__":
    main()
