"""bench/dashboard.py's list of dashboard pages: every GET route behind the gate, its path
parameters filled by name, so a page added later (digests, articles, subscribers, …) is
timed without a change to the bench, and one with a parameter it has no value for is named."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from aiohttp import web

from publisher.admin.model import Role, Session
from publisher.web.admin import gate

BENCH = Path(__file__).resolve().parents[2] / "bench"


def bench_pages() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_dashboard_pages", BENCH / "_dashboard_pages.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("_dashboard_pages", module)
    spec.loader.exec_module(module)
    return module


async def _page(request: web.Request, session: Session) -> web.StreamResponse:
    return web.Response()


async def _open(request: web.Request) -> web.StreamResponse:
    return web.Response()


VALUES = {"digest_id": "daily-20261206", "subscriber_id": "500001", "article_id": "a/b c", "id": "7"}


def test_parameters_are_filled_by_name_whatever_their_pattern() -> None:
    fill = bench_pages().fill
    assert fill("/admin/", VALUES).path == "/admin/"
    assert fill("/admin/digests/{digest_id}", VALUES).path == "/admin/digests/daily-20261206"
    assert fill("/admin/subscribers/{subscriber_id:[0-9]{1,18}}/history", VALUES).path == \
        "/admin/subscribers/500001/history"
    assert fill("/admin/articles/{article_id}/preview/{digest_id}", VALUES).path == \
        "/admin/articles/a%2Fb%20c/preview/daily-20261206"  # one path segment, whatever the id holds
    unknown = fill("/admin/things/{thing_id}/{id}", VALUES)
    assert unknown.path is None and unknown.missing == ("thing_id",)


def test_every_gated_get_route_is_a_page_and_nothing_else() -> None:
    """Guarded GETs (any role) are pages; the sign-in steps (no gate) and POSTs are not."""
    app = web.Application()
    app.router.add_get("/admin/", gate.guarded(Role.VIEWER)(_page))
    app.router.add_get("/admin/sign-in", _open)
    app.router.add_post("/admin/sign-in", _open)
    app.router.add_post("/admin/sign-out", gate.guarded(Role.VIEWER)(_page))
    app.router.add_get("/admin/charts/messages.svg", gate.guarded(Role.VIEWER)(_page))
    app.router.add_get("/admin/digests/{digest_id:[A-Za-z0-9._-]{1,64}}", gate.guarded(Role.VIEWER)(_page))
    app.router.add_get("/admin/subscribers/{subscriber_id:[0-9]{1,18}}", gate.guarded(Role.ADMIN)(_page))
    app.router.add_post("/admin/subscribers/{subscriber_id}/erase", gate.guarded(Role.ADMIN)(_page))
    app.router.add_get("/admin/widgets/{widget}", gate.guarded(Role.VIEWER)(_page))
    found = {page.route: (page.path, page.missing) for page in bench_pages().pages(app, VALUES)}
    assert found == {
        "/admin/": ("/admin/", ()),
        "/admin/charts/messages.svg": ("/admin/charts/messages.svg", ()),
        "/admin/digests/{digest_id}": ("/admin/digests/daily-20261206", ()),
        "/admin/subscribers/{subscriber_id}": ("/admin/subscribers/500001", ()),
        "/admin/widgets/{widget}": (None, ("widget",)),
    }
