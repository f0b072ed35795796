"""The newest migration as a start reads it from the files (without Alembic) is Alembic's own."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from publisher.store import db


def test_the_head_read_from_the_files_is_alembics() -> None:
    assert db._head_in_files() == ScriptDirectory.from_config(db.alembic_config()).get_current_head()


def test_two_heads_leave_the_decision_to_alembic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "a.py").write_text('revision = "a"\ndown_revision = None\n')
    (versions / "b.py").write_text('revision: str = "b"\ndown_revision: str | None = "a"\n')
    monkeypatch.setattr(db, "MIGRATIONS_DIR", tmp_path)
    db._head_in_files.cache_clear()
    assert db._head_in_files() == "b"
    (versions / "c.py").write_text("revision = 'c'\ndown_revision = 'a'\n")
    db._head_in_files.cache_clear()
    try:
        assert db._head_in_files() is None
    finally:
        monkeypatch.undo()
        db._head_in_files.cache_clear()
