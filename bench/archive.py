"""A large archive: ``publisher build`` and the daemon with N Markdown articles, Pelican as the reference.

Issue 18's benchmark; it prints figures, it is not a test.  It generates ``--articles``
articles (10,000 by default; 50 tags, ~600 words, a "Key Takeaways" list and a fact
table each) in a temporary site, then measures, each as a subprocess (wall time, CPU
of user + system, peak RSS from ``wait4``):

* ``publisher build``: the first build, again with nothing changed (the median of 3), after one article
  is added, after one article is edited;
* ``publisher run`` (SMTP delivery to an aiosmtpd server in this process, one
  ``instant`` subscriber, a 5 s scan interval): the daemon's own scans with nothing
  changed (``publisher_scan_duration_seconds`` from ``/metrics``), its peak RSS, and for
  ``--samples`` new articles (20 by default), one at a time, the time from writing the
  file to its entry in ``/feed.atom`` (polled with a conditional GET every 20 ms) and
  to the digest carrying it accepted by the SMTP server (median and 95th percentile);
* Pelican (installed with ``markdown`` in its own venv under ``--cache``), building only
  the site-wide and per-tag Atom feeds of the same files with its content cache, the
  second (cached) run measured: the reference for ``build`` with nothing changed.

The goals (issue 18) are printed beside each figure.  On a shared machine the figures
are noisy: the CPU busy share before the start is printed.

    .venv/bin/python bench/archive.py [--articles 10000] [--samples 20] [--keep DIR]
        [--cache ~/.cache/publisher-bench] [--no-pelican] [--no-daemon]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import compile_project, cpu_busy, free_port, log, work_dir
from feeds import publisher_command, publisher_env
from latency import Inbox, percentile, wait_for

from tests.support.sites import write_config

TAGS = [f"topic{n:02d}" for n in range(50)]
WORDS = ("port harbour council budget rail freight energy grid water school hospital court election vote "
         "market price wage rent housing transit bridge road river coast storm harvest trade export import "
         "survey report minister mayor agency union strike contract tender audit figure share percent quarter "
         "month year rise fall record growth decline plan review forecast estimate data source").split()

# Issue 18's goals at 10,000 articles.
GOAL_SCAN = 0.3  # s, a daemon scan with nothing changed
GOAL_FEED = 1.0  # s, p95, a new article's file → its entry in /feed.atom
GOAL_SMTP = 2.0  # s, p95, → its digest accepted by SMTP
GOAL_PELICAN = 20.0  # build with nothing changed at least this many times faster than Pelican's cached build
GOAL_RSS = 150.0  # MB


def article_text(number: int, rng: random.Random, marker: str = "") -> str:
    """A ~600-word article with 2–3 tags, a takeaways list and a fact table; front matter
    that both publisher (YAML) and Pelican (Markdown's meta extension) read."""
    title = marker or f"Archive article {number}, {' '.join(rng.choices(WORDS, k=5))}"
    # Two hours apart from 2023 on; a probe (``marker``) is dated a minute ago, the newest.
    date = datetime.now(UTC) - timedelta(minutes=1) if marker else datetime(2023, 1, 1, 8, tzinfo=UTC) + timedelta(hours=2 * number)
    tags = ", ".join(rng.sample(TAGS, 3))

    def paragraph(words: int) -> str:
        return textwrap.fill(" ".join(rng.choices(WORDS, k=words)).capitalize() + ".", 100)

    body = "\n\n".join(paragraph(100) for _ in range(6))
    rows = "\n".join(f"| {rng.choice(WORDS)} | {rng.randint(1, 999)} | {rng.randint(-20, 20)}% |" for _ in range(4))
    return (
        f"---\nid: archive-{number}\ntitle: {title}\ndate: {date.isoformat()}\ntags: {tags}\n---\n\n"
        f"{paragraph(40)}\n\n## Key Takeaways\n\n- {paragraph(8)}\n- {paragraph(8)}\n- {paragraph(8)}\n\n"
        f"{body}\n\n### Figures of the month\n\n| Item | Count | Change |\n| --- | ---: | ---: |\n{rows}\n\n"
        f"Source: the {rng.choice(WORDS)} office.\n"
    )


def generate(content: Path, count: int) -> None:
    content.mkdir(parents=True)
    rng = random.Random(18)
    for number in range(count):
        folder = content / f"{number // 1000:03d}"  # a thousand files a folder, as archives are kept
        folder.mkdir(exist_ok=True)
        (folder / f"article-{number:06d}.md").write_text(article_text(number, rng), encoding="utf-8")
    past = time.time() - 3600  # written an hour ago, as an archive is: no file is "just written"
    for path in content.rglob("*.md"):
        os.utime(path, (past, past))


@dataclass(frozen=True)
class Measured:
    wall: float
    cpu: float
    rss_mb: float

    def row(self, label: str) -> str:
        return f"{label:34} {self.wall:9.2f} {self.cpu:9.2f} {self.rss_mb:9.0f}"


def run_measured(command: list[str], cwd: Path, env: dict[str, str]) -> Measured:
    """Run ``command`` to its end; its wall time, CPU (user + system) and peak RSS (its own, ``wait4``)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed (exit {process.returncode}):\n{output.decode(errors='replace')[-3000:]}")
    return Measured(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def measure_builds(site: Path, config: Path, count: int) -> dict[str, Measured]:
    env, build = publisher_env(), publisher_command(config, "build")
    figures = {}
    for label in ("first build", "nothing changed", "one article added", "one article edited"):
        if label == "one article added":
            (site / "content" / "added.md").write_text(article_text(count, random.Random(1)), encoding="utf-8")
        elif label == "one article edited":
            edited = site / "content" / "000" / "article-000007.md"
            edited.write_text(edited.read_text(encoding="utf-8").replace("Source: the", "Source: an"), encoding="utf-8")
        if label == "nothing changed":  # the goal's figure: the median of 3 runs (one alone varies by ±0.1 s)
            figures[label] = sorted((run_measured(build, site, env) for _ in range(3)), key=lambda m: m.wall)[1]
        else:
            figures[label] = run_measured(build, site, env)
        log(figures[label].row(f"build, {label}"))
    return figures


@dataclass
class Daemon:
    scan: float  # mean seconds of the interval scans with nothing changed
    feed: list[float]
    smtp: list[float]
    rss_mb: float


def scan_metric(base: str) -> tuple[float, float]:
    """(sum, count) of the daemon's ``publisher_scan_duration_seconds``."""
    text = get(base + "/metrics").decode()
    found = {name: float(value) for name, value in
             re.findall(r"^publisher_scan_duration_seconds_(sum|count) (\S+)$", text, re.MULTILINE)}
    return found.get("sum", 0.0), found.get("count", 0.0)


def get(url: str) -> bytes:
    """A GET's body (b"" when it fails)."""
    return conditional_get(url, "")[0]


def conditional_get(url: str, etag: str) -> tuple[bytes, str]:
    """A GET with ``If-None-Match: etag`` (none when empty): ``(body, its ETag)``, ``(b"", etag)`` on a 304."""
    request = urllib.request.Request(url, headers={"If-None-Match": etag} if etag else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read(), response.headers.get("ETag", "")
    except urllib.error.HTTPError as exc:
        return b"", etag if exc.code == 304 else ""
    except OSError:
        return b"", ""


def measure_daemon(site: Path, config: Path, samples: int, inbox: Inbox, base: str) -> Daemon:
    env = publisher_env()
    command = publisher_command(config)
    subprocess.run([*command, "subscribers", "add", "reader@example.org", "--cadence", "instant"],
                   check=True, env=env, capture_output=True, cwd=site)
    with (site / "daemon.log").open("wb") as out:
        process = subprocess.Popen([*command, "run"], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=site)
    try:
        wait_for(lambda: get(base + "/readyz") != b"", 120, "the daemon")
        wait_for(lambda: scan_metric(base)[1] >= 1, 120, "the daemon's first scan")
        first = scan_metric(base)
        wait_for(lambda: scan_metric(base)[1] >= first[1] + 3, 120, "three interval scans")
        last = scan_metric(base)
        scan = (last[0] - first[0]) / (last[1] - first[1])
        log(f"daemon scan, nothing changed: {scan:.3f} s (mean of {last[1] - first[1]:.0f})")
        feed_times, smtp_times = [], []
        etag = ""
        for number in range(samples):
            marker = f"Archive probe {number:02d} {os.urandom(3).hex()}"
            started = time.perf_counter()
            (site / "content" / f"probe-{number:02d}.md").write_text(
                article_text(10_000_000 + number, random.Random(number), marker), encoding="utf-8")
            needle = marker.encode()

            def in_feed() -> bool:
                nonlocal etag
                body, etag = conditional_get(base + "/feed.atom", etag)
                return needle in body

            feed_times.append(wait_for(in_feed, 120, f"{marker!r} in the feed") - started)
            smtp_times.append(wait_for(lambda: inbox.find(needle, started), 120, f"{marker!r} by mail") - started)
            log(f"  probe {number}: feed {feed_times[-1]:.2f} s, smtp {smtp_times[-1]:.2f} s")
        rss = _peak_rss_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=60)
    return Daemon(scan, feed_times, smtp_times, rss)


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


PELICAN_CONF = """
AUTHOR = "Bench"
SITENAME = "Archive"
SITEURL = "https://news.example.org"
TIMEZONE = "UTC"
DEFAULT_LANG = "en"
LOAD_CONTENT_CACHE = True
CACHE_CONTENT = True
CACHE_PATH = "cache"
FEED_DOMAIN = SITEURL
FEED_ALL_ATOM = "feed.atom"
TAG_FEED_ATOM = "tags/{slug}/feed.atom"
FEED_ALL_RSS = CATEGORY_FEED_ATOM = TRANSLATION_FEED_ATOM = AUTHOR_FEED_ATOM = AUTHOR_FEED_RSS = None
DIRECT_TEMPLATES = []
ARTICLE_SAVE_AS = PAGE_SAVE_AS = TAG_SAVE_AS = CATEGORY_SAVE_AS = AUTHOR_SAVE_AS = ""
ARCHIVES_SAVE_AS = AUTHORS_SAVE_AS = CATEGORIES_SAVE_AS = TAGS_SAVE_AS = INDEX_SAVE_AS = ""
ARTICLE_LANG_SAVE_AS = PAGE_LANG_SAVE_AS = DRAFT_SAVE_AS = DRAFT_LANG_SAVE_AS = ""
FEED_MAX_ITEMS = 50
"""


def measure_pelican(site: Path, cache: Path) -> Measured:
    venv = cache / "pelican-venv"
    if not (venv / "bin" / "pelican").exists():
        log(f"installing pelican and markdown into {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "pelican", "markdown"], check=True)
    project = site / "pelican"
    project.mkdir()
    (project / "pelicanconf.py").write_text(PELICAN_CONF, encoding="utf-8")
    command = [str(venv / "bin" / "pelican"), str(site / "content"), "-s", "pelicanconf.py", "-o", "output", "-q"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    first = run_measured(command, project, env)
    log(first.row("pelican, first (fills its cache)"))
    cached = run_measured(command, project, env)
    log(cached.row("pelican, cached"))
    return cached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=10_000, help="articles in the archive (default 10,000)")
    parser.add_argument("--samples", type=int, default=20, help="new articles timed in the daemon (default 20)")
    parser.add_argument("--keep", type=Path, help="keep the site in this directory")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "publisher-bench",
                        help="where Pelican's venv is kept between runs")
    parser.add_argument("--no-pelican", action="store_true", help="skip the Pelican reference")
    parser.add_argument("--no-daemon", action="store_true", help="skip the daemon's figures")
    args = parser.parse_args()
    compile_project()
    busy = cpu_busy()
    log(f"{busy:.0%} of the CPUs busy before the start" + (": the figures will be noisy" if busy > 0.1 else ""))
    inbox = Inbox()
    from aiosmtpd.controller import Controller

    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port(), server_hostname="localhost")
    smtp.start()
    try:
        with work_dir("archive", args.keep) as site:
            web_port = free_port()
            log(f"generating {args.articles:,} articles in {site}")
            generate(site / "content", args.articles)
            config = write_config(site, (
                f'[server]\nhost = "127.0.0.1"\nport = {web_port}\n'
                f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\n[scheduler]\nscan_interval = 5\n'
            ), transport="smtp")
            pelican = None if args.no_pelican else measure_pelican(site, args.cache)
            builds = measure_builds(site, config, args.articles)
            daemon = None if args.no_daemon else measure_daemon(
                site, config, args.samples, inbox, f"http://127.0.0.1:{web_port}")
    finally:
        smtp.stop()
    report(args, busy, builds, daemon, pelican)


