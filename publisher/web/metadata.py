"""What a page tells machines about itself: Open Graph and Twitter card tags, schema.org JSON-LD.

Link previews (chat apps, social sites) read Open Graph's ``og:*`` and ``article:*``
properties and Twitter's ``twitter:*`` names; search engines read schema.org JSON-LD.
Both are made here from the article model and the site's settings, as data: the page
template (``web/_metadata.html``) writes the tags, its autoescape quoting each value,
and the JSON-LD through Jinja's ``tojson``, which escapes ``<``, ``>``, ``&`` and ``'``
so that no article text (a title holding ``</script>``) can end the data block.

The JSON-LD of an article is a schema.org ``NewsArticle``.  Its structured parts are
said with what schema.org defines for a ``CreativeWork``: the key takeaways are its
``abstract`` (one value per takeaway, in order: a summary of the work is what they
are), and the pull quote (``Quotation``) and the fact tables (``Table``: caption as
``name``, the data sources note as ``citation``) are its parts (``hasPart``).
schema.org has no terms for a table's rows; they are in the page's ``<table>`` and in
the feeds' structured data (:mod:`publisher.feeds.structured`).

Pure: an article and the site's settings in, tuples and dicts out.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

from publisher.config import SiteSettings
from publisher.content.model import Article

SCHEMA_ORG = "https://schema.org"

# One <meta> tag: (the attribute that names it, its name, its content).  Open Graph's
# properties go in "property" (RDFa), Twitter's cards in "name".
MetaTag = tuple[str, str, str]


def _image_url(article: Article, src: str) -> str:
    """An image's absolute http(s) URL (a relative one resolved against the article's page,
    as the feeds do), or "" for any other scheme: it is left out of the metadata."""
    url = urljoin(article.canonical_url, src)
    return url if urlsplit(url).scheme in ("http", "https") else ""


def article_tags(article: Article, site: SiteSettings) -> tuple[MetaTag, ...]:
    """The Open Graph and Twitter card tags of an article's page."""
    description = article.summary or article.subtitle
    lead = article.lead_image
    lead_url = _image_url(article, lead.src) if lead else ""
    tags: list[MetaTag] = [
        ("property", "og:type", "article"),
        ("property", "og:site_name", site.title),
        ("property", "og:title", article.title),
        ("property", "og:url", article.canonical_url),
    ]
    if description:
        tags.append(("property", "og:description", description))
    if lead and lead_url:
        tags.append(("property", "og:image", lead_url))
        if lead.alt:
            tags.append(("property", "og:image:alt", lead.alt))
    tags += [
        ("property", "article:published_time", article.published.isoformat()),
        ("property", "article:modified_time", article.updated.isoformat()),
    ]
    if article.category:
        tags.append(("property", "article:section", article.category))
    tags += [("property", "article:tag", tag) for tag in article.tags]
    tags += [
        ("name", "twitter:card", "summary_large_image" if lead_url else "summary"),
        ("name", "twitter:title", article.title),
    ]
    if description:
        tags.append(("name", "twitter:description", description))
    if lead_url:
        tags.append(("name", "twitter:image", lead_url))
    return tuple(tags)


def site_tags(site: SiteSettings, title: str, url: str) -> tuple[MetaTag, ...]:
    """The Open Graph and Twitter card tags of one of the site's own pages (the index, a
    tag's page, the archive): a website, with the site's description."""
    tags: list[MetaTag] = [
        ("property", "og:type", "website"),
        ("property", "og:site_name", site.title),
        ("property", "og:title", title),
        ("property", "og:url", url),
    ]
    if site.description:
        tags.append(("property", "og:description", site.description))
    tags += [("name", "twitter:card", "summary"), ("name", "twitter:title", title)]
    if site.description:
        tags.append(("name", "twitter:description", site.description))
    return tuple(tags)


def article_linked_data(article: Article, site: SiteSettings) -> dict[str, Any]:
    """The schema.org ``NewsArticle`` of an article's page (see the module's docstring)."""
    organization = {"@type": "Organization", "name": site.title, "url": site.url}
    data: dict[str, Any] = {
        "@context": SCHEMA_ORG,
        "@type": "NewsArticle",
        "headline": article.title,
        "url": article.canonical_url,
        "mainEntityOfPage": {"@type": "WebPage", "@id": article.canonical_url},
        "datePublished": article.published.isoformat(),
        "dateModified": article.updated.isoformat(),
        "inLanguage": article.lang or site.language,
        # A byline names a person; without one, the publication speaks for itself.
        "author": {"@type": "Person", "name": article.author} if article.author else organization,
        "publisher": organization,
    }
    if article.subtitle:
        data["alternativeHeadline"] = article.subtitle
    if article.summary:
        data["description"] = article.summary
    if images := [url for image in article.images if (url := _image_url(article, image.src))]:
        data["image"] = images
    if article.tags:
        data["keywords"] = list(article.tags)
    if article.category:
        data["articleSection"] = article.category
    if article.takeaways:
        data["abstract"] = list(article.takeaways)
    parts = []
    if quote := article.pull_quote:
        parts.append({"@type": "Quotation", "text": quote.text} | ({"creditText": quote.cite} if quote.cite else {}))
    for table in article.fact_tables:
        part = {"@type": "Table"}
        if table.caption:
            part["name"] = table.caption
        if table.sources:
            part["citation"] = table.sources
        parts.append(part)
    if parts:
        data["hasPart"] = parts
    return data


def site_linked_data(site: SiteSettings) -> dict[str, Any]:
    """The schema.org ``WebSite`` of the site's index."""
    data: dict[str, Any] = {
        "@context": SCHEMA_ORG,
        "@type": "WebSite",
        "name": site.title,
        "url": site.url,
        "inLanguage": site.language,
    }
    if site.description:
        data["description"] = site.description
    return data
