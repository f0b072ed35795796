"""Delivery throughput: publisher's ``send`` against the wire, aiosmtplib's ceiling and a naive sender.

Issue 4's benchmark, extended by issue 18; it prints figures, it is not a test.  It starts Postfix's
``smtp-sink`` on loopback (installing Postfix with apt-get when it is missing), makes
a site with the sample articles (a digest with takeaways and fact tables: about 20 KB
of HTML, 28 KB as a quoted-printable MIME message; the report prints the size) and N
active ``instant`` subscribers, then measures, round-robin for ``--runs`` rounds, each
method sending N messages over ``--connections`` sessions (publisher's
``[delivery] concurrency``):

1. ``smtp-source``, Postfix's C client, sending publisher's own digest message (one
   subscriber's copy, captured through a Maildir outbox): the wire limit here;
2. aiosmtplib's raw ceiling: the same pre-built bytes through ``SMTP.sendmail``,
   nothing else, on the event loop publisher's ``send`` runs on (the issue's
   reference for the cost of everything publisher adds);
3. publisher's own transport on the same pre-built bytes, classic: ``SmtpTransport``
   skips ``sendmail``'s passes over the body and its address parsing (see
   :mod:`publisher.mail.session`), but given bytes it puts them in wire form (line
   ends, dot-stuffing) per message, and a second ``smtp-sink`` started with ``-p``
   offers no PIPELINING: MAIL, RCPT and DATA each wait for their reply (the
   transport of issue 4);
4. publisher's transport pipelined (RFC 2920, the sink offers it) on the pre-built
   message already in wire form (a ``WireMessage``, as ``send`` builds a digest's
   copies): the ceiling of publisher's sending, and ``send`` beside it shows what
   personalization, ledger, rate control and start-up really cost;
5. a naive reference on that loop: per subscriber, sign the links, render the
   Jinja2 templates, inline the CSS, build an ``EmailMessage``, ``send_message`` it
   (on ``--naive-messages`` subscribers, 5,000 by default: its rate does not depend
   on how many there are, and all of them would take minutes);
6. ``publisher --config … send`` as a subprocess on a fresh copy of the site, timed
   from spawn to exit (start-up, scan, plan, render, delivery, ledger; nothing is
   subtracted; an empty run shows the start-up part), its peak RSS from GNU time.

Messages per second are the messages smtp-sink counted as accepted over the wall
time; the figure of each method is the median of its runs.  Publisher's peak RSS is
also measured at 10x the subscribers (one run) unless ``--no-rss-scaling``.

    .venv/bin/python bench/delivery.py [--subscribers 20000] [--connections 8] [--runs 3]
        [--naive-messages 5000] [--loop auto|asyncio|uvloop] [--no-rss-scaling] [--keep DIR]

For the big run: ``--subscribers 1000000 --runs 1 --no-rss-scaling``.  To measure
another checkout, e.g. the last commit (``git archive HEAD | tar -x -C /tmp/head``),
put it first on the path: ``PYTHONPATH=/tmp/head .venv/bin/python bench/delivery.py``
(the subprocesses inherit it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from _common import Runs, compile_project, cpu_busy, log, work_dir
from _postfix import TIME, SinkMark, SmtpSink, ensure_tools, smtp_source_command
from _senders import (
    LOOPS,
    NaiveDigest,
    run_on,
    send_naive,
    send_raw,
    send_transport,
    uvloop_available,
)

import publisher
from publisher.config import Settings, load_settings
from publisher.mail.wire import WireMessage
from publisher.sources.markdown_dir import scan_directory
from publisher.store.db import create_engine, upgrade
from publisher.templating import make_environment
from subscribers.tokens import Tokens
from tests.support.sites import SAMPLE_CONTENT, write_config
from tests.support.delivery_sites import insert_subscribers

SECRET_KEY = "delivery-benchmark-secret"
FROM_ADDRESS = "brief@news.example.org"
ENVELOPE_TO = "reader@example.org"  # smtp-source's and the raw ceiling's fixed recipient

# Issue 4's goals.
RAW_RATIO = 0.9
NAIVE_RATIO = 6.0
RSS_LIMIT_MB = 120.0
RSS_GROWTH = 0.10
# Issue 18's goals: publisher send against the wire and against its own transport.
SOURCE_RATIO = 0.6
PIPELINED_RATIO = 0.9

SMTP_SOURCE = "smtp-source"
RAW = "raw"
TRANSPORT = "transport"
PIPELINED = "pipelined"
NAIVE = "naive"
PUBLISHER = "publisher"






METHODS = (SMTP_SOURCE, RAW, TRANSPORT, PIPELINED, NAIVE, PUBLISHER)


# --- the site -------------------------------------------------------------------------


def make_site(site: Path, *, subscribers_count: int, port: int, transport: str, connections: int) -> Path:
    """A site directory (sample content, config, database with subscribers); its config path."""
    site.mkdir(parents=True)
    shutil.copytree(SAMPLE_CONTENT, site / "content")
    config = write_config(
        site, f'[smtp]\nhost = "127.0.0.1"\nport = {port}\n',
        transport=transport, from_address=FROM_ADDRESS, from_name="Bench Brief", concurrency=connections,
    )
    started = time.perf_counter()
    asyncio.run(_populate(load_settings(config, environ={}).database.url, subscribers_count))
    log(f"  {site.name}: {subscribers_count:,} subscribers stored in {time.perf_counter() - started:.1f} s")
    return config


async def _populate(db_url: str, count: int) -> None:
    """Migrate the database and add ``count`` active instant subscribers, user1..userN@example.org."""
    engine = create_engine(db_url)
    try:
        await upgrade(engine)
        await insert_subscribers(engine, [f"user{n}@example.org" for n in range(1, count + 1)])
    finally:
        await engine.dispose()


# --- child processes ------------------------------------------------------------------


@dataclass
class Child:
    returncode: int
    seconds: float
    peak_rss_mb: float  # the command's own peak resident set, from GNU time
    cpu: float  # its user + system CPU seconds, from GNU time
    uvloop: bool  # uvloop's extension was mapped into the process
    max_sessions: int  # most ESTABLISHED connections to the sink seen at once (sampled)
    stdout: str
    stderr: str


class _Watch(threading.Thread):
    """Samples a running command: is uvloop loaded, how many sessions does the sink hold."""

    def __init__(self, time_pid: int, sink_port: int) -> None:
        super().__init__(daemon=True)
        self.time_pid, self.port_hex = time_pid, f":{sink_port:04X}"
        self.done = threading.Event()
        self.uvloop = False
        self.max_sessions = 0

    def run(self) -> None:
        ticks = 0
        while not self.done.wait(0.1):
            if not self.uvloop and ticks % 5 == 0:
                self.uvloop = any(_maps_uvloop(pid) for pid in children(self.time_pid))
            ticks += 1
            self.max_sessions = max(self.max_sessions, _established(self.port_hex))


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s children (GNU time's: the command it runs)."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _maps_uvloop(pid: int) -> bool:
    try:
        return "/uvloop/" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _established(port_hex: str) -> int:
    """ESTABLISHED TCP connections whose local end is the sink's port (/proc/net/tcp)."""
    count = 0
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split(None, 4)
            if fields[1].endswith(port_hex) and fields[3] == "01":
                count += 1
    return count


