"""The one listing of the dashboard's pages (:func:`tests.support.admin.pages`), used by the
every-page browser test and ``bench/dashboard.py``: every GET route behind the gate, with the
role its gate asks for, its path parameters filled by name, so a page added later (digests,
articles, subscribers, …) is covered without a change, and one with a parameter nobody has a
value for is named."""

from __future__ import annotations

from aiohttp import web

from publisher.admin.model import Role, Session
from publisher.web.admin import gate
from tests.support.admin import fill, pages


async def _page(request: web.Request, session: Session) -> web.StreamResponse:
    return web.Response()


async def _open(request: web.Request) -> web.StreamResponse:
    return web.Response()


VALUES = {"digest_id": "daily-20261206", "subscriber_id": "500001", "article_id": "a/b c", "id": "7"}


def test_parameters_are_filled_by_name_whatever_their_pattern() -> None:
    assert fill("/admin/", VALUES) == ("/admin/", ())
    assert fill("/admin/digests/{digest_id}", VALUES) == ("/admin/digests/daily-20261206", ())
    assert fill("/admin/subscribers/{subscriber_id:[0-9]{1,18}}/history", VALUES) == \
        ("/admin/subscribers/500001/history", ())
    assert fill("/admin/articles/{article_id}/preview/{digest_id}", VALUES) == \
        ("/admin/articles/a%2Fb%20c/preview/daily-20261206", ())  # one path segment, whatever the id holds
    assert fill("/admin/things/{thing_id}/{id}", VALUES) == (None, ("thing_id",))


def test_every_gated_get_route_is_a_page_and_nothing_else() -> None:
    """Guarded GETs (any role, which each page names) are pages; the sign-in steps (no gate),
    POSTs and routes outside /admin/ are not."""
    app = web.Application()
    app.router.add_get("/admin/", gate.guarded(Role.VIEWER)(_page))
    app.router.add_get("/admin/sign-in", _open)
    app.router.add_post("/admin/sign-in", _open)
    app.router.add_post("/admin/sign-out", gate.guarded(Role.VIEWER)(_page))
    app.router.add_get("/admin/charts/messages.svg", gate.guarded(Role.VIEWER)(_page))
    app.router.add_get("/admin/digests/{digest_id:[A-Za-z0-9._-]{1,64}}", gate.guarded(Role.VIEWER)(_page))
    app.router.add_get("/admin/subscribers/{subscriber_id:[0-9]{1,18}}", gate.guarded(Role.ADMIN)(_page))
    app.router.add_post("/admin/subscribers/{subscriber_id}/erase", gate.guarded(Role.ADMIN)(_page))
    app.router.add_get("/admin/widgets/{widget}", gate.guarded(Role.EDITOR)(_page))
    app.router.add_get("/elsewhere", gate.guarded(Role.VIEWER)(_page))
    found = {page.route: (page.role, page.path, page.missing) for page in pages(app, VALUES)}
    assert found == {
        "/admin/": (Role.VIEWER, "/admin/", ()),
        "/admin/charts/messages.svg": (Role.VIEWER, "/admin/charts/messages.svg", ()),
        "/admin/digests/{digest_id}": (Role.VIEWER, "/admin/digests/daily-20261206", ()),
        "/admin/subscribers/{subscriber_id}": (Role.ADMIN, "/admin/subscribers/500001", ()),
        "/admin/widgets/{widget}": (Role.EDITOR, None, ("widget",)),
    }
