"""An upstream RSS or Atom feed (a WordPress or Ghost blog, say) → :class:`Article`.

Pure: bytes in, articles out, no network and no clock of its own (``now`` is passed
in), so it is tested without a server and a fetcher only adds the HTTP around it.

A blog's feed is not written for us: its HTML carries comment forms, share buttons
and "The post … appeared first on …" footers, and it puts the parts our renderers
show on their own (key takeaways, fact tables, a pull quote, the lead image) inside
the body.  This module drops the first and lifts out the second, with the rules it
shares with the Markdown source (:mod:`publisher.content.extract`), so every renderer
gets the same shape of :class:`Article` wherever it came from.

Upstream HTML is not ours to fix: a ragged table is widened rather than reported,
a missing date falls back to another date.  What cannot become an article (no link,
a repeated id) is reported as a :class:`Problem` and the other items carry on.

This module is long because the boilerplate, takeaways, tables, quotes and images of a blog's HTML
are each lifted out of one lxml tree in an order that matters (see ``_body``); the
rules it shares with the Markdown parser are in :mod:`publisher.content.extract`.
"""

from __future__ import annotations

import calendar
import copy
import hashlib
import html
import io
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser  # type: ignore[import-untyped]
import lxml.html  # type: ignore[import-untyped]

from publisher.content.extract import is_takeaways_marker, sources_note, split_cite, without_cite_dash
from publisher.content.html import sanitize_html
from publisher.content.takeaways import with_generated
from publisher.content import model
from publisher.content.slug import capped_slug
from publisher.content.text import BodyParts, absolute_http, capped_table, cell_alignment, element_text, html_fragment, html_text, one_line, table_alignment, truncate, unique

Element = Any  # lxml.html.HtmlElement; lxml ships no type hints

_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_LISTS = ("ul", "ol")
_TITLE_LIMIT = 80  # a title made from the text of an untitled item

_APPEARED_FIRST = re.compile(r"the post .+ appeared first on .+", re.IGNORECASE | re.DOTALL)
_COMMENTS_HEADING = re.compile(
    r"leave a (?:reply|comment)|(?:\d+|one|no) (?:comments?|responses?|replies|thoughts? on [“\"'«].+)",
    re.IGNORECASE,
)
# A class or id token of a comment area or share widget (not "correspondent": whole parts only),
# looked for on containers only: a heading's id is made from its text ("market-share").
_BOILERPLATE_TOKEN = re.compile(
    r"(?:^|[-_])(?:respond|comment-form|comments|sharedaddy|sharing|share|addtoany|a2a)(?:$|[-_])",
    re.IGNORECASE,
)
_SHARE_LINK = re.compile(
    r"(?:twitter\.com|x\.com)/(?:intent|share)|facebook\.com/shar|linkedin\.com/(?:shar|cws/share)"
    r"|reddit\.com/submit|pinterest\.\w+/pin/create|api\.whatsapp\.com/send|wa\.me/\?|t\.me/share"
    r"|^mailto:\?",
    re.IGNORECASE,
)
# Never article content: code, embedded pages, lazy-load duplicates and form controls.
_DROPPED_TAGS = (
    "script", "style", "noscript", "template", "iframe", "form", "input", "textarea", "select", "button",
)  # fmt: skip
_CONTAINERS = ("div", "section", "aside", "footer", "nav", "ul", "ol", "p", "span")
# What feedparser calls "bozo" but reads correctly: a charset or Content-Type that disagrees.
_BENIGN = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)
_EXCERPT_END = re.compile(r"\s*(?:\[(?:…|\.\.\.)\]|…|\.\.\.)\s*$")
_IMAGE_SUFFIX = re.compile(r"\.(?:jpe?g|png|gif|webp|avif|svg)$", re.IGNORECASE)
_DATE_KEYS = ("published_parsed", "created_parsed", "updated_parsed")  # what feedparser reads an item's dates into
_PAGE_SUFFIX = re.compile(r"\.(?:html?|php|aspx?)$", re.IGNORECASE)
_CHARACTER_REFERENCE = re.compile(rb"&#(x[0-9a-f]+|[0-9]+);", re.IGNORECASE)