def run_child(
    command: Sequence[str], *, sink_port: int, log_dir: Path, name: str, env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Child:
    """Run ``command`` to its end under GNU time; wall time from spawn to exit, and its peak RSS.

    Not wait4() on our own child: Python spawns with vfork, and Linux then counts the
    benchmark's own peak RSS as the child's (the mm it replaced at exec).  GNU time
    forks from a process of a megabyte or two, so its report is the command's own.
    """
    out_path, err_path, time_path = (log_dir / f"{name}.{ext}" for ext in ("out", "err", "time"))
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            under_time(command, time_path), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd
        )
        watch = _Watch(process.pid, sink_port)
        watch.start()
        returncode = process.wait()
        seconds = time.perf_counter() - started
        watch.done.set()
        watch.join()
    peak_rss_mb, cpu = time_report(time_path)
    return Child(
        returncode=returncode, seconds=seconds, peak_rss_mb=peak_rss_mb, cpu=cpu, uvloop=watch.uvloop,
        max_sessions=watch.max_sessions,
        stdout=out_path.read_text(errors="replace"), stderr=err_path.read_text(errors="replace"),
    )


def under_time(command: Sequence[str], time_path: Path) -> list[str]:
    """``command`` run by GNU time, which writes its peak RSS and CPU time to ``time_path`` when it ends."""
    return [TIME, "-f", "%M %U %S", "-o", str(time_path), *command]


