"""The extraction rules both article parsers share: which text marks what a renderer shows on its own.

An article comes from a Markdown file (:mod:`publisher.content.markdown`) or an
upstream feed's HTML (:mod:`publisher.content.upstream`); each renderer then shows
the key takeaways, a fact table's sources and a pull quote's speaker by itself.  The
two parsers walk different trees (markdown-it tokens, lxml elements), but what
*counts* as a takeaways marker, a sources note or a speaker's line must be one rule:
written twice, the copies drifted (an en dash named the speaker in a feed and not in
a Markdown file; "Key  Takeaways" was a section in one and text in the other).  So
the rules live here, as the union of what either parser accepted, and each parser
only finds the candidate text in its own tree.
"""

from __future__ import annotations

import re

# "Key Takeaways", in any case, any spacing, an optional colon: a heading, or a paragraph
# (a bold line) directly followed by its list.
_TAKEAWAYS_MARKER = re.compile(r"key\s+takeaways\s*:?", re.IGNORECASE)
# "Sources:", "Source:" or "Data Sources:" opening the paragraph right after a table.
_SOURCES_LABEL = re.compile(r"(?:data\s+)?sources?\s*:\s*", re.IGNORECASE)
# A quote's last line naming the speaker starts with an em dash, an en dash or "--".
_CITE_DASH = re.compile(r"(?:—|–|--)\s*")


def is_takeaways_marker(text: str) -> bool:
    """Whether a heading's (or a paragraph's) plain text opens the "Key Takeaways" section."""
    return _TAKEAWAYS_MARKER.fullmatch(text.strip()) is not None


def sources_note(text: str) -> str:
    """The sources a note after a table names ("Data Sources: A, B" → "A, B"); "" when it is no such note."""
    label = _SOURCES_LABEL.match(text)
    return text[label.end() :] if label else ""


def is_cite_line(line: str) -> bool:
    """Whether a quote's line names its speaker (it starts with a dash)."""
    return _CITE_DASH.match(line) is not None


def without_cite_dash(cite: str) -> str:
    """A speaker's line without its leading dash ("— Someone" → "Someone")."""
    dash = _CITE_DASH.match(cite)
    return (cite[dash.end() :] if dash else cite).strip()


def split_cite(lines: list[str]) -> tuple[list[str], str]:
    """A quote's lines and its speaker: the last of several lines names the speaker when it
    starts with a dash (a one-line quote that starts with one is all quote)."""
    if len(lines) > 1 and is_cite_line(lines[-1]):
        return lines[:-1], without_cite_dash(lines[-1])
    return lines, ""
