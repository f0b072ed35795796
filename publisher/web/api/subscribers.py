"""``/api/subscribers``: list, read, add, change, erase, export.

Every rule about subscribers (who may be added, what leaving or erasing does) is
:class:`subscribers.service.SubscriberService`'s; this module only turns HTTP and
JSON into calls to it and its answers and errors back into JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import hdrs, web

from publisher import urls
from publisher.web.api.http import (
    DEFAULT_LIMIT,
    ApiError,
    check_count,
    check_query,
    check_status,
    collect,
    invalid,
    json_body,
    json_object,
    publisher_of,
    unknown_fields,
)
from publisher.web.downloads import stream_download
from subscribers import service
from subscribers.store import PAGE_LIMIT
from subscribers.model import Preferences, Source, Status, Subscriber
from subscribers.service import SubscriberService
from subscribers.validation import (
    PREFERENCE_FIELDS,
    InvalidFields,
    SubscriberError,
    check_name,
    check_preferences,
    check_search,
    normalize_email,
    require_text,
)


CREATE_FIELDS = frozenset({"email", "name", *PREFERENCE_FIELDS, "confirmed"})
UPDATE_FIELDS = frozenset({"name", *PREFERENCE_FIELDS, "status"})
LIST_PARAMS = frozenset({"q", "status", "after", "limit"})
EXPORT_PARAMS = frozenset({"status"})


def subscribers_of(request: web.Request) -> SubscriberService:
    return publisher_of(request).subscribers


def subscriber_id(request: web.Request) -> int:
    return int(request.match_info["id"])


async def topics_for(subscribers: SubscriberService, body: object) -> list[str]:
    """What subscribers may choose, queried only when the body names topics at all."""
    if isinstance(body, dict) and "topics" in body:
        return await subscribers.known_topics()
    return []


@dataclass(frozen=True, slots=True)
class NewSubscriber:
    email: str
    name: str
    prefs: Preferences
    confirmed: bool
    status: Status | None  # import only: the status an exported record had


def check_new(body: object, allowed: frozenset[str], *, base: Preferences, known: Iterable[str]) -> NewSubscriber:
    """A JSON object describing a new subscriber, every field checked; InvalidFields lists all problems."""
    fields = json_object(body)
    problems = unknown_fields(fields, allowed)
    email = collect(problems, lambda: normalize_email(require_text(fields.get("email", ""), "email")))
    name = collect(problems, lambda: check_name(require_text(fields.get("name", ""), "name")))
    prefs = collect(problems, lambda: check_preferences(fields, base=base, known_topics=known))
    confirmed = fields.get("confirmed", False)
    if not isinstance(confirmed, bool):
        problems.append(SubscriberError("confirmed must be true or false", "confirmed"))
    status = None
    if "status" in allowed and fields.get("status") is not None:
        status = collect(problems, lambda: check_status(require_text(fields["status"], "status")))
    if problems:
        raise InvalidFields(problems)
    assert email is not None and name is not None and prefs is not None and isinstance(confirmed, bool)
    return NewSubscriber(email, name, prefs, confirmed, status)


def location(request: web.Request, subscriber: Subscriber) -> str:
    return str(request.app.router[urls.API_SUBSCRIBER_NAME].url_for(id=str(subscriber.id)))


async def list_subscribers(request: web.Request) -> web.Response:
    """One keyset page: pass ``next_after`` back as ``after`` until it is null."""
    query = request.query
    problems = check_query(query, LIST_PARAMS)
    text = collect(problems, lambda: check_search(query.get("q", "")))
    status = collect(problems, lambda: check_status(query["status"])) if query.get("status") else None
    after = collect(problems, lambda: check_count(query.get("after", "0"), "after", 0, 2**63 - 1))
    limit = collect(
        problems,
        lambda: check_count(query.get("limit", str(DEFAULT_LIMIT)), "limit", 1, PAGE_LIMIT),
    )
    if problems or text is None or after is None or limit is None:
        raise invalid(problems)
    page = await subscribers_of(request).page(query=text, status=status, after=after, limit=limit)
    return web.json_response({
        "subscribers": [s.to_dict() for s in page.subscribers],
        "next_after": page.next_after,
        "total": page.total,
    })


async def get_subscriber(request: web.Request) -> web.Response:
    found = await subscribers_of(request).get(subscriber_id(request))
    if found is None:
        raise ApiError(404, "no such subscriber")
    return web.json_response(found.to_dict())


def conflict(exc: service.Suppressed | service.AlreadySubscribed) -> ApiError:
    """409 for both: the request is fine, the address's current state refuses it."""
    if isinstance(exc, service.Suppressed):
        return ApiError(409, str(exc), [exc], extra={"code": "suppressed", "reason": exc.reason})
    existing = exc.subscriber
    return ApiError(
        409, str(exc), [exc],
        extra={"code": "already_subscribed", "id": existing.id, "subscriber_status": str(existing.status)},
    )


