"""What every command shares to run: the exit codes, the event loop, the settings, a started Publisher.

A bad config prints one line per problem and exits 2, wherever a command meets it
(loading the file, or a DKIM key the config names that can't be read at start).

The config, the database and the composition root are imported when a command runs,
not when the CLI is: ``publisher --help`` loads click and the command modules only.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from enum import IntEnum
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from publisher.cli.output import err, escape
from subscribers.model import Cadence, Status

if TYPE_CHECKING:
    from publisher.app import Publisher
    from publisher.config import Settings

T = TypeVar("T")

CADENCES = click.Choice([c.value for c in Cadence])
STATUSES = click.Choice([s.value for s in Status])


class ExitCode(IntEnum):
    """What a command's exit status means (README, "Exit codes"): cron and CI branch on it."""

    OK = 0  # done, or nothing to do
    ERROR = 1  # a command failed (a ClickException), or some input was skipped
    USAGE = 2  # bad arguments (click) or a bad config file
    UNREACHABLE = 3  # the mail transport could not be reached: nothing was sent
    REMAINING = 4  # messages remain: deferred, paused, or held by another node


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


def settings_of(ctx: click.Context) -> Settings:
    """The settings of the config file the root command was given (``--config``)."""
    from publisher.config import ConfigError, load_settings

    try:
        return load_settings(ctx.obj["config"])
    except ConfigError as exc:
        config_error(exc.problems)


def config_error(problems: Sequence[str]) -> NoReturn:
    """Print each config problem on a line of its own and exit 2, as a bad config does."""
    for problem in problems:
        err.print(f"[red]config error:[/red] {escape(problem)}", highlight=False)
    raise SystemExit(ExitCode.USAGE)


def with_publisher(ctx: click.Context, work: Callable[[Publisher], Awaitable[T]]) -> T:
    """Run ``work`` with a started Publisher on a fresh event loop, closing it after."""
    with start_up() as started:
        from publisher.app import Publisher

        settings = settings_of(ctx)
        started()

        async def main() -> T:
            publisher = Publisher(settings)
            try:
                await publisher.start()
                return await work(publisher)
            finally:
                await publisher.close()

        try:
            return run_loop(main())
        except ValueError as exc:
            dkim_problem(exc)


@contextmanager
def start_up() -> Iterator[Callable[[], None]]:
    """A command's run, whose start-up (importing its services, reading its settings) ends
    when the block calls what this yields; the cyclic garbage collector is off until then.

    Importing allocates hundreds of thousands of objects and frees almost none: the
    collector, run a hundred times over them, finds nothing, and once it runs again it
    goes over them in every older-generation pass.  So they are frozen (never looked at
    again) for the rest of the block, about 0.3 s of CPU off an empty ``send`` (issue
    18), and unfrozen after it, for a program that runs commands in-process.  A process
    that turned the collector off or froze objects itself keeps its own way.
    """
    if not gc.isenabled() or gc.get_freeze_count():
        yield lambda: None
        return
    gc.disable()

    def started() -> None:
        gc.freeze()
        gc.enable()

    try:
        yield started
    finally:
        gc.enable()  # the block may have ended (a config error) before its start-up did
        gc.unfreeze()  # into the oldest generation


def dkim_problem(exc: ValueError) -> NoReturn:
    """A DKIM key the config names that can't be used is a config error (exit 2); any
    other ValueError is raised again.  (The check imports the key module, and with it
    the crypto library, only when there is an error to look at.)"""
    from publisher.mail.dkim_keys import DkimError

    if not isinstance(exc, DkimError):
        raise exc
    config_error([str(exc)])


def with_database(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``work`` and turn an unreachable database into one clear line (exit 1)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return run_loop(work())
    except (OSError, SQLAlchemyError) as exc:
        raise click.ClickException(f"the database is unreachable or unusable: {str(exc).splitlines()[0]}") from None
