"""The one content model every renderer reads.

Sources (a Markdown directory today, upstream feeds and an ingest API later) turn
their input into :class:`Article`; feeds, email digests and web pages only ever read
an ``Article`` and never re-parse content.  The model is a tree of frozen dataclasses
so it can be hashed, compared and serialized to the store as JSON without surprises.

Text fields (takeaways, quotes, table cells, captions, sources) are *plain text*:
each renderer escapes them for its own medium (HTML, plain text, JSON).  Only
``body_html`` is HTML, and it is always sanitized before it gets here.

Every text field is cleaned as the model is made (:mod:`publisher.content.clean`):
whatever source builds an article, no character that XML or an email header cannot
carry gets past this point.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from publisher.content.clean import clean_line, clean_text

# The longest id and slug an article may have: the store's columns hold this much
# (PostgreSQL refuses a longer value, where SQLite would keep it), and a parser reports
# an article over the limit as it reports any other bad article.
MAX_ID_LENGTH = 1000
MAX_SLUG_LENGTH = 300
# The longest title a source keeps by default ([content] max_title_length): a longer one
# is cut at a word, with a warning; every Subject and <title> it ends up in stays sane.
DEFAULT_MAX_TITLE_LENGTH = 300


def _clean(instance: object, lines: tuple[str, ...] = (), texts: tuple[str, ...] = ()) -> None:
    """Clean a frozen dataclass's fields in place as it is made: ``lines`` are one-line
    fields (a str or a tuple of str), ``texts`` may hold line breaks."""
    for names, clean in ((lines, clean_line), (texts, clean_text)):
        for name in names:
            value = getattr(instance, name)
            cleaned = clean(value) if isinstance(value, str) else tuple(map(clean, value))
            object.__setattr__(instance, name, cleaned)


def _plain(value: Any) -> Any:
    """:func:`dataclasses.asdict` without its deep copy, 2.5 times as fast (the store makes
    one dict an article): the model's leaves are immutable, so only its dataclasses are
    made dicts (in tuples, as ``asdict`` makes them)."""
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


@dataclass(frozen=True, slots=True)
class Image:
    """An image of the article; the first one is the lead image."""

    src: str  # absolute URL
    alt: str = ""
    caption: str = ""

    def __post_init__(self) -> None:
        _clean(self, lines=("src",), texts=("alt", "caption"))


@dataclass(frozen=True, slots=True)
class Quote:
    """A pull quote: the text and, when known, who said it."""

    text: str
    cite: str = ""

    def __post_init__(self) -> None:
        _clean(self, texts=("text", "cite"))


ALIGNMENTS = ("left", "right", "center")  # what a table column's alignment may be, besides ""


@dataclass(frozen=True, slots=True)
class FactTable:
    """A "facts and figures" table: every row has exactly ``len(header)`` cells.

    ``align`` holds one of :data:`ALIGNMENTS` or "" (not given) per column, as the
    author set it (Markdown ``---:``, ``:---:``); ``()`` when no column has one.
    """

    caption: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    sources: str = ""  # the "Data Sources: …" note, without the label
    align: tuple[str, ...] = ()
    # Rows left out past ContentLimits.max_table_cells: the article's page (its body)
    # shows the whole table, renderers of the model say how many more there are.
    more_rows: int = 0

    def __post_init__(self) -> None:
        _clean(self, texts=("caption", "header", "sources"))
        object.__setattr__(self, "rows", tuple(tuple(map(clean_text, row)) for row in self.rows))

    def column_align(self, column: int) -> str:
        """The alignment of ``column`` (0-based), "" when none was given."""
        return self.align[column] if column < len(self.align) else ""


# Article fields added after articles were stored: Article.to_dict leaves each out while it
# has its default, so the stored form (and content hash) of an article without it is unchanged.
_LATER_FIELDS = ("lang", "takeaways_generated")


@dataclass(frozen=True, slots=True)
class Article:
    """One published piece, as every renderer sees it.

    ``id`` is stable for the life of the article (front matter ``id``, else derived
    from the canonical URL): feed GUIDs and the store key on it, so editing the
    title, body or slug never makes an article "new" again.
    """

    id: str
    slug: str
    title: str
    published: datetime  # timezone-aware
    updated: datetime  # timezone-aware, >= published
    canonical_url: str
    subtitle: str = ""
    author: str = ""
    tags: tuple[str, ...] = ()
    category: str = ""
    images: tuple[Image, ...] = ()
    summary: str = ""  # plain text
    takeaways: tuple[str, ...] = ()  # plain text, one per item
    quotes: tuple[Quote, ...] = ()
    body_html: str = ""  # sanitized HTML; the "Key Takeaways" section is not repeated here
    fact_tables: tuple[FactTable, ...] = ()
    source_path: str = field(default="", compare=False)  # where it came from, for messages
    # The article's language as a BCP 47 tag ("ar", "pt-BR"), "" for the site's own
    # ([site] language): pages, feeds and emails take lang and dir (right-to-left) from it.
    lang: str = ""
    # True when the takeaways were proposed by publisher ([content] takeaways = "auto"), not
    # written by the author: the feeds' structured data says so.
    takeaways_generated: bool = False

    def __post_init__(self) -> None:
        _clean(
            self,
            lines=("id", "slug", "title", "canonical_url", "subtitle", "author", "tags", "category", "lang"),
            texts=("summary", "takeaways", "body_html"),
        )

    @property
    def lead_image(self) -> Image | None:
        return self.images[0] if self.images else None

    @property
    def pull_quote(self) -> Quote | None:
        return self.quotes[0] if self.quotes else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (dates as ISO 8601), the form the store keeps.

        A field added to the model after articles were stored is left out while it has
        its default (a table's ``align``): the dict, and so :meth:`content_hash`, of an
        article that doesn't use it stays what it was, and an upgrade doesn't make
        every stored article look edited (which would date them all "updated" now).
        """
        data = _plain(self)
        data["published"] = self.published.isoformat()
        data["updated"] = self.updated.isoformat()
        for table in data["fact_tables"]:
            for optional in ("align", "more_rows"):
                if not table[optional]:
                    del table[optional]
        for optional in _LATER_FIELDS:
            if not data[optional]:
                del data[optional]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Article:
        """Inverse of :meth:`to_dict`."""
        return cls(
            id=data["id"],
            slug=data["slug"],
            title=data["title"],
            published=datetime.fromisoformat(data["published"]),
            updated=datetime.fromisoformat(data["updated"]),
            canonical_url=data["canonical_url"],
            subtitle=data.get("subtitle", ""),
            author=data.get("author", ""),
            tags=tuple(data.get("tags", ())),
            category=data.get("category", ""),
            images=tuple(Image(**i) for i in data.get("images", ())),
            summary=data.get("summary", ""),
            takeaways=tuple(data.get("takeaways", ())),
            quotes=tuple(Quote(**q) for q in data.get("quotes", ())),
            body_html=data.get("body_html", ""),
            fact_tables=tuple(
                FactTable(
                    caption=t["caption"],
                    header=tuple(t["header"]),
                    rows=tuple(tuple(r) for r in t["rows"]),
                    sources=t.get("sources", ""),
                    align=tuple(t.get("align", ())),  # absent in tables stored before it existed
                    more_rows=t.get("more_rows", 0),
                )
                for t in data.get("fact_tables", ())
            ),
            source_path=data.get("source_path", ""),
            lang=data.get("lang", ""),
            takeaways_generated=data.get("takeaways_generated", False),
        )

    def content_hash(self, data: dict[str, Any] | None = None) -> str:
        """A digest of everything a reader sees; the store compares it to tell an edit.
        ``data``: this article's :meth:`to_dict`, when the caller has made it already
        (the store writes it too): it is the costly part.

        Takeaways publisher proposed (``takeaways_generated``) are not the author's
        writing: switching ``[content] takeaways`` to "auto" or back, or a better
        suggester, must not make every article look edited (dated "updated" now).  So
        the digest of generated ones is :data:`AUTHORED_DIGITS` hex digits of the
        article as its author wrote it (without them: the very digest it had before)
        and the rest of theirs: it still changes with them (the feeds render the entry
        again), and :func:`same_authored` tells the store that the author changed nothing.
        """
        data = dict(self.to_dict() if data is None else data)
        data.pop("source_path", None)
        if not data.pop("takeaways_generated", False):
            return _digest(data)
        proposed = data["takeaways"]
        data["takeaways"] = ()
        return _digest(data)[:AUTHORED_DIGITS] + _digest(proposed)[AUTHORED_DIGITS:]


