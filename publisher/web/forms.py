"""Reading the public forms safely: size limits, CSRF, the honeypot.

CSRF uses the signed double-submit pattern, which needs no server-side session: a
random value lives in an HttpOnly cookie, and every form carries the HMAC of that
value under the site's secret.  A cross-site form can neither read the cookie nor
forge the HMAC, and a cookie planted from a sibling subdomain fails too, since its
planter can't sign it.  The token is deterministic per cookie, so two answers to the
same visitor are byte-identical whatever else differs (no enumeration of addresses).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from urllib.parse import urlsplit

from aiohttp import web
from itsdangerous import Signer
from multidict import MultiDictProxy

from publisher.web.keys import PUBLISHER

Form = MultiDictProxy[str | bytes | bytearray | web.FileField]
COOKIE = "publisher_csrf"
FIELD = "csrf_token"
HONEYPOT = "website"  # a field people never see; bots fill in anything called "website"
MAX_FORM_BYTES = 16 * 1024
_CSRF_STATE = web.RequestKey("csrf", str)


class CsrfSigner:
    def __init__(self, secret_key: str, *, secure_cookie: bool) -> None:
        self._signer = Signer(secret_key, salt="publisher.csrf")
        self._secure = secure_cookie

    def token(self, request: web.Request) -> str:
        """The form token for this visitor (creating their cookie value if they have none)."""
        value = request.get(_CSRF_STATE) or request.cookies.get(COOKIE, "")
        if not _plausible(value):
            value = secrets.token_urlsafe(32)
        request[_CSRF_STATE] = value
        return self._signer.get_signature(value).decode("ascii")

    @staticmethod
    def used(request: web.Request) -> bool:
        """Whether this request's page holds a form token."""
        return _CSRF_STATE in request

    def set_cookie(self, request: web.Request, response: web.StreamResponse) -> None:
        """Send the cookie if :meth:`token` had to make a new value for this request."""
        value = request.get(_CSRF_STATE)
        if value and value != request.cookies.get(COOKIE):
            response.set_cookie(
                COOKIE, value, httponly=True, samesite="Lax", secure=self._secure, path="/", max_age=None
            )

    def valid(self, request: web.Request, form: Form) -> bool:
        value = request.cookies.get(COOKIE, "")
        sent = form.get(FIELD)
        if not _plausible(value) or not isinstance(sent, str):
            return False
        return hmac.compare_digest(self._signer.get_signature(value).decode("ascii"), sent)


def same_origin(request: web.Request, site_url: str) -> bool:
    """Whether the browser says this POST comes from one of our own pages.

    A second line behind the CSRF token: no page can forge these headers.
    ``Sec-Fetch-Site`` (every current browser sends it) decides when present;
    ``same-site`` is refused too, since a sibling subdomain is another party.
    Otherwise ``Origin`` must name the configured site or the host the request
    was sent to (the daemon reached by its address).  Our pages' ``no-referrer``
    policy makes browsers send ``Origin: null`` with every POST, so ``null``, like
    no header at all (an old browser, a script), leaves the decision to the token.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("Origin", "null")
    if origin == "null":
        return True
    netloc = urlsplit(origin).netloc
    return bool(netloc) and netloc in (urlsplit(site_url).netloc, request.host)


def _plausible(value: str) -> bool:
    return 20 <= len(value) <= 100 and value.replace("-", "").replace("_", "").isalnum()


async def read_form(request: web.Request, limit: int = MAX_FORM_BYTES) -> Form:
    """The posted fields, read with a cap (``limit`` bytes): 413 past what any of our forms needs.

    The application's own ``client_max_size`` is larger (the API takes bulk
    imports), so forms get their own, smaller one.  A body that stops arriving gets
    408 after ``[server] idle_timeout``: the connection's idle timer does not run
    while a handler reads, and these forms are open to anyone.
    """
    try:
        async with asyncio.timeout(request.app[PUBLISHER].settings.server.idle_timeout):
            return await request.clone(client_max_size=limit).post()
    except TimeoutError:
        raise web.HTTPRequestTimeout() from None


def text(form: Form, name: str, limit: int = 1000) -> str:
    """A text field, '' when absent; files and over-long values are refused (400)."""
    value = form.get(name, "")
    if not isinstance(value, str):
        raise web.HTTPBadRequest(text=f"{name} must be text")
    if len(value) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(value))
    return value


def texts(form: Form, name: str, limit: int = 100) -> list[str]:
    """Every value of a repeated field (checkboxes), each checked like :func:`text`."""
    values = form.getall(name, [])
    if len(values) > limit or not all(isinstance(v, str) and len(v) <= 200 for v in values):
        raise web.HTTPBadRequest(text=f"too many or too long values for {name}")
    return [v for v in values if isinstance(v, str)]
