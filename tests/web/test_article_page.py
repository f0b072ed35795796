"""An article page shows each part of the article once, whatever characters it holds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from publisher.app import Publisher
from publisher.config import Settings
from tests.web.test_public_pages import parse
from tests.support.web_client import web_client


QUOTED_ARTICLE = """---
title: "Co-ops & the grid"
subtitle: "Why 'community' solar works & what \\"ownership\\" changes"
date: 2024-05-01T08:00:00Z
---

The first paragraph.

> The grid is "ours" now & it's *cheaper* to run.
> -- A co-op member

The end.
"""


async def test_article_page_shows_subtitle_and_pull_quote_once(publisher: Publisher, site_dir: Path) -> None:
    """Quotes and ampersands in the quote and subtitle must not make them appear twice."""
    (site_dir / "content" / "co-ops.md").write_text(QUOTED_ARTICLE, encoding="utf-8")
    await publisher.intake.scan()
    async with web_client(publisher) as test_client:
        response = await test_client.get("/articles/co-ops")
        assert response.status == 200
        root = parse(await response.text())
    (article,) = root.iter("article")
    text = " ".join("".join(article.itertext()).split())
    assert text.count("Why 'community' solar works & what \"ownership\" changes") == 1
    assert text.count("The grid is \"ours\" now & it's cheaper to run.") == 1
    assert len(list(article.iter("blockquote"))) == 1


ARABIC_ARTICLE = """---
title: "المدينة تزرع أربعة آلاف شجرة"
author: "مكتب الأخبار المحلية"
date: 2024-06-05T08:00:00Z
lang: ar
takeaways:
  - "اثنتا عشرة مكتبة تصبح مراكز تبريد"
---

صوّت مجلس المدينة على خطة الظل والماء.
"""


async def test_an_article_in_another_language_carries_its_lang_and_dir(publisher: Publisher, site_dir: Path) -> None:
    """The page is the site's language; the article (and its entry on the index) is Arabic,
    right to left; the page's own words inside it ("By", "Topics") stay the site's."""
    (site_dir / "content" / "ashjar.md").write_text(ARABIC_ARTICLE, encoding="utf-8")
    await publisher.intake.scan()
    async with web_client(publisher) as test_client:
        page = parse(await (await test_client.get("/articles/ashjar")).text())
        index = parse(await (await test_client.get("/")).text())
    for root in (page, index):
        assert (root.get("lang"), root.get("dir")) == ("en", "ltr")
    (article,) = page.iter("article")
    assert (article.get("lang"), article.get("dir")) == ("ar", "rtl")
    (byline,) = [p for p in article.iter("p") if "By" in "".join(p.itertext())]
    assert (byline.get("lang"), byline.get("dir")) == ("en", "ltr")
    assert [(s.get("lang"), s.get("dir"), s.text) for s in byline.iter("span")] == [("ar", "rtl", "مكتب الأخبار المحلية")]
    [takeaways] = [h for h in article.iter("h2") if h.text == "Key takeaways"]
    assert (takeaways.get("lang"), takeaways.get("dir")) == ("en", "ltr")
    [heading] = [h for h in index.iter("h3") if "شجرة" in "".join(h.itertext())]
    assert (heading.get("lang"), heading.get("dir")) == ("ar", "rtl")
    others = [h for h in index.iter("h3") if h is not heading]
    assert others and all(h.get("lang") is None for h in others)


async def test_a_right_to_left_site_says_so_on_every_page(make_settings: Callable[..., Settings]) -> None:
    """[site] language = "ar": every page is <html lang="ar" dir="rtl">, and an article whose front
    matter names no lang is taken to be in the site's language (no lang of its own)."""
    settings = make_settings()
    settings.site.language = "ar"
    service = Publisher(settings)
    await service.start()
    try:
        await service.intake.scan()
        async with web_client(service) as test_client:
            index = parse(await (await test_client.get("/")).text())
            page = parse(await (await test_client.get("/articles/city-heat-plan")).text())
    finally:
        await service.close()
    for root in (index, page):
        assert (root.get("lang"), root.get("dir")) == ("ar", "rtl")
    (article,) = page.iter("article")
    assert (article.get("lang"), article.get("dir")) == (None, None)
