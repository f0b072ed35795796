"""The command line as an operator uses it (a real subprocess for the entry points)."""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from publisher.cli import main
from tests.support.sites import write_config
from tests.support.cli_output import summary


def run(config: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "publisher", "--config", str(config), *args],
        capture_output=True, text=True, env=os.environ | {"PUBLISHER_SECRET_KEY": "cli-test-key", "COLUMNS": "200"},
        timeout=60, input=stdin, check=False,
    )


@pytest.mark.slow  # runs the publisher in a subprocess
def test_check_lists_every_problem_as_path_line_message(bare_site_dir: Path) -> None:
    content = bare_site_dir / "content"
    (content / "no-title.md").write_text("---\ndate: 2026-01-01\n---\nbody\n", encoding="utf-8")
    (content / "bad-date.md").write_text("---\ntitle: T\ndate: someday soon\n---\nbody\n", encoding="utf-8")
    (content / "latin1.md").write_bytes("---\ntitle: Caf\xe9\ndate: 2026-01-01\n---\n".encode("latin-1"))
    result = run(bare_site_dir / "config.toml", "check")
    assert result.returncode == 1, result.stderr
    # Besides the problems: the mail-client lint's note, and the takeaways proposed for the sample
    # article without any.
    lines = [line.replace(str(content) + "/", "") for line in result.stdout.splitlines()
             if not line.startswith("note: ") and "suggested takeaways (not published" not in line
             and not line.startswith("  - ")]
    assert "bad-date.md:3: date 'someday soon' is not a date (use ISO 8601 or RFC 2822)" in lines
    assert "latin1.md:2: file is not valid UTF-8" in lines
    assert "no-title.md:1: missing title" in lines
    assert len(lines) == 3, result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # runs the publisher in a subprocess
