"""``POST /api/bounces``: bounces and complaints reported by an ESP's webhook or a script.

The rules are :func:`subscribers.service.record_bounce`'s, through the subscriber
service; this module checks the JSON and reports each outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from publisher import urls
from publisher.web.api.http import (
    collect,
    flatten,
    invalid,
    json_body,
    json_object,
    problem,
    publisher_of,
    unknown_fields,
)
from subscribers import service
from subscribers.service import SubscriberService
from subscribers.validation import InvalidFields, SubscriberError, normalize_email, require_text

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


async def apply_bounce(subscribers: SubscriberService, bounce: ReportedBounce) -> dict[str, object]:
    outcome = await subscribers.record_bounce(bounce.email, bounce.kind, diagnostic=bounce.reason)
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
    subscribers = publisher_of(request).subscribers
    body = await json_body(request, MAX_BOUNCE_BODY)
    if isinstance(body, dict):
        return web.json_response(await apply_bounce(subscribers, check_bounce(body)))
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
        results.append({"index": index, **await apply_bounce(subscribers, bounce)})
    return web.json_response({"applied": len(results), "results": results, "invalid": problems})


def add_bounce_routes(api: web.Application) -> None:
    api.router.add_post(urls.API_BOUNCES.path, record_bounces)
