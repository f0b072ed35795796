"""``publisher run`` as operators run it: a subprocess serving feeds and sending digests."""

from __future__ import annotations

import gzip
import http.client
import json
import mailbox
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import feedparser
import pytest

from publisher.app import Publisher
from publisher.config import ConfigError, load_settings
from subscribers.model import Cadence
from tests.support.sites import write_config
from tests.support.outbox import outbox_messages, plain_text
from tests.support.people import add_subscriber

pytestmark = pytest.mark.slow  # subprocesses: the CLI, the daemon, the wheel

NEW_ARTICLE = """---
id: harbour-bridge-reopens
title: The harbour bridge reopens early
date: 2026-11-20T08:00:00Z
tags: [infrastructure]
---

Repairs finished three weeks ahead of schedule.
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _maildir_made(outbox: Path) -> bool:
    """The outbox is a whole maildir: the daemon makes the folder, then tmp/, new/ and cur/
    (mailbox.Maildir's order), and a reader between those steps finds no cur/."""
    return (outbox / "cur").is_dir()


def wait_for(condition: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> object:
    """Poll ``condition`` until it returns something truthy (a bounded wait, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def publisher_cmd(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "publisher", "--config", str(config), *args]


@contextmanager
def running_daemon(site_dir: Path, extra: str = "") -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """``publisher run`` on ``site_dir`` with one instant subscriber, once it answers /healthz."""
    port = free_port()
    config = write_config(site_dir, f"[server]\nport = {port}\n{extra}")
    env = os.environ | {"PUBLISHER_SECRET_KEY": "daemon-test-key"}
    subprocess.run(
        publisher_cmd(config, "subscribers", "add", "reader@example.org", "--cadence", "instant"),
        check=True, env=env, capture_output=True,
    )
    log_path = site_dir / "daemon.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(publisher_cmd(config, "run"), stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return get(base + "/healthz")[0] == 200
        except OSError:
            return False

    try:
        wait_for(up, what="the daemon to listen")
        yield process, base, site_dir
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def daemon(site_dir: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    with running_daemon(site_dir, "[scheduler]\nscan_interval = 0.5\n") as running:
        yield running


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_daemon_serves_feeds_sends_digest_picks_up_articles_and_stops_cleanly(
    daemon: tuple[subprocess.Popen[bytes], str, Path], stop_signal: signal.Signals
) -> None:
    process, base, site_dir = daemon

    def full_feed() -> tuple[dict[str, str], bytes] | None:
        status, headers, body = get(base + "/feed.atom")
        return (headers, body) if status == 200 and len(feedparser.parse(body).entries) == 3 else None

    headers, body = wait_for(full_feed, what="the sample articles in the feed")  # type: ignore[misc]
    assert not feedparser.parse(body).bozo

    not_modified = get(base + "/feed.atom", {"If-None-Match": headers["ETag"]})
    assert not_modified[0] == 304 and not_modified[2] == b""
    since = get(base + "/feed.rss", {"If-Modified-Since": get(base + "/feed.rss")[1]["Last-Modified"]})
    assert since[0] == 304
    zipped = get(base + "/feed.json", {"Accept-Encoding": "gzip"})
    assert zipped[1]["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped[2]).startswith(b"{")

    outbox = site_dir / "outbox"
    wait_for(lambda: _maildir_made(outbox) and len(mailbox.Maildir(outbox, create=False)) == 1, what="the digest")

    (site_dir / "content" / "harbour-bridge.md").write_text(NEW_ARTICLE, encoding="utf-8")

    def has_new_entry() -> bool:
        entries = feedparser.parse(get(base + "/feed.rss")[2]).entries
        return any(e.title == "The harbour bridge reopens early" for e in entries)

    wait_for(has_new_entry, what="the new article in the feed")
    wait_for(lambda: len(mailbox.Maildir(outbox, create=False)) == 2, what="the second instant digest")

    process.send_signal(stop_signal)
    assert process.wait(timeout=30) == 0
    log = (site_dir / "daemon.log").read_text(encoding="utf-8")
    assert "Traceback" not in log
    assert "published harbour-bridge" in log


def test_a_port_in_use_is_a_clear_error(site_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = write_config(site_dir, f"[server]\nport = {port}\n")
        result = subprocess.run(publisher_cmd(config, "run"), check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.sqlite_only(
    "the lock file beside the SQLite database keeps a second daemon off it; on PostgreSQL several "
    "daemons may share the database (issue 6: one leader runs the schedule)"
)
def test_a_second_daemon_on_the_same_database_refuses_to_start(
    daemon: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    process, _, site_dir = daemon
    config = write_config(site_dir, f"[server]\nport = {free_port()}\n")
    env = os.environ | {"PUBLISHER_SECRET_KEY": "daemon-test-key"}
    second = subprocess.run(publisher_cmd(config, "run"), check=False, capture_output=True, text=True, timeout=60, env=env)
    assert second.returncode == 1
    assert f"another publisher daemon (pid {process.pid}) is already running on" in second.stderr
    assert "Traceback" not in second.stderr
    assert process.poll() is None  # the first one runs on


def test_a_new_article_goes_out_within_seconds_without_waiting_for_the_interval_scan(site_dir: Path) -> None:
    # An hour between interval scans: only the filesystem notification can pick it up.
    with running_daemon(site_dir, "[scheduler]\nscan_interval = 3600\n") as (process, base, _):
        outbox = site_dir / "outbox"
        wait_for(lambda: _maildir_made(outbox) and len(mailbox.Maildir(outbox, create=False)) == 1, what="the first digest")
        (site_dir / "content" / "harbour-bridge.md").write_text(NEW_ARTICLE, encoding="utf-8")
        wait_for(lambda: len(mailbox.Maildir(outbox, create=False)) == 2, timeout=10, what="the instant digest")
        entries = feedparser.parse(get(base + "/feed.atom")[2]).entries
        assert entries[0].title == "The harbour bridge reopens early"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_sighup_reloads_the_config_keeping_connections_and_a_broken_one_changes_nothing(
    daemon: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    process, base, site_dir = daemon
    port = int(base.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)  # kept alive across the reloads

    def feed_title() -> str:
        connection.request("GET", "/feed.atom")
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200 and not response.will_close
        return str(feedparser.parse(body).feed.title)

    wait_for(lambda: feed_title() == "Test Brief", what="the first feed")
    config = site_dir / "config.toml"
    good = config.read_text(encoding="utf-8")
    config.write_text(good.replace('title = "Test Brief"', 'title = "Renamed Brief"'), encoding="utf-8")
    process.send_signal(signal.SIGHUP)
    wait_for(lambda: feed_title() == "Renamed Brief", what="the reloaded title")

    log_path = site_dir / "daemon.log"
    config.write_text(good + "\n[delivery]\nrate = -1\n", encoding="utf-8")  # a duplicate table: not TOML
    process.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in log_path.read_text(encoding="utf-8"), what="the refusal")
    assert feed_title() == "Renamed Brief" and process.poll() is None
    config.write_text(good.replace("retry_base = 1", "retry_base = -1"), encoding="utf-8")  # TOML, not valid
    process.send_signal(signal.SIGHUP)
    wait_for(lambda: "delivery.retry_base" in log_path.read_text(encoding="utf-8"), what="the named key")
    assert feed_title() == "Renamed Brief" and process.poll() is None
    connection.close()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert "Traceback" not in log_path.read_text(encoding="utf-8")


def test_status_shows_the_running_daemon_its_next_jobs_last_scan_and_errors(
    daemon: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    process, _, site_dir = daemon
    config = site_dir / "config.toml"
    env = os.environ | {"PUBLISHER_SECRET_KEY": "daemon-test-key"}
    (site_dir / "content" / "broken.md").write_text("---\ntitle: [unclosed\n---\n", encoding="utf-8")

    def status() -> str:
        return subprocess.run(publisher_cmd(config, "status"), check=True, capture_output=True, text=True,
                              env=env, timeout=60).stdout

    def status_with_the_error() -> str | None:
        shown = status()
        return shown if "broken.md" in shown else None

    shown = str(wait_for(status_with_the_error, what="the error in status"))
    assert "nodes: 1 live (1 leader)" in shown  # SQLite: the one daemon leads
    assert f"leader: pid {process.pid} on " in shown and "messages/s" in shown
    assert "last scan: " in shown and "next digests: in " in shown and "next scan: in " in shown
    assert "ERROR: skipped: " in shown and "broken.md" in shown
    assert "deliveries of unfinished digests: " in shown
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert "daemon: not running" in status()


def test_an_unwritable_output_dir_is_reported_but_never_stops_serving_or_sending(site_dir: Path) -> None:
    (site_dir / "public").write_text("a file where [site] output_dir should be\n", encoding="utf-8")
    with running_daemon(site_dir, "[scheduler]\nscan_interval = 0.5\n") as (process, base, _):
        def full_feed() -> bool:
            status, _, body = get(base + "/feed.atom")
            return status == 200 and len(feedparser.parse(body).entries) == 3

        wait_for(full_feed, what="the feed served from memory")
        outbox = site_dir / "outbox"
        wait_for(lambda: _maildir_made(outbox) and len(mailbox.Maildir(outbox, create=False)) == 1, what="the digest")

        def readiness() -> dict[str, object] | None:
            status, _, body = get(base + "/readyz")
            return json.loads(body) if status == 200 else None

        ready = wait_for(readiness, what="readiness")
        assert str(site_dir / "public") in ready["warnings"]["static_files"]  # type: ignore[index]

        def status_line() -> str | None:
            shown = subprocess.run(publisher_cmd(site_dir / "config.toml", "status"), capture_output=True, text=True,
                                   env=os.environ | {"PUBLISHER_SECRET_KEY": "daemon-test-key", "COLUMNS": "200"})
            return next((line for line in shown.stdout.splitlines() if "static feed files" in line), None)

        line = wait_for(status_line, what="the static files' problem in publisher status")
        assert str(site_dir / "public") in str(line)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    log = (site_dir / "daemon.log").read_text(encoding="utf-8")
    assert "Traceback" not in log
    assert log.count("cannot write the static feed files") == 1, log


async def test_a_reload_with_a_broken_template_is_refused_and_the_running_templates_stay(
    publisher: Publisher, site_dir: Path
) -> None:
    (site_dir / "tpl" / "email").mkdir(parents=True)
    (site_dir / "tpl" / "email" / "subject.txt").write_text("{{ articles[0].title }} {{ articles | nosuchfilter }}\n")
    broken = load_settings(site_dir / "config.toml", environ={"PUBLISHER_SITE__TEMPLATES_DIR": "tpl"})
    with pytest.raises(ConfigError) as refused:
        publisher.reconfigure(broken)
    assert any(f"{site_dir / 'tpl' / 'email' / 'subject.txt'}:1: TemplateAssertionError: No filter named 'nosuchfilter'" in p
               for p in refused.value.problems)
    assert publisher.settings.site.templates_dir is None
    await add_subscriber(publisher.engine, "ann@example.org", cadence=Cadence.INSTANT)
    await publisher.intake.scan()
    report = (await publisher.delivery.send([Cadence.INSTANT])).report
    assert report is not None and report.sent == 1 and not report.paused
    [message] = outbox_messages(publisher.settings)
    assert "nosuchfilter" not in plain_text(message)
