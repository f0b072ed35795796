"""Markdown files with YAML or TOML front matter → :class:`Article`.

One function, :func:`read_article`, does the whole job: a file gives a complete,
sanitized article or none, and *every* problem with its line (errors, which keep it
out, and warnings, which never do), so an editor fixes a file in one round instead of
one error per run; and whether it is a draft.  :func:`parse_article` is the short
form for a caller that only wants the article or an :class:`ArticleError`.

Relative URLs (front matter images and everything in the body) are resolved against
the site URL: content files live in the site's repository and link to its paths.

This module is long because the front matter and the body share one problem report (every problem
of a file, each with its line), and the body's helpers walk one token stream; the rules
it shares with the upstream parser are in :mod:`publisher.content.extract`.
"""

from __future__ import annotations

import difflib
import email.utils
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import Any

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

from publisher import urls
from publisher.content.clean import clean_text
from publisher.content.extract import is_takeaways_marker, sources_note, split_cite
from publisher.content.html import NOT_TEXT_TAGS, sanitize_html
from publisher.content.model import (
    MAX_ID_LENGTH,
    MAX_SLUG_LENGTH,
    Article,
    ContentLimits,
    FactTable,
    Image,
    Problem,
    Quote,
    Severity,
)
from publisher.content.language import LanguageError
from publisher.content.language import normalize as normalize_language
from publisher.content.slug import capped_slug, slugify
from publisher.content.takeaways import with_generated
from publisher.content.text import BodyParts, absolute_http, capped_table, cell_alignment, table_alignment, truncate, unique

_MD = MarkdownIt("commonmark").enable("table")
_FENCES = {"---", "+++"}  # YAML, TOML
_FRONT_KEY = re.compile(r"([A-Za-z_][\w-]*)\s*[:=]")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column \d+\)")
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")
_STATUSES = ("published", "draft")
# Every key the parser reads; any other is reported as a probable typo.
FRONT_MATTER_KEYS = (
    "id", "title", "date", "published", "updated", "slug", "subtitle", "author", "category", "summary",
    "tags", "image", "images", "takeaways", "quote", "canonical_url", "draft", "status", "lang",
)
_HTML_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)")



