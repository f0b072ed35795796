"""The operator dashboard under ``/admin/``: server-rendered pages behind a sign-in.

``gate`` is what every page passes (session, role, CSRF, Origin); ``sign_in`` the
sign-in steps; ``pages`` the overview and the audit log; ``operators`` the accounts;
``digests`` the digests, their live progress, pause, resume and cancel.
The accounts' rules are in :mod:`publisher.admin`.
"""

from __future__ import annotations

from aiohttp import web

from publisher import urls
from publisher.web.admin import digests, operators, pages, sign_in


def add_admin_routes(app: web.Application) -> None:
    sign_in.add_sign_in_routes(app)
    app.router.add_get(urls.ADMIN.path, pages.overview)
    app.router.add_get(urls.ADMIN_AUDIT.path, pages.audit)
    operators.add_operator_routes(app)
    digests.add_digest_routes(app)
