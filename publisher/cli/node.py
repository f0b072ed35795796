"""The long-running commands: ``run`` (the daemon) and ``worker`` (a delivery-only node).

The daemon's modules are imported when one of these runs, not when any command
starts: the one-shot commands never need the web server or the scheduler.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any

import click

from publisher.cli.context import dkim_problem, run_loop, settings_of

if TYPE_CHECKING:
    from publisher.config import Settings


@click.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the daemon: scheduler and web server, until SIGTERM or Ctrl-C."""
    from publisher.runtime.daemon import run_daemon

    _run_node(ctx, run_daemon)


@click.command()
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Run a delivery-only node (PostgreSQL): no web server, no schedule, until SIGTERM or Ctrl-C."""
    from publisher.runtime.daemon import run_worker

    _run_node(ctx, run_worker)


def _run_node(ctx: click.Context, node: Callable[[Settings, Callable[[], Settings]], Coroutine[Any, Any, None]]) -> None:
    from publisher.config import load_settings
    from publisher.runtime.daemon import DaemonError

    settings = settings_of(ctx)
    try:
        run_loop(node(settings, partial(load_settings, ctx.obj["config"])))
    except KeyboardInterrupt:  # Ctrl-C before the node's own handlers were installed
        pass
    except DaemonError as exc:
        raise click.ClickException(str(exc)) from None
    except ValueError as exc:
        dkim_problem(exc)
