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

The three formats are rendered here from one prepared entry (:mod:`.entries`, which
the feed shelf caches in the store) and one channel, and an article is probed in every
format before it goes in; split by format, each half would need the other's private
shapes.  :func:`build_feeds` builds every feed from a list of articles (the reference,
and what a one-off build uses); the shelf builds only the feeds whose input changed,
from the store, with :func:`feed_documents`, :func:`kept_tags` and :func:`usable_entry`.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jinja2
from feedgen.feed import FeedGenerator

from publisher import urls
from publisher.config import SiteSettings
from publisher.content.model import Article
from publisher.content.slug import spelled_slugs
from publisher.feeds.entries import Entry, prepare
from publisher.feeds.extensions import EntryLanguage, LeadImageEnclosure, WebSubHub
from publisher.feeds.structured import JSON_KEY, PREFIX, StructuredEntry, StructuredNamespace

log = logging.getLogger(__name__)

# Last-Modified of a feed with no entries. It is not 1970 because the W3C validator calls any
# date before 1990 implausible.
EMPTY_FEED_DATE = datetime(2000, 1, 1, tzinfo=UTC)
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"


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
    groups = _tag_groups(ordered)
    selections = [("", site.title, ordered)]
    for slug in kept_tags({slug: (tag, len(tagged)) for slug, (tag, tagged) in groups.items()}, max_tag_feeds):
        tag, tagged = groups[slug]
        selections.append((slug, tag_feed_title(site, tag), tagged))

    prepared: dict[str, Entry | None] = {}

    def entry(article: Article) -> Entry | None:
        if article.id not in prepared:
            prepared[article.id] = usable_entry(article, site, env, max_entry_bytes)
        return prepared[article.id]

    docs: dict[str, FeedDocument] = {}
    for tag_slug, title, candidates in selections:
        docs.update(feed_documents(tag_slug, title, _first(entry, candidates, max_entries), site, hub) or {})
    return docs


def _first(entry: Callable[[Article], Entry | None], candidates: list[Article], limit: int) -> list[Entry]:
    """The first ``limit`` of ``candidates`` that could be rendered: one left out makes room for the next."""
    chosen: list[Entry] = []
    for article in candidates:
        if len(chosen) == limit:
            break
        if (prepared := entry(article)) is not None:
            chosen.append(prepared)
    return chosen


def usable_entry(article: Article, site: SiteSettings, env: jinja2.Environment, max_entry_bytes: int) -> Entry | None:
    """``article``'s entry, or None (logged with the article's id and the reason) when it can't be rendered.

    The entry is rendered alone into each format first: an article that feedgen, the
    content template or JSON refuses (a control character an old store kept, a naive
    date, a template error) is left out of every feed instead of taking them all down.
    """
    try:
        prepared = prepare(article, site.url, env, max_entry_bytes)
        probe = _Channel("", "probe", "probe", "probe", "en", site.url, prepared.updated)
        _xml_feeds(probe, [prepared])
        _json_feed(probe, [prepared])
    except Exception as exc:  # noqa: BLE001 - any failure is this article's alone
        where = f" ({article.source_path})" if article.source_path else ""
        log.error("feeds: article %s%s left out of the feeds: %s: %s", article.id, where, type(exc).__name__, exc)
        return None
    return prepared


def tag_feed_title(site: SiteSettings, tag: str) -> str:
    """A tag feed's title: the site's and the tag as spelled by the tag's newest article."""
    return f"{site.title} — {tag}"


def feed_documents(
    tag_slug: str, title: str, entries: Sequence[Entry], site: SiteSettings, hub: str
) -> dict[str, FeedDocument] | None:
    """The RSS, Atom and JSON documents of one feed, keyed by path (none for a tag feed
    without entries: no feed rather than an empty one), or None, logged, when it can't
    be built: whatever breaks one feed, the others are still served."""
    if tag_slug and not entries:
        return {}
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
    try:
        rss, atom = _xml_feeds(channel, entries)
        bodies = {"rss": rss, "atom": atom, "json": _json_feed(channel, entries)}
    except Exception as exc:  # noqa: BLE001 - whatever breaks one feed, the others are still served
        paths = ", ".join(urls.feed_path(fmt, tag_slug) for fmt in FORMATS)
        log.error("feeds: %s not built: %s: %s", paths, type(exc).__name__, exc)
        return None
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
        for slug, tag in spelled_slugs(article.tags).items():
            groups.setdefault(slug, (tag, []))[1].append(article)
    return dict(sorted(groups.items()))


