"""The CLI's plain output (a pipe, a file) says what rich would have printed there."""

from __future__ import annotations

import pytest
from rich.markup import escape as rich_escape
from rich.markup import render

from publisher.cli.output import escape, plain

LINES = [
    "[red]paused[/red] digest-1: see `publisher status`",
    "[bold]a[/] b",
    r"literal \[red] stays",
    r"a backslash \\[red]before a tag[/red]",
    "not a tag: [1] or [] or [A]",
    r"an escaped \[ outside a tag",
    "config error: smtp.port: [x] is not an integer",
]


@pytest.mark.parametrize("line", LINES)
def test_plain_text_is_what_rich_renders(line: str) -> None:
    assert plain(line) == render(line).plain


@pytest.mark.parametrize("text", [*LINES, "ends with a backslash \\", "two \\\\", "[link=https://x]y[/link]"])
def test_escape_is_rich_escape(text: str) -> None:
    assert escape(text) == rich_escape(text)
    marked = f"[red]{escape(text)}[/red]"
    assert plain(marked) == render(marked).plain
