"""What a first build of a large archive keeps in memory: the structure that keeps it flat,
checked without timing or memory thresholds (bench/archive.py measures the figures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from publisher.app import Publisher
from publisher.config import Settings
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
    assert repr(result) == "IngestResult(new=4, updated=0, removed=0, unchanged=0, skipped=0, scheduled=0)"
    assert all(article.body_html not in repr(result) for article in result.new)


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