def _no_impossible_character(reference: re.Match[bytes]) -> bytes:
    """``&#xFFFD;`` for a reference to a surrogate or past U+10FFFF, else the reference as is.

    feedparser's fallback parser turns a reference into a character without a check, and
    one ``&#xD800;`` in one item made it raise and cost every item of the feed.
    """
    number = reference.group(1)
    code = int(number[1:], 16) if number[:1] in (b"x", b"X") else int(number)
    return b"&#xFFFD;" if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF else reference.group()


@dataclass
class FeedScan(model.ScanResult):
    """A :class:`ScanResult` that also says whether the bytes were a feed at all.

    A fetcher must not remember the validators of a response that was an error page
    served with status 200: it would then be told "304, unchanged" until the page
    changes, and never read the feed.
    """

    is_feed: bool = True
    title: str = ""  # the feed's own title, for messages
    undated: set[str] = field(default_factory=set)  # ids of the articles dated by a fallback (no date of their own)


class _ItemError(Exception):
    """Why one item cannot become an article."""


_Parsed = tuple[model.Article, list[str]] | str  # an item's article and warnings, or why it has none


class ParsedItems:
    """The articles a feed's items made at its last parse, so a refetch that answers 200
    with the same items (a server that ignores conditional GET, or a feed whose other
    items changed) does not clean, sanitize and lift the HTML out of them again.

    An item is known by a digest of everything that decides its article: the item as
    feedparser read it, the feed's URL and author, and the limits.  Only the items of
    the last parse are kept, so the memory is bounded by the feed's size.  One per feed,
    used by one parse at a time (a fetcher fetches once at a time).
    """

    def __init__(self) -> None:
        self._last: dict[str, _Parsed] = {}
        self._now: dict[str, _Parsed] = {}

    def turn(self) -> None:
        """Start a parse: what the previous one kept is what this one may reuse."""
        self._last, self._now = self._now, {}

    def recall(self, digest: str) -> _Parsed | None:
        return self._now.get(digest) or self._last.get(digest)

    def keep(self, digest: str, parsed: _Parsed) -> None:
        self._now[digest] = parsed