class ArticleError(Exception):
    """A file that cannot become an article; ``problems`` holds all that is wrong with it."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass
class ParsedFile:
    """What one file gives: the article (None when an error keeps it out), every problem
    (errors and warnings), and whether the editor marked it a draft (never published)."""

    article: Article | None
    problems: list[Problem]
    draft: bool = False

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == Severity.ERROR]


@dataclass
class _Report:
    """Collects problems; front matter problems point at the line of their key."""

    path: str
    key_lines: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def at_line(self, line: int, message: str, severity: Severity = Severity.ERROR) -> None:
        self.problems.append(Problem(self.path, line, message, severity))

    def at_key(self, key: str, message: str, severity: Severity = Severity.ERROR) -> None:
        self.at_line(self.key_lines.get(key, 1), message, severity)

    @property
    def failed(self) -> bool:
        return any(p.severity == Severity.ERROR for p in self.problems)


def parse_article(
    data: bytes, path: str, site_url: str, *, slug_from_title: bool = False, limits: ContentLimits = ContentLimits()
) -> Article:
    """Parse one Markdown file, raising :class:`ArticleError` with every error (warnings
    are dropped, and a draft parses like any article: use :func:`read_article` to know)."""
    parsed = read_article(data, path, site_url, slug_from_title=slug_from_title, limits=limits)
    if parsed.article is None:
        raise ArticleError(parsed.errors)
    return parsed.article


def read_article(
    data: bytes, path: str, site_url: str, *, slug_from_title: bool = False, limits: ContentLimits = ContentLimits()
) -> ParsedFile:
    """Parse one Markdown file; ``path`` names it in problems and gives the default slug
    (the title does, with ``slug_from_title``: an article posted to the API has no file name);
    what passes ``limits`` is left out with a warning.

    A title longer than ``limits.max_title_length`` is cut at a word, with a warning: the
    editor's article still goes out, and the warning says what its title became."""
    report = _Report(path)
    front, body, body_offset = _split_front_matter(_decode(data, report), report)
    if report.failed:  # without readable front matter its fields would only add noise; the body is checked
        _parse_body(body, body_offset, site_url, report, limits)
        return ParsedFile(None, report.problems)
    fields = _FrontMatter(front, report, site_url)
    fields.report_unknown_keys()
    draft = fields.draft()
    title = fields.text("title", required=True)
    if len(title) > limits.max_title_length:
        title = truncate(title, limits.max_title_length)
        report.at_key("title", f"title is longer than {limits.max_title_length} characters: cut to {title!r}",
                      Severity.WARNING)
    published = fields.timestamp("date", "published", required=True)
    updated = fields.timestamp("updated") or published
    if published and updated and updated < published:
        report.at_key("updated", "updated is before the publication date")
    derived = capped_slug(title, MAX_SLUG_LENGTH) if slug_from_title else ""
    slug = _slug(fields.text("slug") or derived, path, report)
    canonical_url = fields.url("canonical_url") or urls.article(site_url, slug)
    article_id = _id(fields.text("id"), canonical_url, report)
    front_images, front_quotes = fields.images(), fields.quotes()
    front_takeaways, tags = fields.text_list("takeaways"), fields.tags(limits.max_tags)
    subtitle, author, category = fields.text("subtitle"), fields.text("author"), fields.text("category")
    summary, lang = fields.text("summary"), fields.language("lang")
    body_parts = _parse_body(body, body_offset, site_url, report, limits)
    if report.failed or published is None or updated is None:
        return ParsedFile(None, report.problems, draft)
    article = Article(
        id=article_id,
        slug=slug,
        title=title,
        published=published,
        updated=updated,
        canonical_url=canonical_url,
        subtitle=subtitle,
        author=author,
        tags=tags,
        category=category,
        images=unique([*front_images, *body_parts.images], lambda image: image.src),
        summary=summary or truncate(body_parts.first_paragraph),
        takeaways=tuple(front_takeaways or body_parts.takeaways),
        quotes=unique([*front_quotes, *body_parts.quotes], lambda quote: quote.text),
        body_html=body_parts.html,
        fact_tables=tuple(body_parts.fact_tables),
        source_path=path,
        lang=lang,
    )
    return ParsedFile(with_generated(article, limits.takeaways), report.problems, draft)


def front_matter_key_line(data: bytes, key: str) -> int:
    """Line of the top-level front matter ``key`` (1 if absent): where a problem about it points."""
    report = _Report("")
    _split_front_matter(data.decode("utf-8", "replace"), report)
    return report.key_lines.get(key, 1)


# --- the file: encoding and front matter ----------------------------------------------


def _decode(data: bytes, report: _Report) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        report.at_line(data[: exc.start].count(b"\n") + 1, "file is not valid UTF-8")
        return ""
    # Cleaned before YAML or TOML reads it: both refuse a control character anywhere, and
    # one pasted into a title would otherwise cost the whole file (the model cleans it anyway).
    return clean_text(text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n"))


def _split_front_matter(text: str, report: _Report) -> tuple[dict[Any, Any], str, int]:
    """Return (front matter, body, number of lines before the body); record key lines."""
    lines = text.split("\n")
    fence = lines[0].rstrip()
    if fence not in _FENCES:
        return {}, text, 0
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() == fence), None)
    if end is None:
        report.at_line(1, f"front matter is not closed with {fence!r}")
        return {}, "", 0
    for number, line in enumerate(lines[1:end], start=2):
        if line.startswith("["):  # a TOML table: the keys below it are not top-level
            break
        if key := _FRONT_KEY.match(line):
            report.key_lines[key.group(1)] = number  # the last one wins, as in YAML
    source = "\n".join(lines[1:end])
    body = "\n".join(lines[end + 1 :])
    try:
        front = (yaml.load(source, Loader=_YamlLoader) or {}) if fence == "---" else tomllib.loads(source)
    except yaml.YAMLError as exc:
        report.at_line(*_yaml_error(exc))
        return {}, body, end + 1
    except tomllib.TOMLDecodeError as exc:
        position = _TOML_POSITION.search(str(exc))
        toml_line = 1 + int(position.group(1)) if position else 1
        report.at_line(toml_line, f"invalid TOML front matter: {_TOML_POSITION.sub('', str(exc))}")
        return {}, body, end + 1
    if not isinstance(front, dict):
        report.at_line(2, f"front matter must be a mapping of keys to values, not {_kind(front)}")
        return {}, body, end + 1
    return front, body, end + 1


