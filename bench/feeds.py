"""Feed serving: publisher's ``/feed.atom`` against a bare aiohttp handler and Debian's nginx.

Issue 5's benchmark; it prints figures, it is not a test.  It makes a site whose Atom
feed holds 50 entries (the three sample articles, each copied with its own id, title,
file name and dates), builds it with ``publisher build``, then starts three servers on
loopback, each its own process:

1. ``publisher run``: the daemon as operators run it (scheduler, store, the whole web
   app with its middleware and security headers; uvloop where it is installed), its
   scan interval set to an hour so no scan runs during the measurement;
2. a bare aiohttp handler returning the same bytes (``web.Response(body=...)`` with
   the same Content-Type and ETag, a 304 when If-None-Match equals that ETag, the
   gzip bytes when asked) on the same event loop, with no middleware, no signal
   handlers and no access log: the issue's reference for what publisher's route costs;
3. Debian's nginx (installed with apt-get when it is missing): one worker, ``etag on``,
   ``gzip_static on``, serving the static files ``publisher build`` wrote (``feed.atom``
   and its ``feed.atom.gz`` twin) with its own config, pid file and logs, never the
   system service; ``keepalive_requests`` is raised so it does not close wrk's
   connections every 1,000 requests (aiohttp never does).

``wrk`` (installed when missing) then measures each server for each request kind, the
servers in turn, for ``--runs`` rounds; the figure of each cell is the median of its
runs:

* ``200``: a plain GET (wrk sends no Accept-Encoding: the identity body);
* ``304``: a GET with ``If-None-Match`` set to the ETag that server sent;
* ``200 gzip``: a GET with ``Accept-Encoding: gzip`` (no goal; nginx uses gzip_static).

Every server's answer is checked first (status, body bytes, 304 on its own ETag), and
the bytes per response wrk saw are printed beside the rates, so a cell that measured
the wrong thing shows.  The servers' CPU (user + system over the run, one core = 100%)
shows which side was the bottleneck: wrk and the server share this machine's cores.
The server CPU per request (µs) is printed too: it moves less than req/s when other
work on the machine takes CPU time, so compare it when the rates are noisy.  (The
bare server is this file run as ``feeds.py --serve-bare PORT FEED_FILE``.)

    .venv/bin/python bench/feeds.py [--duration 10] [--runs 3] [--connections 50] [--threads 2]
        [--entries 50] [--keep DIR]

To measure another checkout (e.g. the last commit, ``git archive HEAD | tar -x -C
/tmp/head``), put it first on the path: ``PYTHONPATH=/tmp/head .venv/bin/python
bench/feeds.py`` (the subprocesses inherit it).
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

from _common import Runs, cpu_busy, free_port, log, work_dir

SECRET_KEY = "feeds-benchmark-secret"
FEED_PATH = "feed.atom"
ATOM_TYPE = "application/atom+xml; charset=utf-8"

# Issue 5's goal: publisher's feed route at least this share of a bare aiohttp handler.
BARE_RATIO = 0.9

PUBLISHER = "publisher"
BARE = "bare"
NGINX = "nginx"
SERVERS = (PUBLISHER, BARE, NGINX)
LABELS = {
    PUBLISHER: "publisher run (daemon)",
    BARE: "bare aiohttp handler",
    NGINX: "nginx 1 worker, gzip_static",
}
OK = "200"
NOT_MODIFIED = "304"
GZIP = "200 gzip"
KINDS = (OK, NOT_MODIFIED, GZIP)
GOAL_KINDS = (OK, NOT_MODIFIED)




# --- tools ----------------------------------------------------------------------------


def ensure_tools() -> tuple[str, str]:
    """``(nginx, wrk)``, installing Debian's packages first when they are missing."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    wrk = shutil.which("wrk")
    packages = ([] if nginx else ["nginx"]) + ([] if wrk else ["wrk"])
    if packages:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            sys.exit(f"missing {' '.join(packages)}: install them and run again")
        log(f"installing {' '.join(packages)} (apt-get)...")
        env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *packages], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        # The package starts the system service; this benchmark runs its own nginx and
        # leaves the system's alone.
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        wrk = shutil.which("wrk")
    assert nginx and wrk
    return nginx, wrk






