"""How the commands show things: the two output streams, times, the delivery progress bar.

Reports go to standard output (``out``), so they can be piped; problems, warnings
and progress go to standard error (``err``).  Progress is drawn on a terminal only:
elsewhere (a pipe, journald, JSON logs) it would only add blank lines.

rich draws for a terminal, and for the tables some reports print; a line printed to a
pipe or a file is written as plain text, rich's markup taken out, without importing
rich (a fifth of what a command such as ``send`` from cron would load, for nothing).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from publisher.content.model import Article, TakeawaysMode

# rich's markup tags (``[red]``, ``[/]``, ``[link=…]``), with the backslashes before
# them: an odd number escapes the tag (it is text), each pair is one backslash.
_TAG = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")


def escape(text: str) -> str:
    """``text`` shown as it is inside markup: its tag-like brackets escaped (as rich's own ``escape``)."""
    text = _TAG.sub(lambda m: f"{m[1]}{m[1]}\\{m[2]}", text)
    return text + "\\" if text.endswith("\\") and not text.endswith("\\\\") else text


def plain(markup: str) -> str:
    """The text ``markup`` shows, without its tags (what rich prints of it to a pipe)."""
    parts, position = [], 0
    for match in _TAG.finditer(markup):
        parts.append(markup[position:match.start()].replace("\\[", "["))  # a bracket escaped outside a tag
        pairs, escaped = divmod(len(match[1]), 2)
        parts.append("\\" * pairs + (match[2] if escaped else ""))
        position = match.end()
    parts.append(markup[position:].replace("\\[", "["))
    return "".join(parts)


class Stream:
    """Standard output or standard error, whatever ``sys.stdout``/``sys.stderr`` is when
    a line is printed (a test runner swaps them): rich's Console on a terminal or for a
    table, plain lines elsewhere."""

    def __init__(self, *, stderr: bool = False) -> None:
        self.stderr = stderr
        self._console: Console | None = None

    @property
    def file(self) -> TextIO:
        return sys.stderr if self.stderr else sys.stdout

    @property
    def is_terminal(self) -> bool:
        return self.file.isatty()

    @property
    def console(self) -> Console:
        """rich's Console on this stream, made (and rich imported) the first time something needs it."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self.stderr, soft_wrap=True)
        return self._console

    def print(
        self, *objects: object, markup: bool = True, highlight: bool | None = None, soft_wrap: bool = True,
        **options: Any,
    ) -> None:
        """Print like rich's ``Console.print``: through rich on a terminal or for anything but
        text (plain text is never wrapped: ``soft_wrap`` only matters to rich)."""
        if self.is_terminal or options or not all(isinstance(o, str) for o in objects):
            self.console.print(*objects, markup=markup, highlight=highlight, soft_wrap=soft_wrap, **options)
            return
        line = " ".join(str(o) for o in objects)
        self.file.write((plain(line) if markup else line) + "\n")


out = Stream()
err = Stream(stderr=True)


def summary(what: str, dry_run: bool, counted: str, rows: Iterable[tuple[str, int]]) -> Table:
    """A report's closing table: a title (marked when nothing changed), then what and how many."""
    from rich.table import Column, Table
    from rich.text import Text

    title = what + (" (dry run: nothing changed)" if dry_run else "")
    table = Table("", Column(counted, justify="right"), title=Text(title), title_justify="left")
    for label, count in rows:
        table.add_row(label, str(count))
    return table


def print_takeaways(article: Article, mode: TakeawaysMode, heading: str = "") -> None:
    """The takeaways publisher has for ``article`` that its author did not write, under
    ``heading`` (which article): the published generated ones, or under "suggest" the
    proposals, labelled as such; nothing for the author's own or under "author".

    ``check``, ``preview`` and ``articles show`` print them the same way, so an author
    sees what "auto" would publish and can copy the lines into the article."""
    from publisher.content.model import TakeawaysMode

    if article.takeaways_generated:
        label, items = "generated takeaways (published, marked as generated)", article.takeaways
    elif article.takeaways or mode != TakeawaysMode.SUGGEST:
        return
    else:
        from publisher.content.takeaways import suggest  # the HTML parser: only when there is one to make

        label = 'suggested takeaways (not published: add a takeaways list, or set [content] takeaways = "auto")'
        items = suggest(article)
        if not items:
            return
    out.print(f"{heading}{label}:", markup=False, highlight=False)
    for item in items:
        out.print(f"  - {item}", markup=False, highlight=False)


def when(moment: datetime | None) -> str:
    """A time as the CLI shows it: UTC, to the minute ("once it can": no time is set)."""
    return "once it can" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def ago(earlier: datetime, later: datetime) -> str:
    """The time between two moments, as "1h 05m" or "4m 09s"."""
    seconds = max(0, int((later - earlier).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h {rest // 60:02d}m" if hours else f"{rest // 60}m {rest % 60:02d}s"


@contextmanager
def progress_bar() -> Iterator[Callable[..., None]]:
    """A progress bar on stderr with the count, the rate and the time left, on a terminal;
    yields its ``update(total=, completed=, rate=)`` (which does nothing elsewhere)."""
    if not err.is_terminal:
        yield lambda **_fields: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("delivering"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>6.0f} msg/s"), TimeRemainingColumn(),
    )
    with Progress(*columns, console=err.console, transient=True) as bar:
        task = bar.add_task("delivering", total=None, rate=0.0)
        yield lambda **fields: bar.update(task, **fields)

