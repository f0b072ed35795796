"""Does the time ``POST /subscribe`` takes tell whether an address is already subscribed?

The page's bytes are identical for known and unknown addresses (a test checks that);
this measures the other channel, the response time.  It signs up, alternately, an
address that is an active subscriber and a new one, through the real application on
a real socket, lets the background work finish between requests (so one request's
email does not slow the next), and prints the median and 90th percentile of each
and their ratio (1.0: indistinguishable).

    .venv/bin/python bench/signup_timing.py [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from publisher.app import Publisher
from publisher.config import load_settings
from tests.support.sites import SAMPLE_CONTENT, write_config
from tests.support.people import add_subscriber
from tests.support.web_client import Visitor, web_client

LIMITS = '[subscribers]\nsignup_rate_per_client = "1000000/hour"\nsignup_rate_per_address = "1000000/hour"\n'


async def measure(requests: int) -> dict[str, list[float]]:
    root = Path(tempfile.mkdtemp(prefix="publisher-bench-"))
    shutil.copytree(SAMPLE_CONTENT, root / "content")
    publisher = Publisher(load_settings(write_config(root, LIMITS), environ={}))
    await publisher.start()
    await publisher.intake.scan()
    await add_subscriber(publisher.engine, "known@example.org")
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    try:
        async with web_client(publisher) as client:
            visitor = Visitor(client)
            await visitor.get("/subscribe")
            for i in range(requests):
                for kind, address in (("known", "known@example.org"), ("unknown", f"new{i}@example.org")):
                    start = time.perf_counter()
                    response = await visitor.post("/subscribe", {"email": address, "cadence": "daily"})
                    await response.read()
                    times[kind].append(time.perf_counter() - start)
                    assert response.status == 200
                    await publisher.tasks.settle(30)
    finally:
        await publisher.close()
        shutil.rmtree(root, ignore_errors=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    os.environ.setdefault("PUBLISHER_SECRET_KEY", "bench")
    times = asyncio.run(measure(args.requests))
    medians = {}
    for kind, values in times.items():
        ordered = sorted(values)
        medians[kind] = statistics.median(ordered)
        print(f"{kind:8} median {medians[kind] * 1000:6.2f} ms   p90 {ordered[int(len(ordered) * 0.9)] * 1000:6.2f} ms")
    print(f"ratio known/unknown (medians): {medians['known'] / medians['unknown']:.3f}")


if __name__ == "__main__":
    main()
