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
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # Links carry signed tokens in their path: never leak them to another site.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "interest-cohort=(), browsing-topics=()",
}


def add_security_headers(app: web.Application, *, https: bool) -> None:
    """Set the headers on every response, streamed ones included, just before they go out."""
    extra = {"Strict-Transport-Security": "max-age=31536000"} if https else {}

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
        for name, value in (_HEADERS | extra).items():
            response.headers.setdefault(name, value)

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
    if request.path.startswith("/api/"):
        return web.json_response({"error": reason}, status=status)
    try:
        return error_page(request, status, reason)
    except Exception:  # the error template itself is broken: still no traceback
        log.exception("rendering the %d page failed", status)
        return web.Response(status=status, text=f"{status} {reason}\n")
