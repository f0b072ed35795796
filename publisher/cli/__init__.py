"""The ``publisher`` command: parse arguments, call the service, print.

The root group ``main`` and its options live here; each command or group of commands
lives in a module of its own (``content``, ``node``, ``sending``, ``status``, ``db``,
``dkim``, ``subscribers``, ``bounces``, ``articles``, ``digests``, ``webhooks``, ``operators``, ``report``) that defines it
without knowing the root, and this module names them: so no command module imports
this one, and there is no registration cycle.  A command's module is imported when
the command is run (or listed by ``--help``), so ``publisher send`` loads what sending
needs, not what the subscriber import or the DKIM key generator do.  What they share is in ``context``
(exit codes, the event loop, settings, a started Publisher) and ``output`` (the
consoles, times, the progress bar, summary tables).  The commands never open a
database connection or call a store: they call the services the started Publisher
holds (``publisher db`` alone, which must work before a Publisher would migrate,
calls :mod:`publisher.store.db` with the ``[database]`` settings).  A bad config prints one line per problem and exits 2; a content
problem found by ``check`` exits 1.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import click

from publisher import __version__, logs

# Each command: the module of publisher.cli that defines it, and its name there.
COMMANDS = {
    "init": ("content", "init"), "check": ("content", "check"), "build": ("content", "build"),
    "run": ("node", "run"), "worker": ("node", "worker"),
    "send": ("sending", "send"), "preview": ("sending", "preview"), "status": ("status", "status"),
    "resume": ("sending", "resume"), "resend": ("sending", "resend"),
    "db": ("db", "group"), "dkim": ("dkim", "group"), "subscribers": ("subscribers", "group"),
    "bounces": ("bounces", "group"), "articles": ("articles", "group"), "digests": ("digests", "group"),
    "webhooks": ("webhooks", "group"), "operators": ("operators", "group"),
    "report": ("report", "report"),
}


class LazyGroup(click.Group):
    """The root group, importing a command's module only when the command is wanted."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, name = COMMANDS[cmd_name]
        command: click.Command = getattr(importlib.import_module(f"publisher.cli.{module}"), name)
        return command


@click.group(cls=LazyGroup)
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
@click.version_option(__version__, package_name="publisher")
@click.pass_context
def main(ctx: click.Context, config: Path, log_level: str, log_format: str) -> None:
    """Publish Markdown articles as RSS, Atom and JSON feeds and email digests."""
    # force=False: run in-process by a program (or a test) that set up logging itself, leave it.
    logs.configure(log_level, "json" if log_format.lower() == "json" else "text", force=False)
    # Third-party chatter (job added, migration context) drowns what the operator needs.
    for noisy in ("apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    ctx.obj = {"config": config}