async def create_subscriber(request: web.Request) -> web.Response:
    """201 with the new subscriber; pending ones are sent the double opt-in email."""
    subscribers = subscribers_of(request)
    body = await json_body(request)
    new = check_new(body, CREATE_FIELDS, base=subscribers.defaults(), known=await topics_for(subscribers, body))
    try:
        created = await subscribers.create(
            new.email, name=new.name, prefs=new.prefs, source=Source.API, confirmed=new.confirmed
        )
    except (service.Suppressed, service.AlreadySubscribed) as exc:
        raise conflict(exc) from None
    return web.json_response(created.to_dict(), status=201, headers={hdrs.LOCATION: location(request, created)})


def check_leaving(raw: object) -> bool:
    """The only status an operator may set: nobody is (re)activated without their own click."""
    if raw != Status.UNSUBSCRIBED.value:
        raise SubscriberError(
            f"status can only be set to {Status.UNSUBSCRIBED.value!r}; "
            "a subscriber becomes active only by confirming their address", "status",
        )
    return True


async def update_subscriber(request: web.Request) -> web.Response:
    """Change name and preferences; ``"status": "unsubscribed"`` makes them leave (suppressed)."""
    subscribers = subscribers_of(request)
    sid = subscriber_id(request)
    body = await json_body(request)
    current = await subscribers.get(sid)
    if current is None:
        raise ApiError(404, "no such subscriber")
    fields = json_object(body)
    known = await topics_for(subscribers, body)
    problems = unknown_fields(fields, UPDATE_FIELDS)
    name = collect(problems, lambda: check_name(require_text(fields["name"], "name"))) if "name" in fields else None
    prefs = collect(problems, lambda: check_preferences(fields, base=current.preferences, known_topics=known))
    leaving = "status" in fields and collect(problems, lambda: check_leaving(fields["status"]))
    if problems:
        raise invalid(problems)
    changes_prefs = any(f in fields for f in PREFERENCE_FIELDS)
    updated = await subscribers.update(sid, name=name, prefs=prefs if changes_prefs else None)
    if updated is not None and leaving:
        updated = await subscribers.leave(sid)
    if updated is None:  # erased while we were checking
        raise ApiError(404, "no such subscriber")
    return web.json_response(updated.to_dict())


async def delete_subscriber(request: web.Request) -> web.Response:
    """Erase the personal data; the address's hash stays suppressed (see service.erase)."""
    if not await subscribers_of(request).erase(subscriber_id(request)):
        raise ApiError(404, "no such subscriber")
    return web.Response(status=204)


async def export_subscribers(request: web.Request) -> web.StreamResponse:
    """Every subscriber as JSON Lines, streamed a batch at a time (memory stays flat).

    A failure half-way aborts the connection (:func:`publisher.web.downloads.stream_download`).
    """
    problems = check_query(request.query, EXPORT_PARAMS)
    status = collect(problems, lambda: check_status(request.query["status"])) if request.query.get("status") else None
    if problems:
        raise invalid(problems)
    response = web.StreamResponse(headers={hdrs.CONTENT_DISPOSITION: 'attachment; filename="subscribers.ndjson"'})
    response.content_type = "application/x-ndjson"
    response.charset = "utf-8"
    chunks = subscribers_of(request).export_chunks(fmt="jsonl", status=status)
    return await stream_download(request, response, (text async for text, _rows in chunks))


def add_subscriber_routes(api: web.Application) -> None:
    api.router.add_get(urls.API_SUBSCRIBERS.path, list_subscribers)
    api.router.add_post(urls.API_SUBSCRIBERS.path, create_subscriber)
    api.router.add_get(urls.API_EXPORT.path, export_subscribers)
    api.router.add_get(urls.API_SUBSCRIBER.path, get_subscriber, name=urls.API_SUBSCRIBER_NAME)
    api.router.add_patch(urls.API_SUBSCRIBER.path, update_subscriber)
    api.router.add_delete(urls.API_SUBSCRIBER.path, delete_subscriber)
