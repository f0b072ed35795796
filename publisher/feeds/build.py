"""Articles → RSS 2.0, Atom 1.0 and JSON Feed 1.1 documents, ready to serve as static files.

Each feed is built as bytes once per change, with its gzip twin and ETag computed alongside,
so nginx (``gzip_static``) and the aiohttp handler serve it without any work per request.
The output is deterministic: the same articles give the same bytes, whatever the clock or the
input order. That keeps conditional GETs answering 304 and lets
:func:`publisher.feeds.files.write_feeds` leave unchanged files, and their modification
times, alone.  Pure: articles and settings in, documents out (no disk, no clock).

RSS and Atom come from one feedgen ``FeedGenerator`` per feed. That library has pitfalls, each
handled where it bites: ``add_entry`` prepends by default, it stamps ``now()`` as the build
date, its generator element names its own version, the RSS channel ``<link>`` is whatever
link was added last, and Atom entry links lose their ``rel``/``type``/``length``.

This module is long because the three formats are rendered from one prepared entry and
one channel, and an article is probed in every format before it goes in; split by
format, each half would need the other's private shapes.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import logging
import mimetypes
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import jinja2
import lxml.html
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from publisher import urls
from publisher.config import SiteSettings
from publisher.content.model import Article
from publisher.content.slug import slugify

log = logging.getLogger(__name__)

# Last-Modified of a feed with no entries. It is not 1970 because the W3C validator calls any
# date before 1990 implausible.
EMPTY_FEED_DATE = datetime(2000, 1, 1, tzinfo=UTC)
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
CONTENT_TEMPLATE = "feed/content.html"



@dataclass(frozen=True)
class FeedFormat:
    """One format every feed is published in: what the builder, the static files and the
    pages' ``<link rel="alternate">`` need to know of it.  Its name, and so its paths and
    routes, come from :data:`publisher.urls.FEED_FORMATS`."""

    name: str  # one of urls.FEED_FORMATS: the file's extension
    media_type: str
    label: str  # how a page names it to a reader

    @property
    def file_name(self) -> str:
        """The site feed's file (``feed.<name>``); a tag's is the same under ``tags/<slug>/``."""
        return urls.feed_path(self.name)


FORMATS: dict[str, FeedFormat] = {
    fmt.name: fmt
    for fmt in (
        FeedFormat("rss", "application/rss+xml", "RSS"),
        FeedFormat("atom", "application/atom+xml", "Atom"),
        FeedFormat("json", "application/feed+json", "JSON Feed"),
    )
}
# Article ids with these schemes are already global URIs and serve as feed ids unchanged. Any
# other value, even one with a colon, is a local key that still needs a namespace.
_URI_ID_SCHEMES = frozenset({"http", "https", "urn", "tag"})
# This uses only the built-in table, never /etc/mime.types, so every machine builds the same
# bytes.
_MIME = mimetypes.MimeTypes()


@dataclass(frozen=True)
class FeedDocument:
    """One feed file as served: the body, its gzip twin and its HTTP validators."""

    path: str  # relative to the site root: "feed.rss", "tags/<slug>/feed.atom", …
    body: bytes
    gzipped: bytes
    content_type: str
    etag: str  # strong and quoted: the bytes are deterministic, so equal tags mean equal bodies
    last_modified: datetime  # aware UTC: the newest entry's `updated`

    @classmethod
    def build(cls, path: str, body: bytes, media_type: str, last_modified: datetime) -> FeedDocument:
        """Compress once here (mtime=0 keeps the gzip bytes reproducible), never per request."""
        return cls(
            path=path,
            body=body,
            gzipped=gzip.compress(body, compresslevel=9, mtime=0),
            content_type=f"{media_type}; charset=utf-8",
            etag=f'"{hashlib.sha256(body).hexdigest()}"',
            last_modified=last_modified,
        )


@dataclass(frozen=True)
class _Entry:
    """What one article contributes to every feed it appears in, computed once per build."""

    article: Article
    id: str
    content_html: str
    summary: str  # plain text
    published: datetime  # UTC
    updated: datetime  # UTC
    categories: tuple[str, ...]
    image_url: str  # "" without a lead image
    image_type: str


@dataclass(frozen=True)
class _Channel:
    """The feed-level values that RSS, Atom and JSON share."""

    tag_slug: str  # "" for the site feeds
    title: str
    description: str
    author: str
    language: str
    home_page_url: str
    updated: datetime
    hub: str = ""  # a WebSub hub URL, or ""

    def url(self, fmt: str) -> str:
        return urls.feed(self.home_page_url, fmt, self.tag_slug)


def entry_id(article: Article, site_url: str) -> str:
    """The permanent id (RSS guid, Atom id, JSON id) of an article's entry.

    It derives from ``article.id`` only, never from the title or URL, so an edit or a new slug
    never makes readers see the article as new.
    """
    if urlsplit(article.id).scheme in _URI_ID_SCHEMES:
        return article.id
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, site_url + article.id)}"


def build_feeds(
    articles: Sequence[Article], site: SiteSettings, max_entries: int, env: jinja2.Environment, *, hub: str = "",
    max_tag_feeds: int = 200, max_entry_bytes: int = 100_000,
) -> dict[str, FeedDocument]:
    """The site's RSS, Atom and JSON feeds, plus the same three per tag, keyed by path.

    Entries are newest first by ``published`` (ties by ascending id, so the order never depends
    on the input's) and at most ``max_entries`` per feed.  With a WebSub ``hub``, every feed
    names it (``rel="hub"``; JSON Feed ``hubs``) so readers can subscribe to pushes.  Only the
    ``max_tag_feeds`` tags with the most articles get feeds: one upstream item with 1,500
    categories made 4,500 documents, hundreds of megabytes in memory and on disk.  An entry
    whose content passes ``max_entry_bytes`` carries its summary and a link instead: every
    feed it is in would repeat it, and readers fetch the feed again and again.

    Failures stay where they are: an article that can't be rendered is left out (and
    logged with its id and the reason), and a feed that can't be built is missing while
    the others are built, so a bad article never stops the site's feeds being served.
    """
    ordered = sorted(articles, key=lambda a: (-a.published.timestamp(), a.id))
    selections = [("", site.title, ordered)]
    for slug, (tag, tagged) in _most_used(_tag_groups(ordered), max_tag_feeds).items():
        selections.append((slug, f"{site.title} — {tag}", tagged))

    prepared: dict[str, _Entry | None] = {}

    def entry(article: Article) -> _Entry | None:
        if article.id not in prepared:
            prepared[article.id] = _usable_entry(article, site, env, max_entry_bytes)
        return prepared[article.id]

    docs: dict[str, FeedDocument] = {}
    for tag_slug, title, candidates in selections:
        entries = _first(entry, candidates, max_entries)
        if tag_slug and not entries:
            continue  # every article of this tag was left out: no feed rather than an empty one
        try:
            docs.update(_documents(tag_slug, title, entries, site, hub))
        except Exception as exc:  # noqa: BLE001 - whatever breaks one feed, the others are still served
            paths = ", ".join(urls.feed_path(fmt, tag_slug) for fmt in FORMATS)
            log.error("feeds: %s not built: %s: %s", paths, type(exc).__name__, exc)
    return docs


def _first(entry: Callable[[Article], _Entry | None], candidates: list[Article], limit: int) -> list[_Entry]:
    """The first ``limit`` of ``candidates`` that could be rendered: one left out makes room for the next."""
    chosen: list[_Entry] = []
    for article in candidates:
        if len(chosen) == limit:
            break
        if (prepared := entry(article)) is not None:
            chosen.append(prepared)
    return chosen


def _usable_entry(
    article: Article, site: SiteSettings, env: jinja2.Environment, max_entry_bytes: int
) -> _Entry | None:
    """``article``'s entry, or None (logged with the article's id and the reason) when it can't be rendered.

    The entry is rendered alone into each format first: an article that feedgen, the
    content template or JSON refuses (a control character an old store kept, a naive
    date, a template error) is left out of every feed instead of taking them all down.
    """
    try:
        prepared = _prepare(article, site, env, max_entry_bytes)
        probe = _Channel("", "probe", "probe", "probe", "en", site.url, prepared.updated)
        _xml_feeds(probe, [prepared])
        _json_feed(probe, [prepared])
    except Exception as exc:  # noqa: BLE001 - any failure is this article's alone
        where = f" ({article.source_path})" if article.source_path else ""
        log.error("feeds: article %s%s left out of the feeds: %s: %s", article.id, where, type(exc).__name__, exc)
        return None
    return prepared


def _documents(
    tag_slug: str, title: str, entries: list[_Entry], site: SiteSettings, hub: str
) -> dict[str, FeedDocument]:
    """The RSS, Atom and JSON documents of one feed, keyed by path."""
    channel = _Channel(
        tag_slug=tag_slug,
        title=title,
        description=site.description or title,
        author=site.author or site.title,
        language=site.language,
        home_page_url=site.url,
        updated=max((e.updated for e in entries), default=EMPTY_FEED_DATE),
        hub=hub,
    )
    rss, atom = _xml_feeds(channel, entries)
    bodies = {"rss": rss, "atom": atom, "json": _json_feed(channel, entries)}
    docs: dict[str, FeedDocument] = {}
    for fmt, body in bodies.items():
        path = urls.feed_path(fmt, tag_slug)
        docs[path] = FeedDocument.build(path, body, FORMATS[fmt].media_type, channel.updated)
    return docs


def _tag_groups(ordered: list[Article]) -> dict[str, tuple[str, list[Article]]]:
    """Slug → (tag as spelled by its newest article, that tag's articles newest first).

    Tags are grouped by slug because the slug is the path: "North Korea" and "north korea"
    share one feed instead of overwriting each other's files.
    """
    groups: dict[str, tuple[str, list[Article]]] = {}
    for article in ordered:
        spellings: dict[str, str] = {}
        for tag in article.tags:
            spellings.setdefault(slugify(tag), tag)
        for slug, tag in spellings.items():
            if slug:
                groups.setdefault(slug, (tag, []))[1].append(article)
    return dict(sorted(groups.items()))


def _most_used(
    groups: dict[str, tuple[str, list[Article]]], limit: int
) -> dict[str, tuple[str, list[Article]]]:
    """The ``limit`` tag groups with the most articles (ties by slug), in slug order; the
    number left out is logged, with the busiest of them."""
    if len(groups) <= limit:
        return groups
    ranked = sorted(groups, key=lambda slug: (-len(groups[slug][1]), slug))
    left_out = ranked[limit:]
    log.warning(
        "feeds: %d tags have no feed of their own ([feeds] max_tag_feeds = %d; the tags with the most articles "
        "have one), e.g. %s", len(left_out), limit, ", ".join(repr(groups[slug][0]) for slug in left_out[:5]),
    )
    return {slug: groups[slug] for slug in sorted(ranked[:limit])}


def _prepare(article: Article, site: SiteSettings, env: jinja2.Environment, max_entry_bytes: int) -> _Entry:
    image = article.lead_image
    image_url = urljoin(article.canonical_url, image.src) if image else ""
    content = _absolute_links(env.get_template(CONTENT_TEMPLATE).render(article=article), article.canonical_url)
    summary = article.summary or article.subtitle or article.title
    if len(content.encode()) > max_entry_bytes:
        content = (f"<p>{html.escape(summary)}</p>\n<p><a href=\"{html.escape(article.canonical_url)}\">"
                   "Too long for a feed: read the whole article</a></p>")
    return _Entry(
        article=article,
        id=entry_id(article, site.url),
        content_html=content,
        summary=summary,
        published=_utc(article.published),
        updated=_utc(article.updated),
        categories=tuple(dict.fromkeys(c for c in (*article.tags, article.category) if c)),
        image_url=image_url,
        image_type=_media_type(image_url) if image else "",
    )


def _media_type(url: str) -> str:
    """Guessed from the extension: the enclosure needs a type, and we never fetch the image."""
    return _MIME.guess_type(urlsplit(url).path)[0] or "application/octet-stream"


def _utc(moment: datetime) -> datetime:
    """Normalize to UTC, so the RSS, Atom and JSON dates match and render the same everywhere.

    A naive datetime is refused: treating it as local time would silently shift it.
    """
    if moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} in an article; dates must be timezone-aware")
    return moment.astimezone(UTC)


def _absolute_links(fragment: str, base_url: str) -> str:
    """Resolve every link and image URL in ``fragment`` against ``base_url``.

    Feed readers show content away from our site, where a relative reference points nowhere, and
    the W3C validator flags one. This runs on the rendered template, so it also covers a
    template that an operator overrides.
    """
    root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    # A malformed URL stays as it is rather than failing the whole build.
    root.make_links_absolute(base_url, resolve_base_href=False, handle_failures="ignore")
    children = "".join(lxml.html.tostring(child, encoding="unicode") for child in root)
    return html.escape(root.text or "", quote=False) + children


def _xml_feeds(channel: _Channel, entries: list[_Entry]) -> tuple[bytes, bytes]:
    """RSS and Atom bytes for one feed, both rendered from a single FeedGenerator."""
    fg = FeedGenerator()
    # RSS <author> must be an e-mail address and we only know names, so RSS gets dc:creator.
    fg.load_extension("dc", atom=False, rss=True)
    fg.title(channel.title)
    fg.description(channel.description)
    fg.language(channel.language)
    fg.author(name=channel.author)
    fg.generator("publisher")  # feedgen's default names its version: an upgrade would change bytes
    fg.updated(channel.updated)  # otherwise feedgen stamps now() into lastBuildDate and updated
    for entry in entries:
        _add_entry(fg, entry)
    if channel.hub:
        fg.register_extension("websub", _WebSubHub)
        fg.websub.hub = channel.hub

    # feedgen takes the RSS channel <link> from the last link added: the home page goes last.
    fg.link(href=channel.url("rss"), rel="self", type=FORMATS["rss"].media_type)
    fg.link(href=channel.home_page_url, rel="alternate")
    rss = fg.rss_str(pretty=True)

    fg.id(channel.url("atom"))
    fg.link(href=channel.url("atom"), rel="self", type=FORMATS["atom"].media_type, replace=True)
    fg.link(href=channel.home_page_url, rel="alternate")
    return rss, fg.atom_str(pretty=True)


def _add_entry(fg: FeedGenerator, entry: _Entry) -> None:
    article = entry.article
    fe = fg.add_entry(order="append")  # the default, "prepend", would reverse our order
    fe.guid(entry.id, permalink=entry.id == article.canonical_url)
    fe.title(article.title)
    fe.link(href=article.canonical_url, rel="alternate")
    fe.published(entry.published)
    fe.updated(entry.updated)
    # RSS <description> is HTML by definition: escaping the plain text keeps "<" or "&" in it
    # literal. Atom gets the same string declared as type="html".
    fe.summary(html.escape(entry.summary, quote=False), type="html")
    fe.content(entry.content_html, type="html")
    if article.author:
        fe.author(name=article.author)
        fe.dc.dc_creator(article.author)
    if entry.categories:
        fe.category([{"term": category} for category in entry.categories])
    if entry.image_url:
        fe.register_extension("lead_image", _LeadImageEnclosure)
        fe.lead_image.image(entry.image_url, entry.image_type)


class _LeadImageEnclosure(BaseEntryExtension):
    """The lead image as RSS ``<enclosure>`` and Atom ``<link rel="enclosure">``.

    ``FeedEntry.enclosure()`` can't be used: feedgen 1.0 writes entry links to Atom with their
    href only (lkiesow/python-feedgen#135), so the enclosure would become a second
    rel="alternate" link, which the W3C validator reports as a duplicate.
    """

    def __init__(self) -> None:
        self.url = ""
        self.media_type = ""

    def image(self, url: str, media_type: str) -> None:
        self.url, self.media_type = url, media_type

    # length="0" is what the validators accept when the size is unknown.
    def extend_rss(self, item: Any) -> Any:
        xml_elem("enclosure", item, url=self.url, length="0", type=self.media_type)
        return item

    def extend_atom(self, entry: Any) -> Any:
        xml_elem("link", entry, rel="enclosure", href=self.url, type=self.media_type, length="0")
        return entry


class _WebSubHub(BaseExtension):
    """``<atom:link rel="hub">`` in the RSS channel and ``<link rel="hub">`` in the Atom feed.

    feedgen writes only the ``self`` link into RSS, so the hub goes through an extension.
    """

    def __init__(self) -> None:
        self.hub = ""

    def extend_ns(self) -> dict[str, str]:
        return {"atom": "http://www.w3.org/2005/Atom"}

    def extend_rss(self, rss_feed: Any) -> Any:
        xml_elem("{http://www.w3.org/2005/Atom}link", rss_feed[0], rel="hub", href=self.hub)
        return rss_feed

    def extend_atom(self, atom_feed: Any) -> Any:
        xml_elem("{http://www.w3.org/2005/Atom}link", atom_feed, rel="hub", href=self.hub)
        return atom_feed


def _json_feed(channel: _Channel, entries: list[_Entry]) -> bytes:
    feed = {
        "version": JSON_FEED_VERSION,
        "title": channel.title,
        "home_page_url": channel.home_page_url,
        "feed_url": channel.url("json"),
        "description": channel.description,
        "language": channel.language,
        "authors": [{"name": channel.author}],
        "items": [_json_item(entry, channel.language) for entry in entries],
    }
    if channel.hub:
        feed["hubs"] = [{"type": "WebSub", "url": channel.hub}]
    return json.dumps(feed, ensure_ascii=False, indent=1).encode("utf-8")


def _json_item(entry: _Entry, language: str) -> dict[str, Any]:
    article = entry.article
    item: dict[str, Any] = {
        "id": entry.id,
        "url": article.canonical_url,
        "title": article.title,
        "content_html": entry.content_html,
        "summary": entry.summary,
        "date_published": entry.published.isoformat(),
        "date_modified": entry.updated.isoformat(),
        "language": language,
    }
    if article.author:
        item["authors"] = [{"name": article.author}]
    if entry.categories:
        item["tags"] = list(entry.categories)
    if entry.image_url:
        item["image"] = entry.image_url
    return item
