"""A file lock so only one process on this machine delivers at a time.

Rows marked ``sending`` are the ones a delivery run may be handing to the transport
right now.  With an exclusive lock held for the whole run, a ``sending`` row seen by
whoever takes the lock next can only be left over from a process that died, so it
is safe to send again at once.  Without the lock, ``publisher send`` and the daemon
could both take the same rows.  (Several machines need leases in the database
instead; the lock is for the embedded, single-machine setup.)
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive(path: Path) -> Iterator[bool]:
    """Try to take the lock at ``path``; yields whether it was taken (never waits).

    The lock goes with the process: if it dies, the kernel releases it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def holder(path: Path) -> str:
    """The pid written by the process holding the lock, for messages ("" if unknown)."""
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError:
        return ""
