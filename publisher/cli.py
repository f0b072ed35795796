"""The ``publisher`` command: parse arguments, call the service, print.

No business logic lives here; every command is a thin wrapper around ``Publisher``
or the subscriber store.  A bad config prints one line per problem and exits 2; a
content problem found by ``check`` exits 1.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import IntEnum
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from publisher import logs
from publisher.app import Publisher, template_problems, utcnow
from publisher.config import ConfigError, Settings, load_settings
from publisher.content.model import Article, Severity
from publisher.delivery import ledger
from publisher.delivery.inbox import BounceImportReport, InboxError, import_bounces, open_inbox
from publisher.delivery.model import DeliveryReport, DigestState
from publisher.delivery.service import DigestCopy, DigestNotOpen, NothingToPreview, SendResult
from publisher.digest.plan import PlannedDigest
from publisher.digest.resend import UnknownArticle
from publisher.mail.dkim import DkimError
from publisher.mail.transport import DeliveryError
from publisher.runtime import nodes
from publisher.store import articles as article_store
from publisher.store.articles import ArticleState, IngestResult
from publisher.store.db import create_engine, revisions, upgrade
from publisher.sources.intake import check_content
from publisher.templating import builtin_templates_dir, make_environment
from subscribers import importer, service
from subscribers import store as subscriber_store
from subscribers.model import Cadence, Preferences, Source, Status, Subscriber
from subscribers.validation import SubscriberError, email_hash, normalize_email

T = TypeVar("T")


class ExitCode(IntEnum):
    """What a command's exit status means (README, "Exit codes"): cron and CI branch on it."""

    OK = 0  # done, or nothing to do
    ERROR = 1  # a command failed (a ClickException), or some input was skipped
    USAGE = 2  # bad arguments (click) or a bad config file
    UNREACHABLE = 3  # the mail transport could not be reached: nothing was sent
    REMAINING = 4  # messages remain: deferred, paused, or held by another node


out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
CADENCES = click.Choice([c.value for c in Cadence])
STATUSES = click.Choice([s.value for s in Status])


