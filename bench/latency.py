"""Latency of a new article: from its write to the feed and to the subscriber's mail server.

Issue 5's benchmark; it prints figures, it is not a test.  It starts ``publisher run``
as a subprocess on a temporary site (the sample articles, the default scan interval
of 60 s, SMTP delivery to an aiosmtpd server in this process that records when each
message arrives, one ``instant`` subscriber), waits for the first digest, then for
each of ``--articles`` new articles (20 by default), one at a time:

* **file**: writes a Markdown file into the content directory;
* **api**: POSTs the same kind of article to ``/api/articles``;

and measures the time from the write (or the POST) to (a) the article's entry in
``/feed.atom`` (polled every 20 ms) and (b) the digest carrying it accepted by the
SMTP server.  It prints the median and the 95th percentile of each; the goal is a
95th percentile under 5 s for both, with the default scan interval (so the daemon
must react to the file, not wait for its next scan).

    .venv/bin/python bench/latency.py [--articles 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path

from _common import free_port
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.sites import SAMPLE_CONTENT, write_config

GOAL_P95 = 5.0
TOKEN = "latency-benchmark-token"
POLL = 0.02


class Inbox:
    """An aiosmtpd handler that records when each message arrived."""

    def __init__(self) -> None:
        self.arrived: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            self.arrived.append((time.perf_counter(), bytes(envelope.original_content or b"")))
        return "250 2.0.0 Ok"

    def find(self, marker: bytes, after: float) -> float | None:
        with self._lock:
            return next((at for at, content in self.arrived if at >= after and marker in content), None)




def wait_for(condition: Callable[[], float | bool | None], timeout: float, what: str) -> float:
    """Poll ``condition`` every POLL seconds; the time it first held."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        value = condition()
        if value:
            return value if isinstance(value, float) else time.perf_counter()
        time.sleep(POLL)
    sys.exit(f"timed out after {timeout:.0f} s waiting for {what}")


def get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read()
    except (urllib.error.URLError, OSError):
        return b""


def in_feed_of(base: str, needle: bytes) -> bool:
    return needle in get(base + "/feed.atom")


def article(number: int, kind: str) -> tuple[str, str]:
    """``(marker, markdown)``: a new article whose title carries a unique marker."""
    marker = f"Latency probe {kind} {number:02d} {os.urandom(3).hex()}"
    text = f"""---
id: latency-{kind}-{number}-{marker[-6:]}
title: {marker}
date: 2026-11-25T08:00:00Z
tags: [bench]
---

Port volumes rose by four percent on the month, the authority said.
"""
    return marker, text


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=20, help="articles per way in (default 20)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="publisher-bench-latency-"))
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port(), server_hostname="localhost")
    smtp.start()
    web_port = free_port()
    process = None
    try:
        shutil.copytree(SAMPLE_CONTENT, work / "content")
        config = write_config(
            work, f'[server]\nport = {web_port}\n[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\n',
            transport="smtp",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUBLISHER_")}
        env |= {"PUBLISHER_SECRET_KEY": "latency-benchmark", "PUBLISHER_API_TOKEN": TOKEN}
        command = [sys.executable, "-m", "publisher", "--config", str(config)]
        subprocess.run([*command, "subscribers", "add", "reader@example.org", "--cadence", "instant"],
                       check=True, env=env, capture_output=True)
        log = (work / "daemon.log").open("wb")
        process = subprocess.Popen([*command, "run"], stdout=log, stderr=subprocess.STDOUT, env=env)
        base = f"http://127.0.0.1:{web_port}"
        wait_for(lambda: bool(get(base + "/healthz")), 60, "the daemon")
        wait_for(lambda: bool(inbox.arrived), 60, "the first digest (the sample articles)")

        results: dict[str, dict[str, list[float]]] = {}
        for kind in ("file", "api"):
            feed_times, mail_times = [], []
            for number in range(1, args.articles + 1):
                marker, text = article(number, kind)
                started = time.perf_counter()
                if kind == "file":
                    (work / "content" / f"latency-{number:02d}.md").write_text(text, encoding="utf-8")
                else:
                    request = urllib.request.Request(
                        base + "/api/articles", data=text.encode(), method="POST",
                        headers={"Content-Type": "text/markdown", "Authorization": f"Bearer {TOKEN}"},
                    )
                    with urllib.request.urlopen(request, timeout=10) as response:
                        json.loads(response.read())
                needle = marker.encode()
                in_feed = wait_for(partial(in_feed_of, base, needle), 60, f"{marker!r} in the feed")
                in_mail = wait_for(partial(inbox.find, needle, started), 60, f"{marker!r} by mail")
                feed_times.append(in_feed - started)
                mail_times.append(in_mail - started)
            results[kind] = {"feed": feed_times, "mail": mail_times}
            print(f"{kind}: {args.articles} articles measured", file=sys.stderr)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=60)
        smtp.stop()
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"Latency of a new article, {args.articles} per way in, default scan interval (60 s); seconds")
    print(f"{'way in':8} {'to':22} {'median':>8} {'p95':>8} {'max':>8}  goal p95 < {GOAL_P95:g} s")
    for kind, measured in results.items():
        for target, label in (("feed", "entry in /feed.atom"), ("mail", "accepted by SMTP")):
            values = measured[target]
            p95 = percentile(values, 0.95)
            verdict = "met" if p95 < GOAL_P95 else "NOT met"
            print(f"{kind:8} {label:22} {statistics.median(values):8.2f} {p95:8.2f} {max(values):8.2f}  {verdict}")


if __name__ == "__main__":
    main()