def time_report(time_path: Path) -> tuple[float, float]:
    """``(peak RSS in MB, user + system CPU seconds)`` of a command run :func:`under_time`."""
    # GNU time writes "Command exited with non-zero status N" first when it did.
    max_rss_kb, user, system = time_path.read_text().splitlines()[-1].split()
    return int(max_rss_kb) * 1024 / 1e6, float(user) + float(system)


def publisher_env() -> dict[str, str]:
    """This environment without PUBLISHER_* overrides, with a fixed signing key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUBLISHER_")}
    return env | {"PUBLISHER_SECRET_KEY": SECRET_KEY}


def publisher_send(config: Path, *, sink_port: int, log_dir: Path, name: str) -> Child:
    command = [sys.executable, "-m", "publisher", "--config", str(config), "send"]
    # In the site directory: ``-m`` puts the working directory first on sys.path, and the
    # repository's would shadow a checkout given in PYTHONPATH.
    child = run_child(command, sink_port=sink_port, log_dir=log_dir, name=name, env=publisher_env(), cwd=config.parent)
    if child.returncode != 0:
        sys.exit(f"publisher send failed (exit {child.returncode}):\n{child.stdout}{child.stderr[-3000:]}")
    return child


def capture_message(work: Path, connections: int) -> bytes:
    """One subscriber's digest exactly as ``publisher send`` builds it (via a Maildir outbox)."""
    config = make_site(work / "capture", subscribers_count=1, port=25, transport="maildir", connections=connections)
    publisher_send(config, sink_port=0, log_dir=work, name="capture")
    files = sorted((config.parent / "outbox" / "new").iterdir())
    if len(files) != 1:
        sys.exit(f"expected one message in the capture outbox, found {len(files)}")
    data = files[0].read_bytes()
    # The Maildir transport puts the envelope first, as an MTA's local delivery does.
    while data.startswith((b"Return-Path:", b"X-Original-To:")):
        data = data[data.index(b"\n") + 1:]
    if b"\r\n" not in data:
        data = data.replace(b"\n", b"\r\n")
    return data


# --- measuring ------------------------------------------------------------------------


@dataclass
class Run:
    messages: int
    seconds: float
    sessions: int  # sessions the sink saw end during the run
    client_cpu: float  # CPU seconds of the sender (user + system)
    sink_cpu: float  # CPU seconds of smtp-sink

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def counted(sink: SmtpSink, before: SinkMark, expected: int, seconds: float, client_cpu: float) -> Run:
    """The run that took ``seconds``: what the sink accepted since ``before``."""
    after = sink.mark(before.messages + expected)
    return Run(
        messages=after.messages - before.messages, seconds=seconds, sessions=after.sessions - before.sessions,
        client_cpu=client_cpu, sink_cpu=after.cpu - before.cpu,
    )


def timed(fn: Callable[..., object], *args: object) -> tuple[float, float]:
    """``(wall, CPU)`` seconds of ``fn(*args)`` in this process."""
    started, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - started, time.process_time() - cpu


_SENT = re.compile(r"sent (\d+), deferred (\d+), failed (\d+)")


@dataclass
class PublisherRun:
    run: Run
    child: Child
    empty: Child | None = None  # a second ``send`` on the same site, with nothing left to send


