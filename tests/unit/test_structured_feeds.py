"""The structured data in the feeds: the JSON Feed's ``_publisher`` object and the same
content as elements of the project's namespace in Atom and RSS, read back by feedparser
(what readers use), by lxml (the whole structure) and checked against the W3C rules."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import feedparser
import pytest
from lxml import etree

from publisher.config import SiteSettings
from publisher.content.model import Article, FactTable, Quote
from publisher.feeds.build import FeedDocument, build_feeds
from publisher.feeds.entries import Entry, entry_id, prepare
from publisher.feeds.structured import NAMESPACE, structured_data
from publisher.templating import make_environment
from tests.support.articles import (
    FACT_CAPTION,
    FACT_HEADER,
    FACT_ROWS,
    QUOTE,
    QUOTE_CITE,
    SOURCES,
    TAKEAWAYS,
    seed_like,
)
from tests.support.feed_validity import extension_problems, feed_problems

SITE_URL = "https://news.example.org/"
P = f"{{{NAMESPACE}}}"


@pytest.fixture
def site() -> SiteSettings:
    return SiteSettings(title="World Desk", url=SITE_URL, description="Analysis", author="The Desk")


@pytest.fixture
def env():
    return make_environment()


@pytest.fixture
def rich() -> Article:
    """Takeaways (proposed by publisher), a pull quote, a fact table and a language of its own,
    with text a reader could take for markup."""
    return seed_like(
        lang="pt-BR",
        takeaways_generated=True,
        takeaways=(*TAKEAWAYS, "Prices < costs & margins > 0"),
        fact_tables=(
            FactTable(caption=FACT_CAPTION, header=FACT_HEADER, rows=FACT_ROWS, sources=SOURCES, more_rows=2),
            FactTable(caption="", header=("Year", "Tonnes"), rows=(("2021", ""),), sources=""),
        ),
    )


@pytest.fixture
def plain() -> Article:
    """Nothing structured: no takeaways, quote, table or language."""
    return seed_like(id="plain", slug="plain", canonical_url=SITE_URL + "articles/plain", takeaways=(), quotes=(),
                     fact_tables=(), published=datetime(2023, 9, 1, tzinfo=UTC), updated=datetime(2023, 9, 1, tzinfo=UTC))


@pytest.fixture
def docs(rich, plain, site, env) -> dict[str, FeedDocument]:
    return build_feeds([rich, plain], site, 20, env)


EXPECTED = {
    "about": NAMESPACE,
    "takeaways": [*TAKEAWAYS, "Prices < costs & margins > 0"],
    "takeaways_generated": True,
    "quote": {"text": QUOTE, "cite": QUOTE_CITE},
    "fact_tables": [
        {"caption": FACT_CAPTION, "header": list(FACT_HEADER), "rows": [list(r) for r in FACT_ROWS],
         "sources": SOURCES, "more_rows": 2},
        {"caption": "", "header": ["Year", "Tonnes"], "rows": [["2021", ""]], "sources": ""},
    ],
    "lang": "pt-BR",
}


def _json_item(docs: dict[str, FeedDocument], article: Article) -> dict[str, Any]:
    wanted = entry_id(article, SITE_URL)
    return next(i for i in json.loads(docs["feed.json"].body)["items"] if i["id"] == wanted)


def _xml_entry(docs: dict[str, FeedDocument], fmt: str, article: Article) -> etree._Element:
    root = etree.fromstring(docs[f"feed.{fmt}"].body)
    if fmt == "atom":
        atom = "{http://www.w3.org/2005/Atom}"
        return next(e for e in root.iter(f"{atom}entry") if e.findtext(f"{atom}id") == entry_id(article, SITE_URL))
    return next(i for i in root.iter("item") if i.findtext("guid") == entry_id(article, SITE_URL))


def _read_back(entry: etree._Element) -> dict[str, Any] | None:
    """The namespace's elements of one entry or item as the ``_publisher`` object: what an XML
    reader of the README's element list gets."""
    if not any(etree.QName(child).namespace == NAMESPACE for child in entry):
        return None
    takeaways = entry.find(f"{P}takeaways")
    data: dict[str, Any] = {
        "about": NAMESPACE,
        "takeaways": [t.text or "" for t in entry.iterfind(f"{P}takeaways/{P}takeaway")],
        "takeaways_generated": takeaways is not None and takeaways.get("generated") == "true",
        "fact_tables": [],
    }
    for table in entry.iterfind(f"{P}table"):
        read = {
            "caption": table.findtext(f"{P}caption") or "",
            "header": [c.text or "" for c in table.iterfind(f"{P}header/{P}cell")],
            "rows": [[c.text or "" for c in row.iterfind(f"{P}cell")] for row in table.iterfind(f"{P}row")],
            "sources": table.findtext(f"{P}sources") or "",
        }
        if table.find(f"{P}more-rows") is not None:
            read["more_rows"] = int(table.findtext(f"{P}more-rows"))
        data["fact_tables"].append(read)
    if (quote := entry.find(f"{P}quote")) is not None:
        data["quote"] = {"text": quote.findtext(f"{P}text"), "cite": quote.findtext(f"{P}cite") or ""}
    if (lang := entry.findtext(f"{P}lang")) is not None:
        data["lang"] = lang
    return data


