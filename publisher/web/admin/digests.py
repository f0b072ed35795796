"""The digests pages: the list, one digest's detail, its live progress, and the admins'
pause, resume and cancel.

Each read is bounded whatever the ledger's size: the list and the progress read the
counts the database keeps (``digest_counts``, through
:meth:`publisher.delivery.service.DeliveryService.states`, the service of ``publisher
digests list``); the detail adds the digest's outcomes by provider (``digest_domain_counts``)
and reads its failed rows only, reached by its index (the commonest replies, a keyset page
of its failures).  Each change is the CLI's service (``publisher resume``'s reopening,
``publisher digests cancel``), run in the transaction that writes its audit row; a refused
one (resume a finished digest) rolls back, audit row and all, and shows the page with the
reason.

The progress bar works without script (the figures at page load); the pages that show one
also load :data:`SCRIPT` (our own file, under a CSP that allows only it), which polls
:func:`progress` and updates the bar and a short ``aria-live`` status line.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from publisher import urls
from publisher.admin.model import Action, Role, Session
from publisher.delivery.ledger import DigestSummary
from publisher.delivery.model import DeliveryState, DigestState
from publisher.delivery.report import REPLY_SAMPLE
from publisher.store.aggregates import SETTLED
from publisher.web import forms
from publisher.web.admin import gate
from publisher.web.keys import PUBLISHER
from publisher.web.security import SCRIPT_PAGE_CSP

LIST_PAGE = 50  # digests per page of the list
FAILURES_PAGE = 50  # failures per page of a digest's detail
COMMONEST = 10  # replies shown
SCRIPT = resources.files(__package__).joinpath("progress.js").read_bytes()  # a few hundred bytes, read once
_DIGEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SUBSCRIBER_ID = re.compile(r"[0-9]{1,18}")
# What a finished change says on the page it leads back to (?done=…): fixed words, never the request's.
DONE = {
    "paused": "The digest is paused: no node takes its messages until it is resumed.",
    "resumed": "The digest is resumed: the nodes' delivery takes its messages again.",
    "cancelled": "The digest is cancelled: its messages not yet sent will not be sent.",
}


class Refused(Exception):
    """An action the digest's state does not allow, in words for the operator."""


def progress_of(summary: DigestSummary) -> dict[str, Any]:
    """What a progress bar shows of a digest, from its counts (the page and the JSON agree)."""
    total = sum(summary.counts.values())
    return {
        "id": summary.id, "status": summary.status.value, "pause_reason": summary.pause_reason,
        "sent": summary.counts.get(DeliveryState.SENT, 0), "total": total, "counts": summary.counts,
        "finished": summary.status == DigestState.FINISHED,
    }


def with_script(response: web.Response) -> web.Response:
    """Allow the page our own progress script (and its reads of our JSON), nothing inline."""
    response.headers["Content-Security-Policy"] = SCRIPT_PAGE_CSP
    return response


@gate.guarded(Role.VIEWER)
async def digests_page(request: web.Request, session: Session) -> web.StreamResponse:
    """The digests, newest first; ``?status=`` keeps one status, ``?before=ID`` is the page after digest ID."""
    raw_status, before = request.query.get("status", ""), request.query.get("before", "")
    try:
        status = DigestState(raw_status) if raw_status else None
    except ValueError:
        raise web.HTTPBadRequest(reason="status must be sending, paused or finished") from None
    if before and not _DIGEST_ID.fullmatch(before):
        raise web.HTTPBadRequest(reason="before must be a digest id")
    found = await request.app[PUBLISHER].delivery.states(limit=LIST_PAGE + 1, status=status, before=before or None)
    shown = found[:LIST_PAGE]
    live = any(digest.status == DigestState.SENDING for digest in shown)
    context = {
        "page_title": "Digests", "digests": shown, "statuses": list(DigestState), "status": raw_status,
        "paged": bool(before), "older": shown[-1].id if len(found) > LIST_PAGE else None,
        "ledger_states": [s.value for s in DeliveryState], "live": live,
    }
    response = gate.page(request, "digests.html", context, session)
    return with_script(response) if live else response


async def _summary(request: web.Request) -> DigestSummary:
    found = await request.app[PUBLISHER].delivery.digest_state(request.match_info["digest_id"])
    if found is None:
        raise web.HTTPNotFound(reason="No such digest")
    return found


@gate.guarded(Role.VIEWER)
async def digest_page(request: web.Request, session: Session) -> web.StreamResponse:
    return await _detail(request, session, done=DONE.get(request.query.get("done", ""), ""))


async def _detail(request: web.Request, session: Session, *, done: str = "", error: str = "",
                  status: int = 200) -> web.Response:
    """One digest: its messages by state and by provider (kept counts), its commonest replies
    and a page of its failures (``?after=SUBSCRIBER_ID``), both read from its failed rows only."""
    raw = request.query.get("after", "")
    if raw and not _SUBSCRIBER_ID.fullmatch(raw):
        raise web.HTTPBadRequest(reason="after must be a subscriber number")
    summary = await _summary(request)
    delivery = request.app[PUBLISHER].delivery
    failed = await delivery.failures(summary.id, after=int(raw or 0), limit=FAILURES_PAGE + 1)
    context = {
        "page_title": f"Digest {summary.id}", "digest": summary, "providers": await delivery.by_provider(summary.id),
        "replies": await delivery.replies(summary.id, limit=COMMONEST), "failures": failed[:FAILURES_PAGE],
        "more_failures": failed[FAILURES_PAGE - 1].subscriber_id if len(failed) > FAILURES_PAGE else None,
        "failures_paged": bool(raw), "ledger_states": [s.value for s in DeliveryState], "done": done, "error": error,
        "may_act": session.operator.role.allows(Role.ADMIN), "reply_sample": REPLY_SAMPLE, "settled": SETTLED,
    }
    response = gate.page(request, "digest.html", context, session, status=status)
    return with_script(response) if summary.status == DigestState.SENDING else response


