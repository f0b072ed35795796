"""A content directory moved (the site copied to another disk, a new checkout path): its
articles are the same articles, with their ids, dates and digests, not "already published by"
the directory they came from."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from publisher.app import Publisher
from publisher.config import Settings
from publisher.store.articles import latest


async def scan(settings: Settings) -> tuple[int, int, int, list[str]]:
    publisher = Publisher(settings)
    await publisher.start()
    try:
        result = await publisher.intake.scan()
        stored = await latest(publisher.engine)
    finally:
        await publisher.close()
    return len(result.new), len(result.removed), len(result.skipped), sorted(a.id for a in stored)


async def test_a_moved_content_directory_keeps_its_articles(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    new, _, _, before = await scan(settings)
    assert new == len(before) > 0
    moved = tmp_path / "elsewhere" / "content"
    shutil.copytree(settings.content.dir, moved)
    shutil.rmtree(settings.content.dir)
    old = settings.content.dir
    settings.content.dir = moved
    with caplog.at_level(logging.INFO):
        assert await scan(settings) == (0, 0, 0, before)  # nothing new, removed or refused
    assert f"moved from {old} to {moved}" in caplog.text
    # The old directory's key is gone: a second scan finds everything as it was.
    assert await scan(settings) == (0, 0, 0, before)


async def test_a_second_directory_beside_a_still_present_one_takes_nothing_over(
    settings: Settings, tmp_path: Path
) -> None:
    """Only a directory that is gone is taken for moved: a copy beside it is another source,
    and its articles (same ids) are refused as before."""
    await scan(settings)
    copy = tmp_path / "copy"
    shutil.copytree(settings.content.dir, copy)
    settings.content.dir = copy
    new, removed, skipped, _ = await scan(settings)
    assert (new, removed) == (0, 0) and skipped > 0
