"""Test sites on disk: the repository's paths and the config.toml every test site starts from.

Plain functions and constants, imported by tests and by the fixtures alike (helpers
live here, in the support package, never in ``conftest.py``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support import databases

REPO = Path(__file__).resolve().parents[2]
SAMPLE_CONTENT = REPO / "content"


def new_site(root: Path) -> Path:
    """``root`` made a site: a copy of the sample content and a config (see :func:`write_config`)."""
    shutil.copytree(SAMPLE_CONTENT, root / "content")
    write_config(root)
    return root


def write_config(root: Path, extra: str = "", **delivery: object) -> Path:
    """A config.toml in ``root`` whose every path stays inside ``root``.

    Its database is the running test's backend's for ``root`` (a SQLite file in
    ``root``, or ``root``'s own PostgreSQL database).

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
url = "{databases.current().config_url(root)}"

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
