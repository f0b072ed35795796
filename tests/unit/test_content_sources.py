"""scan_directory: every good file is published, every bad one is reported precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from publisher.content.model import Problem
from publisher.sources.markdown_dir import scan_directory

SITE = "https://news.example/"


def write(directory: Path, name: str, front: str, body: str = "Body.\n") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{front}---\n{body}", encoding="utf-8")
    return path


@pytest.fixture
def content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path / "content"


def test_articles_are_newest_first_then_by_id(content: Path) -> None:
    write(content, "old.md", "id: c\ntitle: Old\ndate: 2024-01-01\n")
    write(content, "new-b.md", "id: b\ntitle: New B\ndate: 2024-03-01\n")
    write(content, "sub/new-a.md", "id: a\ntitle: New A\ndate: 2024-03-01\n")
    result = scan_directory(content, SITE)
    assert result.problems == []
    assert [a.id for a in result.articles] == ["a", "b", "c"]
    assert result.articles[0].source_path == "content/sub/new-a.md"


def test_hidden_and_underscore_files_are_skipped(content: Path) -> None:
    write(content, "kept.md", "title: Kept\ndate: 2024-01-01\n")
    write(content, "_draft.md", "title: Draft\ndate: 2024-01-01\n")
    write(content, ".hidden.md", "title: Hidden\ndate: 2024-01-01\n")
    write(content, ".git/inside.md", "title: In hidden dir\ndate: 2024-01-01\n")
    write(content, "notes.txt", "title: Not markdown\ndate: 2024-01-01\n")
    assert [a.slug for a in scan_directory(content, SITE).articles] == ["kept"]


def test_a_broken_file_is_reported_and_the_others_are_returned(content: Path) -> None:
    write(content, "good.md", "title: Good\ndate: 2024-01-01\n")
    write(content, "bad.md", "title: Bad\ndate: whenever\n")
    (content / "binary.md").write_bytes(b"---\ntitle: \xff\n---\n")
    result = scan_directory(content, SITE)
    assert [a.slug for a in result.articles] == ["good"]
    assert result.problems == [
        Problem("content/bad.md", 3, "date 'whenever' is not a date (use ISO 8601 or RFC 2822)"),
        Problem("content/binary.md", 2, "file is not valid UTF-8"),
    ]


def test_duplicate_slug_is_reported_on_the_later_file_at_its_slug_line(content: Path) -> None:
    write(content, "a.md", "title: A\ndate: 2024-01-01\nslug: same\n")
    write(content, "b.md", "title: B\ndate: 2024-01-02\nslug: same\n")
    result = scan_directory(content, SITE)
    assert [a.title for a in result.articles] == ["A"]
    assert result.problems == [Problem("content/b.md", 4, "duplicate slug 'same' (also used by content/a.md)")]


def test_duplicate_slug_from_file_names_points_at_line_one(content: Path) -> None:
    write(content, "2024/story.md", "title: A\ndate: 2024-01-01\n")
    write(content, "2025/story.md", "title: B\ndate: 2025-01-01\n")
    result = scan_directory(content, SITE)
    assert [a.title for a in result.articles] == ["A"]
    assert result.problems == [
        Problem("content/2025/story.md", 1, "duplicate slug 'story' (also used by content/2024/story.md)")
    ]


def test_path_order_goes_folder_by_folder_not_by_the_whole_string(content: Path) -> None:
    """"news/story.md" comes before "news-extra.md" ("news" sorts first), though as whole
    strings "-" sorts before "/": the first file in path order keeps a shared slug."""
    write(content, "news-extra.md", "title: Extra\ndate: 2024-01-02\nslug: same\n")
    write(content, "news/story.md", "title: Story\ndate: 2024-01-01\nslug: same\n")
    result = scan_directory(content, SITE)
    assert [a.title for a in result.articles] == ["Story"]
    assert result.problems == [
        Problem("content/news-extra.md", 4, "duplicate slug 'same' (also used by content/news/story.md)")
    ]


def test_duplicate_id_is_reported_at_its_id_line(content: Path) -> None:
    write(content, "a.md", "id: 7\ntitle: A\ndate: 2024-01-01\n")
    write(content, "b.md", "title: B\ndate: 2024-01-02\nid: 7\n")
    result = scan_directory(content, SITE)
    assert [a.title for a in result.articles] == ["A"]
    assert result.problems == [Problem("content/b.md", 4, "duplicate id '7' (also used by content/a.md)")]


def test_paths_outside_the_working_directory_are_absolute(tmp_path: Path) -> None:
    write(tmp_path, "x.md", "title: X\ndate: 2024-01-01\n")
    (article,) = scan_directory(tmp_path, SITE).articles
    assert article.source_path == str(tmp_path / "x.md")


def test_missing_directory_is_a_problem_not_an_exception(content: Path) -> None:
    result = scan_directory(content, SITE)
    assert result.articles == []
    assert result.problems == [Problem("content", 0, "content directory does not exist")]
