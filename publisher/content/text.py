"""What every source shares: what a body yields, and text helpers so summaries and lists come out the same way."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import lxml.html  # type: ignore[import-untyped]

from publisher.content.clean import clean_text
from publisher.content.html import NOT_TEXT_TAGS
from publisher.content.model import ALIGNMENTS, FactTable, Image, Quote

T = TypeVar("T")
Element = Any  # lxml.html.HtmlElement; lxml ships no type hints

SUMMARY_LIMIT = 280  # characters of a summary made from the first paragraph

# Elements whose edges separate words in plain text.
_BREAKS = {
    "p", "div", "br", "li", "dt", "dd", "tr", "td", "th", "caption", "blockquote", "figure", "figcaption",
    "section", "article", "aside", "header", "footer", "pre", "hr", "ul", "ol", "dl", "table",
    "h1", "h2", "h3", "h4", "h5", "h6",
}  # fmt: skip
_TEXT_ALIGN = re.compile(r"\s*text-align\s*:\s*([a-z]+)\s*(?:!important\s*)?;?\s*", re.IGNORECASE)


def one_line(text: str) -> str:
    """Every run of whitespace (line breaks included) as one space, none at the ends."""
    return " ".join(text.split())


def truncate(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """Whitespace collapsed, cut at a word boundary so the result, ellipsis included, fits in ``limit``."""
    text = one_line(text)
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.-–—") + "…"


def absolute_http(base: str, url: str) -> str:
    """``url`` made absolute against ``base``, or "" unless that is an http(s) URL with a host.

    The rule for every URL a reader follows or a client loads (a canonical link, an
    image): ``javascript:`` or ``data:`` there would run or show in the reader's feed
    reader and mail client.
    """
    try:
        absolute = urljoin(base, url.strip())
        parts = urlsplit(absolute)
    except ValueError:  # "http://[oops/": an IPv6 host that isn't one
        return ""
    return absolute if parts.scheme in {"http", "https"} and parts.hostname else ""


def html_fragment(markup: str) -> Element:
    """Parse HTML into a ``<div>`` holding it (whatever it is, even a whole document)."""
    return lxml.html.fragment_fromstring(clean_text(markup), create_parent="div")  # lxml refuses controls


def html_text(markup: str) -> str:
    """The plain text a reader sees in ``markup``, on one line."""
    return element_text(html_fragment(markup)) if markup else ""


def element_text(element: Element) -> str:
    """Plain text, with a space where a block or a line break separates words (``text_content`` joins them)."""
    parts: list[str] = []
    _collect_text(element, parts)
    return one_line("".join(parts))


def _collect_text(node: Element, parts: list[str]) -> None:
    is_element = isinstance(node.tag, str)  # not a comment, whose text is no one's to read
    if is_element and node.tag in NOT_TEXT_TAGS:
        return  # code, not text (its tail is the parent's to read)
    block = is_element and node.tag in _BREAKS
    if block:
        parts.append(" ")
    if is_element and node.text:
        parts.append(node.text)
    for child in node:
        _collect_text(child, parts)
        if child.tail:
            parts.append(child.tail)
    if block:
        parts.append(" ")


def cell_alignment(align: str | None, style: str | None) -> str:
    """A table cell's alignment from its ``align`` attribute or a ``style`` that only sets
    ``text-align`` (what Markdown renderers write): one of ``ALIGNMENTS``, else ""."""
    value = (align or "").strip().lower()
    if not value and style and (declared := _TEXT_ALIGN.fullmatch(style)):
        value = declared.group(1).lower()
    return value if value in ALIGNMENTS else ""


def table_alignment(columns: list[str]) -> tuple[str, ...]:
    """The ``FactTable.align`` of these per-column alignments: () when none is set."""
    return tuple(columns) if any(columns) else ()


def capped_table(table: FactTable, max_cells: int) -> FactTable:
    """``table`` with only the rows that fit in ``max_cells`` cells (the header always
    stays), the number left out in ``more_rows``: an email repeats inline CSS on every
    cell, so a table of thousands of rows made a message of a hundred megabytes."""
    width = max(len(table.header), 1)
    fit = max(max_cells // width - 1, 0)
    if len(table.rows) <= fit:
        return table
    return dataclasses.replace(table, rows=table.rows[:fit], more_rows=len(table.rows) - fit)


def unique(items: Iterable[T], key: Callable[[T], Hashable]) -> tuple[T, ...]:
    """Keep the first of items with the same key (a lead image repeated in the body shows once)."""
    seen: set[Hashable] = set()
    kept = []
    for item in items:
        if key(item) not in seen:
            seen.add(key(item))
            kept.append(item)
    return tuple(kept)


@dataclass
class BodyParts:
    """What a source finds in an article's body besides its HTML (its own fields take precedence)."""

    html: str
    first_paragraph: str
    takeaways: list[str]
    fact_tables: list[FactTable]
    quotes: list[Quote]
    images: list[Image]
