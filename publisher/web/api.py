"""The operator's JSON API under ``/api/``: list, read, add, change, erase, export, import;
report bounces and complaints.

It is a sub-application so that everything under ``/api/`` shares one middleware
(the bearer token, JSON errors) and one header (``Cache-Control: no-store``: answers
carry personal data that no proxy or browser cache should keep) while the public
pages neither pay for nor see either.

The token comes from ``PUBLISHER_API_TOKEN`` and is read at each request rather
than once at start-up: it costs a dictionary lookup, keeps no copy of the secret in
the application object, and lets whatever builds the app (tests, an embedding
program) set it at any time.  No token means no API (503), never an open one.

Every rule about subscribers (who may be added, what leaving or erasing does) is
:mod:`subscribers.service`'s; this module only turns HTTP and JSON into calls to it
and its answers and errors back into JSON.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import hdrs, web
from multidict import MultiMapping

from publisher.app import Publisher, utcnow
from publisher.web.keys import PUBLISHER
from subscribers import importer, service
from subscribers import store as subscriber_store
from subscribers.model import Cadence, Preferences, Source, Status, Subscriber
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

log = logging.getLogger(__name__)

TOKEN_ENV = "PUBLISHER_API_TOKEN"
REALM = 'Bearer realm="publisher"'
MAX_JSON_BODY = 64 * 1024  # one subscriber is a few hundred bytes
MAX_IMPORT_BODY = 10 * 1024 * 1024  # roughly 100,000 subscribers per import request
DEFAULT_LIMIT = 50
# Ids are 64-bit integers in the store; 18 digits keeps every match inside that range,
# and anything else under /api/subscribers/ is a 404 from the router.
_ID = "{id:[0-9]{1,18}}"

CREATE_FIELDS = frozenset({"email", "name", *PREFERENCE_FIELDS, "confirmed"})
# What an import item may hold: a new subscriber's fields, and everything an export line
# holds, so that an export imports back.  ``status`` is honoured (only active ones come
# in); the rest is information about the old record and is ignored.  No ``confirmed``:
# an import is the operator's word, always confirmed.
EXPORT_INFORMATION = frozenset({"id", "source", "created_at", "confirmed_at", "confirmed_source", "unsubscribed_at"})
IMPORT_FIELDS = frozenset({"email", "name", *PREFERENCE_FIELDS, "status"}) | EXPORT_INFORMATION
UPDATE_FIELDS = frozenset({"name", *PREFERENCE_FIELDS, "status"})
LIST_PARAMS = frozenset({"q", "status", "after", "limit"})
EXPORT_PARAMS = frozenset({"status"})

T = TypeVar("T")


# --- errors ----------------------------------------------------------------------------


class ApiError(Exception):
    """An answer other than success; the middleware turns it into the JSON error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        problems: Iterable[SubscriberError] = (),
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = list(problems)
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def response(self) -> web.Response:
        body = {"error": self.message, **self.extra, "problems": [problem(p) for p in self.problems]}
        return web.json_response(body, status=self.status, headers=self.headers)


def problem(error: SubscriberError) -> dict[str, object]:
    """One entry of ``problems``: the field (null for the body as a whole) and what is wrong."""
    return {"field": error.field or None, "message": str(error)}


def flatten(error: SubscriberError) -> list[SubscriberError]:
    return error.problems if isinstance(error, InvalidFields) else [error]


def invalid(problems: list[SubscriberError]) -> ApiError:
    count = len(problems)
    return ApiError(422, f"{count} invalid field{'s' if count != 1 else ''}", problems)


def collect(problems: list[SubscriberError], check: Callable[[], T]) -> T | None:
    """``check()``, or None with its problems added to ``problems`` (to report them all)."""
    try:
        return check()
    except SubscriberError as exc:
        problems.extend(flatten(exc))
        return None


# --- the gate: token, errors, headers --------------------------------------------------


