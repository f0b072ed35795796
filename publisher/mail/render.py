"""Render a digest once, then personalize it per subscriber by string substitution.

Jinja2 and css-inline cost milliseconds per digest; a fan-out to many subscribers
can only afford microseconds per message.  So :func:`render_digest` renders and
inlines the HTML and the plain text exactly once, with unguessable sentinels where
the subscriber's own values go, and :meth:`RenderedDigest.personalize` only splices
those values in.  The sentinels are made of letters, digits and underscores, which
neither Jinja's autoescaping nor css-inline's HTML serializer ever rewrites.
"""

from __future__ import annotations

import dataclasses
import html
import re
import secrets
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from typing import TYPE_CHECKING

import css_inline
import jinja2

from publisher import i18n, urls
from publisher.config import Settings
from publisher.content.model import Article, FactTable
from publisher.content.text import one_line, truncate
from publisher.mail.caniemail import supported_by_all
from publisher.mail.wire import quoted_printable

if TYPE_CHECKING:
    from publisher.tracking.links import ClickLinks

HTML_TEMPLATE = "email/digest.html"
TEXT_TEMPLATE = "email/digest.txt"
SUBJECT_TEMPLATE = "email/subject.txt"
TEXT_WIDTH = 78  # RFC 5322's recommended line length; what plain-text readers expect
PREHEADER_LENGTH = 140  # inbox previews show less; more only pads the hidden span
TOC_MIN_ARTICLES = 2  # a digest with more articles than this opens with a table of contents

_COLUMN_GAP = "  "
_Justify = Callable[[str, int], str]
_JUSTIFY: dict[str, _Justify] = {"right": str.rjust, "center": str.center}  # else str.ljust
_MIN_COLUMN = 8  # narrower text columns turn into a word per line

# Inline everything, keep only the @media rules (mobile, dark mode), which cannot be
# inlined: a smaller message than keep_style_tags=True, which would also repeat every
# inlined rule.  Never fetch stylesheets: rendering stays free of network I/O.
_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


@dataclass(frozen=True)
class Personal:
    """What differs between two subscribers' copies of the same digest."""

    name: str
    email: str
    unsubscribe_url: str
    preferences_url: str


_PERSONAL_FIELDS = tuple(f.name for f in dataclasses.fields(Personal))


def _sentinel(field: str, nonce: str) -> str:
    return f"__publisher_{field}_{nonce}__"


@dataclass(frozen=True)
class RenderedDigest:
    """One digest, rendered and CSS-inlined once, with sentinels for the personal values.

    ``nonce`` is random per render, so no article text can contain (or forge) a
    sentinel.
    """

    subject: str
    preheader: str
    html: str
    text: str
    nonce: str
    headlines: int = 0  # the last articles shown as title and link only (or only counted), for the HTML to fit
    html_bytes: int = 0  # the HTML's size as it travels (quoted-printable), sentinels in place of the values
    # The name in "Hi …," for subscribers who gave none ("there"), in the digest's language.
    greeting_fallback: str = "there"

    def personalize(self, personal: Personal) -> tuple[str, str]:
        """This subscriber's ``(html, text)``: the values spliced in, HTML-escaped for the HTML.

        A single pass over pre-split segments, so a value that looks like a sentinel
        is never substituted again.
        """
        escaped, raw = self.values(personal)
        return _fill(self._html_segments, escaped), _fill(self._text_segments, raw)

    def values(self, personal: Personal) -> tuple[dict[str, str], dict[str, str]]:
        """``(html, text)`` maps from each sentinel to ``personal``'s value for it."""
        raw = {sentinel: getattr(personal, field) for field, sentinel in self._sentinels.items()}
        raw[self._sentinels["name"]] = personal.name or self.greeting_fallback
        return {sentinel: html.escape(value, quote=True) for sentinel, value in raw.items()}, raw

    @cached_property
    def _sentinels(self) -> dict[str, str]:
        return {field: _sentinel(field, self.nonce) for field in _PERSONAL_FIELDS}

    def segments(self, part: str) -> list[str]:
        """The ``"html"`` or ``"text"`` part split at the sentinels (odd items are sentinels).

        For framers that encode the constant segments once per digest.
        """
        return list(self._html_segments if part == "html" else self._text_segments)

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        sentinels = (re.escape(_sentinel(field, self.nonce)) for field in _PERSONAL_FIELDS)
        return re.compile(f"({'|'.join(sentinels)})")

    @cached_property
    def _html_segments(self) -> list[str]:
        return self._pattern.split(self.html)

    @cached_property
    def _text_segments(self) -> list[str]:
        return self._pattern.split(self.text)


def _fill(segments: list[str], values: dict[str, str]) -> str:
    """Join ``re.split`` output, replacing the captured sentinels (the odd items)."""
    out = segments.copy()
    out[1::2] = [values[sentinel] for sentinel in segments[1::2]]
    return "".join(out)


