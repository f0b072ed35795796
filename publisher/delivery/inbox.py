"""Bounces and complaints from a mailbox: find the messages, read them, record what they say.

The adapter around :mod:`publisher.mail.bounces` (the parsing) and
:func:`subscribers.service.record_bounce` (the rules) that ``publisher bounces
import`` uses.  A path is one of:

* a Maildir: a directory with ``new/`` and/or ``cur/`` (what Postfix, Exim, Dovecot
  or getmail deliver a bounce address into);
* one message file (``.eml`` or any other name);
* a directory of ``.eml`` (or ``.msg``) files, e.g. saved from a mail client.

Reading never changes the mailbox.  With ``mark_seen`` (Maildir only) the import is
incremental, the way a mail client reads: messages already flagged Seen are
skipped, and each message is flagged Seen (``new/X`` → ``cur/X:2,S``, a rename;
nothing is deleted) once what it reports is recorded.  Without it every run reads
every message again: harmless for hard bounces and complaints, which suppress once,
but each run would count a soft bounce again.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.mail.bounces import MAX_MESSAGE_BYTES, BounceEvent, Kind, parse_report
from subscribers import service
from subscribers.validation import SubscriberError, normalize_email

MESSAGE_SUFFIXES = (".eml", ".msg")
_INFO = ":2,"  # Maildir: "unique:2,FLAGS"


class InboxError(Exception):
    """The path can't be read as a mailbox, a message or a directory of messages."""


@dataclass(frozen=True, slots=True)
class InboxMessage:
    path: Path
    label: str  # what the operator is shown: "new/1772438403.V801I4M5.mail" or "bounce.eml"
    seen: bool  # flagged Seen in a Maildir


@dataclass(frozen=True, slots=True)
class Inbox:
    path: Path
    maildir: bool
    messages: list[InboxMessage]


def _seen(name: str) -> bool:
    return _INFO in name and "S" in name.rpartition(_INFO)[2]


def open_inbox(path: Path) -> Inbox:
    """The messages under ``path`` (see the module's docstring), in a stable order."""
    try:
        if path.is_file():
            return Inbox(path, False, [InboxMessage(path, path.name, False)])
        if not path.is_dir():
            raise InboxError(f"{path}: no such file or directory")
        subdirs = [path / name for name in ("new", "cur") if (path / name).is_dir()]
        if subdirs:
            messages = [
                InboxMessage(entry, f"{sub.name}/{entry.name}", sub.name == "cur" and _seen(entry.name))
                for sub in subdirs
                for entry in sorted(sub.iterdir())
                if not entry.name.startswith(".") and entry.is_file()
            ]
            return Inbox(path, True, messages)
        files = sorted(
            entry for entry in path.iterdir()
            if entry.suffix.lower() in MESSAGE_SUFFIXES and not entry.name.startswith(".") and entry.is_file()
        )
        return Inbox(path, False, [InboxMessage(entry, entry.name, False) for entry in files])
    except OSError as exc:
        raise InboxError(f"{path}: {exc.strerror or exc}") from None


def mark_seen(message: InboxMessage) -> Path:
    """Flag a Maildir message Seen the way mail clients do: a rename into ``cur/``."""
    name = message.path.name
    base, _, flags = name.partition(_INFO)
    target = message.path.parent.parent / "cur" / f"{base}{_INFO}{''.join(sorted(set(flags) | {'S'}))}"
    if target != message.path:
        os.rename(message.path, target)
    return target


@dataclass
class BounceImportReport:
    """What an import found and did; ``unparseable`` and ``not_bounces`` list (label, why)."""

    read: int = 0
    events: Counter[Kind] = field(default_factory=Counter)  # bounces and complaints found, by kind
    suppressed: int = 0  # addresses this import put on the suppression list
    unknown: int = 0  # bounces and complaints about addresses that are no subscriber's
    skipped_seen: int = 0
    not_bounces: list[tuple[str, str]] = field(default_factory=list)
    unparseable: list[tuple[str, str]] = field(default_factory=list)
    recorded: list[tuple[BounceEvent, service.BounceOutcome | None]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _address(recipient: str) -> str | None:
    if not recipient:
        return None
    try:
        return normalize_email(recipient)
    except SubscriberError:
        return None


async def import_bounces(
    engine: AsyncEngine,
    inbox: Inbox,
    *,
    sending_domain: str,
    soft_limit: int,
    now: datetime,
    dry_run: bool = False,
    mark_seen_after: bool = False,
    progress: Callable[[int], None] | None = None,
) -> BounceImportReport:
    """Read every message of ``inbox`` and record its bounces and complaints (one transaction each).

    ``dry_run`` records nothing and marks nothing (the outcomes are worked out and
    rolled back, so two soft bounces for one address in one dry run count once each).
    """
    report = BounceImportReport()
    for done, message in enumerate(inbox.messages, start=1):
        if progress is not None:
            progress(done)
        if mark_seen_after and message.seen:
            report.skipped_seen += 1
            continue
        try:
            if message.path.stat().st_size > MAX_MESSAGE_BYTES:
                report.read += 1
                report.unparseable.append((message.label, f"larger than {MAX_MESSAGE_BYTES // (1024 * 1024)} MB"))
                continue
            data = message.path.read_bytes()
        except OSError as exc:  # gone (another reader moved it) or not readable: report it, go on
            report.unparseable.append((message.label, f"could not be read: {exc.strerror or exc}"))
            continue
        report.read += 1
        parsed = parse_report(data, source=message.label, sending_domain=sending_domain)
        if parsed.verdict == "unparseable":
            report.unparseable.append((message.label, parsed.reason))
        elif parsed.verdict == "not-bounce":
            report.not_bounces.append((message.label, parsed.reason))
        for event in parsed.events:
            await _record(engine, report, event, soft_limit=soft_limit, now=now, dry_run=dry_run)
        if mark_seen_after and not dry_run:
            try:
                mark_seen(message)
            except OSError as exc:
                report.warnings.append(f"{message.label}: could not be flagged Seen: {exc.strerror or exc}")
    return report


async def _record(
    engine: AsyncEngine, report: BounceImportReport, event: BounceEvent, *, soft_limit: int, now: datetime,
    dry_run: bool,
) -> None:
    report.events[event.kind] += 1
    address = _address(event.recipient)
    if address is None and event.subscriber_id is None:
        report.unknown += 1
        report.recorded.append((event, None))
        return
    outcome = await service.record_bounce(
        engine, email=address, subscriber_id=None if address else event.subscriber_id,
        digest_id=None if address else event.digest_id, kind=event.kind, now=now, soft_limit=soft_limit,
        diagnostic=event.diagnostic, dry_run=dry_run,
    )
    report.suppressed += outcome.newly_suppressed
    report.unknown += not outcome.known
    report.recorded.append((event, outcome))
