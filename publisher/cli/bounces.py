"""``publisher bounces import``: record the bounces and complaints in a mailbox, then show what they did."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typing import TYPE_CHECKING

import click

from publisher.cli.context import with_publisher
from publisher.cli.output import err, out, summary

if TYPE_CHECKING:
    from rich.table import Table

    from publisher.app import Publisher
    from publisher.delivery.inbox import BounceImportReport


@click.group("bounces")
def group() -> None:
    """Record bounces and complaints that arrive after delivery."""


@group.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Read and report; change nothing (neither subscribers nor the mailbox).")
@click.option("--mark-seen", is_flag=True,
              help="Maildir only, for cron: skip messages flagged Seen, flag each one Seen once recorded.")
@click.option("--verbose", "-v", is_flag=True, help="List every bounce and complaint, and the messages that were not.")
@click.pass_context
def bounces_import(ctx: click.Context, path: Path, dry_run: bool, mark_seen: bool, verbose: bool) -> None:
    """Record the bounces and complaints in PATH: a Maildir, a message file or a directory of .eml files.

    Reads delivery status notifications (RFC 3464), feedback reports (RFC 5965 ARF)
    and classic text bounces (Exim, qmail).  Hard bounces and complaints suppress the
    address at once; soft bounces (mailbox full, temporary failures, spam blocks) after
    [delivery] soft_bounce_limit of them.  Auto-replies and delay warnings are not
    bounces.  The mailbox is only read (unless --mark-seen); unreadable messages are
    listed with the reason and the rest is recorded.
    """
    from rich.progress import Progress

    from publisher.delivery.inbox import InboxError, open_inbox

    try:
        box = open_inbox(path)
    except InboxError as exc:
        raise click.ClickException(str(exc)) from None
    if mark_seen and not box.maildir:
        raise click.UsageError("--mark-seen needs a Maildir (a directory with new/ and cur/)")
    if not box.messages and not box.maildir:
        err.print(f"{path}: no messages here (not a Maildir, and no .eml files)", markup=False, highlight=False)

    async def work(publisher: Publisher) -> BounceImportReport:
        with Progress(console=err.console, disable=not err.is_terminal, transient=True) as progress:
            task = progress.add_task("reading", total=len(box.messages))
            return await publisher.delivery.import_bounces(
                box, dry_run=dry_run, mark_seen_after=mark_seen,
                progress=lambda done: progress.update(task, completed=done),
            )

    report = with_publisher(ctx, work)

    def shown(label: str) -> str:
        return str(path) if box.path.is_file() else str(path / label)

    for label, why in report.unparseable:
        err.print(f"{shown(label)}: unparseable: {why}", markup=False, highlight=False)
    for warning in report.warnings:
        err.print(f"warning: {warning}", markup=False, highlight=False)
    if verbose:
        for line in _bounce_events(report, shown):
            out.print(line, markup=False, highlight=False)
        for label, why in report.not_bounces:
            out.print(f"{shown(label)}: not a bounce: {why}", markup=False, highlight=False)
    out.print(_bounce_summary(report, str(path), dry_run))


def _bounce_events(report: BounceImportReport, shown: Callable[[str], str]) -> list[str]:
    """One line per bounce or complaint: where it was read, whom it concerns, what it did."""
    lines = []
    for event, outcome in report.recorded:
        if outcome is None or not outcome.known:
            result = "not a subscriber" + ("; suppressed" if outcome is not None and outcome.suppressed else "")
        else:
            assert outcome.subscriber is not None
            result = f"subscriber #{outcome.subscriber.id} {outcome.subscriber.status}"
            if event.kind == "soft" and not outcome.newly_suppressed:
                result += f" ({outcome.soft_bounces} soft)"
        recipient = event.recipient or f"(redacted; subscriber #{event.subscriber_id} by Message-ID)"
        status = f" {event.status}" if event.status else ""
        lines.append(f"{shown(event.source)}: {recipient}: {event.kind}{status} → {result}: {event.diagnostic[:160]}")
    return lines


def _bounce_summary(report: BounceImportReport, label: str, dry_run: bool) -> Table:
    rows = [
        ("messages read", report.read),
        ("hard bounces", report.events["hard"]),
        ("soft bounces", report.events["soft"]),
        ("complaints", report.events["complaint"]),
        ("addresses suppressed now", report.suppressed),
        ("unknown addresses (not subscribers)", report.unknown),
        ("not bounces (auto-replies, delay warnings, other mail)", len(report.not_bounces)),
        ("unparseable", len(report.unparseable)),
    ]
    if report.skipped_seen:
        rows.append(("skipped: already flagged Seen", report.skipped_seen))
    return summary(f"bounces from {label}", dry_run, "count", rows)