def parse_feed(
    data: bytes, feed_url: str, *, now: datetime, content_type: str = "",
    limits: model.ContentLimits = model.ContentLimits(), items: ParsedItems | None = None,
) -> FeedScan:
    """Turn the bytes of an RSS or Atom feed into articles, newest first, then by id.

    ``feed_url`` resolves relative links and names the feed in problems; ``now`` is
    the date of last resort for an item without any; ``content_type`` is the HTTP
    header, whose charset feedparser honours (without one the XML declaration decides).
    What an item has past ``limits`` is left out, with a warning naming the item; a title
    longer than ``limits.max_title_length`` is cut at a word, with a warning.
    ``items``: the feed's articles of the last parse, reused for the items unchanged
    since (and updated with this parse's).
    """
    # A stream, never bytes or str: feedparser treats a string as a URL or a file name.
    parsed = feedparser.parse(
        io.BytesIO(_CHARACTER_REFERENCE.sub(_no_impossible_character, data)),
        response_headers={"content-location": feed_url, "content-type": content_type or "application/xml"},
        sanitize_html=False,  # sanitize_html() does it, after the structure has been read
        resolve_relative_uris=False,  # resolved against the item's link, see _body
    )
    feed = parsed.get("feed", {})
    result = FeedScan(title=html_text(feed.get("title", "")))
    error = parsed.get("bozo_exception")
    if not parsed.entries and (not parsed.get("version") or (error and not isinstance(error, _BENIGN))):
        reason = error or "no RSS or Atom root element"
        result.is_feed = False
        result.problems.append(model.Problem(feed_url, 0, f"not an RSS or Atom feed: {reason}"))
        return result
    feed_date = _date(feed, "updated_parsed") or _date(feed, "published_parsed")
    feed_author = _person(feed)
    owners: dict[tuple[str, str], int] = {}  # ("id" or "slug", value) → number of the item using it
    if items is not None:
        items.turn()
    for number, entry in enumerate(parsed.entries, start=1):
        item_id = _item_id(entry, feed_url)
        label = f"item {number} ({item_id or 'no id'})"
        try:
            article, warnings = _known_article(entry, item_id, feed_url, feed_date or now, feed_author, limits, items)
            if ("id", article.id) in owners:  # as cleaned: two guids may differ only in a control character
                raise _ItemError(f"duplicate id {article.id!r} (also item {owners['id', article.id]})")
            if ("slug", article.slug) in owners:
                raise _ItemError(f"duplicate slug {article.slug!r} (also item {owners['slug', article.slug]})")
        except _ItemError as exc:
            result.problems.append(model.Problem(feed_url, 0, f"{label}: {exc}"))
            continue
        except Exception as exc:  # noqa: BLE001 (one broken item must not cost the others)
            result.problems.append(model.Problem(feed_url, 0, f"{label}: cannot read it: {type(exc).__name__}: {exc}"))
            continue
        if len(article.title) > limits.max_title_length:
            article = replace(article, title=truncate(article.title, limits.max_title_length))
            message = f"{label}: title is longer than {limits.max_title_length} characters: cut to {article.title!r}"
            result.problems.append(model.Problem(feed_url, 0, message, model.Severity.WARNING))
        owners["id", article.id] = owners["slug", article.slug] = number
        result.problems += [
            model.Problem(feed_url, 0, f"{label}: {warning}", model.Severity.WARNING) for warning in warnings
        ]
        result.articles.append(article)
        if not any(_date(entry, key) for key in _DATE_KEYS):
            result.undated.add(article.id)
    result.articles.sort(key=lambda article: article.id)
    result.articles.sort(key=lambda article: article.published, reverse=True)
    return result


# --- one item -------------------------------------------------------------------------


def _known_article(
    entry: Any, item_id: str, feed_url: str, fallback_date: datetime, feed_author: str, limits: model.ContentLimits,
    items: ParsedItems | None,
) -> tuple[model.Article, list[str]]:
    """:func:`_article`, reused from ``items`` when the item is unchanged since the last
    parse.  An undated item takes this parse's ``fallback_date`` (the feed's date or
    now): it is the only input outside the digest."""
    if items is None:
        return _article(entry, item_id, feed_url, fallback_date, feed_author, limits)
    # feedparser reads the same bytes into the same dicts, in the same order: their repr is the item.
    digest = hashlib.sha256(repr((feed_url, feed_author, limits, entry)).encode()).hexdigest()
    parsed = items.recall(digest)
    if parsed is None:
        try:
            parsed = _article(entry, item_id, feed_url, fallback_date, feed_author, limits)
        except _ItemError as exc:  # as true next time: not worth parsing again either
            parsed = str(exc)
    items.keep(digest, parsed)
    if isinstance(parsed, str):
        raise _ItemError(parsed)
    article, warnings = parsed
    if not any(_date(entry, key) for key in _DATE_KEYS) and article.published != fallback_date:
        article = replace(article, published=fallback_date, updated=fallback_date)
    return article, list(warnings)


