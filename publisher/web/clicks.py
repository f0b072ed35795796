"""The counted redirect of a digest link (``/c/<digest>/<n>?u=…&s=…``, :mod:`publisher.tracking.links`).

It sends the browser on only to a target this site signed for that link (a tampered
link, another digest's id, ``//evil.example`` or ``javascript:`` in ``u`` get a 400
page, never a redirect).  A GET counts one click for the link while ``[tracking]
clicks`` is "aggregate"; a HEAD (link scanners) counts nothing.  The count never stands
between the reader and the page: past ``[tracking] click_rate_per_client``, or when the
store fails, the click is only not counted.  Links sent while counting was on keep
working after it is turned off.
"""

from __future__ import annotations

from aiohttp import web

from publisher import i18n, urls
from publisher.web.keys import PUBLISHER
from publisher.web.pages import render
from publisher.web.ratelimit import RateLimits, client_address

CLICK_LIMITS = web.AppKey("click_limits", RateLimits)


async def follow(request: web.Request) -> web.StreamResponse:
    clicks = request.app[PUBLISHER].clicks
    digest_id, n = request.match_info["digest_id"], int(request.match_info["n"])
    target = request.query.get("u", "")
    if not clicks.genuine(digest_id, n, target, request.query.get("s", "")):
        t = i18n.Translator(request.app[PUBLISHER].settings.site.language)
        message = t.gettext(
            "The link may have been cut short when it was copied, or it was changed. Open it from the email again."
        )
        return render(
            request, "error.html", {"status": 400, "reason": t.gettext("This link does not work"), "message": message},
            status=400,
        )
    if request.method == "GET" and clicks.counting and await _within_rate(request):
        await clicks.count(digest_id, n, target)
    raise web.HTTPFound(target, headers={"Cache-Control": "no-store"})


async def _within_rate(request: web.Request) -> bool:
    """Count one click for the client; False when it is past its rate (the click is then not counted)."""
    server = request.app[PUBLISHER].settings.server
    try:
        await request.app[CLICK_LIMITS].check("click", client_address(request, server), None)
    except web.HTTPTooManyRequests:
        return False
    return True


def add_click_routes(app: web.Application) -> None:
    rate = app[PUBLISHER].settings.tracking.click_rate_per_client
    app[CLICK_LIMITS] = RateLimits(rate, rate)  # per client only: a click names no address
    app.router.add_get(urls.CLICK.path, follow)
