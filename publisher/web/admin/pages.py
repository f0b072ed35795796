"""The dashboard's reading pages: the overview and the audit log."""

from __future__ import annotations

from aiohttp import web

from publisher import clock
from publisher.admin.model import Role, Session
from publisher.metrics import LEDGER_STATES, MESSAGE_STATES
from publisher.delivery.model import DigestState
from publisher.web.admin import charts, digests, gate
from publisher.web.keys import PUBLISHER

AUDIT_PAGE = 50  # entries per page of the audit log


@gate.guarded(Role.VIEWER)
async def overview(request: web.Request, session: Session) -> web.StreamResponse:
    """The publication at a glance, from the counts kept as things change (:mod:`publisher.admin.figures`):
    a handful of small reads, whatever the number of subscribers and messages.  Its charts are
    images of their own (:mod:`publisher.web.admin.charts`), each beside its table."""
    from publisher.admin.figures import overview as figures

    publisher = request.app[PUBLISHER]
    shown = await figures(publisher.engine, publisher.providers, publisher.settings, clock.now())
    live = any(digest.status == DigestState.SENDING for digest in shown.queue.digests)  # progress to follow
    context = {"page_title": "Overview", "figures": shown, "states": MESSAGE_STATES, "ledger_states": LEDGER_STATES,
               "charts": charts.CHARTS, "chart_size": (charts.WIDTH, charts.HEIGHT), "live": live}
    response = gate.page(request, "overview.html", context, session)
    return digests.with_script(response) if live else response


@gate.guarded(Role.VIEWER)
async def audit(request: web.Request, session: Session) -> web.StreamResponse:
    """The audit log, newest first; ``?before=ID`` is the page after the entry ID (keyset paging:
    stable while new entries arrive, and as fast at the millionth entry as at the first)."""
    raw = request.query.get("before", "")
    if raw and not (raw.isdigit() and len(raw) <= 18):
        raise web.HTTPBadRequest(reason="before must be an entry number")
    before = int(raw) if raw else None
    entries = await request.app[PUBLISHER].operators.audit_page(AUDIT_PAGE + 1, before)
    older = entries[AUDIT_PAGE - 1].id if len(entries) > AUDIT_PAGE else None
    context = {"page_title": "Audit log", "entries": entries[:AUDIT_PAGE], "older": older, "paged": before is not None}
    return gate.page(request, "audit.html", context, session)
