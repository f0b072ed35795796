"""The subscriber CSV importer: parsing edge cases (pure), storing (real store), export round trip."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from publisher import clock
from publisher.app import Publisher
from publisher.config import Settings
from publisher.digest.plan import PlanOptions, plan
from publisher.store.articles import newest_seq
from publisher.store.schema import subscribers as subscribers_table
from subscribers import bulk, importer, service
from subscribers import store as subscriber_store
from subscribers.importer import ImportFileError, ParsedImport, RowError, parse_csv
from subscribers.model import Cadence, Preferences, Source, Status, Subscriber
from tests.support.databases import Backend
from tests.support.people import add_subscriber

KNOWN = ["economy", "transport", "Public Health"]
NOW = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)


def parse(text: str | bytes) -> ParsedImport:
    return parse_csv(text, known_topics=KNOWN, default_timezone="Europe/Paris", default_cadence="weekly")


def by_email(parsed: ParsedImport) -> dict[str, importer.ImportRow]:
    return {row.email: row for row in parsed.rows}


# --- parsing ----------------------------------------------------------------------------


def test_bad_emails_are_reported_by_physical_line_and_the_rest_is_read() -> None:
    parsed = parse("email,name\nann@example.org,Ann\nnot-an-address,Bob\n\n,Nobody\ncy@example.org,Cy\n")
    assert [row.email for row in parsed.rows] == ["ann@example.org", "cy@example.org"]
    assert [(e.line, e.field) for e in parsed.errors] == [(3, "email"), (5, "email")]
    assert "not a valid email address" in parsed.errors[0].reason
    assert "required" in parsed.errors[1].reason
    assert parsed.records == 4  # the blank line 4 is not a record


def test_every_bad_cell_of_a_row_is_reported_with_its_column() -> None:
    parsed = parse(
        "email,cadence,topics,timezone,send_hour\n"
        "a@example.org,fortnightly,economy,UTC,\n"
        "b@example.org,daily,astrology,UTC,\n"
        "c@example.org,daily,,Mars/Olympus,\n"
        "d@example.org,hourly,economy|stamps,Nowhere/City,25\n"
    )
    assert parsed.rows == []
    errors = {(e.line, e.field) for e in parsed.errors}
    assert errors == {
        (2, "cadence"), (3, "topics"), (4, "timezone"),
        (5, "cadence"), (5, "topics"), (5, "timezone"), (5, "send_hour"),
    }
    reasons = {(e.line, e.field): e.reason for e in parsed.errors}
    assert "unknown cadence 'fortnightly'" in reasons[2, "cadence"]
    assert "instant, daily, weekly" in reasons[2, "cadence"]
    assert "unknown topic 'astrology'" in reasons[3, "topics"]
    assert "unknown timezone 'Mars/Olympus'" in reasons[4, "timezone"]
    assert str(RowError(2, "cadence", "x")) == "2: cadence: x"


def test_empty_cells_take_the_sites_defaults_and_values_are_normalized() -> None:
    parsed = parse(
        "email,name,cadence,topics,timezone,send_hour\n"
        " Ann@Example.ORG ,  Ann   Lee ,,,,\n"
        "bo@example.org,,INSTANT, public-health ; Economy ,America/New_York,7\n"
    )
    assert parsed.errors == []
    ann, bo = by_email(parsed)["ann@example.org"], by_email(parsed)["bo@example.org"]
    assert ann.name == "Ann Lee"
    assert ann.preferences == Preferences(cadence=Cadence.WEEKLY, topics=(), timezone="Europe/Paris")
    assert bo.preferences == Preferences(
        cadence=Cadence.INSTANT, topics=("economy", "Public Health"), timezone="America/New_York", send_hour=7
    )


def test_duplicate_rows_merge_into_one_and_later_non_empty_cells_win() -> None:
    parsed = parse(
        "email,name,cadence,topics\n"
        "ann@example.org,Ann,daily,economy\n"
        "bo@example.org,Bo,,\n"
        "ANN@example.org,,instant,\n"
        "ann@example.org,Annie,,\n"
    )
    assert parsed.merged == 2
    assert [row.email for row in parsed.rows] == ["ann@example.org", "bo@example.org"]
    ann = by_email(parsed)["ann@example.org"]
    assert ann.line == 2  # reported where the address first appears
    assert ann.name == "Annie"
    assert ann.preferences.cadence == Cadence.INSTANT
    assert ann.preferences.topics == ("economy",)  # an empty cell later does not wipe it


def test_an_invalid_duplicate_does_not_spoil_the_valid_row() -> None:
    parsed = parse("email,cadence\nann@example.org,daily\nann@example.org,sometimes\n")
    assert [(row.email, row.preferences.cadence) for row in parsed.rows] == [("ann@example.org", Cadence.DAILY)]
    assert [(e.line, e.field) for e in parsed.errors] == [(3, "cadence")]
    assert parsed.merged == 0


def test_utf8_bom_and_crlf_as_excel_writes_them() -> None:
    data = "\ufeffEmail,Name\r\nzoe@example.org,Zoë Ñuñez\r\n".encode()
    parsed = parse(data)
    assert parsed.errors == [] and parsed.warnings == []
    assert [(r.email, r.name, r.line) for r in parsed.rows] == [("zoe@example.org", "Zoë Ñuñez", 2)]
    assert parse(data.decode("utf-8")).rows == parsed.rows  # a str with the BOM left in


@pytest.mark.parametrize("delimiter", [";", "\t", ","])
def test_semicolon_tab_and_comma_separated_files(delimiter: str) -> None:
    text = (
        f" EMAIL {delimiter}name{delimiter}topics\n"
        f"ann@example.org{delimiter}\"Lee, Ann; Dr\"{delimiter}economy|transport\n"
        f"bo@example.org{delimiter}Bo{delimiter}\n"
    )
    parsed = parse(text)
    assert parsed.errors == []
    ann = by_email(parsed)["ann@example.org"]
    assert ann.name == "Lee, Ann; Dr"
    assert ann.preferences.topics == ("economy", "transport")
    assert "bo@example.org" in by_email(parsed)


def test_a_quoted_cell_spanning_lines_does_not_shift_later_line_numbers() -> None:
    parsed = parse(
        'email,topics,name\n'
        'ann@example.org,"economy\ntransport",Ann\n'
        'bad-one,,\n'
        'bo@example.org,,"Bo\nSmith"\n'
        'bad-two,,\n'
    )
    assert by_email(parsed)["ann@example.org"].preferences.topics == ("economy", "transport")
    assert [(e.line, e.field) for e in parsed.errors] == [(4, "email"), (5, "name"), (7, "email")]
    assert "runs on to line 6" in parsed.errors[1].reason  # a hint in case a quote was left open


def test_a_row_with_more_cells_than_the_header_is_reported_not_guessed() -> None:
    parsed = parse("email,name\nann@example.org,Lee, Ann\nbo@example.org,Bo,,\n")
    assert [(e.line, e.field) for e in parsed.errors] == [(2, "row")]
    assert "3 cells but the header names 2 columns" in parsed.errors[0].reason
    assert [row.email for row in parsed.rows] == ["bo@example.org"]  # trailing empty cells are fine


def test_an_unreadable_row_is_reported_and_reading_goes_on() -> None:
    huge = '"' + "x" * 200_000 + '"'
    parsed = parse(f"email,name\n{huge},A\nok@example.org,Ok\n")
    assert [(e.line, e.field) for e in parsed.errors] == [(2, "row")]
    assert "unreadable CSV" in parsed.errors[0].reason
    assert [(row.email, row.line) for row in parsed.rows] == [("ok@example.org", 3)]


def test_unknown_columns_are_ignored_with_one_warning() -> None:
    parsed = parse("email,Phone,name,notes\na@example.org,123,A,x\nb@example.org,456,B,y\n")
    assert len(parsed.rows) == 2 and parsed.errors == []
    assert parsed.warnings == [
        (
            "line 1: ignoring unknown column(s) 'phone', 'notes'; "
            "the import reads email, name, cadence, topics, timezone, send_hour"
        )
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("name,cadence\nAnn,daily\n", 1, "no 'email' column in the header line (found 'name', 'cadence')"),
        ("", 1, "the file is empty"),
        ("\n\n  \n", 1, "the file is empty"),
        ("\n\nemail,Email\n", 3, "column(s) named twice in the header line: email"),
    ],
)
def test_a_file_without_a_usable_header_is_one_clear_error(text: str, line: int, message: str) -> None:
    with pytest.raises(ImportFileError) as caught:
        parse(text)
    assert message in str(caught.value)
    assert caught.value.line == line


def test_a_header_without_rows_is_an_empty_import() -> None:
    parsed = parse("email,name\n")
    assert (parsed.rows, parsed.errors, parsed.records) == ([], [], 0)


def test_a_file_that_is_not_utf8_is_an_error_naming_the_line() -> None:
    with pytest.raises(ImportFileError) as caught:
        parse("email,name\nann@example.org,Ann\nzoe@example.org,Zo\xeb\n".encode("latin-1"))
    assert caught.value.line == 3
    assert "not UTF-8" in str(caught.value)


def test_rows_an_export_marks_as_not_active_are_not_imported() -> None:
    parsed = parse(
        "email,status\na@example.org,active\nb@example.org,unsubscribed\nc@example.org,\n"
        "d@example.org,pending\ne@example.org,gone\n"
    )
    assert sorted(by_email(parsed)) == ["a@example.org", "c@example.org"]
    assert parsed.inactive == 2
    assert [(e.line, e.field) for e in parsed.errors] == [(6, "status")]


def test_a_later_row_saying_unsubscribed_wins_over_an_earlier_active_one() -> None:
    parsed = parse("email,status\na@example.org,active\na@example.org,bounced\n")
    assert parsed.rows == [] and parsed.inactive == 1 and parsed.merged == 1


def test_parse_reads_binary_and_text_streams() -> None:
    data = "email\nann@example.org\n"
    assert by_email(parse_csv(io.BytesIO(data.encode()), known_topics=[], default_timezone="UTC",
                              default_cadence=Cadence.DAILY))
    assert by_email(parse_csv(io.StringIO(data), known_topics=[], default_timezone="UTC", default_cadence="daily"))


# --- storing ------------------------------------------------------------------------------


async def stored(publisher: Publisher, address: str) -> Subscriber | None:
    async with publisher.engine.connect() as conn:
        return await subscriber_store.find(conn, address)


async def test_new_addresses_become_active_imported_subscribers_who_get_later_articles(
    publisher: Publisher, settings: Settings, site_dir: Path
) -> None:
    await publisher.intake.scan()
    parsed = parse("email,name,cadence\nann@example.org,Ann,instant\nbo@example.org,Bo,instant\n")
    report = await bulk.import_rows(publisher.engine, parsed, now=NOW)
    assert (report.created, report.existing, report.suppressed, report.updated) == (2, 0, 0, 0)

    ann = await stored(publisher, "ann@example.org")
    assert ann is not None
    assert (ann.status, ann.source, ann.confirmed_source) == (Status.ACTIVE, Source.IMPORT, Source.IMPORT)
    assert ann.created_at == ann.confirmed_at == NOW
    assert ann.preferences == Preferences(cadence=Cadence.INSTANT, timezone="Europe/Paris")
    async with publisher.engine.connect() as conn:
        top = await newest_seq(conn)
        cursors = (await conn.execute(select(subscribers_table.c.article_cursor))).scalars().all()
    assert top > 0 and cursors == [top, top]

    # Not the archive, but what is published after the import.
    assert await plan(publisher.engine, Cadence.INSTANT, clock.now(), PlanOptions(max_articles=20)) == []
    (site_dir / "content" / "after-import.md").write_text(
        "---\ntitle: After the import\ndate: 2026-11-26T08:00:00Z\n---\nNews.\n", encoding="utf-8"
    )
    await publisher.intake.scan()
    [digest] = await plan(publisher.engine, Cadence.INSTANT, clock.now(), PlanOptions(max_articles=20))
    assert digest.recipients == 2 and len(digest.article_seqs) == 1


async def test_suppressed_addresses_are_skipped_counted_and_never_reactivated(publisher: Publisher) -> None:
    left = await add_subscriber(publisher.engine, "left@example.org", name="Left")
    await service.leave(publisher.engine, left.id, now=NOW)
    bounced = await add_subscriber(publisher.engine, "bounced@example.org")
    await service.leave(publisher.engine, bounced.id, now=NOW, status=Status.BOUNCED)
    erased = await add_subscriber(publisher.engine, "erased@example.org")
    await service.erase(publisher.engine, erased.id, now=NOW)
    await service.suppress(publisher.engine, "never@example.org", now=NOW)

    parsed = parse(
        "email,name\nLEFT@example.org,New name\nbounced@example.org,\nerased@example.org,\n"
        "never@example.org,\nfresh@example.org,\n"
    )
    for update_existing in (False, True):
        report = await bulk.import_rows(publisher.engine, parsed, now=NOW, update_existing=update_existing)
        assert report.suppressed == 4
        assert report.updated == 0
    assert report.created == 0 and report.existing == 1  # fresh@ was created by the first run

    left_now = await stored(publisher, "left@example.org")
    assert left_now is not None and left_now.status == Status.UNSUBSCRIBED and left_now.name == "Left"
    bounced_now = await stored(publisher, "bounced@example.org")
    assert bounced_now is not None and bounced_now.status == Status.BOUNCED
    assert await stored(publisher, "erased@example.org") is None
    assert await stored(publisher, "never@example.org") is None
    assert await subscriber_store.count(publisher.engine, status=Status.ACTIVE) == 1


async def test_existing_subscribers_are_left_alone_unless_asked_to_update(publisher: Publisher) -> None:
    await add_subscriber(publisher.engine, "ann@example.org", name="Ann", cadence=Cadence.INSTANT)
    await add_subscriber(publisher.engine, "bo@example.org", name="Bo", cadence=Cadence.DAILY)
    parsed = parse(
        "email,name,cadence,topics\n"
        "ann@example.org,Annie,,economy\n"  # only the non-empty cells change on --update
        "bo@example.org,Bo,daily,\n"  # identical: nothing to update
    )
    kept = await bulk.import_rows(publisher.engine, parsed, now=NOW)
    assert (kept.created, kept.existing, kept.updated) == (0, 2, 0)
    ann = await stored(publisher, "ann@example.org")
    assert ann is not None and ann.name == "Ann" and ann.topics == ()

    updated = await bulk.import_rows(publisher.engine, parsed, now=NOW, update_existing=True)
    assert (updated.created, updated.existing, updated.updated) == (0, 1, 1)
    ann = await stored(publisher, "ann@example.org")
    assert ann is not None
    assert (ann.name, ann.cadence, ann.topics, ann.status) == ("Annie", Cadence.INSTANT, ("economy",), Status.ACTIVE)
    assert ann.source == Source.CLI  # how they came in does not change


async def test_dry_run_counts_exactly_and_writes_nothing(publisher: Publisher) -> None:
    await add_subscriber(publisher.engine, "ann@example.org", name="Ann")
    parsed = parse("email,name\nann@example.org,Annie\nnew@example.org,New\nbad,\n")
    report = await bulk.import_rows(publisher.engine, parsed, now=NOW, update_existing=True, dry_run=True)
    assert (report.created, report.updated, report.invalid_rows) == (1, 1, 1)
    assert await stored(publisher, "new@example.org") is None
    ann = await stored(publisher, "ann@example.org")
    assert ann is not None and ann.name == "Ann"


async def test_rows_are_stored_in_batches_with_progress(publisher: Publisher) -> None:
    parsed = parse("email\n" + "".join(f"p{i}@example.org\n" for i in range(5)) + "p0@example.org\n")
    calls: list[tuple[int, int]] = []
    report = await bulk.import_rows(
        publisher.engine, parsed, now=NOW, batch_size=2, progress=lambda done, total: calls.append((done, total))
    )
    assert calls == [(2, 5), (4, 5), (5, 5)]
    assert (report.created, report.merged) == (5, 1)
    assert await subscriber_store.count(publisher.engine) == 5


async def test_a_sign_up_racing_the_batch_is_retried_as_existing(
    publisher: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_subscriber(publisher.engine, "racer@example.org")
    real_existing = subscriber_store.existing
    calls = 0

    async def first_lookup_misses(conn: object, addresses: list[str]) -> object:
        nonlocal calls
        calls += 1
        return {} if calls == 1 else await real_existing(conn, addresses)  # type: ignore[arg-type]

    monkeypatch.setattr(subscriber_store, "existing", first_lookup_misses)
    report = await bulk.import_rows(
        publisher.engine, parse("email\nnew@example.org\nracer@example.org\n"), now=NOW
    )
    assert calls == 2
    assert (report.created, report.existing) == (1, 1)
    assert await subscriber_store.count(publisher.engine) == 2


# --- export -------------------------------------------------------------------------------


async def test_an_export_re_imports_to_the_same_subscribers(
    publisher: Publisher, settings: Settings, tmp_path: Path, database: Backend
) -> None:
    await publisher.intake.scan()
    await add_subscriber(publisher.engine, "ann@example.org", name='=HYPERLINK("x"), "Ann"', cadence=Cadence.WEEKLY)
    await service.create(
        publisher.engine, "bo@example.org", name="Bo", source=Source.API, confirmed=True, now=NOW,
        prefs=Preferences(cadence=Cadence.DAILY, topics=("north-korea", "economy"), timezone="Asia/Tokyo", send_hour=7),
    )
    gone = await add_subscriber(publisher.engine, "gone@example.org")
    await service.leave(publisher.engine, gone.id, now=NOW)

    buffer = io.StringIO()
    assert await publisher.subscribers.export(buffer, fmt="csv") == 3
    exported = buffer.getvalue()
    assert exported.splitlines()[0] == ",".join(importer.EXPORT_COLUMNS)
    assert importer.EXPORT_COLUMNS[:6] == ("email", "name", "cadence", "topics", "timezone", "send_hour")
    assert ",\"'=HYPERLINK(\"\"x\"\"), \"\"Ann\"\"\"," in exported  # a spreadsheet shows it, never runs it
    assert "economy|north-korea" in exported

    other = settings.model_copy(
        update={"database": settings.database.model_copy(update={"url": database.url(tmp_path / "other")})}
    )
    target = Publisher(other)
    await target.start()
    try:
        await target.intake.scan()
        known = await service.known_topics(target.engine, other.site.topics)
        parsed = parse_csv(exported, known_topics=known, default_timezone="UTC", default_cadence="daily")
        assert parsed.errors == [] and parsed.warnings == [] and parsed.inactive == 1
        report = await bulk.import_rows(target.engine, parsed, now=NOW)
        assert report.created == 2

        def essentials(subscriber: Subscriber) -> tuple[object, ...]:
            return subscriber.email, subscriber.name, subscriber.status, subscriber.preferences

        originals = [s async for page in subscriber_store.batches(publisher.engine, status=Status.ACTIVE) for s in page]
        copies = [s async for page in subscriber_store.batches(target.engine) for s in page]
        assert [essentials(s) for s in copies] == [essentials(s) for s in originals]
    finally:
        await target.close()


async def test_jsonl_export_is_one_subscriber_dict_a_line_filtered_by_status(publisher: Publisher) -> None:
    ann = await add_subscriber(publisher.engine, "ann@example.org", name="Ann")
    gone = await add_subscriber(publisher.engine, "gone@example.org")
    await service.leave(publisher.engine, gone.id, now=NOW)
    buffer = io.StringIO()
    assert await publisher.subscribers.export(buffer, fmt="jsonl", status=Status.ACTIVE) == 1
    assert [json.loads(line) for line in buffer.getvalue().splitlines()] == [ann.to_dict()]


@pytest.mark.parametrize(
    "name",
    [
        "Mo;=cmd|' /C calc'!A0;",
        'Al,+SUM(1)|"x"',
        'Bo;"=cmd|x"!A0',
        "Cy;'=already quoted",
        "'@start",
        "-1;@2,+3",
    ],
)
async def test_an_export_runs_no_formula_in_any_spreadsheet_locale_and_re_imports_the_name(
    publisher: Publisher, name: str
) -> None:
    await add_subscriber(publisher.engine, "ann@example.org", name=name)
    buffer = io.StringIO()
    await publisher.subscribers.export(buffer, fmt="csv")
    exported = buffer.getvalue()

    # A spreadsheet opens the file with its locale's separator, whatever the file uses.
    for separator in (",", ";", "\t"):
        for row in csv.reader(io.StringIO(exported), delimiter=separator):
            for cell in row:
                bare = cell.lstrip('"')
                assert not bare.startswith(("=", "+", "-", "@", "\t", "\r")), (separator, cell)

    parsed = parse_csv(exported, known_topics=KNOWN, default_timezone="UTC", default_cadence="daily")
    assert parsed.errors == []
    assert [row.name for row in parsed.rows] == [name]