def _yaml_error(exc: yaml.YAMLError) -> tuple[int, str]:
    """The file line of a YAML error (its marks count from the line after the fence, from
    0) and the message; where the parser noticed it late, also where the construct began."""
    mark, context, context_mark = (getattr(exc, name, None) for name in ("problem_mark", "context", "context_mark"))
    message = f"invalid YAML front matter: {getattr(exc, 'problem', None) or exc}"
    if context and context_mark and mark and context_mark.line != mark.line:
        message += f" ({context} that starts at line {2 + context_mark.line})"
    return (2 + mark.line if mark else 1), message


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that leaves an impossible timestamp (``2024-13-45``) as text.

    PyYAML raises a bare ValueError for it, without a line; as text it reaches the date
    check, whose problem names the field and points at its line.
    """

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


_YamlLoader.add_constructor("tag:yaml.org,2002:timestamp", _YamlLoader.construct_yaml_timestamp)


class _FrontMatter:
    """Typed access to front matter values; a value of the wrong type is a problem."""

    def __init__(self, front: dict[Any, Any], report: _Report, site_url: str) -> None:
        self._front = front
        self._report = report
        self._site_url = site_url

    def report_unknown_keys(self) -> None:
        """Warn about keys nothing reads (a typo like ``tagz`` would silently lose the tags)."""
        for key in self._front:
            if str(key) in FRONT_MATTER_KEYS:
                continue
            close = difflib.get_close_matches(str(key), FRONT_MATTER_KEYS, n=1)
            hint = f": did you mean {close[0]!r}?" if close else ""
            self._report.at_key(str(key), f"unknown front matter key {str(key)!r}{hint}", Severity.WARNING)

    def draft(self) -> bool:
        """``draft: true`` or ``status: draft``: the editor does not mean it to go out yet."""
        flag = self._front.get("draft", False)
        if not isinstance(flag, bool):
            self._report.at_key("draft", f"draft must be true or false, not {_kind(flag)}")
        status = self.text("status") or "published"
        if status not in _STATUSES:
            self._report.at_key("status", f"status {status!r} is not one of {', '.join(map(repr, _STATUSES))}")
        return flag is True or status == "draft"

    def text(self, key: str, required: bool = False) -> str:
        value = self._front.get(key)
        if isinstance(value, bool) or not isinstance(value, str | int | float | None):
            self._report.at_key(key, f"{key} must be text, not {_kind(value)}")
            return ""
        text = "" if value is None else str(value).strip()
        if required and not text:
            self._report.at_key(key, f"missing {key}")
        return text

    def language(self, key: str) -> str:
        """A language tag in its canonical case, "" when not given or (reported) not one."""
        text = self.text(key)
        try:
            return normalize_language(text) if text else ""
        except LanguageError as error:
            self._report.at_key(key, f"{key}: {error}")
            return ""

    def timestamp(self, *keys: str, required: bool = False) -> datetime | None:
        """The first of ``keys`` that is set, as an aware datetime (naive means UTC)."""
        key = next((k for k in keys if self._front.get(k) is not None), None)
        if key is None:
            if required:
                self._report.at_key(keys[0], f"missing {keys[0]}")
            return None
        parsed = _to_datetime(self._front[key])
        if parsed is None:
            self._report.at_key(key, f"{key} {self._front[key]!r} is not a date (use ISO 8601 or RFC 2822)")
            return None
        try:  # every comparison of two dates converts them to UTC: it must be possible
            parsed.astimezone(UTC)
        except OverflowError:
            self._report.at_key(key, f"{key} {self._front[key]!r} is out of range: in UTC it falls before "
                                "the year 1 or after 9999")
            return None
        return parsed

    def tags(self, limit: int) -> tuple[str, ...]:
        """The distinct tags, at most ``limit``: each tag is three feed documents."""
        value = self._front.get("tags")
        items = self._text_list("tags", value.split(",") if isinstance(value, str) else value)
        tags = unique((item for item in items if item), lambda tag: tag)
        if len(tags) > limit:
            self._report.at_key("tags", f"{len(tags)} tags: only the first {limit} are kept "
                                f"([content] max_tags = {limit})", Severity.WARNING)
        return tags[:limit]

    def text_list(self, key: str) -> list[str]:
        return self._text_list(key, self._front.get(key))

    def images(self) -> list[Image]:
        values = [] if self._front.get("image") is None else [("image", self._front["image"])]
        many = self._front.get("images", [])
        if isinstance(many, list):
            values += [("images", value) for value in many]
        else:
            self._report.at_key("images", f"images must be a list, not {_kind(many)}")
        return [image for key, value in values if (image := self._image(key, value))]

    def quotes(self) -> list[Quote]:
        value = self._front.get("quote")
        if value is None:
            return []
        if isinstance(value, str) and value.strip():
            return [Quote(value.strip())]
        if isinstance(value, dict) and isinstance(value.get("text"), str):
            cite = value.get("cite", "")
            return [Quote(value["text"].strip(), cite.strip() if isinstance(cite, str) else "")]
        self._report.at_key("quote", "quote must be text or a mapping with text (and cite)")
        return []

    def url(self, key: str) -> str:
        """The value as an absolute http(s) URL (relative to the site), "" when not set or not one."""
        return self._url(key, self.text(key))

    def _url(self, key: str, value: str) -> str:
        if not value:
            return ""
        absolute = absolute_http(self._site_url, value)
        if not absolute:
            self._report.at_key(key, f"{key} {value!r} is not an http(s) URL")
        return absolute

    def _image(self, key: str, value: Any) -> Image | None:
        if isinstance(value, str) and value.strip():
            src = self._url(key, value.strip())
            return Image(src) if src else None
        if isinstance(value, dict) and isinstance(value.get("src"), str):
            alt, caption = value.get("alt", ""), value.get("caption", "")
            if isinstance(alt, str) and isinstance(caption, str):
                src = self._url(key, value["src"].strip())
                return Image(src, alt.strip(), caption.strip()) if src else None
        self._report.at_key(key, f"{key}: an image is a URL or a mapping with src, alt and caption")
        return None

    def _text_list(self, key: str, value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return [item.strip() for item in value]
        self._report.at_key(key, f"{key} must be a list of text, not {_kind(value)}")
        return []


def _to_datetime(value: Any) -> datetime | None:
    """YAML and TOML give datetimes or dates; strings may be ISO 8601 or RFC 2822."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            try:
                value = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def _slug(front_slug: str, path: str, report: _Report) -> str:
    slug = front_slug or slugify(PurePath(path).stem)
    if not slug:
        report.at_line(1, "cannot make a slug from the file name: set slug")
    elif slug != slugify(slug):
        report.at_key("slug", f"slug {slug!r} is not URL-safe: use {slugify(slug)!r}")
    elif len(slug) > MAX_SLUG_LENGTH:
        report.at_key("slug", f"slug is longer than {MAX_SLUG_LENGTH} characters")
    return slug