def _article(
    entry: Any, item_id: str, feed_url: str, fallback_date: datetime, feed_author: str, limits: model.ContentLimits
) -> tuple[model.Article, list[str]]:
    """The item as an article, and warnings about what ``limits`` left out of it."""
    warnings: list[str] = []
    if not item_id:
        raise _ItemError("no guid, id or link")
    if len(item_id) > model.MAX_ID_LENGTH:
        raise _ItemError(f"guid longer than {model.MAX_ID_LENGTH} characters")
    link = _link(entry, item_id, feed_url)
    published, updated = _dates(entry, fallback_date)
    body = _body(_content(entry), link, limits, warnings)
    summary = _summary(entry, body)
    title = entry.get("title", "")
    title = html_text(title) if _is_html(entry.get("title_detail")) else _text(title)
    title = title or truncate(summary, _TITLE_LIMIT)  # RSS allows untitled items
    if not title:
        raise _ItemError("no title and no text")
    lead = _feed_images(entry, link)
    tags = unique((t for tag in entry.get("tags", []) if (t := _text(tag.get("label") or tag.get("term") or ""))), str)
    if len(tags) > limits.max_tags:  # each tag is three feed documents
        warnings.append(f"{len(tags)} tags: only the first {limits.max_tags} are kept "
                        f"([content] max_tags = {limits.max_tags})")
    article = model.Article(
        id=item_id,
        slug=_slug(link, title, item_id),
        title=title,
        published=published,
        updated=updated,
        canonical_url=link,
        author=_person(entry) or feed_author,
        tags=tags[: limits.max_tags],
        images=_with_body_details(lead, body.images),
        summary=summary,
        takeaways=tuple(body.takeaways),
        quotes=tuple(body.quotes),
        body_html=body.html,
        fact_tables=tuple(body.fact_tables),
        source_path=feed_url,
    )
    return with_generated(article, limits.takeaways), warnings


def _item_id(entry: Any, feed_url: str) -> str:
    """The guid (RSS) or id (Atom), else the link: what a feed reader keys on too."""
    guid = _text(entry.get("id", ""))
    if guid:
        return guid
    link = _text(entry.get("link", ""))
    return urljoin(feed_url, link) if link else ""


def _link(entry: Any, item_id: str, feed_url: str) -> str:
    link = _text(entry.get("link", ""))
    if not link and urlsplit(item_id).scheme in {"http", "https"}:
        link = item_id  # a permalink guid is the link
    if not link:
        raise _ItemError("no link")
    absolute = absolute_http(feed_url, link)
    if not absolute:
        raise _ItemError(f"link {urljoin(feed_url, link)!r} is not an http(s) URL")
    return absolute


def keep_first_dates(scan: FeedScan, stored: Mapping[str, model.Article]) -> list[model.Article]:
    """The scan's articles, each undated one with the dates it was first stored with.

    An item without a date of its own is dated by the feed's build date or the time of
    the fetch, which change at every fetch: it would otherwise be stored as an edit
    each time.  ``stored`` holds the stored articles of (at least) ``scan.undated``.
    An item whose text changed is still an edit, dated by this fetch; one whose generated
    takeaways alone changed ([content] takeaways switched) is not
    (:func:`~publisher.content.model.same_authored`).
    """
    kept = []
    for article in scan.articles:
        before = stored.get(article.id) if article.id in scan.undated else None
        if before is not None:
            same = replace(article, published=before.published, updated=before.updated)
            edited = not model.same_authored(same.content_hash(), before.content_hash())
            article = replace(same, updated=max(article.updated, before.updated)) if edited else same
        kept.append(article)
    return kept


def _dates(entry: Any, fallback: datetime) -> tuple[datetime, datetime]:
    """(published, updated): a missing one takes the other, then the feed's date or now.

    An updated date before the publication date (a clock or an import gone wrong
    upstream) becomes the publication date: the model promises ``updated >= published``.
    """
    published, created, updated = (_date(entry, key) for key in _DATE_KEYS)
    published = published or created
    published = published or updated or fallback
    updated = updated or published
    return published, max(published, updated)


