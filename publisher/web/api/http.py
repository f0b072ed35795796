"""The operator API's HTTP layer: the bearer token, JSON errors, reading requests.

The API under ``/api/`` is a sub-application so that everything under it shares one
middleware (the bearer token, JSON errors) and one header (``Cache-Control:
no-store``: answers carry personal data that no proxy or browser cache should keep)
while the public pages neither pay for nor see either.

The token comes from ``PUBLISHER_API_TOKEN`` and is read at each request rather
than once at start-up: it costs a dictionary lookup, keeps no copy of the secret in
the application object, and lets whatever builds the app (tests, an embedding
program) set it at any time.  No token means no API (503), never an open one.

This is the bottom of :mod:`publisher.web.api`: the handlers' modules
(``subscribers``, ``imports``, ``bounces``, ``articles``) build on it, and it imports
none of them.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TypeVar

from aiohttp import hdrs, web
from multidict import MultiMapping

from publisher.app import Publisher
from publisher.web.keys import PUBLISHER
from subscribers.model import Status
from subscribers.validation import InvalidFields, SubscriberError

log = logging.getLogger(__name__)

TOKEN_ENV = "PUBLISHER_API_TOKEN"
REALM = 'Bearer realm="publisher"'
MAX_JSON_BODY = 64 * 1024  # one subscriber is a few hundred bytes
DEFAULT_LIMIT = 50

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


def publisher_of(request: web.Request) -> Publisher:
    return request.config_dict[PUBLISHER]
