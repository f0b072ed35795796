"""The Markdown directory source: every ``*.md`` file under a directory → articles.

The I/O around the pure parser (:mod:`publisher.content.markdown`): it walks the
directory and reads the files, so it lives with the other sources, not in ``content``.

A scan is incremental: it walks the directory with ``stat`` only and compares each
file with what the last scan found (:class:`~publisher.store.source_files.SourceFile`,
kept in the store).  A file whose size and mtime match is not opened; one whose bytes
hash the same (touched, copied back) is not parsed; only the others are parsed.  An
unchanged file's id and slug come from its row, so the rules below hold across the
whole directory while only the changed files are held in memory as articles.

A broken file never stops a scan: its problems are reported (again at every scan,
from its row) and the other articles are published.  Drafts (``draft: true``,
``status: draft``, or a name starting with "_") are read and checked but never
published; their problems are only warnings.  Slugs and ids must be unique across
files (they make the URL and the feed GUID): of two files sharing one, the file that
already published it keeps it (else the first in path order), and the other is
reported and skipped, so a copy can never take over an article's feed GUID.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from stat import S_ISREG
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from publisher import __version__
from publisher.content.model import Article, ContentLimits, Problem, ScanResult, Severity
from publisher.store import source_files
from publisher.store.source_files import Outcome, SourceFile

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from publisher.content.markdown import ParsedFile

# A file modified this close to being read may change again within the filesystem's
# timestamp granularity without its stat showing it: its row gets mtime 0, so the next
# scan hashes it once more (and parses it only if the bytes differ).
RACY_NS = 2_000_000_000


@dataclass
class DirectoryScan:
    """What one scan of a directory found, against the rows of the last one (``before``).

    ``result.articles`` holds only the articles of files read this time (new, edited, or
    now winning a contested id or slug); ``kept`` the ids of the articles unchanged files
    still offer (stored already); ``withdrawn`` the ids of every draft that parses;
    ``files`` every file's row as of this scan, in path order.
    """

    result: ScanResult = field(default_factory=ScanResult)
    kept: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    files: dict[str, SourceFile] = field(default_factory=dict)
    before: Mapping[str, SourceFile] = field(default_factory=dict)
    exists: bool = True

    @property
    def complete(self) -> bool:
        """Whether the directory read cleanly: a file that does not parse may be an article
        being edited, so nothing is removed until then (a draft is withdrawn at once)."""
        return self.exists and not self.result.errors

    @property
    def settled(self) -> bool:
        """Nothing to store: no file changed, appeared, left, or must be offered again."""
        return not self.result.articles and not self.changes()[1] and all(
            self.before.get(path) == row and row.outcome != Outcome.REFUSED for path, row in self.files.items()
        )

    def refuse(self, paths: set[str]) -> None:
        """Mark the files whose articles the store refused (``paths`` as their articles
        name them: another source publishes the id), so every scan offers them again."""
        refused = {article.id for article in self.result.articles if article.source_path in paths}
        for path, row in self.files.items():
            if row.outcome == Outcome.ARTICLE and row.article_id in refused:
                self.files[path] = row._replace(outcome=Outcome.REFUSED)

    def changes(self) -> tuple[list[SourceFile], list[str]]:
        """The rows to write (new or different) and the paths whose files are gone."""
        changed = [row for path, row in self.files.items() if self.before.get(path) != row]
        return changed, [path for path in self.before if path not in self.files]


def scan_directory(directory: Path, site_url: str, limits: ContentLimits = ContentLimits()) -> ScanResult:
    """Parse every visible ``*.md`` file under ``directory`` (each within ``limits``), as
    a first scan does: ``publisher check`` and tools that need every article."""
    return scan_changes(directory, site_url, limits, {}).result


def scan_changes(
    directory: Path, site_url: str, limits: ContentLimits, before: Mapping[str, SourceFile],
    listing: Iterable[tuple[str, os.stat_result]] | None = None,
) -> DirectoryScan:
    """Scan ``directory`` against the rows of the last scan (``before``, by path), reading
    only the files whose size, mtime or parser inputs changed, parsing only those whose
    bytes did; ``listing``: the files and stats to scan, in path order, instead of a walk
    of the whole directory (:func:`told_listing`)."""
    scan = DirectoryScan(before=before)
    if not directory.is_dir():
        scan.exists = False
        scan.result.problems.append(Problem(_display(directory), 0, "content directory does not exist"))
        return scan
    reader = _Reader(directory, site_url, limits)
    for relative, stat in _walk(directory) if listing is None else listing:
        row = before.get(relative)
        same = row is not None and (row.size, row.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
        scan.files[relative] = row if same and reader.current(row) else reader.read(relative, stat, row)
    contested = _contest(scan, reader)
    for relative, row in scan.files.items():  # each file's problems in path order, then the contested ones
        if row.problems:
            shown = _display(directory / relative)
            scan.result.problems.extend(Problem(shown, line, message, Severity(severity))
                                        for line, message, severity in row.problems)
        if row.outcome == Outcome.DRAFT and row.article_id is not None:
            scan.withdrawn.append(row.article_id)
            if relative in reader.articles:
                scan.result.drafts.append(reader.articles[relative])
    scan.result.problems.extend(contested)
    scan.result.articles.sort(key=lambda article: article.id)
    scan.result.articles.sort(key=lambda article: article.published, reverse=True)
    return scan


async def scan_told(
    conn: AsyncConnection, source: str, directory: Path, site_url: str, limits: ContentLimits, told: Collection[str]
) -> DirectoryScan:
    """:func:`scan_changes` of only the ``told`` paths (:func:`told_listing`), against only
    the rows it can change (:func:`~publisher.store.source_files.load_told`, read through
    ``conn``), so its cost follows the told files, not the archive's.  A told file that
    now takes an id or a slug of a file not loaded brings that file's rows in, and the
    scan runs again: the contest must see every file sharing one.  ``before`` and
    ``kept`` hold only the loaded rows; the other files stand as the store has them
    (their warnings, and a re-parse after a parser upgrade, wait for the next walk)."""
    before = await source_files.load_told(conn, source, told)
    while True:
        listing = told_listing(directory, site_url, limits, before, told)
        scan = await asyncio.to_thread(scan_changes, directory, site_url, limits, before, listing)
        changed = [row for path, row in scan.files.items() if before.get(path) != row]
        around = await source_files.load_sharing(conn, source, before, changed)
        if len(around) == len(before):
            return scan
        before = around


def is_draft(parsed: ParsedFile, path: Path) -> bool:
    """Whether a parsed file is a draft: marked so by its editor, or named with a leading "_"."""
    return parsed.draft or path.name.startswith("_")


def parser_fingerprint(site_url: str, limits: ContentLimits) -> str:
    """What besides a file's bytes decides its article: a change re-parses every file."""
    return hashlib.sha256(f"{__version__}\n{site_url}\n{limits!r}".encode()).hexdigest()