def run_publisher(
    template: Path, work: Path, name: str, sink: SmtpSink, expected: int, *, keep: bool, then_empty: bool = False
) -> PublisherRun:
    site = work / name
    shutil.copytree(template, site)
    config = site / "config.toml"
    before = sink.mark()
    child = publisher_send(config, sink_port=sink.port, log_dir=site, name="send")
    run = counted(sink, before, expected, child.seconds, child.cpu)
    reported = _SENT.search(child.stdout)
    if run.messages != expected or (reported and int(reported.group(1)) != expected):
        log(f"  warning: {name}: sink accepted {run.messages:,}, publisher reported "
            f"{reported.group(0) if reported else '?'}, expected {expected:,}")
    empty = None
    if then_empty:
        empty = publisher_send(config, sink_port=sink.port, log_dir=site, name="empty")
        if "nothing new to send" not in empty.stdout:
            log(f"  warning: the empty run was not empty: {empty.stdout.strip()}")
    if not keep:
        shutil.rmtree(site)
    return PublisherRun(run, child, empty)


# --- the report -----------------------------------------------------------------------


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20_000, help="messages per run (default 20,000)")
    parser.add_argument("--connections", type=int, default=8, help="SMTP sessions of every method (default 8)")
    parser.add_argument("--runs", type=int, default=3, help="runs per method; figures are medians (default 3)")
    parser.add_argument("--naive-messages", type=int, default=5_000,
                        help="subscribers of each naive run, at most --subscribers; 0 = all (default 5,000)")
    parser.add_argument("--loop", choices=("auto", *LOOPS), default="auto",
                        help="event loop of the in-process references; auto: the one publisher's send loads")
    parser.add_argument("--no-rss-scaling", action="store_true", help="skip the 10x-subscribers RSS run")
    parser.add_argument("--keep", type=Path, help="keep the sites, logs and the message file in this directory")
    args = parser.parse_args()
    if args.subscribers < 1 or args.connections < 1 or args.runs < 1:
        parser.error("--subscribers, --connections and --runs must be positive")
    if args.loop == "uvloop" and not uvloop_available():
        parser.error("--loop uvloop: uvloop is not installed")

    sink_exe, source_exe = ensure_tools()
    with work_dir("delivery", args.keep) as work:
        measure(args, work, sink_exe, source_exe)


