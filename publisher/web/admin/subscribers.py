"""The subscribers pages: the list (search and filters), a subscriber's record and history,
and the admins' changes (preferences, suppress, erase), each the service the CLI calls.

Every read is by index, in time independent of the list's size: the list is a keyset page
of ``ix_subscribers_listing`` or of the address index (a search is an address prefix,
never a ``LIKE '%…%'`` scan), the totals come from the kept counts, a record's history is
one range of the ledger's subscriber index.  Audit rows name a subscriber by id only, so
erasing them leaves their address nowhere, the audit log included.  The CSV import and
export are in :mod:`publisher.web.admin.transfer`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web

from publisher import clock, urls
from publisher.admin.model import Action, Role, Session
from publisher.web import forms
from publisher.web.admin import gate
from publisher.web.keys import PUBLISHER
from subscribers.model import WEEKDAYS, Cadence, Preferences, Status, Subscriber
from subscribers.validation import (
    SubscriberError,
    check_cadence,
    check_search,
    check_send_hour,
    check_send_weekday,
    check_topics,
)

PAGE = 50  # subscribers per page of the list
E = TypeVar("E", bound=StrEnum)
# What a finished change says on the page it leads back to (?done=…): fixed words, never the request's.
DONE = {
    "preferences": "The preferences were saved.",
    "suppressed": "The address was suppressed: it gets no more mail, and no import adds it back.",
    "erased": "The subscriber was erased: their record and delivery history are gone; "
              "only a hash of the address stays, on the suppression list.",
}


def choice(query: Any, name: str, kind: type[E]) -> E | None:
    """The query parameter ``name`` as one of ``kind``'s values, None when empty (400 otherwise)."""
    raw = query.get(name, "")
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise web.HTTPBadRequest(reason=f"{name} must be one of {', '.join(kind)}") from None


def _after(query: Any) -> int | None:
    raw = query.get("after", "")
    if raw and not (raw.isdigit() and len(raw) <= 18):
        raise web.HTTPBadRequest(reason="after must be a subscriber number")
    return int(raw) if raw else None


def _prefix(query: Any) -> str:
    """``q``: the start of an address (or a whole one), compared as addresses are stored."""
    try:
        return check_search(query.get("q", "").strip()).lower()
    except SubscriberError as exc:
        raise web.HTTPBadRequest(reason=str(exc)) from None


@gate.guarded(Role.VIEWER)
async def subscribers_page(request: web.Request, session: Session) -> web.StreamResponse:
    """Search (``q``: addresses starting with it), filter (``status``, ``cadence``), 50 a page."""
    from publisher.admin.figures import subscribers as subscriber_figures

    publisher = request.app[PUBLISHER]
    prefix, after = _prefix(request.query), _after(request.query)
    status, cadence = choice(request.query, "status", Status), choice(request.query, "cadence", Cadence)
    rows = await publisher.subscribers.listing(prefix=prefix, status=status, cadence=cadence, after=after, limit=PAGE + 1)
    filters = {"q": prefix, "status": status or "", "cadence": cadence or ""}
    here = urls.ADMIN_SUBSCRIBERS.under(gate.base(request))
    shown = {key: value for key, value in filters.items() if value}
    context = {
        "page_title": "Subscribers", "filters": filters, "statuses": list(Status), "cadences": list(Cadence),
        "subscribers": rows[:PAGE], "paged": after is not None,
        "first": here + ("?" + urlencode(shown) if shown else ""),
        "next": here + "?" + urlencode(shown | {"after": rows[PAGE - 1].id}) if len(rows) > PAGE else None,
        "totals": (await subscriber_figures(publisher.engine, clock.now(), days=1)).by_status,
        "done": DONE.get(request.query.get("done", ""), ""),
        "admin": session.operator.role.allows(Role.ADMIN),
    }
    return gate.page(request, "subscribers.html", context, session)


async def _subscriber(request: web.Request) -> Subscriber:
    found = await request.app[PUBLISHER].subscribers.get(int(request.match_info["subscriber_id"]))
    if found is None:
        raise web.HTTPNotFound(reason="No such subscriber (erased, or never was)")
    return found


def _events(subscriber: Subscriber) -> list[tuple[Any, str]]:
    """The record's own dates as a history: sign-up, confirmation, leaving, oldest first."""
    events = [(subscriber.created_at, f"Signed up (by {subscriber.source})")]
    if subscriber.confirmed_at is not None:
        how = f" (by {subscriber.confirmed_source})" if subscriber.confirmed_source else ""
        events.append((subscriber.confirmed_at, f"Confirmed{how}"))
    if subscriber.unsubscribed_at is not None:
        events.append((subscriber.unsubscribed_at, f"Left: {subscriber.status}"))
    return events


async def _record(
    request: web.Request, session: Session, *, errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None, status: int = 200,
) -> web.Response:
    from publisher.delivery.history import HISTORY, received

    publisher = request.app[PUBLISHER]
    subscriber = await _subscriber(request)
    prefs = subscriber.preferences
    admin = session.operator.role.allows(Role.ADMIN)
    context = {
        "page_title": f"Subscriber #{subscriber.id}", "subscriber": subscriber,
        "suppressed": await publisher.subscribers.suppression(subscriber.email),
        "events": _events(subscriber), "received": await received(publisher.engine, subscriber.id),
        "history_limit": HISTORY, "admin": admin,
        "topics": await publisher.subscribers.known_topics() if admin else [], "cadences": list(Cadence),
        "weekdays": WEEKDAYS,
        "values": values or {
            "cadence": prefs.cadence.value, "topics": list(prefs.topics),
            "send_hour": "" if prefs.send_hour is None else str(prefs.send_hour), "send_weekday": prefs.send_weekday or "",
        },
        "errors": errors or {}, "done": DONE.get(request.query.get("done", ""), ""),
    }
    return gate.page(request, "subscriber.html", context, session, status=status)