def _id(front_id: str, canonical_url: str, report: _Report) -> str:
    """The front matter id, else the canonical URL: the key the store and feed GUIDs use."""
    article_id = front_id or canonical_url
    what = "id" if front_id else "the canonical URL (the id when there is none)"
    if len(article_id) > MAX_ID_LENGTH:
        report.at_key("id" if front_id else "canonical_url", f"{what} is longer than {MAX_ID_LENGTH} characters")
    return article_id


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


# --- the body -------------------------------------------------------------------------


def _parse_body(body: str, line_offset: int, site_url: str, report: _Report, limits: ContentLimits) -> BodyParts:
    """Render the body and pull out what renderers show on their own.

    The "Key Takeaways" section is cut from the token stream (each renderer shows the
    takeaways itself); tables, quotes and images stay where the author put them.  Only
    the first ``limits.max_tables`` tables become fact tables; the others stay in the body.
    """
    tokens, takeaways = _cut_takeaways(_MD.parse(body))
    _align_cells(tokens)
    lines = body.split("\n")
    tables = _tables(tokens)
    for start, _ in tables:
        for line, message in _ragged_rows(tokens, start, lines):
            report.at_line(line_offset + line + 1, message)
    if len(tables) > limits.max_tables:
        first_extra = tokens[tables[limits.max_tables][0]].map or [0]
        report.at_line(line_offset + first_extra[0] + 1,
                       f"{len(tables)} tables: only the first {limits.max_tables} are fact tables, this one and the "
                       f"rest stay in the body ([content] max_tables = {limits.max_tables})", Severity.WARNING)
    fact_tables = [
        capped_table(_fact_table(tokens, start, caption), limits.max_table_cells)
        for start, caption in tables[: limits.max_tables]
    ]
    for (start, _), table in zip(tables, fact_tables):
        if table.more_rows:
            report.at_line(line_offset + (tokens[start].map or [0])[0] + 1,
                           f"table has more than {limits.max_table_cells} cells: emails show its first "
                           f"{len(table.rows)} rows, the article all {len(table.rows) + table.more_rows} "
                           f"([content] max_table_cells = {limits.max_table_cells})", Severity.WARNING)
    for line, src in _images_without_alt(tokens):
        report.at_line(line_offset + line + 1, f"image {src} has no alt text (write it between the brackets: "
                       "![text](...))", Severity.WARNING)
    return BodyParts(
        html=sanitize_html(_MD.renderer.render(tokens, _MD.options, {}), site_url),
        first_paragraph=_first_paragraph(tokens),
        takeaways=takeaways,
        fact_tables=fact_tables,
        quotes=[_quote(tokens, i) for i, t in enumerate(tokens) if t.type == "blockquote_open" and t.level == 0],
        images=list(_images(tokens, site_url)),
    )


