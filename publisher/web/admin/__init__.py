"""The operator dashboard under ``/admin/``: server-rendered pages behind a sign-in.

``gate`` is what every page passes (session, role, CSRF, Origin); ``sign_in`` the
sign-in steps; ``pages`` the overview and the audit log; ``operators`` the accounts;
``articles`` the articles and their previews; ``preview`` the next digest's preview and
test send (``frames``: how previews are framed).
The accounts' rules are in :mod:`publisher.admin`.
"""

from __future__ import annotations

from aiohttp import web

from publisher import urls
from publisher.web.admin import articles, operators, pages, preview, sign_in


def add_admin_routes(app: web.Application) -> None:
    sign_in.add_sign_in_routes(app)
    app.router.add_get(urls.ADMIN.path, pages.overview)
    app.router.add_get(urls.ADMIN_AUDIT.path, pages.audit)
    operators.add_operator_routes(app)
    articles.add_article_routes(app)
    preview.add_preview_routes(app)
