"""``publisher send``, ``resend`` and ``preview`` as an operator runs them: what they print,
their exit codes, and what they leave behind (a real subprocess, as cron runs them)."""

from __future__ import annotations

import email
import email.policy
import errno
import mailbox
import os
import re
import socket
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner

from publisher.cli import main
from publisher.config import load_settings
from tests.support.sites import write_config
from tests.support.databases import Backend
from tests.support.outbox import outbox_messages, plain_text
from tests.support.smtp_server import HOST, SmtpServer
from tests.system.test_cli import run

pytestmark = pytest.mark.slow  # subprocesses: the CLI, the daemon, the wheel



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


def _smtp_site(site_dir: Path, port: int) -> Path:
    """``site_dir``'s config, delivering over SMTP (no TLS) to 127.0.0.1:``port``."""
    return write_config(site_dir, f'[smtp]\nhost = "{HOST}"\nport = {port}\ntls = "none"\n', transport="smtp")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def test_send_exits_3_when_the_relay_cannot_be_reached_and_0_once_it_can(site_dir: Path) -> None:
    port = _closed_port()
    config = _smtp_site(site_dir, port)
    assert run(config, "subscribers", "add", "ann@example.org", "--cadence", "instant").returncode == 0

    down = run(config, "send")
    assert down.returncode == 3, down.stdout + down.stderr
    assert f"{HOST}:{port}" in down.stderr and "1 message(s) wait" in down.stderr, down.stderr
    assert "Traceback" not in down.stderr

    with SmtpServer(port=port) as server:
        up = run(config, "send")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "sent 1," in up.stdout and len(server.messages) == 1


