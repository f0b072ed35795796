"""The operator dashboard under ``/admin/``: server-rendered pages behind a sign-in.

``gate`` is what every page passes (session, role, CSRF, Origin); ``sign_in`` the
sign-in steps; ``pages`` the overview and the audit log; ``operators`` the accounts;
``account`` the signed-in operator's own; ``settings`` the read-only settings page;
``subscribers`` the list and the records; ``transfer`` their CSV import and export;
``articles`` the articles and their previews; ``preview`` the next digest's preview and
test send (``frames``: how previews are framed); ``digests`` the digests, their live
progress, pause, resume and cancel; ``charts`` the overview's charts.
The accounts' rules are in :mod:`publisher.admin`.
"""

from __future__ import annotations

from aiohttp import web

from publisher import urls
from publisher.web.admin import (
    account, articles, charts, digests, operators, pages, preview, settings, sign_in, subscribers, transfer,
)


def add_admin_routes(app: web.Application) -> None:
    sign_in.add_sign_in_routes(app)
    app.router.add_get(urls.ADMIN.path, pages.overview)
    app.router.add_get(urls.ADMIN_AUDIT.path, pages.audit)
    charts.add_chart_routes(app)
    operators.add_operator_routes(app)
    settings.add_settings_routes(app)
    account.add_account_routes(app)
    subscribers.add_subscriber_routes(app)
    transfer.add_transfer_routes(app)
    articles.add_article_routes(app)
    preview.add_preview_routes(app)
    digests.add_digest_routes(app)