class _Reader:
    """Reads and parses the files of one scan, keeping the articles of those it parsed
    (the changed ones) for the rest of the scan, not their bytes: a first scan of a
    large archive would hold them all."""

    def __init__(self, directory: Path, site_url: str, limits: ContentLimits) -> None:
        self.directory, self.site_url, self.limits = directory, site_url, limits
        self.parsed_with = parser_fingerprint(site_url, limits)
        self.articles: dict[str, Article] = {}

    def current(self, row: SourceFile) -> bool:
        """Whether a row of the same bytes stands as it is: parsed with today's inputs,
        and not refused (another source may have let go of its id)."""
        return row.parsed_with == self.parsed_with and row.outcome != Outcome.REFUSED

    def read(self, relative: str, stat: os.stat_result, row: SourceFile | None) -> SourceFile:
        """The row of a file whose stat changed: its bytes hashed, parsed if they changed."""
        path = self.directory / relative
        try:
            data = path.read_bytes()
        except OSError as exc:  # mtime 0: read again at the next scan
            return SourceFile(relative, stat.st_size, 0, "", self.parsed_with, Outcome.BROKEN,
                              problems=((0, f"cannot read file: {exc.strerror}", Severity.ERROR),))
        racy = stat.st_mtime_ns > time.time_ns() - RACY_NS
        seen = SourceFile(relative, stat.st_size, 0 if racy else stat.st_mtime_ns,
                          hashlib.sha256(data).hexdigest(), self.parsed_with, Outcome.BROKEN)
        if row is not None and row.content_hash == seen.content_hash and self.current(row):
            return row._replace(size=seen.size, mtime_ns=seen.mtime_ns)  # touched: not parsed
        parsed = self.parse(relative, data)
        draft = is_draft(parsed, path)
        problems = [problem.as_warning() if draft else problem for problem in parsed.problems]
        article = parsed.article
        return seen._replace(
            outcome=Outcome.DRAFT if draft else Outcome.BROKEN if article is None else Outcome.ARTICLE,
            article_id=article.id if article else None, slug=article.slug if article else None,
            problems=tuple((p.line, p.message, p.severity.value) for p in problems),
        )

    def parse(self, relative: str, data: bytes | None = None) -> ParsedFile:
        """Parse a file (read now unless ``data`` is given), keeping its article."""
        path = self.directory / relative
        data = path.read_bytes() if data is None else data
        # The parsers (markdown-it, YAML, nh3) load with the first changed file, not with every scan.
        from publisher.content.markdown import read_article

        parsed = read_article(data, _display(path), self.site_url, limits=self.limits)
        if parsed.article is not None:
            self.articles[relative] = parsed.article
        return parsed

    def bytes_of(self, relative: str) -> bytes:
        """A file's bytes, read again (a contested file's problem names the line of its key)."""
        return (self.directory / relative).read_bytes()


