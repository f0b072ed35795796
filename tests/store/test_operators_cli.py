"""``publisher operators``: add (prompt or --password-stdin), passwd, remove, list, totp."""

from __future__ import annotations

import getpass
import re
from pathlib import Path

from click.testing import CliRunner, Result
from publisher.admin import passwords, totp
from publisher.cli import main
from tests.support.databases import Backend


def run(site_dir: Path, *args: str, stdin: str = "") -> Result:
    return CliRunner().invoke(main, ["--config", str(site_dir / "config.toml"), *args], input=stdin)


def stored(database: Backend, site_dir: Path) -> dict[str, tuple[str, str, str | None]]:
    rows = database.fetch(site_dir, "SELECT email, role, password_hash, totp_secret FROM operators")
    return {email: (role, password_hash, secret) for email, role, password_hash, secret in rows}


def test_operators_are_added_listed_changed_and_removed(site_dir: Path, database: Backend) -> None:
    added = run(site_dir, "operators", "add", "Ann@Example.org", "--role", "admin",
                stdin="a long enough password\na long enough password\n")
    assert added.exit_code == 0, added.output
    assert "added ann@example.org (admin)" in added.output
    assert "a long enough password" not in added.output  # the prompt hides it
    scripted = run(site_dir, "operators", "add", "bob@example.org", "--role", "viewer", "--password-stdin",
                   stdin="bob's long password\n")
    assert scripted.exit_code == 0, scripted.output
    rows = stored(database, site_dir)
    assert rows["ann@example.org"][0] == "admin" and passwords.verify(rows["ann@example.org"][1], "a long enough password")
    assert passwords.verify(rows["bob@example.org"][1], "bob's long password")

    listed = run(site_dir, "operators", "list")
    assert re.search(r"ann@example.org\tadmin\tpassword only\tnever signed in", listed.output), listed.output

    changed = run(site_dir, "operators", "passwd", "bob@example.org", "--password-stdin", stdin="bob's new password!\n")
    assert changed.exit_code == 0, changed.output
    assert passwords.verify((stored(database, site_dir))["bob@example.org"][1], "bob's new password!")

    removed = run(site_dir, "operators", "remove", "bob@example.org")
    assert removed.exit_code == 0 and set(stored(database, site_dir)) == {"ann@example.org"}
    audit = database.fetch(site_dir, "SELECT operator, action FROM audit_log ORDER BY id")
    who = f"cli:{getpass.getuser()}"
    assert [tuple(row) for row in audit] == [
        (who, "operator.add"), (who, "operator.add"), (who, "operator.password"), (who, "operator.remove"),
    ]


def test_bad_input_exits_1_with_the_reason_and_stores_nothing(site_dir: Path, database: Backend) -> None:
    short = run(site_dir, "operators", "add", "ann@example.org", "--role", "admin", "--password-stdin", stdin="short\n")
    assert short.exit_code == 1 and "at least 12 characters (it has 5)" in short.output
    mismatch = run(site_dir, "operators", "add", "ann@example.org", "--role", "admin",
                   stdin="a long enough password\nanother long password\n")
    assert mismatch.exit_code != 0 and "do not match" in mismatch.output
    role = run(site_dir, "operators", "add", "ann@example.org", "--role", "owner", "--password-stdin", stdin="x" * 20)
    assert role.exit_code == 2
    missing = run(site_dir, "operators", "remove", "nobody@example.org")
    assert missing.exit_code == 1 and "there is no operator nobody@example.org" in missing.output
    assert stored(database, site_dir) == {}


def test_totp_is_turned_on_with_a_secret_shown_once_and_off(site_dir: Path, database: Backend) -> None:
    run(site_dir, "operators", "add", "ann@example.org", "--role", "admin", "--password-stdin", stdin="a long enough password\n")
    enabled = run(site_dir, "operators", "totp", "ann@example.org", "--enable")
    assert enabled.exit_code == 0, enabled.output
    secret = (stored(database, site_dir))["ann@example.org"][2]
    assert secret is not None and f"secret: {secret}" in enabled.output
    assert f"otpauth://totp/Test%20Brief:ann@example.org?secret={secret}&issuer=Test+Brief" in enabled.output
    assert len(totp.code_at(secret, 1)) == 6
    assert "totp" in run(site_dir, "operators", "list").output
    disabled = run(site_dir, "operators", "totp", "ann@example.org", "--disable")
    assert disabled.exit_code == 0 and (stored(database, site_dir))["ann@example.org"][2] is None
    assert run(site_dir, "operators", "totp", "ann@example.org").exit_code == 2
