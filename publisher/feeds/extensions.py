"""feedgen extensions for what feedgen 1.0 can't write itself (:mod:`publisher.feeds.build` uses them).

Each is registered on the one feed or entry that needs it; the structured data's namespace
has its own module (:mod:`publisher.feeds.structured`).
"""

from __future__ import annotations

from typing import Any

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.util import xml_elem


class LeadImageEnclosure(BaseEntryExtension):
    """The lead image as RSS ``<enclosure>`` and Atom ``<link rel="enclosure">``.

    ``FeedEntry.enclosure()`` can't be used: feedgen 1.0 writes entry links to Atom with their
    href only (lkiesow/python-feedgen#135), so the enclosure would become a second
    rel="alternate" link, which the W3C validator reports as a duplicate.
    """

    def __init__(self) -> None:
        self.url = ""
        self.media_type = ""

    def image(self, url: str, media_type: str) -> None:
        self.url, self.media_type = url, media_type

    # length="0" is what the validators accept when the size is unknown.
    def extend_rss(self, item: Any) -> Any:
        xml_elem("enclosure", item, url=self.url, length="0", type=self.media_type)
        return item

    def extend_atom(self, entry: Any) -> Any:
        xml_elem("link", entry, rel="enclosure", href=self.url, type=self.media_type, length="0")
        return entry


class EntryLanguage(BaseEntryExtension):
    """``xml:lang`` on an Atom ``<entry>`` written in another language than the feed's.

    feedgen has no per-entry language; its extensions may change the element they are given.
    """

    def __init__(self) -> None:
        self.tag = ""

    def extend_atom(self, entry: Any) -> Any:
        entry.set("{http://www.w3.org/XML/1998/namespace}lang", self.tag)
        return entry


class WebSubHub(BaseExtension):
    """``<atom:link rel="hub">`` in the RSS channel and ``<link rel="hub">`` in the Atom feed.

    feedgen writes only the ``self`` link into RSS, so the hub goes through an extension.
    """

    def __init__(self) -> None:
        self.hub = ""

    def extend_ns(self) -> dict[str, str]:
        return {"atom": "http://www.w3.org/2005/Atom"}

    def extend_rss(self, rss_feed: Any) -> Any:
        xml_elem("{http://www.w3.org/2005/Atom}link", rss_feed[0], rel="hub", href=self.hub)
        return rss_feed

    def extend_atom(self, atom_feed: Any) -> Any:
        xml_elem("{http://www.w3.org/2005/Atom}link", atom_feed, rel="hub", href=self.hub)
        return atom_feed
