"""Signing in to the dashboard (email and password, then a code for an operator with a
second factor) and out.

Both steps are limited per client address and per account named
(``[admin] signin_rate_*``, 429 past them), besides the account's own lockout after
``[admin] lockout_after`` failures in a row.  A failed step answers the same page
whatever failed (no such operator, wrong password, locked account, wrong code).
"""

from __future__ import annotations

import hashlib

from aiohttp import web

from publisher import urls
from publisher.admin.model import Role, Session
from publisher.web import forms
from publisher.web.admin import gate
from publisher.web.keys import PUBLISHER
from publisher.web.ratelimit import RateLimits

LIMITS = web.AppKey("admin_rate_limits", RateLimits)
MAX_EMAIL = 320
MAX_PASSWORD = 1024
FAILED = "That email and password do not match an account that may sign in now."
WRONG_CODE = "That code is not right, or was already used. Enter the current code from your app."


async def sign_in_form(request: web.Request) -> web.StreamResponse:
    if await gate.current_session(request) is not None:
        return gate.redirect(gate.safe_next(request, request.query.get("next", "")))
    return _form(request, email="", error="")


def _form(request: web.Request, *, email: str, error: str, next_page: str | None = None, status: int = 200) -> web.Response:
    context = {
        "page_title": "Sign in", "email": email, "error": error,
        "next": next_page if next_page is not None else gate.safe_next(request, request.query.get("next", "")),
        "limits": {"email": MAX_EMAIL, "password": MAX_PASSWORD},
    }
    return gate.page(request, "sign_in.html", context, None, status=status)


async def sign_in(request: web.Request) -> web.StreamResponse:
    form = await gate.checked_form(request)
    email = forms.text(form, "email", MAX_EMAIL)
    password = forms.text(form, "password", MAX_PASSWORD)
    next_page = gate.safe_next(request, forms.text(form, "next", 2000))
    await _limit(request, email)
    signed = await request.app[PUBLISHER].operators.sign_in(email, password, gate.remote(request))
    if signed is None:
        return _form(request, email=email, error=FAILED, next_page=next_page, status=401)
    location = urls.ADMIN_SIGN_IN_CODE.under(gate.base(request)) if signed.needs_code else next_page
    response = gate.redirect(location)
    gate.set_session_cookie(request, response, signed.token)
    return response


async def code_form(request: web.Request) -> web.StreamResponse:
    if await gate.current_session(request, pending=True) is None:
        return gate.redirect(urls.ADMIN_SIGN_IN.under(gate.base(request)))
    return _code_form(request, error="")


def _code_form(request: web.Request, *, error: str, status: int = 200) -> web.Response:
    return gate.page(request, "sign_in_code.html", {"page_title": "Sign in: code", "error": error}, None, status=status)


async def sign_in_code(request: web.Request) -> web.StreamResponse:
    form = await gate.checked_form(request)
    pending = await gate.current_session(request, pending=True)
    if pending is None:  # expired, or ended by a lockout: start again
        return gate.redirect(urls.ADMIN_SIGN_IN.under(gate.base(request)))
    await _limit(request, pending.operator.email)
    token = request.cookies.get(gate.COOKIE, "")
    full = await request.app[PUBLISHER].operators.second_factor(token, forms.text(form, "code", 20), gate.remote(request))
    if full is None:
        return _code_form(request, error=WRONG_CODE, status=401)
    response = gate.redirect(urls.ADMIN.under(gate.base(request)))
    gate.set_session_cookie(request, response, full)
    return response


@gate.guarded(Role.VIEWER)
async def sign_out(request: web.Request, session: Session) -> web.StreamResponse:
    await request.app[PUBLISHER].operators.sign_out(request.cookies.get(gate.COOKIE, ""), gate.actor(request, session))
    response = gate.redirect(urls.ADMIN_SIGN_IN.under(gate.base(request)))
    gate.clear_session_cookie(request, response)
    return response


async def _limit(request: web.Request, email: str) -> None:
    """Count an attempt for the client and for the account named (hashed: the limiter's keys are no list of addresses)."""
    account = hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()
    await request.app[LIMITS].check("admin-sign-in", gate.remote(request), account)


def add_sign_in_routes(app: web.Application) -> None:
    settings = app[PUBLISHER].settings.admin
    app[LIMITS] = RateLimits(settings.signin_rate_per_client, settings.signin_rate_per_account)
    app.router.add_get(urls.ADMIN_SIGN_IN.path, sign_in_form)
    app.router.add_post(urls.ADMIN_SIGN_IN.path, sign_in)
    app.router.add_get(urls.ADMIN_SIGN_IN_CODE.path, code_form)
    app.router.add_post(urls.ADMIN_SIGN_IN_CODE.path, sign_in_code)
    app.router.add_post(urls.ADMIN_SIGN_OUT.path, sign_out)
