"""A scan the file watcher triggers looks only at the paths it was told of; the interval
scan still walks everything, so what the watcher missed is caught there."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from publisher.app import Publisher
from publisher.config import Settings
from publisher.content.model import ContentLimits
from publisher.runtime.watch import watch_content
from publisher.sources import markdown_dir
from publisher.store import source_files
from tests.store.test_incremental_scan import age
from tests.system.test_daemon import NEW_ARTICLE


@pytest.fixture
def content(settings: Settings) -> Path:
    """The sample site's articles and one more, written an hour ago (not racy)."""
    (settings.content.dir / "harbour-bridge.md").write_text(NEW_ARTICLE, encoding="utf-8")
    age(settings.content.dir)
    return settings.content.dir


class Stats:
    """Counts the ``stat`` calls of the files in the content directory (by file name) and
    its folders' listings."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, content: Path) -> None:
        self.stat: Counter[str] = Counter()
        self.listed = 0
        real_stat, real_scandir = os.stat, os.scandir
        root = os.fspath(content)

        def stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
            if os.fspath(path).startswith(root + os.sep):
                self.stat[Path(path).name] += 1
            return real_stat(path, *args, **kwargs)

        def scandir(path: Any = ".") -> Any:
            if os.fspath(path).startswith(root):
                self.listed += 1
            return real_scandir(path)

        monkeypatch.setattr(os, "stat", stat)
        monkeypatch.setattr(os, "scandir", scandir)


class Loaded:
    """Counts the ``source_files`` rows a scan loads (by path) and whether it loaded them all."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rows: Counter[str] = Counter()
        self.whole = 0
        real_load, real_rows = source_files.load, source_files._load

        async def load(*args: Any) -> dict[str, source_files.SourceFile]:
            self.whole += 1
            return await real_load(*args)

        async def rows(*args: Any) -> dict[str, source_files.SourceFile]:
            loaded = await real_rows(*args)
            self.rows.update(loaded.keys())
            return loaded

        monkeypatch.setattr(source_files, "load", load)
        monkeypatch.setattr(source_files, "_load", rows)


def edited(name: str) -> str:
    return NEW_ARTICLE.replace("id: harbour-bridge-reopens", f"id: {name}").replace(
        "tags:", f"slug: {name}\ntags:")


