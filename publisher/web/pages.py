"""Rendering a page: the template, the context every page shares, the CSRF cookie.

Every page links the site's feeds for autodiscovery and carries the visitor's CSRF
token, so templates never have to remember either.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from publisher import urls
from publisher.feeds.build import FORMATS
from publisher.web.forms import CsrfSigner
from publisher.web.keys import PUBLISHER

CSRF = web.AppKey("csrf", CsrfSigner)

# The site's own feeds, for <link rel="alternate"> (type, label, path).
SITE_FEEDS = tuple((fmt.media_type, fmt.label, urls.feed_path(fmt.name)) for fmt in FORMATS.values())

def render(request: web.Request, template: str, context: dict[str, Any] | None = None, status: int = 200) -> web.Response:
    """``templates/web/<template>`` with the shared context, as an HTML response."""
    publisher = request.app[PUBLISHER]
    site = publisher.settings.site
    csrf = request.app[CSRF]
    shared = {
        "site": site,
        "base": urls.base_path(site.url),
        "feeds": SITE_FEEDS,
        "csrf_token": lambda: csrf.token(request),  # called only by pages with a form
        "extra_feeds": (),
        "social": (),  # Open Graph and Twitter card tags (publisher.web.metadata)
        "linked_data": None,  # schema.org JSON-LD
    }
    response = aiohttp_jinja2.render_template(f"web/{template}", request, shared | (context or {}), status=status)
    # A page with a form (a visitor's token) or behind a signed link is nobody else's.
    personal = csrf.used(request) or "token" in request.match_info or request.method != "GET"
    response.headers["Cache-Control"] = "private, no-store" if personal else "public, max-age=60"
    csrf.set_cookie(request, response)
    return response


def error_page(request: web.Request, status: int, reason: str) -> web.Response:
    messages = {
        403: "This form has expired or did not come from this site. Go back, reload the page and try again.",
        404: "There is nothing at this address.",
        413: "That was more than this form accepts.",
        429: "Too many attempts. Please wait a little and try again.",
    }
    message = messages.get(status, "Something went wrong on our side. Please try again later.")
    return render(request, "error.html", {"status": status, "reason": reason, "message": message}, status=status)
