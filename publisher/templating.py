"""The Jinja2 environment shared by emails, feed content and web pages.

The built-in templates ship inside the wheel (``publisher/templates``; in a source
checkout they are the top-level ``templates/``).  ``[site] templates_dir`` is searched
first, so an operator overrides one template by dropping a file of the same name
there and keeps every other default.
"""

from __future__ import annotations

import traceback
from functools import lru_cache
from pathlib import Path

import jinja2

from publisher import i18n, urls

_PACKAGE_DIR = Path(__file__).resolve().parent


def builtin_templates_dir() -> Path:
    """Where the default templates are: inside the installed package, else the checkout."""
    for candidate in (_PACKAGE_DIR / "templates", _PACKAGE_DIR.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise RuntimeError("publisher's built-in templates are missing from the installation")


def make_loader(override_dir: Path | None = None) -> jinja2.FileSystemLoader:
    """Templates from ``override_dir`` (if any), then the built-ins.

    Jinja2 checks a template file's modification time on each use, so edited
    templates apply at once; a new ``override_dir`` needs a new loader (a reload).
    """
    search = [str(override_dir)] if override_dir else []
    search.append(str(builtin_templates_dir()))
    return jinja2.FileSystemLoader(search)


def make_environment(override_dir: Path | None = None, language: str = i18n.FALLBACK) -> jinja2.Environment:
    """An autoescaping environment over ``override_dir`` (if any) then the built-ins, in ``language``.

    Its global ``urls`` is the URL map (:mod:`publisher.urls`): pages build their links
    with it (``urls.ARTICLE.under(base, slug=article.slug)``), as the code does.
    Besides Jinja's own tests it has ``shown_in`` (``quote.text is shown_in(article.body_html)``)
    and ``pictured_in`` (``image.src is pictured_in(article.body_html)``).
    Every reader's text goes through gettext (``_()``, ``ngettext``, ``{% trans %}``) and
    dates and numbers through the ``date``, ``time``, ``weekday`` and ``number`` filters,
    in ``language``'s catalog and formats (:mod:`publisher.i18n`, loaded at the first render).
    ``site.language | direction`` is a tag's script direction ("rtl" or "ltr", from Babel's
    CLDR data), for ``dir`` beside every ``lang``.
    """
    env = jinja2.Environment(
        loader=make_loader(override_dir),
        extensions=["jinja2.ext.i18n"],
        autoescape=jinja2.select_autoescape(["html", "xml", "htm"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals["urls"] = urls
    env.tests["shown_in"] = shown_in
    env.tests["pictured_in"] = pictured_in
    i18n.install(env, language)
    return env


def template_error(exc: BaseException) -> str:
    """``exc`` as ``file:line: Error: message``, naming the template file and line it came from.

    Jinja2 rewrites a rendering error's traceback so that its frames point into the
    template (named "template", "top-level template code" or "block '…'"); the last such
    frame is where the template failed.  An error from outside any template is
    ``Error: message`` alone.
    """
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = f"{exc.filename or exc.name}:{exc.lineno}: "
    else:
        frames = [
            frame for frame in traceback.extract_tb(exc.__traceback__)
            if frame.name in ("template", "top-level template code") or frame.name.startswith("block ")
        ]
        where = f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
    return f"{where}{type(exc).__name__}: {exc}"


def shown_in(text: str, body_html: str) -> bool:
    """Whether plain ``text`` already shows in ``body_html``, so a template need not repeat it.

    Compared as text a reader sees, not as markup: ``'``, ``"`` and ``&`` are escaped
    differently by the Markdown renderer, the sanitizer and Jinja, and emphasis or a
    line break inside the body's copy would split it.
    """
    from publisher.content.text import one_line  # its HTML parser only when a template asks

    return one_line(text) in _body_text(body_html)


def pictured_in(src: str, body_html: str) -> bool:
    """Whether ``body_html`` shows the image at ``src``: compared as URLs, not as markup,
    where ``&`` in a query string is written ``&amp;``."""
    return src in _body_images(body_html)


@lru_cache(maxsize=64)
def _body_images(body_html: str) -> frozenset[str]:
    from publisher.content.text import html_fragment

    return frozenset(img.get("src") or "" for img in html_fragment(body_html).iter("img")) if body_html else frozenset()


@lru_cache(maxsize=64)
def _body_text(body_html: str) -> str:
    """The body's text, parsed once for the several templates and feeds that render it."""
    from publisher.content.text import html_text

    return html_text(body_html)