# Of a content hash's 64 hex digits, how many are the author's writing's (see Article.content_hash).
AUTHORED_DIGITS = 48


def same_authored(one: str, other: str) -> bool:
    """Whether two content hashes are of the same writing of the author, whatever takeaways
    publisher proposed for it (:meth:`Article.content_hash`)."""
    return one[:AUTHORED_DIGITS] == other[:AUTHORED_DIGITS]


def _digest(data: Any) -> str:
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()


class TakeawaysMode(StrEnum):
    """``[content] takeaways``: what publisher does for an article without takeaways
    (:mod:`publisher.content.takeaways` proposes them)."""

    AUTHOR = "author"  # nothing: an article has only the takeaways its author wrote
    SUGGEST = "suggest"  # proposals shown to the author by the CLI, never published
    AUTO = "auto"  # proposals published as the article's takeaways, marked as generated


@dataclass(frozen=True, slots=True)
class ContentLimits:
    """How much of one article the model takes, whatever a source sends.

    An upstream feed or an API client can send thousands of tables, tags or cells; each
    costs work in every renderer (a tag is three feed documents, a cell is repeated
    inline CSS in every email).  Past a limit the parsers keep the first ones and warn.
    """

    max_tables: int = 20  # fact tables per article; later tables stay in the body only
    max_tags: int = 20  # tags per article; later ones are dropped
    # cells per fact table; later rows stay in the body only.  An email spends ~150 bytes of
    # inlined CSS per cell: 300 cells are ~45 KB, so two such tables fit under Gmail's clipping.
    max_table_cells: int = 300
    max_title_length: int = DEFAULT_MAX_TITLE_LENGTH  # a longer title is cut at a word, with a warning
    # Not a limit but the other input a parser takes besides the text: under "auto" an
    # article without takeaways gets proposed ones.  Here, every parser (Markdown, upstream,
    # the API) has it, and a switch re-reads every file (the parser fingerprint holds it).
    takeaways: TakeawaysMode = TakeawaysMode.SUGGEST


class Severity(StrEnum):
    """An error keeps its input out (the article is skipped); a warning never does."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input, reported as ``path:line: message``
    (``path:line: warning: message`` for a warning)."""

    path: str
    line: int
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        label = "warning: " if self.severity == Severity.WARNING else ""
        return f"{self.path}:{self.line}: {label}{self.message}"

    def as_warning(self) -> Problem:
        return dataclasses.replace(self, severity=Severity.WARNING)


@dataclass
class ScanResult:
    """What reading one source gave: its articles and every problem (a Markdown directory,
    :mod:`publisher.sources.markdown_dir`; an upstream feed, :mod:`publisher.content.upstream`)."""

    articles: list[Article] = field(default_factory=list)  # newest first, then by id
    problems: list[Problem] = field(default_factory=list)  # errors (a file skipped) and warnings
    drafts: list[Article] = field(default_factory=list)  # the drafts that parse, in path order
    contested: set[str] = field(default_factory=set)  # ids of the files that share an id or a slug

    @property
    def errors(self) -> list[Problem]:
        """The problems that kept a file (or an item) out."""
        return [p for p in self.problems if p.severity == Severity.ERROR]