def _date(data: Any, key: str) -> datetime | None:
    """feedparser's UTC ``struct_time`` → an aware datetime.

    ``dict.get`` because feedparser's own lookup answers "updated" with the published
    date (and a DeprecationWarning) when there is none, and we want to know.
    """
    value = dict.get(data, key)
    if not isinstance(value, time.struct_time):
        return None
    return datetime.fromtimestamp(calendar.timegm(value), UTC)


def _person(data: Any) -> str:
    detail = data.get("author_detail") or {}
    return _text(detail.get("name") or data.get("author") or "")


def _slug(link: str, title: str, item_id: str) -> str:
    """The link's last path segment (WordPress and Ghost put the post's slug there), else the title."""
    segment = _PAGE_SUFFIX.sub("", PurePosixPath(urlsplit(link).path).name)
    slug = capped_slug(segment, model.MAX_SLUG_LENGTH) or capped_slug(title, model.MAX_SLUG_LENGTH)
    return slug or "item-" + hashlib.sha256(item_id.encode()).hexdigest()[:12]


def _content(entry: Any) -> tuple[str, bool]:
    """(text, is_html) of the fullest body: content:encoded or Atom content, else the description."""
    contents = [c for c in entry.get("content", []) if c.get("value")]
    contents.sort(key=lambda c: not _is_html(c))  # HTML or XHTML first, stable otherwise
    if contents:
        return contents[0]["value"], _is_html(contents[0])
    summary = entry.get("summary", "")
    detail = entry.get("summary_detail") or {}
    # feedparser lets media:description overwrite summary_detail: trust its type only if it matches.
    return summary, detail.get("value") != summary or _is_html(detail)


def _is_html(detail: Any) -> bool:
    return bool(detail) and detail.get("type", "text/html") in {"text/html", "application/xhtml+xml", "html", "xhtml"}


# --- the body -------------------------------------------------------------------------


def _body(content: tuple[str, bool], link: str, limits: model.ContentLimits, warnings: list[str]) -> BodyParts:
    """Clean the body, lift out what renderers show on their own, and sanitize the rest
    (tables past ``limits`` stay in the body only: said in ``warnings``).

    Order matters: boilerplate goes first so a comment form's heading is never a
    table caption and a share widget's list is never the takeaways.
    """
    text, is_html = content
    root = html_fragment(text if is_html else _paragraphs(text))
    _strip_boilerplate(root)
    _align_cells(root)
    takeaways = _cut_takeaways(root)
    return BodyParts(
        html=sanitize_html(_inner_html(root), base_url=link),
        first_paragraph=_first_paragraph(root),
        takeaways=takeaways,
        fact_tables=_fact_tables(root, limits, warnings),
        quotes=[quote for quote in map(_quote, _blockquotes(root)) if quote.text][:1],
        images=list(_body_images(root, link)),
    )


def _paragraphs(text: str) -> str:
    """Plain text (Atom type="text") → paragraphs, one per blank-line-separated block."""
    blocks = [block.strip() for block in re.split(r"\n\s*\n", text)]
    return "".join(f"<p>{html.escape(block)}</p>" for block in blocks if block)


def _inner_html(root: Element) -> str:
    children = "".join(lxml.html.tostring(child, encoding="unicode") for child in root)
    return html.escape(root.text or "", quote=False) + children


def _strip_boilerplate(root: Element) -> None:
    """Drop what the blog adds around every post; none of it belongs in a newsletter."""
    for element in list(root.iter(*_DROPPED_TAGS)):
        element.drop_tree()
    for element in list(root.iter(*_CONTAINERS)):
        tokens = [*(element.get("class") or "").split(), element.get("id") or ""]
        if any(_BOILERPLATE_TOKEN.search(token) for token in tokens if token):
            element.drop_tree()
    for link in list(root.iter("a")):
        if _SHARE_LINK.search(link.get("href") or ""):
            parent = link.getparent()
            link.drop_tree()
            _drop_if_empty(parent, root)
    for image in list(root.iter("img")):
        if _is_tracking_pixel(image):
            image.drop_tree()
    for heading in list(root.iter(*_HEADINGS)):
        if heading.getparent() is not None and _COMMENTS_HEADING.fullmatch(element_text(heading)):
            # The comment section runs to the next heading of the same rank or higher.
            for sibling in list(heading.itersiblings()):
                if sibling.tag in _HEADINGS and sibling.tag <= heading.tag:
                    break
                sibling.drop_tree()
            heading.drop_tree()
    for paragraph in list(root.iter("p")):
        if paragraph.getparent() is not None and _APPEARED_FIRST.fullmatch(element_text(paragraph)):
            paragraph.drop_tree()


