"""A scan the file watcher told of, against a large archive's stored rows: its CPU should follow the told files.

Issue 18's benchmark for the daemon's path from a new file to its article; it prints
figures, it is not a test.  For each ``--rows`` count it starts a site with the sample
articles on SQLite, scans it, adds that many synthetic ``source_files`` rows (files
that published an article each at the last scan; no file is written for them: a told
scan must not look at them), then times ``--samples`` told scans, each of one new
article (CPU of this process: ``Intake.scan_markdown``, the scan, its store and the
release of due articles, not the feeds' rebuild that follows in the daemon).
Goal: the told scan at the largest count within 2x of the smallest (it loads only the
rows the told paths can change, by indexed queries).

    .venv/bin/python bench/told_scan.py [--rows 10000 100000] [--samples 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from _common import cpu_busy, log, work_dir
from sqlalchemy import insert

from publisher.app import Publisher
from publisher.config import load_settings
from publisher.sources.markdown_dir import parser_fingerprint
from publisher.store.schema import source_files
from tests.support.sites import new_site
from tests.system.test_daemon import NEW_ARTICLE

GOAL_RATIO = 2.0  # the largest count's told scan over the smallest's
INSERT_BATCH = 5000


async def told_scan_cpu(root: Path, rows: int, samples: int) -> list[float]:
    """CPU seconds of ``samples`` told scans of one new file each, against ``rows`` stored rows."""
    new_site(root)
    settings = load_settings(root / "config.toml")
    service = Publisher(settings)
    await service.start()
    try:
        await service.intake.scan()
        directory = settings.markdown_dirs[0]
        source = f"markdown:{directory}"
        parsed_with = parser_fingerprint(settings.site.url, settings.content.limits)
        async with service.engine.begin() as conn:
            for start in range(0, rows, INSERT_BATCH):
                await conn.execute(insert(source_files), [
                    {"source": source, "path": f"archive/{n // 1000:03d}/a-{n:06d}.md", "size": 4000, "mtime_ns": 1,
                     "content_hash": "0" * 64, "parsed_with": parsed_with, "outcome": "article",
                     "article_id": f"archive-{n:06d}", "slug": f"archive-{n:06d}", "problems": None}
                    for n in range(start, min(rows, start + INSERT_BATCH))
                ])
        cpu = []
        for sample in range(samples):
            name = f"told-{sample}"
            path = directory / f"{name}.md"
            path.write_text(NEW_ARTICLE.replace("id: harbour-bridge-reopens", f"id: {name}")
                            .replace("tags:", f"slug: {name}\ntags:"), encoding="utf-8")
            started = time.process_time()
            result = await service.intake.scan_markdown(told={path})
            cpu.append(time.process_time() - started)
            assert [article.id for article in result.new] == [name], result
        return cpu
    finally:
        await service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    log(f"{cpu_busy():.0%} of the CPUs busy before the start: the figures are noisy above a few percent")
    medians = {}
    for rows in args.rows:
        with work_dir(f"told-scan-{rows}", args.keep) as root:
            cpu = asyncio.run(told_scan_cpu(root, rows, args.samples))
        medians[rows] = statistics.median(cpu)
        print(f"{rows:>9,} rows: told scan of one new file, CPU median {medians[rows] * 1000:.1f} ms "
              f"(samples: {', '.join(f'{c * 1000:.1f}' for c in cpu)})")
    smallest, largest = min(medians), max(medians)
    ratio = medians[largest] / medians[smallest]
    print(f"{largest:,} over {smallest:,} rows: {ratio:.2f}x (goal: at most {GOAL_RATIO:.0f}x)")


if __name__ == "__main__":
    main()
