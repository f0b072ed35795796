"""Headers every response gets, and error pages that never show a traceback.

The default Content-Security-Policy allows nothing but our own stylesheet, images
and forms: the pages need no script at all.  A handler that must relax it (the
"view in browser" copy of a digest, styled inline like every email) sets its own
``Content-Security-Policy`` and the middleware leaves it alone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from publisher import urls

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' https: data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
# An email rendered as a page: inline styles and remote images, still no script or forms.
EMAIL_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; form-action 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
# A dashboard page that shows previews in frames of our own (publisher.web.admin.frames).
FRAMING_CSP = PAGE_CSP + "; frame-src 'self'"


def framed(csp: str) -> str:
    """``csp`` for a response that our own pages may frame (the dashboard's previews), none other."""
    return csp.replace("frame-ancestors 'none'", "frame-ancestors 'self'")


# A dashboard page with live figures: also our own script (no inline one), which reads our JSON.
SCRIPT_PAGE_CSP = PAGE_CSP + "; script-src 'self'; connect-src 'self'"
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # Links carry signed tokens in their path: never leak them to another site.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "interest-cohort=(), browsing-topics=()",
}


def security_headers(*, https: bool) -> dict[str, str]:
    """The headers every response gets, in the order they are added.

    A response that already carries one of them keeps its own value.  Handlers that
    build their headers ahead of time (the feeds) include these and answer with a
    :class:`SecuredResponse`, which the hook below skips.
    """
    extra = {"Strict-Transport-Security": "max-age=31536000"} if https else {}
    return {"Content-Security-Policy": PAGE_CSP} | _HEADERS | extra


class SecuredResponse(web.Response):
    """A response whose headers were built with :func:`security_headers` already in them.

    The hook below leaves it alone: for responses prepared ahead of time (the feeds),
    where these headers are part of a header set made once, not once per request.
    """


def add_security_headers(app: web.Application, *, https: bool) -> None:
    """Set the headers on every response, streamed ones included, just before they go out."""
    # Computed once: this runs for every response, the feeds' 304s included.
    headers = tuple(security_headers(https=https).items())

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        if type(response) is SecuredResponse:
            return
        target = response.headers
        for name, value in headers:
            target.setdefault(name, value)

    app.on_response_prepare.append(on_prepare)


def error_middleware(error_page: Callable[[web.Request, int, str], web.Response]) -> Middleware:
    """HTML error pages (JSON under ``/api/``) for 4xx/5xx, a logged 500 for any crash.

    ``error_page(request, status, reason)`` renders the body of an HTML error.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400 or exc.content_type == "application/json":
                raise  # redirects, and API errors that are already JSON
            response = _error(request, exc.status, exc.reason, error_page)
            for name in ("Retry-After", "Allow", "WWW-Authenticate"):
                if name in exc.headers:
                    response.headers[name] = exc.headers[name]
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            response = _error(request, 500, "Internal Server Error", error_page)
        return response

    return middleware


def _error(
    request: web.Request, status: int, reason: str, error_page: Callable[[web.Request, int, str], web.Response]
) -> web.Response:
    if request.path.startswith(urls.API_PREFIX):
        return web.json_response({"error": reason}, status=status)
    try:
        return error_page(request, status, reason)
    except Exception:  # the error template itself is broken: still no traceback
        log.exception("rendering the %d page failed", status)
        return web.Response(status=status, text=f"{status} {reason}\n")