def authorize(request: web.Request) -> None:
    """Let the request through only with the configured bearer token.

    Compared in constant time (as bytes: ``compare_digest`` refuses non-ASCII text).
    Nothing here logs the header or the token.
    """
    expected = os.environ.get(TOKEN_ENV, "").strip()
    if not expected:
        raise ApiError(503, f"the API is disabled until {TOKEN_ENV} is set in the server's environment")
    scheme, _, sent = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    sent = sent.strip()
    if scheme.lower() != "bearer" or not sent:
        raise ApiError(
            401, "authentication required: send 'Authorization: Bearer <token>'",
            headers={hdrs.WWW_AUTHENTICATE: REALM},
        )
    if not hmac.compare_digest(sent.encode("utf-8", "surrogateescape"), expected.encode("utf-8")):
        raise ApiError(
            401, "the token is not valid", headers={hdrs.WWW_AUTHENTICATE: f'{REALM}, error="invalid_token"'}
        )


@web.middleware
async def api_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Check the token first (so unknown paths say 401, not 404), answer every error in JSON."""
    try:
        authorize(request)
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except SubscriberError as exc:  # a check inside the service that the handler did not make first
        return invalid(flatten(exc)).response()
    except web.HTTPException as exc:  # the router's own 404 and 405
        headers = {"Allow": exc.headers[hdrs.ALLOW]} if hdrs.ALLOW in exc.headers else None
        return ApiError(exc.status, exc.reason, headers=headers).response()
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return ApiError(500, "internal error; the server log has the details").response()


async def no_store(request: web.Request, response: web.StreamResponse) -> None:
    """Answers hold personal data: no cache may keep them (streamed ones included)."""
    response.headers[hdrs.CACHE_CONTROL] = "no-store"


async def warn_if_disabled(app: web.Application) -> None:
    """Say at start-up why every /api/ request will answer 503 (the token itself is never logged)."""
    if not os.environ.get(TOKEN_ENV, "").strip():
        log.warning("the operator API under /api/ is disabled: %s is not set", TOKEN_ENV)


# --- reading requests ------------------------------------------------------------------


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, refused with 413 past ``limit`` (announced or actual: chunked bodies count too)."""
    too_large = ApiError(413, f"the body is larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(raw: bytes) -> object:
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None


async def json_body(request: web.Request, limit: int = MAX_JSON_BODY) -> object:
    if request.content_type != "application/json":
        raise ApiError(415, "send the body as JSON with 'Content-Type: application/json'")
    return parse_json(await read_body(request, limit))


def json_object(body: object) -> dict[str, object]:
    """``body`` if it is an object; a SubscriberError (422, or one bad item of an import) if not."""
    if not isinstance(body, dict):
        raise SubscriberError("expected a JSON object", "")
    return body


def unknown_fields(fields: Iterable[str], allowed: frozenset[str]) -> list[SubscriberError]:
    choices = ", ".join(sorted(allowed))
    return [SubscriberError(f"unknown field; use {choices}", name) for name in fields if name not in allowed]


def check_query(query: MultiMapping[str], allowed: frozenset[str]) -> list[SubscriberError]:
    """Unknown parameters are refused: a misspelt filter must not silently list everyone."""
    return [SubscriberError("unknown parameter", name) for name in query if name not in allowed]


def check_status(raw: str) -> Status:
    try:
        return Status(raw)
    except ValueError:
        choices = ", ".join(s.value for s in Status)
        raise SubscriberError(f"unknown status {raw!r}; choose one of {choices}", "status") from None


def check_count(raw: str, field: str, low: int, high: int) -> int:
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19) or not low <= int(raw) <= high:
        raise SubscriberError(f"{field} must be a whole number from {low} to {high}", field)
    return int(raw)


def subscriber_id(request: web.Request) -> int:
    return int(request.match_info["id"])


def publisher_of(request: web.Request) -> Publisher:
    return request.config_dict[PUBLISHER]


def defaults(publisher: Publisher) -> Preferences:
    """A new subscriber's preferences before they say otherwise: the site's settings."""
    settings = publisher.settings
    return Preferences(cadence=Cadence(settings.subscribers.default_cadence), timezone=settings.digest.timezone)


