"""One source of truth for the site's address: [site] url against [server] port, and
against the URL the store's articles were published under."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import feedparser
import pytest

from tests.support.sites import write_config
from tests.system.test_cli import run
from tests.system.test_daemon import free_port, publisher_cmd, wait_for

pytestmark = pytest.mark.slow  # subprocesses: the CLI, the daemon, the wheel

STORED_URL = 'url = "https://news.example.org/"'


def with_site_url(config: Path, url: str) -> Path:
    config.write_text(config.read_text(encoding="utf-8").replace(STORED_URL, f'url = "{url}"'), encoding="utf-8")
    return config


def test_run_warns_when_a_local_site_url_names_another_port(site_dir: Path) -> None:
    port = free_port()
    config = with_site_url(write_config(site_dir, f"[server]\nport = {port}\n"), "http://localhost:8999/")
    log_path = site_dir / "daemon.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            publisher_cmd(config, "run"), stdout=log, stderr=subprocess.STDOUT,
            env=os.environ | {"PUBLISHER_SECRET_KEY": "daemon-test-key"},
        )
    try:
        wait_for(lambda: "serving on" in log_path.read_text(encoding="utf-8"), what="the daemon to listen")
    finally:
        process.terminate()
        process.wait(timeout=30)
    output = log_path.read_text(encoding="utf-8")
    assert (
        f"[site] url is http://localhost:8999/ (port 8999), but this daemon listens on [server] port {port}"
    ) in output, output
    assert f'set [site] url = "http://localhost:{port}/" or [server] port = 8999' in output


def test_run_says_nothing_when_the_local_site_url_is_the_daemons_address(site_dir: Path) -> None:
    port = free_port()
    config = with_site_url(write_config(site_dir, f"[server]\nport = {port}\n"), f"http://127.0.0.1:{port}/")
    log_path = site_dir / "daemon.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(publisher_cmd(config, "run"), stdout=log, stderr=subprocess.STDOUT,
                                   env=os.environ | {"PUBLISHER_SECRET_KEY": "daemon-test-key"})
    try:
        wait_for(lambda: "serving on" in log_path.read_text(encoding="utf-8"), what="the daemon to listen")
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "[site] url is" not in log_path.read_text(encoding="utf-8")


def test_a_new_site_url_warns_naming_the_old_one_then_is_the_stored_one(site_dir: Path) -> None:
    config = site_dir / "config.toml"
    first = run(config, "build")
    assert first.returncode == 0 and "[site] url is" not in first.stderr

    with_site_url(config, "https://brief.example.net/")
    moved = run(config, "build")
    assert moved.returncode == 0, moved.stderr
    assert (
        "[site] url is https://brief.example.net/, but this store's articles and feeds were published under "
        "https://news.example.org/: the next scan rewrites every article's canonical URL and feed entry id"
    ) in moved.stderr, moved.stderr
    assert "set [site] url back to https://news.example.org/" in moved.stderr
    feed = feedparser.parse((site_dir / "public" / "feed.atom").read_bytes())
    assert all(entry.link.startswith("https://brief.example.net/") for entry in feed.entries)

    again = run(config, "build")
    assert again.returncode == 0 and "[site] url is" not in again.stderr, again.stderr