@gate.guarded(Role.VIEWER, passive=True)
async def progress(request: web.Request, session: Session) -> web.StreamResponse:
    """``{"id", "status", "pause_reason", "sent", "total", "counts", "finished"}``: the digest's
    kept counts (a few rows by primary key), polled by every open page that shows it."""
    response = web.json_response(progress_of(await _summary(request)))
    response.headers["Cache-Control"] = "no-store"
    return response


@gate.guarded(Role.VIEWER)
async def progress_script(request: web.Request, session: Session) -> web.StreamResponse:
    return web.Response(body=SCRIPT, content_type="text/javascript", charset="utf-8",
                        headers={"Cache-Control": "private, max-age=300"})


def _done(request: web.Request, digest_id: str, what: str) -> web.Response:
    return gate.redirect(urls.ADMIN_DIGEST.under(gate.base(request), digest_id=digest_id) + f"?done={what}")


async def _steer(
    request: web.Request, session: Session, summary: DigestSummary, action: Action, detail: dict[str, object],
    change: Callable[[AsyncConnection], Awaitable[bool]], refusal: str, done: str,
) -> web.Response:
    """Make ``change`` in the transaction that writes its audit row; one the digest's state
    refuses (False) rolls both back and shows the page with ``refusal``."""
    try:
        async with request.app[PUBLISHER].operators.audited(
            gate.actor(request, session), action, summary.id, detail
        ) as conn:
            if not await change(conn):
                raise Refused(f"This digest is {summary.status}: {refusal}")
    except Refused as exc:
        return await _detail(request, session, error=str(exc), status=409)
    return _done(request, summary.id, done)


@gate.guarded(Role.ADMIN)
async def pause(request: web.Request, session: Session) -> web.StreamResponse:
    """An operator's pause: the reason names them, and every node stops taking the digest's messages."""
    summary = await _summary(request)
    reason = f"paused by {session.operator.email} from the dashboard"
    delivery = request.app[PUBLISHER].delivery
    return await _steer(request, session, summary, Action.DIGEST_PAUSE, {"reason": reason},
                        lambda conn: delivery.pause_digest(summary.id, reason, within=conn),
                        "only a digest being sent can be paused.", "paused")


@gate.guarded(Role.ADMIN)
async def resume(request: web.Request, session: Session) -> web.StreamResponse:
    """``publisher resume``'s reopening; the nodes' delivery job (not this request) sends the rest."""
    summary = await _summary(request)
    delivery = request.app[PUBLISHER].delivery
    return await _steer(request, session, summary, Action.DIGEST_RESUME, {"was": summary.pause_reason or ""},
                        lambda conn: delivery.reopen(summary.id, within=conn),
                        "only a paused digest can be resumed.", "resumed")


@gate.guarded(Role.ADMIN)
async def cancel_form(request: web.Request, session: Session) -> web.StreamResponse:
    return _cancel_page(request, session, await _summary(request))


def _cancel_page(request: web.Request, session: Session, summary: DigestSummary, *, error: str = "",
                 status: int = 200) -> web.Response:
    context = {"page_title": f"Cancel digest {summary.id}", "digest": summary, "progress": progress_of(summary),
               "error": error}
    return gate.page(request, "digest_cancel.html", context, session, status=status)


@gate.guarded(Role.ADMIN)
async def cancel(request: web.Request, session: Session) -> web.StreamResponse:
    """``publisher digests cancel``, once the operator ticked the confirmation."""
    from publisher.delivery.service import CANCELLED_BY_OPERATOR, DigestNotOpen

    summary = await _summary(request)
    if forms.text(request[gate.FORM], "confirm", 10) != "yes":
        return _cancel_page(request, session, summary, status=422,
                            error="Tick the box to confirm: a cancelled digest can't be resumed.")
    delivery = request.app[PUBLISHER].delivery
    detail: dict[str, object] = {}

    async def change(conn: AsyncConnection) -> bool:
        try:
            detail["cancelled"], detail["sent"] = await delivery.cancel_digest(
                summary.id, f"{CANCELLED_BY_OPERATOR} ({session.operator.email})", within=conn)
        except DigestNotOpen:
            return False
        return True

    return await _steer(request, session, summary, Action.DIGEST_CANCEL, detail, change,
                        "only a digest being sent or paused can be cancelled.", "cancelled")


def add_digest_routes(app: web.Application) -> None:
    app.router.add_get(urls.ADMIN_DIGESTS.path, digests_page)
    app.router.add_get(urls.ADMIN_DIGEST.path, digest_page)
    app.router.add_get(urls.ADMIN_DIGEST_PROGRESS.path, progress)
    app.router.add_post(urls.ADMIN_DIGEST_PAUSE.path, pause)
    app.router.add_post(urls.ADMIN_DIGEST_RESUME.path, resume)
    app.router.add_get(urls.ADMIN_DIGEST_CANCEL.path, cancel_form)
    app.router.add_post(urls.ADMIN_DIGEST_CANCEL.path, cancel)
    app.router.add_get(urls.ADMIN_PROGRESS_SCRIPT.path, progress_script)