async def topics_for(publisher: Publisher, body: object) -> list[str]:
    """What subscribers may choose, queried only when the body names topics at all."""
    if isinstance(body, dict) and "topics" in body:
        return await service.known_topics(publisher.engine, publisher.settings.site.offered_topics)
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
    return str(request.app.router["subscriber"].url_for(id=str(subscriber.id)))


# --- handlers --------------------------------------------------------------------------


async def list_subscribers(request: web.Request) -> web.Response:
    """One keyset page: pass ``next_after`` back as ``after`` until it is null."""
    query = request.query
    problems = check_query(query, LIST_PARAMS)
    text = collect(problems, lambda: check_search(query.get("q", "")))
    status = collect(problems, lambda: check_status(query["status"])) if query.get("status") else None
    after = collect(problems, lambda: check_count(query.get("after", "0"), "after", 0, 2**63 - 1))
    limit = collect(
        problems,
        lambda: check_count(query.get("limit", str(DEFAULT_LIMIT)), "limit", 1, subscriber_store.PAGE_LIMIT),
    )
    if problems or text is None or after is None or limit is None:
        raise invalid(problems)
    engine = publisher_of(request).engine
    page = await subscriber_store.search(engine, query=text, status=status, after=after, limit=limit)
    # Look one row ahead so that next_after is null exactly on the last page.
    more = len(page) == limit and bool(
        await subscriber_store.search(engine, query=text, status=status, after=page[-1].id, limit=1)
    )
    return web.json_response({
        "subscribers": [s.to_dict() for s in page],
        "next_after": page[-1].id if more else None,
        "total": await subscriber_store.count(engine, query=text, status=status),
    })


async def get_subscriber(request: web.Request) -> web.Response:
    async with publisher_of(request).engine.connect() as conn:
        found = await subscriber_store.get(conn, subscriber_id(request))
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
    publisher = publisher_of(request)
    body = await json_body(request)
    new = check_new(body, CREATE_FIELDS, base=defaults(publisher), known=await topics_for(publisher, body))
    try:
        created = await service.create(
            publisher.engine, new.email, name=new.name, prefs=new.prefs,
            source=Source.API, confirmed=new.confirmed, now=utcnow(),
        )
    except (service.Suppressed, service.AlreadySubscribed) as exc:
        raise conflict(exc) from None
    if not new.confirmed:
        publisher.notices.confirm_later(created)
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
    publisher = publisher_of(request)
    sid = subscriber_id(request)
    body = await json_body(request)
    async with publisher.engine.connect() as conn:
        current = await subscriber_store.get(conn, sid)
    if current is None:
        raise ApiError(404, "no such subscriber")
    fields = json_object(body)
    known = await topics_for(publisher, body)
    problems = unknown_fields(fields, UPDATE_FIELDS)
    name = collect(problems, lambda: check_name(require_text(fields["name"], "name"))) if "name" in fields else None
    prefs = collect(problems, lambda: check_preferences(fields, base=current.preferences, known_topics=known))
    leaving = "status" in fields and collect(problems, lambda: check_leaving(fields["status"]))
    if problems:
        raise invalid(problems)
    changes_prefs = any(f in fields for f in PREFERENCE_FIELDS)
    updated = await service.update_subscriber(
        publisher.engine, sid, name=name, prefs=prefs if changes_prefs else None
    )
    if updated is not None and leaving:
        updated = await service.leave(publisher.engine, sid, now=utcnow())
    if updated is None:  # erased while we were checking
        raise ApiError(404, "no such subscriber")
    return web.json_response(updated.to_dict())


async def delete_subscriber(request: web.Request) -> web.Response:
    """Erase the personal data; the address's hash stays suppressed (see service.erase)."""
    if not await service.erase(publisher_of(request).engine, subscriber_id(request), now=utcnow()):
        raise ApiError(404, "no such subscriber")
    return web.Response(status=204)


