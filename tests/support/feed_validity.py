"""The W3C Feed Validation Service's checks on RSS 2.0, Atom 1.0 and their HTML, for tests.

The service can't be reached from CI, so these rules restate what its sources check
(w3c/feedvalidator, src/feedvalidator/: channel.py, item.py, link.py, content.py,
validators.py). Each problem names the validator message it stands for. Where the service
only warns, we still treat it as a problem: a feed we publish should come out clean.

The HTML inside content is checked the way the service checks it. It parses the fragment with
html5lib in strict mode, so any parse error is "Invalid HTML". That is how it catches a
``<table>`` inside a ``<p>``: the ``</p>`` after the table has no open ``p`` left. The element
and attribute allow-lists below are our own and narrower than the service's, so content that
passes here passes there too.

Foreign-namespace (extension) elements are checked as the service checks them (base.py,
``startPrefixMapping``; validators.py, ``eater``): a prefix the service reserves for another
namespace (ReservedPrefix), a known namespace under another prefix (NonstdPrefix), a child
of an extension element outside any namespace (NotInANamespace) and a namespace it does not
know (UnknownNamespace, a warning).  That warning is the one we accept, for one namespace:
the project's own (:data:`publisher.feeds.structured.NAMESPACE`, documented in the README).
The service warns about every namespace outside its built-in table, however well used, and
its own test case says such elements "should not affect validity"
(testcases/atom/6.4/extension-unknown-noerror.xml, which expects exactly UnknownNamespace).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from html5lib.html5parser import HTMLParser, ParseError
from lxml import etree

from publisher.feeds.structured import NAMESPACE as PUBLISHER_NAMESPACE

ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT_ENCODED = "{http://purl.org/rss/1.0/modules/content/}encoded"
DC_CREATOR = "{http://purl.org/dc/elements/1.1/}creator"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"

SAFE_ELEMENTS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "div", "dl",
    "dt", "em", "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
    "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "small", "span", "strong",
    "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "time", "tr", "u", "ul",
})  # fmt: skip
SAFE_ATTRIBUTES = frozenset({
    "abbr", "align", "alt", "cite", "class", "colspan", "datetime", "dir", "headers", "height",
    "href", "id", "lang", "rel", "rowspan", "scope", "span", "src", "start", "title", "type",
    "width",
})  # fmt: skip
URL_ATTRIBUTES = ("href", "src", "cite")
SELF_TYPES = {"application/atom+xml", "application/rss+xml", "application/rdf+xml"}
ATOM_LINK_RELS = {"alternate", "enclosure", "related", "self", "via"}

_RFC822 = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d? (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d\d:\d\d(:\d\d)? ([+-]\d{4}|GMT|UT)$"
)
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
_UUID_URN = re.compile(r"urn:uuid:[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$", re.IGNORECASE)
_TAG_URI = re.compile(r"tag:[a-z0-9.@_-]+,\d{4}(-\d\d(-\d\d)?)?:\S*$")
_MIME = re.compile(r"[\w.+-]+/[\w.+-]+$")
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
_HTML_END_TAG = re.compile(r"</([a-zA-Z][a-zA-Z0-9]*)>")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)

# The part of the service's namespace table (base.py, ``namespaces``) our feeds come near:
# URI → the prefix it expects.  A prefix listed here is reserved for its URI.
KNOWN_NAMESPACES = {
    "http://www.w3.org/2005/Atom": "atom",
    "http://purl.org/rss/1.0/modules/content/": "content",
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://purl.org/dc/terms/": "dcterms",
    "http://search.yahoo.com/mrss/": "media",
    "http://www.itunes.com/dtds/podcast-1.0.dtd": "itunes",
    "http://www.w3.org/1999/xhtml": "xhtml",
    "http://www.w3.org/XML/1998/namespace": "xml",
}
# Namespaces outside the service's table that we publish on purpose (see the module's docstring).
ACCEPTED_EXTENSIONS = frozenset({PUBLISHER_NAMESPACE})


def html_problems(fragment: str, where: str) -> list[str]:
    """Problems of an HTML fragment carried in a feed (RSS description/content:encoded, Atom
    content/summary of type html, JSON content_html)."""
    try:
        tree = HTMLParser(strict=True, namespaceHTMLElements=False).parseFragment(fragment)
    except ParseError as exc:
        return [f"{where}: NotHtml: invalid HTML ({exc})"]
    problems = []
    for element in tree.iter():
        if not isinstance(element.tag, str) or element.tag == "DOCUMENT_FRAGMENT":
            continue  # comments
        if element.tag not in SAFE_ELEMENTS:
            problems.append(f"{where}: SecurityRisk: <{element.tag}>")
        for name, value in element.attrib.items():
            if name == "style":
                problems.append(f"{where}: DangerousStyleAttr on <{element.tag}>")
            elif name not in SAFE_ATTRIBUTES and not name.startswith("data-"):
                problems.append(f"{where}: SecurityRiskAttr: {name} on <{element.tag}>")
            if name in URL_ATTRIBUTES and not urlsplit(value.strip()).scheme:
                problems.append(f"{where}: ContainsRelRef: {name}={value!r}")
    return problems


def rss_problems(body: bytes, self_url: str, now: datetime | None = None) -> list[str]:
    """Problems of an RSS 2.0 document expected to live at ``self_url``."""
    root = etree.fromstring(body, _PARSER)
    if root.tag != "rss" or root.get("version") != "2.0":
        return [f"not RSS 2.0: <{root.tag} version={root.get('version')!r}>"]
    channels = root.findall("channel")
    if len(channels) != 1:
        return [f"rss must contain one channel, found {len(channels)}"]
    channel = channels[0]
    problems = _once(channel, ("title", "link", "description", "language"), "channel")
    problems += _at_most_once(channel, ("lastBuildDate", "pubDate", "docs", "generator", "ttl"), "channel")
    problems += _nonhtml(channel.findtext("title"), "channel/title")
    problems += _nonhtml(channel.findtext("description"), "channel/description")
    problems += _full_url(channel.findtext("link"), "channel/link")
    if not _LANGUAGE.match(channel.findtext("language") or ""):
        problems.append(f"channel/language: InvalidLanguage {channel.findtext('language')!r}")
    for name in ("lastBuildDate", "pubDate"):
        if channel.find(name) is not None:
            problems += _rfc822(channel.findtext(name), f"channel/{name}", now)
    problems += _self_link(channel.findall(f"{ATOM}link"), self_url, "channel")

    guids: Counter[str] = Counter()
    for index, item in enumerate(channel.findall("item")):
        where = f"item[{index}]"
        children = [child.tag for child in item]
        if "title" not in children and "description" not in children:
            problems.append(f"{where}: ItemMustContainTitleOrDescription")
        problems += _at_most_once(
            item, ("title", "link", "description", "guid", "pubDate", "enclosure"), where
        )
        problems += _nonhtml(item.findtext("title"), f"{where}/title")
        if item.find("link") is not None:
            problems += _full_url(item.findtext("link"), f"{where}/link")
        if item.find("pubDate") is not None:
            problems += _rfc822(item.findtext("pubDate"), f"{where}/pubDate", now)
        guid = item.find("guid")
        if guid is None:
            problems.append(f"{where}: MissingGuid")
        else:
            guids[guid.text or ""] += 1
            problems += _guid(guid.text or "", guid.get("isPermaLink", "true"), f"{where}/guid")
        if CONTENT_ENCODED in children and (
            "description" not in children or children.index("description") > children.index(CONTENT_ENCODED)
        ):
            problems.append(f"{where}: NeedDescriptionBeforeContent")
        for name in ("description", CONTENT_ENCODED):
            for element in item.findall(name):
                problems += html_problems(element.text or "", f"{where}/{name}")
        if "author" in children:
            if DC_CREATOR in children:
                problems.append(f"{where}: DuplicateItemSemantics author and dc:creator")
            if "@" not in (item.findtext("author") or ""):
                problems.append(f"{where}/author: InvalidContact (RSS author must be an e-mail address)")
        for category in item.findall("category"):
            if not (category.text or "").strip():
                problems.append(f"{where}/category: NotBlank")
            problems += _nonhtml(category.text, f"{where}/category")
        for enclosure in item.findall("enclosure"):
            problems += _enclosure(enclosure.attrib, f"{where}/enclosure")
    problems += [f"guid {value!r}: DuplicateValue" for value, count in guids.items() if count > 1]
    return problems + extension_problems(root, core="")


def atom_problems(body: bytes, self_url: str, now: datetime | None = None) -> list[str]:
    """Problems of an Atom 1.0 document expected to live at ``self_url``."""
    root = etree.fromstring(body, _PARSER)
    if root.tag != f"{ATOM}feed":
        return [f"not an Atom feed: <{root.tag}>"]
    problems = _once(root, (f"{ATOM}id", f"{ATOM}title", f"{ATOM}updated"), "feed")
    problems += _at_most_once(
        root, (f"{ATOM}subtitle", f"{ATOM}generator", f"{ATOM}icon", f"{ATOM}logo"), "feed"
    )
    if not root.get(XML_LANG):
        problems.append("feed: MissingDCLanguage (xml:lang)")
    problems += _uri(root.findtext(f"{ATOM}id") or "", "feed/id")
    problems += _rfc3339(root.findtext(f"{ATOM}updated"), "feed/updated", now)
    problems += _text_construct(root.find(f"{ATOM}title"), "feed/title")
    links = root.findall(f"{ATOM}link")
    problems += _atom_links(links, "feed") + _self_link(links, self_url, "feed")
    feed_has_author = _has_author(root, "feed", problems)

    ids: Counter[str] = Counter()
    updated: Counter[str] = Counter()
    for index, entry in enumerate(root.findall(f"{ATOM}entry")):
        where = f"entry[{index}]"
        problems += _once(entry, (f"{ATOM}id", f"{ATOM}title", f"{ATOM}updated"), where)
        problems += _at_most_once(entry, (f"{ATOM}published", f"{ATOM}content", f"{ATOM}summary"), where)
        entry_id = entry.findtext(f"{ATOM}id") or ""
        ids[entry_id] += 1
        updated[entry.findtext(f"{ATOM}updated") or ""] += 1
        problems += _uri(entry_id, f"{where}/id")
        problems += _rfc3339(entry.findtext(f"{ATOM}updated"), f"{where}/updated", now)
        if entry.find(f"{ATOM}published") is not None:
            problems += _rfc3339(entry.findtext(f"{ATOM}published"), f"{where}/published", now)
        entry_links = entry.findall(f"{ATOM}link")
        problems += _atom_links(entry_links, where)
        if entry.find(f"{ATOM}content") is None and not any(
            link.get("rel", "alternate") == "alternate" for link in entry_links
        ):
            problems.append(f"{where}: MissingContentOrAlternate")
        for name in ("title", "summary", "content"):
            element = entry.find(f"{ATOM}{name}")
            if element is not None:
                problems += _text_construct(element, f"{where}/{name}")
        if not _has_author(entry, where, problems) and not feed_has_author:
            problems.append(f"{where}: MissingElement author (neither entry nor feed has one)")
    problems += [f"id {value!r}: DuplicateEntries" for value, count in ids.items() if count > 1]
    problems += [f"updated {value!r}: DuplicateUpdated" for value, count in updated.items() if count > 1]
    return problems + extension_problems(root, core=ATOM[1:-1])


def extension_problems(root: etree._Element, core: str) -> list[str]:
    """Problems of the namespaces a feed declares and of its extension elements (the
    elements outside ``core``, the format's own namespace: "" for RSS 2.0)."""
    problems = []
    declared: set[tuple[str | None, str]] = set()
    for element in root.iter():
        parent = element.getparent()
        inherited = parent.nsmap if parent is not None else {}
        declared.update((prefix, uri) for prefix, uri in element.nsmap.items() if inherited.get(prefix) != uri)
    for prefix, uri in sorted(declared, key=lambda pair: (pair[0] or "", pair[1])):
        expected = KNOWN_NAMESPACES.get(uri)
        if expected is not None:
            if prefix and prefix != expected:
                problems.append(f"xmlns:{prefix}: NonstdPrefix (the validator expects {expected!r} for {uri})")
        elif prefix in KNOWN_NAMESPACES.values():
            problems.append(f"xmlns:{prefix}: ReservedPrefix (the validator keeps {prefix!r} for another namespace)")
        elif uri == core:
            continue
        elif uri not in ACCEPTED_EXTENSIONS:
            problems.append(f"xmlns:{prefix}: UnknownNamespace {uri}")
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue  # comments
        namespace = etree.QName(element).namespace or ""
        if namespace in (core, *KNOWN_NAMESPACES):
            continue
        for child in element.iterdescendants():
            if isinstance(child.tag, str) and not etree.QName(child).namespace:
                problems.append(f"{element.tag}/{child.tag}: NotInANamespace")
    return problems


def json_feed_problems(body: bytes, feed_url: str) -> list[str]:
    """Problems of a JSON Feed 1.1 document (jsonfeed.org/version/1.1) at ``feed_url``."""
    feed = json.loads(body)
    problems = []
    if feed.get("version") != JSON_FEED_VERSION:
        problems.append(f"version {feed.get('version')!r} is not {JSON_FEED_VERSION}")
    if not isinstance(feed.get("title"), str) or not feed["title"].strip():
        problems.append("title: required, a non-blank string")
    if not isinstance(feed.get("items"), list):
        return problems + ["items: required, an array"]
    if feed.get("feed_url") != feed_url:
        problems.append(f"feed_url {feed.get('feed_url')!r} is not {feed_url!r}")
    problems += _full_url(feed.get("home_page_url"), "home_page_url")
    problems += _authors(feed.get("authors", []), "authors")
    ids: Counter[str] = Counter()
    for index, item in enumerate(feed["items"]):
        where = f"items[{index}]"
        if not isinstance(item.get("id"), str) or not item["id"]:
            problems.append(f"{where}/id: required, a non-empty string")
        ids[str(item.get("id"))] += 1
        if "content_html" not in item and "content_text" not in item:
            problems.append(f"{where}: content_html or content_text required")
        if "content_html" in item:
            problems += html_problems(item["content_html"], f"{where}/content_html")
        for key in ("url", "image"):
            if key in item:
                problems += _full_url(item[key], f"{where}/{key}")
        for key in ("date_published", "date_modified"):
            if key in item:
                problems += _rfc3339(item[key], f"{where}/{key}", None)
        problems += _authors(item.get("authors", []), f"{where}/authors")
        if not all(isinstance(tag, str) for tag in item.get("tags", [])):
            problems.append(f"{where}/tags: must be strings")
    problems += [f"id {value!r}: duplicate item id" for value, count in ids.items() if count > 1]
    return problems


def _once(parent: etree._Element, names: tuple[str, ...], where: str) -> list[str]:
    problems = []
    for name in names:
        count = len(parent.findall(name))
        if count == 0:
            problems.append(f"{where}: MissingElement {name}")
        elif count > 1:
            problems.append(f"{where}: DuplicateElement {name}")
        elif not (parent.findtext(name) or "").strip():
            problems.append(f"{where}: NotBlank {name}")
    return problems


def _at_most_once(parent: etree._Element, names: tuple[str, ...], where: str) -> list[str]:
    return [f"{where}: DuplicateElement {name}" for name in names if len(parent.findall(name)) > 1]


def _nonhtml(text: str | None, where: str) -> list[str]:
    """Plain-text fields must not carry markup (ContainsHTML)."""
    tag = _HTML_END_TAG.search(text or "")
    return [f"{where}: ContainsHTML </{tag.group(1)}>"] if tag else []


def _full_url(value: object, where: str) -> list[str]:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or " " in value:
        return [f"{where}: InvalidFullLink {value!r}"]
    return []


def _uri(value: str, where: str) -> list[str]:
    """Ids and guids: a full URL, a well-formed urn:uuid or a tag URI (InvalidUUID, InvalidTAG…)."""
    scheme = urlsplit(value).scheme
    if scheme in ("http", "https"):
        return _full_url(value, where)
    if value.lower().startswith("urn:uuid:"):
        return [] if _UUID_URN.match(value) else [f"{where}: InvalidUUID {value!r}"]
    if scheme == "tag":
        return [] if _TAG_URI.match(value) else [f"{where}: InvalidTAG {value!r}"]
    if scheme == "urn":
        return []
    return [f"{where}: InvalidFullLink {value!r}"]


def _guid(value: str, permalink: str, where: str) -> list[str]:
    if permalink not in ("true", "false"):
        return [f"{where}: InvalidBooleanAttribute isPermaLink={permalink!r}"]
    if permalink == "true":
        if value.lower().startswith(("tag:", "urn:")):
            return [f"{where}: InvalidPermalink {value!r}"]
        return _full_url(value, where)
    return _uri(value, where)


def _rfc822(value: str | None, where: str, now: datetime | None) -> list[str]:
    if not value or not _RFC822.match(value):
        return [f"{where}: InvalidRFC2822Date {value!r}"]
    moment = parsedate_to_datetime(value)
    if moment.strftime("%a") != value[:3]:
        return [f"{where}: IncorrectDOW {value!r}"]
    return _plausible(moment, value, where, now)


def _rfc3339(value: str | None, where: str, now: datetime | None) -> list[str]:
    if not value or not _RFC3339.match(value):
        return [f"{where}: InvalidRFC3339Date {value!r}"]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return [f"{where}: InvalidRFC3339Date {value!r}"]
    return _plausible(moment, value, where, now)


def _plausible(moment: datetime, value: str, where: str, now: datetime | None) -> list[str]:
    """The service calls a date before 1990 or more than ten minutes ahead implausible."""
    now = now or datetime.now(UTC)
    if moment.year < 1990 or moment > now + timedelta(minutes=10):
        return [f"{where}: ImplausibleDate {value!r}"]
    return []


def _self_link(links: list[etree._Element], self_url: str, where: str) -> list[str]:
    selves = [link for link in links if link.get("rel") == "self"]
    if not selves:
        return [f"{where}: MissingAtomSelfLink"]
    problems = []
    for link in selves:
        if link.get("href") != self_url:
            problems.append(f"{where}: SelfDoesntMatchLocation {link.get('href')!r} != {self_url!r}")
        if (link.get("type") or "").split(";")[0] not in SELF_TYPES:
            problems.append(f"{where}: SelfNotAtom type={link.get('type')!r}")
    return problems


def _atom_links(links: list[etree._Element], where: str) -> list[str]:
    problems = []
    alternates: Counter[tuple[str, str]] = Counter()
    for link in links:
        rel = link.get("rel", "alternate")
        if rel not in ATOM_LINK_RELS:
            problems.append(f"{where}/link: UnregisteredAtomLinkRel {rel!r}")
        if not link.get("href"):
            problems.append(f"{where}/link: MissingHref")
        else:
            problems += _full_url(link.get("href"), f"{where}/link[@rel={rel}]")
        if link.get("type") is not None and not _MIME.match(link.get("type", "")):
            problems.append(f"{where}/link: InvalidMIMEType {link.get('type')!r}")
        length = link.get("length")
        if length is not None and not length.isdigit():
            problems.append(f"{where}/link: InvalidNonNegativeInteger length={length!r}")
        if rel == "alternate":
            alternates[(link.get("type", ""), link.get("hreflang", ""))] += 1
    problems += [
        f"{where}: DuplicateAtomLink (alternate {key})" for key, count in alternates.items() if count > 1
    ]
    return problems


def _enclosure(attrs: dict[str, str], where: str) -> list[str]:
    problems = _full_url(attrs.get("url"), f"{where}/@url")
    if not (attrs.get("length") or "").isdigit():
        problems.append(f"{where}: InvalidIntegerAttribute length={attrs.get('length')!r}")
    if not _MIME.match(attrs.get("type") or ""):
        problems.append(f"{where}: InvalidMIMEAttribute type={attrs.get('type')!r}")
    return problems


def _text_construct(element: etree._Element | None, where: str) -> list[str]:
    if element is None:
        return []
    kind = element.get("type", "text")
    if kind not in ("text", "html", "xhtml"):
        return [f"{where}: InvalidTextType {kind!r}"]
    if kind == "html":
        return html_problems(element.text or "", where)
    if kind == "text":
        return [f"{where}: ContainsUndeclaredHTML"] if _nonhtml(element.text, where) else []
    return []


def _has_author(parent: etree._Element, where: str, problems: list[str]) -> bool:
    authors = parent.findall(f"{ATOM}author")
    for author in authors:
        if not (author.findtext(f"{ATOM}name") or "").strip():
            problems.append(f"{where}/author: MissingElement name")
    return bool(authors)


def _authors(authors: object, where: str) -> list[str]:
    if not isinstance(authors, list) or not all(
        isinstance(a, dict) and isinstance(a.get("name"), str) and a["name"] for a in authors
    ):
        return [f"{where}: must be an array of objects with a name"]
    return []


def feed_problems(path: str, body: bytes, url: str) -> list[str]:
    """The problems of the feed document at ``path`` (RSS, Atom or JSON Feed, by its extension)."""
    if path.endswith(".rss"):
        return rss_problems(body, url)
    if path.endswith(".atom"):
        return atom_problems(body, url)
    return json_feed_problems(body, url)
