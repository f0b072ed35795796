"""The readers' language: gettext catalogs for every string they see, and Babel's locale formats.

Every text of the emails, the pages and the plain-text parts goes through a gettext
catalog under ``publisher/locale/<language>/LC_MESSAGES/messages.po`` (written by
``make messages``, see the README's "Languages"); ``[site] language`` picks one.  A
regional tag ("de-AT", "pt-BR") takes its base language's catalog and its own date and
number formats; a language without a catalog falls back to English (``publisher check``
and the daemon's start say so).

The catalogs are compiled from the ``.po`` files in memory when a language is first used,
once per process: there is no compiled ``.mo`` file that could fall behind its ``.po``.
Nothing here loads Babel or a catalog before something is rendered, so a command that
renders nothing (``publisher send`` with nothing due) starts without them.
"""

from __future__ import annotations

import gettext
from datetime import date, datetime, time
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

from publisher.content.language import LanguageError, direction, normalize

if TYPE_CHECKING:
    import jinja2
    from babel import Locale

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
FALLBACK = "en"  # the language the templates and the code are written in


def N_(message: str) -> str:
    """Mark ``message`` for the catalogs where it is written, to be translated where it is shown
    (gettext's convention for a message made before the reader's language is known)."""
    return message


def catalog_path(language: str) -> Path:
    """Where the catalog of a base language ("de") is."""
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def shipped_languages() -> list[str]:
    """The base languages with a catalog, sorted ("ar", "de", "en", …)."""
    return sorted(path.parent.parent.name for path in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


def catalog_language(tag: str) -> str:
    """The catalog a language tag reads from: its base language's, else English's."""
    base = tag.replace("_", "-").split("-")[0].lower()
    return base if catalog_path(base).is_file() else FALLBACK


def language_warning(tag: str) -> str | None:
    """What to tell the operator when readers can't get ``[site] language`` (None: they can).

    A tag CLDR doesn't know, or a language without a catalog, is not worth refusing to
    start over: readers get English, and ``publisher check`` and the daemon's start say so.
    """
    try:
        normalize(tag)
    except LanguageError as exc:
        return f"[site] language: {exc}; emails and pages are in English"
    if catalog_language(tag) == FALLBACK and tag.split("-")[0].lower() != FALLBACK:
        return (f"[site] language: no translation for {tag!r}, emails and pages are in English "
                f"(translations: {', '.join(shipped_languages())})")
    return None


@lru_cache(maxsize=16)
def translations(tag: str) -> gettext.NullTranslations:
    """The compiled catalog for ``tag`` (see :func:`catalog_language`), loaded once per process;
    the messages as written when there is none at all (an installation without catalogs)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    language = catalog_language(tag)
    path = catalog_path(language)
    if not path.is_file():
        return gettext.NullTranslations()
    with path.open("rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN)
    compiled = BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)  # a fuzzy guess is no translation: the English shows
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


class _Catalog:
    """The raw gettext functions of one language, the catalog loaded at the first call.

    Jinja gets one (``install_gettext_translations``), so building the environment loads
    no catalog; Jinja's newstyle wrappers fill the placeholders and escape the values.
    """

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def gettext(self, message: str) -> str:
        return translations(self.tag).gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return translations(self.tag).ngettext(singular, plural, n)

    def pgettext(self, context: str, message: str) -> str:
        return translations(self.tag).pgettext(context, message)

    def npgettext(self, context: str, singular: str, plural: str, n: int) -> str:
        return translations(self.tag).npgettext(context, singular, plural, n)


class Translator:
    """A reader's text written by Python code (a notice's subject, a page's error message), as
    templates write it with ``_()``: named placeholders, filled after translation so that a
    translation may reorder them.  The methods are named as gettext's, so ``pybabel extract``
    finds their messages (``t.gettext("Welcome to %(site)s", site=title)``).
    """

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def gettext(self, message: str, **params: object) -> str:
        """``message`` in this language, its ``%(name)s`` placeholders filled from ``params``."""
        text = translations(self.tag).gettext(message)
        return text % params if params else text

    def ngettext(self, singular: str, plural: str, n: int, **params: object) -> str:
        """The form of ``singular``/``plural`` for ``n`` in this language; ``%(num)s`` is ``n``, formatted."""
        text = translations(self.tag).ngettext(singular, plural, n)
        return text % ({"num": format_number(n, self.tag)} | params)

    def pgettext(self, context: str, message: str) -> str:
        """``message`` as meant in ``context`` (a word that reads differently elsewhere)."""
        return translations(self.tag).pgettext(context, message)


def install(env: jinja2.Environment, tag: str) -> None:
    """Make ``env`` speak ``tag``: its ``_``, ``gettext``, ``ngettext`` and ``{% trans %}`` use its catalog,
    and the ``date``, ``time``, ``weekday`` and ``number`` filters its formats (``direction``: a tag's ``dir``).

    Newstyle gettext: a template writes ``_("Hi %(name)s,", name=...)`` and the values are
    escaped before they are put in, so a translation can move them but never unescape them.
    ``ngettext``'s ``%(num)s`` is the count in the language's number format.
    """
    import jinja2

    env.install_gettext_translations(_Catalog(tag), newstyle=True)  # type: ignore[attr-defined]
    plural = env.globals["ngettext"]  # Jinja's newstyle wrapper: fills and escapes the placeholders

    @jinja2.pass_context
    def ngettext(context: jinja2.runtime.Context, singular: str, plural_: str, n: int, **values: object) -> str:
        values.setdefault("num", format_number(n, tag))
        return context.call(plural, singular, plural_, n, **values)

    env.globals["ngettext"] = ngettext
    env.globals["language"] = tag
    env.filters["date"] = lambda value, format="long": format_date(value, tag, format)
    env.filters["time"] = lambda value, format="short": format_time(value, tag, format)
    env.filters["weekday"] = lambda value: weekday_name(value, tag)
    env.filters["number"] = lambda value: format_number(value, tag)
    env.filters["direction"] = direction  # "rtl" for Arabic, Hebrew, Persian…: <html dir>


@lru_cache(maxsize=16)
def _locale(tag: str) -> Locale:
    """Babel's locale for ``tag``, English for a tag CLDR doesn't know (config checks it apart)."""
    from babel import Locale, UnknownLocaleError

    try:
        return Locale.parse(tag.replace("_", "-"), sep="-")
    except (UnknownLocaleError, ValueError):
        return Locale.parse(FALLBACK)


def format_date(value: date | datetime, tag: str, format: str = "long") -> str:
    """A date as readers of ``tag`` write it ("5 January 2026", "5. Jänner 2026"); a datetime's own date,
    never shifted to another zone."""
    from babel.dates import format_date as babel_format_date

    return babel_format_date(value.date() if isinstance(value, datetime) else value, format, locale=_locale(tag))


def format_time(value: time | int, tag: str, format: str = "short") -> str:
    """A time of day ("8:00 AM", "08:00"); an int is a whole hour."""
    from babel.dates import format_time as babel_format_time

    return babel_format_time(time(value) if isinstance(value, int) else value, format, locale=_locale(tag))


def weekday_name(day: str, tag: str) -> str:
    """The name of a weekday given as ``mon`` … ``sun`` (the stored form), in ``tag``'s language."""
    from subscribers.model import WEEKDAYS

    return _locale(tag).days["format"]["wide"][WEEKDAYS.index(day)]


def format_number(value: int | float, tag: str) -> str:
    """A number with ``tag``'s grouping and decimal signs ("1,234", "1.234")."""
    from babel.numbers import format_decimal

    return format_decimal(value, locale=_locale(tag))
