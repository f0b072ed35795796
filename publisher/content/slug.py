"""URL-safe slugs for article and tag paths."""

from __future__ import annotations

import re
import unicodedata

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