def test_a_full_outbox_disk_leaves_every_message_to_do_and_send_exits_3(
    site_dir: Path, database: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A maildir outbox that can't be written (a full disk) is an unreachable transport:
    no attempt is counted, nothing fails, and the next send delivers once there is room."""
    config = site_dir / "config.toml"
    for address in ("ann@example.org", "bo@example.org"):
        assert run(config, "subscribers", "add", address, "--cadence", "instant").returncode == 0

    def disk_full(self: mailbox.Maildir, message: object) -> str:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patched:
        patched.setattr(mailbox.Maildir, "add", disk_full)
        full = CliRunner().invoke(main, ["--config", str(config), "send"], env={"COLUMNS": "200"})
    assert full.exit_code == 3, full.output
    assert "outbox" in full.output and os.strerror(errno.ENOSPC) in full.output, full.output
    assert database.fetch(site_dir, "SELECT state, attempts FROM deliveries") == [("pending", 0)] * 2

    room = CliRunner().invoke(main, ["--config", str(config), "send"], env={"COLUMNS": "200"})
    assert room.exit_code == 0 and "sent 2," in room.output, room.output
    assert sorted(m["To"] for m in outbox_messages(load_settings(config, environ={}))) == [
        "ann@example.org", "bo@example.org",
    ]


def test_send_exits_4_when_messages_remain_deferred_and_says_when(site_dir: Path) -> None:
    with SmtpServer(replies={"later@example.org": "451 4.3.0 Try again later"}) as server:
        config = _smtp_site(site_dir, server.port)
        for address in ("ann@example.org", "later@example.org"):
            assert run(config, "subscribers", "add", address, "--cadence", "instant").returncode == 0
        result = run(config, "send")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "sent 1, deferred 1" in result.stdout
    assert "1 message(s) remain: 1 deferred, next try at " in result.stderr, result.stderr
    assert "--wait" in result.stderr


def test_resend_accepts_the_id_slug_canonical_url_or_feed_entry_id(site_dir: Path) -> None:
    config = site_dir / "config.toml"
    assert run(config, "subscribers", "add", "ann@example.org").returncode == 0
    assert run(config, "build").returncode == 0
    feed = feedparser.parse((site_dir / "public" / "feed.atom").read_bytes())
    [entry] = [e for e in feed.entries if e.title.startswith("Kim Jong Un")]
    rss = feedparser.parse((site_dir / "public" / "feed.rss").read_bytes())
    [item] = [e for e in rss.entries if e.title.startswith("Kim Jong Un")]
    slug = entry.link.rstrip("/").rsplit("/", 1)[-1]

    for reference in ("2023-09-kim-russia-visit", slug, entry.link, entry.id, item.id):
        result = run(config, "resend", reference, "--dry-run")
        assert result.returncode == 0, f"{reference}: {result.stdout}{result.stderr}"
        assert "to 1 subscriber(s)" in result.stdout and "2023-09-kim-russia-visit" in result.stdout


def test_resend_of_an_unknown_article_says_so_and_lists_the_closest(site_dir: Path) -> None:
    config = site_dir / "config.toml"
    assert run(config, "build").returncode == 0
    result = run(config, "resend", "kim-rusia-visit")
    assert result.returncode == 1
    assert "no published article has the id, slug, URL or feed entry id 'kim-rusia-visit'" in result.stderr
    assert "closest: 2023-09-kim-russia-visit (Kim Jong Un in Russia" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


NEW_ARTICLE = """---
id: harbour-festival
title: The Harbour Festival Returns
date: 2026-01-05T10:00:00Z
---

Boats, music and a night market along the quay.
"""


def test_nothing_new_to_send_after_an_import_says_why_and_what_to_do(site_dir: Path) -> None:
    config = site_dir / "config.toml"
    none_yet = run(config, "send")
    assert none_yet.returncode == 0
    assert "nothing new to send: there are no active instant subscribers" in none_yet.stdout, none_yet.stdout

    assert run(config, "build").returncode == 0
    people = "email,cadence\n" + "".join(f"p{i}@example.org,instant\n" for i in range(3))
    assert run(config, "subscribers", "import", "-", stdin=people).returncode == 0
    newest = max(feedparser.parse((site_dir / "public" / "feed.atom").read_bytes()).entries,
                 key=lambda e: e.published_parsed)
    for args in (("send",), ("send", "--dry-run")):
        result = run(config, *args)
        assert result.returncode == 0, result.stderr
        assert (
            "nothing new to send: the 3 active instant subscribers have every published article "
            f"(newest: {newest.title}, {newest.published[:10]}); publish a new article, "
            "or `publisher resend ID` to send one again"
        ) in result.stdout, result.stdout


def test_nothing_due_for_daily_subscribers_says_when_their_digest_goes(site_dir: Path) -> None:
    config = site_dir / "config.toml"
    assert run(config, "subscribers", "add", "ann@example.org", "--cadence", "daily").returncode == 0
    (site_dir / "content" / "harbour-festival.md").write_text(NEW_ARTICLE, encoding="utf-8")
    result = run(config, "send", "--cadence", "daily")
    assert result.returncode == 0, result.stderr
    assert "nothing due now: 1 of the 1 active daily subscribers have new articles for their next digest, " \
        "not due until 20" in result.stdout, result.stdout
    assert "UTC" in result.stdout


def _store_is_untouched(database: Backend, site_dir: Path) -> None:
    for table in ("articles", "digests", "deliveries"):
        assert database.fetch(site_dir, f"SELECT count(*) FROM {table}") == [(0,)], table
    assert {cursor for (cursor,) in database.fetch(site_dir, "SELECT article_cursor FROM subscribers")} <= {0}


def test_preview_writes_the_subscribers_next_digest_and_changes_nothing(
    site_dir: Path, database: Backend, tmp_path: Path
) -> None:
    config = site_dir / "config.toml"
    assert run(config, "subscribers", "add", "ann@example.org", "--name", "Ann", "--cadence", "instant").returncode == 0
    target = tmp_path / "preview"
    result = run(config, "preview", "--subscriber", "ann@example.org", "--out", str(target))
    assert result.returncode == 0, result.stdout + result.stderr
    _store_is_untouched(database, site_dir)
    assert not (site_dir / "public").exists() or not any((site_dir / "public").iterdir())

    html, text = (target / "digest.html").read_text(encoding="utf-8"), (target / "digest.txt").read_text("utf-8")
    for path in (target / "digest.html", target / "digest.txt", target / "digest.eml"):
        assert str(path) in result.stdout
    assert "Ann" in text and "https://news.example.org/unsubscribe/" in text and "unsubscribe/" in html
    previewed = email.message_from_bytes((target / "digest.eml").read_bytes(), policy=email.policy.default)
    assert previewed["To"] == "Ann <ann@example.org>"
    assert f"subject: {previewed['Subject']}" in result.stdout

    real = run(config, "send")
    assert real.returncode == 0 and "sent 1," in real.stdout, real.stdout + real.stderr
    [sent] = outbox_messages(load_settings(config, environ={}))
    assert sent["Subject"] == previewed["Subject"]
    assert _without_ids(plain_text(sent)) == _without_ids(plain_text(previewed)) == _without_ids(text)


def _without_ids(text: str) -> str:
    """``text`` without what differs between two renderings (the digest's id, the links' signed
    tokens) and with the line ends of a file."""
    return re.sub(r"(digests|unsubscribe|preferences)/\S+", r"\1/…", text.replace("\r\n", "\n"))


def test_preview_without_a_subscriber_uses_a_sample_and_says_when_there_is_nothing(site_dir: Path) -> None:
    config = site_dir / "config.toml"
    nothing = run(config, "preview")
    assert nothing.returncode == 1
    assert "nothing to preview: nothing new to send: there are no active instant subscribers" in nothing.stderr
    assert "Traceback" not in nothing.stderr

    assert run(config, "subscribers", "add", "ann@example.org", "--cadence", "instant").returncode == 0
    sample = run(config, "preview")
    assert sample.returncode == 0, sample.stderr
    [eml] = [Path(word) for word in sample.stdout.split() if word.endswith("digest.eml")]
    assert eml.is_relative_to(site_dir / "data")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["To"].addresses[0].addr_spec.endswith("@example.com")
    assert "ann@example.org" not in eml.read_text(encoding="utf-8")

    unknown = run(config, "preview", "--subscriber", "nobody@example.org")
    assert unknown.returncode == 1 and "nobody@example.org is not a subscriber" in unknown.stderr


def test_preview_warns_of_a_digest_too_big_for_gmail_and_of_what_the_listed_clients_lack(
    site_dir: Path, tmp_path: Path
) -> None:
    """Past [digest] max_message_bytes the last articles go out as headlines: preview says how many,
    with the size as sent; the mail-client lint's warnings follow the files (all of it in clients.txt)."""
    config = write_config(site_dir, "[digest]\nmax_message_bytes = 10000\n")
    assert run(config, "subscribers", "add", "ann@example.org", "--cadence", "instant").returncode == 0
    target = tmp_path / "preview"
    result = run(config, "preview", "--out", str(target))
    assert result.returncode == 0, result.stdout + result.stderr
    (size,) = re.findall(r"^html: ([\d,]+) bytes as sent \(limit 10,000", result.stdout, re.M)
    (shown,) = re.findall(r"^warning: the digest in full passes \[digest\] max_message_bytes .*: "
                          r"its last (\d+) of (\d+) article\(s\) are shown as headlines$", result.stderr, re.M)
    assert 1 <= int(shown[0]) <= int(shown[1]) == 3
    html = (target / "digest.html").read_text(encoding="utf-8")
    assert "More in this digest" in html or "In this digest</h2>" in html
    # The built-in templates' rounded corners: a note on the terminal, the reasons in clients.txt.
    assert re.search(r"^note: \d+ more feature\(s\) .*border-radius|^note: .*clients\.txt$", result.stderr, re.M)
    assert ": warning: " not in result.stderr
    clients = (target / "clients.txt").read_text(encoding="utf-8")
    assert str(target / "clients.txt") in result.stdout
    assert "border-radius: not supported by Outlook Windows" in clients and "by design: square corners" in clients
    assert "note 1:" in clients
    assert int(size.replace(",", "")) > 0


def test_send_test_mails_one_marked_copy_outside_the_ledger(site_dir: Path, database: Backend) -> None:
    with SmtpServer() as server:
        config = _smtp_site(site_dir, server.port)
        assert run(config, "subscribers", "add", "ann@example.org", "--cadence", "instant").returncode == 0
        test = run(config, "send", "--test", "editor@example.org")
        assert test.returncode == 0, test.stdout + test.stderr
        _store_is_untouched(database, site_dir)
        one = run(config, "send", "--test", "editor@example.org", "--article", "kim-russia-visit")
        assert one.returncode == 0, one.stdout + one.stderr
        real = run(config, "send")
        assert real.returncode == 0 and "sent 1," in real.stdout
    first, second, delivered = (
        email.message_from_bytes(m.content, policy=email.policy.default) for m in server.messages
    )
    assert [m.rcpt_tos for m in server.messages] == [["editor@example.org"]] * 2 + [["ann@example.org"]]
    assert first["Subject"] == f"[TEST] {delivered['Subject']}" and first["X-Publisher-Test"] == "yes"
    # strip(): the header folding of a long subject (mail/message.py) leaves a leading space
    assert second["Subject"].strip().startswith("[TEST] Kim Jong Un in Russia") and second["X-Publisher-Test"] == "yes"
    assert delivered["X-Publisher-Test"] is None


@pytest.mark.postgresql_only("nodes share deliveries through leases on PostgreSQL; on SQLite one process delivers")
def test_send_exits_4_while_another_node_holds_messages_and_says_until_when(site_dir: Path, database: Backend) -> None:
    port = _closed_port()
    config = _smtp_site(site_dir, port)
    assert run(config, "subscribers", "add", "ann@example.org", "--cadence", "instant").returncode == 0
    assert run(config, "send").returncode == 3  # planned; the rows wait
    database.fetch(
        site_dir,
        "UPDATE deliveries SET state = 'sending', claimed_by = 'other-host:1:1', "
        "lease_until = now() + interval '1 hour' RETURNING subscriber_id",
    )
    with SmtpServer(port=port) as server:
        result = run(config, "send")
        assert result.returncode == 4, result.stdout + result.stderr
        assert (
            "1 message(s) remain: 1 held by node other-host:1:1 (no heartbeat: it died, or it is a `publisher send` "
            "still running on other-host); taken over at "
        ) in result.stderr, result.stderr
        assert "(in 59m " in result.stderr and "if it died" in result.stderr
        database.fetch(  # the holder is a daemon that reports itself: it runs, and renews its lease
            site_dir,
            "INSERT INTO nodes (id, host, pid, role, started_at, seen_at, state) "
            "VALUES ('other-host:1:1', 'other-host', 1, 'worker', now(), now(), '{}') RETURNING id",
        )
        result = run(config, "send")
        assert result.returncode == 4, result.stdout + result.stderr
        assert "1 held by node other-host:1:1 (running, seen 0m 0" in result.stderr, result.stderr
    assert server.messages == []
