"""The static copies of the feeds: each document and its ``.gz`` twin, written atomically.

nginx (``gzip_static``) or a CDN can serve ``[site] output_dir`` without the daemon.
A reader of the directory sees the old file or the new one, never a partial write,
and an unchanged file is not touched, so its mtime (nginx's Last-Modified) stays put.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection, Mapping
from contextlib import suppress
from pathlib import Path

from publisher.feeds.build import FORMATS, FeedDocument

# The only files under tags/ this module ever deletes: the ones it writes.
_MANAGED_NAMES = frozenset(fmt.file_name + gz for fmt in FORMATS.values() for gz in ("", ".gz"))


def write_feeds(docs: Mapping[str, FeedDocument], output_dir: Path, changed: Collection[str] | None = None) -> int:
    """Write each feed and its ``.gz`` twin atomically, then delete the feeds of vanished tags.

    Files whose bytes are unchanged are not touched, so their mtime (what nginx sends as
    Last-Modified) stays put. Under ``tags/`` only the ``feed.*`` files this module writes are
    ever deleted, and a tag folder only once nothing else is left in it.  With ``changed``
    (paths), only those are looked at: each is written, or deleted when ``docs`` no longer has it.
    Returns how many files were written (a start that finds them all in place writes none).
    """
    written = 0
    for path in sorted(docs) if changed is None else sorted(changed):
        target = output_dir / path
        if (doc := docs.get(path)) is not None:
            written += _replace_if_changed(target, doc.body)
            written += _replace_if_changed(target.with_name(target.name + ".gz"), doc.gzipped)
        elif target.name in _MANAGED_NAMES and target.parent.parent.name == "tags":
            _delete(target, target.with_name(target.name + ".gz"))
    if changed is not None:
        return written
    keep = {path for doc in docs.values() for path in (doc.path, doc.path + ".gz")}
    _delete(*(path for path in sorted((output_dir / "tags").glob("*/feed.*"))
              if path.name in _MANAGED_NAMES and path.relative_to(output_dir).as_posix() not in keep))
    return written


def _delete(*paths: Path) -> None:
    """Delete these feed files (if there), and each one's tag folder once nothing else is left in it."""
    for path in paths:
        path.unlink(missing_ok=True)
        with suppress(OSError):  # the folder still holds files others manage
            path.parent.rmdir()


def _replace_if_changed(path: Path, data: bytes) -> bool:
    """Atomically give ``path`` these bytes (temp file + rename); skip it if it has them already
    (False).

    A reader (nginx, a CDN pull) sees the old file or the new one, never a partial write.
    """
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the web server's user must read it
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return True
