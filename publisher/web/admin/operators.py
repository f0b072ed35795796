"""The operators page (admins only): list, add, change a role, remove.

Each change is one call of :class:`publisher.admin.service.OperatorService`, which
writes its audit row in the change's transaction; a refused change (a short password,
the last admin) shows the page again with the reason, and nothing is changed.
"""

from __future__ import annotations

from aiohttp import web

from publisher import urls
from publisher.admin.model import Operator, OperatorError, Role, Session
from publisher.admin.passwords import MIN_LENGTH
from publisher.web import forms
from publisher.web.admin import gate
from publisher.web.admin.sign_in import MAX_EMAIL, MAX_PASSWORD
from publisher.web.keys import PUBLISHER

# What a finished change says on the page it leads back to (?done=…): fixed words, never the request's.
DONE = {
    "added": "The operator was added.",
    "role": "The role was changed.",
    "removed": "The operator was removed.",
}


@gate.guarded(Role.ADMIN)
async def operators_page(request: web.Request, session: Session) -> web.StreamResponse:
    return await _page(request, session, done=DONE.get(request.query.get("done", ""), ""))


async def _page(
    request: web.Request, session: Session, *, done: str = "", error: str = "", values: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    context = {
        "page_title": "Operators", "operators": await request.app[PUBLISHER].operators.every(), "roles": list(Role),
        "done": done, "error": error, "values": values or {"email": "", "role": Role.VIEWER.value},
        "limits": {"email": MAX_EMAIL, "password": MAX_PASSWORD, "min_password": MIN_LENGTH},
    }
    return gate.page(request, "operators.html", context, session, status=status)


def _done(request: web.Request, what: str) -> web.Response:
    return gate.redirect(urls.ADMIN_OPERATORS.under(gate.base(request)) + f"?done={what}")


def _role(form: forms.Form) -> Role:
    try:
        return Role(forms.text(form, "role", 20))
    except ValueError:
        raise web.HTTPBadRequest(reason="role must be viewer, editor or admin") from None


async def _operator(request: web.Request) -> Operator:
    found = await request.app[PUBLISHER].operators.get(int(request.match_info["id"]))
    if found is None:
        raise web.HTTPNotFound()
    return found


@gate.guarded(Role.ADMIN)
async def add_operator(request: web.Request, session: Session) -> web.StreamResponse:
    form = request[gate.FORM]
    values = {"email": forms.text(form, "email", MAX_EMAIL), "role": forms.text(form, "role", 20)}
    role = _role(form)
    try:
        await request.app[PUBLISHER].operators.add(
            values["email"], role, forms.text(form, "password", MAX_PASSWORD), gate.actor(request, session)
        )
    except OperatorError as exc:
        return await _page(request, session, error=str(exc), values=values, status=422)
    return _done(request, "added")


@gate.guarded(Role.ADMIN)
async def change_role(request: web.Request, session: Session) -> web.StreamResponse:
    operator = await _operator(request)
    try:
        await request.app[PUBLISHER].operators.set_role(operator.email, _role(request[gate.FORM]), gate.actor(request, session))
    except OperatorError as exc:
        return await _page(request, session, error=str(exc), status=422)
    return _done(request, "role")


@gate.guarded(Role.ADMIN)
async def remove_operator(request: web.Request, session: Session) -> web.StreamResponse:
    operator = await _operator(request)
    try:
        await request.app[PUBLISHER].operators.remove(operator.email, gate.actor(request, session))
    except OperatorError as exc:
        return await _page(request, session, error=str(exc), status=422)
    return _done(request, "removed")


def add_operator_routes(app: web.Application) -> None:
    app.router.add_get(urls.ADMIN_OPERATORS.path, operators_page)
    app.router.add_post(urls.ADMIN_OPERATORS.path, add_operator)
    app.router.add_post(urls.ADMIN_OPERATOR_ROLE.path, change_role)
    app.router.add_post(urls.ADMIN_OPERATOR_REMOVE.path, remove_operator)
