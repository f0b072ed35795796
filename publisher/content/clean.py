"""The characters an article may hold: the one rule every source's text goes through.

XML 1.0 (so RSS, Atom and lxml), email headers and PostgreSQL's text columns refuse
characters that a Markdown file, a JSON body or an upstream feed can carry: C0
controls, noncharacters, lone surrogates.  One of them in one field made the feed
build, the digest and the daemon's start fail for everyone, so :class:`Article`
(and its parts) pass every text field through :func:`clean_text` or
:func:`clean_line` when they are made: whichever source builds an article, none of
these characters reaches the store or a renderer.

What each character becomes, and why:

* C0 controls but tab, line feed and carriage return (U+0000–U+0008, U+000B,
  U+000C, U+000E–U+001F) and DEL (U+007F) are *removed*: they carry no text a
  reader could miss, and a stand-in would only clutter a title.
* C1 controls (U+0080–U+009F) are nearly always Windows-1252 bytes read as
  Latin-1 (U+0093 and U+0094 were meant as “ and ”): they become the Windows-1252
  character, and are removed where that code page has none.
* Lone surrogates (from a JSON ``\\ud800`` escape) become U+FFFD, the replacement
  character: the text visibly lost something there, and it can be encoded again.
* The noncharacters U+FFFE and U+FFFF, which XML refuses, are removed.
"""

from __future__ import annotations

import re

_REMOVED = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_C1 = re.compile(r"[\x80-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# What a one-line field (a title, an author, a tag) must not break on: every line or
# paragraph separator and the tab, which is whitespace a header or a <title> shows as a space.
_LINE_BREAK = re.compile(r"[\t\n\r\u2028\u2029]")


def _windows_1252(match: re.Match[str]) -> str:
    try:
        return match.group().encode("latin-1").decode("cp1252")
    except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90, 0x9D: unassigned in Windows-1252
        return ""


def clean_text(text: str) -> str:
    """``text`` without the characters XML and email cannot carry (see the module's rules);
    line breaks and tabs are kept, for fields (a body, a summary) that may have them."""
    if text.isascii() and text.isprintable():  # nearly every field: nothing to do
        return text
    text = _C1.sub(_windows_1252, text)  # first: U+0085 becomes "…", not a line break
    return _SURROGATE.sub("\ufffd", _REMOVED.sub("", text))


def clean_line(text: str) -> str:
    """:func:`clean_text` for a one-line field: a tab or line break becomes a space, and
    the ends are trimmed (a title is never shown with a line break in it)."""
    return _LINE_BREAK.sub(" ", clean_text(text)).strip()