def test_the_json_feed_item_carries_the_publisher_extension(docs, rich, plain):
    item = _json_item(docs, rich)
    assert item["_publisher"] == EXPECTED
    # JSON Feed 1.1: an extension's key starts with "_", and its "about" says where it is documented.
    assert item["_publisher"]["about"].startswith("https://")
    assert "_publisher" not in _json_item(docs, plain)


@pytest.mark.parametrize("fmt", ["atom", "rss"])
def test_atom_and_rss_carry_the_same_content_as_the_json_feed(docs, rich, plain, fmt):
    assert _read_back(_xml_entry(docs, fmt, rich)) == _json_item(docs, rich)["_publisher"]
    assert _read_back(_xml_entry(docs, fmt, plain)) is None


@pytest.mark.parametrize("fmt", ["atom", "rss"])
def test_feedparser_reads_the_namespace_back(docs, rich, plain, fmt):
    """feedparser keys an unknown namespace's elements by the declared prefix; it keeps one
    value per element name (the last of repeated ones), so what it shows of the lists is
    their last item."""
    parsed = feedparser.parse(docs[f"feed.{fmt}"].body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.namespaces["publisher"] == NAMESPACE
    entry = next(e for e in parsed.entries if e.id == entry_id(rich, SITE_URL))
    assert entry["publisher_lang"] == "pt-BR"
    assert entry["publisher_takeaways"] == {"generated": "true"}
    assert entry["publisher_takeaway"] == "Prices < costs & margins > 0"
    assert entry["publisher_text"] == QUOTE
    assert entry["publisher_cite"] == QUOTE_CITE
    assert entry["publisher_caption"] == FACT_CAPTION  # the second table has none
    assert entry["publisher_sources"] == SOURCES
    assert entry["publisher_more-rows"] == "2"
    other = next(e for e in parsed.entries if e.id == entry_id(plain, SITE_URL))
    assert not [key for key in other if key.startswith("publisher_")]


def test_feeds_with_structured_data_pass_the_validator_rules(docs):
    for path, doc in docs.items():
        assert feed_problems(path, doc.body, SITE_URL + path) == [], path


def test_a_feed_without_structured_data_declares_no_namespace(plain, site, env):
    docs = build_feeds([plain], site, 20, env)
    for fmt in ("rss", "atom"):
        assert NAMESPACE.encode() not in docs[f"feed.{fmt}"].body


def test_the_extension_rules_can_fail():
    """The service's namespace rules, restated in feed_validity, report what it reports."""
    bad = f"""<rss version="2.0" xmlns:x="https://other.example/ns" xmlns:dc="https://not-dublin-core.example/"
      xmlns:publisher="{NAMESPACE}" xmlns:atom2="http://www.w3.org/2005/Atom"><channel><item>
      <x:thing>1</x:thing><publisher:quote><text>bare</text></publisher:quote></item></channel></rss>"""
    problems = "\n".join(extension_problems(etree.fromstring(bad), core=""))
    assert "xmlns:x: UnknownNamespace https://other.example/ns" in problems
    assert "xmlns:dc: ReservedPrefix" in problems
    assert "xmlns:atom2: NonstdPrefix" in problems
    assert "NotInANamespace" in problems
    assert "publisher: UnknownNamespace" not in problems  # the one accepted, documented namespace


def test_takeaways_generated_is_false_for_an_authors_takeaways_and_without_any():
    assert structured_data(seed_like())["takeaways_generated"] is False
    proposed_but_none = structured_data(seed_like(takeaways=(), takeaways_generated=True))
    assert proposed_but_none["takeaways"] == [] and proposed_but_none["takeaways_generated"] is False


def test_only_the_pull_quote_and_only_a_language_of_its_own():
    article = seed_like(quotes=(Quote("first", ""), Quote("second", "B")), takeaways=(), fact_tables=())
    assert structured_data(article)["quote"] == {"text": "first", "cite": ""}
    assert "lang" not in structured_data(article)
    assert structured_data(dataclasses.replace(article, quotes=(), lang="ar")) == {
        "about": NAMESPACE, "takeaways": [], "takeaways_generated": False, "fact_tables": [], "lang": "ar",
    }


def test_a_cached_entry_keeps_its_structured_data(rich, env):
    entry = prepare(rich, SITE_URL, env, 100_000)
    cached = Entry.from_json(entry.to_json())
    assert cached == entry
    assert entry.structured == EXPECTED
    # In the same key order too: a feed built from a cached entry has the same bytes (and ETag).
    assert json.dumps(cached.structured) == json.dumps(entry.structured)