def render_digest(
    articles: Sequence[Article],
    settings: Settings,
    env: jinja2.Environment,
    digest_id: str,
    cadence: str,
    *,
    resend: bool = False,
    clicks: ClickLinks | None = None,
) -> RenderedDigest:
    """Render the digest of ``articles`` (newest first) for every subscriber of ``cadence``.

    ``resend``: the articles were sent before and are sent again after an edit; the
    templates say so (an update to the reader's ``cadence`` digest, not news).
    ``clicks``: the HTML's links go through counted redirects (``[tracking] clicks``).

    Raises ValueError for an empty digest or when a (possibly operator-overridden)
    template lost the unsubscribe link, which bulk-mail rules and RFC 8058 require.
    """
    if not articles:
        raise ValueError("a digest needs at least one article")
    nonce = secrets.token_hex(16)
    context: dict[str, object] = {
        "articles": articles, "site": settings.site, "from_name": settings.delivery.from_name, "cadence": cadence,
        "digest": digest_name(cadence, settings.site.language), "resend": resend,
    }
    subject = _subject(env, context, settings.digest.max_subject_length)
    preheader = _preheader(articles[0])
    context |= {
        "subject": subject,
        "preheader": preheader,
        "view_url": urls.digest(settings.site.url, digest_id),
        "personal": Personal(**{field: _sentinel(field, nonce) for field in _PERSONAL_FIELDS}),
        "heading": heading,
        "text_table": text_table,
        # More than two articles get a table of contents; its links stay in the email only
        # where every listed client follows a link to an anchor (several mobile apps don't).
        "toc": len(articles) > TOC_MIN_ARTICLES,
        "toc_anchors": supported_by_all("html-anchor-links", settings.email.client_ids),
    }
    track = None if clicks is None else partial(clicks.rewrite, digest_id=digest_id, keep=nonce)
    html_part, text_part, shown = _render_within(env, context, articles, settings.digest.max_message_bytes, track)
    unsubscribe = _sentinel("unsubscribe_url", nonce)
    for name, part in ((HTML_TEMPLATE, html_part), (TEXT_TEMPLATE, text_part)):
        if unsubscribe not in part:
            raise ValueError(f"template {name} must link to personal.unsubscribe_url")
    # TRANSLATORS: the name in the greeting "Hi %(name)s," of a reader who gave none.
    greeting_fallback = i18n.Translator(settings.site.language).pgettext("greeting", "there")
    return RenderedDigest(
        subject=subject, preheader=preheader, html=html_part, text=text_part, nonce=nonce,
        headlines=shown.headlines + shown.unlisted, html_bytes=len(quoted_printable(html_part)),
        greeting_fallback=greeting_fallback,
    )


@dataclass(frozen=True)
class _Shown:
    """How much of a digest's articles its HTML shows: the first ``full`` whole, the next
    ``headlines`` as title and link, the rest (``unlisted``) only counted, with a link to the site."""

    full: int
    headlines: int
    unlisted: int

    @classmethod
    def at(cls, step: int, count: int) -> _Shown:
        """Step ``count * 2`` shows all ``count`` articles whole, each step down one article less:
        from ``count`` down, the last whole one becomes a headline; below, the last headline goes."""
        if step >= count:
            return cls(step - count, 2 * count - step, 0)
        return cls(0, step, count - step)

    def context(self, articles: Sequence[Article]) -> dict[str, object]:
        """What the templates get: the ids of the headline articles and how many are left unlisted."""
        return {"headlines": {a.id for a in articles[self.full:self.full + self.headlines]}, "unlisted": self.unlisted}


def _render_within(
    env: jinja2.Environment, context: dict[str, object], articles: Sequence[Article], max_bytes: int,
    track: Callable[[str], str] | None,
) -> tuple[str, str, _Shown]:
    """The (inlined HTML, text) parts and how much of ``articles`` they show.

    Gmail clips a message whose HTML passes about 102 KB and hides the rest, the
    unsubscribe footer with it.  So the size is measured, not guessed: the HTML as it
    travels (inlined, links as sent, quoted-printable encoded) must stay within
    ``max_bytes``.  Past it, the last articles are shown as headlines (title and link)
    and the first ones in full, as many as fit: the fewest headlines, found by a binary
    search over renders (a dozen at most for 200 articles).  Headlines carry no article
    content but the title, so no table or takeaway can keep the digest too big; should
    even the headlines not fit (hundreds of long titles), the last ones are only counted.
    """
    renders: dict[int, str] = {}

    def fits(step: int) -> bool:
        """Render ``step`` (see :meth:`_Shown.at`); whether that HTML is within ``max_bytes``."""
        context.update(_Shown.at(step, len(articles)).context(articles))
        html_part = _INLINER.inline(env.get_template(HTML_TEMPLATE).render(context))
        if track is not None:  # the links as sent (counted redirects are longer) are what must fit
            html_part = track(html_part)
        renders[step] = html_part
        return len(quoted_printable(html_part)) <= max_bytes

    step = 2 * len(articles)
    if not fits(step):
        step, low, high = 0, 0, step - 1  # nothing listed, if even that is too big: nothing is smaller
        while low <= high:
            middle = (low + high) // 2
            if fits(middle):
                step, low = middle, middle + 1
            else:
                high = middle - 1
        if step not in renders:
            fits(step)
    shown = _Shown.at(step, len(articles))
    context.update(shown.context(articles))
    return renders[step], env.get_template(TEXT_TEMPLATE).render(context), shown


