"""``publisher report`` at scale, and the cost of naming a recipient's mailbox provider (issue 19).

It prints figures, it is not a test.  On a SQLite store:

1. a digest of N messages (default 20,000 and 200,000) to readers at the large providers
   and at ``--domains`` other domains, in mixed states (a tenth failed or deferred with
   replies, some bounced, complained or left): the time of its report (median of
   ``--runs``), the rows per second, the Python memory the report allocated at its peak
   (tracemalloc, a run of its own: the rows are streamed, so it follows the number of
   domains, not of messages), and the ratio of the two sizes' times;
2. the count by provider that a ``/metrics`` scrape makes of the same (median of ``--runs``);
3. :meth:`Providers.of` per call, against a bare ``dict.get`` on the domain (the floor).

Run from the repository:  ``.venv/bin/python bench/report.py`` (about a minute here).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import cpu_busy, log, work_dir
from sqlalchemy import insert, update

from publisher.app import Publisher
from publisher.config import load_settings
from publisher.delivery.providers import Providers
from publisher.store.schema import deliveries, digests, subscribers
from tests.support.delivery_sites import insert_subscribers
from tests.support.sites import write_config

BIG = ("gmail.com",) * 40 + ("outlook.com", "hotmail.co.uk", "live.fr") * 6 + ("yahoo.com", "aol.com") * 5 + (
    "icloud.com", "web.de", "gmx.de", "proton.me", "mail.ru") * 2
REPLIES = ("550 5.1.1 <{}>: Recipient address rejected: User unknown", "552 5.2.2 Mailbox full",
           "421 4.7.0 Try again later", "554 5.7.1 Message rejected as spam")
DIGEST = "daily-20260101T080000-bench"


def addresses(n: int, domains: int, rng: random.Random) -> list[str]:
    """``n`` addresses: half at the large providers, half at ``domains`` other domains."""
    return [f"r{i}@{rng.choice(BIG) if i % 2 else f'd{rng.randrange(domains)}.example'}" for i in range(n)]


async def plan(publisher: Publisher, n: int, domains: int) -> None:
    rng = random.Random(n)
    ids = list((await insert_subscribers(publisher.engine, addresses(n, domains, rng))).items())
    now = datetime.now(UTC)
    planned = now - timedelta(hours=2)
    async with publisher.engine.begin() as conn:
        await conn.execute(insert(digests).values(id=DIGEST, cadence="daily", article_seqs="[]", status="sending",
                                                  created_at=planned))
        rows = []
        for address, sid in ids:
            roll = rng.random()
            state = "sent" if roll < 0.85 else "failed" if roll < 0.92 else "deferred" if roll < 0.95 else "pending"
            reply = rng.choice(REPLIES).format(address) if state in ("failed", "deferred") else None
            rows.append({"digest_id": DIGEST, "subscriber_id": sid, "state": state, "last_reply": reply,
                         "attempts": 1, "updated_at": planned})
        for start in range(0, len(rows), 5000):
            await conn.execute(insert(deliveries), rows[start:start + 5000])
        for status, share in (("unsubscribed", 0.01), ("complained", 0.001), ("bounced", 0.02)):
            chosen = [sid for _address, sid in rng.sample(ids, int(n * share))]
            for start in range(0, len(chosen), 5000):
                await conn.execute(update(subscribers).where(subscribers.c.id.in_(chosen[start:start + 5000]))
                                   .values(status=status, unsubscribed_at=now))


async def measure(config: Path, n: int, domains: int, runs: int) -> tuple[float, float, float]:
    """The report's median time in seconds, its peak allocated memory in MB, and the median
    time of the count by provider that ``/metrics`` makes."""
    publisher = Publisher(load_settings(config, environ={}))
    await publisher.start()
    try:
        log(f"planning a digest of {n:,} messages ...")
        await plan(publisher, n, domains)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            report = await publisher.digest_report(DIGEST)
            times.append(time.perf_counter() - started)
        assert report is not None and report.states["planned"] == n
        tracemalloc.start()
        await publisher.digest_report(DIGEST)
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        counts = []
        for _ in range(runs):
            started = time.perf_counter()
            await publisher.open_by_provider()
            counts.append(time.perf_counter() - started)
        return statistics.median(times), peak, statistics.median(counts)
    finally:
        await publisher.close()


def provider_cost(calls: int) -> tuple[float, float]:
    """Nanoseconds per :meth:`Providers.of` call and per bare ``dict.get`` of the domain."""
    table = Providers({"corp": ["corp.example", "*.corp.example"]})
    rng = random.Random(1)
    sample = [*(f"r@{d}" for d in BIG), "r@corp.example", "r@eu.corp.example", "r@d1.example", "r@x.co.uk"]
    mixed = [rng.choice(sample) for _ in range(calls)]
    exact = {"gmail.com": "google"}
    started = time.perf_counter()
    for address in mixed:
        table.of(address)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    for address in mixed:
        exact.get(address.rpartition("@")[2], "other")
    floor = time.perf_counter() - started
    return ours / calls * 1e9, floor / calls * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--domains", type=int, default=5_000, help="other domains than the large providers'")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="keep the work directories here")
    args = parser.parse_args()
    print(f"machine busy before the runs: {cpu_busy():.0%}")
    figures = {}
    for n in args.sizes:
        with work_dir("report", args.keep) as work:
            (work / "content").mkdir()
            config = write_config(work)
            figures[n] = asyncio.run(measure(config, n, args.domains, args.runs))
        seconds, peak, metric = figures[n]
        print(f"report of {n:>9,} messages: {seconds:6.3f} s (median of {args.runs}), "
              f"{n / seconds:>10,.0f} rows/s, peak allocated {peak:6.1f} MB; "
              f"/metrics' count by provider {metric:6.3f} s")
    if len(args.sizes) > 1:
        small, large = min(args.sizes), max(args.sizes)
        print(f"time ratio {large:,} / {small:,} messages: {figures[large][0] / figures[small][0]:.1f} "
              f"(size ratio {large / small:.0f}); memory ratio {figures[large][1] / figures[small][1]:.1f}")
    ours, floor = provider_cost(1_000_000)
    print(f"Providers.of: {ours:.0f} ns a call; a bare dict.get of the domain: {floor:.0f} ns "
          f"(ratio {ours / floor:.1f})")


if __name__ == "__main__":
    sys.exit(main())
