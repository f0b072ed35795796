"""Start-up and memory: what a command costs before and around its work (issue 18).

It prints figures, it is not a test.  Each figure is a fresh ``python -m publisher``
process (its own peak RSS from GNU time), on a site with the sample articles and a
SQLite store:

1. importing the CLI (``import publisher.cli``): wall time and peak RSS, median of ``--runs``;
2. ``publisher --help``: wall time, median of ``--runs``;
3. an empty ``send`` (the store migrated and scanned, nothing due): wall time, median
   of ``--runs``, and peak RSS;
4. a ``send`` of one digest to N active ``instant`` subscribers (default 20,000 and
   200,000, inserted with SQL), over ``--connections`` SMTP sessions to Postfix's
   ``smtp-sink`` (installed with apt-get when missing): peak RSS, wall time, and the
   time from the process's start to the first message the sink accepted, and how much of
   that is past an empty send (the plan's and the delivery's share, not start-up).

Run from the repository:  ``.venv/bin/python bench/startup.py`` (about 3 minutes here;
``--subscribers 20000`` alone for a quick look).  Figures taken on a busy machine are
noisy: the report prints how busy it was before the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from _common import compile_project, cpu_busy, log, work_dir
from _postfix import TIME, SmtpSink, ensure_tools

from publisher.config import load_settings
from publisher.store.db import create_engine
from tests.support.delivery_sites import insert_subscribers
from tests.support.sites import SAMPLE_CONTENT, write_config

GOAL_RSS_MB = 64.0  # peak RSS of `send`, flat from 20,000 to 200,000 subscribers
GOAL_EMPTY_SEND_S = 0.4
GOAL_FIRST_MESSAGE_S = 0.5  # at 200,000 subscribers
ENV = os.environ | {"PUBLISHER_SECRET_KEY": "bench-startup-key", "PUBLISHER_LOG_LEVEL": "WARNING"}


@dataclass(frozen=True)
class Process:
    """One finished process: its wall time (s), peak RSS (MB), exit status and output."""

    wall: float
    rss_mb: float
    returncode: int
    output: str


def run(args: list[str], cwd: Path, on_start: threading.Event | None = None) -> Process:
    """Run ``args`` to the end under GNU time, for its own peak RSS (a child forked from
    this process would count this one's memory until it execs)."""
    rss_file = cwd / ".peak-rss"
    started = time.perf_counter()
    with subprocess.Popen([TIME, "-f", "%M", "-o", str(rss_file), *args], cwd=cwd, env=ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL) as child:
        if on_start is not None:
            on_start.set()
        output, _ = child.communicate()
    wall = time.perf_counter() - started
    rss_kb = int(rss_file.read_text().split()[-1])
    return Process(wall, rss_kb / 1024, child.returncode, output.decode(errors="replace"))


def publisher(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "publisher", "--config", str(config), *args]


def medians(runs: list[Process]) -> tuple[float, float]:
    """Median wall time and median peak RSS of ``runs``, which must all have succeeded."""
    for done in runs:
        if done.returncode != 0:
            sys.exit(f"a run failed ({done.returncode}):\n{done.output}")
    return statistics.median(r.wall for r in runs), statistics.median(r.rss_mb for r in runs)


def write_site(root: Path, sink_port: int, connections: int) -> Path:
    """The sample content and a config sending over SMTP to ``sink_port`` (the test sites' SQLite store)."""
    root.mkdir()
    shutil.copytree(SAMPLE_CONTENT, root / "content")
    extra = f'[smtp]\nhost = "127.0.0.1"\nport = {sink_port}\ntls = "none"\n'
    return write_config(root, extra, transport="smtp", concurrency=connections)


async def add_subscribers(config: Path, count: int) -> None:
    settings = load_settings(config, environ={})
    engine = create_engine(settings.database.url)
    try:
        await insert_subscribers(engine, [f"reader{i}@bench.example.org" for i in range(count)])
    finally:
        await engine.dispose()


def first_message(sink: SmtpSink, started: threading.Event, done: threading.Event, found: list[float]) -> None:
    """Wait for the process's start, then note when the sink has accepted its first message."""
    started.wait()
    start = time.perf_counter()
    while not done.is_set():
        if sink.counters()[1] >= 1:
            found.append(time.perf_counter() - start)
            return
        time.sleep(0.002)


@dataclass(frozen=True)
class ScaledSend:
    subscribers: int
    rss_mb: float
    wall: float
    first_message: float | None
    accepted: int


def scaled_send(work: Path, sink_exe: str, count: int, connections: int) -> ScaledSend:
    """One send of one digest to ``count`` subscribers, to a fresh sink."""
    sink = SmtpSink(sink_exe, work / f"sink-{count}.txt")
    try:
        config = write_site(work / f"site-{count}", sink.port, connections)
        prepared = run(publisher(config, "send"), config.parent)  # migrate and scan: no subscriber yet
        medians([prepared])
        log(f"inserting {count:,} subscribers...")
        asyncio.run(add_subscribers(config, count))
        log(f"sending to {count:,} subscribers...")
        before = sink.counters()[1]
        started, done, found = threading.Event(), threading.Event(), []
        watcher = threading.Thread(target=first_message, args=(sink, started, done, found), daemon=True)
        watcher.start()
        sent = run(publisher(config, "send"), config.parent, on_start=started)
        done.set()
        watcher.join()
        medians([sent])
        accepted = sink.settled_counters(before + count)[1] - before
        return ScaledSend(count, sent.rss_mb, sent.wall, found[0] if found else None, accepted)
    finally:
        sink.close()


def verdict(value: float | None, goal: float) -> str:
    return "n/a" if value is None else ("meets" if value < goal else "misses")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each start-up figure (median)")
    parser.add_argument("--subscribers", type=int, nargs="*", default=[20_000, 200_000],
                        help="subscriber counts of the scaled sends")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--keep", type=Path, help="keep the sites and stores here")
    args = parser.parse_args()
    sink_exe, _ = ensure_tools()
    compile_project()
    busy = cpu_busy()
    with work_dir("startup", args.keep) as work:
        probe = ("import time; t = time.perf_counter(); import publisher.cli; "
                 "print(time.perf_counter() - t)")
        imports = [run([sys.executable, "-c", probe], work) for _ in range(args.runs)]
        import_wall = statistics.median(float(r.output.split()[-1]) for r in imports)
        _, import_rss = medians(imports)
        help_wall, help_rss = medians([run([sys.executable, "-m", "publisher", "--help"], work)
                                       for _ in range(args.runs)])
        config = write_site(work / "empty", 9, args.connections)  # port 9: nothing is ever sent
        medians([run(publisher(config, "send"), config.parent)])  # migrate and scan once
        empty_wall, empty_rss = medians([run(publisher(config, "send"), config.parent) for _ in range(args.runs)])
        scaled = [scaled_send(work, sink_exe, count, args.connections) for count in args.subscribers]

    print(f"publisher start-up and memory (SQLite; CPUs {busy:.0%} busy before the runs; "
          f"medians of {args.runs}; peak RSS of the process itself)")
    print(f"  import publisher.cli      {import_wall:6.3f} s   {import_rss:6.1f} MB")
    print(f"  publisher --help          {help_wall:6.3f} s   {help_rss:6.1f} MB")
    print(f"  empty send                {empty_wall:6.3f} s   {empty_rss:6.1f} MB   "
          f"goal < {GOAL_EMPTY_SEND_S} s: {verdict(empty_wall, GOAL_EMPTY_SEND_S)}")
    for s in scaled:
        # Past an empty send: the plan's and the delivery's share, start-up (imports, scan) left out.
        first = "-" if s.first_message is None else (
            f"{s.first_message:.3f} s ({s.first_message - empty_wall:+.3f} s past an empty send)"
        )
        print(f"  send to {s.subscribers:>9,}       peak {s.rss_mb:6.1f} MB (goal < {GOAL_RSS_MB:.0f}: "
              f"{verdict(s.rss_mb, GOAL_RSS_MB)}), {s.wall:7.1f} s, {s.accepted:,} accepted, first message {first}"
              + (f" (goal < {GOAL_FIRST_MESSAGE_S} s: {verdict(s.first_message, GOAL_FIRST_MESSAGE_S)})"
                 if s.subscribers >= 200_000 else ""))
    if len(scaled) > 1:
        growth = scaled[-1].rss_mb - scaled[0].rss_mb
        print(f"  peak RSS from {scaled[0].subscribers:,} to {scaled[-1].subscribers:,} subscribers: {growth:+.1f} MB")


if __name__ == "__main__":
    main()