def _cut_takeaways(tokens: list[Token]) -> tuple[list[Token], list[str]]:
    """Remove the first "Key Takeaways" heading (or paragraph) through its list; return the list's items.

    As in an upstream feed's HTML: a heading's list may come after a short
    introduction, which goes with it; a paragraph's must follow it directly.
    """
    for start, token in enumerate(tokens):
        if not (token.type in {"heading_open", "paragraph_open"} and token.level == 0):
            continue
        if not is_takeaways_marker(_plain(tokens[start + 1].children)):
            continue
        for index in range(start + 3, len(tokens)):
            if tokens[index].type == "heading_open":
                break
            if token.type == "paragraph_open" and index > start + 3:
                break
            if tokens[index].type in {"bullet_list_open", "ordered_list_open"}:
                end = _close_index(tokens, index)
                items = [
                    _block_text(tokens[i : _close_index(tokens, i)])
                    for i in range(index + 1, end)
                    if tokens[i].type == "list_item_open" and tokens[i].level == tokens[index].level + 1
                ]
                return tokens[:start] + tokens[end + 1 :], items
    return tokens, []


def _align_cells(tokens: list[Token]) -> None:
    """markdown-it writes a column's alignment as ``style="text-align:right"``; the
    ``align`` attribute says the same without CSS, which the sanitizer keeps and a
    page's Content-Security-Policy does not block."""
    for token in tokens:
        if token.type in {"th_open", "td_open"} and token.attrs:
            align = cell_alignment(None, str(token.attrs.pop("style", "")))
            if align:
                token.attrs["align"] = align


def _tables(tokens: list[Token]) -> list[tuple[int, str]]:
    """(index of ``table_open``, caption) of every table: the caption is the nearest heading
    above, remembered in one forward pass (a scan back per table made thousands of tables
    quadratic: seconds of parsing for a few hundred kilobytes)."""
    caption = ""
    tables = []
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            caption = _plain(tokens[index + 1].children)
        elif token.type == "table_open":
            tables.append((index, caption))
    return tables


def _fact_table(tokens: list[Token], start: int, caption: str) -> FactTable:
    """The table's plain text cells, with its caption and the sources note below it."""
    end = _close_index(tokens, start)
    rows = [
        tuple(_plain(cell.children) for cell in tokens[i : _close_index(tokens, i)] if cell.type == "inline")
        for i in range(start, end)
        if tokens[i].type == "tr_open"
    ]
    sources = ""
    if end + 2 < len(tokens) and tokens[end + 1].type == "paragraph_open":
        sources = sources_note(_plain(tokens[end + 2].children))
    header_cells = (t for t in tokens[start:end] if t.type == "th_open")
    align = table_alignment([str(cell.attrGet("align") or "") for cell in header_cells])
    return FactTable(caption, rows[0], tuple(rows[1:]), sources, align)