def measure(args: argparse.Namespace, work: Path, sink_exe: str, source_exe: str) -> None:
    n, connections = args.subscribers, args.connections
    naive_n = n if args.naive_messages <= 0 else min(args.naive_messages, n)
    bench_started = time.perf_counter()
    compile_project()
    busy_before = cpu_busy()
    if busy_before > 0.1:
        log(f"warning: {busy_before:.0%} of the CPUs are busy before the start: the figures will be low and noisy")
    with (
        SmtpSink(sink_exe, work / "smtp-sink.counters") as sink,
        SmtpSink(sink_exe, work / "smtp-sink-classic.counters", pipelining=False) as classic_sink,
    ):
        log(f"smtp-sink on 127.0.0.1:{sink.port}: {' '.join(sink.command)}")
        log(f"smtp-sink without PIPELINING on 127.0.0.1:{classic_sink.port}: {' '.join(classic_sink.command)}")
        log("preparing the sites")
        message = capture_message(work, connections)
        wire = WireMessage.of(message)
        message_file = work / "digest.eml"
        message_file.write_bytes(message.replace(b"\r\n", b"\n"))  # smtp-source sends each line with CRLF
        template = make_site(work / "site", subscribers_count=n, port=sink.port, transport="smtp",
                             connections=connections)
        settings: Settings = load_settings(template, environ={})
        scanned = scan_directory(settings.content.dir, settings.site.url)
        articles = sorted(scanned.articles, key=lambda a: a.published, reverse=True)
        naive = NaiveDigest(settings, articles, make_environment(settings.site.templates_dir), Tokens(SECRET_KEY))
        breakdown = naive.breakdown()
        template_dir = template.parent

        methods = {key: Runs() for key in METHODS}
        publisher_runs: list[PublisherRun] = []
        loop = args.loop if args.loop != "auto" else None
        empty: Child | None = None
        source_sessions = 0
        source_cmd = smtp_source_command(
            source_exe, sink.port, messages=n, connections=connections, message_file=message_file,
            sender=FROM_ADDRESS, recipient=ENVELOPE_TO,
        )
        for round_ in range(1, args.runs + 1):
            before = sink.mark()
            source = run_child(source_cmd, sink_port=sink.port, log_dir=work, name="smtp-source")
            if source.returncode != 0:
                sys.exit(f"smtp-source failed: {source.stdout}{source.stderr}")
            methods[SMTP_SOURCE].runs.append(counted(sink, before, n, source.seconds, source.cpu))
            source_sessions = max(source_sessions, source.max_sessions)
            log(f"round {round_}: smtp-source {methods[SMTP_SOURCE].runs[-1].rate:,.0f} msgs/s")

            pub = run_publisher(template_dir, work, f"publisher-{round_}", sink, n, keep=bool(args.keep),
                                then_empty=empty is None)
            publisher_runs.append(pub)
            methods[PUBLISHER].runs.append(pub.run)
            log(f"round {round_}: publisher send {pub.run.rate:,.0f} msgs/s ({pub.run.messages:,} in "
                f"{pub.run.seconds:.1f} s, peak RSS {pub.child.peak_rss_mb:.0f} MB)")
            if loop is None:
                loop = "uvloop" if pub.child.uvloop and uvloop_available() else "asyncio"
            empty = empty or pub.empty

            before = sink.mark()
            raw = send_raw(sink.port, connections, n, message, FROM_ADDRESS, ENVELOPE_TO)
            methods[RAW].runs.append(counted(sink, before, n, *timed(run_on, loop, raw)))
            log(f"round {round_}: raw aiosmtplib {methods[RAW].runs[-1].rate:,.0f} msgs/s")

            before = classic_sink.mark()
            prepared = send_transport(classic_sink.port, connections, n, message, FROM_ADDRESS, ENVELOPE_TO)
            methods[TRANSPORT].runs.append(counted(classic_sink, before, n, *timed(run_on, loop, prepared)))
            log(f"round {round_}: publisher's transport, classic, pre-built bytes "
                f"{methods[TRANSPORT].runs[-1].rate:,.0f} msgs/s")

            before = sink.mark()
            pipelined = send_transport(sink.port, connections, n, wire, FROM_ADDRESS, ENVELOPE_TO)
            methods[PIPELINED].runs.append(counted(sink, before, n, *timed(run_on, loop, pipelined)))
            log(f"round {round_}: publisher's transport, pipelined, pre-built wire form "
                f"{methods[PIPELINED].runs[-1].rate:,.0f} msgs/s")

            before = sink.mark()
            naive_run = send_naive(sink.port, connections, naive_n, naive)
            methods[NAIVE].runs.append(counted(sink, before, naive_n, *timed(run_on, loop, naive_run)))
            log(f"round {round_}: naive {methods[NAIVE].runs[-1].rate:,.0f} msgs/s")

        scaled: PublisherRun | None = None
        if not args.no_rss_scaling:
            big = n * 10
            log(f"RSS scaling: publisher send to {big:,} subscribers")
            big_template = make_site(work / "site-10x", subscribers_count=big, port=sink.port, transport="smtp",
                                     connections=connections)
            scaled = run_publisher(big_template.parent, work, "publisher-10x", sink, big, keep=bool(args.keep))
            if not args.keep:
                shutil.rmtree(big_template.parent)
            log(f"RSS scaling: {scaled.run.rate:,.0f} msgs/s, peak RSS {scaled.child.peak_rss_mb:.0f} MB")

    assert empty is not None and loop is not None
    report(
        args, methods, publisher_runs, scaled, empty, loop, message, naive_n, breakdown, source_sessions,
        time.perf_counter() - bench_started, busy_before,
    )


