"""Rendering a page: the template, the context every page shares, the CSRF cookie.

Every page links the site's feeds for autodiscovery and carries the visitor's CSRF
token, so templates never have to remember either.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from publisher import i18n, urls
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
    """The HTML page of an error, its title and message in the site's language.

    ``reason`` (HTTP's, or the handler's own words for the log) is the title only for a
    status without a reader's title of its own.
    """
    t = i18n.Translator(request.app[PUBLISHER].settings.site.language)
    titles = {
        400: t.gettext("Bad request"),
        403: t.gettext("Form expired"),
        404: t.gettext("Page not found"),
        405: t.gettext("Not allowed"),
        413: t.gettext("Too much data"),
        429: t.gettext("Too many attempts"),
        500: t.gettext("Something went wrong"),
    }
    messages = {
        403: t.gettext("This form has expired or did not come from this site. Go back, reload the page and try again."),
        404: t.gettext("There is nothing at this address."),
        413: t.gettext("That was more than this form accepts."),
        429: t.gettext("Too many attempts. Please wait a little and try again."),
    }
    message = messages.get(status, t.gettext("Something went wrong on our side. Please try again later."))
    title = titles.get(status) or (titles[500] if status >= 500 else reason)
    return render(request, "error.html", {"status": status, "reason": title, "message": message}, status=status)
