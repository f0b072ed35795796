"""The README's quick start, run as a newcomer would: its commands must do what it says."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from publisher.app import Publisher
from publisher.config import Settings, load_settings
from subscribers.model import Cadence
from tests.support.sites import REPO
from tests.support.outbox import outbox_messages
from tests.support.people import add_subscriber

pytestmark = pytest.mark.slow  # subprocesses: the CLI, the daemon, the wheel


def quick_start() -> str:
    """The README's "Quick start" section, up to the next heading."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Quick start\n(.*?)^## ", text, re.DOTALL | re.MULTILINE)
    assert match, "README.md has no '## Quick start' section"
    return match.group(1)


def outbox_one_liner() -> list[str]:
    """The quick start's ``python -c …`` that prints an outbox file, as an argv."""
    match = re.search(r'python3? -c "[^"]+" [^\s`]+', quick_start())
    assert match, "no `python -c \"…\" FILE` in the quick start"
    return shlex.split(match.group(0))


async def test_the_outbox_one_liner_prints_the_digest_as_readable_text(
    publisher: Publisher, settings: Settings
) -> None:
    await add_subscriber(publisher.engine, "ann@example.org", cadence=Cadence.INSTANT)
    scan = await publisher.intake.scan()
    await publisher.delivery.send([Cadence.INSTANT])
    [message] = outbox_messages(settings)
    argv: list[str] = []
    for arg in outbox_one_liner():
        if arg in ("python", "python3"):
            argv.append(sys.executable)
        elif arg.startswith("var/outbox/"):  # the shell's glob, on this test's outbox
            argv += sorted(str(path) for path in settings.delivery.outbox.glob(arg.removeprefix("var/outbox/")))
        else:
            argv.append(arg)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert message["Subject"] in result.stdout
    for article in scan.new:
        assert article.title in result.stdout  # decoded text, not quoted-printable or base64
    assert "Content-Transfer-Encoding" not in result.stdout and "<email.message" not in result.stdout


def test_the_quick_start_names_a_publisher_command_that_runs() -> None:
    text = quick_start()
    assert ". .venv/bin/activate" in text
    result = subprocess.run(
        [str(Path(sys.executable).parent / "publisher"), "--help"], capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert result.returncode == 0 and "preview" in text


def test_the_quick_start_port_overrides_move_the_server_and_the_links() -> None:
    overrides = dict(re.findall(r"(PUBLISHER_[A-Z]+__[A-Z_]+)=(\S+)", quick_start()))
    assert {"PUBLISHER_SERVER__PORT", "PUBLISHER_SITE__URL"} <= set(overrides)
    settings = load_settings(REPO / "config.toml", environ=overrides)
    port = int(overrides["PUBLISHER_SERVER__PORT"])
    assert settings.server.port == port
    assert f":{port}/" in settings.site.url
    assert settings.server.port != load_settings(REPO / "config.toml", environ={}).server.port
