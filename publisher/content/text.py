"""What every source shares: what a body yields, and text helpers so summaries and lists come out the same way."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from publisher.content.model import FactTable, Image, Quote

T = TypeVar("T")

SUMMARY_LIMIT = 280  # characters of a summary made from the first paragraph


def truncate(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """Whitespace collapsed, cut at a word boundary so the result, ellipsis included, fits in ``limit``."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.-–—") + "…"


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
