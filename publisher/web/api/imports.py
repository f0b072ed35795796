"""``POST /api/subscribers/import``: a bulk import, as a JSON list or a CSV file.

Both shapes become :class:`subscribers.importer.ParsedImport` here (the JSON items
checked as ``POST /api/subscribers`` checks one), and the subscriber service stores
them.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from publisher import urls
from publisher.web.api.http import (
    ApiError,
    flatten,
    invalid,
    json_object,
    parse_json,
    problem,
    publisher_of,
    read_body,
)
from publisher.web.api.subscribers import check_new
from subscribers import importer
from subscribers.model import Preferences
from subscribers.validation import PREFERENCE_FIELDS, SubscriberError

MAX_IMPORT_BODY = 10 * 1024 * 1024  # roughly 100,000 subscribers per import request
CSV = "text/csv"
IMPORT_TYPES = ("application/json", CSV)
_GIVEN = frozenset(importer.IMPORTED)
# What an import item may hold: a new subscriber's fields, and everything an export line
# holds, so that an export imports back.  ``status`` is honoured (only active ones come
# in); the rest is information about the old record and is ignored.  No ``confirmed``:
# an import is the operator's word, always confirmed.
EXPORT_INFORMATION = frozenset({"id", "source", "created_at", "confirmed_at", "confirmed_source", "unsubscribed_at"})
IMPORT_FIELDS = frozenset({"email", "name", *PREFERENCE_FIELDS, "status"}) | EXPORT_INFORMATION


async def import_subscribers(request: web.Request) -> web.Response:
    """A JSON list of subscriber objects, or a CSV file as ``publisher subscribers import`` reads it.

    Both are stored by :func:`subscribers.bulk.import_rows`, a transaction per
    thousand rows: new addresses become active (the operator vouches; source
    ``import``), known ones are left as they are, suppressed ones are skipped and
    counted, and a bad item is reported while the others go on.  Reading and checking
    100,000 items takes seconds of CPU, so it runs in a thread: the feeds and the
    sign-up pages keep answering meanwhile.
    """
    subscribers = publisher_of(request).subscribers
    if request.content_type not in IMPORT_TYPES:
        raise ApiError(415, "send a JSON list ('Content-Type: application/json') or a CSV file ('Content-Type: text/csv')")
    raw = await read_body(request, MAX_IMPORT_BODY)
    if request.content_type == CSV:
        try:
            parsed = await subscribers.parse_csv(raw)
        except importer.ImportFileError as exc:
            raise ApiError(422, str(exc), [SubscriberError(str(exc), "")], extra={"line": exc.line}) from None
        item_problems: list[dict[str, object]] = []
    else:
        known = await subscribers.known_topics()
        parsed, item_problems = await asyncio.to_thread(
            parse_json_import, raw, base=subscribers.defaults(), known=known
        )
    report = await subscribers.import_rows(parsed)
    return web.json_response({
        "created": report.created,
        "existing": report.existing,
        "suppressed": report.suppressed,
        "merged": report.merged,
        "inactive": report.inactive,
        "invalid": item_problems + [{"line": e.line, "field": e.field, "message": e.reason} for e in report.invalid],
        "warnings": parsed.warnings,
    })


def parse_json_import(
    raw: bytes, *, base: Preferences, known: list[str]
) -> tuple[importer.ParsedImport, list[dict[str, object]]]:
    """The valid items as importer rows (one per address), and every problem by the item's index.

    The same rules as :func:`subscribers.importer.parse_csv`: two items for one
    address are merged, the later one's fields winning (stored separately they would
    add the address twice), and an exported record whose status is not ``active``
    is counted as inactive, not imported.
    """
    items = parse_json(raw)
    if not isinstance(items, list):
        raise invalid([SubscriberError("expected a JSON list of subscriber objects", "")])
    parsed = importer.ParsedImport(records=len(items))
    problems: list[dict[str, object]] = []
    rows: list[importer.ImportRow] = []
    for index, item in enumerate(items):
        try:
            new = check_new(item, IMPORT_FIELDS, base=base, known=known)
        except SubscriberError as exc:
            problems.extend({"index": index, **problem(p)} for p in flatten(exc))
            continue
        given = _GIVEN.intersection(json_object(item)) | ({"status"} if new.status else set())
        rows.append(importer.ImportRow(index, new.email, new.name, new.prefs, new.status, frozenset(given)))
    parsed.add_rows(rows)
    return parsed, problems


def add_import_routes(api: web.Application) -> None:
    api.router.add_post(urls.API_IMPORT.path, import_subscribers)
