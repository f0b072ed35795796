"""The dashboard's previews in frames: the responses framed, and the page that frames them.

A preview shows what readers get (an article's page, an email's HTML) inside the
dashboard, in ``<iframe sandbox>`` elements of 700 and 390 px (desktop and phone).
Only these responses may be framed, and only by our own pages (``frame-ancestors
'self'``, ``X-Frame-Options: SAMEORIGIN``); everything else keeps ``frame-ancestors
'none'``.  The email keeps the email's policy (inline styles, no script, no form), the
page the site's; the frames are sandboxed without ``allow-scripts`` besides.
"""

from __future__ import annotations

from aiohttp import web

from publisher.web.security import EMAIL_CSP, FRAMING_CSP, PAGE_CSP, framed

WIDTHS = (("Desktop", 700), ("Phone", 390))  # what each preview is shown at, in CSS pixels
_PRIVATE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex, nofollow", "X-Frame-Options": "SAMEORIGIN"}


def framed_email(html: str) -> web.Response:
    """An email's HTML as a framed preview."""
    response = web.Response(text=html, content_type="text/html")
    response.headers.update(_PRIVATE | {"Content-Security-Policy": framed(EMAIL_CSP)})
    return response


def framed_page(response: web.Response) -> web.Response:
    """A public page (rendered for a preview) made a framed preview."""
    response.headers.update(_PRIVATE | {"Content-Security-Policy": framed(PAGE_CSP)})
    return response


def framing(response: web.Response) -> web.Response:
    """A dashboard page that frames previews: it may load frames from our origin."""
    response.headers["Content-Security-Policy"] = FRAMING_CSP
    return response