async def export_subscribers(request: web.Request) -> web.StreamResponse:
    """Every subscriber as JSON Lines, streamed a batch at a time (memory stays flat).

    A failure half-way aborts the connection instead of ending the body cleanly, so
    a client can't take a truncated export for a complete one.
    """
    problems = check_query(request.query, EXPORT_PARAMS)
    status = collect(problems, lambda: check_status(request.query["status"])) if request.query.get("status") else None
    if problems:
        raise invalid(problems)
    response = web.StreamResponse(headers={hdrs.CONTENT_DISPOSITION: 'attachment; filename="subscribers.ndjson"'})
    response.content_type = "application/x-ndjson"
    response.charset = "utf-8"
    await response.prepare(request)
    try:
        async for page in subscriber_store.batches(publisher_of(request).engine, status=status):
            lines = "".join(json.dumps(s.to_dict(), ensure_ascii=False) + "\n" for s in page)
            await response.write(lines.encode("utf-8"))
    except Exception:
        log.exception("export failed; the connection is aborted so the client sees an incomplete body")
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response


# --- bulk import -----------------------------------------------------------------------

CSV = "text/csv"
IMPORT_TYPES = ("application/json", CSV)
_GIVEN = frozenset(importer.IMPORTED)


async def import_subscribers(request: web.Request) -> web.Response:
    """A JSON list of subscriber objects, or a CSV file as ``publisher subscribers import`` reads it.

    Both are stored by :func:`subscribers.importer.import_rows`, a transaction per
    thousand rows: new addresses become active (the operator vouches; source
    ``import``), known ones are left as they are, suppressed ones are skipped and
    counted, and a bad item is reported while the others go on.  Reading and checking
    100,000 items takes seconds of CPU, so it runs in a thread: the feeds and the
    sign-up pages keep answering meanwhile.
    """
    publisher = publisher_of(request)
    if request.content_type not in IMPORT_TYPES:
        raise ApiError(415, "send a JSON list ('Content-Type: application/json') or a CSV file ('Content-Type: text/csv')")
    raw = await read_body(request, MAX_IMPORT_BODY)
    known = await service.known_topics(publisher.engine, publisher.settings.site.offered_topics)
    if request.content_type == CSV:
        parsed = await asyncio.to_thread(parse_csv_import, raw, publisher, known)
        item_problems: list[dict[str, object]] = []
    else:
        parsed, item_problems = await asyncio.to_thread(parse_json_import, raw, base=defaults(publisher), known=known)
    report = await importer.import_rows(publisher.engine, parsed, now=utcnow())
    return web.json_response({
        "created": report.created,
        "existing": report.existing,
        "suppressed": report.suppressed,
        "merged": report.merged,
        "inactive": report.inactive,
        "invalid": item_problems + [{"line": e.line, "field": e.field, "message": e.reason} for e in report.invalid],
        "warnings": parsed.warnings,
    })


def parse_csv_import(raw: bytes, publisher: Publisher, known: list[str]) -> importer.ParsedImport:
    settings = publisher.settings
    try:
        return importer.parse_csv(
            raw, known_topics=known, default_timezone=settings.digest.timezone,
            default_cadence=settings.subscribers.default_cadence,
        )
    except importer.ImportFileError as exc:
        raise ApiError(422, str(exc), [SubscriberError(str(exc), "")], extra={"line": exc.line}) from None


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


# --- bounces and complaints ------------------------------------------------------------

BOUNCE_FIELDS = frozenset({"email", "type", "reason"})
MAX_BOUNCE_BODY = 1024 * 1024  # an ESP webhook's batch: a few thousand events of ~100 bytes
MAX_BOUNCE_ITEMS = 1000
MAX_BOUNCE_REASON = 1000


@dataclass(frozen=True, slots=True)
class ReportedBounce:
    email: str
    kind: service.BounceKind
    reason: str


def check_bounce_type(raw: object) -> service.BounceKind:
    for kind in service.BOUNCE_KINDS:
        if raw == kind:
            return kind
    raise SubscriberError(f"type must be one of {', '.join(service.BOUNCE_KINDS)}", "type")


