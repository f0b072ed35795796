"""Serving the feeds: conditional GET (ETag / Last-Modified → 304) and pre-gzipped bodies.

Feeds are compressed once when they are built (compressing per request cost most of
the throughput), and everything a response carries is prepared once per feed
document (:class:`PreparedFeed`): both representations' headers, their ETags, the
HTTP date.  A request is then a dictionary lookup, a header comparison or two and a
copy of a ready header set.  ``bench/feeds.py`` measures the route against a bare
aiohttp handler returning the same bytes.

Conditional requests follow RFC 9110: If-None-Match (weak comparison, lists, ``*``)
wins over If-Modified-Since; a 304 carries the validators and caching headers a 200
would (ETag, Last-Modified, Cache-Control, Vary).  The gzipped body is a
representation of its own with its own strong ETag; a tag of either representation
validates, since both encode the same bytes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC
from email.utils import format_datetime, parsedate_to_datetime
from functools import lru_cache

from aiohttp import web
from multidict import CIMultiDict

from publisher import clock, metrics, urls
from publisher.feeds.build import FeedDocument
from publisher.feeds.shelf import FeedShelf

CACHE_CONTROL = "public, max-age=60"
_GZIP_SUFFIX = '-gzip"'


def gzip_etag(etag: str) -> str:
    """A strong ETag names one representation, so the gzipped body gets its own."""
    return etag[:-1] + _GZIP_SUFFIX


@lru_cache(maxsize=256)
def accepts_gzip(accept_encoding: str) -> bool:
    """Does this Accept-Encoding value allow gzip (RFC 9110 §12.5.3)?

    ``gzip`` (or its alias ``x-gzip``) with a non-zero weight, or ``*`` with one when
    gzip is not named.  Clients send a handful of distinct values, hence the cache.
    """
    named: float | None = None
    wildcard: float | None = None
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        if coding not in ("gzip", "x-gzip", "*"):
            continue
        weight = _weight(params)
        if coding == "*":
            wildcard = weight
        else:
            named = weight if named is None else max(named, weight)
    if named is not None:
        return named > 0
    return wildcard is not None and wildcard > 0


def _weight(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0  # a malformed weight is not an acceptance
    return 1.0


class _Representation:
    """One encoding of a feed: its body and the headers of its 200 and its 304."""

    __slots__ = ("body", "not_modified_headers", "ok_headers")

    def __init__(self, body: bytes, content_type: str, validators: Mapping[str, str],
                 extra_headers: Mapping[str, str], encoding: str | None) -> None:
        self.body = body
        self.not_modified_headers = CIMultiDict({**validators, **extra_headers})
        ok = {"Content-Type": content_type, "Content-Length": str(len(body))}
        if encoding:
            ok["Content-Encoding"] = encoding
        self.ok_headers = CIMultiDict({**ok, **validators, **extra_headers})


class PreparedFeed:
    """A feed document with everything its responses need, built once per document."""

    __slots__ = ("_last_modified_at", "_matching_tags", "_response", "doc", "gzipped", "identity", "last_modified")

    def __init__(self, doc: FeedDocument, extra_headers: Mapping[str, str] | None = None,
                 response_class: type[web.Response] = web.Response) -> None:
        self.doc = doc
        self._response = response_class
        # HTTP dates have whole seconds: compare with what the client can have seen.
        self._last_modified_at = doc.last_modified.astimezone(UTC).replace(microsecond=0)
        self.last_modified = format_datetime(self._last_modified_at, usegmt=True)
        common = {"Last-Modified": self.last_modified, "Cache-Control": CACHE_CONTROL, "Vary": "Accept-Encoding"}
        extra = dict(extra_headers or {})
        self.identity = _Representation(
            doc.body, doc.content_type, {"ETag": doc.etag} | common, extra, None
        )
        self.gzipped = _Representation(
            doc.gzipped, doc.content_type, {"ETag": gzip_etag(doc.etag)} | common, extra, "gzip"
        )
        tags = (doc.etag, gzip_etag(doc.etag))
        # The exact If-None-Match values that validate, for a comparison without parsing.
        self._matching_tags = frozenset((*tags, *(f"W/{tag}" for tag in tags), "*"))

    def respond(self, request: web.BaseRequest) -> web.Response:
        headers = request.headers
        accept = headers.get("Accept-Encoding")
        representation = self.gzipped if accept and accepts_gzip(accept) else self.identity
        if self.not_modified(headers):
            metrics.feed_request(304)
            return self._response(status=304, headers=representation.not_modified_headers)
        metrics.feed_request(200)
        return self._response(body=representation.body, headers=representation.ok_headers)

    def not_modified(self, headers: Mapping[str, str]) -> bool:
        """RFC 9110 §13.2.2: If-None-Match when sent, otherwise If-Modified-Since."""
        if_none_match = headers.get("If-None-Match")
        if if_none_match is not None:
            if if_none_match in self._matching_tags:
                return True
            return any(tag.strip() in self._matching_tags for tag in if_none_match.split(","))
        if_modified_since = headers.get("If-Modified-Since")
        if not if_modified_since:
            return False
        if if_modified_since == self.last_modified:
            return True
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError, IndexError):
            return False  # an invalid date is ignored
        if since.tzinfo is None or since > clock.now():
            return False  # so is one without a zone, or one in the future (RFC 9110 §13.1.3)
        return self._last_modified_at <= since


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FeedRoutes:
    """The feed handlers of one app, serving whatever ``shelf.docs`` holds at the moment.

    A document is prepared the first time it is asked for, and again only when it
    changes; when the shelf replaces its mapping (a rebuild), what was prepared for
    the old one is dropped at once, vanished tags included.  ``extra_headers`` go on
    every feed response (the security headers); responses are ``response_class``.
    """

    def __init__(self, shelf: FeedShelf, extra_headers: Mapping[str, str] | None = None,
                 response_class: type[web.Response] = web.Response) -> None:
        self._shelf = shelf
        self._extra_headers = dict(extra_headers or {})
        self._response_class = response_class
        self._feeds: Mapping[str, FeedDocument] = {}
        self._prepared: dict[str, PreparedFeed] = {}

    def prepared(self, path: str) -> PreparedFeed | None:
        feeds = self._shelf.docs
        if feeds is not self._feeds:
            self._feeds, self._prepared = feeds, {}
        doc = feeds.get(path)
        prepared = self._prepared.get(path)
        if prepared is not None and prepared.doc is doc:
            return prepared
        if doc is None:
            self._prepared.pop(path, None)
            return None
        prepared = self._prepared[path] = PreparedFeed(doc, self._extra_headers, self._response_class)
        return prepared

    def site_handler(self, path: str) -> Handler:
        """The handler of one site feed (its own plain route: the router finds it by one lookup)."""
        prepared_for = self.prepared

        async def feed(request: web.Request) -> web.StreamResponse:
            prepared = prepared_for(path)
            if prepared is None:
                raise _not_found()
            return prepared.respond(request)

        return feed

    async def tag_feed(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        prepared = self.prepared(urls.feed_path(info["format"], info["slug"]))
        if prepared is None:
            raise _not_found()
        return prepared.respond(request)

    def add_routes(self, app: web.Application) -> None:
        """GET (and HEAD) routes for the site feeds and every tag's feeds."""
        for fmt in urls.FEED_FORMATS:
            app.router.add_get(urls.SITE_FEED.fixed(format=fmt), self.site_handler(urls.feed_path(fmt)))
        app.router.add_get(urls.TAG_FEED.path, self.tag_feed)


def _not_found() -> web.HTTPNotFound:
    metrics.feed_request(404)
    return web.HTTPNotFound(text="no such feed")