def test_check_reports_a_date_out_of_range_and_warns_of_a_cut_title(bare_site_dir: Path) -> None:
    """One file's impossible date stops no other; a title over [content] max_title_length is cut, with a warning."""
    content = bare_site_dir / "content"
    (content / "far.md").write_text('+++\ntitle = "Far"\ndate = 9999-12-31T23:59:59-14:00\n+++\nbody\n', encoding="utf-8")
    (content / "long.md").write_text(f"---\ntitle: {'Long ' * 80}\ndate: 2026-01-01\n---\nbody\n", encoding="utf-8")
    result = run(bare_site_dir / "config.toml", "check")
    assert result.returncode == 1, result.stderr
    lines = [line.replace(str(content) + "/", "") for line in result.stdout.splitlines()]
    assert any(line.startswith("far.md:3: date ") and "out of range" in line for line in lines), lines
    assert any(line.startswith("long.md:2: warning: title is longer than 300 characters: cut to") for line in lines)
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # runs the publisher in a subprocess
def test_check_passes_on_the_sample_content(bare_site_dir: Path) -> None:
    result = run(bare_site_dir / "config.toml", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


@pytest.mark.slow  # runs the publisher in a subprocess
def test_check_warns_of_a_language_without_a_catalog_and_passes_a_regional_one(bare_site_dir: Path) -> None:
    config = bare_site_dir / "config.toml"
    site = config.read_text()
    config.write_text(site.replace("[site]\n", '[site]\nlanguage = "pt-BR"\n', 1))
    result = run(config, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (f"{config}: warning: [site] language: no translation for 'pt-BR', emails and pages are in English "
            "(translations: ar, de, en, es, fr)") in result.stdout.splitlines()
    assert "OK" in result.stdout and "1 warning(s)" in result.stdout
    config.write_text(site.replace("[site]\n", '[site]\nlanguage = "fr-CA"\n', 1))
    result = run(config, "check")
    assert result.returncode == 0 and "warning" not in result.stdout, result.stdout + result.stderr


def test_check_parses_the_content_without_a_database_engine(site_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_engine(*args: object, **kwargs: object) -> None:
        raise AssertionError("publisher check built a database engine")

    monkeypatch.setattr("publisher.app.create_engine", no_engine)
    monkeypatch.setattr("publisher.store.db.create_engine", no_engine)
    result = CliRunner().invoke(main, ["--config", str(site_dir / "config.toml"), "check"])
    assert result.exit_code == 0, result.output
    assert "config, templates and content OK" in result.output


@pytest.mark.slow  # runs the publisher in a subprocess
def test_check_warns_about_what_the_limits_leave_out_of_an_article(bare_site_dir: Path) -> None:
    content = bare_site_dir / "content"
    table = "| Year | Output |\n|---|---|\n| 2024 | 2 MW |\n"
    tags = ", ".join(f"t{n}" for n in range(25))
    (content / "many.md").write_text(f"---\ntitle: T\ndate: 2026-01-01\ntags: [{tags}]\n---\n" + "\n".join(
        [table] * 21), encoding="utf-8")
    result = run(bare_site_dir / "config.toml", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line.replace(str(content) + "/", "") for line in result.stdout.splitlines()]
    assert "many.md:4: warning: 25 tags: only the first 20 are kept ([content] max_tags = 20)" in lines
    assert ("many.md:86: warning: 21 tables: only the first 20 are fact tables, this one and the rest stay in the "
            "body ([content] max_tables = 20)") in lines


@pytest.mark.slow  # runs the publisher in a subprocess
def test_bad_config_is_one_line_per_key_and_exit_2(bare_site_dir: Path) -> None:
    config = bare_site_dir / "config.toml"
    config.write_text(config.read_text(encoding="utf-8") + '\n[smtp]\nport = "x"\n', encoding="utf-8")
    result = run(config, "check")
    assert result.returncode == 2
    assert "smtp.port" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # runs the publisher in a subprocess
def test_init_creates_a_working_starter(tmp_path: Path) -> None:
    target = tmp_path / "site"
    assert CliRunner().invoke(main, ["init", str(target)]).exit_code == 0
    assert (target / "config.toml").exists()
    assert list((target / "content").glob("*.md"))
    assert run(target / "config.toml", "check").returncode == 0
    again = CliRunner().invoke(main, ["init", str(target)])
    assert again.exit_code != 0 and "not overwriting" in again.output


@pytest.mark.slow  # runs the publisher in a subprocess
def test_build_writes_static_feeds(site_dir: Path) -> None:
    result = run(site_dir / "config.toml", "build")
    assert result.returncode == 0, result.stderr
    assert "3 new" in result.stdout
    public = site_dir / "public"
    for name in ("feed.rss", "feed.atom", "feed.json", "feed.rss.gz"):
        assert (public / name).stat().st_size > 0
    assert list((public / "tags").glob("*/feed.atom"))


@pytest.mark.slow  # runs the publisher in a subprocess
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

    removed = run(config, "subscribers", "remove", "ann@example.org", "--yes")
    assert removed.returncode == 0 and "erased ann@example.org" in removed.stdout
    assert run(config, "subscribers", "remove", "ann@example.org", "--yes").returncode == 1


@pytest.mark.slow  # runs the publisher in a subprocess
def test_python_dash_m_and_console_script_agree() -> None:
    by_module = subprocess.run(
        [sys.executable, "-m", "publisher", "--help"], capture_output=True, text=True, check=False
    )
    script = Path(sys.executable).with_name("publisher")
    by_script = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert by_module.returncode == by_script.returncode == 0
    for command in ("init", "check", "build", "run", "send", "subscribers"):
        assert command in by_module.stdout
    assert by_module.stdout == by_script.stdout


# --- subscribers: import, export, list, show, remove, suppress ---------------------------

PEOPLE_CSV = (
    "\ufeffEmail;Name;Cadence;Topics;Phone\r\n"
    "ann@example.org;Ann;instant;economy|transport;1\r\n"
    "not-an-address;[bold]Mallory[/bold];daily;;2\r\n"
    "bo@example.org;Bo;fortnightly;;3\r\n"
    "ANN@example.org;Annie;;;4\r\n"
    "cy@example.org;Cy;weekly;;5\r\n"
    "left@example.org;Left;;;6\r\n"
)




@pytest.mark.slow  # runs the publisher in a subprocess
def test_import_reports_bad_rows_by_file_and_line_and_imports_the_rest(site_dir: Path) -> None:
    config = site_dir / "config.toml"
    people = site_dir / "people.csv"
    people.write_text(PEOPLE_CSV, encoding="utf-8")
    assert CliRunner().invoke(main, ["--config", str(config), "build"]).exit_code == 0  # the topics: article tags
    assert run(config, "subscribers", "suppress", "left@example.org").returncode == 0

    dry = run(config, "subscribers", "import", str(people), "--dry-run")
    assert dry.returncode == 1 and "(dry run: nothing changed)" in dry.stdout
    assert summary(dry.stdout)["added as active subscribers"] == 2
    assert "0 of 0 subscriber(s)" in run(config, "subscribers", "list").stdout

    result = run(config, "subscribers", "import", str(people))
    assert result.returncode == 1, result.stderr  # some rows were invalid; the rest went in
    errors = [line for line in result.stderr.splitlines() if line.startswith(f"{people}:")]
    assert errors == [
        (
            f"{people}: warning: line 1: ignoring unknown column(s) 'phone'; "
            "the import reads email, name, cadence, topics, timezone, send_hour"
        ),
        f"{people}:3: email: not a valid email address: An email address must have an @-sign.",
        f"{people}:4: cadence: unknown cadence 'fortnightly'; choose one of instant, daily, weekly",
    ]
    assert "Traceback" not in result.stderr
    assert summary(result.stdout) == {
        "added as active subscribers": 2,
        "existing subscribers updated": 0,
        "existing subscribers left unchanged": 0,
        "suppressed addresses skipped": 1,
        "duplicate rows merged": 1,
        "not active in the file's status column, skipped": 0,
        "invalid rows skipped": 2,
    }
    shown = run(config, "subscribers", "show", "ann@example.org")
    assert shown.returncode == 0
    for expected in ("Annie", "instant", "economy, transport", "import", "active"):
        assert expected in shown.stdout

    valid = "email,name\nann@example.org,Ann Again\ndee@example.org,Dee\n"
    again = run(config, "subscribers", "import", "-", "--update", stdin=valid)
    assert again.returncode == 0, again.stderr
    assert summary(again.stdout)["existing subscribers updated"] == 1
    assert summary(again.stdout)["added as active subscribers"] == 1
    assert "Ann Again" in run(config, "subscribers", "show", "ann@example.org").stdout


@pytest.mark.slow  # runs the publisher in a subprocess
def test_import_of_a_file_without_an_email_column_is_one_error(site_dir: Path) -> None:
    people = site_dir / "people.csv"
    people.write_text("name,cadence\nAnn,daily\n", encoding="utf-8")
    result = run(site_dir / "config.toml", "subscribers", "import", str(people))
    assert result.returncode == 1
    assert f"Error: {people}:1: no 'email' column in the header line (found 'name', 'cadence')" in result.stderr
    assert "Traceback" not in result.stderr


def invoke(site_dir: Path, *args: str, stdin: str | None = None) -> Result:
    """In-process, for the quick commands (the subprocess tests above cover the entry point)."""
    return CliRunner().invoke(main, ["--config", str(site_dir / "config.toml"), "subscribers", *args], input=stdin)


def test_export_writes_csv_that_re_imports_and_jsonl(site_dir: Path, tmp_path: Path) -> None:
    invoke(site_dir, "import", "-", stdin="email,name,cadence\nann@example.org,Ann,weekly\nbo@example.org,Bo,\n")
    invoke(site_dir, "suppress", "bo@example.org")

    csv_out = invoke(site_dir, "export")
    assert csv_out.exit_code == 0
    lines = csv_out.stdout.splitlines()
    assert lines[0] == "email,name,cadence,topics,timezone,send_hour,status,source,created_at,confirmed_at"
    assert lines[1].startswith("ann@example.org,Ann,weekly,,UTC,,active,import,")
    assert lines[2].startswith("bo@example.org,Bo,daily,,UTC,,unsubscribed,import,")
    assert "exported 2 subscriber(s) to standard output" in csv_out.stderr

    target = tmp_path / "active.jsonl"
    jsonl = invoke(site_dir, "export", "--format", "jsonl", "--status", "active", "--output", str(target))
    assert jsonl.exit_code == 0, jsonl.output
    records = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [(r["email"], r["cadence"], r["status"]) for r in records] == [("ann@example.org", "weekly", "active")]

    # The CSV export re-imports: the active subscriber is known, the unsubscribed one stays out.
    reimport = invoke(site_dir, "import", "-", stdin=csv_out.stdout)
    assert reimport.exit_code == 0, reimport.output
    assert summary(reimport.stdout)["existing subscribers left unchanged"] == 1
    assert summary(reimport.stdout)["not active in the file's status column, skipped"] == 1


def test_list_filters_searches_and_pages_by_id(site_dir: Path) -> None:
    invoke(site_dir, "import", "-", stdin="email,name\n" + "".join(f"p{i}@example.org,P{i}\n" for i in range(5)))
    invoke(site_dir, "add", "zed@example.org", "--name", "[red]Zed")
    invoke(site_dir, "suppress", "p1@example.org")

    first = invoke(site_dir, "list", "--limit", "2")
    assert first.exit_code == 0
    assert "p0@example.org" in first.stdout and "p1@example.org" in first.stdout
    assert "p2@example.org" not in first.stdout
    assert "2 of 6 subscriber(s)" in first.stdout and "next page: --after 2" in first.stdout
    second = invoke(site_dir, "list", "--limit", "2", "--after", "2")
    assert "p2@example.org" in second.stdout and "p0@example.org" not in second.stdout

    assert "[red]Zed" in invoke(site_dir, "list", "--search", "zed").stdout  # names are text, not markup
    unsubscribed = invoke(site_dir, "list", "--status", "unsubscribed")
    assert "p1@example.org" in unsubscribed.stdout and "1 of 1 subscriber(s)" in unsubscribed.stdout
    assert invoke(site_dir, "list", "--status", "gone").exit_code == 2


def test_show_remove_and_suppress(site_dir: Path) -> None:
    invoke(site_dir, "add", "ann@example.org", "--name", "Ann", "--cadence", "weekly")
    shown = invoke(site_dir, "show", "Ann@Example.org")
    assert shown.exit_code == 0
    for expected in ("ann@example.org", "Ann", "weekly", "active", "cli", "suppressed"):
        assert expected in shown.stdout
    unknown = invoke(site_dir, "show", "nobody@example.org")
    assert unknown.exit_code == 1 and "nobody@example.org is not a subscriber" in unknown.stderr
    assert "not a valid email address" in invoke(site_dir, "show", "nonsense").stderr

    kept = invoke(site_dir, "remove", "ann@example.org", stdin="n\n")
    assert kept.exit_code == 1 and "Erase ann@example.org" in kept.output
    assert invoke(site_dir, "show", "ann@example.org").exit_code == 0
    erased = invoke(site_dir, "remove", "ann@example.org", stdin="y\n")
    assert erased.exit_code == 0 and "erased ann@example.org" in erased.stdout
    gone = invoke(site_dir, "show", "ann@example.org")
    assert gone.exit_code == 1 and "(the address is suppressed: erased)" in gone.stderr
    assert invoke(site_dir, "remove", "ann@example.org", "--yes").exit_code == 1

    invoke(site_dir, "add", "bo@example.org")
    bo = invoke(site_dir, "suppress", "bo@example.org", "--reason", "asked by phone")
    assert bo.exit_code == 0 and "suppressed bo@example.org: unsubscribed subscriber #" in bo.stdout
    assert "(was active)" in bo.stdout
    again = invoke(site_dir, "suppress", "bo@example.org")
    assert "was already unsubscribed" in again.stdout
    stranger = invoke(site_dir, "suppress", "cy@example.org")
    assert stranger.exit_code == 0 and "not a subscriber" in stranger.stdout
    assert "(the address is suppressed: manual)" in invoke(site_dir, "show", "cy@example.org").stderr
    added = invoke(site_dir, "add", "cy@example.org")
    assert added.exit_code == 1 and "suppressed" in added.stderr
    assert invoke(site_dir, "suppress", "dee@example.org", "--reason", "x" * 21).exit_code == 2


@pytest.mark.slow  # runs the publisher in a subprocess
def test_db_current_and_upgrade(site_dir: Path) -> None:
    config = site_dir / "config.toml"
    before = run(config, "db", "current")
    assert before.returncode == 0 and "revision (none), newest " in before.stdout  # nothing migrated by looking
    migrated = run(config, "db", "upgrade")
    assert migrated.returncode == 0 and "migrated from (empty) to " in migrated.stdout
    head = migrated.stdout.split()[-1]
    assert f"revision {head}, newest {head}: up to date" in run(config, "db", "current").stdout
    assert f"already at the newest revision {head}" in run(config, "db", "upgrade").stdout


@pytest.mark.slow  # runs the publisher in a subprocess
def test_db_current_names_an_unreachable_database(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[database]\nurl = "postgresql+asyncpg://postgres@127.0.0.1:1/none"\n', encoding="utf-8")
    result = run(config, "db", "current")
    assert result.returncode == 1 and "the database is unreachable or unusable: " in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # runs the publisher in a subprocess
def test_an_unwritable_output_dir_fails_build_but_never_stops_send(site_dir: Path) -> None:
    config = site_dir / "config.toml"
    (site_dir / "public").write_text("a file where [site] output_dir should be\n", encoding="utf-8")
    assert run(config, "subscribers", "add", "ann@example.org", "--cadence", "instant").returncode == 0
    sent = run(config, "send")
    assert sent.returncode == 0 and "sent 1," in sent.stdout, sent.stdout + sent.stderr
    assert f"cannot write the static feed files to {site_dir / 'public'}" in sent.stderr
    assert len(mailbox.Maildir(site_dir / "outbox", create=False)) == 1
    built = run(config, "build")
    assert built.returncode == 1, built.stdout + built.stderr
    assert f"cannot write the static feed files to {site_dir / 'public'}" in built.stderr
    assert "Traceback" not in sent.stderr + built.stderr


# --- operator repair without SQL: digests list / cancel / drop-article ----------------------------

KIM = "2023-09-kim-russia-visit"
KIM_TITLE = "Kim Jong Un in Russia"


def cli(site_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(site_dir / "config.toml"), *args])


def planned_but_not_sent(site_dir: Path) -> str:
    """One instant digest of the three sample articles for ann@example.org, planned while the
    relay is down (so none of it is sent); then the config is back to the maildir outbox. Its id."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    write_config(site_dir, f"[smtp]\nport = {port}\ntimeout = 2\n", transport="smtp")
    assert cli(site_dir, "subscribers", "add", "ann@example.org", "--cadence", "instant").exit_code == 0
    assert cli(site_dir, "send").exit_code != 0
    write_config(site_dir)
    listed = cli(site_dir, "digests", "list")
    assert listed.exit_code == 0, listed.output
    [row] = [line.split() for line in listed.output.splitlines() if line.startswith("instant-")]
    return row[0]


def listed_row(site_dir: Path, digest: str) -> str:
    return next(line for line in cli(site_dir, "digests", "list").output.splitlines() if line.startswith(digest))


def sent_text(site_dir: Path) -> str:
    box = mailbox.Maildir(site_dir / "outbox", create=False)
    [key] = list(box.iterkeys())
    message = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
    return message.get_body(("plain",)).get_content()


def test_an_article_removed_after_planning_is_not_sent_in_the_digest(site_dir: Path) -> None:
    planned_but_not_sent(site_dir)
    assert cli(site_dir, "articles", "remove", KIM).exit_code == 0
    assert cli(site_dir, "send").exit_code == 0
    text = sent_text(site_dir)
    assert KIM_TITLE not in text and "Regional Transit Ridership" in text


def test_digests_list_shows_cadence_status_articles_and_messages_by_state(site_dir: Path) -> None:
    digest = planned_but_not_sent(site_dir)
    listed = cli(site_dir, "digests", "list").output
    header = next(line for line in listed.splitlines() if line.split()[:1] == ["digest"])
    assert header.split() == ["digest", "cadence", "status", "created", "articles", "messages"]
    row = listed_row(site_dir, digest)
    assert row.split()[1:3] == ["instant", "sending"] and row.split()[6] == "3" and row.endswith("1 pending")


def test_digests_cancel_finishes_what_is_left_and_refuses_twice(site_dir: Path) -> None:
    digest = planned_but_not_sent(site_dir)
    cancelled = cli(site_dir, "digests", "cancel", digest)
    assert cancelled.exit_code == 0, cancelled.output
    assert cancelled.output.strip() == f"cancelled {digest}: 1 message(s) will not be sent, 0 already sent"
    row = listed_row(site_dir, digest)
    assert row.split()[2] == "finished" and row.endswith("1 cancelled")
    assert "cancelled by the operator" in cli(site_dir, "status").output
    assert cli(site_dir, "send").exit_code == 0
    assert not list(mailbox.Maildir(site_dir / "outbox", create=True).iterkeys())
    again = cli(site_dir, "digests", "cancel", digest)
    assert again.exit_code == 1 and f"digest {digest} is already finished" in again.output
    unknown = cli(site_dir, "digests", "cancel", "instant-nope")
    assert unknown.exit_code == 1 and "no digest 'instant-nope'" in unknown.output


def test_digests_drop_article_sends_the_rest_and_cancels_an_emptied_digest(site_dir: Path) -> None:
    digest = planned_but_not_sent(site_dir)
    dropped = cli(site_dir, "digests", "drop-article", digest, KIM)
    assert dropped.exit_code == 0, dropped.output
    assert dropped.output.strip() == (
        f"dropped {KIM} from {digest}: 2 article(s) left, 1 message(s) still to send go without it"
    )
    assert cli(site_dir, "digests", "drop-article", digest, KIM).exit_code == 1  # no longer in it
    assert "not in digest" in cli(site_dir, "digests", "drop-article", digest, KIM).output
    assert cli(site_dir, "send").exit_code == 0
    text = sent_text(site_dir)
    assert KIM_TITLE not in text and "Regional Transit Ridership" in text


def test_dropping_the_last_article_cancels_the_digest(site_dir: Path) -> None:
    digest = planned_but_not_sent(site_dir)
    for article in ("2024-06-city-heat-plan", "2024-03-transit-ridership"):
        assert cli(site_dir, "digests", "drop-article", digest, article).exit_code == 0
    last = cli(site_dir, "digests", "drop-article", digest, KIM)
    assert last.exit_code == 0, last.output
    assert f"{digest} had no other article: cancelled, 1 message(s) will not be sent" in last.output


def test_a_digest_whose_articles_were_all_removed_is_cancelled_not_left_to_do(site_dir: Path) -> None:
    digest = planned_but_not_sent(site_dir)
    for article in (KIM, "2024-06-city-heat-plan", "2024-03-transit-ridership"):
        assert cli(site_dir, "articles", "remove", article).exit_code == 0
    assert cli(site_dir, "send").exit_code == 0
    row = listed_row(site_dir, digest)
    assert row.split()[2] == "finished" and row.endswith("1 cancelled")
    assert f"{digest} finished early: every article in it was removed" in cli(site_dir, "status").output


@pytest.mark.slow  # runs the publisher in a subprocess
def test_check_renders_every_template_and_names_the_broken_ones_by_file_and_line(bare_site_dir: Path) -> None:
    config = bare_site_dir / "config.toml"
    config.write_text(config.read_text().replace('output_dir = "public"', 'output_dir = "public"\ntemplates_dir = "tpl"'))
    (bare_site_dir / "tpl" / "email").mkdir(parents=True)
    (bare_site_dir / "tpl" / "feed").mkdir()
    (bare_site_dir / "tpl" / "email" / "digest.txt").write_text("Hello\n{% for article in articles %}\n{{ article.title }}\n")
    (bare_site_dir / "tpl" / "feed" / "content.html").write_text("<p>{{ article.title }}</p>\n<p>{{ article.byline }}</p>\n")
    (bare_site_dir / "tpl" / "email" / "confirm.html").write_text("{% extends 'email/notice.html' %}{{ x }")
    (bare_site_dir / "tpl" / "admin").mkdir()
    (bare_site_dir / "tpl" / "admin" / "overview.html").write_text("{% extends 'admin/base.html' %}\n{% block main %}\n")
    result = run(config, "check")
    assert result.returncode == 1, result.stdout + result.stderr
    tpl = bare_site_dir / "tpl"
    assert f"{tpl / 'email' / 'digest.txt'}:3: TemplateSyntaxError: Unexpected end of template." in result.stdout
    assert f"{tpl / 'feed' / 'content.html'}:2: UndefinedError:" in result.stdout and "byline" in result.stdout
    assert f"{tpl / 'email' / 'confirm.html'}:1: TemplateSyntaxError" in result.stdout
    assert f"{tpl / 'admin' / 'overview.html'}:2: TemplateSyntaxError" in result.stdout  # the dashboard's too
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # runs the publisher in a subprocess
def test_check_warns_of_what_an_overridden_template_uses_that_a_listed_client_lacks(bare_site_dir: Path) -> None:
    """A warning, not an error: flexbox in Outlook for Windows, SVG in Gmail; exit 0, counted."""
    config = bare_site_dir / "config.toml"
    config.write_text(config.read_text().replace('output_dir = "public"', 'output_dir = "public"\ntemplates_dir = "tpl"')
                      + '\n[email]\nclients = ["gmail.desktop-webmail", "outlook.windows"]\n')
    (bare_site_dir / "tpl" / "email").mkdir(parents=True)
    (bare_site_dir / "tpl" / "email" / "_article.html").write_text(
        '<h2><a href="{{ article.canonical_url }}">{{ article.title }}</a></h2>\n'
        '<div style="display: flex"><svg width="8" height="8"></svg></div>\n'
    )
    result = run(config, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("email/digest.html: warning: display:flex: not supported by Outlook Windows")
               for line in lines), lines
    assert any(line.startswith("email/digest.html: warning: Embedded <svg> image: not supported by "
                               "Gmail Desktop Webmail, Outlook Windows") for line in lines), lines
    warned = sum(": warning: " in line for line in lines)
    assert f"config, templates and content OK ({bare_site_dir / 'content'}), {warned} warning(s)" in lines


@pytest.mark.slow  # runs the publisher in a subprocess
def test_check_renders_the_built_in_templates_without_a_problem(bare_site_dir: Path) -> None:
    result = run(bare_site_dir / "config.toml", "check")
    assert result.returncode == 0 and "config, templates and content OK" in result.stdout, result.stdout + result.stderr
    assert "warning" not in result.stdout, result.stdout  # the mail-client lint: a note at most
