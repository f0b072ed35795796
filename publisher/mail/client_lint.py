"""Lint a rendered email against the caniemail data for the configured mail clients.

It reads the HTML as it is sent (after css-inline), so what it reports is what the
clients get, whether the templates are the built-in ones or an operator's override.
The features it looks for are a defined subset of the data, matched the way
``@jsx-email/doiuse-email`` (the caniemail package's own linter) matches them, from
the data's titles rather than from hand-written support tables:

- CSS, in ``style`` attributes and ``<style>`` blocks: properties (``max-width``,
  ``border-radius``, ``position``, ``background-image`` …), property-value pairs
  (``display:flex``, ``display:grid``), functions (``calc()``, ``linear-gradient()``,
  ``var()`` for custom properties), ``!important``, units, at-rules (``@media``,
  ``@font-face`` …) and media features (``prefers-color-scheme`` …), pseudo-classes
  and elements in selectors (``:hover``, ``::before`` …);
- HTML: elements (``<style>``, ``<link>``, ``<svg>``, ``<video>``, ``<form>``,
  ``<picture>``, HTML5 semantics …), attributes (``role``, ``aria-*``, ``srcset`` …),
  local anchors (``href="#…"``), ``mailto:`` links, form inputs by type, the
  color-scheme meta tag and the HTML5 doctype.

Left out, because they need a selector parser or are noise in every email: selector
combinator features (descendant, child, class …), CSS and HTML comments (Outlook's
conditional comments are comments on purpose) and image formats.

A finding is a warning, never an error: the operator decides.  The built-in templates
use a few features on purpose, as progressive enhancements whose absence leaves the
message readable and laid out (:data:`PROGRESSIVE`, each with why); those, and the
features a client supports only in part (every email has margins and lists), are
summed up in one note, not warned of, and listed in full in a preview's ``clients.txt``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache

from publisher.mail import caniemail

_PROPERTY_NAME = re.compile(r"[a-z-]+")
_PAIR_TITLE = re.compile(r"([a-z-]+):\s*([a-z-]+)")
_FUNCTION_TITLE = re.compile(r"([a-z-]+)\(\)")
_ELEMENT_TITLE = re.compile(r"<(\w+)> elements?$")
_TYPED_ELEMENT_TITLE = re.compile(r'<(\w+) (\w+)="(\w+)"> element')
_FUNCTION_USE = re.compile(r"([a-z-]+)\(")
# Titles the doiuse rules would misread, and what they stand for in the document.
_ELEMENTS_BY_TITLE = {
    "html-h1-h6": ("h1", "h2", "h3", "h4", "h5", "h6"),
    "html-lists": ("ul", "ol", "dl"),
    "html-semantics": ("article", "aside", "details", "figcaption", "figure", "footer", "header", "main", "mark",
                       "nav", "section", "summary", "time"),
    "html-address": ("address",),
    "html-image-maps": ("map",),
    "html-svg": ("svg",),
    "html-base": ("base",),
}
_PROPERTIES_BY_TITLE = {"css-left-right-top-bottom": ("left", "right", "top", "bottom")}
_MEDIA_FEATURES = re.compile(r"@media \(([^)]+)\)")  # "@media (hover), @media (any-hover)" → hover, any-hover
_LEFT_OUT = {"css-comments", "html-comments"}


_PRELOAD_HIDING = "the preheader is hidden five ways at once (mso-hide for Outlook): any one of them hides it"
# The features the built-in templates use knowing that some clients lack them, and why the
# email still reads right there.  A finding of one of these is a note, not a warning.
PROGRESSIVE: dict[str, str] = {
    "html-meta-color-scheme": "dark mode: a client without it shows the light colours",
    "css-at-media-prefers-color-scheme": "dark mode: a client without it shows the light colours",
    "css-at-media": "the phone-width rules: without them the fluid, 100%-wide tables still fit",
    "html-style": "every rule is also inlined: the <style> block keeps only the @media rules",
    "html-doctype": "a client that drops it lays out the same tables and inline styles",
    "html-body": "clients replace <body>: the wrapper table carries the background and the width",
    "css-border-radius": "square corners instead of round ones",
    "css-table-layout": "the client sizes the columns itself; Outlook's MSO frame fixes the width",
    "css-display-none": _PRELOAD_HIDING,
    "css-opacity": _PRELOAD_HIDING,
    "css-max-height": _PRELOAD_HIDING,
    "css-overflow": _PRELOAD_HIDING,
    "html-aria-hidden": "the preheader is hidden from screen readers too where the client keeps aria-hidden;"
                        " elsewhere a screen reader reads its one sentence, the digest's summary",
    "css-word-break": "a long written-out link breaks where the client allows it; elsewhere it wraps or"
                      " scrolls as the client's own long links do",
}


@dataclass
class Finding:
    """One feature the email uses that some listed clients lack or support only in part."""

    slug: str
    title: str
    url: str
    unsupported: dict[str, None] = field(default_factory=dict)  # client ids, ordered, once each
    partial: dict[str, tuple[str, ...]] = field(default_factory=dict)  # client id → note numbers
    where: dict[str, None] = field(default_factory=dict)  # the templates it was found in

    def __str__(self) -> str:
        """One line: where, the feature, who lacks it, who supports it in part (with the data's note numbers)."""
        names = caniemail.client_names()
        parts = []
        if self.unsupported:
            parts.append("not supported by " + ", ".join(names[c] for c in self.unsupported))
        if self.partial:
            parts.append("partly supported by " + ", ".join(
                names[c] + (f" (note {', '.join(notes)})" if notes else "") for c, notes in self.partial.items()
            ))
        return f"{', '.join(self.where)}: warning: {self.title}: {'; '.join(parts)} ({self.url})"

    def notes(self) -> list[str]:
        """The text of every note the partial findings cite, as ``"note 1: …"``."""
        texts = caniemail.features()[self.slug]["notes"]
        cited = sorted({note for notes in self.partial.values() for note in notes}, key=int)
        return [f"note {note}: {texts[note]}" for note in cited if note in texts]


    @property
    def warns(self) -> bool:
        """Whether a listed client lacks it and it is not one of the built-in templates' enhancements."""
        return bool(self.unsupported) and self.slug not in PROGRESSIVE


def report(findings: list[Finding]) -> tuple[list[str], str | None]:
    """For a terminal: a warning line for each feature some listed client lacks, and one note
    (None when there is nothing to note) counting the rest: the progressive enhancements
    (:data:`PROGRESSIVE`) and what clients support only in part."""
    warnings = [str(finding) for finding in findings if finding.warns]
    rest = [finding for finding in findings if not finding.warns]
    if not rest:
        return warnings, None
    note = (f"note: {len(rest)} more feature(s) some of [email] clients ignore or support in part: the built-in "
            f"templates' progressive enhancements and partial support ({', '.join(f.title for f in rest[:4])}, …); "
            "`publisher preview` writes each, with the data's notes, to clients.txt")
    return warnings, note


def details(findings: list[Finding], clients: tuple[str, ...]) -> str:
    """Every finding with the text of its notes, for a file next to a preview."""
    names = caniemail.client_names()
    head = [f"Mail client support ({caniemail.source()}) for: {', '.join(names[c] for c in clients)}", ""]
    body = [
        line for finding in findings
        for line in (str(finding), *(f"    {n}" for n in finding.notes()),
                     *([f"    by design: {PROGRESSIVE[finding.slug]}"] if finding.slug in PROGRESSIVE else []), "")
    ]
    return "\n".join(head + (body or ["Every feature found is supported by every listed client.", ""]))


@dataclass(frozen=True)
class _Rules:
    """The data's features by what in a document matches them."""

    properties: dict[str, tuple[str, ...]]  # CSS property → slugs
    pairs: dict[tuple[str, str], tuple[str, ...]]  # (property, value) → slugs
    functions: dict[str, str]  # function name → slug
    keywords: dict[str, str]  # "!important" → slug
    units: dict[str, str]  # "px" → slug
    at_rules: dict[str, str]  # "media" → slug
    media_features: dict[str, str]  # "prefers-color-scheme" → slug
    pseudo: dict[str, re.Pattern[str]]  # slug → pattern over a selector
    elements: dict[str, tuple[str, ...]]  # tag → slugs
    typed_elements: dict[tuple[str, str, str], str]  # (tag, attribute, value) → slug
    attributes: dict[str, tuple[str, ...]]  # attribute → slugs


@cache
def _rules() -> _Rules:
    """Read the feature titles once, the way doiuse-email does (see the module docstring)."""
    properties: dict[str, list[str]] = {}
    pairs: dict[tuple[str, str], list[str]] = {}
    functions, keywords, units, at_rules, media_features = {}, {}, {}, {}, {}
    pseudo: dict[str, re.Pattern[str]] = {}
    elements: dict[str, list[str]] = {}
    typed: dict[tuple[str, str, str], str] = {}
    attributes: dict[str, list[str]] = {}
    for slug, feature in caniemail.features().items():
        title: str = feature["title"].strip()
        if slug in _LEFT_OUT:
            continue
        if feature["category"] == "css":
            name = title.removesuffix(" shorthand").removesuffix(" property")
            for prop in _PROPERTIES_BY_TITLE.get(slug, (name,) if _PROPERTY_NAME.fullmatch(name) else ()):
                properties.setdefault(prop, []).append(slug)
            if pair := _PAIR_TITLE.fullmatch(title):
                pairs.setdefault((pair[1], pair[2]), []).append(slug)
            if title == "CSS Variables (Custom Properties)":
                functions["var"] = slug
            elif (function := _FUNCTION_TITLE.search(title)) and not title.startswith(":"):
                functions[function[1]] = slug
            if title.endswith(" keyword"):
                keywords[title.removesuffix(" keyword")] = slug
            if title.endswith(" unit"):
                units[title.removesuffix(" unit")] = slug
            if title.startswith("@") and " " not in title:
                at_rules[title[1:]] = slug
            for media_feature in _MEDIA_FEATURES.findall(title):
                media_features[media_feature] = slug
            if title.startswith(":"):
                stem = re.escape(title.removesuffix("()"))
                pseudo[slug] = re.compile(rf"(?<!:){stem}(?![\w-])")  # ":first" is not ":first-child"
        elif feature["category"] == "html":
            if typed_match := _TYPED_ELEMENT_TITLE.fullmatch(title):
                typed[(typed_match[1], typed_match[2], typed_match[3])] = slug
            elif slug in _ELEMENTS_BY_TITLE or (element := _ELEMENT_TITLE.search(title)):
                for tag in _ELEMENTS_BY_TITLE.get(slug) or (element[1],):
                    elements.setdefault(tag, []).append(slug)
            elif title.endswith(" attribute"):
                attributes.setdefault(title.removesuffix(" attribute"), []).append(slug)
            elif slug == "html-srcset":
                for name in ("srcset", "sizes"):
                    attributes.setdefault(name, []).append(slug)
    frozen = {key: tuple(slugs) for key, slugs in properties.items()}
    return _Rules(
        frozen, {key: tuple(slugs) for key, slugs in pairs.items()}, functions, keywords, units, at_rules,
        media_features, pseudo, {key: tuple(slugs) for key, slugs in elements.items()}, typed,
        {key: tuple(slugs) for key, slugs in attributes.items()},
    )


def used_features(html: str) -> set[str]:
    """The slugs of the features (of the subset above) that ``html`` uses."""
    import lxml.html  # the lint runs in `check` and `preview` only: the sender never loads it

    rules = _rules()
    document = lxml.html.document_fromstring(html)
    used: set[str] = set()
    docinfo = document.getroottree().docinfo
    if docinfo.doctype.lower() == "<!doctype html>":
        used.add("html-doctype")
    for element in document.iter():
        if not isinstance(element.tag, str):
            continue
        tag = element.tag.lower()
        used.update(rules.elements.get(tag, ()))
        for name, value in element.attrib.items():
            used.update(rules.attributes.get(name, ()))
            if (slug := rules.typed_elements.get((tag, name, value))) is not None:
                used.add(slug)
        if tag == "a":
            href = element.get("href", "")
            if href.startswith("#") or element.get("name") is not None:
                used.add("html-anchor-links")
            if href.lower().startswith("mailto:"):
                used.add("html-mailto-links")
        if tag == "meta" and element.get("name", "").lower() == "color-scheme":
            used.add("html-meta-color-scheme")
        if tag == "html" and {"⚡4email", "amp4email"} & set(element.attrib):
            used.add("amp")
        if (style := element.get("style")) is not None:
            used.update(_declarations_features(style, rules))
        if tag == "style":
            used.update(_stylesheet_features(element.text or "", rules))
    return used


def _declarations_features(css: str, rules: _Rules) -> Iterator[str]:
    import tinycss2

    for declaration in tinycss2.parse_blocks_contents(css, skip_comments=True, skip_whitespace=True):
        if declaration.type != "declaration":
            continue
        name = declaration.lower_name
        value = tinycss2.serialize(declaration.value).strip().lower()
        if name.startswith("--"):
            yield from _maybe(rules.functions.get("var"))
        yield from rules.properties.get(name, ())
        yield from rules.pairs.get((name, value), ())
        for function in _FUNCTION_USE.findall(value):
            yield from _maybe(rules.functions.get(function))
        if declaration.important:
            yield from _maybe(rules.keywords.get("!important"))
        for unit, slug in rules.units.items():
            # "initial" is a keyword; every other unit follows a number ("12px", "50%").
            pattern = r"\binitial\b" if unit == "initial" else rf"\d{re.escape(unit)}(?![a-z])"
            if re.search(pattern, value):
                yield slug


def _stylesheet_features(css: str, rules: _Rules) -> Iterator[str]:
    import tinycss2

    for rule in tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True):
        if rule.type == "at-rule":
            yield from _maybe(rules.at_rules.get(rule.lower_at_keyword))
            prelude = tinycss2.serialize(rule.prelude).lower()
            for media_feature, slug in rules.media_features.items():
                if re.search(rf"\(\s*{re.escape(media_feature)}\b", prelude):
                    yield slug
            if rule.content is not None and rule.lower_at_keyword in {"media", "supports", "document"}:
                yield from _stylesheet_features(tinycss2.serialize(rule.content), rules)
            elif rule.content is not None:
                yield from _declarations_features(tinycss2.serialize(rule.content), rules)
        elif rule.type == "qualified-rule":
            selector = tinycss2.serialize(rule.prelude)
            yield from (slug for slug, pattern in rules.pseudo.items() if pattern.search(selector))
            yield from _declarations_features(tinycss2.serialize(rule.content), rules)


def _maybe(slug: str | None) -> Iterable[str]:
    return () if slug is None else (slug,)


def lint(renders: Iterable[tuple[str, str]], clients: tuple[str, ...]) -> list[Finding]:
    """What in ``renders`` (``(template name, HTML as sent)`` pairs) some of ``clients`` lack.

    One finding per feature however often and wherever it is used, naming the
    templates; features every listed client supports are left out.  Ordered: most
    clients lacking first, then by title.
    """
    features = caniemail.features()
    findings: dict[str, Finding] = {}
    for where, html in renders:
        for slug in used_features(html):
            lacking = [(client, caniemail.support(slug, client)) for client in clients]
            lacking = [(client, s) for client, s in lacking if s.level in {"n", "a"}]
            if not lacking:
                continue
            feature = features[slug]
            finding = findings.setdefault(slug, Finding(slug, feature["title"].strip(), feature["url"]))
            finding.where[where] = None
            for client, s in lacking:
                if s.level == "n":
                    finding.unsupported[client] = None
                else:
                    finding.partial[client] = s.notes
    return sorted(findings.values(), key=lambda f: (-len(f.unsupported), -len(f.partial), f.title.lower()))
