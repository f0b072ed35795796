"""An article's Open Graph tags and JSON-LD as data (pure): only http(s) images, relative
ones resolved, and the optional parts left out when the article has none."""

from __future__ import annotations

from publisher.config import SiteSettings
from publisher.content.model import Image
from publisher.web import metadata
from tests.support.articles import LEAD_IMAGE, seed_like

SITE = SiteSettings(title="World Desk", url="https://news.example.org/", language="fr")


def _tags(article) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for _, name, content in metadata.article_tags(article, SITE):
        found.setdefault(name, []).append(content)
    return found


def test_only_http_images_reach_the_metadata_and_relative_ones_are_resolved() -> None:
    article = seed_like(images=(Image("javascript:alert(1)", "bad"), Image("../media/b.png", "b")))
    assert "og:image" not in _tags(article) and _tags(article)["twitter:card"] == ["summary"]
    assert metadata.article_linked_data(article, SITE)["image"] == ["https://news.example.org/media/b.png"]
    article = seed_like(images=(LEAD_IMAGE,))
    assert _tags(article)["og:image"] == [LEAD_IMAGE.src] and _tags(article)["og:image:alt"] == [LEAD_IMAGE.alt]


def test_an_article_without_the_optional_parts_says_only_what_it_has() -> None:
    bare = seed_like(subtitle="", summary="", author="", tags=(), category="", images=(), takeaways=(), quotes=(),
                     fact_tables=(), lang="")
    data = metadata.article_linked_data(bare, SITE)
    assert set(data) == {"@context", "@type", "headline", "url", "mainEntityOfPage", "datePublished",
                         "dateModified", "inLanguage", "author", "publisher"}
    assert data["author"] == data["publisher"] == {"@type": "Organization", "name": "World Desk",
                                                   "url": "https://news.example.org/"}
    assert data["inLanguage"] == "fr"  # the site's
    assert metadata.article_linked_data(seed_like(lang="ar"), SITE)["inLanguage"] == "ar"
    assert {"og:description", "article:section", "article:tag", "twitter:description"}.isdisjoint(_tags(bare))


def test_quote_and_tables_are_parts_of_the_article() -> None:
    data = metadata.article_linked_data(seed_like(), SITE)
    quote, table = data["hasPart"]
    assert quote["@type"] == "Quotation" and quote["creditText"] == "A regional analyst"
    assert table == {"@type": "Table", "name": "The two states in figures",
                     "citation": seed_like().fact_tables[0].sources}
