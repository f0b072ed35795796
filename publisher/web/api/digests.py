"""``GET /api/digests`` (the newest digests) and ``GET /api/digests/{id}`` (one digest's report).

The report is :mod:`publisher.delivery.report`'s, as ``publisher report --format json``
prints it: ``"states"`` (count name → count) and ``"providers"`` (mailbox provider →
{count name → count}), with the commonest ``"replies"``.
"""

from __future__ import annotations

from aiohttp import web

from publisher import urls
from publisher.web.api.http import ApiError, check_count, check_query, invalid, publisher_of
from subscribers.validation import SubscriberError

DEFAULT_DIGESTS = 20
MAX_DIGESTS = 500


async def list_digests(request: web.Request) -> web.Response:
    """``{"digests": [{"id", "cadence", "status", "pause_reason", "created_at", "articles", "messages"}]}``,
    newest first; ``?limit=`` (1 to 500, default 20)."""
    problems = check_query(request.query, frozenset({"limit"}))
    limit = DEFAULT_DIGESTS
    if "limit" in request.query:
        try:
            limit = check_count(request.query["limit"], "limit", 1, MAX_DIGESTS)
        except SubscriberError as exc:
            problems.append(exc)
    if problems:
        raise invalid(problems)
    found = await publisher_of(request).delivery.states(limit=limit)
    return web.json_response({"digests": [
        {"id": d.id, "cadence": d.cadence, "status": d.status, "pause_reason": d.pause_reason,
         "created_at": d.created_at.isoformat(), "articles": d.articles, "messages": d.counts}
        for d in found
    ]})


async def get_digest(request: web.Request) -> web.Response:
    digest_id = request.match_info["digest_id"]
    found = await publisher_of(request).digest_report(digest_id)
    if found is None:
        raise ApiError(404, f"there is no digest {digest_id!r}")
    return web.json_response(found.as_json())


def add_digest_routes(api: web.Application) -> None:
    api.router.add_get(urls.API_DIGESTS.path, list_digests)
    api.router.add_get(urls.API_DIGEST.path, get_digest)
