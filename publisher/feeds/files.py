"""The static copies of the feeds: each document and its ``.gz`` twin, written atomically.

nginx (``gzip_static``) or a CDN can serve ``[site] output_dir`` without the daemon.
A reader of the directory sees the old file or the new one, never a partial write,
and an unchanged file is not touched, so its mtime (nginx's Last-Modified) stays put.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path

from publisher.feeds.build import FORMATS, FeedDocument

# The only files under tags/ this module ever deletes: the ones it writes.
_MANAGED_NAMES = frozenset(fmt.file_name + gz for fmt in FORMATS.values() for gz in ("", ".gz"))


def write_feeds(docs: Mapping[str, FeedDocument], output_dir: Path) -> None:
    """Write each feed and its ``.gz`` twin atomically, then delete the feeds of vanished tags.

    Files whose bytes are unchanged are not touched, so their mtime (what nginx sends as
    Last-Modified) stays put. Under ``tags/`` only the ``feed.*`` files this module writes are
    ever deleted, and a tag folder only once nothing else is left in it.
    """
    for doc in docs.values():
        target = output_dir / doc.path
        _replace_if_changed(target, doc.body)
        _replace_if_changed(target.with_name(target.name + ".gz"), doc.gzipped)

    keep = {path for doc in docs.values() for path in (doc.path, doc.path + ".gz")}
    for path in sorted((output_dir / "tags").glob("*/feed.*")):
        if path.name in _MANAGED_NAMES and path.relative_to(output_dir).as_posix() not in keep:
            path.unlink()
            with suppress(OSError):  # the folder still holds files others manage
                path.parent.rmdir()


def _replace_if_changed(path: Path, data: bytes) -> None:
    """Atomically give ``path`` these bytes (temp file + rename); skip it if it has them already.

    A reader (nginx, a CDN pull) sees the old file or the new one, never a partial write.
    """
    try:
        if path.read_bytes() == data:
            return
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