def _contest(scan: DirectoryScan, reader: _Reader) -> list[Problem]:
    """Give each id and slug to one file: the one that published the id before, else the
    first in path order; the others are skipped, with the problems returned (at their
    key's line).  A winner parsed now offers its article; an unchanged one keeps its
    stored article (``kept``); an unchanged one that lost before and wins now is parsed.
    """
    candidates = [(path, row) for path, row in scan.files.items() if row.outcome in (Outcome.ARTICLE, Outcome.LOST)]

    def incumbent(path: str, row: SourceFile) -> bool:
        last = scan.before.get(path)
        return last is not None and last.outcome == Outcome.ARTICLE and last.article_id == row.article_id

    candidates.sort(key=lambda candidate: not incumbent(*candidate))  # stable: path order in each group
    owners: dict[tuple[str, str | None], tuple[str, str | None]] = {}  # (slug or id, value) → (path, id)
    problems: list[Problem] = []
    for path, row in candidates:
        # One report per file: a derived id repeats whenever the slug does.
        by_slug, by_id = ("slug", row.slug), ("id", row.article_id)
        duplicate = by_slug if by_slug in owners else by_id if by_id in owners else None
        if duplicate:
            key, value = duplicate
            owner, owner_id = owners[duplicate]
            from publisher.content.markdown import front_matter_key_line

            line = front_matter_key_line(reader.bytes_of(path), key)
            message = f"duplicate {key} {value!r} (also used by {_display(reader.directory / owner)})"
            problems.append(Problem(_display(reader.directory / path), line, message))
            scan.result.contested |= {i for i in (row.article_id, owner_id) if i is not None}
            scan.files[path] = row._replace(outcome=Outcome.LOST)
            continue
        owners[by_slug] = owners[by_id] = (path, row.article_id)
        if row.outcome != Outcome.ARTICLE:
            scan.files[path] = row._replace(outcome=Outcome.ARTICLE)
        elif path not in reader.articles:
            scan.kept.append(str(row.article_id))  # unchanged: stored from this file already
            continue
        article = reader.articles.get(path) or reader.parse(path).article
        assert article is not None  # a candidate's file parses into an article
        scan.result.articles.append(article)
    return problems


def _walk(directory: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every visible ``*.md`` file (no hidden file or folder) with its stat, as a path
    relative to ``directory`` ("/"-separated), sorted by path components (as paths sort):
    ``os.scandir`` one folder at a time, each sorted by name, depth first (a folder's
    files come where its name sorts), so no global sort and no ``Path`` per file."""
    yield from _walk_folder(os.fspath(directory), "")


def _walk_folder(folder: str, prefix: str) -> Iterator[tuple[str, os.stat_result]]:
    """:func:`_walk` of ``folder``, its paths prefixed with ``prefix`` (its own, with "/")."""
    try:
        with os.scandir(folder) as listing:
            entries = sorted((entry for entry in listing if not entry.name.startswith(".")),
                             key=lambda entry: entry.name)
    except OSError:
        return
    for entry in entries:
        if entry.is_dir():
            yield from _walk_folder(entry.path, f"{prefix}{entry.name}/")
        elif entry.name.endswith(".md") and entry.is_file():
            yield prefix + entry.name, entry.stat()


def _display(path: Path) -> str:
    """The path as the user would type it: relative to the working directory when inside it."""
    absolute = path.absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


class _Unchanged(NamedTuple):
    """A file's stat as its row remembers it: what :func:`told_listing` gives for a file it was not told about."""

    st_size: int
    st_mtime_ns: int


def told_listing(
    directory: Path, site_url: str, limits: ContentLimits, before: Mapping[str, SourceFile], told: Collection[str]
) -> Iterator[tuple[str, os.stat_result]]:
    """The listing of a scan that trusts the file watcher: the ``told`` paths (relative,
    "/"-separated: new, changed or removed) stat'ed now, every other file of ``before``
    (all the rows, or those :func:`scan_told` loaded) as its row remembers it, without a
    ``stat``, in path order as :func:`_walk` gives it.
    A told path that is gone, hidden or not a Markdown file is left out (its row goes);
    a row of ``before`` its parser inputs no longer hold is stat'ed too, as a walk would.
    A file the watcher missed waits for the next full scan."""
    current = _Reader(directory, site_url, limits).current
    # Path order as a walk gives it, by components ("a/b" before "a-b"): "/" as the lowest
    # character sorts so, without splitting 100,000 paths.
    for relative in sorted({*before, *told}, key=lambda path: path.replace("/", "\0")):
        row = before.get(relative)
        if relative not in told and row is not None and current(row):
            yield relative, _Unchanged(row.size, row.mtime_ns)  # type: ignore[misc]
            continue
        if any(part.startswith(".") for part in relative.split("/")) or not relative.endswith(".md"):
            continue
        try:
            stat = os.stat(directory / relative)
        except OSError:
            continue
        if S_ISREG(stat.st_mode):
            yield relative, stat
