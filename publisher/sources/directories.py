"""The Markdown directories of the settings as a scan reads them: which paths the file
watcher told of under each, and the store's key of each, followed when a directory moved.

A store's ``markdown:<directory>`` key is the directory's path as configured, so copying
the site elsewhere (a new disk, another checkout) gave every article a second source, and
each was refused as "already published by" the old path.  :func:`moved_directory` tells
a move from a new source; the intake then renames the old key's rows
(:func:`publisher.store.source_files.rename_source`), once per settings.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

MARKDOWN_PREFIX = "markdown:"


def markdown_source(directory: Path) -> str:
    """The store's key of a Markdown directory: its path as configured."""
    return f"{MARKDOWN_PREFIX}{directory}"


def moved_directory(directories: Sequence[Path], stored: Collection[str]) -> tuple[str, str] | None:
    """``(old key, new key)`` when one of ``directories`` is the one stored under another path.

    That is when exactly one configured directory holds nothing in the store (``stored``:
    the ``markdown:`` keys with rows) and exactly one stored directory is neither configured
    nor on the disk any more.  A directory still present is never taken over: a copy beside
    it is another source.
    """
    configured = {markdown_source(directory) for directory in directories}
    new = [source for source in sorted(configured) if source not in stored]
    gone = [source for source in sorted(stored)
            if source not in configured and not Path(source.removeprefix(MARKDOWN_PREFIX)).exists()]
    return (gone[0], new[0]) if len(new) == 1 and len(gone) == 1 else None


def told_by_directory(
    directories: Sequence[Path], told: Collection[Path] | None
) -> dict[Path, frozenset[str] | None]:
    """Each directory to scan with the ``told`` paths under it, relative and "/"-separated
    (None: walk it whole).  Without ``told`` every directory is walked; a told path under
    none of them (the watcher gave a name the settings don't spell) walks them all."""
    if told is None:
        return dict.fromkeys(directories)
    found: dict[Path, set[str]] = {}
    roots = [(directory, directory.absolute()) for directory in directories]
    for path in told:
        path = path.absolute()
        for directory, root in roots:
            if path.is_relative_to(root):
                found.setdefault(directory, set()).add(path.relative_to(root).as_posix())
                break
        else:
            return dict.fromkeys(directories)
    return {directory: frozenset(found[directory]) for directory in directories if directory in found}