def check_bounce_reason(raw: object) -> str:
    text = "" if raw is None else require_text(raw, "reason")
    if len(text) > MAX_BOUNCE_REASON:
        raise SubscriberError(f"reason is longer than {MAX_BOUNCE_REASON} characters", "reason")
    return " ".join(text.split())


def check_bounce(body: object) -> ReportedBounce:
    """One ``{"email", "type", "reason"}`` object, every field checked; InvalidFields lists all problems."""
    fields = json_object(body)
    problems = unknown_fields(fields, BOUNCE_FIELDS)
    email = collect(problems, lambda: normalize_email(require_text(fields.get("email", ""), "email")))
    kind = collect(problems, lambda: check_bounce_type(fields.get("type")))
    reason = collect(problems, lambda: check_bounce_reason(fields.get("reason")))
    if problems:
        raise InvalidFields(problems)
    assert email is not None and kind is not None and reason is not None
    return ReportedBounce(email, kind, reason)


async def apply_bounce(publisher: Publisher, bounce: ReportedBounce) -> dict[str, object]:
    outcome = await service.record_bounce(
        publisher.engine, email=bounce.email, subscriber_id=None, kind=bounce.kind, now=utcnow(),
        soft_limit=publisher.settings.delivery.soft_bounce_limit, diagnostic=bounce.reason,
    )
    found = outcome.subscriber
    return {
        "email": bounce.email,
        "type": bounce.kind,
        "subscriber_id": found.id if found else None,
        "subscriber_status": str(found.status) if found else None,
        "suppressed": outcome.suppressed,
        "soft_bounces": outcome.soft_bounces,
    }


async def record_bounces(request: web.Request) -> web.Response:
    """A bounce or complaint (``{"email", "type": "hard"|"soft"|"complaint", "reason"}``) or a list of them.

    For an ESP's webhook or a script.  The rules are
    :func:`subscribers.service.record_bounce`'s: hard bounces and complaints
    suppress the address at once, soft ones after ``[delivery] soft_bounce_limit``.
    One object answers its outcome (422 if it is invalid); a list answers each valid
    item's outcome by its index and lists the invalid items' problems, the valid ones
    being applied all the same.
    """
    publisher = publisher_of(request)
    body = await json_body(request, MAX_BOUNCE_BODY)
    if isinstance(body, dict):
        return web.json_response(await apply_bounce(publisher, check_bounce(body)))
    if not isinstance(body, list):
        raise invalid([SubscriberError("expected a JSON object or a list of them", "")])
    if len(body) > MAX_BOUNCE_ITEMS:
        raise invalid([SubscriberError(f"at most {MAX_BOUNCE_ITEMS} items per request", "")])
    results: list[dict[str, object]] = []
    problems: list[dict[str, object]] = []
    for index, item in enumerate(body):
        try:
            bounce = check_bounce(item)
        except SubscriberError as exc:
            problems.extend({"index": index, **problem(p)} for p in flatten(exc))
            continue
        results.append({"index": index, **await apply_bounce(publisher, bounce)})
    return web.json_response({"applied": len(results), "results": results, "invalid": problems})


def add_api_routes(app: web.Application) -> None:
    """Mount the API at ``/api/`` as a sub-application with its own middleware and headers."""
    # Imported here: that module builds on this one.
    from publisher.web.api_articles import add_article_routes

    api = web.Application(middlewares=[api_middleware])
    api.router.add_get("/subscribers", list_subscribers)
    api.router.add_post("/subscribers", create_subscriber)
    api.router.add_get("/subscribers/export", export_subscribers)
    api.router.add_post("/subscribers/import", import_subscribers)
    api.router.add_get(f"/subscribers/{_ID}", get_subscriber, name="subscriber")
    api.router.add_patch(f"/subscribers/{_ID}", update_subscriber)
    api.router.add_delete(f"/subscribers/{_ID}", delete_subscriber)
    api.router.add_post("/bounces", record_bounces)
    add_article_routes(api)
    api.on_response_prepare.append(no_store)
    api.on_startup.append(warn_if_disabled)
    app.add_subapp("/api/", api)