def report(args: argparse.Namespace, busy: float, builds: dict[str, Measured], daemon: Daemon | None,
           pelican: Measured | None) -> None:
    def verdict(met: bool) -> str:
        return "met" if met else "NOT met"

    print()
    print(f"Archive of {args.articles:,} articles (50 tags, ~600 words, takeaways and a table each); "
          f"{busy:.0%} of the CPUs busy before the start")
    print(f"{'':34} {'wall s':>9} {'CPU s':>9} {'RSS MB':>9}")
    for label, figures in builds.items():
        print(figures.row(f"publisher build, {label}"))
    if pelican:
        print(pelican.row("pelican feeds only, cached"))
    print()
    unchanged = builds["nothing changed"]
    print(f"peak RSS of build: {max(m.rss_mb for m in builds.values()):.0f} MB  "
          f"(goal < {GOAL_RSS:g} MB: {verdict(all(m.rss_mb < GOAL_RSS for m in builds.values()))})")
    if pelican:
        ratio = pelican.wall / unchanged.wall
        print(f"build with nothing changed vs Pelican cached: {ratio:.1f}x faster "
              f"(goal >= {GOAL_PELICAN:g}x: {verdict(ratio >= GOAL_PELICAN)})")
    if daemon:
        print(f"daemon scan, nothing changed: {daemon.scan:.3f} s (goal < {GOAL_SCAN:g} s: {verdict(daemon.scan < GOAL_SCAN)})")
        print(f"daemon peak RSS: {daemon.rss_mb:.0f} MB (goal < {GOAL_RSS:g} MB: {verdict(daemon.rss_mb < GOAL_RSS)})")
        for label, values, goal in (("new article -> /feed.atom", daemon.feed, GOAL_FEED),
                                    ("new article -> SMTP", daemon.smtp, GOAL_SMTP)):
            p95 = percentile(values, 0.95)
            print(f"{label:26} median {statistics.median(values):6.2f} s  p95 {p95:6.2f} s  "
                  f"(goal p95 < {goal:g} s over {len(values)}: {verdict(p95 < goal)})")


if __name__ == "__main__":
    main()
