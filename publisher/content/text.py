"""Small text helpers every source shares, so summaries and lists come out the same way."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

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