async def test_a_told_scan_stats_only_the_changed_path(
    publisher: Publisher, content: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await publisher.intake.scan()
    added = content / "ferry-timetable.md"
    added.write_text(edited("ferry-timetable"), encoding="utf-8")
    stats = Stats(monkeypatch, content)
    result = await publisher.intake.scan({added})
    assert [a.id for a in result.new] == ["ferry-timetable"]
    assert stats.listed == 0 and set(stats.stat) == {"ferry-timetable.md"}
    assert result.unchanged == 0  # the others stand as the store has them: not even counted


async def test_a_told_scan_loads_only_the_rows_it_can_change(
    publisher: Publisher, content: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not the source's every row: 100,000 of them cost most of a second to load and contest."""
    for number in range(20):
        (content / f"archive-{number:02d}.md").write_text(edited(f"archive-{number:02d}"), encoding="utf-8")
    await publisher.intake.scan()
    edit = content / "archive-07.md"
    edit.write_text(edited("archive-07").replace("Repairs", "The repairs"), encoding="utf-8")
    loaded = Loaded(monkeypatch)
    result = await publisher.intake.scan({edit})
    assert [a.id for a in result.updated] == ["archive-07"]
    assert loaded.whole == 0 and set(loaded.rows) == {"archive-07.md"}
    # The rows are what a full walk finds.
    again = await publisher.intake.scan()
    assert not again.changed and again.unchanged == 24


async def test_a_told_scan_removes_a_deleted_path_and_the_rows_stay_right(
    publisher: Publisher, content: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await publisher.intake.scan()
    gone = content / "harbour-bridge.md"
    gone.unlink()
    stats = Stats(monkeypatch, content)
    result = await publisher.intake.scan({gone})
    assert result.removed == ["harbour-bridge-reopens"] and stats.listed == 0
    assert "harbour-bridge-reopens" not in [a.id for a in await publisher.intake.latest()]
    # The rows are what a full walk finds: the next full scan has nothing to do.
    again = await publisher.intake.scan()
    assert not again.changed and again.unchanged == 3


async def test_the_interval_scan_catches_a_removal_the_watcher_missed(
    publisher: Publisher, content: Path
) -> None:
    await publisher.intake.scan()
    (content / "harbour-bridge.md").unlink()
    other = content / "ferry-timetable.md"
    other.write_text(edited("ferry-timetable"), encoding="utf-8")
    told = await publisher.intake.scan({other})  # the watcher saw only the new file
    assert [a.id for a in told.new] == ["ferry-timetable"] and told.removed == []
    walked = await publisher.intake.scan()
    assert walked.removed == ["harbour-bridge-reopens"] and not walked.new


@pytest.mark.parametrize("name", ["zz-copy.md", "aa-copy.md"])  # after and before it in path order
@pytest.mark.parametrize("key,value", [("slug", "harbour-bridge"), ("id", "harbour-bridge-reopens")])
async def test_a_told_file_taking_an_untold_files_slug_or_id_is_refused(
    publisher: Publisher, content: Path, monkeypatch: pytest.MonkeyPatch, name: str, key: str, value: str
) -> None:
    """The files not looked at still hold their ids and slugs, as in a full scan: the
    one holding it is loaded by an indexed query on it."""
    await publisher.intake.scan()
    copy = content / name
    copy.write_text(edited("copy").replace(f"{key}: copy", f"{key}: {value}"), encoding="utf-8")
    loaded = Loaded(monkeypatch)
    result = await publisher.intake.scan({copy})
    [problem] = result.skipped
    assert problem.message.startswith(f"duplicate {key} {value!r}") and not result.new
    assert Path(problem.path).name == name and not result.removed
    assert loaded.whole == 0 and set(loaded.rows) == {"harbour-bridge.md"}
    # The copy is held back at every told scan, and takes over once the other file lets go.
    assert [Path(p.path).name for p in (await publisher.intake.scan({content / "city-heat-plan.md"})).skipped] == [name]
    (content / "harbour-bridge.md").unlink()
    freed = await publisher.intake.scan({content / "harbour-bridge.md"})
    assert [a.id for a in freed.new + freed.updated] == ["copy" if key == "slug" else value]


async def test_a_told_path_outside_the_directories_walks_them(
    publisher: Publisher, content: Path, tmp_path: Path
) -> None:
    await publisher.intake.scan()
    (content / "harbour-bridge.md").unlink()
    result = await publisher.intake.scan({tmp_path / "elsewhere.md"})
    assert result.removed == ["harbour-bridge-reopens"]


async def test_the_watcher_tells_which_paths_changed(publisher: Publisher, settings: Settings) -> None:
    told: asyncio.Queue[frozenset[Path]] = asyncio.Queue()

    async def on_change(paths: frozenset[Path]) -> None:
        await told.put(paths)

    watcher = asyncio.create_task(watch_content(publisher, on_change))
    try:
        written = settings.content.dir / "ferry-timetable.md"
        # The watcher starts listening as its task first runs: write until it reports.
        for _ in range(20):
            written.write_text(edited("ferry-timetable"), encoding="utf-8")
            try:
                paths = await asyncio.wait_for(told.get(), 1)
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("the watcher reported nothing")
        assert {path.resolve() for path in paths} == {written.resolve()}
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


async def test_a_told_file_whose_id_changed_takes_the_old_one_down(publisher: Publisher, content: Path) -> None:
    await publisher.intake.scan()
    path = content / "harbour-bridge.md"
    path.write_text(NEW_ARTICLE.replace("id: harbour-bridge-reopens", "id: bridge-2"), encoding="utf-8")
    result = await publisher.intake.scan({path})
    assert [a.id for a in result.new] == ["bridge-2"] and result.removed == ["harbour-bridge-reopens"]


async def test_a_told_removal_waits_while_another_file_is_broken(
    publisher: Publisher, content: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in a walk: a file that does not parse may be an article being edited."""
    await publisher.intake.scan()
    (content / "broken.md").write_text("---\ntitle: No date\n---\nText.\n", encoding="utf-8")
    await publisher.intake.scan()
    gone = content / "harbour-bridge.md"
    gone.unlink()
    loaded = Loaded(monkeypatch)
    result = await publisher.intake.scan({gone})
    assert result.removed == [] and [Path(p.path).name for p in result.skipped] == ["broken.md"]
    assert loaded.whole == 0 and set(loaded.rows) == {"harbour-bridge.md", "broken.md"}
    # Once it is mended, the removal the told scan held back waits for the walk (it
    # takes a complete directory to name every id gone).
    (content / "broken.md").unlink()
    mended = await publisher.intake.scan({content / "broken.md"})
    assert mended.removed == []


def test_a_told_listing_keeps_the_walks_path_order(tmp_path: Path) -> None:
    """The order decides which of two files sharing a slug wins: a folder "a" sorts before "a b.md"."""
    for name in ("a-b.md", "a/b.md", "a.md", "a b.md", "ab/c.md", "a/a/z.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(edited(name.replace("/", "-").replace(" ", "-")[:-3]), encoding="utf-8")
    site, limits = "https://news.example.org", ContentLimits()
    walked = markdown_dir.scan_changes(tmp_path, site, limits, {}).files
    told = markdown_dir.told_listing(tmp_path, site, limits, walked, {"a-b.md", "new.md"})
    assert [path for path, _ in told] == list(walked) == ["a/a/z.md", "a/b.md", "a b.md", "a-b.md", "a.md", "ab/c.md"]
