"""Log lines: text for people, one JSON object per line for log shippers, and the id of
the digest in hand on every line logged while it is planned or delivered."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from publisher.app import Publisher
from publisher.config import load_settings
from publisher.logs import capture_warnings, configure, current_digest, digest_context
from subscribers.model import Cadence
from tests.support.delivery_sites import write_site
from tests.support.people import add_subscriber
from tests.support.smtp_server import SmtpServer

log = logging.getLogger("tests.logs")
REFUSED = "552 5.2.2 Mailbox full"
ISO_MS_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure() changes the root logger: give the next test the one it had."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def capture(fmt: str = "json", level: str = "DEBUG") -> io.StringIO:
    stream = io.StringIO()
    configure(level, fmt, stream)  # type: ignore[arg-type]
    return stream


# --- formats ---------------------------------------------------------------------------------


def test_json_lines_carry_the_fields_and_the_callers_extras() -> None:
    stream = capture()
    before = datetime.now(UTC).replace(microsecond=0)
    log.info("sent %d of %d", 3, 4, extra={"subscriber": 7, "path": Path("/x"), "level": "forged"})
    log.debug("two\nlines and ünïcode")

    first, second = json_lines(stream.getvalue())
    assert first["message"] == "sent 3 of 4"
    assert first["level"] == "INFO" and first["logger"] == "tests.logs"
    assert ISO_MS_UTC.fullmatch(first["ts"]), first["ts"]
    assert datetime.fromisoformat(first["ts"]) >= before
    assert first["subscriber"] == 7 and first["path"] == "/x"  # extras; not JSON-native ones as str
    assert "digest" not in first and "exc" not in first
    assert second["message"] == "two\nlines and ünïcode" and second["level"] == "DEBUG"
    assert stream.getvalue().count("\n") == 2  # one line each, whatever the message holds
    assert stream.getvalue().isascii()  # valid JSON whatever the stream's encoding


def test_an_exceptions_traceback_lands_in_exc() -> None:
    stream = capture()
    table: dict[str, int] = {}
    try:
        table["missing"]
    except KeyError:
        log.exception("could not look it up")
    (line,) = json_lines(stream.getvalue())
    assert line["level"] == "ERROR" and line["message"] == "could not look it up"
    assert line["exc"].startswith("Traceback (most recent call last):")
    assert "KeyError: 'missing'" in line["exc"] and "test_an_exceptions_traceback_lands_in_exc" in line["exc"]


def test_text_lines_show_the_digest_in_context() -> None:
    stream = capture("text")
    log.warning("outside")
    with digest_context("instant-1"):
        log.warning("inside")
        try:
            raise RuntimeError("bang")
        except RuntimeError:
            log.exception("failed")
    lines = stream.getvalue().splitlines()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert re.fullmatch(stamp + r" WARNING tests\.logs: outside", lines[0]), lines[0]
    assert re.fullmatch(stamp + r" WARNING tests\.logs: inside \[digest=instant-1\]", lines[1]), lines[1]
    # The tag stays on the record's first line; the traceback follows it.
    assert lines[2].endswith("ERROR tests.logs: failed [digest=instant-1]")
    assert lines[3] == "Traceback (most recent call last):" and lines[-1] == "RuntimeError: bang"


def test_configure_again_replaces_its_handler_and_keeps_others() -> None:
    root = logging.getLogger()
    other = logging.NullHandler()
    root.handlers[:] = [other]
    first, second = capture("text"), capture("json", "WARNING")
    log.info("dropped: below WARNING")
    log.warning("kept")
    assert first.getvalue() == ""
    assert [line["message"] for line in json_lines(second.getvalue())] == ["kept"]
    assert other in root.handlers and len(root.handlers) == 2


def test_without_force_it_leaves_logging_set_up_elsewhere_alone() -> None:
    """The CLI's way, like logging.basicConfig: a program (or pytest) running it in-process
    keeps its own logging."""
    root = logging.getLogger()
    root.handlers[:] = []
    mine = io.StringIO()
    assert configure("INFO", "json", mine, force=False) is not None  # nothing set up yet: installs
    assert configure("INFO", "text", mine, force=False) is not None  # only its own handler: replaces
    root.addHandler(logging.NullHandler())
    assert configure("DEBUG", "json", io.StringIO(), force=False) is None
    assert root.level == logging.INFO and len(root.handlers) == 2
    with pytest.raises(ValueError, match="unknown log format"):
        configure("INFO", "xml")  # type: ignore[arg-type]


# --- the digest in context ---------------------------------------------------------------------


def test_digest_is_on_lines_inside_the_block_only() -> None:
    stream = capture()
    log.info("before")
    with digest_context("d1"):
        log.info("in d1")
        with digest_context(None):
            log.info("run-wide counts")
        log.info("in d1 again", extra={"digest": "explicit"})
    log.info("after")
    by_message = {line["message"]: line.get("digest") for line in json_lines(stream.getvalue())}
    assert by_message == {
        "before": None, "in d1": "d1", "run-wide counts": None, "in d1 again": "explicit", "after": None,
    }
    assert current_digest.get() is None


async def test_concurrent_tasks_each_keep_their_own_digest() -> None:
    stream = capture()
    both_inside = asyncio.Barrier(3)

    async def deliver(digest_id: str) -> None:
        with digest_context(digest_id):
            log.info("start %s", digest_id)
            await both_inside.wait()  # both deliveries are inside their blocks at once
            await asyncio.sleep(0)
            log.info("end %s", digest_id)
        log.info("after %s", digest_id)

    async def bystander() -> None:  # created before either digest was set: never sees one
        await both_inside.wait()
        log.info("bystander")

    tasks = [asyncio.create_task(bystander()), asyncio.create_task(deliver("a")), asyncio.create_task(deliver("b"))]
    await asyncio.gather(*tasks)
    log.info("main")

    with digest_context("parent"):  # a task copies the context it is created in ...
        child = asyncio.create_task(_log_then_set("child sees", "set-in-child"))
        await child
        log.info("parent after child")  # ... and what it sets stays in its copy

    lines = {line["message"]: line.get("digest") for line in json_lines(stream.getvalue())}
    assert lines == {
        "start a": "a", "end a": "a", "after a": None,
        "start b": "b", "end b": "b", "after b": None,
        "bystander": None, "main": None,
        "child sees": "parent", "child after set": "set-in-child", "parent after child": "parent",
    }


async def _log_then_set(message: str, digest_id: str) -> None:
    log.info(message)
    current_digest.set(digest_id)
    log.info("child after set")


# --- the delivery engine -------------------------------------------------------------------------


@pytest.mark.usefixtures("database")
async def test_sender_lines_carry_the_digest_of_their_message(tmp_path: Path) -> None:
    """Two digests in one pass: the senders, started before either, tag each failure with
    the digest of the message that failed, not the digest the producer is reading."""
    with SmtpServer(replies={"full@example.org": REFUSED}) as server:
        config = write_site(tmp_path, smtp_port=server.port, concurrency=2, soft_bounce_limit=10)
        publisher = Publisher(load_settings(config, environ={}))
        await publisher.start()
        try:
            for address in ("ann@example.org", "full@example.org", "bo@example.org"):
                await add_subscriber(publisher.engine, address)
            await publisher.intake.scan()
            first = await publisher.delivery.plan([Cadence.INSTANT])
            (tmp_path / "content" / "late-news.md").write_text(
                '---\nid: "late-news"\ntitle: "Late News"\ndate: 2026-01-02T08:00:00Z\n---\nA later article.\n',
                encoding="utf-8",
            )
            await publisher.intake.scan()
            second = await publisher.delivery.plan([Cadence.INSTANT])
            stream = capture("json", "INFO")
            report = await publisher.delivery.deliver()
        finally:
            await publisher.close()

    ids = [d.id for d in (*first, *second)]
    assert len(ids) == 2 and report.failed == 2 and report.sent == 4, (ids, report)
    lines = json_lines(stream.getvalue())
    failures = [line for line in lines if "failed" in line["message"] and "to subscriber" in line["message"]]
    assert sorted(line["digest"] for line in failures) == sorted(ids)
    assert sorted(line["digest"] for line in lines if line["message"].endswith(": finished")) == sorted(ids)
    for line in lines:  # every line about one digest says which, in its own field
        named: list[str | None] = [d for d in ids if f"digest {d}" in line["message"]]
        assert line.get("digest") in (named or [None]), line


# --- Python warnings ---------------------------------------------------------------------------


def test_a_warning_is_one_log_line_in_the_chosen_format() -> None:
    stream = capture("json")
    with warnings.catch_warnings():  # restores showwarning after the test
        capture_warnings()
        warnings.simplefilter("always")
        warnings.warn("old API\nsecond line", DeprecationWarning, stacklevel=1)
    (line,) = json_lines(stream.getvalue())
    assert line["logger"] == "py.warnings" and line["level"] == "WARNING"
    assert line["message"].startswith("DeprecationWarning: old API"), line
    assert __file__ in line["message"]


def test_a_warning_before_logging_is_set_up_is_logged_once_it_is() -> None:
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    with warnings.catch_warnings():
        capture_warnings()
        warnings.simplefilter("always")
        warnings.warn("imported too early", UserWarning, stacklevel=1)
        stream = capture("json")
    (line,) = json_lines(stream.getvalue())
    assert line["logger"] == "py.warnings" and "UserWarning: imported too early" in line["message"]


# --- the command line --------------------------------------------------------------------------


def publisher_cli(config: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "publisher", "--config", str(config), *args],
        capture_output=True, text=True, timeout=60, check=False,
        env=os.environ | {"PUBLISHER_SECRET_KEY": "logs-test-key", "COLUMNS": "200"} | env,
    )


@pytest.mark.slow  # runs the publisher in a subprocess
@pytest.mark.usefixtures("database")
def test_send_with_json_logs_writes_only_json_to_stderr(tmp_path: Path) -> None:
    with SmtpServer(replies={"full@example.org": REFUSED}) as server:
        config = write_site(tmp_path, smtp_port=server.port)
        for address in ("ann@example.org", "full@example.org"):
            assert publisher_cli(config, "subscribers", "add", address, "--cadence", "instant").returncode == 0
        result = publisher_cli(config, "--log-format", "json", "send")
    assert result.returncode == 0, result.stderr
    assert "sent 1, deferred 0, failed 1" in result.stdout
    (digest_id,) = re.findall(r"planned (\S+):", result.stdout)

    # Rich's progress bar, transient, leaves one empty line on a stderr that is not a terminal.
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert lines and all({"ts", "level", "logger", "message"} <= line.keys() for line in lines)
    delivery = [line for line in lines if line["logger"] == "publisher.delivery"]
    assert [line["message"] for line in delivery] == [
        f"digest {digest_id}: to subscriber 2 failed: {REFUSED}",
        f"digest {digest_id}: finished",
        "delivery run ended: 1 sent, 0 deferred, 1 failed, 0 cancelled",
    ]
    assert all(line["digest"] == digest_id for line in delivery[:-1])
    assert "digest" not in delivery[-1]  # the run's summary is about every digest it handled
    assert "logs-test-key" not in result.stderr


@pytest.mark.slow  # runs the publisher in a subprocess
def test_help_writes_nothing_to_stderr() -> None:
    """What a newcomer types first: no dependency's warning (cryptography 51 deprecates DSA)."""
    result = subprocess.run(
        [sys.executable, "-m", "publisher", "--help"], capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0 and "Usage:" in result.stdout
    assert result.stderr == ""


@pytest.fixture
def dsa_key_site(tmp_path: Path) -> Iterator[Path]:
    """A site whose DKIM key is DSA: loading it makes cryptography 51 warn, and it can't sign."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import dsa

        key = dsa.generate_private_key(2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "dkim.pem").write_bytes(key)
    (tmp_path / "dkim.pem").chmod(0o600)
    with SmtpServer() as server:
        yield write_site(tmp_path, smtp_port=server.port,
                         extra='[dkim]\nselector = "s1"\ndomain = "example.org"\nkey_file = "dkim.pem"\n')


@pytest.mark.slow  # runs the publisher in a subprocess
@pytest.mark.usefixtures("database")
def test_a_dependencys_warning_is_a_json_line_like_every_other(dsa_key_site: Path) -> None:
    assert publisher_cli(dsa_key_site, "subscribers", "add", "ann@example.org", "--cadence", "instant").returncode == 0
    result = publisher_cli(dsa_key_site, "--log-format", "json", "send")
    # A key that can't sign is a config error, said once (no traceback), and nothing is sent.
    assert result.returncode == 2, result.stderr
    problem, = (line for line in result.stderr.splitlines() if line.startswith("config error:"))
    assert "dkim.pem: holds a DSA key; DKIM keys are RSA or Ed25519" in problem
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip() and line != problem]
    warned = [line for line in lines if line["logger"] == "py.warnings"]
    assert warned and "CryptographyDeprecationWarning" in warned[0]["message"], result.stderr


@pytest.mark.slow  # runs the publisher in a subprocess
@pytest.mark.usefixtures("database")
def test_the_daemon_refuses_to_start_with_a_key_that_cannot_sign(dsa_key_site: Path) -> None:
    result = publisher_cli(dsa_key_site, "run")
    assert result.returncode == 2, result.stderr
    assert "config error: DKIM key file" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow  # runs the publisher in a subprocess
def test_log_format_from_the_environment_and_text_by_default(site_dir: Path) -> None:
    config = site_dir / "config.toml"
    as_json = publisher_cli(config, "build", PUBLISHER_LOG_FORMAT="json")
    assert as_json.returncode == 0, as_json.stderr
    loggers = [json.loads(line)["logger"] for line in as_json.stderr.splitlines()]
    assert "publisher.feeds.shelf" in loggers, as_json.stderr
    as_text = publisher_cli(config, "build")
    assert as_text.returncode == 0 and " INFO publisher.feeds.shelf: feeds: " in as_text.stderr, as_text.stderr
    bad = publisher_cli(config, "--log-format", "xml", "build")
    assert bad.returncode == 2 and "'xml' is not one of 'text', 'json'" in bad.stderr
