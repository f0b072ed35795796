"""The crash record of accepted messages: one append-only journal per delivering process.

The ledger's outcomes are written in batches (:mod:`publisher.delivery.outcomes`), a
few hundred messages per transaction: fast, but a process killed between two batches
forgets that the messages since the last one went out, and sends them again.  So each
message the transport accepted is also written here, as one line ``<digest id>
<subscriber id>``, before its sender takes the next message.

**Why one unbuffered write is durable enough.**  Each line is one ``os.write()`` to a
file opened ``O_APPEND``: when the call returns, the bytes are in the kernel's page
cache, part of the file for every process that reads it, and they stay there if this
process is killed (SIGKILL, the OOM killer, a crash of the interpreter): the kernel,
not the process, writes them to the disk.  Only a crash of the machine itself (power,
kernel panic) can lose them, and that needs ``fsync``, which costs a disk flush per
message; a machine crash also loses the messages on the wire and the relay's queue, so
the journal does not try to survive one.  An ``O_APPEND`` write of a line this small is
never interleaved with another (the file offset moves atomically with it).

**Segments.**  The journal is cut into segment files, one per ledger batch: when the
outcomes are handed to the ledger (:meth:`Journal.rotate`, at the same moment, with
no ``await`` between, so a segment holds exactly the messages of one batch), a new
segment starts; once the ledger has that batch, its segment is deleted
(:meth:`Journal.confirm`).  So the journal only ever holds messages the ledger may not
have yet, and a replay is at most a few batches.

**Whose journal.**  Each process names its journal for its claimant (its node id,
``host:pid:start``) and holds an exclusive ``flock`` on its ``.lock`` file while it
lives.  The kernel drops that lock when the process dies, however it dies, so another
process on this machine (with the same ``[storage] data_dir``) that can take the lock
knows the owner is dead: it replays the owner's segments into the ledger (those rows
become ``sent``) and gives the owner's other claimed rows back at once instead of
waiting out their lease (:func:`publisher.delivery.outcomes.recover`).  Two processes
on one machine never share a journal.
"""

from __future__ import annotations

import fcntl
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

LOCK_SUFFIX = ".lock"
SEGMENT_SUFFIX = ".log"


def _file_name(claimant: str) -> str:
    """A file name for a claimant's journal: its id, made safe, and a random part (two
    processes started in the same microsecond on one host still get two journals)."""
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', claimant)}-{uuid.uuid4().hex[:8]}"


def read(segments: Iterable[Path]) -> dict[str, list[int]]:
    """The accepted messages in these segment files, ``{digest id: subscriber ids}``.

    A line without its newline (a full disk cut the write short: "instant-x 12" may
    have become "instant-x 1") is skipped: that message is one of those in flight, which
    may go again.
    """
    accepted: dict[str, list[int]] = {}
    for segment in segments:
        *whole, _cut = segment.read_text(encoding="utf-8", errors="replace").split("\n")
        for line in whole:
            digest, _, subscriber = line.partition(" ")
            if digest and subscriber.isdigit():
                accepted.setdefault(digest, []).append(int(subscriber))
    return accepted


@dataclass
class Journal:
    """This process's journal: its lock, the segment being written, the segments written before."""

    directory: Path
    claimant: str
    name: str
    lock_fd: int
    _segment: int = 0
    _fd: int = -1
    _written: bool = False  # something was written to the current segment
    _unconfirmed: list[Path] = field(default_factory=list)  # rotated out; the ledger may not have them yet

    @classmethod
    def open(cls, directory: Path, claimant: str) -> Journal:
        """Take a new journal for ``claimant`` in ``directory``, locked until this process ends.

        The lock file is made and locked under a hidden name and then renamed into place,
        so no other process ever sees it unlocked and takes this living process for dead.
        """
        directory.mkdir(parents=True, exist_ok=True)
        name = _file_name(claimant)
        hidden = directory / f".{name}{LOCK_SUFFIX}.new"
        fd = os.open(hidden, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"{claimant}\n".encode())
        os.rename(hidden, directory / f"{name}{LOCK_SUFFIX}")
        journal = cls(directory, claimant, name, fd)
        journal._start_segment()
        return journal

    def _segment_path(self, number: int) -> Path:
        return self.directory / f"{self.name}.{number}{SEGMENT_SUFFIX}"

    def _start_segment(self) -> None:
        self._segment += 1
        self._fd = os.open(self._segment_path(self._segment), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._written = False

    def accepted(self, digest_id: str, subscriber_id: int) -> None:
        """The transport accepted this message: on record before the caller goes on (one write, no buffer)."""
        os.write(self._fd, f"{digest_id} {subscriber_id}\n".encode())
        self._written = True

    def rotate(self) -> Path | None:
        """End the current segment (its messages go to the ledger now) and start the next;
        the ended segment, for :meth:`confirm` once the ledger has them (None: it was empty)."""
        if not self._written:
            return None
        ended = self._segment_path(self._segment)
        os.close(self._fd)
        self._start_segment()
        self._unconfirmed.append(ended)
        return ended

    def confirm(self, segment: Path | None) -> None:
        """The ledger has the messages of ``segment``: it is no longer needed."""
        if segment is not None:
            segment.unlink(missing_ok=True)
            self._unconfirmed.remove(segment)

    def leftovers(self) -> dict[str, list[int]]:
        """Messages of segments this process rotated out but never confirmed (a run that
        failed while writing its outcomes): to replay before its next run."""
        return read(self._unconfirmed)

    def forget_leftovers(self) -> None:
        """The leftovers are in the ledger now."""
        for segment in self._unconfirmed:
            segment.unlink(missing_ok=True)
        self._unconfirmed.clear()

    def close(self) -> None:
        """End the journal of a process stopping cleanly, every outcome written: nothing to replay."""
        os.close(self._fd)
        for path in [*self._unconfirmed, self._segment_path(self._segment)]:
            path.unlink(missing_ok=True)
        (self.directory / f"{self.name}{LOCK_SUFFIX}").unlink(missing_ok=True)
        os.close(self.lock_fd)


@dataclass(frozen=True)
class Orphan:
    """The journal of a process that died: who it was and what its transport had accepted."""

    claimant: str
    accepted: dict[str, list[int]]


@contextmanager
def orphans(directory: Path) -> Iterator[list[Orphan]]:
    """The journals in ``directory`` whose process died, locked while the caller replays them.

    A journal whose lock can be taken has no living owner.  When the block ends without
    an error, their files are deleted (the caller has put them in the ledger); if it
    fails, they stay for the next try.  Two processes looking at once never replay one
    journal twice: the second finds it locked (or gone).
    """
    found: list[tuple[Orphan, int, list[Path]]] = []
    try:
        for lock in sorted(directory.glob(f"*{LOCK_SUFFIX}")):
            try:
                fd = os.open(lock, os.O_RDWR)
            except FileNotFoundError:  # another process replayed it just now
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its process lives
                os.close(fd)
                continue
            if not lock.exists():  # replayed and deleted between our open and our lock
                os.close(fd)
                continue
            name = lock.name.removesuffix(LOCK_SUFFIX)
            segments = sorted(directory.glob(f"{name}.*{SEGMENT_SUFFIX}"))
            claimant = lock.read_text(encoding="utf-8", errors="replace").strip()
            found.append((Orphan(claimant, read(segments)), fd, [*segments, lock]))
        yield [orphan for orphan, _, _ in found]
        for _, _, paths in found:
            for path in paths:  # the lock file last: it marks the journal as there until the end
                path.unlink(missing_ok=True)
    finally:
        for _, fd, _ in found:
            os.close(fd)
