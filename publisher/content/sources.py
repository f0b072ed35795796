"""The Markdown directory source: every ``*.md`` file under a directory → articles.

A broken file never stops a scan: its problems are reported and the other articles
are published.  Slugs and ids must be unique across files (they make the URL and the
feed GUID), so the later of two files in path order is the one reported and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from publisher.content.markdown import (
    ArticleError,
    front_matter_key_line,
    parse_article,
)
from publisher.content.model import Article, Problem


@dataclass
class ScanResult:
    articles: list[Article] = field(default_factory=list)  # newest first, then by id
    problems: list[Problem] = field(default_factory=list)


def scan_directory(directory: Path, site_url: str) -> ScanResult:
    """Parse every visible ``*.md`` file under ``directory`` (drafts start with "_")."""
    result = ScanResult()
    if not directory.is_dir():
        result.problems.append(Problem(_display(directory), 0, "content directory does not exist"))
        return result
    owners: dict[tuple[str, str], str] = {}  # (slug or id, value) → path of the file using it
    for path in _markdown_files(directory):
        shown = _display(path)
        try:
            data = path.read_bytes()
            article = parse_article(data, shown, site_url)
        except OSError as exc:
            result.problems.append(Problem(shown, 0, f"cannot read file: {exc.strerror}"))
            continue
        except ArticleError as exc:
            result.problems.extend(exc.problems)
            continue
        # One report per file: a derived id repeats whenever the slug does.
        duplicate = next((kv for kv in (("slug", article.slug), ("id", article.id)) if kv in owners), None)
        if duplicate:
            key, value = duplicate
            message = f"duplicate {key} {value!r} (also used by {owners[duplicate]})"
            result.problems.append(Problem(shown, front_matter_key_line(data, key), message))
            continue
        owners[("slug", article.slug)] = owners[("id", article.id)] = shown
        result.articles.append(article)
    result.articles.sort(key=lambda article: article.id)
    result.articles.sort(key=lambda article: article.published, reverse=True)
    return result


def _markdown_files(directory: Path) -> list[Path]:
    """Sorted ``*.md`` files, without hidden files or folders and "_" drafts."""
    return [
        path
        for path in sorted(directory.rglob("*.md"))
        if path.is_file()
        and not path.name.startswith("_")
        and not any(part.startswith(".") for part in path.relative_to(directory).parts)
    ]


def _display(path: Path) -> str:
    """The path as the user would type it: relative to the working directory when inside it."""
    absolute = path.absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)
