"""What a command loads: only the libraries its work needs (issue 18, "lean start-up").

Importing Alembic, rich, the Markdown and feed parsers or aiohttp costs memory and
start-up time a command like ``publisher send`` from cron never uses; a top-level
import added anywhere on its way brings them back silently.  These tests run the
entry point in a subprocess and read ``sys.modules`` at its exit.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from publisher.cli import main
from publisher.cli.context import with_publisher
from tests.support.databases import Backend

pytestmark = pytest.mark.slow  # subprocesses

# Runs the entry point with the arguments given, then writes the modules loaded to the
# file named by LOADED_TO (stdout is the command's).
_PROBE = """
import atexit, json, os, sys
atexit.register(lambda: json.dump(sorted(sys.modules), open(os.environ['LOADED_TO'], 'w')))
sys.argv = ['publisher', *sys.argv[1:]]
from publisher.__main__ import main
main()
"""

# Never needed by a command that serves nothing, migrates nothing, draws on no terminal.
NOT_FOR_CRON = {"alembic", "mako", "rich", "aiohttp", "limits", "prometheus_client"}  # the last: /metrics only
# Needed only to render or send a message (itsdangerous: the links' tokens; babel: the readers'
# language, its catalog and its date and number formats).
SENDING = {"css_inline", "aiosmtplib", "cryptography", "itsdangerous", "babel"}
# Needed only when a scan finds a changed Markdown file.
PARSERS = {"markdown_it", "yaml", "nh3"}
# Modules of packages a command does load, that it never uses: the ORM (the store is SQLAlchemy
# Core: publisher.store.lean_asyncio), the metadata of the installed distributions (the
# version is in publisher/__init__.py), the subscriber import and export.
UNUSED_MODULES = {"sqlalchemy.orm", "importlib.metadata", "subscribers.bulk", "subscribers.importer", "subscribers.export"}


def packages(modules: set[str]) -> set[str]:
    """The top-level packages of ``modules``."""
    return {name.split(".")[0] for name in modules}


def loaded(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``publisher ARGS`` (stdin and stdout not a terminal); what it printed, and the modules it loaded."""
    record = tmp_path / "loaded.json"
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=60, check=False,
        env=os.environ | {"LOADED_TO": str(record), "PUBLISHER_SECRET_KEY": "lean-test-key"},
    )
    return result, set(json.loads(record.read_text()))


def test_importing_the_cli_loads_no_library_of_any_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import json, sys, publisher.cli; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    modules = set(json.loads(result.stdout))
    assert not packages(modules) & (NOT_FOR_CRON | SENDING | {"sqlalchemy", "pydantic", "jinja2", "markdown_it", "feedgen"})
    assert "importlib.metadata" not in modules  # click's --version is given publisher.__version__


def test_help_loads_neither_alembic_nor_rich_nor_the_parsers(tmp_path: Path) -> None:
    result, modules = loaded(tmp_path, "--help")
    assert result.returncode == 0 and "send" in result.stdout, result.stderr
    # No store either: the options' choices (an article's states) come without SQLAlchemy.
    assert not packages(modules) & (NOT_FOR_CRON | {"markdown_it", "feedgen", "sqlalchemy", "pydantic", "prometheus_client"})
    assert "importlib.metadata" not in modules


def test_send_with_nothing_to_send_loads_only_what_it_uses(site_dir: Path, database: Backend) -> None:
    config = str(site_dir / "config.toml")
    first, modules = loaded(site_dir, "--config", config, "send")
    assert first.returncode == 0, first.stderr
    assert "alembic" in packages(modules)  # a new store: the migrations ran

    again, modules = loaded(site_dir, "--config", config, "send")
    assert again.returncode == 0 and "sent 0" in again.stdout, again.stdout + again.stderr
    assert not packages(modules) & (NOT_FOR_CRON | SENDING | PARSERS)  # the scan found every file unchanged
    # importlib.metadata: pydantic reads its plugins' entry points with it, so it loads anyway.
    assert not modules & (UNUSED_MODULES - {"importlib.metadata"})
    if database.name == "sqlite":
        assert "sqlalchemy.dialects.postgresql" not in modules


def test_the_asyncio_package_without_the_orm_still_has_every_name() -> None:
    """After ``import publisher``, SQLAlchemy's asyncio package loads the ORM at the first
    name of it that needs the ORM, and not before."""
    probe = (
        "import sys, publisher\n"
        "from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine\n"
        "print('sqlalchemy.orm' in sys.modules)\n"
        "from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker\n"
        "import sqlalchemy.ext.asyncio as package\n"
        "from sqlalchemy.ext.asyncio.engine import AsyncEngine as Engine\n"
        "print('sqlalchemy.orm' in sys.modules, AsyncSession.__name__, package.AsyncEngine is AsyncEngine is Engine,\n"
        "      package.close_all_sessions.__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.split() == ["False", "True", "AsyncSession", "True", "close_all_sessions"]


def test_the_version_is_the_distributions() -> None:
    """``publisher.__version__`` (written in the package, read by the build) is the installed distribution's."""
    result = subprocess.run(
        [sys.executable, "-c", "import importlib.metadata, publisher; "
         "print(publisher.__version__, importlib.metadata.version('publisher'))"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    ours, installed = result.stdout.split()
    assert ours == installed != "0"


def test_a_command_runs_with_its_start_up_frozen_and_leaves_the_collector_as_it_was(
    site_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The objects importing and configuring made are out of the collector's passes while
    the command runs (publisher.cli.context.start_up); a program running commands
    in-process gets them back after, and its collector on."""
    monkeypatch.setenv("PUBLISHER_SECRET_KEY", "lean-test-key")
    ctx = click.Context(main, obj={"config": site_dir / "config.toml"})

    async def work(publisher: object) -> tuple[int, bool]:
        return gc.get_freeze_count(), gc.isenabled()

    frozen, enabled = with_publisher(ctx, work)
    assert frozen > 10_000 and enabled
    assert gc.get_freeze_count() == 0 and gc.isenabled()

    bad = click.Context(main, obj={"config": site_dir / "missing.toml"})
    with pytest.raises(SystemExit):
        with_publisher(bad, work)
    assert gc.get_freeze_count() == 0 and gc.isenabled()