# --- the site -------------------------------------------------------------------------

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_RFC = re.compile(r"[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}")
_ID = re.compile(r'^(id\s*[:=]\s*)"([^"]+)"', re.MULTILINE)
_TITLE = re.compile(r'^(title\s*[:=]\s*)"([^"]+)"', re.MULTILINE)


def variant(text: str, n: int) -> str:
    """Article ``text`` with its own id, title and dates (``n`` days earlier); body unchanged."""
    delimiter = text[:4]
    if delimiter not in ("---\n", "+++\n"):
        raise ValueError("the sample article has no front matter")
    end = text.index("\n" + delimiter, 3) + 1
    front, rest = text[:end], text[end:]

    def iso(match: re.Match[str]) -> str:
        moment = datetime.fromisoformat(match.group(0)) - timedelta(days=n)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def rfc(match: re.Match[str]) -> str:
        return format_datetime(parsedate_to_datetime(match.group(0)) - timedelta(days=n))

    front = _ID.sub(lambda m: f'{m.group(1)}"{m.group(2)}-{n:02d}"', front, count=1)
    front = _TITLE.sub(lambda m: f'{m.group(1)}"{m.group(2)} ({n})"', front, count=1)
    front = _RFC.sub(rfc, _ISO.sub(iso, front))
    return front + rest


def make_site(site: Path, entries: int, port: int) -> Path:
    """A site directory with ``entries`` articles and a config serving on ``port``; its config path."""
    from tests.support.sites import SAMPLE_CONTENT, write_config

    content = site / "content"
    content.mkdir(parents=True)
    samples = sorted(SAMPLE_CONTENT.glob("*.md"))
    for n in range(entries):
        sample = samples[n % len(samples)]
        text = sample.read_text(encoding="utf-8")
        (content / f"{sample.stem}-{n:02d}.md").write_text(variant(text, n), encoding="utf-8")
    extra = (
        f"[feeds]\nmax_entries = {entries}\n\n"
        "[scheduler]\nscan_interval = 3600\n\n"
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n'
    )
    # retry_base 60: the daemon's retry job wakes once a minute, as by default.
    return write_config(site, extra, retry_base=60)


