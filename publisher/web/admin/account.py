"""The signed-in operator's own account (every role): change the password, turn the second
factor on or off.

Each change is a call of :class:`publisher.admin.service.OperatorService` (the one
``publisher operators passwd/totp`` makes), audited in its transaction.  The current
password is asked for every change that weakens or replaces a credential, so a
browser left signed in is not enough to take the account; the operator's other
sessions end when the password or the second factor changes.

Turning the second factor on takes two steps: a new secret is shown (as text to type
into an authenticator app, and as its ``otpauth://`` URI), and only a code from the
app makes it take effect.  Between the steps the secret travels in the form, signed
for this session and valid for :data:`ENROL_FOR` seconds, so nothing is stored for a
secret that is never confirmed and no other secret can be slipped in.
"""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeTimedSerializer

from aiohttp import web

from publisher import urls
from publisher.admin import totp
from publisher.admin.model import OperatorError, Role, Session
from publisher.admin.passwords import MIN_LENGTH
from publisher.web import forms
from publisher.web.admin import gate
from publisher.web.admin.sign_in import MAX_PASSWORD
from publisher.web.keys import PUBLISHER

ENROL_FOR = 600  # seconds a shown secret may be confirmed in
MAX_TOKEN = 400
# What a finished change says on the account page (?done=…): fixed words, never the request's.
DONE = {
    "password": "Your password was changed. Your other sessions were signed out.",
    "totp-on": "The second factor is on: signing in now asks for a code from your app. Your other sessions were signed out.",
    "totp-off": "The second factor is off: signing in asks for the password only.",
}


def _enrolment(request: web.Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app[PUBLISHER].tokens.secret_key, salt="publisher.admin.totp-enrol")


@gate.guarded(Role.VIEWER)
async def account_page(request: web.Request, session: Session) -> web.StreamResponse:
    return _page(request, session, done=DONE.get(request.query.get("done", ""), ""))


def _page(request: web.Request, session: Session, *, done: str = "", error: str = "", status: int = 200) -> web.Response:
    context = {
        "page_title": "Your account", "done": done, "error": error,
        "limits": {"password": MAX_PASSWORD, "min_password": MIN_LENGTH},
    }
    return gate.page(request, "account.html", context, session, status=status)


def _done(request: web.Request, what: str) -> web.Response:
    return gate.redirect(urls.ADMIN_ACCOUNT.under(gate.base(request)) + f"?done={what}")


@gate.guarded(Role.VIEWER)
async def change_password(request: web.Request, session: Session) -> web.StreamResponse:
    form = request[gate.FORM]
    current, new = forms.text(form, "current", MAX_PASSWORD), forms.text(form, "new", MAX_PASSWORD)
    if new != forms.text(form, "repeat", MAX_PASSWORD):
        return _page(request, session, error="The two new passwords differ: type the same one twice.", status=422)
    try:
        await request.app[PUBLISHER].operators.change_own_password(session, current, new, gate.actor(request, session))
    except OperatorError as exc:
        return _page(request, session, error=_sentence(exc), status=422)
    return _done(request, "password")


@gate.guarded(Role.VIEWER)
async def new_totp(request: web.Request, session: Session) -> web.StreamResponse:
    """Step one: a new secret to type into the app (nothing is stored yet)."""
    if session.operator.has_totp:
        return _page(request, session, error="The second factor is already on: turn it off first to use another app.",
                     status=409)
    secret = totp.new_secret()
    return _enrol_page(request, session, secret, _enrolment(request).dumps([session.id, secret]))


def _enrol_page(request: web.Request, session: Session, secret: str, token: str, *, error: str = "",
                status: int = 200) -> web.Response:
    site = request.app[PUBLISHER].settings.site.title
    context = {
        "page_title": "Turn on the second factor", "error": error, "token": token,
        # In groups of four, as apps show and take it (spaces are ignored when typed).
        "secret": " ".join(secret[i:i + 4] for i in range(0, len(secret), 4)),
        "uri": totp.provisioning_uri(secret, session.operator.email, site),
    }
    return gate.page(request, "account_totp.html", context, session, status=status)


@gate.guarded(Role.VIEWER)
async def confirm_totp(request: web.Request, session: Session) -> web.StreamResponse:
    """Step two: the code from the app; the secret takes effect only when it matches."""
    form = request[gate.FORM]
    token = forms.text(form, "token", MAX_TOKEN)
    try:
        owner, secret = _enrolment(request).loads(token, max_age=ENROL_FOR)
    except (BadSignature, ValueError, TypeError):
        owner, secret = None, None
    if owner != session.id or not isinstance(secret, str):
        return _page(request, session, error="That secret expired or belongs to another sign-in: start again.", status=422)
    try:
        await request.app[PUBLISHER].operators.enable_own_totp(
            session, secret, forms.text(form, "code", 20), gate.actor(request, session)
        )
    except OperatorError as exc:
        return _enrol_page(request, session, secret, token, error=_sentence(exc), status=422)
    return _done(request, "totp-on")


@gate.guarded(Role.VIEWER)
async def disable_totp(request: web.Request, session: Session) -> web.StreamResponse:
    password = forms.text(request[gate.FORM], "current", MAX_PASSWORD)
    try:
        await request.app[PUBLISHER].operators.disable_own_totp(session, password, gate.actor(request, session))
    except OperatorError as exc:
        return _page(request, session, error=_sentence(exc), status=422)
    return _done(request, "totp-off")


def _sentence(exc: OperatorError) -> str:
    """The service's reason (written for the CLI's "error: …") as a sentence on a page."""
    text = str(exc)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def add_account_routes(app: web.Application) -> None:
    app.router.add_get(urls.ADMIN_ACCOUNT.path, account_page)
    app.router.add_post(urls.ADMIN_ACCOUNT_PASSWORD.path, change_password)
    app.router.add_post(urls.ADMIN_ACCOUNT_TOTP_NEW.path, new_totp)
    app.router.add_post(urls.ADMIN_ACCOUNT_TOTP_ON.path, confirm_totp)
    app.router.add_post(urls.ADMIN_ACCOUNT_TOTP_OFF.path, disable_totp)
