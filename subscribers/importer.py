"""Subscriber CSV in: a pure parse (text in, rows and errors out), and the CSV format's cell rules.

Pure so that every edge case of a spreadsheet export is tested without a database;
:mod:`subscribers.bulk` stores what it returns and :mod:`subscribers.export` writes
the files it reads back (the columns and the formula defusing below are shared by both
directions, so an export re-imports as it was).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from subscribers.model import Cadence, Preferences, Status
from subscribers.validation import (
    PREFERENCE_FIELDS,
    InvalidFields,
    SubscriberError,
    check_name,
    check_preferences,
    check_status,
    normalize_email,
)

# Columns an import reads; ``email`` is the only required one.
IMPORTED = ("email", "name", *PREFERENCE_FIELDS)
# Columns an export adds: ``status`` is honoured on import (only active rows come in),
# the others are information and are ignored without a warning, so an export re-imports.
EXPORT_COLUMNS = (*IMPORTED, "status", "source", "created_at", "confirmed_at")
_INFORMATIONAL = frozenset({"id", "source", "created_at", "confirmed_at", "confirmed_source", "unsubscribed_at"})
_DELIMITERS = ",;\t"  # comma first: it wins a tie (a header with a single column)
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP's CSV
# injection list).  Names come from a public sign-up form, and a spreadsheet splits a
# line on its locale's separator whatever the file uses (a quote mid-cell is then just
# a character), so the export puts an apostrophe wherever a cell could start: at the
# start of a field and after each separator, before any quotes and apostrophes that
# precede a formula start.  An apostrophe is added even where one already is, so the
# importer removes exactly one and every name comes back as it was.
_CELL_START = "(^|[,;\t])"
_FORMULA_AHEAD = r"""(?=['"]*[-=+@\t\r])"""
_DEFUSABLE = re.compile(_CELL_START + _FORMULA_AHEAD)
_DEFUSED = re.compile(_CELL_START + "'" + _FORMULA_AHEAD)

class ImportFileError(ValueError):
    """The file as a whole can't be read (no header, no ``email`` column, not UTF-8)."""

    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem with one row: the physical line it starts on, the column, the reason."""

    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.line}: {self.field}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ImportRow:
    """A valid row: the site's defaults where a cell was empty, and which cells were not.

    ``given`` matters twice: when rows for one address are merged, a later empty cell
    does not wipe an earlier value; and ``--update`` changes only what the file says.
    """

    line: int
    email: str
    name: str
    preferences: Preferences
    status: Status | None  # None: no status column, or an empty cell
    given: frozenset[str]

    def applied_to(self, name: str, prefs: Preferences) -> tuple[str, Preferences]:
        """``name`` and ``prefs`` with this row's non-empty cells written over them."""
        changes = {f: getattr(self.preferences, f) for f in PREFERENCE_FIELDS if f in self.given}
        return (self.name if "name" in self.given else name), dataclasses.replace(prefs, **changes)

    def merged_with(self, later: ImportRow) -> ImportRow:
        """One row for the address: ``later``'s non-empty cells win, the first line is kept."""
        name, prefs = later.applied_to(self.name, self.preferences)
        status = later.status if "status" in later.given else self.status
        return ImportRow(self.line, self.email, name, prefs, status, self.given | later.given)


@dataclass
class ParsedImport:
    """What a file holds: one row per address to import, and every problem, by line."""

    rows: list[ImportRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    records: int = 0  # non-empty data rows read
    merged: int = 0  # rows folded into an earlier row for the same address
    inactive: int = 0  # addresses whose status column says pending / unsubscribed / …

    def add_rows(self, rows: Iterable[ImportRow]) -> None:
        """Fold ``rows`` into one per address and keep the active ones (call once per import).

        Any reader of subscriber records (this CSV parser, the API's JSON import) goes
        through here, so duplicates and exported statuses are treated the same way.
        """
        by_address: dict[str, ImportRow] = {}
        for row in rows:
            earlier = by_address.get(row.email)
            if earlier is not None:
                self.merged += 1
                row = earlier.merged_with(row)
            by_address[row.email] = row
        for row in by_address.values():
            if row.status in (None, Status.ACTIVE):
                self.rows.append(row)
            else:
                self.inactive += 1


# --- parsing --------------------------------------------------------------------------


def parse_csv(
    source: str | bytes | IO[Any],
    *,
    known_topics: Iterable[str],
    default_timezone: str,
    default_cadence: Cadence | str,
) -> ParsedImport:
    """Read a subscriber CSV: header row naming ``email`` (and any of the other columns).

    Accepts what spreadsheets write: a UTF-8 byte-order mark, comma, semicolon or tab
    separators, CRLF, blank lines, quoted cells spanning lines.  Line numbers are the
    file's physical lines.  A bad row becomes a :class:`RowError` per bad cell and the
    others go on; only a file that can't be read at all raises :class:`ImportFileError`.
    """
    text = _read_text(source)
    delimiter = _delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    parsed = ParsedImport()
    records = _records(reader, parsed.errors)
    header_line, _, cells = next(records, (1, 1, []))
    header = _header(cells, header_line, delimiter, parsed.warnings)
    checker = _RowChecker(known_topics, Preferences(cadence=Cadence(default_cadence), timezone=default_timezone))
    parsed.add_rows(_valid_rows(records, checker, header, parsed))
    return parsed


def _valid_rows(
    records: Iterator[tuple[int, int, list[str]]], checker: _RowChecker, header: _Header, parsed: ParsedImport
) -> Iterator[ImportRow]:
    for line, end, cells in records:
        parsed.records += 1
        row = _parse_record(checker, header, line, end, cells, parsed.errors)
        if row is not None:
            yield row


def _read_text(source: str | bytes | IO[Any]) -> str:
    data: str | bytes = source.read() if not isinstance(source, (str, bytes)) else source
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ImportFileError('not UTF-8 text; save the file as "CSV UTF-8"', line) from None


def _delimiter(text: str) -> str:
    """The separator the header line uses most: header names never contain one."""
    header = next((line for line in io.StringIO(text, newline="") if line.strip()), "")
    return max(_DELIMITERS, key=header.count)


def _records(reader: Any, errors: list[RowError]) -> Iterator[tuple[int, int, list[str]]]:
    """``(first line, last line, cells)`` per non-blank record; unreadable ones become errors.

    The reader's ``line_num`` counts physical lines, so a quoted cell spanning lines
    does not shift the numbers of the rows after it.  After a ``csv.Error`` the
    reader resumes at the next line, so one mangled row does not end the import.
    """
    end = 0
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            errors.append(RowError(start, "row", f"unreadable CSV: {exc}"))
            cells = []
        end = reader.line_num
        if any(cell.strip() for cell in cells):
            yield start, end, cells


@dataclass(frozen=True, slots=True)
class _Header:
    columns: dict[str, int]  # the index of each column the import reads
    width: int
    delimiter: str


def _header(cells: list[str], line: int, delimiter: str, warnings: list[str]) -> _Header:
    """The header line: column names compared lower-cased and trimmed."""
    names = [name.strip().lower() for name in cells]
    if not names:
        raise ImportFileError("the file is empty; the first line must name the columns, e.g. email,name", line)
    if "email" not in names:
        found = ", ".join(repr(n) for n in names)
        raise ImportFileError(f"no 'email' column in the header line (found {found})", line)
    repeated = sorted({n for n in names if n and names.count(n) > 1})
    if repeated:
        raise ImportFileError(f"column(s) named twice in the header line: {', '.join(repeated)}", line)
    unknown = [n for n in names if n and n not in EXPORT_COLUMNS and n not in _INFORMATIONAL]
    if unknown:
        warnings.append(
            f"line {line}: ignoring unknown column(s) {', '.join(repr(n) for n in unknown)}; "
            f"the import reads {', '.join(IMPORTED)}"
        )
    columns = {name: index for index, name in enumerate(names) if name in (*IMPORTED, "status")}
    return _Header(columns, len(names), delimiter)


def _parse_record(
    checker: _RowChecker, header: _Header, line: int, end: int, cells: list[str], errors: list[RowError]
) -> ImportRow | None:
    """The row in ``cells``, or None after recording why it can't be imported."""
    if any(cell.strip() for cell in cells[header.width :]):
        shown = "a tab" if header.delimiter == "\t" else repr(header.delimiter)
        reason = (
            f"{len(cells)} cells but the header names {header.width} columns; "
            f"put quotes around values that contain {shown}"
        )
        errors.append(RowError(line, "row", reason))
        return None
    values = {name: restore(cells[i]) if i < len(cells) else "" for name, i in header.columns.items()}
    try:
        return checker.row(line, values)
    except InvalidFields as exc:
        found = [RowError(line, p.field, str(p)) for p in exc.problems]
        if end > line:  # an unclosed quote swallows the lines after it into one cell
            hint = f" (this row runs on to line {end}: is a quote left open?)"
            found[0] = dataclasses.replace(found[0], reason=found[0].reason + hint)
        errors.extend(found)
        return None


class _RowChecker:
    """Checks one row's cells with :mod:`subscribers.validation`, remembering repeats.

    A file of 100,000 rows has a handful of distinct preference combinations, and
    checking topics costs a slug per known topic, so each combination is checked once.
    """

    def __init__(self, known_topics: Iterable[str], defaults: Preferences) -> None:
        self._known = list(known_topics)
        self._defaults = defaults
        self._preferences: dict[tuple[tuple[str, str], ...], Preferences | InvalidFields] = {}

    def row(self, line: int, values: Mapping[str, str]) -> ImportRow:
        given = frozenset(name for name, raw in values.items() if raw.strip())
        problems: list[SubscriberError] = []
        email = name = ""
        prefs, status = self._defaults, None
        try:
            email = normalize_email(values.get("email", ""))
        except SubscriberError as exc:
            problems.append(exc)
        try:
            name = check_name(values.get("name", ""))
        except SubscriberError as exc:
            problems.append(exc)
        try:
            prefs = self._check_preferences({f: values[f] for f in PREFERENCE_FIELDS if f in given})
        except InvalidFields as exc:
            problems.extend(exc.problems)
        if "status" in given:
            try:
                status = check_status(values["status"])
            except SubscriberError as exc:
                problems.append(exc)
        if problems:
            raise InvalidFields(problems)
        return ImportRow(line, email, name, prefs, status, given)

    def _check_preferences(self, given: dict[str, str]) -> Preferences:
        key = tuple(sorted(given.items()))
        if key not in self._preferences:
            try:
                self._preferences[key] = check_preferences(given, base=self._defaults, known_topics=self._known)
            except InvalidFields as exc:
                self._preferences[key] = exc
        found = self._preferences[key]
        if isinstance(found, InvalidFields):
            raise found
        return found


def defuse(cell: str) -> str:
    """``cell`` with an apostrophe wherever a spreadsheet could read a formula."""
    return _DEFUSABLE.sub(r"\1'", cell)


def restore(cell: str) -> str:
    """Undo :func:`defuse`, so an exported name comes back as it was."""
    return _DEFUSED.sub(r"\1", cell)