def publisher_env() -> dict[str, str]:
    """This environment without PUBLISHER_* overrides, with a fixed signing key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUBLISHER_")}
    return env | {"PUBLISHER_SECRET_KEY": SECRET_KEY}


def publisher_command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "publisher", "--config", str(config), *args]


def build_site(config: Path) -> None:
    # In the site directory: ``-m`` puts the working directory first on sys.path, and the
    # repository's would shadow a checkout given in PYTHONPATH.
    done = subprocess.run(publisher_command(config, "build"), cwd=config.parent, env=publisher_env(),
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"publisher build failed (exit {done.returncode}):\n{done.stdout}{done.stderr[-3000:]}")


# --- the servers ----------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    etag: str = ""  # of the identity body, as this server sends it

    def cpu_seconds(self) -> float:
        """User + system CPU of the server and its children so far (/proc)."""
        return sum(_cpu(pid) for pid in _tree(self.process.pid))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: the daemon drains, nginx exits fast
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _tree(pid: int) -> list[int]:
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return pids
    for child in children:
        pids.extend(_tree(int(child)))
    return pids


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def spawn(name: str, command: Sequence[str], work: Path, port: int, *, cwd: Path | None = None,
          env: dict[str, str] | None = None) -> Server:
    log_path = work / f"{name}.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   cwd=cwd, env=env)
    server = Server(name, f"http://127.0.0.1:{port}/{FEED_PATH}", process, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{name} exited with {process.returncode}:\n{log_path.read_text(errors='replace')[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    sys.exit(f"{name} did not listen on port {port} within 60 s")


def start_publisher(config: Path, work: Path, port: int) -> Server:
    server = spawn(PUBLISHER, publisher_command(config, "run"), work, port, cwd=config.parent, env=publisher_env())
    # The schedule's first scan runs at start; wait until the daemon says it is ready so
    # that scan (and its feed rebuild, if any) is over before anything is measured.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                return server
        except urllib.error.HTTPError as exc:
            if exc.code == 404:  # a checkout without /readyz: give its first scan a moment
                time.sleep(3)
                return server
            time.sleep(0.2)
        except OSError:
            time.sleep(0.2)
    log("  warning: publisher's /readyz did not answer 200 within 60 s; measuring anyway")
    return server


def start_bare(output: Path, work: Path, port: int) -> Server:
    feed = output / FEED_PATH
    command = [sys.executable, __file__, "--serve-bare", str(port), str(feed)]
    return spawn(BARE, command, work, port)


NGINX_CONF = """\
# bench/feeds.py's own nginx: one worker in the foreground, its files in {work}.
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000000;
    client_body_temp_path {work}/nginx-tmp/body;
    proxy_temp_path {work}/nginx-tmp/proxy;
    fastcgi_temp_path {work}/nginx-tmp/fastcgi;
    uwsgi_temp_path {work}/nginx-tmp/uwsgi;
    scgi_temp_path {work}/nginx-tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        etag on;
        gzip_static on;
        gzip_vary on;
        charset utf-8;
        charset_types application/atom+xml application/rss+xml application/feed+json;
        location ~ /feed\\.json$ {{ types {{ }} default_type application/feed+json; }}
    }}
}}
"""


def start_nginx(nginx: str, output: Path, work: Path, port: int) -> Server:
    (work / "nginx-tmp").mkdir(exist_ok=True)
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(work=work, port=port, root=output), encoding="utf-8")
    # -e: the error log before the config is read (the default path may not be writable).
    return spawn(NGINX, [nginx, "-c", str(conf), "-p", str(work), "-e", str(work / "nginx-error.log")], work, port)


def serve_bare(port: int, feed: Path) -> None:
    """The reference: one handler returning prepared bytes, nothing else on the app."""
    import hashlib

    from aiohttp import web

    body = feed.read_bytes()
    gzipped = feed.with_name(feed.name + ".gz").read_bytes()
    etag = f'"{hashlib.sha256(body).hexdigest()}"'

    async def handler(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            return web.Response(body=gzipped, headers={"ETag": etag, "Content-Type": ATOM_TYPE,
                                                       "Content-Encoding": "gzip"})
        return web.Response(body=body, headers={"ETag": etag, "Content-Type": ATOM_TYPE})

    app = web.Application()
    app.router.add_get("/" + FEED_PATH, handler)
    loop_factory = None
    try:
        import uvloop  # the loop publisher's daemon runs on (publisher.cli.context.run_loop)

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass
    print(f"bare aiohttp on 127.0.0.1:{port} ({'uvloop' if loop_factory else 'asyncio'})", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=loop_factory and loop_factory())


# --- checking and measuring -----------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def fetch(url: str, headers: dict[str, str] | None = None) -> Answer:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Answer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, dict(exc.headers), exc.read())


def check(server: Server, body: bytes) -> None:
    """Each server answers the three request kinds as the benchmark assumes."""
    plain = fetch(server.url)
    if plain.status != 200 or plain.body != body:
        sys.exit(f"{server.name}: GET gave {plain.status}, {len(plain.body):,} bytes (expected {len(body):,})")
    server.etag = plain.headers.get("ETag", "")
    cached = fetch(server.url, {"If-None-Match": server.etag})
    if cached.status != 304:
        sys.exit(f"{server.name}: GET with If-None-Match {server.etag} gave {cached.status}, not 304")
    packed = fetch(server.url, {"Accept-Encoding": "gzip"})
    if packed.headers.get("Content-Encoding") != "gzip" or gzip.decompress(packed.body) != body:
        sys.exit(f"{server.name}: GET with Accept-Encoding: gzip did not give the gzipped feed")


def request_headers(server: Server, kind: str) -> list[str]:
    if kind == NOT_MODIFIED:
        return [f"If-None-Match: {server.etag}"]
    if kind == GZIP:
        return ["Accept-Encoding: gzip"]
    return []


_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_COUNT = re.compile(r"(\d+) requests in")
_TRANSFER = re.compile(r"Transfer/sec:\s+([\d.]+)([KMG]?B)")
_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
_ERRORS = re.compile(r"(Non-2xx or 3xx responses: \d+|Socket errors: .*)")


@dataclass
class Run:
    rate: float  # requests per second
    bytes_per_response: float  # wrk's transfer rate ÷ request rate (headers included)
    server_cpu: float  # server CPU seconds ÷ wall seconds
    cpu_per_request: float  # server CPU microseconds per request
    errors: str


def wrk_run(wrk: str, server: Server, kind: str, args: argparse.Namespace, duration: float) -> Run:
    command = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{duration:g}s"]
    for header in request_headers(server, kind):
        command += ["-H", header]
    command.append(server.url)
    cpu_before, started = server.cpu_seconds(), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    cpu = server.cpu_seconds() - cpu_before
    found = _RATE.search(done.stdout)
    if done.returncode != 0 or not found or not float(found.group(1)):
        sys.exit(f"wrk failed against {server.name}:\n{done.stdout}{done.stderr}")
    rate = float(found.group(1))
    count = _COUNT.search(done.stdout)
    requests = int(count.group(1)) if count else rate * duration
    transfer = _TRANSFER.search(done.stdout)
    per_second = float(transfer.group(1)) * _UNITS[transfer.group(2)] if transfer else 0.0
    return Run(
        rate=rate,
        bytes_per_response=per_second / rate,
        server_cpu=cpu / wall,
        cpu_per_request=cpu / requests * 1e6,
        errors="; ".join(_ERRORS.findall(done.stdout)),
    )


# --- the report -----------------------------------------------------------------------


def main() -> None:
    if sys.argv[1:2] == ["--serve-bare"]:
        serve_bare(int(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds of each wrk run (default 10)")
    parser.add_argument("--runs", type=int, default=3, help="runs per cell; figures are medians (default 3)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--entries", type=int, default=50, help="entries in the feed (default 50)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of an unmeasured run per server and kind")
    parser.add_argument("--keep", type=Path, help="keep the site, configs and logs in this directory")
    args = parser.parse_args()
    if args.runs < 1 or args.duration <= 0 or args.entries < 1:
        parser.error("--runs, --duration and --entries must be positive")

    nginx, wrk = ensure_tools()
    with work_dir("feeds", args.keep) as work:
        work.chmod(0o755)  # nginx's worker (user nobody when started as root) must reach the files
        measure(args, work, nginx, wrk)


def measure(args: argparse.Namespace, work: Path, nginx: str, wrk: str) -> None:
    bench_started = time.perf_counter()
    busy_before = cpu_busy()
    if busy_before > 0.1:
        log(f"warning: {busy_before:.0%} of the CPUs are busy before the start: the figures will be low and noisy")
    ports = {name: free_port() for name in SERVERS}
    log("preparing the site")
    config = make_site(work / "site", args.entries, ports[PUBLISHER])
    build_site(config)
    output = config.parent / "public"
    body = (output / FEED_PATH).read_bytes()
    gz_size = (output / (FEED_PATH + ".gz")).stat().st_size
    entries = body.count(b"<entry>")
    if entries != args.entries:
        sys.exit(f"the built {FEED_PATH} has {entries} entries, not {args.entries}")

    servers: dict[str, Server] = {}
    try:
        servers[PUBLISHER] = start_publisher(config, work, ports[PUBLISHER])
        servers[BARE] = start_bare(output, work, ports[BARE])
        servers[NGINX] = start_nginx(nginx, output, work, ports[NGINX])
        for server in servers.values():
            check(server, body)
        log("all three servers answer 200, 304 on their ETag and gzip; warming up")
        for server in servers.values():
            for kind in KINDS:
                wrk_run(wrk, server, kind, args, args.warmup)
        cells = {(name, kind): Runs() for name in SERVERS for kind in KINDS}
        order = list(SERVERS)
        for round_ in range(1, args.runs + 1):
            for kind in KINDS:
                for name in order:
                    run = wrk_run(wrk, servers[name], kind, args, args.duration)
                    cells[name, kind].runs.append(run)
                    log(f"round {round_}: {kind:8} {name:9} {run.rate:>9,.0f} req/s  server CPU {run.server_cpu:4.0%}, "
                        f"{run.cpu_per_request:5.1f} µs/request" + (f"  ({run.errors})" if run.errors else ""))
            order = order[1:] + order[:1]  # whoever went first goes last next round
    finally:
        for server in servers.values():
            server.stop()
    report(args, cells, len(body), gz_size, time.perf_counter() - bench_started, busy_before)


def report(args: argparse.Namespace, cells: dict[tuple[str, str], Runs], size: int, gz_size: int,
           elapsed: float, busy_before: float) -> None:
    import publisher

    print()
    print(f"Feed serving benchmark: /{FEED_PATH} with {args.entries} entries ({size:,} bytes, {gz_size:,} gzipped), "
          f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, medians of {args.runs} run(s), "
          f"{os.cpu_count()} CPUs")
    print(f"publisher measured: {Path(publisher.__file__).parent}")
    print()
    header = f"{'req/s (median)':30}" + "".join(f"{kind:>12}" for kind in KINDS) + "   server CPU (share of a core)"
    print(header)
    print("-" * len(header))
    for name in SERVERS:
        rates = "".join(f"{cells[name, kind].median('rate'):>12,.0f}" for kind in KINDS)
        cpu = " / ".join(f"{cells[name, kind].median('server_cpu'):.0%}" for kind in KINDS)
        print(f"{LABELS[name]:30}{rates}   {cpu}")
    print()
    header = f"{'server CPU per request (µs)':30}" + "".join(f"{kind:>12}" for kind in KINDS)
    print(header)
    print("-" * len(header))
    for name in SERVERS:
        print(f"{LABELS[name]:30}" + "".join(f"{cells[name, kind].median('cpu_per_request'):>12.1f}" for kind in KINDS))
    print()
    header = f"{'publisher ÷':30}" + "".join(f"{kind:>12}" for kind in KINDS)
    print(header)
    print("-" * len(header))
    for other in (BARE, NGINX):
        ratios = "".join(f"{cells[PUBLISHER, kind].median('rate') / cells[other, kind].median('rate'):>11.2f}x" for kind in KINDS)
        print(f"{LABELS[other]:30}{ratios}")
    costs = "".join(
        f"{cells[BARE, kind].median('cpu_per_request') / cells[PUBLISHER, kind].median('cpu_per_request'):>11.2f}x" for kind in KINDS
    )
    print(f"{'(CPU per request, bare ÷ pub.)':30}{costs}")
    print()
    print("runs (req/s): " + "; ".join(
        f"{name} {kind}: " + " / ".join(f"{r.rate:,.0f}" for r in cells[name, kind].runs)
        for name in SERVERS for kind in KINDS))
    print("bytes per response as wrk counted them (headers included), publisher / bare / nginx: "
          + "; ".join(f"{kind}: " + " / ".join(f"{cells[name, kind].median('bytes_per_response'):,.0f}" for name in SERVERS)
                      for kind in KINDS))
    errors = sorted({f"{name} {kind}: {r.errors}" for (name, kind), cell in cells.items() for r in cell.runs if r.errors})
    if errors:
        print("wrk reported: " + "; ".join(errors))
    print()
    print(f"goals (issue 5): publisher / bare aiohttp >= {BARE_RATIO}x for 200 and 304")
    for kind in GOAL_KINDS:
        ratio = cells[PUBLISHER, kind].median('rate') / cells[BARE, kind].median('rate')
        verdict = "met" if ratio >= BARE_RATIO else "NOT met"
        print(f"  {kind}: {ratio:.2f}x  ({ratio / BARE_RATIO:.2f} of the goal)  {verdict}")
    print()
    print(f"benchmark wall time: {elapsed:.0f} s; CPUs busy before the start: {busy_before:.0%} (wrk and the "
          f"servers share the CPUs: other work on the machine lowers every figure)")


if __name__ == "__main__":
    main()
