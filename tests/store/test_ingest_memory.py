"""What a first build of a large archive keeps in memory: the structure that keeps it flat,
checked without timing or memory thresholds (bench/archive.py measures the figures)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from publisher.app import Publisher
from publisher.config import Settings
from publisher.content.model import Article
from publisher.store import source_files
from tests.system.test_daemon import NEW_ARTICLE


async def test_an_ingest_results_repr_counts_its_articles_without_their_bodies(
    publisher: Publisher, settings: Settings
) -> None:
    # asyncio's runner formats the repr of a command's result as it ends (``publisher build``
    # returns this one): a repr with every article's body cost more than the build itself.
    content: Path = settings.content.dir
    (content / "harbour-bridge.md").write_text(NEW_ARTICLE, encoding="utf-8")
    result = await publisher.intake.scan()
    assert len(result.new) == 4
    assert repr(result) == (
        "IngestResult(new=4, updated=0, removed=0, unchanged=0, skipped=0, scheduled=0, regenerated=0)"
    )


async def test_a_scans_result_holds_no_parsed_article(publisher: Publisher, settings: Settings) -> None:
    # Its callers (the log, the CLI's count, the scheduler, the API) read a few fields: holding
    # every parsed article until they are done kept ~94 MB of a 10,000-article first build.
    content: Path = settings.content.dir
    (content / "harbour-bridge.md").write_text(NEW_ARTICLE, encoding="utf-8")
    (content / "later.md").write_text(
        NEW_ARTICLE.replace("harbour-bridge-reopens", "later").replace("2026-", "2126-"), encoding="utf-8")
    result = await publisher.intake.scan()
    assert len(result.new) == 4 and [a.slug for a in result.scheduled] == ["later"]
    assert not [held for held in _reachable(result) if isinstance(held, Article)]


def _reachable(root: object) -> list[object]:
    """Every object ``root`` refers to, however deeply."""
    seen, todo, found = {id(root)}, [root], []
    while todo:
        for referent in gc.get_referents(todo.pop()):
            if id(referent) not in seen and not isinstance(referent, type):
                seen.add(id(referent))
                found.append(referent)
                todo.append(referent)
    return found


async def test_a_first_scan_writes_its_files_rows_a_batch_at_a_time(
    publisher: Publisher, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    content: Path = settings.content.dir
    (content / "harbour-bridge.md").write_text(NEW_ARTICLE, encoding="utf-8")
    (content / "unfinished.md").write_text("no front matter yet\n", encoding="utf-8")  # a broken file has its row too
    monkeypatch.setattr(source_files, "SAVE_BATCH", 2)
    batches: list[int] = []

    def count(conn: object, cursor: object, statement: str, parameters: Any, context: object, many: bool) -> None:
        if statement.startswith("INSERT INTO source_files"):
            batches.append(len(parameters) if many else 1)

    event.listen(publisher.engine.sync_engine, "before_cursor_execute", count)
    try:
        await publisher.intake.scan()
    finally:
        event.remove(publisher.engine.sync_engine, "before_cursor_execute", count)
    assert len(list(content.rglob("*.md"))) == 5
    assert batches == [2, 2, 1]
