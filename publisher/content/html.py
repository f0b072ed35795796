"""Sanitizing article HTML once, at the source, so every renderer can trust ``body_html``.

Feeds are read far from the site (feed readers, email clients), so the body must carry
absolute URLs and nothing that runs: the allow-list below keeps the structure articles
use (headings, lists, quotes, figures, fact tables) and drops everything else.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin

import nh3

from publisher.content.model import ALIGNMENTS

_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6",
    "a", "em", "strong", "b", "i", "u", "s", "del", "ins", "sub", "sup", "small", "mark", "abbr",
    "code", "pre", "kbd", "samp",
    "blockquote", "q", "cite",
    "ul", "ol", "li", "dl", "dt", "dd",
    "table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td",
    "figure", "figcaption", "img",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title", "hreflang"},
    "img": {"src", "alt", "width", "height", "title"},
    "abbr": {"title"},
    "blockquote": {"cite"},
    "q": {"cite"},
    "ol": {"start"},
    "th": {"colspan", "rowspan", "scope", "align"},
    "td": {"colspan", "rowspan", "align"},
}
# Their content is code or an embedded page, never article text, so it goes with the tag
# (here, and wherever plain text is read from HTML: summaries, takeaways, table cells).
NOT_TEXT_TAGS = frozenset({"script", "style", "iframe"})
_URL_SCHEMES = {"http", "https", "mailto"}
_URL_ATTRIBUTES = {"href", "src", "cite"}
# An <img> as nh3 writes it: lower-case names, every value double-quoted (a quote in a
# value is &quot;, a ">" may stay as it is, so values are matched whole).
_IMG = re.compile(r'<img((?:\s+[a-z-]+="[^"]*")*)\s*/?>')


def sanitize_html(html: str, base_url: str) -> str:
    """Return ``html`` with only safe tags, attributes and URL schemes left.

    Relative URLs are resolved against ``base_url`` because a feed entry or an email
    has no page address to resolve them against.  nh3 checks URL schemes before the
    attribute filter runs, so ``javascript:`` links are already gone when we join.
    """

    def absolute_urls(tag: str, attribute: str, value: str) -> str | None:
        if attribute == "align":  # a cell's column alignment, and nothing else
            return value.lower() if value.lower() in ALIGNMENTS else None
        return urljoin(base_url, value) if attribute in _URL_ATTRIBUTES else value

    clean = nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags=set(NOT_TEXT_TAGS),
        attributes=_ATTRIBUTES,
        attribute_filter=absolute_urls,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer",
    )
    return _IMG.sub(_with_alt, clean)


def _with_alt(image: re.Match[str]) -> str:
    """An image without ``alt`` gets ``alt=""``: screen readers then skip it as decorative
    instead of reading out its file name (nh3 can set a value, but only over every alt)."""
    if ' alt="' in image.group(1):
        return image.group(0)
    return f'<img{image.group(1)} alt="">'