@gate.guarded(Role.VIEWER)
async def subscriber_page(request: web.Request, session: Session) -> web.StreamResponse:
    return await _record(request, session)


def _target(subscriber: Subscriber) -> str:
    """An audit row's target: the id, never the address (it must not outlive an erasure)."""
    return f"subscriber #{subscriber.id}"


def _back(request: web.Request, subscriber: Subscriber, done: str) -> web.Response:
    return gate.redirect(
        urls.ADMIN_SUBSCRIBER.under(gate.base(request), subscriber_id=str(subscriber.id)) + f"?done={done}"
    )


def _checked_preferences(form: forms.Form, known: list[str], current: Preferences) -> tuple[dict[str, Any], Preferences | dict[str, str]]:
    """The form's preferences, or the problems by field."""
    values: dict[str, Any] = {
        "cadence": forms.text(form, "cadence", 20), "topics": forms.texts(form, "topics"),
        "send_hour": forms.text(form, "send_hour", 10), "send_weekday": forms.text(form, "send_weekday", 10),
    }
    checks = {"cadence": check_cadence, "topics": lambda t: check_topics(t, known),
              "send_hour": check_send_hour, "send_weekday": check_send_weekday}
    checked: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field, check in checks.items():
        try:
            checked[field] = check(values[field])
        except SubscriberError as exc:
            errors[field] = str(exc)
    if errors:
        return values, errors
    return values, Preferences(timezone=current.timezone, **checked)


@gate.guarded(Role.ADMIN)
async def change_preferences(request: web.Request, session: Session) -> web.StreamResponse:
    """Cadence, topics and delivery time, as the subscriber's own preferences page sets them."""
    publisher = request.app[PUBLISHER]
    subscriber = await _subscriber(request)
    known = await publisher.subscribers.known_topics()
    values, checked = _checked_preferences(request[gate.FORM], known, subscriber.preferences)
    if not isinstance(checked, Preferences):
        return await _record(request, session, errors=checked, values=values, status=422)
    detail: dict[str, object] = {"cadence": checked.cadence.value, "topics": list(checked.topics),
                                 "send_hour": checked.send_hour, "send_weekday": checked.send_weekday}
    async with publisher.operators.audited(gate.actor(request, session), Action.SUBSCRIBER_PREFERENCES,
                                           _target(subscriber), detail) as conn:
        await publisher.subscribers.update(subscriber.id, prefs=checked, within=conn)
    return _back(request, subscriber, "preferences")


def _confirmed(request: web.Request, box: str) -> bool:
    return forms.text(request[gate.FORM], box, 10) == "yes"


@gate.guarded(Role.ADMIN)
async def suppress(request: web.Request, session: Session) -> web.StreamResponse:
    """Never mail the address again (unsubscribing it), once the box is ticked: ``subscribers suppress``."""
    publisher = request.app[PUBLISHER]
    subscriber = await _subscriber(request)
    if not _confirmed(request, "confirm"):
        return await _record(request, session, errors={"suppress": "Tick the box to confirm the suppression."}, status=422)
    async with publisher.operators.audited(gate.actor(request, session), Action.SUBSCRIBER_SUPPRESS, _target(subscriber)) as conn:
        await publisher.subscribers.suppress(subscriber.email, reason="manual", within=conn)
    return _back(request, subscriber, "suppressed")


@gate.guarded(Role.ADMIN)
async def erase(request: web.Request, session: Session) -> web.StreamResponse:
    """GDPR erasure, as ``subscribers remove``: the record, the ledger rows and the address in
    webhook events go; a hash stays on the suppression list.  Needs the box ticked."""
    publisher = request.app[PUBLISHER]
    subscriber = await _subscriber(request)
    if not _confirmed(request, "erase"):
        return await _record(request, session, errors={"erase": "Tick the box to confirm the erasure."}, status=422)
    async with publisher.operators.audited(gate.actor(request, session), Action.SUBSCRIBER_ERASE, _target(subscriber)) as conn:
        if not await publisher.subscribers.erase(subscriber.id, within=conn):
            raise web.HTTPNotFound(reason="No such subscriber (erased meanwhile)")  # rolls the audit row back
    return gate.redirect(urls.ADMIN_SUBSCRIBERS.under(gate.base(request)) + "?done=erased")


def add_subscriber_routes(app: web.Application) -> None:
    app.router.add_get(urls.ADMIN_SUBSCRIBERS.path, subscribers_page)
    app.router.add_get(urls.ADMIN_SUBSCRIBER.path, subscriber_page)
    app.router.add_post(urls.ADMIN_SUBSCRIBER_PREFERENCES.path, change_preferences)
    app.router.add_post(urls.ADMIN_SUBSCRIBER_SUPPRESS.path, suppress)
    app.router.add_post(urls.ADMIN_SUBSCRIBER_ERASE.path, erase)
