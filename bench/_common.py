"""What every benchmark here needs: progress lines, a free port, how busy the machine is,
the project's bytecode."""

from __future__ import annotations

import compileall
import shutil
import statistics
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


def log(message: str) -> None:
    """A progress line on stderr (the figures go to stdout)."""
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def compile_project() -> None:
    """Write the bytecode of publisher's own modules, as installing a wheel does.

    An editable install writes it at a command's first run, unless the environment sets
    ``PYTHONDONTWRITEBYTECODE`` (container images and CI often do): then every command
    compiles some 70 modules again, 0.07–0.1 s that no installed publisher pays (and
    Pelican, installed by pip, doesn't either).  A benchmark of start-up measures the
    program, not that setting.
    """
    root = Path(__file__).resolve().parent.parent
    for package in ("publisher", "subscribers"):
        compileall.compile_dir(root / package, quiet=1)


def cpu_busy(interval: float = 1.0) -> float:
    """The share of all CPUs' time spent busy over ``interval`` seconds (/proc/stat)."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values) - idle, sum(values)

    busy0, total0 = sample()
    time.sleep(interval)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(1, total1 - total0)


@contextmanager
def work_dir(name: str, keep: Path | None) -> Iterator[Path]:
    """A fresh directory for one benchmark run: inside ``keep`` and kept (``--keep``),
    else a temporary one removed at the end."""
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=keep))
    else:
        work = Path(tempfile.mkdtemp(prefix=f"publisher-bench-{name}-"))
    try:
        yield work
    finally:
        if keep:
            log(f"kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


@dataclass
class Runs:
    """The runs of one measured cell (a method, a server and request kind).

    The report shows medians, so one run disturbed by the machine moves nothing.
    """

    runs: list = field(default_factory=list)

    def median(self, figure: str) -> float:
        """The median of one figure (an attribute or property of each run)."""
        return statistics.median(getattr(run, figure) for run in self.runs)
