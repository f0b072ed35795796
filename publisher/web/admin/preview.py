"""The preview of the next digest and its test send (``publisher preview``, ``publisher send --test``).

The page asks for a cadence or a subscriber (GET, so a preview is a link), then shows
the copy :meth:`publisher.delivery.service.DeliveryService.next_copy` makes: the HTML
framed at desktop and phone widths, and the text part.  Making it plans, in a
transaction rolled back, the subscriber alone or a sample of the cadence's subscribers
due (what a real send would give them, with nothing left behind), so it is made only
when asked, never on a plain visit of the page.

A test send (editors and admins) goes through the configured transport, marked as a
test ("[TEST] " subject, ``X-Publisher-Test`` header), outside the ledger, and is
recorded in the audit log.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web
from markupsafe import escape

from publisher import urls
from publisher.admin.model import Action, Role, Session
from publisher.web import forms
from publisher.web.admin import frames, gate
from publisher.web.admin.sign_in import MAX_EMAIL
from publisher.web.keys import PUBLISHER
from subscribers.model import Cadence

if TYPE_CHECKING:
    from publisher.delivery.service import DigestCopy

CADENCES = tuple(Cadence)
# The copies preview pages made lately, by session and choice, for their frames to show: each
# frame would otherwise plan the sends due again.  In this process only: a frame that reaches
# another node makes its own.
KEPT_FOR = 60.0  # seconds
KEPT = 32
_recent: OrderedDict[tuple[str, str, str], tuple[float, DigestCopy]] = OrderedDict()


def _choice(values: dict[str, str]) -> tuple[Cadence | None, str | None]:
    """The cadence and subscriber asked for (either may be left out); 400 for a cadence not one."""
    cadence = values.get("cadence", "")
    if cadence and cadence not in CADENCES:
        raise web.HTTPBadRequest(reason="cadence must be instant, daily or weekly")
    subscriber = values.get("subscriber", "").strip()
    if len(subscriber) > MAX_EMAIL or not subscriber.isprintable():
        raise web.HTTPBadRequest(reason="subscriber must be an email address")
    return Cadence(cadence) if cadence else None, subscriber or None


def _asked(values: dict[str, str]) -> bool:
    return "cadence" in values or "subscriber" in values


async def _copy(
    request: web.Request, session: Session, values: dict[str, str], *, reuse: bool = False
) -> tuple[DigestCopy | None, str]:
    """The copy asked for, or None and why there is none; ``reuse``: the one this session's
    preview page made moments ago, if there is one (see :data:`KEPT_FOR`)."""
    from publisher.delivery.service import NothingToPreview
    from subscribers.validation import SubscriberError

    cadence, subscriber = _choice(values)
    key = (session.id, str(cadence or ""), subscriber or "")
    kept = _recent.get(key)
    if reuse and kept is not None and time.monotonic() - kept[0] < KEPT_FOR:
        return kept[1], ""
    try:
        copy = await request.app[PUBLISHER].delivery.next_copy(cadence, subscriber=subscriber)
    except (NothingToPreview, SubscriberError) as exc:
        return None, str(exc)
    _recent[key] = (time.monotonic(), copy)
    _recent.move_to_end(key)
    while len(_recent) > KEPT:
        _recent.popitem(last=False)
    return copy, ""


@gate.guarded(Role.VIEWER)
async def preview_page(request: web.Request, session: Session) -> web.StreamResponse:
    values = {key: request.query[key] for key in ("cadence", "subscriber") if key in request.query}
    return await _page(request, session, values, done="The test copy was sent." if "sent" in request.query else "")


async def _page(
    request: web.Request, session: Session, values: dict[str, str], *, done: str = "", error: str = "",
    to: str = "", status: int = 200,
) -> web.Response:
    copy, nothing = await _copy(request, session, values) if _asked(values) else (None, "")
    context: dict[str, Any] = {
        "page_title": "Preview the next digest", "cadences": CADENCES, "values": values, "asked": _asked(values),
        "copy": copy, "nothing": nothing, "widths": frames.WIDTHS, "done": done, "error": error,
        "to": to or session.operator.email, "query": urlencode(values), "max_email": MAX_EMAIL,
        "may_send": session.operator.role.allows(Role.EDITOR),
    }
    return frames.framing(gate.page(request, "preview.html", context, session, status=status))


@gate.guarded(Role.VIEWER)
async def preview_email(request: web.Request, session: Session) -> web.StreamResponse:
    """The HTML of the copy the query asks for (framed by the preview page); when there is
    none (nothing due now, maybe since the page was drawn), a line in the frame saying why."""
    values = {key: request.query[key] for key in ("cadence", "subscriber") if key in request.query}
    copy, nothing = await _copy(request, session, values, reuse=True)
    if copy is None:
        return frames.framed_email(f'<!DOCTYPE html><html lang="en"><title>Nothing to preview</title>'
                                   f"<p>Nothing to preview: {escape(nothing)}</p></html>")
    return frames.framed_email(copy.html)


@gate.guarded(Role.EDITOR)
async def test_send(request: web.Request, session: Session) -> web.StreamResponse:
    """Mail the copy asked for to the address typed, marked as a test; audited."""
    from publisher.delivery.service import NothingToPreview
    from publisher.mail.transport import DeliveryError
    from subscribers.validation import SubscriberError

    form = request[gate.FORM]
    values = {key: forms.text(form, key, MAX_EMAIL) for key in ("cadence", "subscriber") if key in form}
    to = forms.text(form, "to", MAX_EMAIL).strip()
    cadence, subscriber = _choice(values)
    publisher = request.app[PUBLISHER]
    try:
        copy = await publisher.delivery.send_test(to, cadence=cadence, subscriber=subscriber)
    except (NothingToPreview, SubscriberError) as exc:
        return await _page(request, session, values, error=str(exc), to=to, status=422)
    except DeliveryError as exc:
        return await _page(request, session, values, error=f"The test copy was not sent: {exc}", to=to, status=502)
    detail = {"subject": copy.subject, "cadence": str(cadence or ""), "subscriber": subscriber or ""}
    async with publisher.operators.audited(gate.actor(request, session), Action.TEST_SEND, copy.recipient, detail):
        pass  # nothing changes in the store: the row records who mailed what to whom
    query = urlencode(values | {"sent": "1"})
    return gate.redirect(urls.ADMIN_PREVIEW.under(gate.base(request)) + f"?{query}")


def add_preview_routes(app: web.Application) -> None:
    app.router.add_get(urls.ADMIN_PREVIEW.path, preview_page)
    app.router.add_post(urls.ADMIN_PREVIEW.path, test_send)
    app.router.add_get(urls.ADMIN_PREVIEW_EMAIL.path, preview_email)
