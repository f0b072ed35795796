"""An incremental scan: only changed files are read, only changed bytes are parsed, and the
store's rows are the truth for every node and every restart."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from publisher.app import Publisher
from publisher.config import Settings
from publisher.content import markdown
from publisher.content.markdown import ParsedFile
from publisher.sources import markdown_dir
from tests.system.test_daemon import NEW_ARTICLE

HOUR_AGO = time.time() - 3600


class Reads:
    """Counts the files of the content directory read and parsed (by file name)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, content: Path) -> None:
        self.read: Counter[str] = Counter()
        self.parsed: Counter[str] = Counter()
        real_read, real_parse = Path.read_bytes, markdown.read_article

        def read_bytes(path: Path) -> bytes:
            if content in path.parents:
                self.read[path.name] += 1
            return real_read(path)

        def read_article(data: bytes, shown: str, *args: Any, **kwargs: Any) -> ParsedFile:
            self.parsed[Path(shown).name] += 1
            return real_parse(data, shown, *args, **kwargs)

        monkeypatch.setattr(Path, "read_bytes", read_bytes)
        # The scan imports the parser when it reads a file: patched where it is looked up then.
        monkeypatch.setattr(markdown, "read_article", read_article)

    def reset(self) -> None:
        self.read.clear()
        self.parsed.clear()


def age(content: Path, seconds_ago: float = 3600) -> None:
    """Date every file in the past: a file written just now is read again once (racy)."""
    for path in content.rglob("*.md"):
        os.utime(path, (time.time() - seconds_ago, time.time() - seconds_ago))


@pytest.fixture
def content(settings: Settings) -> Iterator[Path]:
    (settings.content.dir / "harbour-bridge.md").write_text(NEW_ARTICLE, encoding="utf-8")
    age(settings.content.dir)
    yield settings.content.dir


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch, content: Path) -> Reads:
    return Reads(monkeypatch, content)


async def test_a_scan_with_nothing_changed_opens_no_file(publisher: Publisher, content: Path, reads: Reads) -> None:
    first = await publisher.intake.scan()
    assert len(first.new) == 4 and reads.parsed["harbour-bridge.md"] == 1
    reads.reset()
    again = await publisher.intake.scan()
    assert (reads.read, reads.parsed) == (Counter(), Counter())
    assert (again.new, again.updated, again.removed, again.unchanged) == ([], [], [], 4)
    assert not again.changed_ids and not again.changed_tags


async def test_a_touched_file_is_hashed_not_parsed_and_an_edited_one_is_parsed(
    publisher: Publisher, content: Path, reads: Reads
) -> None:
    await publisher.intake.scan()
    article = content / "harbour-bridge.md"
    os.utime(article, (HOUR_AGO + 60, HOUR_AGO + 60))  # touched: the same bytes
    reads.reset()
    touched = await publisher.intake.scan()
    assert reads.read == Counter({"harbour-bridge.md": 1}) and reads.parsed == Counter()
    assert not touched.changed and touched.unchanged == 4

    article.write_text(NEW_ARTICLE.replace("[infrastructure]", "[transport]"), encoding="utf-8")
    reads.reset()
    edited = await publisher.intake.scan()
    assert reads.parsed == Counter({"harbour-bridge.md": 1})
    assert [a.id for a in edited.updated] == ["harbour-bridge-reopens"] and edited.unchanged == 3
    assert edited.changed_ids == {"harbour-bridge-reopens"}
    assert edited.changed_tags == {"infrastructure", "transport"}  # both tag feeds change


