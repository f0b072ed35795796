"""Journals left by processes that really died (SIGKILL), for the journal's tests.

A test can't kill itself, and closing the journal's descriptors by hand would only
imitate what the kernel does at a process's death: a child process opens the journal,
writes the lines, and is killed with SIGKILL in the middle of its work.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

CHILD = """
import os, signal, sys
from pathlib import Path
from publisher.delivery.journal import Journal

journal = Journal.open(Path(sys.argv[1]), sys.argv[2])
lines = sys.argv[3:]
for number, line in enumerate(lines):
    digest, subscriber = line.split()
    journal.accepted(digest, int(subscriber))
    if number == len(lines) // 2:
        journal.rotate()  # a batch handed to the ledger, never confirmed: its segment stays
os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_with_journal(directory: Path, claimant: str, accepted: list[tuple[str, int]]) -> None:
    """Run a process that journals ``accepted`` in ``directory`` as ``claimant``, then dies by SIGKILL."""
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(directory), claimant, *(f"{d} {s}" for d, s in accepted)],
        capture_output=True, text=True, timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
