"""The gate every dashboard handler passes: the session cookie, the role, CSRF and Origin.

:func:`guarded` wraps each handler under ``/admin/`` (but the sign-in steps), so a page
added later is protected by the same lines: no session answers a GET with a redirect
to the sign-in and anything else with 403; a role below the handler's gets a 403 page;
a POST must come from one of our pages (``Sec-Fetch-Site``/``Origin``, see
:func:`publisher.web.forms.same_origin`) and carry the form token of the public forms'
signed double-submit scheme (:class:`publisher.web.forms.CsrfSigner`).  The session
cookie itself is ``SameSite=Strict``: a request started on another site carries none.

The dashboard speaks English only: operators are not readers, and its words are not in
the readers' catalogs.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web

from publisher import urls
from publisher.admin.model import Actor, Role, Session
from publisher.web import forms
from publisher.web.keys import PUBLISHER
from publisher.web.pages import CSRF
from publisher.web.ratelimit import client_address

COOKIE = "publisher_admin"
FORM = web.RequestKey("admin_form", forms.Form)
# The dashboard's sections, in its menu: label, route (None: still to come), the role that sees it.
SECTIONS: tuple[tuple[str, urls.Route | None, Role], ...] = (
    ("Overview", urls.ADMIN, Role.VIEWER),
    ("Digests", urls.ADMIN_DIGESTS, Role.VIEWER),
    ("Articles", urls.ADMIN_ARTICLES, Role.VIEWER),
    ("Preview", urls.ADMIN_PREVIEW, Role.VIEWER),
    ("Subscribers", urls.ADMIN_SUBSCRIBERS, Role.VIEWER),
    ("Settings", urls.ADMIN_SETTINGS, Role.VIEWER),
    ("Audit log", urls.ADMIN_AUDIT, Role.VIEWER),
    ("Operators", urls.ADMIN_OPERATORS, Role.ADMIN),
)
_READS = frozenset({"GET", "HEAD"})
# What every dashboard answer carries: never kept by a cache, never indexed.
NO_STORE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex, nofollow"}

AdminHandler = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


def guarded(
    role: Role, *, form_bytes: int = forms.MAX_FORM_BYTES, passive: bool = False
) -> Callable[[AdminHandler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """Let ``handler`` run only for a signed-in operator whose role allows ``role`` (see the module).

    A POST's form may hold ``form_bytes`` (a file upload is larger than the other forms).
    A ``passive`` handler answers a page's own script, not a person: it doesn't keep the
    session alive, and without one it answers 401 (which the script stops at) rather than
    the sign-in page.
    """

    def wrap(handler: AdminHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        @functools.wraps(handler)
        async def gate(request: web.Request) -> web.StreamResponse:
            reading = request.method in _READS
            session = await current_session(request, passive=passive)
            if session is None:
                if passive:
                    return web.json_response({"error": "not signed in"}, status=401, headers=NO_STORE)
                if reading:
                    return redirect(sign_in_location(request))
                raise web.HTTPForbidden(reason="Not signed in")
            if not reading:
                request[FORM] = await checked_form(request, form_bytes)
            if not session.operator.role.allows(role):
                return page(request, "forbidden.html", {"page_title": "Not allowed", "needed": role}, session, status=403)
            return await handler(request, session)

        gate.admin_role = role  # type: ignore[attr-defined]  # read by the tests that list the gated routes
        gate.admin_passive = passive  # type: ignore[attr-defined]
        return gate

    return wrap


async def current_session(request: web.Request, *, pending: bool = False, passive: bool = False) -> Session | None:
    return await request.app[PUBLISHER].operators.session(
        request.cookies.get(COOKIE, ""), pending=pending, passive=passive
    )


async def checked_form(request: web.Request, limit: int = forms.MAX_FORM_BYTES) -> forms.Form:
    """The posted form, once it is known to come from our own page (403 otherwise)."""
    if not forms.same_origin(request, request.app[PUBLISHER].settings.site.url):
        raise web.HTTPForbidden(reason="Form sent from another site")
    form = await forms.read_form(request, limit)
    if not request.app[CSRF].valid(request, form):
        raise web.HTTPForbidden(reason="Invalid form token")
    return form


def actor(request: web.Request, session: Session) -> Actor:
    return Actor(session.operator.email, remote(request))


def remote(request: web.Request) -> str:
    return client_address(request, request.app[PUBLISHER].settings.server)


def base(request: web.Request) -> str:
    return urls.base_path(request.app[PUBLISHER].settings.site.url)


def sign_in_location(request: web.Request) -> str:
    """The sign-in page, with the page asked for to come back to."""
    wanted = base(request) + request.path_qs.lstrip("/")
    return urls.ADMIN_SIGN_IN.under(base(request)) + "?next=" + quote(wanted, safe="/")


def safe_next(request: web.Request, value: str) -> str:
    """``value`` if it is a path of the dashboard (no other host, no scheme), else the overview."""
    overview = urls.ADMIN.under(base(request))
    if value.startswith(overview) and "//" not in value and "\\" not in value and value.isprintable():
        return value
    return overview


def page(
    request: web.Request, template: str, context: dict[str, Any], session: Session | None, status: int = 200
) -> web.Response:
    """``templates/admin/<template>`` with what every dashboard page shares; never cached."""
    publisher = request.app[PUBLISHER]
    csrf = request.app[CSRF]
    operator = session.operator if session is not None else None
    shared = {
        "site": publisher.settings.site,
        "base": base(request),
        "operator": operator,
        "sections": [(label, route, route is not None and _within(request.path, route))
                     for label, route, needed in SECTIONS if operator is not None and operator.role.allows(needed)],
        "csrf_token": lambda: csrf.token(request),
    }
    response = aiohttp_jinja2.render_template(f"admin/{template}", request, shared | context, status=status)
    response.headers.update(NO_STORE)
    csrf.set_cookie(request, response)
    return response


def _within(path: str, route: urls.Route) -> bool:
    """Whether ``path`` is the section's page or one below it (a subscriber's record is in Subscribers)."""
    return path == route.path or (route is not urls.ADMIN and path.startswith(route.path + "/"))


def redirect(location: str) -> web.Response:
    """A 303 to ``location`` (a response, not an exception, so it can carry a cookie)."""
    return web.Response(status=303, headers={"Location": location, **NO_STORE})


def set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    """The session's cookie: for the dashboard's paths only, never to scripts or other sites."""
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="Strict", path=urls.ADMIN.under(base(request)),
        secure=urls.is_https(request.app[PUBLISHER].settings.site.url),
    )


def clear_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path=urls.ADMIN.under(base(request)))
