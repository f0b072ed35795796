"""Filesystem notifications for the Markdown content directories.

The interval scan (``[scheduler] scan_interval``, a minute by default) is the safety
net; this makes a new or edited article go out within seconds of being written.  The
scan it triggers is told which paths changed and looks only at those (a walk of a
100,000-file archive takes seconds); the interval scan walks everything, so a change
the watcher missed (an overflowed queue, a folder moved in whole) still shows.
watchfiles (inotify on Linux, FSEvents on macOS) groups the events of files written
together (it yields after 50 ms without a new event), so articles that arrive
together go out in one instant digest.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import watchfiles

from publisher.app import Publisher

log = logging.getLogger(__name__)


def _markdown(change: watchfiles.Change, path: str) -> bool:
    """Visible Markdown files, as the scan reads them (drafts start with "_", editors' temp files don't end in .md)."""
    name = path.rsplit("/", 1)[-1]
    return name.endswith(".md") and not name.startswith((".", "_"))


async def watch_content(publisher: Publisher, on_change: Callable[[frozenset[Path]], Awaitable[object]]) -> None:
    """Call ``on_change`` with the paths of each burst of changes to the Markdown
    directories (added, modified or deleted), until the service stops."""
    directories = [d for d in publisher.settings.markdown_dirs if d.is_dir()]
    for missing in set(publisher.settings.markdown_dirs) - set(directories):
        log.warning("not watching %s: no such directory; new articles wait for the interval scan", missing)
    if not directories:
        return
    log.info("watching %s for new and changed articles", ", ".join(map(str, directories)))
    async for changes in watchfiles.awatch(*directories, watch_filter=_markdown, stop_event=publisher.tasks.stopping):
        paths = frozenset(Path(path) for _, path in changes)
        log.debug("content changed: %s", sorted(paths))
        await on_change(paths)
