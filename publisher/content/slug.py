"""URL-safe slugs for article and tag paths."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_NON_WORD = re.compile(r"[^a-z0-9]+")


def slugify(text: str) -> str:
    """``"North Korea & Russia"`` → ``"north-korea-russia"`` (ASCII, lower case, dashes).

    Accented letters are folded to ASCII so a tag keeps one URL whatever the keyboard.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NON_WORD.sub("-", ascii_text.lower()).strip("-")


def capped_slug(text: str, limit: int) -> str:
    """:func:`slugify`, cut to ``limit`` characters without a dash left at the end:
    the slug both article parsers derive from a title or a URL segment."""
    return slugify(text)[:limit].rstrip("-")


def spelled_slugs(tags: Iterable[str]) -> dict[str, str]:
    """Each tag slug of ``tags`` → the first spelling of it there, in order ("North Korea"
    and "north korea" are one tag: the slug is its path); a tag without one is left out."""
    spellings: dict[str, str] = {}
    for tag in tags:
        spellings.setdefault(slugify(tag), tag)
    spellings.pop("", None)
    return spellings
