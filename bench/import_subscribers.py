"""How long ``publisher subscribers import`` takes for 100,000 rows on SQLite.

The issue's budget: "100,000 rows import in well under a minute on SQLite".  This
writes a CSV like an operator's (about 1% invalid rows, 2% duplicates, a few
suppressed addresses, topics and timezones in most rows), imports it into a fresh
database through the CLI's code path (``parse_csv`` then ``import_rows``), and prints
the time of each step, rows per second and the ratio to the budget.

    .venv/bin/python bench/import_subscribers.py [--rows 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

from publisher import clock
from publisher.app import Publisher
from publisher.config import Settings
from subscribers import bulk, importer, service

BUDGET = 60.0  # seconds, from the issue
TOPICS = ["economy", "transport", "climate", "public-health", "geopolitics"]
ZONES = ["Europe/Paris", "America/New_York", "Asia/Tokyo", "UTC", ""]
SUPPRESSED = 200


def write_csv(path: Path, rows: int, seed: int = 7) -> None:
    """``rows`` data rows: mostly valid, ~1% invalid, ~2% repeats of earlier addresses."""
    rng = random.Random(seed)
    lines = ["email,name,cadence,topics,timezone"]
    for i in range(rows):
        roll = rng.random()
        if roll < 0.01:
            lines.append(f"broken-{i}.example.org,Broken {i},daily,,")
        elif roll < 0.03 and i:
            lines.append(f"user{rng.randrange(i)}@example.org,,weekly,,")
        else:
            topics = "|".join(rng.sample(TOPICS, rng.randrange(3)))
            cadence = rng.choice(["daily", "weekly", "instant", ""])
            lines.append(f"user{i}@example.org,Reader {i},{cadence},{topics},{rng.choice(ZONES)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


async def run(rows: int, root: Path) -> None:
    settings = Settings.model_validate(
        {
            "site": {"topics": TOPICS},
            "database": {"url": f"sqlite+aiosqlite:///{root / 'bench.db'}"},
            "storage": {"data_dir": str(root)},
        }
    )
    csv_path = root / "subscribers.csv"
    write_csv(csv_path, rows)
    publisher = Publisher(settings)
    await publisher.start()
    try:
        now = clock.now()
        for i in range(SUPPRESSED):  # addresses the import must skip
            await service.suppress(publisher.engine, f"user{i * 37}@example.org", now=now)

        started = time.perf_counter()
        known = await service.known_topics(publisher.engine, settings.site.topics)
        parsed = importer.parse_csv(
            csv_path.read_bytes(), known_topics=known, default_timezone=settings.digest.timezone,
            default_cadence=settings.subscribers.default_cadence,
        )
        parsed_at = time.perf_counter()
        report = await bulk.import_rows(publisher.engine, parsed, now=now)
        stored_at = time.perf_counter()
    finally:
        await publisher.close()

    parse_s, store_s, total_s = parsed_at - started, stored_at - parsed_at, stored_at - started
    print(f"rows in file      {rows:>10,}  ({csv_path.stat().st_size / 1e6:.1f} MB)")
    print(f"created           {report.created:>10,}")
    print(f"suppressed        {report.suppressed:>10,}")
    print(f"merged duplicates {report.merged:>10,}")
    print(f"invalid rows      {report.invalid_rows:>10,}")
    print(f"parse             {parse_s:>10.2f} s  {rows / parse_s:>10,.0f} rows/s")
    print(f"store             {store_s:>10.2f} s  {len(parsed.rows) / store_s:>10,.0f} rows/s")
    print(f"total             {total_s:>10.2f} s  {rows / total_s:>10,.0f} rows/s")
    print(f"budget            {BUDGET:>10.0f} s  ratio {total_s / BUDGET:.3f} (1.0 = the budget)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="Keep the CSV and the database in this directory.")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        asyncio.run(run(args.rows, args.keep))
        return
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args.rows, Path(tmp)))


if __name__ == "__main__":
    main()
