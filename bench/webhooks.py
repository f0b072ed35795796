"""What the webhook outbox costs a change, and how fast the dispatcher empties it.

1. A subscriber's change (``service.create`` then ``service.leave``: two transactions,
   three events) on SQLite with no endpoint registered (the events are not written)
   against two endpoints registered (each event written with two delivery rows), in
   alternating rounds; the median of the rounds and their ratio.
2. The dispatcher sending the events of those changes to a local aiohttp receiver that
   acknowledges every POST: events per second (two endpoints, so two POSTs an event).

    .venv/bin/python bench/webhooks.py [--changes 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

from publisher import clock
from publisher.app import Publisher
from publisher.config import load_settings
from publisher.webhooks import outbox
from subscribers import service
from subscribers.model import Preferences, Source
from tests.support.sites import write_config

SECRET_ENV = "PUBLISHER_BENCH_WEBHOOK_SECRET"


async def changes(publisher: Publisher, count: int, prefix: str) -> float:
    """Seconds for ``count`` subscribers added and unsubscribed."""
    started = time.perf_counter()
    for n in range(count):
        added = await service.create(publisher.engine, f"{prefix}{n}@example.org", prefs=Preferences(),
                                     source=Source.CLI, confirmed=True, now=clock.now())
        await service.leave(publisher.engine, added.id, now=clock.now())
    return time.perf_counter() - started


async def main(count: int, rounds: int) -> None:
    os.environ[SECRET_ENV] = "bench"
    acknowledged = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal acknowledged
        await request.read()
        acknowledged += 1
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook/{n}", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    hooks = "".join(f'\n[[webhooks]]\nurl = "{server.make_url(f"/hook/{n}")}"\nsecret_env = "{SECRET_ENV}"\n'
                    for n in (1, 2))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        publisher = Publisher(load_settings(write_config(root, hooks), environ={SECRET_ENV: "bench"}))
        await publisher.start()
        wanted = {hook.url: [] for hook in publisher.settings.webhooks}
        times: dict[str, list[float]] = {"without": [], "with": []}
        sent = 0.0
        for r in range(rounds):
            for label in ("without", "with"):
                await outbox.register(publisher.engine, wanted if label == "with" else {})
                times[label].append(await changes(publisher, count, f"{label}{r}-"))
            started = time.perf_counter()
            await publisher.webhooks.send_due()
            sent += time.perf_counter() - started
        await publisher.close()
    await server.close()
    without, with_ = statistics.median(times["without"]), statistics.median(times["with"])
    events = 3 * count * rounds
    print(f"{count} subscribers added and unsubscribed (3 events each), median of {rounds} rounds:")
    print(f"  no endpoint registered: {without:.3f} s ({without / count * 1000:.2f} ms a subscriber)")
    print(f"  two endpoints:          {with_:.3f} s ({with_ / count * 1000:.2f} ms a subscriber)")
    print(f"  ratio: {with_ / without:.2f}")
    print(f"dispatch: {events} events, {acknowledged} POSTs acknowledged in {sent:.2f} s: "
          f"{events / sent:,.0f} events/s ({acknowledged / sent:,.0f} POSTs/s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.changes, args.rounds))
