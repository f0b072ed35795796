"""What a command loads: only the libraries its work needs (issue 18, "lean start-up").

Importing Alembic, rich, the Markdown and feed parsers or aiohttp costs memory and
start-up time a command like ``publisher send`` from cron never uses; a top-level
import added anywhere on its way brings them back silently.  These tests run the
entry point in a subprocess and read ``sys.modules`` at its exit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.databases import Backend

pytestmark = pytest.mark.slow  # subprocesses

# Runs the entry point with the arguments given, then writes the top-level packages
# loaded to the file named by LOADED_TO (stdout is the command's).
_PROBE = """
import atexit, json, os, sys
atexit.register(lambda: json.dump(sorted({m.split('.')[0] for m in sys.modules}), open(os.environ['LOADED_TO'], 'w')))
sys.argv = ['publisher', *sys.argv[1:]]
from publisher.__main__ import main
main()
"""

# Never needed by a command that serves nothing, migrates nothing, draws on no terminal.
NOT_FOR_CRON = {"alembic", "mako", "rich", "aiohttp", "limits", "prometheus_client"}  # the last: /metrics only
# Needed only to render or send a message.
SENDING = {"css_inline", "aiosmtplib", "cryptography"}
# Needed only when a scan finds a changed Markdown file.
PARSERS = {"markdown_it", "yaml", "nh3"}


def loaded(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``publisher ARGS`` (stdin and stdout not a terminal); what it printed, and the packages it loaded."""
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
    modules = {name.split(".")[0] for name in json.loads(result.stdout)}
    assert not modules & (NOT_FOR_CRON | SENDING | {"sqlalchemy", "pydantic", "jinja2", "markdown_it", "feedgen"})


def test_help_loads_neither_alembic_nor_rich_nor_the_parsers(tmp_path: Path) -> None:
    result, modules = loaded(tmp_path, "--help")
    assert result.returncode == 0 and "send" in result.stdout, result.stderr
    # No store either: the options' choices (an article's states) come without SQLAlchemy.
    assert not modules & (NOT_FOR_CRON | {"markdown_it", "feedgen", "sqlalchemy", "pydantic", "prometheus_client"})


def test_send_with_nothing_to_send_loads_only_what_it_uses(site_dir: Path, database: Backend) -> None:
    config = str(site_dir / "config.toml")
    first, modules = loaded(site_dir, "--config", config, "send")
    assert first.returncode == 0, first.stderr
    assert "alembic" in modules  # a new store: the migrations ran

    again, modules = loaded(site_dir, "--config", config, "send")
    assert again.returncode == 0 and "sent 0" in again.stdout, again.stdout + again.stderr
    assert not modules & (NOT_FOR_CRON | SENDING | PARSERS)  # the scan found every file unchanged
