"""Reading what the CLI printed: its rich summary tables."""

from __future__ import annotations


def summary(stdout: str) -> dict[str, int]:
    """A two-column summary table (label │ count) as {label: count}."""
    rows = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if len(cells) == 2 and cells[1].isdigit():
            rows[cells[0]] = int(cells[1])
    return rows
