"""``publisher subscribers``: add, import, export, list, show, remove, suppress and purge subscribers.

The operator's side of the list; the readers' side (sign-up, confirm, preferences,
unsubscribe) is the web's.  Both go through the same subscriber service.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from publisher.cli.context import CADENCES, STATUSES, with_publisher
from publisher.cli.output import err, out, summary
from subscribers import importer
from subscribers.model import Cadence, Preferences, Source, Status, Subscriber
from subscribers.validation import SubscriberError, normalize_email

if TYPE_CHECKING:
    from rich.table import Table

    from publisher.app import Publisher
    from subscribers import bulk


@click.group("subscribers")
def group() -> None:
    """Add, import, export, list, show, remove, suppress and purge subscribers."""


@group.command("add")
@click.argument("email")
@click.option("--name", default="", help="The subscriber's name, used in the greeting.")
@click.option("--cadence", type=CADENCES, default=Cadence.DAILY.value, show_default=True)
@click.pass_context
def subscribers_add(ctx: click.Context, email: str, name: str, cadence: str) -> None:
    """Add EMAIL as an active subscriber (the operator vouches for them)."""

    from subscribers.service import AlreadySubscribed

    async def work(publisher: Publisher) -> None:
        prefs = Preferences(cadence=Cadence(cadence), timezone=publisher.settings.digest.timezone)
        try:
            sub = await publisher.subscribers.create(email, name=name, prefs=prefs, source=Source.CLI, confirmed=True)
            verb = "added"
        except AlreadySubscribed as exc:
            sub, verb = exc.subscriber, "already known, unchanged:"
        except SubscriberError as exc:
            raise click.ClickException(str(exc)) from None
        out.print(f"{verb} {sub.email} ({sub.cadence}, {sub.status})", highlight=False)

    with_publisher(ctx, work)


@group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--update", "update_existing", is_flag=True,
              help="Give existing subscribers the file's names and preferences (non-empty cells only).")
@click.option("--dry-run", is_flag=True, help="Check the file and report what would happen; change nothing.")
@click.pass_context
def subscribers_import(ctx: click.Context, file: Path, update_existing: bool, dry_run: bool) -> None:
    """Import subscribers from a CSV FILE ('-' reads standard input).

    The header row names the columns: email (required), name, cadence, topics,
    timezone, send_hour; comma, semicolon or tab separated, UTF-8.  New addresses
    become active subscribers; suppressed ones are skipped; invalid rows are listed
    as FILE:LINE: field: reason and the rest is imported (exit 1 if any was invalid).
    """
    from rich.progress import Progress

    label = "<stdin>" if str(file) == "-" else str(file)
    data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()

    async def work(publisher: Publisher) -> bulk.ImportReport:
        with err.console.status(f"checking {label}…"):
            try:
                parsed = await publisher.subscribers.parse_csv(data)
            except importer.ImportFileError as exc:
                raise click.ClickException(f"{label}:{exc.line}: {exc}") from None
        for warning in parsed.warnings:
            err.print(f"{label}: warning: {warning}", markup=False, highlight=False)
        with Progress(console=err.console, disable=not err.is_terminal) as progress:
            task = progress.add_task("checking" if dry_run else "importing", total=len(parsed.rows))
            return await publisher.subscribers.import_rows(
                parsed, update_existing=update_existing, dry_run=dry_run,
                progress=lambda done, _total: progress.update(task, completed=done),
            )

    report = with_publisher(ctx, work)
    for error in report.invalid:
        err.print(f"{label}:{error}", markup=False, highlight=False)
    out.print(_import_summary(report, label, dry_run))
    if report.invalid:
        ctx.exit(1)


def _import_summary(report: bulk.ImportReport, label: str, dry_run: bool) -> Table:
    return summary(f"import of {label}", dry_run, "rows", report.lines())


@group.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True,
              help="csv re-imports with `subscribers import`; jsonl is the API's JSON, one subscriber a line.")
@click.option("--output", "-o", default="-", type=click.Path(dir_okay=False, allow_dash=True),
              help="File to write (default: standard output); written in full or not at all.")
@click.option("--status", type=STATUSES, help="Only subscribers with this status.")
@click.pass_context
def subscribers_export(ctx: click.Context, fmt: str, output: str, status: str | None) -> None:
    """Write every subscriber (or those with --status) as CSV or JSON Lines."""
    with click.open_file(output, "w", encoding="utf-8", atomic=output != "-") as stream:

        async def work(publisher: Publisher) -> int:
            return await publisher.subscribers.export(
                stream, fmt="jsonl" if fmt == "jsonl" else "csv", status=Status(status) if status else None
            )

        written = with_publisher(ctx, work)
    err.print(f"exported {written} subscriber(s) to {'standard output' if output == '-' else output}",
              markup=False, highlight=False)


@group.command("list")
@click.option("--status", type=STATUSES, help="Only subscribers with this status.")
@click.option("--search", "query", default="", help="Only addresses or names containing this text.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--after", type=click.IntRange(min=0), default=0, help="Start after this id (the next page).")
@click.pass_context
def subscribers_list(ctx: click.Context, status: str | None, query: str, limit: int, after: int) -> None:
    """List subscribers by id, a page at a time."""
    from rich.table import Table
    from rich.text import Text

    wanted = Status(status) if status else None

    page = with_publisher(
        ctx, lambda publisher: publisher.subscribers.page(query=query, status=wanted, after=after, limit=limit)
    )
    rows, total = page.subscribers, page.total
    table = Table("id", "email", "name", "cadence", "status", "since")
    for s in rows:
        table.add_row(str(s.id), Text(s.email), Text(s.name), s.cadence, s.status, f"{s.created_at:%Y-%m-%d %H:%M}")
    out.print(table)
    out.print(f"{len(rows)} of {total} subscriber(s)", highlight=False)
    if rows and len(rows) == limit:
        out.print(f"next page: --after {rows[-1].id}", highlight=False)


@group.command("show")
@click.argument("email")
@click.pass_context
def subscribers_show(ctx: click.Context, email: str) -> None:
    """Show everything stored about EMAIL, and whether it is suppressed."""
    from rich.table import Table
    from rich.text import Text


    async def work(publisher: Publisher) -> tuple[Subscriber, str | None]:
        address = _address(email)
        found = await publisher.subscribers.find(address)
        reason = await publisher.subscribers.suppression(address)
        if found is None:
            suppressed = f" (the address is suppressed: {reason})" if reason else ""
            raise click.ClickException(f"{address} is not a subscriber{suppressed}")
        return found, reason

    found, reason = with_publisher(ctx, work)
    table = Table("field", "value", show_header=False)
    for key, value in found.to_dict().items():
        shown = ", ".join(value) if isinstance(value, list) else "" if value is None else str(value)
        table.add_row(key, Text(shown))
    table.add_row("suppressed", Text(reason or "no"))
    out.print(table)


@group.command("remove")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Don't ask for confirmation.")
@click.pass_context
def subscribers_remove(ctx: click.Context, email: str, yes: bool) -> None:
    """Erase EMAIL's personal data: their record and delivery history.

    Only a hash of the address stays, on the suppression list, so no import adds it
    back; the person can still sign up again themselves.
    """

    async def work(publisher: Publisher) -> str:
        address = _address(email)
        found = await publisher.subscribers.find(address)
        if found is None:
            raise click.ClickException(f"{address} is not a subscriber")
        if not yes:
            click.confirm(f"Erase {address} ({found.status}, since {found.created_at:%Y-%m-%d})?", abort=True)
        if not await publisher.subscribers.erase(found.id):
            raise click.ClickException(f"{address} is not a subscriber")
        return address

    address = with_publisher(ctx, work)
    out.print(f"erased {address}; the address stays on the suppression list", highlight=False)


def _reason(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    from subscribers.store import MAX_REASON  # read from the schema: the database library, only when used

    if not value.strip() or len(value.strip()) > MAX_REASON:
        raise click.BadParameter(f"give 1 to {MAX_REASON} characters")
    return value.strip()


@group.command("suppress")
@click.argument("email")
@click.option("--reason", default="manual", show_default=True, callback=_reason,
              help="Why, kept with the suppression entry.")
@click.pass_context
def subscribers_suppress(ctx: click.Context, email: str, reason: str) -> None:
    """Never mail EMAIL again: put it on the suppression list, unsubscribing it if subscribed.

    Works for addresses that never subscribed too (a do-not-mail list).
    """

    async def work(publisher: Publisher) -> tuple[str, Subscriber | None]:
        address = _address(email)
        before = await publisher.subscribers.find(address)
        await publisher.subscribers.suppress(address, reason=reason)
        return address, before

    address, before = with_publisher(ctx, work)
    if before is None:
        outcome = "not a subscriber; it can't be imported or added"
    elif before.status in (Status.ACTIVE, Status.PENDING):
        outcome = f"unsubscribed subscriber #{before.id} (was {before.status})"
    else:
        outcome = f"subscriber #{before.id} was already {before.status}"
    out.print(f"suppressed {address}: {outcome}", highlight=False)


def _address(email: str) -> str:
    """EMAIL as stored, or a clean error for one that isn't an address."""
    try:
        return normalize_email(email)
    except SubscriberError as exc:
        raise click.ClickException(str(exc)) from None


@group.command("purge")
@click.pass_context
def subscribers_purge(ctx: click.Context) -> None:
    """Delete the sign-ups not confirmed within [subscribers] purge_pending_after (the daemon
    does it daily); they may sign up again."""

    async def work(publisher: Publisher) -> tuple[int | None, str]:
        return await publisher.subscribers.purge_pending(), str(publisher.settings.subscribers.purge_pending_after)

    purged, after = with_publisher(ctx, work)
    if purged is None:
        raise click.ClickException("[subscribers] purge_pending_after is off (\"0\"): nothing was purged")
    out.print(f"purged {purged} sign-up(s) not confirmed within {after}", highlight=False, markup=False)
