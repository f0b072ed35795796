"""Language tags: what an article or the site says it is written in, and which way it reads.

A tag is BCP 47 as HTML's ``lang`` and XML's ``xml:lang`` take it ("ar", "pt-BR"); Babel's
CLDR data knows each language's script direction, so "ar", "he", "fa" or "ur" render
right-to-left without a list of our own.  Babel loads here, on first use, not at import.
"""

from __future__ import annotations

import re
from functools import lru_cache

# language[-script][-region] and nothing else: enough for every CLDR locale, and nothing a
# header or an attribute could be abused with.
_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|\d{3}))?")


class LanguageError(ValueError):
    """A language tag that is malformed or names no language CLDR knows."""


def well_formed(tag: str) -> str:
    """``tag`` in its canonical case ("pt-br" → "pt-BR") if it has a tag's shape, without asking
    CLDR whether the language exists: what the config checks, so loading it loads no Babel."""
    text = tag.strip().replace("_", "-")
    if not _TAG.fullmatch(text):
        raise LanguageError(f"{tag!r} is not a language tag such as 'en', 'ar' or 'pt-BR'")
    language, *rest = text.split("-")
    return "-".join([language.lower(), *(part.title() if len(part) == 4 else part.upper() for part in rest)])


@lru_cache(maxsize=256)
def normalize(tag: str) -> str:
    """``tag`` in its canonical case ("pt-br" → "pt-BR"), or :class:`LanguageError` saying why."""
    from babel import Locale, UnknownLocaleError

    text = tag.strip().replace("_", "-")
    if not _TAG.fullmatch(text):
        raise LanguageError(f"{tag!r} is not a language tag such as 'en', 'ar' or 'pt-BR'")
    try:
        locale = Locale.parse(text, sep="-")
    except (UnknownLocaleError, ValueError):
        raise LanguageError(f"{tag!r} names no known language") from None
    parts = [locale.language, locale.script, locale.territory]
    return "-".join(part for part in parts if part)


@lru_cache(maxsize=256)
def direction(tag: str) -> str:
    """"rtl" or "ltr" for a tag :func:`normalize` accepted ("ltr" for "" or an unknown one)."""
    from babel import Locale, UnknownLocaleError

    if not tag:
        return "ltr"
    try:
        return "rtl" if Locale.parse(tag, sep="-").text_direction == "rtl" else "ltr"
    except (UnknownLocaleError, ValueError):
        return "ltr"
