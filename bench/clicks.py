"""What counting clicks (``[tracking] clicks = "aggregate"``) costs a digest and a reader.

It prints, with counting off and on (runs alternated, medians of 3):

* rendering an 8-article digest (the links are rewritten once per digest, here; 8 articles
  stay under ``[digest] max_message_bytes``, so no run shortens articles to fit);
* framing each subscriber's copy (should not change: the rewrite adds no personal value);
* the size of one copy;

and, through the real application on SQLite, the time one click takes (signature
check, one UPSERT, the 302) and the wall time of 200 clicks at once on one link.

    .venv/bin/python bench/clicks.py
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from publisher.app import Publisher
from publisher.config import Settings, TrackingSettings, load_settings
from publisher.delivery.service import framer
from publisher.mail.render import Personal
from publisher.templating import make_environment
from publisher.tracking.counts import click_counts
from publisher.tracking.links import ClickLinks
from subscribers.tokens import Tokens
from tests.support.articles import seed_like
from tests.support.sites import SAMPLE_CONTENT, write_config
from tests.support.web_client import web_client

DATE = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
RENDERS = 10
MESSAGES = 2_000
CLICKS = 300
AT_ONCE = 200


def digest_figures(settings: Settings) -> tuple[float, float, int]:
    """(ms per render, µs per message, bytes of a copy) of an 8-article digest under ``settings``."""
    env = make_environment(None)
    frame = framer(settings, env, Tokens("bench"))
    articles = [seed_like(id=f"a{i}", slug=f"a{i}", title=f"Article {i}") for i in range(8)]
    started = time.process_time()
    for _ in range(RENDERS):
        messages = frame(articles, "daily-bench", "daily", False, DATE)
    render_ms = (time.process_time() - started) / RENDERS * 1000
    people = [Personal(f"Reader {i}", f"r{i}@example.org", f"https://news.example.org/unsubscribe/tok{i}x.abc",
                       f"https://news.example.org/preferences/tok{i}x.abc") for i in range(MESSAGES)]
    started = time.process_time()
    for i, personal in enumerate(people):
        messages.wire(personal, i)
    message_us = (time.process_time() - started) / MESSAGES * 1e6
    return render_ms, message_us, len(messages.build(people[0], 0))


async def click_figures() -> tuple[float, float, int]:
    """(median ms per click, ms for AT_ONCE clicks at once, clicks counted) through the application."""
    root = Path(tempfile.mkdtemp(prefix="publisher-bench-"))
    shutil.copytree(SAMPLE_CONTENT, root / "content")
    extra = '[tracking]\nclicks = "aggregate"\nclick_rate_per_client = "1000000/minute"\n'
    publisher = Publisher(load_settings(write_config(root, extra), environ={}))
    await publisher.start()
    try:
        link = ClickLinks(publisher.tokens, publisher.settings.site.url).url("daily-bench", 1, "https://example.org/a")
        path = link.removeprefix(publisher.settings.site.url.rstrip("/"))
        times = []
        async with web_client(publisher) as client:
            for _ in range(CLICKS):
                started = time.perf_counter()
                response = await client.get(path, allow_redirects=False)
                await response.read()
                times.append(time.perf_counter() - started)
                assert response.status == 302
            started = time.perf_counter()
            responses = await asyncio.gather(*(client.get(path, allow_redirects=False) for _ in range(AT_ONCE)))
            at_once = time.perf_counter() - started
            assert all(r.status == 302 for r in responses)
        [(_, counted)] = await click_counts(publisher.engine, "daily-bench")
        return statistics.median(times) * 1000, at_once * 1000, counted
    finally:
        await publisher.close()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    os.environ.setdefault("PUBLISHER_SECRET_KEY", "bench")
    runs: dict[str, list[tuple[float, float, int]]] = {"off": [], "aggregate": []}
    for _ in range(3):
        for mode in runs:  # alternated, so a busy moment of the machine hits both
            runs[mode].append(digest_figures(Settings(tracking=TrackingSettings(clicks=mode))))  # type: ignore[arg-type]
    medians = {mode: [statistics.median(run[i] for run in values) for i in range(3)] for mode, values in runs.items()}
    for mode, (render_ms, message_us, size) in medians.items():
        print(f"clicks {mode:9}  render {render_ms:6.1f} ms/digest   frame {message_us:6.1f} µs/message   "
              f"copy {size:,.0f} bytes")
    off, on = medians["off"], medians["aggregate"]
    print(f"ratio aggregate/off: render {on[0] / off[0]:.2f}, frame {on[1] / off[1]:.2f}, copy {on[2] / off[2]:.2f}")
    per_click, at_once, counted = asyncio.run(click_figures())
    print(f"one click (SQLite): median {per_click:.2f} ms; {AT_ONCE} at once: {at_once:.0f} ms; "
          f"counted {counted} of {CLICKS + AT_ONCE}")


if __name__ == "__main__":
    main()
