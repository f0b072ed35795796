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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from publisher.app import Publisher, utcnow
from publisher.config import ConfigError, Settings, load_settings
from publisher.templating import builtin_templates_dir
from subscribers import service
from subscribers import store as subscriber_store
from subscribers.model import Cadence, Preferences, Source, Status, Subscriber
from subscribers.validation import SubscriberError, normalize_email

T = TypeVar("T")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
CADENCES = click.Choice([c.value for c in Cadence])


def _settings(ctx: click.Context) -> Settings:
    try:
        return load_settings(ctx.obj["config"])
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(f"[red]config error:[/red] {escape(problem)}", highlight=False)
        raise SystemExit(2) from None


def _with_publisher(ctx: click.Context, work: Callable[[Publisher], Awaitable[T]]) -> T:
    """Run ``work`` with a started Publisher on a fresh event loop, closing it after."""
    settings = _settings(ctx)

    async def main() -> T:
        publisher = Publisher(settings)
        await publisher.start()
        try:
            return await work(publisher)
        finally:
            await publisher.close()

    return asyncio.run(main())


@click.group()
@click.option(
    "--config", "config", type=click.Path(path_type=Path), envvar="PUBLISHER_CONFIG",
    default="config.toml", show_default=True, help="Config file (or PUBLISHER_CONFIG).",
)
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.version_option(package_name="publisher")
@click.pass_context
def main(ctx: click.Context, config: Path, log_level: str) -> None:
    """Publish Markdown articles as RSS, Atom and JSON feeds and email digests."""
    logging.basicConfig(
        level=log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
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
    """Validate the config and every article; exit 1 listing every problem."""
    settings = _settings(ctx)
    problems = Publisher(settings).check_content()
    for problem in problems:
        out.print(str(problem), highlight=False, markup=False)
    if problems:
        err.print(f"[red]{len(problems)} problem(s)[/red]")
        ctx.exit(1)
    out.print(f"config and content OK ({settings.content.dir})", highlight=False)


@main.command()
@click.pass_context
def build(ctx: click.Context) -> None:
    """Ingest the content and write the feeds to [site] output_dir."""

    async def work(publisher: Publisher) -> None:
        result = await publisher.scan()  # always writes the feeds on a fresh Publisher
        out.print(
            f"{len(result.new)} new, {len(result.updated)} updated, {result.unchanged} unchanged; "
            f"{len(publisher.feeds)} feeds in {publisher.settings.site.output_dir}",
            highlight=False,
        )

    _with_publisher(ctx, work)


@main.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the daemon: scheduler and web server, until SIGTERM or Ctrl-C."""
    from publisher.daemon import DaemonError, run_daemon

    settings = _settings(ctx)
    try:
        asyncio.run(run_daemon(settings))
    except KeyboardInterrupt:  # Ctrl-C before the daemon's own handlers were installed
        pass
    except DaemonError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--cadence", type=CADENCES, help="Plan this cadence's digest now (default: instant).")
@click.option("--dry-run", is_flag=True, help="Show what would be sent; change nothing.")
@click.pass_context
def send(ctx: click.Context, cadence: str | None, dry_run: bool) -> None:
    """Scan, plan the digests due now and deliver everything pending."""

    async def work(publisher: Publisher) -> None:
        await publisher.scan()
        result = await publisher.send([Cadence(cadence or Cadence.INSTANT)], dry_run=dry_run)
        for digest in result.planned:
            out.print(
                f"{'would send' if dry_run else 'planned'} {digest.id}: "
                f"{len(digest.article_seqs)} article(s) to {digest.recipients} subscriber(s)",
                highlight=False,
            )
        if not result.planned:
            out.print("nothing new to send", highlight=False)
        if result.report is not None:
            r = result.report
            out.print(f"sent {r.sent}, deferred {r.deferred}, failed {r.failed}, cancelled {r.cancelled}",
                      highlight=False)

    _with_publisher(ctx, work)


@main.group()
def subscribers() -> None:
    """Add, list and remove subscribers."""


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


@subscribers.command("list")
@click.pass_context
def subscribers_list(ctx: click.Context) -> None:
    """List every subscriber."""
    async def work(publisher: Publisher) -> list[Subscriber]:
        return [s async for page in subscriber_store.batches(publisher.engine) for s in page]

    rows = _with_publisher(ctx, work)
    table = Table("id", "email", "name", "cadence", "status", "since")
    for s in rows:
        table.add_row(str(s.id), s.email, s.name, s.cadence, s.status, f"{s.created_at:%Y-%m-%d %H:%M}")
    out.print(table)
    out.print(f"{len(rows)} subscriber(s)", highlight=False)


@subscribers.command("remove")
@click.argument("email")
@click.pass_context
def subscribers_remove(ctx: click.Context, email: str) -> None:
    """Unsubscribe EMAIL at once (no digest not yet handed over will reach it)."""

    async def work(publisher: Publisher) -> bool:
        try:
            before = await subscriber_store.search(publisher.engine, query=normalize_email(email), limit=1)
            await service.suppress(publisher.engine, email, now=utcnow(), reason="unsubscribed")
        except SubscriberError as exc:
            raise click.ClickException(str(exc)) from None
        return bool(before) and before[0].status in (Status.ACTIVE, Status.PENDING)

    if not _with_publisher(ctx, work):
        raise click.ClickException(f"{email} is not subscribed")
    out.print(f"unsubscribed {email}", highlight=False)