async def test_a_file_written_just_before_a_scan_is_hashed_again_until_it_is_old_enough(
    publisher: Publisher, content: Path, reads: Reads, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its mtime may not move if it changes again within the timestamp granularity."""
    await publisher.intake.scan()
    (content / "harbour-bridge.md").write_text(NEW_ARTICLE.replace("three", "four"), encoding="utf-8")
    await publisher.intake.scan()
    reads.reset()
    await publisher.intake.scan()
    assert reads.read == Counter({"harbour-bridge.md": 1}) and reads.parsed == Counter()
    monkeypatch.setattr(markdown_dir, "RACY_NS", 0)  # as if the granularity had passed since
    reads.reset()
    await publisher.intake.scan()  # hashed again (same bytes: not parsed), now with its real mtime
    assert reads.read == Counter({"harbour-bridge.md": 1}) and reads.parsed == Counter()
    reads.reset()
    await publisher.intake.scan()
    assert reads.read == Counter()


async def test_a_removed_file_is_unpublished_without_reading_the_others(
    publisher: Publisher, content: Path, reads: Reads
) -> None:
    await publisher.intake.scan()
    (content / "harbour-bridge.md").unlink()
    reads.reset()
    removed = await publisher.intake.scan()
    assert removed.removed == ["harbour-bridge-reopens"] and reads.read == Counter()
    assert removed.changed_ids == {"harbour-bridge-reopens"} and removed.changed_tags == {"infrastructure"}
    assert "harbour-bridge-reopens" not in [a.id for a in await publisher.intake.latest()]


async def test_a_broken_file_is_reported_at_every_scan_and_removes_nothing(
    publisher: Publisher, content: Path, reads: Reads
) -> None:
    await publisher.intake.scan()
    (content / "broken.md").write_text("---\ntitle: No date\n---\nText.\n", encoding="utf-8")
    (content / "harbour-bridge.md").unlink()
    age(content)
    first = await publisher.intake.scan()
    reads.reset()
    again = await publisher.intake.scan()
    assert reads.read == Counter()
    for result in (first, again):
        assert [(Path(p.path).name, p.line, p.message) for p in result.skipped] == [("broken.md", 1, "missing date")]
        assert result.removed == []  # a file that does not parse may be an article being edited


async def test_a_duplicate_slug_goes_to_the_other_file_when_the_first_leaves(
    publisher: Publisher, content: Path, reads: Reads
) -> None:
    copy = NEW_ARTICLE.replace("id: harbour-bridge-reopens", "id: copy").replace("early", "late")
    (content / "zz-copy.md").write_text(copy.replace("tags:", "slug: harbour-bridge\ntags:"), encoding="utf-8")
    age(content)
    first = await publisher.intake.scan()
    [problem] = first.skipped
    assert (Path(problem.path).name, problem.line) == ("zz-copy.md", 5)
    assert problem.message.startswith("duplicate slug 'harbour-bridge' (also used by ")
    assert "copy" not in [a.id for a in first.new]
    (content / "harbour-bridge.md").unlink()
    reads.reset()
    second = await publisher.intake.scan()
    assert [a.id for a in second.new] == ["copy"] and second.removed == ["harbour-bridge-reopens"]
    assert reads.parsed == Counter({"zz-copy.md": 1})  # lost before, unchanged, wins now: parsed


async def test_a_second_node_and_a_restart_share_the_stored_state(
    publisher: Publisher, settings: Settings, content: Path, reads: Reads
) -> None:
    await publisher.intake.scan()
    other = Publisher(settings)  # another node on the same database and directory
    await other.start()
    try:
        reads.reset()
        seen = await other.intake.scan()
        assert reads.read == Counter() and not seen.changed and seen.unchanged == 4
        (content / "harbour-bridge.md").write_text(NEW_ARTICLE.replace("three", "four"), encoding="utf-8")
        age(content)
        edited = await other.intake.scan()
        assert [a.id for a in edited.updated] == ["harbour-bridge-reopens"]
        reads.reset()
        after = await publisher.intake.scan()  # the first node sees the edit stored, reads nothing
        assert reads.read == Counter() and not after.changed
    finally:
        await other.close()
    await publisher.close()
    restarted = Publisher(settings)
    await restarted.start()
    try:
        reads.reset()
        result = await restarted.intake.scan()
    finally:
        await restarted.close()
    assert reads.read == Counter() and not result.changed and result.unchanged == 4
