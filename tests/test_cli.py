"""The command line as an operator uses it (a real subprocess for the entry points)."""

from __future__ import annotations

import mailbox
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from publisher.cli import main


def run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "publisher", "--config", str(config), *args],
        capture_output=True, text=True, env=os.environ | {"PUBLISHER_SECRET_KEY": "cli-test-key"}, timeout=60,
    )


def test_check_lists_every_problem_as_path_line_message(site_dir: Path) -> None:
    content = site_dir / "content"
    (content / "no-title.md").write_text("---\ndate: 2026-01-01\n---\nbody\n", encoding="utf-8")
    (content / "bad-date.md").write_text("---\ntitle: T\ndate: someday soon\n---\nbody\n", encoding="utf-8")
    (content / "latin1.md").write_bytes("---\ntitle: Caf\xe9\ndate: 2026-01-01\n---\n".encode("latin-1"))
    result = run(site_dir / "config.toml", "check")
    assert result.returncode == 1, result.stderr
    lines = [line.replace(str(content) + "/", "") for line in result.stdout.splitlines()]
    assert "bad-date.md:3: date 'someday soon' is not a date (use ISO 8601 or RFC 2822)" in lines
    assert "latin1.md:2: file is not valid UTF-8" in lines
    assert "no-title.md:1: missing title" in lines
    assert len(lines) == 3, result.stdout
    assert "Traceback" not in result.stderr


def test_check_passes_on_the_sample_content(site_dir: Path) -> None:
    result = run(site_dir / "config.toml", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def test_bad_config_is_one_line_per_key_and_exit_2(site_dir: Path) -> None:
    config = site_dir / "config.toml"
    config.write_text(config.read_text(encoding="utf-8") + '\n[smtp]\nport = "x"\n', encoding="utf-8")
    result = run(config, "check")
    assert result.returncode == 2
    assert "smtp.port" in result.stderr
    assert "Traceback" not in result.stderr


def test_init_creates_a_working_starter(tmp_path: Path) -> None:
    target = tmp_path / "site"
    assert CliRunner().invoke(main, ["init", str(target)]).exit_code == 0
    assert (target / "config.toml").exists()
    assert list((target / "content").glob("*.md"))
    assert run(target / "config.toml", "check").returncode == 0
    again = CliRunner().invoke(main, ["init", str(target)])
    assert again.exit_code != 0 and "not overwriting" in again.output


def test_build_writes_static_feeds(site_dir: Path) -> None:
    result = run(site_dir / "config.toml", "build")
    assert result.returncode == 0, result.stderr
    assert "3 new" in result.stdout
    public = site_dir / "public"
    for name in ("feed.rss", "feed.atom", "feed.json", "feed.rss.gz"):
        assert (public / name).stat().st_size > 0
    assert list((public / "tags").glob("*/feed.atom"))


def test_subscribers_and_send_twice_sends_once(site_dir: Path) -> None:
    config = site_dir / "config.toml"
    added = run(config, "subscribers", "add", "Ann@Example.org", "--name", "Ann", "--cadence", "instant")
    assert added.returncode == 0 and "added ann@example.org" in added.stdout
    again = run(config, "subscribers", "add", "ann@example.org")
    assert again.returncode == 0 and "already known, unchanged: ann@example.org (instant, active)" in again.stdout
    bad = run(config, "subscribers", "add", "not-an-address")
    assert bad.returncode == 1 and "not a valid email address" in bad.stderr

    listed = run(config, "subscribers", "list")
    assert "ann@example.org" in listed.stdout and "1 subscriber(s)" in listed.stdout

    dry = run(config, "send", "--dry-run")
    assert dry.returncode == 0 and "would send" in dry.stdout
    first = run(config, "send")
    assert first.returncode == 0 and "sent 1," in first.stdout, first.stdout + first.stderr
    second = run(config, "send")
    assert "nothing new to send" in second.stdout and "sent 0," in second.stdout
    assert len(mailbox.Maildir(site_dir / "outbox", create=False)) == 1

    removed = run(config, "subscribers", "remove", "ann@example.org")
    assert removed.returncode == 0
    assert run(config, "subscribers", "remove", "ann@example.org").returncode == 1


def test_python_dash_m_and_console_script_agree() -> None:
    by_module = subprocess.run([sys.executable, "-m", "publisher", "--help"], capture_output=True, text=True)
    script = Path(sys.executable).with_name("publisher")
    by_script = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert by_module.returncode == by_script.returncode == 0
    for command in ("init", "check", "build", "run", "send", "subscribers"):
        assert command in by_module.stdout
    assert by_module.stdout == by_script.stdout
