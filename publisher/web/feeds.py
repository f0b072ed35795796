"""Serving the feeds: conditional GET (ETag / Last-Modified → 304) and pre-gzipped bodies.

Feeds are compressed once when they are built (NOTES.md: compressing per request costs
most of the throughput), so a request is a dictionary lookup and a header check.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import format_datetime, parsedate_to_datetime

from aiohttp import web

from publisher.feeds import FeedDocument

FEEDS_PATTERN = r"{path:(tags/[a-z0-9-]+/)?feed\.(rss|atom|json)}"
_GZIP_SUFFIX = '-gzip"'


def _gzip_etag(etag: str) -> str:
    # A strong ETag names one representation, so the gzipped body gets its own.
    return etag[:-1] + _GZIP_SUFFIX


def not_modified(doc: FeedDocument, headers: Mapping[str, str]) -> bool:
    """RFC 9110: If-None-Match wins over If-Modified-Since when both are sent."""
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in candidates or bool(candidates & {doc.etag, _gzip_etag(doc.etag)})
    if_modified_since = headers.get("If-Modified-Since")
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        return since.tzinfo is not None and doc.last_modified.replace(microsecond=0) <= since
    return False


def respond(doc: FeedDocument, request: web.Request) -> web.Response:
    gzip_ok = "gzip" in request.headers.get("Accept-Encoding", "").lower()
    headers = {
        "Last-Modified": format_datetime(doc.last_modified, usegmt=True),
        "ETag": _gzip_etag(doc.etag) if gzip_ok else doc.etag,
        "Cache-Control": "public, max-age=60",
        "Vary": "Accept-Encoding",
    }
    if not_modified(doc, request.headers):
        return web.Response(status=304, headers=headers)
    if gzip_ok:
        headers["Content-Encoding"] = "gzip"
        body = doc.gzipped
    else:
        body = doc.body
    return web.Response(body=body, headers=headers | {"Content-Type": doc.content_type})
