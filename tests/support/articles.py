"""Sample articles shared by the renderer tests.

:func:`seed_like` builds an :class:`Article` with the *shape* of the richest sample
article, ``content/kim-russia-visit.md``: two images, three key takeaways, a pull quote
and a four-row "Indicator | North Korea | Russia" fact table with a data-sources note,
its figures and much of its wording taken from that file.  The same parts as Markdown
to parse are in ``tests/fixtures/articles/harbour-wind.md``.

Tests override whatever they depend on, e.g. ``seed_like(body_html="<p>x</p>")``.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from publisher.content.model import Article, FactTable, Image, Quote

TITLE = "Kim Jong Un in Russia: Is the War in Ukraine Forging a New Axis?"
SUBTITLE = "Kim & Putin: what the summit could change for both regimes and their allies"
SUMMARY = (
    "Kim Jong Un's trip to Russia has prompted a wave of speculation about "
    "weapons transfers and new partnerships."
)
TAKEAWAYS = (
    "Moscow may buy ammunition from Pyongyang and pay with military know-how",
    "Western sanctions are pushing two isolated governments closer together",
    "The partnership raises new risks for security in Asia and in Europe",
)
QUOTE = (
    "Two governments with common interests and a shared wish to contest the present "
    "world order are drawing a new geopolitical map."
)
QUOTE_CITE = "A regional analyst"
FACT_CAPTION = "The two states in figures"
FACT_HEADER = ("Indicator", "North Korea", "Russia")
FACT_ROWS = (
    ("GDP (Nominal, 2022)", "~$28 Billion (Estimate)", "$2.2 Trillion"),
    (
        "Military Expenditure (2022)",
        "Estimated high percentage of GDP (Exact figures unavailable)",
        "$86.4 Billion",
    ),
    (
        "UN Sanctions",
        "Extensive, targeting nuclear and missile programs",
        "Targeted due to the conflict in Ukraine",
    ),
    ("Key Exports", "Coal, textiles (Mostly illicit)", "Oil, gas, weapons"),
)
SOURCES = "Compiled from World Bank, SIPRI and United Nations reporting; several values are estimates."
LEAD_IMAGE = Image(
    "https://news.example.org/media/kim-arrives.jpg",
    "Kim Jong Un arriving in Russia",
    "Kim Jong Un arrives in Russia",
)
SECOND_IMAGE = Image(
    "https://news.example.org/media/putin-hosts-kim.jpg",
    "Vladimir Putin receiving Kim Jong Un",
    "Vladimir Putin hosts Kim",
)


def table_html(rows: tuple[tuple[str, ...], ...], header: tuple[str, ...] = FACT_HEADER) -> str:
    """The fact table as a Markdown body renders it: a header row, then one ``<tr>`` a row."""
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


BODY_HTML = (
    "<h2>A Turning Point for Two Isolated Governments</h2>\n"
    "<p>The summit may mark a closer relationship between two states the West has largely shut out.</p>\n"
    f"<h2>{FACT_CAPTION}</h2>\n"
    f"{table_html(FACT_ROWS)}\n"
    f"<p><strong>Data Sources:</strong> {SOURCES}</p>\n"
)


def seed_like(**overrides: Any) -> Article:
    """An article shaped like the seed; ``overrides`` replace any of its fields.

    By default the body holds the fact table in place (as a Markdown body does) and
    ``fact_tables`` holds the same table as data; the takeaways are not in the body.
    """
    article = Article(
        id="kim-russia-visit",
        slug="kim-russia-visit",
        title=TITLE,
        published=datetime(2023, 9, 14, 9, 0, tzinfo=UTC),
        updated=datetime(2023, 9, 14, 9, 0, tzinfo=UTC),
        canonical_url="https://news.example.org/articles/kim-russia-visit",
        subtitle=SUBTITLE,
        author="Jane Analyst",
        tags=("North Korea", "Russia", "Geopolitics"),
        category="General News & Posts",
        images=(LEAD_IMAGE, SECOND_IMAGE),
        summary=SUMMARY,
        takeaways=TAKEAWAYS,
        quotes=(Quote(QUOTE, QUOTE_CITE),),
        body_html=BODY_HTML,
        fact_tables=(FactTable(caption=FACT_CAPTION, header=FACT_HEADER, rows=FACT_ROWS, sources=SOURCES),),
    )
    return dataclasses.replace(article, **overrides)


def markdown_article(id: str, title: str, date: str = "2024-07-01T09:00:00Z") -> str:
    """A short Markdown article (front matter and three sentences) for a content directory."""
    return (f'---\nid: "{id}"\ntitle: "{title}"\ndate: {date}\ntags: [climate]\n---\n'
            f"{title}: the council approved the plan on Monday. It funds 14 cooling centres. Work starts in August.\n")
