"""The Markdown directory source: every ``*.md`` file under a directory → articles.

The I/O around the pure parser (:mod:`publisher.content.markdown`): it walks the
directory and reads the files, so it lives with the other sources, not in ``content``.

A broken file never stops a scan: its problems are reported and the other articles
are published.  Drafts (``draft: true``, ``status: draft``, or a name starting with
"_") are read and checked but never published; their problems are only warnings.
Slugs and ids must be unique across files (they make the URL and the feed GUID): of
two files sharing one, the file that already published it keeps it (else the first
in path order), and the other is reported and skipped, so a copy can never take over
an article's feed GUID.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePath

from publisher.content.model import Article, ContentLimits, Problem, ScanResult


def scan_directory(
    directory: Path, site_url: str, published: Mapping[str, str] | None = None, limits: ContentLimits = ContentLimits()
) -> ScanResult:
    """Parse every visible ``*.md`` file under ``directory`` (each within ``limits``).

    ``published`` maps article ids to the path of the file that published them (as
    stored): when files share an id or a slug, the one that published it keeps it.
    """
    result = ScanResult()
    if not directory.is_dir():
        result.problems.append(Problem(_display(directory), 0, "content directory does not exist"))
        return result
    # The parsers (markdown-it, YAML, nh3) are loaded by the scan that reads a file, not by every command.
    from publisher.content.markdown import front_matter_key_line, read_article

    candidates: list[tuple[Path, str, bytes, Article]] = []
    for path in _markdown_files(directory):
        shown = _display(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            result.problems.append(Problem(shown, 0, f"cannot read file: {exc.strerror}"))
            continue
        parsed = read_article(data, shown, site_url, limits=limits)
        if parsed.draft or path.name.startswith("_"):
            result.problems.extend(problem.as_warning() for problem in parsed.problems)
            if parsed.article is not None:
                result.drafts.append(parsed.article)
            continue
        result.problems.extend(parsed.problems)
        if parsed.article is not None:
            candidates.append((path.relative_to(directory), shown, data, parsed.article))
    # The files that published their id first, each group in path order (sorted is stable).
    incumbents = published or {}
    candidates.sort(key=lambda c: not _same_file(incumbents.get(c[3].id), c[0]))
    owners: dict[tuple[str, str], tuple[str, str]] = {}  # (slug or id, value) → (path, article id)
    for _, shown, data, article in candidates:
        # One report per file: a derived id repeats whenever the slug does.
        duplicate = next((kv for kv in (("slug", article.slug), ("id", article.id)) if kv in owners), None)
        if duplicate:
            key, value = duplicate
            owner, owner_id = owners[duplicate]
            message = f"duplicate {key} {value!r} (also used by {owner})"
            result.problems.append(Problem(shown, front_matter_key_line(data, key), message))
            result.contested |= {article.id, owner_id}
            continue
        owners[("slug", article.slug)] = owners[("id", article.id)] = (shown, article.id)
        result.articles.append(article)
    result.articles.sort(key=lambda article: article.id)
    result.articles.sort(key=lambda article: article.published, reverse=True)
    return result


def _same_file(stored: str | None, relative: Path) -> bool:
    """Whether a stored ``source_path`` is this file: compared by its path inside the
    directory, as the stored one is relative to the working directory of its scan."""
    if not stored:
        return False
    return PurePath(stored).parts[-len(relative.parts):] == relative.parts


def _markdown_files(directory: Path) -> list[Path]:
    """Sorted ``*.md`` files, without hidden files or folders."""
    return [
        path
        for path in sorted(directory.rglob("*.md"))
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(directory).parts)
    ]


def _display(path: Path) -> str:
    """The path as the user would type it: relative to the working directory when inside it."""
    absolute = path.absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)
