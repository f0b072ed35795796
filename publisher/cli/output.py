"""How the commands show things: the two consoles, times, the delivery progress bar.

Reports go to standard output (``out``), so they can be piped; problems, warnings
and progress go to standard error (``err``).  Progress is drawn on a terminal only:
elsewhere (a pipe, journald, JSON logs) it would only add blank lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from rich.console import Console
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

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def summary(what: str, dry_run: bool, counted: str, rows: Iterable[tuple[str, int]]) -> Table:
    """A report's closing table: a title (marked when nothing changed), then what and how many."""
    title = what + (" (dry run: nothing changed)" if dry_run else "")
    table = Table("", Column(counted, justify="right"), title=Text(title), title_justify="left")
    for label, count in rows:
        table.add_row(label, str(count))
    return table


def when(moment: datetime | None) -> str:
    """A time as the CLI shows it: UTC, to the minute ("once it can": no time is set)."""
    return "once it can" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def ago(earlier: datetime, later: datetime) -> str:
    """The time between two moments, as "1h 05m" or "4m 09s"."""
    seconds = max(0, int((later - earlier).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h {rest // 60:02d}m" if hours else f"{rest // 60}m {rest % 60:02d}s"


@contextmanager
def progress_bar() -> Iterator[tuple[Progress, TaskID]]:
    """A progress bar on stderr with the count, the rate and the time left."""
    columns = (
        TextColumn("delivering"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>6.0f} msg/s"), TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        yield bar, bar.add_task("delivering", total=None, rate=0.0)

