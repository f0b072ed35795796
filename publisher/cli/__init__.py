"""The ``publisher`` command: parse arguments, call the service, print.

The root group ``main`` and its options live here; each command or group of commands
lives in a module of its own (``content``, ``node``, ``sending``, ``status``, ``db``,
``dkim``, ``subscribers``, ``bounces``, ``articles``, ``digests``) that defines it
without knowing the root, and this module adds them: so no command module imports
this one, and there is no registration cycle.  What they share is in ``context``
(exit codes, the event loop, settings, a started Publisher) and ``output`` (the
consoles, times, the progress bar, summary tables).  The commands never open a
database connection or call a store: they call the services the started Publisher
holds (``publisher db`` alone, which must work before a Publisher would migrate,
calls :mod:`publisher.store.db` with the ``[database]`` settings).  A bad config prints one line per problem and exits 2; a content
problem found by ``check`` exits 1.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from publisher import logs
from publisher.cli import articles, bounces, content, db, digests, dkim, node, sending, status, subscribers


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


for command in (
    content.init, content.check, content.build,
    node.run, node.worker,
    sending.send, sending.preview, status.status, sending.resume, sending.resend,
    db.group, dkim.group, subscribers.group, bounces.group, articles.group, digests.group,
):
    main.add_command(command)