def digest_name(cadence: str, language: str) -> str:
    """What the reader's digest is called ("daily digest"), in ``language``.

    A whole noun phrase per cadence, so that a language whose adjectives agree with
    their noun ("Tages-Newsletter", "digest quotidien") gets each right.
    """
    t = i18n.Translator(language)
    names = {
        # TRANSLATORS: what a reader's digest is called, put in "Here is your %(digest)s" and the like.
        "instant": t.gettext("instant digest"),
        "daily": t.gettext("daily digest"),
        "weekly": t.gettext("weekly digest"),
    }
    return names.get(cadence, cadence)


def _subject(env: jinja2.Environment, context: dict[str, object], limit: int) -> str:
    """The digest's Subject from its (overridable) template, as one line of text, cut at a
    word to ``limit`` characters (a title can be long, and a header block must not be)."""
    subject = one_line(env.get_template(SUBJECT_TEMPLATE).render(context))
    if not subject:
        raise ValueError(f"template {SUBJECT_TEMPLATE} rendered an empty subject")
    return truncate(subject, limit)


def _preheader(article: Article) -> str:
    """The inbox preview line: the lead article's summary, else its first takeaway."""
    candidates = (article.summary, *article.takeaways[:1], article.subtitle, article.title)
    text = next(c for c in candidates if c.strip())
    return textwrap.shorten(text, PREHEADER_LENGTH, placeholder="…")


def heading(text: str, underline: str = "=", width: int = TEXT_WIDTH) -> str:
    """``text`` wrapped to ``width`` and underlined as long as its longest line."""
    lines = textwrap.wrap(text, width, break_long_words=False) or [""]
    return "\n".join([*lines, underline * max(len(line) for line in lines)])


def text_table(table: FactTable, width: int = TEXT_WIDTH) -> str:
    """A fact table as aligned plain-text columns no wider than ``width`` where possible.

    Columns keep their natural width when the table fits; otherwise the widest
    column gives way first and its cells wrap onto continuation lines, so every cell
    of a row starts on the row's first line at its column's offset.  Rows that wrap
    are separated by blank lines so a reader can tell where each row ends.  Cells
    are aligned in their column as the table says (right-aligned numbers line up).
    """
    widths = [max(len(row[i]) for row in (table.header, *table.rows)) for i in range(len(table.header))]
    budget = width - len(_COLUMN_GAP) * (len(widths) - 1)
    while sum(widths) > budget:
        widest = widths.index(max(widths))
        if widths[widest] <= _MIN_COLUMN:
            break
        widths[widest] -= 1
    justify = [_JUSTIFY.get(table.column_align(i), str.ljust) for i in range(len(widths))]
    body = [_table_row(row, widths, justify) for row in table.rows]
    row_gap = [""] if any(len(lines) > 1 for lines in body) else []
    lines = [*_table_row(table.header, widths, justify), _COLUMN_GAP.join("-" * w for w in widths)]
    for index, row_lines in enumerate(body):
        lines += (row_gap if index else []) + row_lines
    return "\n".join(lines)


def _table_row(cells: Sequence[str], widths: Sequence[int], justify: Sequence[_Justify]) -> list[str]:
    wrapped = [textwrap.wrap(cell, w) or [""] for cell, w in zip(cells, widths)]
    height = max(len(cell_lines) for cell_lines in wrapped)
    return [
        _COLUMN_GAP.join(
            fit(cell_lines[i] if i < len(cell_lines) else "", w)
            for cell_lines, w, fit in zip(wrapped, widths, justify)
        ).rstrip()
        for i in range(height)
    ]


def render_notice(env: jinja2.Environment, name: str, context: dict[str, object]) -> tuple[str, str]:
    """``(html, text)`` of the one-to-one email ``email/<name>.html`` / ``.txt``, CSS inlined.

    Rendered per message (these are sent one at a time, on a person's request).
    """
    context = {"heading": heading, **context}
    html_part = _INLINER.inline(env.get_template(f"email/{name}.html").render(context))
    return html_part, env.get_template(f"email/{name}.txt").render(context)
