"""``publisher db``: look at the schema's migration revision, or migrate, before anything else does.

Every command migrates on start anyway; these run without starting a Publisher, so an
operator can see (and apply) what a deploy will do first.
"""

from __future__ import annotations

import click

from publisher.cli.context import settings_of, with_database
from publisher.cli.output import out


@click.group("db")
def group() -> None:
    """The database schema: every command migrates on start; these are for operators who look first."""


@group.command("current")
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """Print the database's migration revision and the newest one; change nothing."""
    from publisher.store.db import schema_revisions  # SQLAlchemy when the command runs, not for --help

    settings = settings_of(ctx)
    current, head = with_database(lambda: schema_revisions(settings.database))
    state = "up to date" if current == head else "empty: any command migrates it" if current is None else (
        "behind: `publisher db upgrade` (or any command) migrates it")
    out.print(f"revision {current or '(none)'}, newest {head}: {state}", highlight=False, markup=False)


@group.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply the migrations not yet applied (safe while nodes run: one process migrates, the others wait)."""
    from publisher.store.db import migrate

    settings = settings_of(ctx)
    (before, _), (after, _) = with_database(lambda: migrate(settings.database))
    if before == after:
        out.print(f"already at the newest revision {after}", highlight=False, markup=False)
    else:
        out.print(f"migrated from {before or '(empty)'} to {after}", highlight=False, markup=False)


@group.command("rebuild-aggregates")
@click.pass_context
def db_rebuild_aggregates(ctx: click.Context) -> None:
    """Recount the dashboard's counts from the subscribers and the ledger (safe while nodes run:
    writes wait for the recount)."""
    from publisher.store.db import rebuild_aggregates

    settings = settings_of(ctx)
    by_status = with_database(lambda: rebuild_aggregates(settings.database))
    total = sum(by_status.values())
    shown = ", ".join(f"{n} {status}" for status, n in sorted(by_status.items()))
    out.print(f"recounted {total} subscriber(s){': ' + shown if shown else ''}", highlight=False, markup=False)