def _drop_if_empty(element: Element, root: Element) -> None:
    """Drop ``element`` and then its ancestors while nothing readable is left in them."""
    while element is not None and element is not root and not element_text(element) and not element.findall(".//img"):
        parent = element.getparent()
        element.drop_tree()
        element = parent


def _is_tracking_pixel(image: Element) -> bool:
    return any((image.get(size) or "").strip() in {"0", "1"} for size in ("width", "height"))


def _cut_takeaways(root: Element) -> list[str]:
    """Remove the first "Key Takeaways" heading (or paragraph) through its list; return the items.

    As in the Markdown source, what lies between the heading and the list goes with
    them; a heading's list may come after a short introduction, a paragraph's must
    follow it directly.
    """
    for marker in root.iter(*_HEADINGS, "p"):
        if not is_takeaways_marker(element_text(marker)):
            continue
        between: list[Element] = []
        for sibling in marker.itersiblings():
            if not isinstance(sibling.tag, str):  # a comment
                continue
            if sibling.tag in _HEADINGS:
                break
            found = sibling if sibling.tag in _LISTS else next(sibling.iter(*_LISTS), None)
            if found is not None:
                items = [text for item in found.iterchildren("li") if (text := element_text(item))]
                container = found.getparent()
                for element in [marker, *between, found]:
                    element.drop_tree()
                if container is not sibling.getparent():  # the list sat inside a wrapper
                    _drop_if_empty(container, root)
                return items
            if marker.tag == "p":
                break
            between.append(sibling)
    return []


def _align_cells(root: Element) -> None:
    """A cell aligned by ``style="text-align: …"`` gets the ``align`` attribute, which the
    sanitizer keeps (it drops every style); an invalid ``align`` goes."""
    for cell in root.iter("th", "td"):
        if align := cell_alignment(cell.get("align"), cell.get("style")):
            cell.set("align", align)
        else:
            cell.attrib.pop("align", None)


def _fact_tables(root: Element, limits: model.ContentLimits, warnings: list[str]) -> list[model.FactTable]:
    """Every table with cells, but not one nested in another (it is part of its parent's cell),
    up to ``limits.max_tables``, each cut to ``limits.max_table_cells``.

    One pass in document order remembers the last heading, the caption of a table
    without its own: looking back from each table made thousands of tables quadratic.
    """
    heading, tables = "", []
    for element in root.iter(*_HEADINGS, "table"):
        if element.tag in _HEADINGS:
            heading = element_text(element)
        elif not any(ancestor.tag == "table" for ancestor in element.iterancestors()):
            if (fact_table := _fact_table(element, heading)) is not None:
                tables.append(capped_table(fact_table, limits.max_table_cells))
    if len(tables) > limits.max_tables:
        warnings.append(f"{len(tables)} tables: only the first {limits.max_tables} are fact tables, the rest stay "
                        f"in the body ([content] max_tables = {limits.max_tables})")
    warnings += [
        f"table {number} has more than {limits.max_table_cells} cells: emails show its first {len(table.rows)} "
        f"rows, the article all {len(table.rows) + table.more_rows} ([content] max_table_cells = "
        f"{limits.max_table_cells})"
        for number, table in enumerate(tables[: limits.max_tables], start=1) if table.more_rows
    ]
    return tables[: limits.max_tables]