def run_loop(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` on uvloop where it is installed, else on asyncio's own loop.

    uvloop sends about 1.5 times the messages per second of the default loop with the
    same aiosmtplib code (measured: 2,380/s against 1,610/s on this machine).
    """
    try:
        import uvloop  # optional: absent on platforms it does not support
    except ImportError:
        return asyncio.run(work)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(work)


def _settings(ctx: click.Context) -> Settings:
    try:
        return load_settings(ctx.obj["config"])
    except ConfigError as exc:
        _config_error(exc.problems)


def _config_error(problems: Sequence[str]) -> NoReturn:
    """Print each config problem on a line of its own and exit 2, as a bad config does."""
    for problem in problems:
        err.print(f"[red]config error:[/red] {escape(problem)}", highlight=False)
    raise SystemExit(ExitCode.USAGE)


def _with_publisher(ctx: click.Context, work: Callable[[Publisher], Awaitable[T]]) -> T:
    """Run ``work`` with a started Publisher on a fresh event loop, closing it after."""
    settings = _settings(ctx)

    async def main() -> T:
        publisher = Publisher(settings)
        try:
            await publisher.start()
            return await work(publisher)
        finally:
            await publisher.close()

    try:
        return run_loop(main())
    except DkimError as exc:
        _config_error([str(exc)])


@click.group()
@click.option(
    "--config", "config", type=click.Path(path_type=Path), envvar="PUBLISHER_CONFIG",
    default="config.toml", show_default=True, help="Config file (or PUBLISHER_CONFIG).",
)
@click.option("--log-level", default="INFO", show_default=True, envvar="PUBLISHER_LOG_LEVEL",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Least severe log records written to stderr (or PUBLISHER_LOG_LEVEL).")
@click.option("--log-format", default="text", show_default=True, envvar="PUBLISHER_LOG_FORMAT",
              type=click.Choice(["text", "json"], case_sensitive=False),
              help="Log lines for people, or one JSON object per line (or PUBLISHER_LOG_FORMAT).")
@click.version_option(package_name="publisher")
@click.pass_context
def main(ctx: click.Context, config: Path, log_level: str, log_format: str) -> None:
    """Publish Markdown articles as RSS, Atom and JSON feeds and email digests."""
    # force=False: run in-process by a program (or a test) that set up logging itself, leave it.
    logs.configure(log_level, "json" if log_format.lower() == "json" else "text", force=False)
    # Third-party chatter (job added, migration context) drowns what the operator needs.
    for noisy in ("apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    ctx.obj = {"config": config}


@main.command()
@click.argument("directory", type=click.Path(path_type=Path))
def init(directory: Path) -> None:
    """Create a starter config.toml and a sample article in DIRECTORY."""
    starter = builtin_templates_dir() / "init"
    targets = [(src, directory / src.relative_to(starter)) for src in sorted(starter.rglob("*")) if src.is_file()]
    existing = [str(dst) for _, dst in targets if dst.exists()]
    if existing:
        raise click.ClickException(f"not overwriting existing files: {', '.join(existing)}")
    for src, dst in targets:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        out.print(f"created {dst}", highlight=False)
    out.print(f"next: cd {directory} && publisher check && publisher run", highlight=False)


@main.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate the config, every template and every article; exit 1 if any error (warnings alone exit 0)."""
    settings = _settings(ctx)
    scans = check_content(settings)  # the settings alone: no database engine to parse Markdown
    problems = [problem for scan in scans for problem in scan.problems]
    for problem in problems:
        out.print(str(problem), highlight=False, markup=False)
    broken_templates = template_problems(settings, make_environment(settings.site.templates_dir))
    for template_problem in broken_templates:
        out.print(template_problem, highlight=False, markup=False, soft_wrap=True)
    now = utcnow()
    for article in sorted((a for scan in scans for a in scan.articles if a.published > now), key=_publish_order):
        out.print(f"{article.source_path}: scheduled for {_when(article.published)} ({article.id})",
                  highlight=False, markup=False)
    errors = sum(problem.severity == Severity.ERROR for problem in problems) + len(broken_templates)
    warnings = f", {len(problems) + len(broken_templates) - errors} warning(s)" if len(problems) > errors else ""
    if errors:
        err.print(f"[red]{errors} error(s)[/red]{warnings}")
        ctx.exit(1)
    out.print(f"config, templates and content OK ({settings.content.dir}){warnings}", highlight=False)


@main.command()
@click.pass_context
def build(ctx: click.Context) -> None:
    """Ingest the content and write the feeds to [site] output_dir; exit 1 if a file was skipped
    or the feeds could not be written."""

    async def work(publisher: Publisher) -> tuple[IngestResult, str | None]:
        result = await publisher.scan()  # always writes the feeds on a fresh Publisher
        skipped = {problem.path for problem in result.skipped}
        out.print(
            f"{len(result.new)} new, {len(result.updated)} updated, {result.unchanged} unchanged, "
            f"{len(result.scheduled)} scheduled, {len(skipped)} skipped; "
            f"{len(publisher.feeds)} feeds in {publisher.settings.site.output_dir}",
            highlight=False,
        )
        return result, publisher.static_files_problem

    result, unwritten = _with_publisher(ctx, work)
    for problem in result.skipped:
        err.print(f"skipped: {problem}", highlight=False, markup=False)
    if unwritten is not None:  # writing them is what this command is for
        err.print(unwritten, highlight=False, markup=False)
    if result.skipped or unwritten is not None:
        ctx.exit(1)


@main.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the daemon: scheduler and web server, until SIGTERM or Ctrl-C."""
    from publisher.runtime.daemon import run_daemon

    _run_node(ctx, run_daemon)


@main.command()
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Run a delivery-only node (PostgreSQL): no web server, no schedule, until SIGTERM or Ctrl-C."""
    from publisher.runtime.daemon import run_worker

    _run_node(ctx, run_worker)


def _run_node(ctx: click.Context, node: Callable[[Settings, Callable[[], Settings]], Coroutine[Any, Any, None]]) -> None:
    from publisher.runtime.daemon import DaemonError

    settings = _settings(ctx)
    try:
        run_loop(node(settings, partial(load_settings, ctx.obj["config"])))
    except KeyboardInterrupt:  # Ctrl-C before the node's own handlers were installed
        pass
    except DaemonError as exc:
        raise click.ClickException(str(exc)) from None
    except DkimError as exc:
        _config_error([str(exc)])


@main.command()
@click.option(
    "--cadence", type=CADENCES,
    help="Plan this cadence's digests due now (default: instant). Daily and weekly: the subscribers whose "
    "send time, in their timezone, has passed since their last digest.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be sent; change nothing.")
@click.option("--wait", is_flag=True, help="Also wait out deferred messages until every digest is finished or paused.")
@click.option("--test", "test_to", metavar="EMAIL",
              help="Send one copy of the next digest to EMAIL, marked as a test ([TEST] subject, "
              "X-Publisher-Test header); outside the ledger, no cursor moves.")
@click.option("--article", metavar="ARTICLE", help="With --test: a copy of this article (id, slug, URL or entry id).")
@click.pass_context
def send(
    ctx: click.Context, cadence: str | None, dry_run: bool, wait: bool, test_to: str | None, article: str | None
) -> None:
    """Scan, plan the digests due now and deliver everything pending (with a progress bar)."""
    if article is not None and test_to is None:
        raise click.UsageError("--article goes with --test EMAIL (to mail an article to everyone: publisher resend)")
    if test_to is not None and (dry_run or wait):
        raise click.UsageError("--test sends one copy at once: leave out --dry-run and --wait")

    async def work(publisher: Publisher) -> ExitCode:
        wanted = Cadence(cadence or Cadence.INSTANT)
        if test_to is not None:
            return await _send_test(publisher, test_to, Cadence(cadence) if cadence else None, article)
        if dry_run:  # scan and plan in a transaction rolled back: no article stored, no feed written
            async with publisher.rehearse(wanted) as rehearsal:
                _print_planned(rehearsal.planned, "would send", rehearsal.nothing_due)
            return ExitCode.OK
        await publisher.scan()
        planned = await publisher.plan([wanted])
        _print_planned(planned, "planned", "" if planned else await publisher.why_nothing_due(wanted))
        total = await ledger.due_count(publisher.engine, utcnow())
        with _progress_bar() as (bar, task):
            bar.update(task, total=total or None)
            started = time.monotonic()

            def progress(report: DeliveryReport) -> None:
                rate = report.handled / max(time.monotonic() - started, 1e-6)
                bar.update(task, completed=report.handled, rate=rate)

            report = await publisher.deliver(wait=wait, progress=progress)
        return _report_delivery(report, await ledger.remaining(publisher.engine))

    ctx.exit(_with_publisher(ctx, work))


async def _send_test(publisher: Publisher, to: str, cadence: Cadence | None, article: str | None) -> ExitCode:
    try:
        copy = await publisher.send_test(to, cadence=cadence, article=article)
    except (NothingToPreview, UnknownArticle, SubscriberError) as exc:
        raise click.ClickException(_nothing(exc)) from None
    except DeliveryError as exc:
        if exc.code is None:  # never connected: the same outcome as a send that can't reach it
            err.print(f"not sent: cannot reach the transport: {exc}", markup=False, highlight=False)
            return ExitCode.UNREACHABLE
        raise click.ClickException(f"the test copy to {to} was refused: {exc}") from None
    out.print(f"sent a test copy to {copy.recipient}: {copy.subject} ({copy.article_count} article(s))",
              markup=False, highlight=False)
    return ExitCode.OK


def _nothing(exc: NothingToPreview | UnknownArticle | SubscriberError) -> str:
    """The one-line reason a preview or test send has nothing to show."""
    if isinstance(exc, UnknownArticle):
        closest = "; ".join(f"{ident} ({title})" for ident, title in exc.closest)
        hint = f"; closest: {closest}" if closest else "; `publisher build` publishes the content first"
        return f"no published article has the id, slug, URL or feed entry id {exc.reference!r}{hint}"
    return str(exc)


@main.command()
@click.option("--cadence", type=CADENCES, help="The digest of this cadence (default: the subscriber's, else instant).")
@click.option("--subscriber", metavar="EMAIL", help="Their copy, with their links (default: a made-up reader).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the files here (default: a new folder under [storage] data_dir/previews).")
@click.pass_context
def preview(ctx: click.Context, cadence: str | None, subscriber: str | None, out_dir: Path | None) -> None:
    """Write the next digest's HTML, text and whole message, as `send` would mail it now; change nothing.

    Exits 1, saying why, when there is nothing to preview.
    """

    async def work(publisher: Publisher) -> tuple[DigestCopy, Path]:
        copy = await publisher.next_copy(Cadence(cadence) if cadence else None, subscriber=subscriber)
        previews = publisher.settings.storage.data_dir / "previews"
        previews.mkdir(parents=True, exist_ok=True)
        return copy, out_dir or Path(tempfile.mkdtemp(prefix=f"{utcnow():%Y%m%dT%H%M%S}-", dir=previews))

    try:
        copy, target = _with_publisher(ctx, work)
    except (NothingToPreview, SubscriberError) as exc:
        raise click.ClickException(_nothing(exc)) from None
    target.mkdir(parents=True, exist_ok=True)
    files = {"digest.html": copy.html.encode(), "digest.txt": copy.text.encode(), "digest.eml": copy.message}
    out.print(f"subject: {copy.subject}", markup=False, highlight=False)
    out.print(f"to: {copy.recipient} ({copy.article_count} article(s))", markup=False, highlight=False)
    for name, data in files.items():
        (target / name).write_bytes(data)
        out.print(str(target / name), markup=False, highlight=False)


def _print_planned(planned: list[PlannedDigest], verb: str, nothing_due: str) -> None:
    for digest in planned:
        out.print(f"{verb} {digest.id}: {len(digest.article_seqs)} article(s) to {digest.recipients} subscriber(s)",
                  highlight=False)
    if not planned:
        out.print(nothing_due, highlight=False, markup=False)


def _report_delivery(report: DeliveryReport, left: ledger.Remaining) -> ExitCode:
    """Print what a delivery run did and what it left; the exit code that tells cron which."""
    r = report
    out.print(f"sent {r.sent}, deferred {r.deferred}, failed {r.failed}, cancelled {r.cancelled}", highlight=False)
    for digest_id in r.paused:
        err.print(f"[red]paused[/red] {digest_id}: see `publisher status`; `publisher resume {digest_id}` "
                  "continues it", highlight=False)
    if r.unreachable:
        err.print(f"not sent: {r.unreachable}; {left.total} message(s) wait for it. Run `publisher send` again "
                  "once it answers, or `publisher send --wait` to keep trying", markup=False, highlight=False)
        return ExitCode.UNREACHABLE
    if left.total:
        parts = []
        if left.deferred:
            parts.append(f"{left.deferred} deferred, next try at {_when(left.next_retry)}")
        if left.held:
            parts.append(f"{left.held} held by another node, taken over at {_when(left.held_until)} if it died")
        if left.pending:
            parts.append(f"{left.pending} not tried yet (another process is delivering, or the run was stopped)")
        err.print(f"{left.total} message(s) remain: {'; '.join(parts)}. `publisher send --wait` waits them out",
                  markup=False, highlight=False)
    return ExitCode.REMAINING if left.total or r.paused else ExitCode.OK


@contextmanager
def _progress_bar() -> Iterator[tuple[Progress, TaskID]]:
    """A progress bar on stderr with the count, the rate and the time left."""
    columns = (
        TextColumn("delivering"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>6.0f} msg/s"), TimeRemainingColumn(),
    )
    # Drawn on a terminal only: elsewhere (a pipe, journald, JSON logs) it would only add blank lines.
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        yield bar, bar.add_task("delivering", total=None, rate=0.0)


@main.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """The running daemon (next job runs, last scan, recent errors), deliveries to do, the latest digests."""

    async def gather(
        publisher: Publisher,
    ) -> tuple[list[nodes.Node], list[Article], dict[str, int], list[ledger.DigestSummary]]:
        return (
            await nodes.live(publisher.engine, utcnow()),
            await article_store.scheduled(publisher.engine),
            await ledger.totals(publisher.engine),
            await ledger.states(publisher.engine),
        )

    running, scheduled, totals, states = _with_publisher(ctx, gather)
    _print_nodes(running)
    _print_scheduled(scheduled)
    to_do = ", ".join(f"{totals.get(state, 0)} {state}" for state in ("pending", "sending", "deferred", "failed"))
    out.print(f"deliveries of unfinished digests: {to_do}", highlight=False)
    out.print()
    counted = ("pending", "sending", "deferred", "sent", "failed", "cancelled")
    labels = ("pend", "send", "defer", "sent", "fail", "cncl")  # narrow: fits 80 columns
    table = Table(
        Column("digest", no_wrap=True), Column("status", no_wrap=True),
        *(Column(label, justify="right", no_wrap=True) for label in labels), box=None,
    )
    for d in states:
        counts = d.counts
        table.add_row(
            d.id, d.status,
            *(str(counts.get(state, 0)) for state in counted),
        )
    out.print(table)
    for d in states:
        if d.status == DigestState.PAUSED:
            out.print(f"{d.id} paused: {d.pause_reason}\n  continue with: publisher resume {d.id} (take an "
                      f"article out first: publisher digests drop-article {d.id} ARTICLE; give up: publisher "
                      f"digests cancel {d.id})", highlight=False, markup=False)
        elif d.status == DigestState.FINISHED and d.pause_reason:
            out.print(f"{d.id} finished early: {d.pause_reason}", highlight=False, markup=False)
    if not states:
        out.print("no digests yet", highlight=False)


def _publish_order(article: Article) -> tuple[datetime, str]:
    return article.published, article.id


def _when(moment: datetime | None) -> str:
    """A time as the CLI shows it: UTC, to the minute ("once it can": no time is set)."""
    return "once it can" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _print_scheduled(articles: list[Article]) -> None:
    """The articles waiting for their date, soonest first."""
    if not articles:
        return
    out.print("scheduled articles:", highlight=False)
    for article in articles:
        out.print(f"  {article.id}  {_when(article.published)}  {article.title}", highlight=False, markup=False)
    out.print()


def _print_nodes(running: list[nodes.Node]) -> None:
    if not running:
        out.print("daemon: not running (no heartbeat in the last "
                  f"{nodes.STALE_AFTER.total_seconds():.0f} s)", highlight=False)
        out.print()
        return
    now = utcnow()
    rate = sum(float(node.state.get("send_rate", 0)) for node in running)
    roles = Counter(node.role for node in running)
    out.print(f"nodes: {len(running)} live ({', '.join(f'{n} {role}' for role, n in sorted(roles.items()))}), "
              f"sending {rate:,.0f} messages/s in all", highlight=False, markup=False)
    if "leader" not in roles:
        out.print("  no node runs the schedule: a standby takes it over within [cluster] failover",
                  highlight=False, markup=False)
    for node in running:
        state = node.state
        out.print(f"{node.role}: pid {node.pid} on {node.host}, up {_ago(node.started_at, now)}, "
                  f"seen {_ago(node.seen_at, now)} ago", highlight=False, markup=False)
        out.print(f"  sending {float(state.get('send_rate', 0)):,.0f} messages/s, "
                  f"{int(state.get('sent', 0)):,} sent since it started", highlight=False, markup=False)
        if node.role == "leader":
            scanned = state.get("last_scan_at")
            out.print(f"  last scan: {_ago(datetime.fromisoformat(scanned), now) + ' ago' if scanned else 'not yet'}",
                      highlight=False, markup=False)
        if problem := state.get("static_files_problem"):
            out.print(f"  static feed files: {problem}", highlight=False, markup=False)
        for job, at in sorted(state.get("jobs", {}).items()):
            when = f"in {_ago(now, datetime.fromisoformat(at))}" if at else "paused"
            out.print(f"  next {job}: {when}", highlight=False, markup=False)
        for problem in state.get("errors", []):
            out.print(f"  {problem['at']} {problem['level']}: {problem['message']}", highlight=False, markup=False)
        out.print()


def _ago(earlier: datetime, later: datetime) -> str:
    seconds = max(0, int((later - earlier).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h {rest // 60:02d}m" if hours else f"{rest // 60}m {rest % 60:02d}s"


@main.command()
@click.argument("digest_id")
@click.option("--wait", is_flag=True, help="Also wait out deferred messages.")
@click.pass_context
def resume(ctx: click.Context, digest_id: str, wait: bool) -> None:
    """Continue DIGEST_ID, paused by too many failures, once the cause is fixed."""

    async def work(publisher: Publisher) -> DeliveryReport | None:
        if not await ledger.resume(publisher.engine, digest_id):
            return None
        return await publisher.deliver(wait=wait)

    report = _with_publisher(ctx, work)
    if report is None:
        raise click.ClickException(f"no paused digest {digest_id!r} (see `publisher status`)")
    out.print(f"resumed {digest_id}: sent {report.sent}, deferred {report.deferred}, failed {report.failed}",
              highlight=False, markup=False)


@main.command()
@click.argument("article")
@click.option("--dry-run", is_flag=True, help="Say how many subscribers it would go to; send nothing.")
@click.pass_context
def resend(ctx: click.Context, article: str, dry_run: bool) -> None:
    """Send ARTICLE again (after an important correction) to every subscriber whose topics it matches.

    ARTICLE is its id (front matter), its slug, its URL or its feed entry id.  An
    edited article only updates the feeds; this is the way to mail it again.
    """

    async def work(publisher: Publisher) -> tuple[SendResult, ledger.Remaining | None]:
        result = await publisher.resend(article, dry_run=dry_run)
        return result, None if dry_run else await ledger.remaining(publisher.engine)

    try:
        result, left = _with_publisher(ctx, work)
    except UnknownArticle as exc:
        raise click.ClickException(_nothing(exc)) from None
    [digest] = result.planned
    verb = "would resend" if dry_run else "resent"
    out.print(f"{verb} {result.article_id} as {digest.id} to {digest.recipients} subscriber(s)",
              highlight=False, markup=False)
    if result.report is not None and left is not None:
        ctx.exit(_report_delivery(result.report, left))


@main.group("db")
def db_group() -> None:
    """The database schema: every command migrates on start; these are for operators who look first."""


@db_group.command("current")
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """Print the database's migration revision and the newest one; change nothing."""
    settings = _settings(ctx)

    async def work() -> tuple[str | None, str]:
        engine = create_engine(settings.database.url, busy_timeout=settings.database.busy_timeout)
        try:
            return await revisions(engine)
        finally:
            await engine.dispose()

    current, head = _database(work)
    state = "up to date" if current == head else "empty: any command migrates it" if current is None else (
        "behind: `publisher db upgrade` (or any command) migrates it")
    out.print(f"revision {current or '(none)'}, newest {head}: {state}", highlight=False, markup=False)


@db_group.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply the migrations not yet applied (safe while nodes run: one process migrates, the others wait)."""
    settings = _settings(ctx)

    async def work() -> tuple[tuple[str | None, str], tuple[str | None, str]]:
        engine = create_engine(settings.database.url, busy_timeout=settings.database.busy_timeout)
        try:
            before = await revisions(engine)
            await upgrade(engine)
            return before, await revisions(engine)
        finally:
            await engine.dispose()

    (before, _), (after, _) = _database(work)
    if before == after:
        out.print(f"already at the newest revision {after}", highlight=False, markup=False)
    else:
        out.print(f"migrated from {before or '(empty)'} to {after}", highlight=False, markup=False)


def _database(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``work`` and turn an unreachable database into one clear line (exit 1)."""
    try:
        return run_loop(work())
    except (OSError, SQLAlchemyError) as exc:
        raise click.ClickException(f"the database is unreachable or unusable: {str(exc).splitlines()[0]}") from None


@main.group("dkim")
def dkim_group() -> None:
    """DKIM signing: make a key and print the DNS record to publish."""


@dkim_group.command("keygen")
@click.option("--selector", required=True, help="Selector, e.g. news2025: the record is SELECTOR._domainkey.DOMAIN.")
@click.option("--domain", required=True, help="Signing domain: the From address's domain or a parent of it.")
@click.option("--type", "key_type", type=click.Choice(["rsa", "ed25519"]), default="rsa", show_default=True,
              help="rsa is verified everywhere; many receivers still ignore ed25519 signatures.")
@click.option("--bits", type=click.IntRange(1024, 4096), help="RSA key size  [default: 2048]")
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File for the private key: created with mode 0600, never overwritten.")
def dkim_keygen(selector: str, domain: str, key_type: str, bits: int | None, out_file: Path) -> None:
    """Write a new DKIM private key to --out; print its DNS TXT record and the [dkim] config lines."""
    import json
    import os

    from publisher.mail import dkim

    if key_type == "ed25519" and bits is not None:
        raise click.UsageError("--bits is for RSA keys; ed25519 keys have one size")
    try:
        selector, domain = dkim.check_selector(selector), dkim.check_domain(domain)
        key = dkim.generate_key("ed25519" if key_type == "ed25519" else "rsa", bits or dkim.RECOMMENDED_RSA_BITS)
    except dkim.DkimError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(f"not overwriting {out_file}: it exists (choose another --out)") from None
    except OSError as exc:
        raise click.ClickException(f"can't create {out_file}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as stream:
            os.fchmod(stream.fileno(), 0o600)  # whatever the umask
            stream.write(dkim.private_key_pem(key))
    except OSError as exc:
        out_file.unlink(missing_ok=True)
        raise click.ClickException(f"can't write {out_file}: {exc.strerror}") from None
    path = out_file.resolve()
    value = dkim.dns_txt_value(key)
    lines = [
        f"wrote the private key to {path} (mode 0600): keep it secret, back it up",
        "",
        f"1. Publish this DNS TXT record (name {selector}._domainkey.{domain}; the value is cut into",
        "   quoted strings of at most 255 characters, as DNS needs, which resolvers join):",
        "",
        f"   {dkim.zone_line(selector, domain, value)}",
        "",
        f"   A DNS web form that asks for a name and a value: {selector}._domainkey and",
        f"   {value}",
        "",
        f"2. Once `dig +short TXT {selector}._domainkey.{domain}` shows it, add to the config file:",
        "",
        "[dkim]",
        f'selector = "{selector}"',
        f'domain = "{domain}"',
        f"key_file = {json.dumps(str(path))}",
    ]
    for line in lines:
        out.print(line, markup=False, highlight=False)


@main.group()
def subscribers() -> None:
    """Add, import, export, list, show, remove and suppress subscribers."""


@subscribers.command("add")
@click.argument("email")
@click.option("--name", default="", help="The subscriber's name, used in the greeting.")
@click.option("--cadence", type=CADENCES, default=Cadence.DAILY.value, show_default=True)
@click.pass_context
def subscribers_add(ctx: click.Context, email: str, name: str, cadence: str) -> None:
    """Add EMAIL as an active subscriber (the operator vouches for them)."""

    async def work(publisher: Publisher) -> None:
        prefs = Preferences(cadence=Cadence(cadence), timezone=publisher.settings.digest.timezone)
        try:
            sub = await service.create(
                publisher.engine, email, name=name, prefs=prefs, source=Source.CLI, confirmed=True, now=utcnow()
            )
            verb = "added"
        except service.AlreadySubscribed as exc:
            sub, verb = exc.subscriber, "already known, unchanged:"
        except SubscriberError as exc:
            raise click.ClickException(str(exc)) from None
        out.print(f"{verb} {sub.email} ({sub.cadence}, {sub.status})", highlight=False)

    _with_publisher(ctx, work)


@subscribers.command("import")
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
    label = "<stdin>" if str(file) == "-" else str(file)
    data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()

    async def work(publisher: Publisher) -> importer.ImportReport:
        settings = publisher.settings
        known = await service.known_topics(publisher.engine, settings.site.offered_topics)
        with err.status(f"checking {label}…"):
            try:
                parsed = importer.parse_csv(
                    data, known_topics=known, default_timezone=settings.digest.timezone,
                    default_cadence=settings.subscribers.default_cadence,
                )
            except importer.ImportFileError as exc:
                raise click.ClickException(f"{label}:{exc.line}: {exc}") from None
        for warning in parsed.warnings:
            err.print(f"{label}: warning: {warning}", markup=False, highlight=False)
        with Progress(console=err, disable=not err.is_terminal) as progress:
            task = progress.add_task("checking" if dry_run else "importing", total=len(parsed.rows))
            return await importer.import_rows(
                publisher.engine, parsed, now=utcnow(), update_existing=update_existing, dry_run=dry_run,
                progress=lambda done, _total: progress.update(task, completed=done),
            )

    report = _with_publisher(ctx, work)
    for error in report.invalid:
        err.print(f"{label}:{error}", markup=False, highlight=False)
    out.print(_import_summary(report, label, dry_run))
    if report.invalid:
        ctx.exit(1)


def _import_summary(report: importer.ImportReport, label: str, dry_run: bool) -> Table:
    title = f"import of {label}" + (" (dry run: nothing changed)" if dry_run else "")
    table = Table("", Column("rows", justify="right"), title=Text(title), title_justify="left")
    for what, count in (
        ("added as active subscribers", report.created),
        ("existing subscribers updated", report.updated),
        ("existing subscribers left unchanged", report.existing),
        ("suppressed addresses skipped", report.suppressed),
        ("duplicate rows merged", report.merged),
        ("not active in the file's status column, skipped", report.inactive),
        ("invalid rows skipped", report.invalid_rows),
    ):
        table.add_row(what, str(count))
    return table


@subscribers.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True,
              help="csv re-imports with `subscribers import`; jsonl is the API's JSON, one subscriber a line.")
@click.option("--output", "-o", default="-", type=click.Path(dir_okay=False, allow_dash=True),
              help="File to write (default: standard output); written in full or not at all.")
@click.option("--status", type=STATUSES, help="Only subscribers with this status.")
@click.pass_context
def subscribers_export(ctx: click.Context, fmt: str, output: str, status: str | None) -> None:
    """Write every subscriber (or those with --status) as CSV or JSON Lines."""
    export = importer.export_jsonl if fmt == "jsonl" else importer.export_csv
    with click.open_file(output, "w", encoding="utf-8", atomic=output != "-") as stream:

        async def work(publisher: Publisher) -> int:
            return await export(publisher.engine, stream, status=Status(status) if status else None)

        written = _with_publisher(ctx, work)
    err.print(f"exported {written} subscriber(s) to {'standard output' if output == '-' else output}",
              markup=False, highlight=False)


@subscribers.command("list")
@click.option("--status", type=STATUSES, help="Only subscribers with this status.")
@click.option("--search", "query", default="", help="Only addresses or names containing this text.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--after", type=click.IntRange(min=0), default=0, help="Start after this id (the next page).")
@click.pass_context
def subscribers_list(ctx: click.Context, status: str | None, query: str, limit: int, after: int) -> None:
    """List subscribers by id, a page at a time."""
    wanted = Status(status) if status else None

    async def work(publisher: Publisher) -> tuple[list[Subscriber], int]:
        rows: list[Subscriber] = []
        last = after
        while len(rows) < limit and (
            page := await subscriber_store.search(
                publisher.engine, query=query, status=wanted, after=last, limit=limit - len(rows)
            )
        ):
            rows += page
            last = page[-1].id
        return rows, await subscriber_store.count(publisher.engine, query=query, status=wanted)

    rows, total = _with_publisher(ctx, work)
    table = Table("id", "email", "name", "cadence", "status", "since")
    for s in rows:
        table.add_row(str(s.id), Text(s.email), Text(s.name), s.cadence, s.status, f"{s.created_at:%Y-%m-%d %H:%M}")
    out.print(table)
    out.print(f"{len(rows)} of {total} subscriber(s)", highlight=False)
    if rows and len(rows) == limit:
        out.print(f"next page: --after {rows[-1].id}", highlight=False)


@subscribers.command("show")
@click.argument("email")
@click.pass_context
def subscribers_show(ctx: click.Context, email: str) -> None:
    """Show everything stored about EMAIL, and whether it is suppressed."""

    async def work(publisher: Publisher) -> tuple[Subscriber, str | None]:
        address = _address(email)
        async with publisher.engine.connect() as conn:
            found = await subscriber_store.find(conn, address)
            reason = await subscriber_store.suppression(conn, email_hash(address))
        if found is None:
            suppressed = f" (the address is suppressed: {reason})" if reason else ""
            raise click.ClickException(f"{address} is not a subscriber{suppressed}")
        return found, reason

    found, reason = _with_publisher(ctx, work)
    table = Table("field", "value", show_header=False)
    for key, value in found.to_dict().items():
        shown = ", ".join(value) if isinstance(value, list) else "" if value is None else str(value)
        table.add_row(key, Text(shown))
    table.add_row("suppressed", Text(reason or "no"))
    out.print(table)


@subscribers.command("remove")
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
        async with publisher.engine.connect() as conn:
            found = await subscriber_store.find(conn, address)
        if found is None:
            raise click.ClickException(f"{address} is not a subscriber")
        if not yes:
            click.confirm(f"Erase {address} ({found.status}, since {found.created_at:%Y-%m-%d})?", abort=True)
        if not await service.erase(publisher.engine, found.id, now=utcnow()):
            raise click.ClickException(f"{address} is not a subscriber")
        return address

    address = _with_publisher(ctx, work)
    out.print(f"erased {address}; the address stays on the suppression list", highlight=False)


def _reason(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not value.strip() or len(value.strip()) > subscriber_store.MAX_REASON:
        raise click.BadParameter(f"give 1 to {subscriber_store.MAX_REASON} characters")
    return value.strip()


@subscribers.command("suppress")
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
        async with publisher.engine.connect() as conn:
            before = await subscriber_store.find(conn, address)
        await service.suppress(publisher.engine, address, now=utcnow(), reason=reason)
        return address, before

    address, before = _with_publisher(ctx, work)
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


@main.group()
def bounces() -> None:
    """Record bounces and complaints that arrive after delivery."""


@bounces.command("import")
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
    try:
        box = open_inbox(path)
    except InboxError as exc:
        raise click.ClickException(str(exc)) from None
    if mark_seen and not box.maildir:
        raise click.UsageError("--mark-seen needs a Maildir (a directory with new/ and cur/)")
    if not box.messages and not box.maildir:
        err.print(f"{path}: no messages here (not a Maildir, and no .eml files)", markup=False, highlight=False)

    async def work(publisher: Publisher) -> BounceImportReport:
        with Progress(console=err, disable=not err.is_terminal, transient=True) as progress:
            task = progress.add_task("reading", total=len(box.messages))
            return await import_bounces(
                publisher.engine, box, sending_domain=publisher.settings.sending_domain,
                soft_limit=publisher.settings.delivery.soft_bounce_limit, now=utcnow(), dry_run=dry_run,
                mark_seen_after=mark_seen, progress=lambda done: progress.update(task, completed=done),
            )

    report = _with_publisher(ctx, work)

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
    title = f"bounces from {label}" + (" (dry run: nothing changed)" if dry_run else "")
    table = Table("", Column("count", justify="right"), title=Text(title), title_justify="left")
    rows = [
        ("messages read", report.read),
        ("hard bounces", report.hard),
        ("soft bounces", report.soft),
        ("complaints", report.complaints),
        ("addresses suppressed now", report.suppressed),
        ("unknown addresses (not subscribers)", report.unknown),
        ("not bounces (auto-replies, delay warnings, other mail)", len(report.not_bounces)),
        ("unparseable", len(report.unparseable)),
    ]
    if report.skipped_seen:
        rows.append(("skipped: already flagged Seen", report.skipped_seen))
    for what, count in rows:
        table.add_row(what, str(count))
    return table


@main.group("articles")
def articles_group() -> None:
    """List, inspect and unpublish articles."""


@articles_group.command("list")
@click.option("--scheduled", "which", flag_value=ArticleState.SCHEDULED, help="The articles waiting for their date.")
@click.option("--drafts", "which", flag_value=ArticleState.DRAFT, help="The drafts in the content directories.")
@click.pass_context
def articles_list(ctx: click.Context, which: str | None) -> None:
    """A table of the published articles, newest first (or the scheduled ones, or the drafts)."""
    state = ArticleState(which or ArticleState.PUBLISHED)
    if state == ArticleState.DRAFT:  # never stored: read where they are
        found = [draft for scan in Publisher(_settings(ctx)).check_content() for draft in scan.drafts]
    else:
        read = article_store.scheduled if state == ArticleState.SCHEDULED else article_store.latest
        found = _with_publisher(ctx, lambda publisher: read(publisher.engine))
    # Ids and slugs are folded, never cut short: they are what the other commands take.
    table = Table(Column("id", overflow="fold"), Column("slug", overflow="fold"), "title",
                  Column("date", no_wrap=True), Column("state", no_wrap=True))
    for article in found:
        table.add_row(Text(article.id), Text(article.slug), Text(article.title), _when(article.published), state)
    out.print(table)
    out.print(f"{len(found)} {state} article(s)", highlight=False)


@articles_group.command("show")
@click.argument("article_id")
@click.pass_context
def articles_show(ctx: click.Context, article_id: str) -> None:
    """An article's fields, its state, when it was first seen and which digests carried it."""
    found = _with_publisher(ctx, lambda publisher: article_store.find(publisher.engine, article_id))
    if found is None:
        raise click.ClickException(f"no article has the id {article_id!r}")
    article = found.article
    fields = [
        ("id", article.id), ("state", found.state), ("title", article.title), ("slug", article.slug),
        ("url", article.canonical_url), ("date", _when(article.published)), ("updated", _when(article.updated)),
        ("author", article.author), ("tags", ", ".join(article.tags)), ("source", article.source_path),
        ("first seen", _when(found.first_seen_at)), ("digests", ", ".join(found.digests) or "none"),
    ]
    for name, value in fields:
        out.print(f"{name}: {value}", highlight=False, markup=False)


@articles_group.command("remove")
@click.argument("article_id")
@click.pass_context
def articles_remove(ctx: click.Context, article_id: str) -> None:
    """Unpublish ARTICLE_ID: gone from feeds and pages until its source offers an edit (digests sent stay sent)."""

    async def work(publisher: Publisher) -> bool:
        return await publisher.unpublish(article_id)

    if not _with_publisher(ctx, work):
        raise click.ClickException(f"no published or scheduled article has the id {article_id!r}")
    out.print(f"unpublished {article_id}", highlight=False, markup=False)


@main.group("digests")
def digests_group() -> None:
    """List the digests, cancel one, or take an article out of one not yet sent."""


@digests_group.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many, newest first.")
@click.pass_context
def digests_list(ctx: click.Context, limit: int) -> None:
    """The newest digests: id, cadence, status, created, articles, and their messages by state."""
    found = _with_publisher(ctx, lambda publisher: ledger.states(publisher.engine, limit=limit))
    if not found:
        out.print("no digests yet", highlight=False)
        return
    # Plain padded lines, never wrapped: a table would squeeze the ids to fit 80 columns.
    width = max(len("digest"), *(len(d.id) for d in found))
    out.print(f"{'digest':<{width}}  cadence  status    {'created':<20}  articles  messages",
              highlight=False, markup=False, soft_wrap=True)
    for d in found:
        messages = ", ".join(f"{count} {row_state}" for row_state, count in sorted(d.counts.items())) or "none"
        out.print(f"{d.id:<{width}}  {d.cadence:<7}  {d.status:<8}  {_when(d.created_at):<20}  {d.articles:>8}  "
                  f"{messages}", highlight=False, markup=False, soft_wrap=True)


@digests_group.command("cancel")
@click.argument("digest_id")
@click.pass_context
def digests_cancel(ctx: click.Context, digest_id: str) -> None:
    """Finish DIGEST_ID now: its messages not yet sent are cancelled (those sent stay sent)."""
    try:
        cancelled, sent = _with_publisher(ctx, lambda publisher: publisher.cancel_digest(digest_id))
    except DigestNotOpen as exc:
        raise click.ClickException(str(exc)) from None
    out.print(f"cancelled {digest_id}: {cancelled} message(s) will not be sent, {sent} already sent",
              highlight=False, markup=False)


@digests_group.command("drop-article")
@click.argument("digest_id")
@click.argument("article")
@click.pass_context
def digests_drop_article(ctx: click.Context, digest_id: str, article: str) -> None:
    """Take ARTICLE (id, slug, URL or feed entry id) out of DIGEST_ID's messages still to send.

    For a digest paused because one article can't be rendered: drop it, then
    `publisher resume`.  A digest left without articles is cancelled.
    """
    try:
        dropped = _with_publisher(ctx, lambda publisher: publisher.drop_from_digest(digest_id, article))
    except (UnknownArticle, DigestNotOpen) as exc:
        raise click.ClickException(str(exc)) from None
    if dropped.cancelled is not None:
        out.print(f"dropped {dropped.article_id}: {digest_id} had no other article: cancelled, "
                  f"{dropped.cancelled} message(s) will not be sent", highlight=False, markup=False)
        return
    out.print(f"dropped {dropped.article_id} from {digest_id}: {dropped.left} article(s) left, "
              f"{dropped.to_send} message(s) still to send go without it", highlight=False, markup=False)
