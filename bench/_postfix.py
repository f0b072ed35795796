"""Postfix's test tools for bench/delivery.py: ``smtp-sink`` (the server) and ``smtp-source`` (the C client).

``smtp-sink`` accepts every message and throws it away; with ``-c`` it writes running
counters (``sess=8 quit=8 mesg=20000``, separated by carriage returns) to standard
output after every session end, QUIT and final ".", which is how the benchmark counts
the messages the server actually accepted.  It announces PIPELINING and 8BITMIME and
sets no SIZE limit by default (``-p`` / ``-8`` would turn the first two off: a sink
made with ``pipelining=False`` is the relay for publisher's classic exchange; neither
aiosmtplib nor smtp-source pipelines anyway), handles up to 256 sessions at once
(``-m``), and is one single-threaded process: at about 9,500 messages of 28 KB a second
(smtp-source, 8 sessions, this 2-core machine) it uses 96% of a core.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from _common import free_port

SBIN = Path("/usr/sbin")
TIME = "/usr/bin/time"  # GNU time: a command's own peak RSS
_COUNTERS = re.compile(rb"sess=(\d+) quit=(\d+) mesg=(\d+)")


def tool(name: str) -> str | None:
    """The path of ``name`` (``smtp-sink``, ``smtp-source``), on PATH or in /usr/sbin."""
    found = shutil.which(name)
    if found:
        return found
    candidate = SBIN / name
    return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None


def ensure_tools() -> tuple[str, str]:
    """``(smtp-sink, smtp-source)``, installing Debian's postfix package first if they are missing.

    debconf is told "No configuration" first, so the package installs without asking
    and without a mail system listening on port 25.  GNU time (package ``time``) too.
    """
    sink, source = tool("smtp-sink"), tool("smtp-source")
    packages = ([] if sink and source else ["postfix"]) + ([] if os.access(TIME, os.X_OK) else ["time"])
    if not packages:
        return sink or "", source or ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(f"missing smtp-sink / smtp-source or {TIME}: install {' '.join(packages)} and run again")
    print(f"installing {' '.join(packages)} (apt-get)...", file=sys.stderr, flush=True)
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["debconf-set-selections"], input=b"postfix postfix/main_mailer_type select No configuration\n",
        check=True, env=env,
    )
    install = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    first = subprocess.run(install, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=False)
    if first.returncode != 0:  # a stale package index: update it, then try once more
        subprocess.run(["apt-get", "update"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
        subprocess.run(install, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
    sink, source = tool("smtp-sink"), tool("smtp-source")
    if not (sink and source and os.access(TIME, os.X_OK)):
        sys.exit(f"installed {' '.join(packages)}, but smtp-sink, smtp-source or {TIME} is still missing")
    return sink, source




@dataclass(frozen=True)
class SinkMark:
    sessions: int  # ended so far
    messages: int  # accepted so far
    cpu: float  # seconds of CPU used so far


class SmtpSink:
    """``smtp-sink -c`` on 127.0.0.1:<free port>, counting what it accepts; stopped on exit."""

    def __init__(self, executable: str, counters_file: Path, backlog: int = 1000, *, pipelining: bool = True) -> None:
        self.port = free_port()
        self.counters_file = counters_file
        command = [executable, "-c"] + ([] if pipelining else ["-p"])
        if os.geteuid() == 0:  # required as root: drop privileges once the socket is bound
            command += ["-u", _unprivileged_user()]
        command += [f"127.0.0.1:{self.port}", str(backlog)]
        self.command = command
        self._out = counters_file.open("wb")
        self._process = subprocess.Popen(command, stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait_listening()

    def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"smtp-sink exited at start: {self.counters_file.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    conn.recv(512)  # the 220 greeting; this session then counts as one ended session
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"smtp-sink is not listening on port {self.port}")

    def counters(self) -> tuple[int, int]:
        """``(sessions, messages)`` accepted since the sink started."""
        with self.counters_file.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 256))
            found = _COUNTERS.findall(handle.read())
        if not found:
            return 0, 0
        sess, _quit, mesg = found[-1]
        return int(sess), int(mesg)

    def cpu_seconds(self) -> float:
        """User + system CPU time the sink has used so far."""
        fields = Path(f"/proc/{self._process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def mark(self, expected_messages: int | None = None) -> SinkMark:
        """The counters once settled, and the sink's CPU time."""
        sessions, messages = self.settled_counters(expected_messages)
        return SinkMark(sessions, messages, self.cpu_seconds())

    def settled_counters(self, expected_messages: int | None = None, timeout: float = 3.0) -> tuple[int, int]:
        """The counters once they stop moving (the last "." may still be in flight)."""
        deadline = time.monotonic() + timeout
        last = self.counters()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.counters()
            if now == last and (expected_messages is None or now[1] >= expected_messages):
                return now
            last = now
        return last

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._out.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _unprivileged_user() -> str:
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return "root"
    return "nobody"


def smtp_source_command(
    executable: str, port: int, *, messages: int, connections: int, message_file: Path, sender: str, recipient: str
) -> list[str]:
    """smtp-source sending ``message_file`` ``messages`` times over ``connections`` kept-open sessions.

    ``-d`` keeps each session open for its next message (without it every message
    would pay a TCP handshake); ``-F`` sends the file as header and body, dot-stuffed,
    each LF-terminated line sent with CRLF.
    """
    return [
        executable, "-d", "-s", str(connections), "-m", str(messages), "-F", str(message_file),
        "-f", sender, "-t", recipient, f"127.0.0.1:{port}",
    ]
