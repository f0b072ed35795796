"""One article's entry in the feeds: prepared once, kept in the store between builds.

Preparing an entry (the content template rendered, its links made absolute) is most of
what an article costs a feed build, and an article sits in several feeds (the site's
and each of its tags'), build after build.  So a prepared :class:`Entry` is plain data,
without the :class:`Article` it came from, and round-trips through JSON: the feed shelf
caches it in the store under the article's id and content hash and
:func:`entry_version`, a digest of everything else that shapes it (the content
template and the templates it uses, ``[site] url``, ``[feeds] max_entry_bytes``, this
module's form).  A template or config change therefore invalidates every cached entry
at once, and nothing has to remember to flush them.  Pure: no disk, no database.
"""

from __future__ import annotations

import hashlib
import html
import json
import mimetypes
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import jinja2
import jinja2.meta
import lxml.etree
import lxml.html

from publisher.content.language import direction
from publisher.content.model import Article
from publisher.feeds.structured import structured_data
from publisher.i18n import FALLBACK, Translator

CONTENT_TEMPLATE = "feed/content.html"
# Bump when prepare() or the JSON form changes: entries cached by an older version are then rendered again.
ENTRY_FORMAT = 4  # 2: the structured data (publisher.feeds.structured); 3: the entry's language; 4: its direction
# Article ids with these schemes are already global URIs and serve as feed ids unchanged. Any
# other value, even one with a colon, is a local key that still needs a namespace.
_URI_ID_SCHEMES = frozenset({"http", "https", "urn", "tag"})
# This uses only the built-in table, never /etc/mime.types, so every machine builds the same
# bytes.
_MIME = mimetypes.MimeTypes()


@dataclass(frozen=True)
class Entry:
    """What one article contributes to every feed it appears in."""

    id: str
    title: str
    url: str  # the article's canonical URL
    author: str
    content_html: str
    summary: str  # plain text
    published: datetime  # UTC
    updated: datetime  # UTC
    categories: tuple[str, ...]
    image_url: str  # "" without a lead image
    image_type: str
    # The article's takeaways, quote, fact tables and language as data (JSON-ready), None
    # without any: the JSON Feed's "_publisher" object and the Atom/RSS namespace's elements.
    structured: dict[str, Any] | None = field(default=None, hash=False)
    language: str = ""  # the article's own BCP 47 tag, "" when it is the site's ([site] language)

    def to_json(self) -> str:
        data = asdict(self) | {"published": self.published.isoformat(), "updated": self.updated.isoformat()}
        return json.dumps(data, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Entry:
        data = json.loads(text)
        return cls(**(data | {
            "published": datetime.fromisoformat(data["published"]).astimezone(UTC),
            "updated": datetime.fromisoformat(data["updated"]).astimezone(UTC),
            "categories": tuple(data["categories"]),
        }))


def entry_id(article: Article, site_url: str) -> str:
    """The permanent id (RSS guid, Atom id, JSON id) of an article's entry.

    It derives from ``article.id`` only, never from the title or URL, so an edit or a new slug
    never makes readers see the article as new.
    """
    if urlsplit(article.id).scheme in _URI_ID_SCHEMES:
        return article.id
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, site_url + article.id)}"


def prepare(article: Article, site_url: str, env: jinja2.Environment, max_entry_bytes: int) -> Entry:
    """``article``'s entry; an entry whose content passes ``max_entry_bytes`` carries its
    summary and a link instead (every feed it is in would repeat it)."""
    image = article.lead_image
    image_url = urljoin(article.canonical_url, image.src) if image else ""
    content = _absolute_links(env.get_template(CONTENT_TEMPLATE).render(article=article), article.canonical_url)
    summary = article.summary or article.subtitle or article.title
    site_language = str(env.globals.get("language", FALLBACK))  # the readers' ([site] language, publisher.i18n)
    if len(content.encode()) > max_entry_bytes:
        # TRANSLATORS: the link of a feed entry too big to carry its article.
        read = Translator(site_language).gettext("Too long for a feed: read the whole article")
        content = (f"<p>{html.escape(summary)}</p>\n<p><a href=\"{html.escape(article.canonical_url)}\">"
                   f"{html.escape(read)}</a></p>")
    # A feed reader shows the content on its own page: a right-to-left article (or site) says so
    # in it, as xml:lang can't (it names the language, not the direction).
    language = article.lang or site_language
    if direction(language) == "rtl":
        content = f'<div dir="rtl" lang="{html.escape(language)}">\n{content}\n</div>'
    return Entry(
        id=entry_id(article, site_url),
        title=article.title,
        url=article.canonical_url,
        author=article.author,
        content_html=content,
        summary=summary,
        published=_utc(article.published),
        updated=_utc(article.updated),
        categories=tuple(dict.fromkeys(c for c in (*article.tags, article.category) if c)),
        image_url=image_url,
        image_type=_media_type(image_url) if image else "",
        structured=structured_data(article),
        language=article.lang,
    )


def entry_version(env: jinja2.Environment, site_url: str, max_entry_bytes: int) -> str:
    """A digest of everything besides the article that shapes its entry: equal versions,
    equal entries (the site's language included).  The templates are read through
    ``env``'s loader, so an operator's override (or an edit of one) counts, as does every
    template the content template imports or includes."""
    language = env.globals.get("language", FALLBACK)  # the entries' own words ("Key takeaways") are in it
    digest = hashlib.sha256(
        f"{ENTRY_FORMAT}\0{site_url}\0{max_entry_bytes}\0{language}\0{lxml.etree.LXML_VERSION}".encode()
    )
    for name, source in _sources(env, CONTENT_TEMPLATE):
        digest.update(f"\0{name}\0{source}".encode())
    return digest.hexdigest()


def _sources(env: jinja2.Environment, root: str) -> Iterable[tuple[str, str]]:
    """``root`` and every template it references, transitively (each once), with its source."""
    assert env.loader is not None  # publisher.templating always sets one
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        source = env.loader.get_source(env, name)[0]
        yield name, source
        todo.extend(ref for ref in jinja2.meta.find_referenced_templates(env.parse(source)) if ref)


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
