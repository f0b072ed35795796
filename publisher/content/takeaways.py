"""Proposing key takeaways for an article that has none: an extractive summarizer.

``[content] takeaways`` decides what becomes of the proposals
(:class:`~publisher.content.model.TakeawaysMode`):
"suggest" shows them to the author (``publisher check``, ``preview``, ``articles show``),
"auto" publishes them, marked as generated.  Either way the proposals must be the same
on every machine, at every run, offline: a feed entry that changed between two scans
would look edited, and a publication cannot wait on a network or ship a model.  So this
is plain Python over the article's own text, no model and no data files: it takes whole
sentences the author wrote (extractive, so nothing is invented), scored by what key
takeaways tend to be made of:

* figures: a sentence with a number ("94%", "$1.2bn", "twelve libraries") states a fact;
* the title's (and subtitle's) key terms, stop words dropped, lightly stemmed;
* the article's own frequent terms (a sentence about what the article keeps coming back to);
* position: an opening sentence, of the article or of a paragraph, tends to carry its point.

Headings, quotes (block quotes, and a sentence opening with a quotation mark: the pull
quote shows on its own, and a quote is its speaker's words), tables and their captions,
figures, code blocks, "Source:" notes and a line introducing a list ("What X stands to
gain:") are never taken.  A sentence that mostly repeats one already taken is skipped (word-set Jaccard),
and each proposal is cut at a word to :data:`MAX_CHARS`.  3 to :data:`MAX_ITEMS` come
out, in article order (fewer only when the article has fewer sentences).

It copes with any language: sentences end at ``. ! ?`` before a space and at the CJK
and Arabic full stops without one; words are Unicode letter runs, and CJK ideographs
count one by one (no spaces to split at).  Stop words: English, and the commonest
function words of French, German, Spanish, Portuguese and Italian (those that are
English words too, such as "die", "war" or "son", left out);
stemming is English only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from copy import deepcopy
from dataclasses import dataclass, replace
from functools import lru_cache

from publisher.content.extract import sources_note
from publisher.content.model import Article, TakeawaysMode
from publisher.content.text import Element, element_text, html_fragment, one_line, truncate

MIN_ITEMS = 3
MAX_ITEMS = 5
MAX_CHARS = 180  # a takeaway is a line of a list, not a paragraph
MIN_WORDS = 5  # shorter "sentences" are labels, captions or fragments
_LONG = 30  # words: a sentence this long scores half as much as a very short one
SIMILAR = 0.5  # word-set Jaccard above which a sentence repeats one already taken
_CLOSE = 0.75  # a 4th and 5th item only when they score this close to the best one


# Blocks whose text is never a takeaway: headings, quotes, tables, figures, code.
_SKIPPED = frozenset({"h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "figure", "figcaption", "pre"})
# Opening a sentence, direct speech: a quote is the speaker's, and the pull quote shows on its own.
_QUOTE_MARKS = ("\"", "'", "“", "‘", "«", "„", "「", "『")
_CANDIDATES = frozenset({"p", "li", "dd"})
_NESTED = ("ul", "ol", "dl", *sorted(_SKIPPED))

_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "vs", "etc", "e.g", "i.e", "cf", "al",
    "no", "nos", "vol", "fig", "approx", "est", "inc", "ltd", "co", "corp", "dept", "gov", "gen", "col", "lt",
    "sgt", "rep", "sen", "u.s", "u.k", "u.n", "e.u", "a.m", "p.m", "jan", "feb", "mar", "apr", "jun", "jul",
    "aug", "sep", "sept", "oct", "nov", "dec",
})  # fmt: skip
# A sentence ends at . ! ? … (then closing quotes or brackets) before a space, or at a
# CJK or Arabic full stop, question or exclamation mark, space or not.
_END = re.compile(r"""[.!?…]+["'”’»)\]]*(?=\s)|[。！？؟]+["'”’»)\]」』]*""")
_WORDS = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W\d_]+(?:['’][^\W\d_]+)?|\d+")
# Words that state a figure as digits would (English): "twelve libraries", "thousands of trees".
_NUMBER_WORDS = frozenset("""
two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty hundred hundreds thousand
thousands million millions billion billions trillion trillions half dozen dozens percent
""".split())
_LABEL = re.compile(r"^[^.!?:]{1,60}:\s+")  # "Economic relief: …" (a list item's bold label)

_STOP_WORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her here
hers herself him himself his how i if in into is it its itself just least less let like made make many may me
might more most much must my myself new no nor not now of off on once one only or other our ours ourselves out
over own per same say said says she should since so some still such than that the their theirs them themselves
then there these they this those through to too under until up upon us very via was we were what when where
which while who whom why will with within without would yet you your yours yourself yourselves
""".split()) | frozenset("""
au aux avec ce ces dans de des du elle en est et il ils la le les leur mais ne nous ou pas pour qu que qui sa se
ses sont un une été
auf aus bei das dem der des ein eine einem einen einer es für ist im mit nicht sich sie und von vor
wie wird zu zum zur
como del el ella ellos en es esta este la las lo los más para pero por que se su sus una y
ao da das do dos em mais na nas no nos os para pela pelo por que se sua seu um uma
che di gli il le nel nella per più si sono una
""".split())


@dataclass(frozen=True, slots=True)
class _Sentence:
    text: str
    order: int  # position in the article, among every candidate sentence
    block: int  # which paragraph or list item it is in
    first: bool  # the first sentence of its block
    terms: frozenset[str]
    words: int
    figures: bool  # it states a number


def suggest(article: Article) -> tuple[str, ...]:
    """Up to :data:`MAX_ITEMS` sentences of ``article``'s body that make good key takeaways,
    in article order; the same article gives the same proposals, always."""
    sentences = list(_sentences(article.body_html))
    if not sentences:
        return ()
    headline = _terms(f"{article.title} {article.subtitle}")
    frequency = Counter(term for sentence in sentences for term in sentence.terms)
    top = max(frequency.values())
    scored = sorted(
        ((_score(sentence, headline, frequency, top), sentence) for sentence in sentences),
        key=lambda pair: (-pair[0], pair[1].order),
    )
    best = scored[0][0]
    chosen: list[_Sentence] = []
    for score, sentence in scored:
        if len(chosen) >= MAX_ITEMS or (len(chosen) >= MIN_ITEMS and score < best * _CLOSE):
            break
        if all(_jaccard(sentence.terms, other.terms) <= SIMILAR for other in chosen):
            chosen.append(sentence)
    return tuple(truncate(sentence.text, MAX_CHARS) for sentence in sorted(chosen, key=lambda s: s.order))


def with_generated(article: Article, mode: TakeawaysMode) -> Article:
    """``article`` as published under ``mode``: with proposals marked as generated when
    it is "auto" and the author wrote no takeaways; else as it is."""
    if mode != TakeawaysMode.AUTO or article.takeaways:
        return article
    proposed = suggest(article)
    return replace(article, takeaways=proposed, takeaways_generated=True) if proposed else article


def lead(article: Article, count: int = MIN_ITEMS) -> tuple[str, ...]:
    """The first ``count`` sentences of the body as :func:`suggest` reads it (the "lead-3"
    baseline a summarizer has to beat)."""
    return tuple(sentence.text for sentence in list(_sentences(article.body_html))[:count])


def _score(sentence: _Sentence, headline: frozenset[str], frequency: Counter[str], top: int) -> float:
    """How much ``sentence`` looks like a key takeaway (see the module's docstring).

    The weights were set by ``bench/takeaways.py`` (ROUGE-1 F1 against the authors'
    takeaways of the sample articles): a number weighs less than the title's terms and
    the article's own, or every table-like sentence of figures wins; a long sentence is
    divided down (by 2 at :data:`_LONG` words), as a takeaway is one short line.
    """
    terms = sentence.terms
    if not terms:
        return 0.0
    central = sum(frequency[term] for term in terms) / (len(terms) * top)
    title = len(terms & headline) / len(headline) if headline else 0.0
    figures = 1.0 if sentence.figures else 0.0
    position = 1.0 / (1 + sentence.block) + (0.3 if sentence.first else 0.0)
    return (title + central + 0.2 * figures + 0.5 * position) / (1 + sentence.words / _LONG)


def _sentences(body_html: str) -> Iterator[_Sentence]:
    """The body's candidate sentences: those of paragraphs and list items outside headings,
    quotes, tables and figures, long enough to say something and not direct speech."""
    if not body_html.strip():
        return
    order = 0
    for block, text in enumerate(_blocks(html_fragment(body_html))):
        first = True
        for sentence in split_sentences(text):
            words = _WORDS.findall(sentence.lower())
            if len(words) < MIN_WORDS or sentence.startswith(_QUOTE_MARKS):
                continue
            figures = "%" in sentence or any(word.isdigit() or word in _NUMBER_WORDS for word in words)
            yield _Sentence(sentence, order, block, first, _content_words(words), len(words), figures)
            order, first = order + 1, False


def _blocks(root: Element) -> Iterator[str]:
    """The text of each paragraph and list item, in document order, outside skipped blocks;
    a list item's own text without its nested lists (they are blocks of their own)."""
    for element in root.iter():
        if not isinstance(element.tag, str) or element.tag not in _CANDIDATES:
            continue
        if any(ancestor.tag in _SKIPPED for ancestor in element.iterancestors()):
            continue
        text = _own_text(element)
        if not text or sources_note(text) or text.endswith(":"):
            continue  # a table's sources, or a line that introduces a list
        yield _LABEL.sub("", text, count=1) if element.tag == "li" else text


def _own_text(element: Element) -> str:
    """``element``'s text without its nested lists (blocks of their own) and skipped blocks;
    the document is left as it is (a copy is trimmed)."""
    if next(element.iter(*_NESTED), None) is None:
        return element_text(element)
    clone = deepcopy(element)
    clone.tail = None
    for nested in list(clone.iter(*_NESTED)):
        nested.drop_tree()
    return element_text(clone)


def split_sentences(text: str) -> list[str]:
    """``text`` cut into sentences: at ``. ! ?`` followed by a space (not after an
    abbreviation such as "Dr." or "U.S.", nor an initial), and at CJK and Arabic sentence
    marks; a decimal ("3.5%", "$1.2bn") has no space after its point, so it is never cut."""
    text = one_line(text)
    sentences: list[str] = []
    start = 0
    for end in _END.finditer(text):
        if end.group().startswith(".") and _abbreviation(text, start, end.start()):
            continue
        piece = text[start : end.end()].strip()
        if piece:
            sentences.append(piece)
        start = end.end()
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences


def _abbreviation(text: str, start: int, dot: int) -> bool:
    """Whether the period at ``dot`` ends an abbreviation or an initial, not the sentence."""
    word = text[start:dot].rsplit(" ", 1)[-1].lstrip("(\"'“‘").lower()
    if len(word) == 1 and word.isalpha():
        return True  # an initial: "John F. Kennedy"
    return word in _ABBREVIATIONS


def _terms(text: str) -> frozenset[str]:
    """The content words of ``text`` (see :func:`_content_words`)."""
    return _content_words(_WORDS.findall(text.lower()))


def _content_words(words: list[str]) -> frozenset[str]:
    """Of lower-cased ``words``, the content words: stop words and numbers dropped, English
    plurals and verb endings cut (``_stem``)."""
    return frozenset(_stem(word) for word in words if word not in _STOP_WORDS and not word.isdigit())


@lru_cache(maxsize=65536)  # an article repeats its words; a site repeats its vocabulary
def _stem(word: str) -> str:
    """A light English stemmer: enough that "sanctions" meets "sanction" and "planted"
    meets "planting"; a word of another script is left as it is."""
    word = word.replace("’", "'").removesuffix("'s")
    if not word.isascii() or len(word) <= 4:
        return word
    for suffix, replacement in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: -len(suffix)] + replacement
    return word


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0