def kept_tags(counts: Mapping[str, tuple[str, int]], limit: int) -> list[str]:
    """The slugs of the ``limit`` tags with the most articles (ties by slug), in slug order,
    from slug → (a spelling, its number of articles); the number left out is logged, with
    the busiest of them."""
    if len(counts) <= limit:
        return sorted(counts)
    ranked = sorted(counts, key=lambda slug: (-counts[slug][1], slug))
    left_out = ranked[limit:]
    log.warning(
        "feeds: %d tags have no feed of their own ([feeds] max_tag_feeds = %d; the tags with the most articles "
        "have one), e.g. %s", len(left_out), limit, ", ".join(repr(counts[slug][0]) for slug in left_out[:5]),
    )
    return sorted(ranked[:limit])


def _xml_feeds(channel: _Channel, entries: Sequence[Entry]) -> tuple[bytes, bytes]:
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
    if any(entry.structured for entry in entries):  # before the entries: each one gets the extension
        fg.register_extension(PREFIX, StructuredNamespace, StructuredEntry)
    for entry in entries:
        _add_entry(fg, entry)
    if channel.hub:
        fg.register_extension("websub", WebSubHub)
        fg.websub.hub = channel.hub

    # feedgen takes the RSS channel <link> from the last link added: the home page goes last.
    fg.link(href=channel.url("rss"), rel="self", type=FORMATS["rss"].media_type)
    fg.link(href=channel.home_page_url, rel="alternate")
    rss = fg.rss_str(pretty=True)

    fg.id(channel.url("atom"))
    fg.link(href=channel.url("atom"), rel="self", type=FORMATS["atom"].media_type, replace=True)
    fg.link(href=channel.home_page_url, rel="alternate")
    return rss, fg.atom_str(pretty=True)


def _add_entry(fg: FeedGenerator, entry: Entry) -> None:
    fe = fg.add_entry(order="append")  # the default, "prepend", would reverse our order
    fe.guid(entry.id, permalink=entry.id == entry.url)
    fe.title(entry.title)
    fe.link(href=entry.url, rel="alternate")
    fe.published(entry.published)
    fe.updated(entry.updated)
    # RSS <description> is HTML by definition: escaping the plain text keeps "<" or "&" in it
    # literal. Atom gets the same string declared as type="html".
    fe.summary(html.escape(entry.summary, quote=False), type="html")
    fe.content(entry.content_html, type="html")
    if entry.language:
        # Atom says an entry's language with xml:lang (RFC 4287 §2); RSS 2.0 has a language for
        # the channel only: an RSS item says its own in the publisher namespace's <lang> alone.
        fe.register_extension("language", EntryLanguage, rss=False)
        fe.language.tag = entry.language
    if entry.author:
        fe.author(name=entry.author)
        fe.dc.dc_creator(entry.author)
    if entry.categories:
        fe.category([{"term": category} for category in entry.categories])
    if entry.image_url:
        fe.register_extension("lead_image", LeadImageEnclosure)
        fe.lead_image.image(entry.image_url, entry.image_type)
    if entry.structured:
        getattr(fe, PREFIX).data = entry.structured


def _json_feed(channel: _Channel, entries: Sequence[Entry]) -> bytes:
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


def _json_item(entry: Entry, language: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": entry.id,
        "url": entry.url,
        "title": entry.title,
        "content_html": entry.content_html,
        "summary": entry.summary,
        "date_published": entry.published.isoformat(),
        "date_modified": entry.updated.isoformat(),
        "language": entry.language or language,  # JSON Feed 1.1: an item's own language
    }
    if entry.author:
        item["authors"] = [{"name": entry.author}]
    if entry.categories:
        item["tags"] = list(entry.categories)
    if entry.image_url:
        item["image"] = entry.image_url
    if entry.structured:
        item[JSON_KEY] = entry.structured
    return item
