"""An article page shows each part of the article once, whatever characters it holds."""

from __future__ import annotations

from pathlib import Path

from publisher.app import Publisher
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
