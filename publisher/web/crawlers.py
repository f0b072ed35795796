"""What the site tells crawlers: ``/sitemap.xml`` (sitemaps.org protocol 0.9) and ``/robots.txt``.

The sitemap lists the pages worth indexing: the index, the archive's pages, every tag's
page and the articles' pages with the date each last changed (``lastmod``).  It is built
as an XML tree by lxml, so every URL is escaped as XML wants it, never pasted into a
string.  The protocol allows 50,000 URLs in one file: the site's own pages come first and
the newest articles fill the rest.

robots.txt allows everything but the URLs that are personal or act when followed (the
sign-up form, confirmation, preferences and unsubscribe links, counted clicks, the
operator API, health and metrics), and names the sitemap.  Its rules carry the site's
base path; a crawler only reads ``/robots.txt`` at the root of a host, so a site served
under a path needs its proxy to answer that one there.

Pure: the site's URL and what the store lists in, bytes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from lxml import etree

from publisher import urls

SITEMAP_NAMESPACE = "http://www.sitemaps.org/schemas/sitemap/0.9"
MAX_URLS = 50_000  # sitemaps.org: at most 50,000 URLs (and 50 MB) in one sitemap file

# The routes no crawler should follow: personal pages and links that do something.
PRIVATE_ROUTES = (
    urls.SUBSCRIBE, urls.CONFIRM_AGAIN, urls.PREFERENCES_REQUEST, urls.UNSUBSCRIBE, urls.CLICK,
    urls.HEALTHZ, urls.READYZ, urls.METRICS,
)


def page_count(total: int, page_size: int) -> int:
    """How many pages a listing of ``total`` items has (one, empty, when there are none)."""
    return max(1, -(-total // page_size))


def sitemap(site_url: str, articles: Sequence[tuple[str, datetime]], tag_slugs: Sequence[str], page_size: int) -> bytes:
    """The sitemap of the site at ``site_url``: ``articles`` are every published article's
    (slug, last change), newest first (at most :data:`MAX_URLS`); they make the archive's
    pages, ``page_size`` a page."""
    root = etree.Element(f"{{{SITEMAP_NAMESPACE}}}urlset", nsmap={None: SITEMAP_NAMESPACE})
    newest = max((updated for _, updated in articles), default=None)
    pages: list[tuple[str, datetime | None]] = [(urls.INDEX.url(site_url), newest)]
    archive = urls.ARCHIVE.url(site_url)
    pages += [(urls.page(archive, n), None) for n in range(1, page_count(len(articles), page_size) + 1)]
    pages += [(urls.tag(site_url, slug), None) for slug in tag_slugs]
    pages += [(urls.article(site_url, slug), updated) for slug, updated in articles]
    for location, lastmod in pages[:MAX_URLS]:
        entry = etree.SubElement(root, f"{{{SITEMAP_NAMESPACE}}}url")
        etree.SubElement(entry, f"{{{SITEMAP_NAMESPACE}}}loc").text = location
        if lastmod is not None:
            # W3C Datetime, as the protocol asks; in UTC, so equal data give equal bytes.
            stamp = lastmod.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            etree.SubElement(entry, f"{{{SITEMAP_NAMESPACE}}}lastmod").text = stamp
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def robots(site_url: str) -> bytes:
    """The robots.txt of the site at ``site_url``."""
    base = urls.base_path(site_url)
    private = sorted({route.prefix for route in PRIVATE_ROUTES} | {urls.API_PREFIX.lstrip("/")})
    lines = ["User-agent: *", *(f"Disallow: {base}{prefix}" for prefix in private), f"Allow: {base}", "",
             f"Sitemap: {urls.SITEMAP.url(site_url)}", ""]
    return "\n".join(lines).encode()
