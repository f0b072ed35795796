"""``publisher send``, ``resend`` and ``preview`` as an operator runs them: what they print,
their exit codes, and what they leave behind (a real subprocess, as cron runs them)."""

from __future__ import annotations

from pathlib import Path

from publisher.config import load_settings
from tests.databases import Backend
from tests.outbox import outbox_messages, plain_text
from tests.test_cli import run



def test_send_dry_run_changes_nothing_and_the_real_send_still_sends_everything(
    site_dir: Path, database: Backend
) -> None:
    config = site_dir / "config.toml"
    assert run(config, "subscribers", "add", "ann@example.org", "--cadence", "instant").returncode == 0

    dry = run(config, "send", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would send" in dry.stdout and "3 article(s) to 1 subscriber(s)" in dry.stdout, dry.stdout
    assert database.fetch(site_dir, "SELECT count(*) FROM articles") == [(0,)]
    assert database.fetch(site_dir, "SELECT count(*) FROM digests") == [(0,)]
    assert database.fetch(site_dir, "SELECT article_cursor FROM subscribers") == [(0,)]
    public = site_dir / "public"
    assert not public.exists() or not any(public.iterdir()), list(public.iterdir())

    real = run(config, "send")
    assert real.returncode == 0 and "sent 1," in real.stdout, real.stdout + real.stderr
    [message] = outbox_messages(load_settings(config, environ={}))
    assert plain_text(message).count("https://news.example.org/articles/") >= 3
    assert (public / "feed.atom").exists()
