"""Shared fixtures: a complete, isolated publisher setup in a temporary directory."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from publisher.config import Settings, load_settings

if TYPE_CHECKING:
    from publisher.app import Publisher

REPO = Path(__file__).resolve().parent.parent
SAMPLE_CONTENT = REPO / "content"
SEED = REPO.parent / "shared" / "seed" / "kim-russia-visit.txt"


def write_config(root: Path, extra: str = "", **delivery: object) -> Path:
    """A config.toml in ``root`` whose every path stays inside ``root``.

    ``delivery`` keys override or add to the ``[delivery]`` table; ``extra`` is more
    TOML after it (other tables).
    """
    values: dict[str, object] = {
        "outbox": "outbox", "from_address": "brief@news.example.org", "from_name": "Test Brief", "retry_base": 1,
    } | delivery
    delivery_lines = "\n".join(f"{key} = {toml_value(value)}" for key, value in values.items())
    path = root / "config.toml"
    path.write_text(
        f"""
[site]
title = "Test Brief"
url = "https://news.example.org/"
postal_address = "1 Test Road, Testville"
output_dir = "public"

[content]
dir = "content"

[storage]
data_dir = "data"

[database]
url = "sqlite+aiosqlite:///data/publisher.db"

[delivery]
{delivery_lines}
{extra}
""",
        encoding="utf-8",
    )
    return path


def toml_value(value: object) -> str:
    """A TOML literal for a string, a boolean or a number."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


@pytest.fixture(autouse=True)
def _secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLISHER_SECRET_KEY", "test-secret-key")


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    """A directory with a config and a copy of the sample content."""
    shutil.copytree(SAMPLE_CONTENT, tmp_path / "content")
    write_config(tmp_path)
    return tmp_path


@pytest.fixture
def make_settings(site_dir: Path) -> Callable[..., Settings]:
    def make(extra: str = "") -> Settings:
        return load_settings(write_config(site_dir, extra), environ={})

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def publisher(settings: Settings) -> AsyncIterator[Publisher]:
    from publisher.app import Publisher

    service = Publisher(settings)
    await service.start()
    yield service
    await service.close()