def report(
    args: argparse.Namespace,
    methods: dict[str, Runs],
    publisher_runs: list[PublisherRun],
    scaled: PublisherRun | None,
    empty: Child,
    loop: str,
    message: bytes,
    naive_n: int,
    breakdown: dict[str, float],
    source_sessions: int,
    elapsed: float,
    busy_before: float,
) -> None:
    n, connections = args.subscribers, args.connections
    pub = methods[PUBLISHER]
    pub_rate = pub.median("rate")
    loaded_uvloop = any(r.child.uvloop for r in publisher_runs)
    print()
    print(f"Delivery benchmark: {n:,} subscribers, {connections} connections, {len(message):,}-byte digest "
          f"message, medians of {args.runs} run(s), {os.cpu_count()} CPUs")
    print(f"publisher measured: {Path(publisher.__file__).parent}")
    print(f"event loop of the in-process references: {loop} (publisher's send loaded uvloop: "
          f"{'yes' if loaded_uvloop else 'no'}; uvloop installed: {'yes' if uvloop_available() else 'no'})")
    print()
    labels = {
        SMTP_SOURCE: "smtp-source (Postfix, C): wire limit",
        RAW: f"aiosmtplib raw ceiling ({loop})",
        TRANSPORT: "publisher's transport, classic, pre-built bytes",
        PIPELINED: "publisher's transport, pipelined, wire form",
        NAIVE: f"naive reference ({loop}, {naive_n:,} msgs)",
        PUBLISHER: "publisher send (subprocess)",
    }
    peak_sessions = {
        SMTP_SOURCE: source_sessions, RAW: connections, TRANSPORT: connections, PIPELINED: connections,
        NAIVE: connections,
        PUBLISHER: max(r.child.max_sessions for r in publisher_runs),
    }
    header = (f"{'method':48} {'msgs/s':>8}  {'runs (msgs/s)':26} {'sessions':>9} {'client CPU':>10} "
              f"{'sink CPU':>8}  {'publisher ÷':>11}")
    print(header)
    print("-" * len(header))
    for key in METHODS:
        method = methods[key]
        runs = " / ".join(fmt_rate(r.rate) for r in method.runs)
        sessions = f"{peak_sessions[key]}/{method.runs[-1].sessions}"
        ratio = f"{pub_rate / method.median('rate'):.2f}x"
        client = statistics.median(r.client_cpu / r.seconds for r in method.runs)
        server = statistics.median(r.sink_cpu / r.seconds for r in method.runs)
        print(f"{labels[key]:48} {fmt_rate(method.median('rate')):>8}  {runs:26} {sessions:>9} {client:>10.0%} "
              f"{server:>8.0%}  {ratio:>11}")
    print("sessions: most open at once (sampled; the references always use all) / opened in the last run;")
    print("CPU: CPU time / wall time, 100% = one core (publisher's includes its start-up); MB: 10^6 bytes")
    print()
    rss_n = statistics.median(r.child.peak_rss_mb for r in publisher_runs)
    print(f"publisher send, empty run (nothing due; start-up, migrations check, scan, plan): {empty.seconds:.2f} s "
          f"({empty.cpu:.2f} s CPU), peak RSS {empty.peak_rss_mb:.0f} MB")
    print(f"publisher send, peak RSS at {n:,} subscribers: {rss_n:.1f} MB (median of "
          f"{', '.join(f'{r.child.peak_rss_mb:.1f}' for r in publisher_runs)})")
    if scaled is not None:
        growth = scaled.child.peak_rss_mb / rss_n - 1
        print(f"publisher send, peak RSS at {n * 10:,} subscribers: {scaled.child.peak_rss_mb:.1f} MB "
              f"({growth:+.1%}); {fmt_rate(scaled.run.rate)} msgs/s "
              f"({scaled.run.messages:,} in {scaled.run.seconds:.1f} s)")
    print()
    size = int(breakdown.pop("message bytes"))
    together = breakdown.pop("all steps")
    print("naive reference: per subscriber, sign 2 links, render digest.html and digest.txt (Jinja2), inline the")
    print("CSS (css-inline), build an EmailMessage (set_content + add_alternative), send_message() it.")
    print(f"CPU per message before sending, in ms ({size:,}-byte message), each step alone:")
    print("  " + ", ".join(f"{name} {ms:.2f}" for name, ms in breakdown.items())
          + f"; sum {sum(breakdown.values()):.2f}; all steps in a row {together:.2f}")
    print()
    print("goals (issues 4 and 18): measured against each goal (measured / goal; >= 1.00 reaches a minimum, <= 1.00 stays under a limit)")
    raw_ratio, naive_ratio = pub_rate / methods[RAW].median("rate"), pub_rate / methods[NAIVE].median("rate")
    source_ratio = pub_rate / methods[SMTP_SOURCE].median("rate")
    pipelined_ratio = pub_rate / methods[PIPELINED].median("rate")
    figures: list[tuple[str, str, float]] = [
        (f"publisher / smtp-source, same connections, goal >= {SOURCE_RATIO}x", f"{source_ratio:.2f}x",
         source_ratio / SOURCE_RATIO),
        (f"publisher / its pipelined transport on wire form, goal >= {PIPELINED_RATIO}x", f"{pipelined_ratio:.2f}x",
         pipelined_ratio / PIPELINED_RATIO),
        (f"publisher / aiosmtplib raw ceiling ({loop}), goal >= {RAW_RATIO}x", f"{raw_ratio:.2f}x", raw_ratio / RAW_RATIO),
        (f"publisher / naive reference, goal >= {NAIVE_RATIO:g}x", f"{naive_ratio:.2f}x", naive_ratio / NAIVE_RATIO),
        (f"peak RSS at {n:,}, limit {RSS_LIMIT_MB:g} MB", f"{rss_n:.1f} MB", rss_n / RSS_LIMIT_MB),
    ]
    if scaled is not None:
        growth = scaled.child.peak_rss_mb / rss_n - 1
        figures += [
            (f"peak RSS at {n * 10:,}, limit {RSS_LIMIT_MB:g} MB", f"{scaled.child.peak_rss_mb:.1f} MB",
             scaled.child.peak_rss_mb / RSS_LIMIT_MB),
            (f"RSS growth {n:,} -> {n * 10:,}, limit {RSS_GROWTH:.0%}", f"{growth:+.1%}", growth / RSS_GROWTH),
        ]
    for label, shown, share in figures:
        print(f"  {label:62} {shown:>10}   {share:5.2f}")
    print(f"  {'(no goal) personalization, ledger, rate control and start-up':62} {1 - pipelined_ratio:10.0%}   "
          "of send's time (1 - the ratio to the pipelined transport)")
    wire_gain = methods[PIPELINED].median("rate") / methods[TRANSPORT].median("rate")
    print(f"  {'(no goal) pipelined wire form / classic bytes, same transport':62} {wire_gain:9.2f}x")
    # CPU per message holds up better than rates on a busy machine: send's, less its empty run's
    # (start-up), beside the pipelined transport's; their difference is what send adds per message.
    send_us = statistics.median((r.child.cpu - empty.cpu) / r.run.messages * 1e6 for r in publisher_runs)
    wire_us = methods[PIPELINED].median("client_cpu") / n * 1e6
    print(f"  {'(no goal) CPU per message: send less its empty run / pipelined':62} "
          f"{send_us:5.0f} / {wire_us:.0f} µs   (send adds {send_us - wire_us:.0f} µs a message)")
    loop_state = "uvloop loaded" if loaded_uvloop else (
        "uvloop installed, not loaded" if uvloop_available() else "uvloop not installed")
    print(f"  {'event loop of publisher send (uvloop where it installs)':62} {loop_state:>10}")
    print()
    print(f"benchmark wall time: {elapsed:.0f} s; CPUs busy before the start: {busy_before:.0%} "
          f"(other work on the machine lowers every figure)")


if __name__ == "__main__":
    main()