def _fact_table(table: Element, heading: str) -> model.FactTable | None:
    """Plain text cells, a caption (else the nearest ``heading`` above) and the "Sources:" note that follows the table.

    The header is the first ``<thead>`` row, else the first row.  A row longer than
    the header widens the table (blank header cells) and a short one is padded, so no
    cell is lost and every row has ``len(header)`` cells as the model promises.
    """
    rows = _grid(table)
    if not rows:
        return None
    in_head = [index for index, (tr, _) in enumerate(rows) if tr.getparent().tag == "thead"]
    header_row, header = rows.pop(in_head[0] if in_head else 0)
    width = max(len(cells) for cells in [header, *(cells for _, cells in rows)])

    def pad(cells: list[str]) -> tuple[str, ...]:
        return tuple(cells + [""] * (width - len(cells)))

    body = tuple(pad(cells) for _, cells in rows)
    align = table_alignment([*_row_alignment(header_row), *[""] * width][:width])
    return model.FactTable(_table_caption(table, heading), pad(header), body, _table_sources(table), align)


def _row_alignment(tr: Element) -> list[str]:
    """Each column's alignment as the header row sets it (a cell spanning columns sets them all)."""
    return [cell.get("align") or "" for cell in tr.iterchildren("td", "th") for _ in range(_span(cell, "colspan"))]


def _grid(table: Element) -> list[tuple[Element, list[str]]]:
    """(row, plain text cells) of rows with cells; a spanned cell's other places are blank."""
    covered: dict[int, int] = {}  # column → rows below still covered by a rowspan
    grid = []
    for tr in table.xpath("./tr|./thead/tr|./tbody/tr|./tfoot/tr"):
        row: list[str] = []
        for cell in tr.iterchildren("td", "th"):
            _skip_covered(row, covered)
            text, across, down = element_text(cell), _span(cell, "colspan"), _span(cell, "rowspan")
            for offset in range(across):
                if down > 1:
                    covered[len(row)] = down - 1
                row.append("" if offset else text)
        _skip_covered(row, covered)
        if row:
            grid.append((tr, row))
    return grid


def _skip_covered(row: list[str], covered: dict[int, int]) -> None:
    """Blank cells where a rowspan from above covers the next columns."""
    while covered.get(len(row), 0) > 0:
        covered[len(row)] -= 1
        row.append("")


def _span(cell: Element, attribute: str) -> int:
    try:
        return min(max(int(cell.get(attribute) or 1), 1), 100)  # 0 ("to the end") counts as 1
    except ValueError:
        return 1


def _table_caption(table: Element, heading: str) -> str:
    """``<caption>``, else the ``<figcaption>`` of a WordPress table block, else ``heading`` (the nearest above)."""
    caption = table.find("caption")
    if caption is not None and element_text(caption):
        return element_text(caption)
    parent = table.getparent()
    if parent is not None and parent.tag == "figure":
        figcaption = parent.find("figcaption")
        if figcaption is not None and element_text(figcaption):
            return element_text(figcaption)
    return heading


def _table_sources(table: Element) -> str:
    """The text after "Data Sources:" (or "Source:") in the paragraph right after the table."""
    block = table
    parent = table.getparent()
    if parent is not None and parent.tag == "figure":  # WordPress wraps tables in a figure
        block = parent
    note = block.getnext()
    if note is None or note.tag != "p":
        return ""
    return sources_note(element_text(note))


def _quote(blockquote: Element) -> model.Quote:
    """A blockquote's text; its ``<cite>``/``<footer>``, or a last line starting with a dash, is the speaker."""
    cite = ""
    quote = copy.deepcopy(blockquote)  # the body keeps its attribution
    for attribution in quote.xpath("./cite|./footer"):
        cite = cite or element_text(attribution)
        attribution.drop_tree()
    lines = [text for p in quote.iter("p") if (text := element_text(p))] or [element_text(quote)]
    if cite:
        cite = without_cite_dash(cite)
    else:
        lines, cite = split_cite(lines)
    return model.Quote(" ".join(line for line in lines if line), cite.strip())


