"""Subscribers in and out as files (admins only: it is personal data): the CSV import with its
line-by-line report, and the streamed export, the same importer and exporter as
``publisher subscribers import`` and ``export``.

The upload is a multipart form read by the gate with its own cap (the other forms' 16 KB
would refuse any real file); its form token is checked like every other form's.  An import
is stored a transaction per thousand rows, so its audit row follows it with the counts (no
address: a line's reason may quote one, the audit log must not).  An export's audit row is
written before the first byte goes out.
"""

from __future__ import annotations

from aiohttp import web

from publisher import urls
from publisher.admin.model import Action, Role, Session
from publisher.web import forms
from publisher.web.admin import gate
from publisher.web.admin.subscribers import choice
from publisher.web.api.imports import MAX_IMPORT_BODY
from publisher.web.downloads import stream_download
from publisher.web.keys import PUBLISHER
from subscribers.importer import ImportFileError
from subscribers.model import Status

FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
_FORM_ROOM = 64 * 1024  # the form's other fields and the multipart framing, beside the file


async def _import_page(request: web.Request, session: Session, **context: object) -> web.Response:
    shared = {"page_title": "Import subscribers", "limit_mb": MAX_IMPORT_BODY // (1024 * 1024), "report": None,
              "error": "", "warnings": [], "dry_run": False}
    status = 422 if context.get("error") else 200
    return gate.page(request, "subscribers_import.html", shared | context, session, status=status)


@gate.guarded(Role.ADMIN)
async def import_form(request: web.Request, session: Session) -> web.StreamResponse:
    return await _import_page(request, session)


@gate.guarded(Role.ADMIN, form_bytes=MAX_IMPORT_BODY + _FORM_ROOM)
async def import_file(request: web.Request, session: Session) -> web.StreamResponse:
    """Check and store the uploaded CSV; the page then lists every rejected line and why."""
    publisher = request.app[PUBLISHER]
    form = request[gate.FORM]
    upload = form.get("file")
    if not isinstance(upload, web.FileField):
        return await _import_page(request, session, error="Choose a CSV file to import.")
    data = upload.file.read()
    dry_run = forms.text(form, "dry_run", 10) == "yes"
    update = forms.text(form, "update", 10) == "yes"
    try:
        parsed = await publisher.subscribers.parse_csv(data)
    except ImportFileError as exc:
        return await _import_page(request, session, error=f"Line {exc.line}: {exc}")
    report = await publisher.subscribers.import_rows(parsed, update_existing=update, dry_run=dry_run)
    if not dry_run:
        detail = {label: n for label, n in report.lines() if n}
        await publisher.operators.record(gate.actor(request, session), Action.SUBSCRIBER_IMPORT, "CSV", detail)
    return await _import_page(request, session, report=report, warnings=parsed.warnings, dry_run=dry_run)


@gate.guarded(Role.ADMIN)
async def export(request: web.Request, session: Session) -> web.StreamResponse:
    """Every subscriber (with ``status``) as a download, a page of the store at a time."""
    publisher = request.app[PUBLISHER]
    status = choice(request.query, "status", Status)
    fmt = request.query.get("format", "csv")
    if fmt not in FORMATS:
        raise web.HTTPBadRequest(reason="format must be csv or jsonl")
    detail = {"format": fmt, "status": status.value if status else "any"}
    await publisher.operators.record(gate.actor(request, session), Action.SUBSCRIBER_EXPORT, "", detail)
    name = f"subscribers{'-' + status.value if status else ''}.{fmt}"  # from checked values only
    response = web.StreamResponse(headers={
        "Content-Type": FORMATS[fmt], "Content-Disposition": f'attachment; filename="{name}"', **gate.NO_STORE,
    })
    chunks = publisher.subscribers.export_chunks(fmt="jsonl" if fmt == "jsonl" else "csv", status=status)
    return await stream_download(request, response, (text async for text, _rows in chunks))


def add_transfer_routes(app: web.Application) -> None:
    app.router.add_get(urls.ADMIN_SUBSCRIBERS_IMPORT.path, import_form)
    app.router.add_post(urls.ADMIN_SUBSCRIBERS_IMPORT.path, import_file)
    app.router.add_get(urls.ADMIN_SUBSCRIBERS_EXPORT.path, export)
