"""The sample articles in content/ parse cleanly and carry what the renderers need."""

from __future__ import annotations

from pathlib import Path

import pytest

from publisher.content.markdown import parse_article
from publisher.sources.markdown_dir import scan_directory

SITE = "https://news.example/"
CONTENT = Path(__file__).resolve().parents[2] / "content"
SAMPLES = sorted(CONTENT.glob("*.md"))


def test_there_are_several_samples_and_all_scan_without_problems() -> None:
    result = scan_directory(CONTENT, SITE)
    assert result.problems == []
    assert len(result.articles) == len(SAMPLES) >= 3
    assert len({tag for article in result.articles for tag in article.tags}) >= 6


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_every_sample_sets_a_stable_id_and_a_summary(path: Path) -> None:
    article = parse_article(path.read_bytes(), str(path), SITE)
    assert not article.id.startswith(SITE)  # explicit, not derived from the URL
    assert article.summary
    assert article.tags


def test_kim_article() -> None:
    article = parse_article((CONTENT / "kim-russia-visit.md").read_bytes(), "content/kim-russia-visit.md", SITE)
    assert article.subtitle
    assert article.category == "Analysis"
    assert article.tags == ("geopolitics", "north-korea", "russia")
    assert article.published.isoformat() == "2023-09-14T09:00:00+00:00"
    assert article.takeaways == (
        "North Korea and Russia may be negotiating weapons transfers",
        "Western sanctions are pushing both states into a closer partnership",
        "The deal could unsettle security in Northeast Asia and beyond",
    )
    assert "Key Takeaways" not in article.body_html
    assert article.pull_quote is not None and article.pull_quote.cite == ""
    assert article.pull_quote.text.startswith("Two governments with common interests")
    assert "world order" in article.pull_quote.text
    assert [(image.src, bool(image.alt), bool(image.caption)) for image in article.images] == [
        ("https://news.example/images/kim-arrives.png", True, True),
        ("https://news.example/images/putin-hosts-kim.png", True, True),
    ]
    (table,) = article.fact_tables
    assert table.caption == "Facts and Figures: What Is at Stake"
    assert table.header == ("Indicator", "North Korea", "Russia")
    assert [row[0] for row in table.rows] == [
        "GDP (Nominal, 2022)",
        "Military Expenditure (2022)",
        "UN Sanctions",
        "Key Exports",
    ]
    assert table.rows[0][1:] == ("~$28 Billion (Estimate)", "$2.2 Trillion")
    assert table.rows[1][2] == "$86.4 Billion"
    assert table.sources.startswith("World Bank, SIPRI and United Nations reports")
    assert "World Bank, SIPRI" in table.sources
    assert "Leave a Reply" not in article.body_html
    assert len(article.summary) <= 280


def test_the_fixture_article_has_every_part_a_renderer_shows() -> None:
    """tests/fixtures/articles/harbour-wind.md: our own rich article, takeaways to data sources."""
    path = Path(__file__).resolve().parents[1] / "fixtures" / "articles" / "harbour-wind.md"
    article = parse_article(path.read_bytes(), str(path), SITE)
    assert article.id == "2026-03-harbour-wind"
    assert len(article.takeaways) == 3 and "Key Takeaways" not in article.body_html
    assert article.pull_quote is not None and article.pull_quote.text.startswith("A port that used to ship coal")
    assert article.body_html.count("<h2>") == 4
    assert [(image.alt, bool(image.caption)) for image in article.images] == [
        ("Turbine foundations off the Northmere breakwater", True),
    ]
    (table,) = article.fact_tables
    assert table.header == ("Measure", "Value") and table.align == ("", "right")
    assert table.rows[1] == ("Capacity", "86 MW") and len(table.rows) == 5
    assert table.sources.startswith("The developer's planning application")