def _blockquotes(root: Element) -> Iterator[Element]:
    """Blockquotes not inside another one; embedded posts (tweets) are not pull quotes."""
    for element in root.iter("blockquote"):
        classes = element.get("class") or ""
        if "tweet" not in classes and "instagram" not in classes and not any(
            ancestor.tag == "blockquote" for ancestor in element.iterancestors()
        ):
            yield element


def _first_paragraph(root: Element) -> str:
    paragraphs = root.xpath(".//p[not(ancestor::blockquote or ancestor::table or ancestor::li or ancestor::figure)]")
    return next((text for p in paragraphs if (text := element_text(p))), "") or element_text(root)


# --- images ---------------------------------------------------------------------------


def _feed_images(entry: Any, link: str) -> list[model.Image]:
    """The lead image the feed names: an image enclosure, else media:content, else media:thumbnail."""
    enclosures = [
        e.get("href", "")
        for e in entry.get("links", [])
        if e.get("rel") == "enclosure" and _is_image(e.get("type", ""), e.get("href", ""))
    ]
    media = [
        m.get("url", "")
        for m in entry.get("media_content", [])
        if m.get("medium") == "image" or _is_image(m.get("type", ""), m.get("url", ""))
    ]
    thumbnails = [t.get("url", "") for t in entry.get("media_thumbnail", [])]
    urls = enclosures or media or thumbnails
    return [model.Image(src) for url in urls[:1] if (src := absolute_http(link, url))]


def _is_image(mime_type: str, url: str) -> bool:
    if mime_type:
        return mime_type.lower().startswith("image/")
    return bool(_IMAGE_SUFFIX.search(urlsplit(url).path))


def _body_images(root: Element, link: str) -> Iterator[model.Image]:
    """Images in the body with alt text and the caption of their figure; never emoji."""
    for image in root.iter("img"):
        src = image.get("src") or ""
        if not src or src.startswith("data:"):  # a lazy-loading placeholder
            src = image.get("data-src") or image.get("data-lazy-src") or ""
        classes = image.get("class") or ""
        if "wp-smiley" in classes or "emoji" in classes or not (src := absolute_http(link, src)):
            continue
        figure = next((a for a in image.iterancestors() if a.tag == "figure"), None)
        figcaption = figure.find("figcaption") if figure is not None else None
        caption = element_text(figcaption) if figcaption is not None else _text(image.get("title") or "")
        yield model.Image(src, _text(image.get("alt") or ""), caption)


def _with_body_details(lead: list[model.Image], body_images: list[model.Image]) -> tuple[model.Image, ...]:
    """The feed's lead image first, taking alt and caption from the body when it shows it too."""
    in_body = {image.src: image for image in body_images}
    merged = [in_body.get(image.src, image) for image in lead]
    return unique([*merged, *body_images], lambda image: image.src)


# --- text -----------------------------------------------------------------------------


def _summary(entry: Any, body: BodyParts) -> str:
    """The description when the feed has one besides the body, else the body's first paragraph.

    WordPress excerpts end in "[…]" and carry the "appeared first on" footer: both go,
    and a cut excerpt keeps a single ellipsis.
    """
    description = entry.get("summary", "")
    has_content = any(c.get("value") for c in entry.get("content", []))
    text = body.first_paragraph
    if has_content and description and description not in {c.get("value") for c in entry.get("content", [])}:
        root = html_fragment(description)
        _strip_boilerplate(root)
        text = element_text(root) or text
    cut = _EXCERPT_END.sub("", text)
    if cut != text and not cut.endswith((".", "!", "?")):
        cut += "…"
    return truncate(cut)


def _text(text: str) -> str:
    return one_line(str(text))