def _ragged_rows(tokens: list[Token], start: int, lines: list[str]) -> Iterator[tuple[int, str]]:
    """Rows whose cell count differs from the header's, as (0-based body line, message).

    markdown-it pads short rows and drops extra cells without a word, so the raw lines
    are counted (after any blockquote or list indentation prefix).
    """
    row_lines = [t.map[0] for t in tokens[start : _close_index(tokens, start)] if t.type == "tr_open" and t.map]
    counts = [_count_cells(lines[line]) for line in row_lines]
    for line, count in zip(row_lines[1:], counts[1:]):
        if count != counts[0]:
            yield line, f"table row has {count} cells, header has {counts[0]}"


def _count_cells(line: str) -> int:
    row = line.lstrip(" \t>").strip().removeprefix("|")
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    return len(_UNESCAPED_PIPE.split(row))


def _quote(tokens: list[Token], start: int) -> Quote:
    """A blockquote's text; a last line starting with a dash names the speaker (:func:`split_cite`)."""
    lines = [line.strip() for line in _block_text(tokens[start : _close_index(tokens, start)], "\n").split("\n")]
    lines, cite = split_cite([line for line in lines if line])
    return Quote(" ".join(lines), cite)


def _first_paragraph(tokens: list[Token]) -> str:
    """Text of the first top-level paragraph that has any (an image-only one has none)."""
    starts = (i for i, token in enumerate(tokens) if token.type == "paragraph_open" and token.level == 0)
    texts = (_plain(tokens[i + 1].children) for i in starts)
    return next((text for text in texts if text), "")


def _images(tokens: list[Token], site_url: str) -> Iterator[Image]:
    """Body images with an http(s) source (markdown-it lets ``data:image/…`` through; the
    sanitized body drops it, and so does the list every renderer's lead image comes from)."""
    for token in tokens:
        for child in token.children or []:
            if child.type == "image" and (src := absolute_http(site_url, str(child.attrGet("src") or ""))):
                yield Image(src, _plain(child.children), str(child.attrGet("title") or ""))


def _images_without_alt(tokens: list[Token]) -> Iterator[tuple[int, str]]:
    """(0-based body line, src) of each image with no alt text: screen readers and
    mail clients that block images have nothing to show for it."""
    for token in tokens:
        for child in token.children or []:
            if child.type == "image" and not _plain(child.children):
                src = str(child.attrGet("src") or "")
                block = token.content.split("\n")
                offset = next((i for i, text in enumerate(block) if f"]({src}" in text), 0)
                yield (token.map[0] if token.map else 0) + offset, src


def _close_index(tokens: list[Token], start: int) -> int:
    """Index of the token that closes ``tokens[start]``."""
    depth = 0
    for index in range(start, len(tokens)):
        depth += tokens[index].nesting
        if depth == 0:
            return index
    return len(tokens) - 1


def _block_text(tokens: Iterable[Token], separator: str = " ") -> str:
    """Plain text of every inline run in ``tokens`` (paragraphs of a list item or a quote)."""
    texts = (_plain(token.children, separator) for token in tokens if token.type == "inline")
    return separator.join(text for text in texts if text)


def _plain(children: list[Token] | None, line_break: str = " ") -> str:
    """Inline markup → text: emphasis, links and code lose their markup, images vanish.

    Inline ``<script>`` or ``<style>`` (see ``NOT_TEXT_TAGS``) goes with its content:
    Markdown leaves what lies between the tags as text, but it is code.
    """
    parts = []
    inside = ""  # the code element we are in, if any
    for child in children or []:
        if child.type == "html_inline" and (tag := _HTML_TAG.match(child.content)):
            closing, name = tag.group(1), tag.group(2).lower()
            if not inside and not closing and name in NOT_TEXT_TAGS and not child.content.endswith("/>"):
                inside = name
            elif inside == name and closing:
                inside = ""
        elif inside:
            continue
        elif child.type in {"text", "code_inline"}:
            parts.append(child.content)
        elif child.type in {"softbreak", "hardbreak"}:
            parts.append(line_break)
    return "".join(parts).strip()


