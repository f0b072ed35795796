"""The URL map: every public URL the publisher builds, and the routes the web layer registers.

One :class:`Route` per kind of page holds its path once, in aiohttp's router syntax
(``articles/{slug:[a-z0-9][a-z0-9-]{0,299}}``).  The web layer registers
:attr:`Route.path`; the emails, feeds, pages and the API build their links with
:meth:`Route.url` (absolute, under ``[site] url``: emails, feeds) or
:meth:`Route.under` the site's base path (a page's own links, which work behind a
proxy), so a link and the route that answers it can't drift apart.

``site_url`` is ``[site] url`` as the config gives it: absolute, ending with "/"
(``publisher.config`` adds a missing one).  The site may live under a path
(``https://example.org/news/``): links carry that path, while routes are registered
at the application's root, where the proxy in front hands requests on.

Nothing here reads settings or imports the rest of the publisher: callers pass the
site URL, so the map is as easy to use from a template check as from a request.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

# {name} or {name:regex}, the regex holding at most one level of braces ({0,299}).
_PLACEHOLDER = re.compile(r"\{(\w+)(?::(?:[^{}]|\{[^{}]*\})*)?\}")
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*")  # what quote() leaves as it is


def _quoted(value: str) -> str:
    """``value`` percent-encoded as one path segment (checked first: quote() costs microseconds)."""
    return value if _UNRESERVED.fullmatch(value) else quote(value, safe="")


class Route:
    """One path of the site, relative to its root, with aiohttp ``{name:regex}`` placeholders.

    The pattern is turned into a format string once (its fixed parts hold no braces):
    a link is built per message of a fan-out (two per message), so filling it in must
    cost about what an f-string does.
    """

    __slots__ = ("pattern", "_template")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._template = _PLACEHOLDER.sub(lambda match: "{" + match.group(1) + "}", pattern)

    def __repr__(self) -> str:
        return f"Route({self.pattern!r})"

    @property
    def path(self) -> str:
        """What the router registers (absolute within the application)."""
        return "/" + self.pattern

    def relative(self, **values: str) -> str:
        """The pattern with its placeholders filled in, relative to the site root.

        Values are quoted: tokens, slugs and ids never need it, but a value from
        elsewhere must not add a path segment with a "/".
        """
        return self._template.format_map({name: _quoted(value) for name, value in values.items()})

    def fixed(self, **values: str) -> str:
        """What the router registers for one value of each placeholder: a plain route,
        which the router finds by one lookup (the site feeds, the hot path)."""
        return "/" + self.relative(**values)

    def under(self, base: str, **values: str) -> str:
        """The path below ``base`` (the site's base path, or its whole URL; ends with "/")."""
        return base + self.relative(**values)

    def url(self, site_url: str, **values: str) -> str:
        """The absolute URL on the site at ``site_url``."""
        return self.under(site_url, **values)

    @property
    def prefix(self) -> str:
        """The path up to the first placeholder, relative to the site root ("confirm/" of
        ``confirm/{token}``): what a robots.txt rule about every such URL names."""
        return self.pattern.split("{", 1)[0]


# --- the public site ---------------------------------------------------------------------

INDEX = Route("")
ARTICLE = Route("articles/{slug:[a-z0-9][a-z0-9-]{0,299}}")
DIGEST = Route("digests/{digest_id:[A-Za-z0-9._-]{1,64}}")  # a digest's "view in browser" copy
DIGESTS = Route("digests/")  # the past digests, newest first (?page=N)
ARCHIVE = Route("archive")  # every article, newest first, a page at a time (?page=N)
TAG = Route("tags/{slug:[a-z0-9-]+}/")  # a tag's articles (?page=N); its feeds are below it
SITEMAP = Route("sitemap.xml")
ROBOTS = Route("robots.txt")
PAGE_PARAMETER = "page"  # the query parameter of a listing's page number (1, the first, is left out)
# A digest link's counted redirect ([tracking] clicks = "aggregate"): the n-th distinct link of the
# digest's HTML; the query carries the target and its signature (publisher.tracking.links).
CLICK = Route("c/{digest_id:[A-Za-z0-9._-]{1,64}}/{n:[0-9]{1,4}}")
STYLESHEET = Route("assets/site.css")
IMAGES_PREFIX = "images/"  # where [site] static_dir is served; articles reference their pictures here
IMAGES = Route(IMAGES_PREFIX + "{name:.+}")

# The feeds: the site's, and the same per tag, in each format.  The one list of format
# names (each a file extension: "feed.<name>"); publisher.feeds.build.FORMATS adds what
# a format is (media type, label) to each, and a test keeps the two the same.
FEED_FORMATS = ("rss", "atom", "json")
_FEED_FILE = "feed.{format:" + "|".join(FEED_FORMATS) + "}"
SITE_FEED = Route(_FEED_FILE)
TAG_FEED = Route("tags/{slug:[a-z0-9-]+}/" + _FEED_FILE)

# --- subscribing -------------------------------------------------------------------------

TOKEN = "{token:[A-Za-z0-9._-]{10,400}}"  # a signed token (subscribers.tokens)
SUBSCRIBE = Route("subscribe")  # the sign-up form (GET) and its POST
CONFIRM_AGAIN = Route("confirm")  # POST: a fresh confirmation link for an expired one
CONFIRM = Route(f"confirm/{TOKEN}")
PREFERENCES_REQUEST = Route("preferences")  # "email me my preferences link" (GET form, POST)
PREFERENCES = Route(f"preferences/{TOKEN}")
UNSUBSCRIBE = Route(f"unsubscribe/{TOKEN}")  # the page (GET), its button and RFC 8058 one-click (POST)

# --- the operator dashboard (publisher.web.admin) -------------------------------------------

ADMIN = Route("admin/")  # the overview
ADMIN_SIGN_IN = Route("admin/sign-in")  # email and password (GET form, POST)
ADMIN_SIGN_IN_CODE = Route("admin/sign-in/code")  # the second factor, for an operator with TOTP
ADMIN_SIGN_OUT = Route("admin/sign-out")  # POST
ADMIN_AUDIT = Route("admin/audit")  # the audit log, newest first (?before=ID: the next page)
ADMIN_OPERATORS = Route("admin/operators")  # list (GET), add (POST)
ADMIN_OPERATOR_ROLE = Route("admin/operators/{id:[0-9]{1,18}}/role")  # POST
ADMIN_OPERATOR_REMOVE = Route("admin/operators/{id:[0-9]{1,18}}/remove")  # POST
# The overview's charts (publisher.web.admin.charts), an SVG image each, registered one plain route per name.
ADMIN_CHARTS = ("subscribers", "growth", "messages", "queue", "complaints", "hard-bounces")
ADMIN_CHART = Route("admin/charts/{chart:" + "|".join(ADMIN_CHARTS) + "}.svg")
ADMIN_SETTINGS = Route("admin/settings")  # the effective config (secrets masked), DKIM record, health, webhooks
ADMIN_ACCOUNT = Route("admin/account")  # the signed-in operator's own password and second factor
ADMIN_ACCOUNT_PASSWORD = Route("admin/account/password")  # POST: current and new password
ADMIN_ACCOUNT_TOTP_NEW = Route("admin/account/totp/new")  # POST: a new secret shown, not yet in effect
ADMIN_ACCOUNT_TOTP_ON = Route("admin/account/totp/on")  # POST: that secret and a code from the app
ADMIN_ACCOUNT_TOTP_OFF = Route("admin/account/totp/off")  # POST: the current password
ADMIN_SUBSCRIBERS = Route("admin/subscribers")  # search and filter (GET; ?q=, status, cadence, after=ID)
ADMIN_SUBSCRIBERS_IMPORT = Route("admin/subscribers/import")  # the CSV upload form (GET), the import (POST)
ADMIN_SUBSCRIBERS_EXPORT = Route("admin/subscribers/export")  # a streamed CSV (GET; ?status=, format=)
ADMIN_SUBSCRIBER = Route("admin/subscribers/{subscriber_id:[0-9]{1,18}}")  # the record and its history
ADMIN_SUBSCRIBER_PREFERENCES = Route("admin/subscribers/{subscriber_id:[0-9]{1,18}}/preferences")  # POST
ADMIN_SUBSCRIBER_SUPPRESS = Route("admin/subscribers/{subscriber_id:[0-9]{1,18}}/suppress")  # POST, confirmed
ADMIN_SUBSCRIBER_ERASE = Route("admin/subscribers/{subscriber_id:[0-9]{1,18}}/erase")  # POST, confirmed
# An article id may be a URL: its "/" travel as %2F, so one path segment holds it (at most
# 1,000 characters, each up to three when percent-encoded).
_ARTICLE_ID = "{article_id:[^/]{1,3000}}"
ADMIN_ARTICLES = Route("admin/articles")  # ?state=published|scheduled|draft, ?after=CURSOR: the next page
ADMIN_ARTICLE = Route(f"admin/articles/{_ARTICLE_ID}")  # its record and previews
ADMIN_ARTICLE_PAGE = Route(f"admin/articles/{_ARTICLE_ID}/page")  # the page preview (framed)
ADMIN_ARTICLE_EMAIL = Route(f"admin/articles/{_ARTICLE_ID}/email")  # the email's HTML preview (framed)
ADMIN_ARTICLE_RESEND = Route(f"admin/articles/{_ARTICLE_ID}/resend")  # POST: confirm, then resend
ADMIN_ARTICLE_UNPUBLISH = Route(f"admin/articles/{_ARTICLE_ID}/unpublish")  # POST: confirm, then unpublish
ADMIN_PREVIEW = Route("admin/preview")  # the next digest (?cadence=, ?subscriber=); POST: a test send
ADMIN_PREVIEW_EMAIL = Route("admin/preview/email")  # its HTML (framed), for the same query
ADMIN_DIGESTS = Route("admin/digests")  # newest first (?status=sending|paused|finished, ?before=DIGEST_ID)
ADMIN_DIGEST = Route("admin/digests/{digest_id:[A-Za-z0-9._-]{1,64}}")  # one digest (?after=SUBSCRIBER_ID: failures)
ADMIN_DIGEST_PROGRESS = Route("admin/digests/{digest_id:[A-Za-z0-9._-]{1,64}}/progress")  # JSON, polled
ADMIN_DIGEST_PAUSE = Route("admin/digests/{digest_id:[A-Za-z0-9._-]{1,64}}/pause")  # POST
ADMIN_DIGEST_RESUME = Route("admin/digests/{digest_id:[A-Za-z0-9._-]{1,64}}/resume")  # POST
ADMIN_DIGEST_CANCEL = Route("admin/digests/{digest_id:[A-Za-z0-9._-]{1,64}}/cancel")  # confirm (GET), POST
ADMIN_PROGRESS_SCRIPT = Route("admin/static/progress.js")  # the live progress's script (publisher.web.admin)

# --- operations ----------------------------------------------------------------------------

HEALTHZ = Route("healthz")
READYZ = Route("readyz")
METRICS = Route("metrics")

# The operator API: a sub-application mounted at API_PREFIX; its routes are relative to it.
API_PREFIX = "/api/"
# Ids are 64-bit integers in the store; 18 digits keeps every match inside that range,
# and anything else under /api/subscribers/ is a 404 from the router.
API_SUBSCRIBERS = Route("subscribers")
API_SUBSCRIBER = Route("subscribers/{id:[0-9]{1,18}}")
API_SUBSCRIBER_NAME = "subscriber"  # the router's name for it: a 201's Location is built from it
API_EXPORT = Route("subscribers/export")
API_IMPORT = Route("subscribers/import")
API_BOUNCES = Route("bounces")
API_ARTICLES = Route("articles")
API_ARTICLE = Route("articles/{article_id:.+}")
API_DIGESTS = Route("digests")  # the newest digests; one digest's report (publisher.web.api.digests)
API_DIGEST = Route("digests/{digest_id:[A-Za-z0-9._-]{1,64}}")


# --- links -------------------------------------------------------------------------------


def is_https(site_url: str) -> bool:
    """Whether the site is served over HTTPS: secure cookies, HSTS, RFC 8058 one-click."""
    return site_url.startswith("https://")


def base_path(site_url: str) -> str:
    """The path the site lives under ("/" or "/news/"), for links that work behind a proxy."""
    return urlsplit(site_url).path or "/"


def absolute(site_url: str, path: str) -> str:
    """A path relative to the site root that :mod:`publisher.urls` made (a feed
    document's ``path``, say) as an absolute URL: what WebSub hubs are pinged with."""
    return site_url + path


def article(site_url: str, slug: str) -> str:
    """An article's page: its canonical URL unless its front matter names another."""
    return ARTICLE.url(site_url, slug=slug)


def page(path: str, number: int) -> str:
    """Page ``number`` of a listing at ``path`` (a path or URL): the first is the listing itself."""
    return path if number <= 1 else f"{path}?{PAGE_PARAMETER}={number}"


def tag(site_url: str, tag_slug: str) -> str:
    """A tag's page (its articles, newest first)."""
    return TAG.url(site_url, slug=tag_slug)


def digest(site_url: str, digest_id: str) -> str:
    """A digest's "view in browser" copy."""
    return DIGEST.url(site_url, digest_id=digest_id)


def feed_path(fmt: str, tag_slug: str = "") -> str:
    """A feed's path relative to the site root: ``feed.rss``, ``tags/<slug>/feed.atom``."""
    return TAG_FEED.relative(slug=tag_slug, format=fmt) if tag_slug else SITE_FEED.relative(format=fmt)


def feed(site_url: str, fmt: str, tag_slug: str = "") -> str:
    """A feed's absolute URL (its self link, what WebSub hubs are pinged with)."""
    return absolute(site_url, feed_path(fmt, tag_slug))


def confirm(site_url: str, token: str) -> str:
    return CONFIRM.url(site_url, token=token)


def preferences(site_url: str, token: str) -> str:
    return PREFERENCES.url(site_url, token=token)


def unsubscribe(site_url: str, token: str) -> str:
    """The unsubscribe page, also the target of RFC 8058's one-click POST (``List-Unsubscribe``)."""
    return UNSUBSCRIBE.url(site_url, token=token)


def preferences_request(site_url: str) -> str:
    """Where a reader asks for a link to their preferences: a "view in browser" copy's personal links."""
    return PREFERENCES_REQUEST.url(site_url)


def subscribe(site_url: str) -> str:
    return SUBSCRIBE.url(site_url)


def image(site_url: str, name: str) -> str:
    """A file of ``[site] static_dir`` (``name`` may hold "/": it is a path below the directory)."""
    return site_url + IMAGES_PREFIX + name
