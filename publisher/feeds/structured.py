"""An article's structured parts (takeaways, pull quote, fact tables, language) for machines.

Feed readers and aggregators get the article's content as HTML, where a list of key
takeaways or a table of figures is only markup.  This module states the same parts as
data, in one form: :func:`structured_data` makes the JSON Feed extension object
(``_publisher`` on each item, JSON Feed 1.1's rule for extensions: a key that starts with
an underscore, with an ``about`` URL), and :class:`StructuredEntry` writes that object as
elements of the project's own XML namespace (:data:`NAMESPACE`) into the Atom entry and the
RSS item.  Both serializations read one dict, so the formats can't say different things.

The namespace URI is the same on every site (it names the vocabulary, not a site), is
under the ``.invalid`` top-level domain (RFC 2606: it can never be registered, so nobody
else can ever mint the same name) and carries a version: a change that breaks a reader
gets a new one.  README's "Structured data" documents every key and element.

Pure: an article in, a JSON-ready dict out; the XML is written by feedgen's extension
hooks, never by editing serialized XML.
"""

from __future__ import annotations

from typing import Any

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.util import xml_elem

from publisher.content.model import Article, FactTable

NAMESPACE = "https://publisher.invalid/ns/1.0"
PREFIX = "publisher"  # the prefix the feeds declare; readers must go by the URI
JSON_KEY = "_publisher"  # the JSON Feed item's extension key


def structured_data(article: Article) -> dict[str, Any] | None:
    """The ``_publisher`` object of ``article``'s JSON Feed item, or None when it has none
    of the parts (no takeaways, quote, fact table or language of its own).

    ``takeaways`` and ``fact_tables`` are always lists and ``takeaways_generated`` always a
    boolean, so a reader needs no test for a missing key; ``quote`` is there only when the
    article has one (its first quote: the pull quote), ``lang`` only when the article's
    language differs from the site's (the item's ``language`` holds the site's).

    Keys are made in sorted order, at every level: the entry cache keeps the object as
    sorted JSON (:meth:`publisher.feeds.entries.Entry.to_json`), and a feed must come out
    byte for byte the same from a cached entry as from a fresh one (its ETag).
    """
    quote = article.pull_quote
    if not (article.takeaways or quote or article.fact_tables or article.lang):
        return None
    data: dict[str, Any] = {
        "about": NAMESPACE,
        "fact_tables": [_table(table) for table in article.fact_tables],
    }
    if article.lang:
        data["lang"] = article.lang
    if quote:
        data["quote"] = {"cite": quote.cite, "text": quote.text}
    data["takeaways"] = list(article.takeaways)
    data["takeaways_generated"] = article.takeaways_generated and bool(article.takeaways)
    return data


def _table(table: FactTable) -> dict[str, Any]:
    """A fact table as data; ``more_rows`` (rows past ``[content] max_table_cells``, shown on
    the article's page only) is there only when some were left out."""
    data: dict[str, Any] = {"caption": table.caption, "header": list(table.header)}
    if table.more_rows:
        data["more_rows"] = table.more_rows
    data["rows"] = [list(row) for row in table.rows]
    data["sources"] = table.sources
    return data


def _name(local: str) -> str:
    return f"{{{NAMESPACE}}}{local}"


class StructuredNamespace(BaseExtension):
    """Declares the namespace on the feed's root (``xmlns:publisher``); registered only
    when an entry has structured data, so a feed without any declares nothing it doesn't use."""

    def extend_ns(self) -> dict[str, str]:
        return {PREFIX: NAMESPACE}


class StructuredEntry(BaseEntryExtension):
    """:func:`structured_data` as elements of the Atom entry and the RSS item (the same ones).

    Every element, nested ones too, is in the namespace and carries text or children,
    never both (RFC 4287 §6.4's simple and structured extension elements); RSS 2.0 has no
    such rule, but the W3C validator reports a child of an extension element outside a
    namespace (NotInANamespace).
    """

    def __init__(self) -> None:
        self.data: dict[str, Any] | None = None

    def extend_atom(self, entry: Any) -> Any:
        self._write(entry)
        return entry

    def extend_rss(self, item: Any) -> Any:
        self._write(item)
        return item

    def _write(self, parent: Any) -> None:
        data = self.data
        if not data:
            return
        if "lang" in data:
            xml_elem(_name("lang"), parent).text = data["lang"]
        if data["takeaways"]:
            takeaways = xml_elem(_name("takeaways"), parent)
            if data["takeaways_generated"]:
                takeaways.set("generated", "true")
            for text in data["takeaways"]:
                xml_elem(_name("takeaway"), takeaways).text = text
        if "quote" in data:
            quote = xml_elem(_name("quote"), parent)
            xml_elem(_name("text"), quote).text = data["quote"]["text"]
            if data["quote"]["cite"]:
                xml_elem(_name("cite"), quote).text = data["quote"]["cite"]
        for table in data["fact_tables"]:
            element = xml_elem(_name("table"), parent)
            if table["caption"]:
                xml_elem(_name("caption"), element).text = table["caption"]
            header = xml_elem(_name("header"), element)
            for cell in table["header"]:
                xml_elem(_name("cell"), header).text = cell
            for row in table["rows"]:
                row_element = xml_elem(_name("row"), element)
                for cell in row:
                    xml_elem(_name("cell"), row_element).text = cell
            if table["sources"]:
                xml_elem(_name("sources"), element).text = table["sources"]
            if table.get("more_rows"):
                xml_elem(_name("more-rows"), element).text = str(table["more_rows"])
